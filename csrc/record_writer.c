/* The record writer: the compiled twin of ObjectWriter.get_record
   (durus/serialize.py), which pickles an object's state and frames it as
   a record during a commit.

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static.

   The Python method pickles the state with a C Pickler (protocol 2)
   whose persistent_id turns persistent objects into (oid, class)
   references.  Here the same opcodes are written directly, without the
   pickler's per-value persistent_id calls, its memo copy and the BytesIO,
   for the values Durus states are made of: None, bools, ints that fit in
   64 bits, floats, str, non-empty bytes, and exact dicts, lists and
   tuples of them, and references to persistent objects of the writer's
   connection (new ones are given an oid and bound, as the Python
   persistent_id does).  The bytes are the pickler's exactly, memo
   indexes included (tests/test_record_writer.py compares the two on many
   states).  Anything else (another type, a subclass, a str with lone
   surrogates, a reference that the Python side refuses, deep nesting, a
   class pickle of an unusual form, copyreg extension codes) sends the
   state, already fetched, to ObjectWriter._record_of_state, the Python
   twin's second half, which pickles it the usual way or raises what
   it always raised.  New objects bound before that point stay bound:
   the pickler then meets them as objects of this connection, and the
   record comes out the same. */

static PyObject *record_writer_type;    /* durus.serialize.ObjectWriter */
static PyObject *py_get_record;         /* ObjectWriter.get_record */
static PyObject *py_record_of_state;    /* ObjectWriter._record_of_state */
static PyObject *class_entries;         /* serialize._class_entries */
static PyObject *py_class_entry;        /* serialize._class_entry */
static PyObject *serialize_globals;     /* serialize's module dict */
static PyObject *compress_func;         /* zlib.compress */
static PyObject *codecs_encode_func;    /* _codecs.encode */
static PyObject *codecs_encode_global;  /* its GLOBAL opcode, as bytes */
static PyObject *extension_registry;    /* copyreg._extension_registry */
static PyObject *s_dry_run, *s_new_objects, *s_objects_found,
    *s_write_compressed, *s_compress_min_size, *s_compression_level;

/* Python 3.10 (the oldest supported) has it under its private name. */
#if PY_VERSION_HEX < 0x030B0000
#define PyFloat_Pack8(x, p, le) \
    _PyFloat_Pack8((x), (unsigned char *)(p), (le))
#endif

#define RW_FALLBACK (-2)        /* not handled here: the Python way */
#define RW_MAX_DEPTH 100        /* deeper states go the Python way */
#define RW_BATCH 1000           /* the pickler's BATCHSIZE */

typedef struct {
    PyObject *key;              /* a strong reference, or NULL: free */
    Py_ssize_t index;
} MemoSlot;

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
    MemoSlot *memo;             /* open addressing on the key's address */
    Py_ssize_t memo_mask, memo_used;
    Py_ssize_t memo_size;       /* the pickler's memo length (next index) */
    PyObject **refs;            /* oids met, strong references */
    Py_ssize_t nrefs, refs_cap;
    PyObject *connection, *new_objects, *objects_found;
    int depth;
} Encoder;

static int
enc_reserve(Encoder *e, Py_ssize_t extra)
{
    if (e->len + extra > e->cap) {
        Py_ssize_t cap = e->cap ? e->cap : 256;
        char *grown;
        while (cap < e->len + extra)
            cap *= 2;
        grown = PyMem_Realloc(e->buf, cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        e->buf = grown;
        e->cap = cap;
    }
    return 0;
}

static int
enc_write(Encoder *e, const char *data, Py_ssize_t size)
{
    if (enc_reserve(e, size) < 0)
        return -1;
    memcpy(e->buf + e->len, data, size);
    e->len += size;
    return 0;
}

static int
enc_byte(Encoder *e, char op)
{
    if (e->len >= e->cap && enc_reserve(e, 1) < 0)
        return -1;
    e->buf[e->len++] = op;
    return 0;
}

/* op followed by a 4-byte little-endian count */
static int
enc_op_le4(Encoder *e, char op, unsigned long value)
{
    char bytes[5];
    bytes[0] = op;
    bytes[1] = (char)(value & 0xff);
    bytes[2] = (char)((value >> 8) & 0xff);
    bytes[3] = (char)((value >> 16) & 0xff);
    bytes[4] = (char)((value >> 24) & 0xff);
    return enc_write(e, bytes, 5);
}

static Py_ssize_t
memo_hash(PyObject *key, Py_ssize_t mask)
{
    size_t h = (size_t)key;
    h = (h >> 4) ^ (h >> 13);
    return (Py_ssize_t)(h & (size_t)mask);
}

/* The memo index of key, or -1. */
static Py_ssize_t
memo_find(Encoder *e, PyObject *key)
{
    Py_ssize_t i;
    if (e->memo == NULL)
        return -1;
    for (i = memo_hash(key, e->memo_mask); e->memo[i].key != NULL;
            i = (i + 1) & e->memo_mask)
        if (e->memo[i].key == key)
            return e->memo[i].index;
    return -1;
}

static int
memo_grow(Encoder *e)
{
    Py_ssize_t old_size = e->memo ? e->memo_mask + 1 : 0, size, i;
    MemoSlot *old = e->memo, *table;
    size = old_size ? old_size * 2 : 64;
    table = PyMem_Calloc(size, sizeof(MemoSlot));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    e->memo = table;
    e->memo_mask = size - 1;
    for (i = 0; i < old_size; i++) {
        if (old[i].key != NULL) {
            Py_ssize_t j = memo_hash(old[i].key, e->memo_mask);
            while (table[j].key != NULL)
                j = (j + 1) & e->memo_mask;
            table[j] = old[i];
        }
    }
    PyMem_Free(old);
    return 0;
}

/* Give key the next memo index (key NULL: an object nothing can meet
   again, such as a fresh tuple) and write the PUT opcode. */
static int
memo_put(Encoder *e, PyObject *key)
{
    Py_ssize_t index = e->memo_size++;
    if (key != NULL) {
        Py_ssize_t i;
        if (e->memo == NULL || 2 * (e->memo_used + 1) > e->memo_mask + 1)
            if (memo_grow(e) < 0)
                return -1;
        i = memo_hash(key, e->memo_mask);
        while (e->memo[i].key != NULL)
            i = (i + 1) & e->memo_mask;
        e->memo[i].key = Py_NewRef(key);
        e->memo[i].index = index;
        e->memo_used++;
    }
    if (index < 256) {
        char bytes[2] = {'q', (char)index};
        return enc_write(e, bytes, 2);
    }
    return enc_op_le4(e, 'r', (unsigned long)index);
}

static int
memo_get(Encoder *e, Py_ssize_t index)
{
    if (index < 256) {
        char bytes[2] = {'h', (char)index};
        return enc_write(e, bytes, 2);
    }
    return enc_op_le4(e, 'j', (unsigned long)index);
}

static void
encoder_clear(Encoder *e)
{
    Py_ssize_t i;
    if (e->memo != NULL) {
        for (i = 0; i <= e->memo_mask; i++)
            Py_XDECREF(e->memo[i].key);
        PyMem_Free(e->memo);
        e->memo = NULL;
    }
    for (i = 0; i < e->nrefs; i++)
        Py_XDECREF(e->refs[i]);
    PyMem_Free(e->refs);
    e->refs = NULL;
    e->nrefs = e->refs_cap = 0;
    PyMem_Free(e->buf);
    e->buf = NULL;
}

static int
enc_long(Encoder *e, PyObject *obj)
{
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    unsigned char bytes[12];
    unsigned long long bits;
    int size, i;

    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow)
        return RW_FALLBACK;     /* LONG1 of more than 8 bytes */
    if (value >= 0 && value < 0x100) {
        bytes[0] = 'K';
        bytes[1] = (unsigned char)value;
        return enc_write(e, (char *)bytes, 2);
    }
    if (value >= 0 && value < 0x10000) {
        bytes[0] = 'M';
        bytes[1] = (unsigned char)(value & 0xff);
        bytes[2] = (unsigned char)(value >> 8);
        return enc_write(e, (char *)bytes, 3);
    }
    if (value >= -0x7fffffffLL - 1 && value <= 0x7fffffffLL)
        return enc_op_le4(e, 'J', (unsigned long)(value & 0xffffffffLL));
    /* LONG1: the pickler writes (bit length of |value|) / 8 + 1 bytes of
       two's complement, little-endian, one fewer for a negative number
       whose top byte is only sign bits. */
    bits = value < 0 ? (unsigned long long)0 - (unsigned long long)value
                     : (unsigned long long)value;
    size = 0;
    while (bits) {
        size++;
        bits >>= 1;
    }
    size = size / 8 + 1;
    for (i = 0; i < size; i++)
        bytes[2 + i] = i < 8 ? (unsigned char)(((unsigned long long)value
                                                >> (8 * i)) & 0xff)
                             : (value < 0 ? 0xff : 0);
    if (value < 0 && size > 1 && bytes[2 + size - 1] == 0xff &&
            (bytes[2 + size - 2] & 0x80))
        size--;
    bytes[0] = 0x8a;
    bytes[1] = (unsigned char)size;
    return enc_write(e, (char *)bytes, 2 + size);
}

/* BINUNICODE of text's UTF-8; RW_FALLBACK for lone surrogates. */
static int
enc_unicode_body(Encoder *e, PyObject *text)
{
    Py_ssize_t size;
    const char *data = PyUnicode_AsUTF8AndSize(text, &size);
    if (data == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear();
        return RW_FALLBACK;
    }
    if ((size_t)size > 0xffffffffUL)
        return RW_FALLBACK;
    if (enc_op_le4(e, 'X', (unsigned long)size) < 0)
        return -1;
    return enc_write(e, data, size);
}

/* Protocol 2 has no bytes opcode: the pickler writes non-empty bytes as
   _codecs.encode(text, 'latin1'), REDUCE, text being the bytes decoded
   as latin-1, and memoizes the function, the text, 'latin1', the
   argument tuple and the bytes. */
static int
enc_bytes(Encoder *e, PyObject *obj)
{
    Py_ssize_t size = PyBytes_GET_SIZE(obj), i, utf8_size = 0, index;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(obj);
    char *out;

    if (size == 0 || PyBytes_GET_SIZE(codecs_encode_global) == 0)
        return RW_FALLBACK;     /* bytes(), or an unusual GLOBAL */
    index = memo_find(e, codecs_encode_func);
    if (index >= 0) {
        if (memo_get(e, index) < 0)
            return -1;
    }
    else if (enc_write(e, PyBytes_AS_STRING(codecs_encode_global),
                       PyBytes_GET_SIZE(codecs_encode_global)) < 0 ||
             memo_put(e, codecs_encode_func) < 0)
        return -1;
    for (i = 0; i < size; i++)
        utf8_size += p[i] < 0x80 ? 1 : 2;
    if ((size_t)utf8_size > 0xffffffffUL)
        return RW_FALLBACK;
    if (enc_op_le4(e, 'X', (unsigned long)utf8_size) < 0 ||
            enc_reserve(e, utf8_size) < 0)
        return -1;
    out = e->buf + e->len;
    for (i = 0; i < size; i++) {
        if (p[i] < 0x80)
            *out++ = (char)p[i];
        else {
            *out++ = (char)(0xc0 | (p[i] >> 6));
            *out++ = (char)(0x80 | (p[i] & 0x3f));
        }
    }
    e->len += utf8_size;
    if (memo_put(e, NULL) < 0)
        return -1;
    index = memo_find(e, s_latin1);
    if (index >= 0) {
        if (memo_get(e, index) < 0)
            return -1;
    }
    else if (enc_unicode_body(e, s_latin1) < 0 || memo_put(e, s_latin1) < 0)
        return -1;
    if (enc_byte(e, '\x86') < 0 || memo_put(e, NULL) < 0 ||
            enc_byte(e, 'R') < 0)
        return -1;
    return memo_put(e, obj);
}

/* The GLOBAL opcode of a persistent class (the record class pickle's
   middle, kept as entry[3] of serialize._class_entries), borrowed; NULL
   with no error set: not of the plain form. */
static PyObject *
class_global(PyObject *cls)
{
    PyObject *entry = PyDict_GetItemWithError(class_entries, cls), *made;
    if (entry == NULL) {
        if (PyErr_Occurred())
            return NULL;
        /* (An unpicklable class: the Python way raises its own error.) */
        made = PyObject_CallOneArg(py_class_entry, cls);
        if (made == NULL) {
            PyErr_Clear();
            return NULL;
        }
        Py_DECREF(made);        /* kept in _class_entries */
        entry = PyDict_GetItemWithError(class_entries, cls);
        if (entry == NULL)
            return NULL;
    }
    if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) < 4 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(entry, 3)))
        return NULL;
    return PyTuple_GET_ITEM(entry, 3);
}

static int
enc_add_ref(Encoder *e, PyObject *oid)
{
    if (e->nrefs == e->refs_cap) {
        Py_ssize_t cap = e->refs_cap ? 2 * e->refs_cap : 16;
        PyObject **grown = PyMem_Realloc(e->refs, cap * sizeof(PyObject *));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        e->refs = grown;
        e->refs_cap = cap;
    }
    e->refs[e->nrefs++] = Py_NewRef(oid);
    return 0;
}

/* A reference to a persistent object: as the Python persistent_id, a new
   object gets an oid and is bound first; then (oid, class) BINPERSID. */
static int
enc_persistent(Encoder *e, PyObject *obj)
{
    PyObject *oid, *cls, *global;
    Py_ssize_t index;
    int status;

    status = reference_to(e->connection, e->new_objects, e->objects_found,
                          0, obj, &oid, &cls);
    if (status != 0)
        return status < 0 ? -1 : RW_FALLBACK;   /* the Python way raises */
    if (!PyBytes_CheckExact(oid) || PyBytes_GET_SIZE(oid) != 8) {
        Py_DECREF(oid);
        return RW_FALLBACK;
    }
    status = enc_add_ref(e, oid);
    if (status == 0) {
        index = memo_find(e, oid);
        status = index >= 0 ? memo_get(e, index) : enc_bytes(e, oid);
    }
    Py_DECREF(oid);             /* (held by refs) */
    if (status < 0)
        return status;
    index = memo_find(e, cls);
    if (index >= 0)
        status = memo_get(e, index);
    else {
        global = class_global(cls);
        if (global == NULL)
            return PyErr_Occurred() ? -1 : RW_FALLBACK;
        Py_INCREF(global);
        status = enc_write(e, PyBytes_AS_STRING(global),
                           PyBytes_GET_SIZE(global));
        Py_DECREF(global);
        if (status == 0)
            status = memo_put(e, cls);
    }
    if (status < 0)
        return status;
    /* TUPLE2 of a fresh tuple, memoized; then BINPERSID */
    if (enc_byte(e, '\x86') < 0 || memo_put(e, NULL) < 0)
        return -1;
    return enc_byte(e, 'Q');
}

static int enc_value(Encoder *e, PyObject *obj);

static int
enc_items_of_list(Encoder *e, PyObject *list)
{
    Py_ssize_t total = 0, batch;
    int status;
    if (PyList_GET_SIZE(list) == 1) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(list, 0));
        status = enc_value(e, item);
        Py_DECREF(item);
        if (status < 0)
            return status;
        return enc_byte(e, 'a');
    }
    do {
        batch = 0;
        if (enc_byte(e, '(') < 0)
            return -1;
        while (total < PyList_GET_SIZE(list)) {
            PyObject *item = Py_NewRef(PyList_GET_ITEM(list, total));
            status = enc_value(e, item);
            Py_DECREF(item);
            if (status < 0)
                return status;
            total++;
            if (++batch == RW_BATCH)
                break;
        }
        if (enc_byte(e, 'e') < 0)
            return -1;
    } while (total < PyList_GET_SIZE(list));
    return 0;
}

static int
enc_pair(Encoder *e, PyObject *key, PyObject *value)
{
    int status;
    Py_INCREF(key);
    Py_INCREF(value);
    status = enc_value(e, key);
    if (status == 0)
        status = enc_value(e, value);
    Py_DECREF(key);
    Py_DECREF(value);
    return status;
}

static int
enc_items_of_dict(Encoder *e, PyObject *dict)
{
    Py_ssize_t size = PyDict_GET_SIZE(dict), position = 0;
    PyObject *key, *value;
    int count, status;
    if (size == 1) {
        if (!PyDict_Next(dict, &position, &key, &value))
            return RW_FALLBACK;
        status = enc_pair(e, key, value);
        if (status < 0)
            return status;
        return enc_byte(e, 's');
    }
    do {
        count = 0;
        if (enc_byte(e, '(') < 0)
            return -1;
        while (PyDict_Next(dict, &position, &key, &value)) {
            status = enc_pair(e, key, value);
            if (status < 0)
                return status;
            if (++count == RW_BATCH)
                break;
        }
        if (enc_byte(e, 'u') < 0)
            return -1;
        if (PyDict_GET_SIZE(dict) != size)
            return RW_FALLBACK;     /* changed while written */
    } while (count == RW_BATCH);
    return 0;
}

static int
enc_tuple(Encoder *e, PyObject *tuple)
{
    static const char sized[] = {')', '\x85', '\x86', '\x87'};
    Py_ssize_t size = PyTuple_GET_SIZE(tuple), i, index;
    int status;
    if (size == 0)
        return enc_byte(e, ')');
    if (size > 3 && enc_byte(e, '(') < 0)
        return -1;
    for (i = 0; i < size; i++) {
        status = enc_value(e, PyTuple_GET_ITEM(tuple, i));
        if (status < 0)
            return status;
    }
    index = memo_find(e, tuple);
    if (index >= 0) {
        /* recursive: the tuple was met inside itself */
        if (size > 3) {
            if (enc_byte(e, '1') < 0)
                return -1;
        }
        else {
            for (i = 0; i < size; i++)
                if (enc_byte(e, '0') < 0)
                    return -1;
        }
        return memo_get(e, index);
    }
    if (enc_byte(e, size > 3 ? 't' : sized[size]) < 0)
        return -1;
    return memo_put(e, tuple);
}

/* Write one value: 0, -1 (an error, as the Python way would raise it) or
   RW_FALLBACK. */
static int
enc_value(Encoder *e, PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    Py_ssize_t index;
    int status;

    /* The order of the pickler's save(): persistent_id, the atoms, the
       memo, then each type. */
    if (PyObject_TypeCheck(obj, (PyTypeObject *)persistent_base))
        return enc_persistent(e, obj);
    if (obj == Py_None)
        return enc_byte(e, 'N');
    if (obj == Py_True)
        return enc_byte(e, '\x88');
    if (obj == Py_False)
        return enc_byte(e, '\x89');
    if (type == &PyLong_Type)
        return enc_long(e, obj);
    if (type == &PyFloat_Type) {
        char bytes[9];
        bytes[0] = 'G';
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(obj), bytes + 1, 0) < 0)
            return -1;
        return enc_write(e, bytes, 9);
    }
    if (type != &PyUnicode_Type && type != &PyBytes_Type &&
            type != &PyDict_Type && type != &PyList_Type &&
            type != &PyTuple_Type)
        return RW_FALLBACK;
    index = memo_find(e, obj);
    if (index >= 0)
        return memo_get(e, index);
    if (type == &PyUnicode_Type) {
        status = enc_unicode_body(e, obj);
        if (status < 0)
            return status;
        return memo_put(e, obj);
    }
    if (type == &PyBytes_Type)
        return enc_bytes(e, obj);
    if (e->depth >= RW_MAX_DEPTH)
        return RW_FALLBACK;
    e->depth++;
    if (type == &PyDict_Type) {
        status = enc_byte(e, '}');
        if (status == 0)
            status = memo_put(e, obj);
        if (status == 0 && PyDict_GET_SIZE(obj))
            status = enc_items_of_dict(e, obj);
    }
    else if (type == &PyList_Type) {
        status = enc_byte(e, ']');
        if (status == 0)
            status = memo_put(e, obj);
        if (status == 0 && PyList_GET_SIZE(obj))
            status = enc_items_of_list(e, obj);
    }
    else
        status = enc_tuple(e, obj);
    e->depth--;
    return status;
}

static int
compare_oids(const void *a, const void *b)
{
    return memcmp(PyBytes_AS_STRING(*(PyObject *const *)a),
                  PyBytes_AS_STRING(*(PyObject *const *)b), 8);
}

/* A module global of durus.serialize as a C long (the compression
   settings, read at each call as the Python method does). */
static int
setting(PyObject *name, long *value)
{
    PyObject *item = PyDict_GetItemWithError(serialize_globals, name);
    if (item == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_RuntimeError, "durus.serialize.%U is missing",
                         name);
        return -1;
    }
    if (PyBool_Check(item)) {
        *value = item == Py_True;
        return 0;
    }
    *value = PyLong_AsLong(item);
    return (*value == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* The record of obj (oid, int4 length, class pickle, state, refs) from
   the state written in e. */
static PyObject *
frame_record(Encoder *e, PyObject *oid, PyObject *head)
{
    PyObject *state, *record = NULL;
    long compress, min_size, level;
    Py_ssize_t head_size = PyBytes_GET_SIZE(head), state_size, size, i, kept;
    char *out;

    if (setting(s_write_compressed, &compress) < 0 ||
            setting(s_compress_min_size, &min_size) < 0 ||
            setting(s_compression_level, &level) < 0)
        return NULL;
    if (compress && e->len >= min_size) {
        PyObject *raw = PyBytes_FromStringAndSize(e->buf, e->len);
        PyObject *level_object = PyLong_FromLong(level);
        state = NULL;
        if (raw != NULL && level_object != NULL)
            state = PyObject_CallFunctionObjArgs(compress_func, raw,
                                                 level_object, NULL);
        Py_XDECREF(raw);
        Py_XDECREF(level_object);
        if (state == NULL)
            return NULL;
        if (!PyBytes_Check(state)) {
            Py_DECREF(state);
            PyErr_SetString(PyExc_TypeError, "zlib.compress gave no bytes");
            return NULL;
        }
    }
    else
        state = NULL;
    state_size = state ? PyBytes_GET_SIZE(state) : e->len;
    /* refs: each oid once, sorted, without the record's own */
    kept = 0;
    if (e->nrefs > 1)
        qsort(e->refs, e->nrefs, sizeof(PyObject *), compare_oids);
    for (i = 0; i < e->nrefs; i++) {
        if (memcmp(PyBytes_AS_STRING(e->refs[i]), PyBytes_AS_STRING(oid),
                   8) == 0)
            continue;
        if (kept && memcmp(PyBytes_AS_STRING(e->refs[i]),
                           PyBytes_AS_STRING(e->refs[kept - 1]), 8) == 0)
            continue;
        Py_SETREF(e->refs[kept], Py_NewRef(e->refs[i]));
        kept++;
    }
    for (i = kept; i < e->nrefs; i++)
        Py_CLEAR(e->refs[i]);
    e->nrefs = kept;
    if ((size_t)(head_size + state_size) > 0xffffffffUL) {
        PyErr_SetString(PyExc_OverflowError, "record data over 4 GiB");
        goto done;
    }
    size = 12 + head_size + state_size + 8 * kept;
    record = PyBytes_FromStringAndSize(NULL, size);
    if (record == NULL)
        goto done;
    out = PyBytes_AS_STRING(record);
    memcpy(out, PyBytes_AS_STRING(oid), 8);
    out[8] = (char)(((head_size + state_size) >> 24) & 0xff);
    out[9] = (char)(((head_size + state_size) >> 16) & 0xff);
    out[10] = (char)(((head_size + state_size) >> 8) & 0xff);
    out[11] = (char)((head_size + state_size) & 0xff);
    memcpy(out + 12, PyBytes_AS_STRING(head), head_size);
    memcpy(out + 12 + head_size, state ? PyBytes_AS_STRING(state) : e->buf,
           state_size);
    out += 12 + head_size + state_size;
    for (i = 0; i < kept; i++, out += 8)
        memcpy(out, PyBytes_AS_STRING(e->refs[i]), 8);
done:
    Py_XDECREF(state);
    return record;
}

/* ObjectWriter.get_record(obj), compiled (installed as the method). */
static PyObject *
record_writer_get_record(PyObject *writer, PyObject *const *args,
                         Py_ssize_t nargs)
{
    PyObject *obj, *entry, *state = NULL, *oid, *head, *real, *result = NULL;
    PyObject *dry_run;
    Encoder e;
    int status;

    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "get_record(obj)");
        return NULL;
    }
    obj = args[0];
    if (!configured || record_writer_type == NULL ||
            (PyObject *)Py_TYPE(writer) != record_writer_type)
        return PyObject_CallFunctionObjArgs(py_get_record, writer, obj, NULL);
    dry_run = PyObject_GetAttr(writer, s_dry_run);
    if (dry_run == NULL)
        return NULL;
    status = PyObject_IsTrue(dry_run);
    Py_DECREF(dry_run);
    if (status < 0)
        return NULL;
    if (status)
        return PyObject_CallFunctionObjArgs(py_get_record, writer, obj, NULL);
    /* as the Python method: the class entry, then the state */
    entry = PyDict_GetItemWithError(class_entries, (PyObject *)Py_TYPE(obj));
    if (entry != NULL)
        Py_INCREF(entry);
    else if (PyErr_Occurred())
        return NULL;
    else if ((entry = PyObject_CallOneArg(py_class_entry,
                                          (PyObject *)Py_TYPE(obj))) == NULL)
        return NULL;
    state = PyObject_CallMethodNoArgs(obj, s_getstate);
    if (state == NULL) {
        Py_DECREF(entry);
        return NULL;
    }
    memset(&e, 0, sizeof(e));
    oid = slot(obj, off_oid);
    if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) < 4 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(entry, 1)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(entry, 3)) ||
            oid == NULL || !PyBytes_CheckExact(oid) ||
            PyBytes_GET_SIZE(oid) != 8 ||
            !PyDict_CheckExact(extension_registry) ||
            PyDict_GET_SIZE(extension_registry) != 0)
        goto python;
    Py_INCREF(oid);
    real = PyTuple_GET_ITEM(entry, 0);
    head = PyTuple_GET_ITEM(entry, 1);
    e.connection = PyObject_GetAttr(writer, s_connection);
    e.new_objects = PyObject_GetAttr(writer, s_new_objects);
    e.objects_found = PyObject_GetAttr(writer, s_objects_found);
    if (e.connection == NULL || e.new_objects == NULL ||
            e.objects_found == NULL)
        status = -1;
    else if (!PyList_CheckExact(e.new_objects) ||
             !PyList_CheckExact(e.objects_found))
        status = RW_FALLBACK;
    else {
        /* The state pickle continues the class pickle's memo: the class
           is entry 0 (entry[3], its GLOBAL, says the pickle has that
           plain form). */
        e.memo_size = 0;
        status = memo_grow(&e);
        if (status == 0) {
            Py_ssize_t i = memo_hash(real, e.memo_mask);
            e.memo[i].key = Py_NewRef(real);
            e.memo[i].index = e.memo_size++;
            e.memo_used = 1;
            status = enc_write(&e, "\x80\x02", 2);
        }
        if (status == 0)
            status = enc_value(&e, state);
        if (status == 0)
            status = enc_byte(&e, '.');
    }
    Py_XDECREF(e.connection);
    Py_XDECREF(e.new_objects);
    Py_XDECREF(e.objects_found);
    if (status == 0)
        result = frame_record(&e, oid, head);
    Py_DECREF(oid);
    encoder_clear(&e);
    if (status == RW_FALLBACK)
        goto python;
    Py_DECREF(entry);
    Py_DECREF(state);
    return result;
python:
    encoder_clear(&e);
    result = PyObject_CallFunctionObjArgs(py_record_of_state, writer, obj,
                                          entry, state, NULL);
    Py_DECREF(entry);
    Py_DECREF(state);
    return result;
}

static PyMethodDef record_writer_get_record_def = {
    "get_record", (PyCFunction)(void (*)(void))record_writer_get_record,
    METH_FASTCALL, "The record a commit stores for obj (compiled)."
};

/* configure_writer(ObjectWriter, ObjectWriter.get_record,
                    ObjectWriter._record_of_state, _class_entries,
                    _class_entry, serialize's globals, zlib.compress,
                    _codecs.encode, its GLOBAL opcode bytes,
                    copyreg._extension_registry)
   -> the get_record descriptor for ObjectWriter. */
static PyObject *
configure_writer(PyObject *module, PyObject *args)
{
    PyObject *writer_type, *get_record, *record_of_state, *entries,
        *entry_func, *globals, *compress, *encode, *encode_global, *registry;
    if (!PyArg_ParseTuple(args, "O!OOO!OO!OOO!O!:configure_writer",
                          &PyType_Type, &writer_type, &get_record,
                          &record_of_state, &PyDict_Type, &entries,
                          &entry_func, &PyDict_Type, &globals, &compress,
                          &encode, &PyBytes_Type, &encode_global,
                          &PyDict_Type, &registry))
        return NULL;
    Py_XSETREF(record_writer_type, Py_NewRef(writer_type));
    Py_XSETREF(py_get_record, Py_NewRef(get_record));
    Py_XSETREF(py_record_of_state, Py_NewRef(record_of_state));
    Py_XSETREF(class_entries, Py_NewRef(entries));
    Py_XSETREF(py_class_entry, Py_NewRef(entry_func));
    Py_XSETREF(serialize_globals, Py_NewRef(globals));
    Py_XSETREF(compress_func, Py_NewRef(compress));
    Py_XSETREF(codecs_encode_func, Py_NewRef(encode));
    Py_XSETREF(codecs_encode_global, Py_NewRef(encode_global));
    Py_XSETREF(extension_registry, Py_NewRef(registry));
    return PyDescr_NewMethod((PyTypeObject *)writer_type,
                             &record_writer_get_record_def);
}

/* _write_found(connection, writer, roots, store, written), compiled: the
   loop of a commit (durus.connection._py_write_found) that writes each
   changed object and every new object found while writing, stores each
   record and lists each object written, without a Python frame per
   object.  The steps are the Python loop's, in its order, each called
   the way Python calls it (the connection's note_access, the writer's
   get_record, the storage's store); a writer of another class goes to
   the Python twin. */
static PyObject *py_write_found;
static PyObject *s_get_record, *s_p_serial_name, *s_p_oid_name;

static PyObject *
write_found(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *connection, *writer, *roots, *store, *written;
    PyObject *queue = NULL, *serial = NULL, *get_record = NULL,
        *obj = NULL, *value = NULL, *record = NULL, *stored;
    PyObject *store_args[2];
    Py_ssize_t i, last;
    int different, persistent;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "_write_found(connection, writer, roots, store, "
                        "written)");
        return NULL;
    }
    connection = args[0];
    writer = args[1];
    roots = args[2];
    store = args[3];
    written = args[4];
    if (py_write_found == NULL || record_writer_type == NULL ||
            (PyObject *)Py_TYPE(writer) != record_writer_type ||
            !PyList_CheckExact(roots) || !PyList_CheckExact(written))
        goto python;
    queue = PyObject_GetAttr(writer, s_objects_found);
    if (queue == NULL)
        return NULL;
    if (!PyList_CheckExact(queue)) {
        Py_DECREF(queue);
        goto python;
    }
    if ((serial = PyObject_GetAttr(connection, s_transaction_serial)) == NULL
            || (get_record = PyObject_GetAttr(writer, s_get_record)) == NULL)
        goto error;
    for (i = 0; i < PyList_GET_SIZE(roots); i++) {
        if (PyList_Append(queue, PyList_GET_ITEM(roots, i)) < 0)
            goto error;
        while ((last = PyList_GET_SIZE(queue)) > 0) {
            obj = Py_NewRef(PyList_GET_ITEM(queue, last - 1));
            if (PyList_SetSlice(queue, last - 1, last, NULL) < 0)
                goto error;
            /* (the slots read directly, as the writer reads them; an
               object that is not a persistent instance is asked) */
            persistent = is_persistent_instance(obj);
            if (!persistent && PyErr_Occurred())
                goto error;
            if (persistent && slot(obj, off_serial) != NULL)
                value = Py_NewRef(slot(obj, off_serial));
            else if ((value = PyObject_GetAttr(obj, s_p_serial_name)) == NULL)
                goto error;
            different = PyObject_RichCompareBool(value, serial, Py_NE);
            Py_CLEAR(value);
            if (different < 0)
                goto error;
            if (different) {
                value = PyObject_CallMethodOneArg(connection, s_note_access,
                                                  obj);
                if (value == NULL)
                    goto error;
                Py_CLEAR(value);
            }
            if (persistent && slot(obj, off_oid) != NULL)
                value = Py_NewRef(slot(obj, off_oid));
            else if ((value = PyObject_GetAttr(obj, s_p_oid_name)) == NULL)
                goto error;
            if ((record = PyObject_CallOneArg(get_record, obj)) == NULL)
                goto error;
            store_args[0] = value;
            store_args[1] = record;
            stored = PyObject_Vectorcall(store, store_args, 2, NULL);
            if (stored == NULL)
                goto error;
            Py_DECREF(stored);
            Py_CLEAR(value);
            Py_CLEAR(record);
            if (PyList_Append(written, obj) < 0)
                goto error;
            Py_CLEAR(obj);
        }
    }
    Py_DECREF(queue);
    Py_DECREF(serial);
    Py_DECREF(get_record);
    Py_RETURN_NONE;
error:
    Py_XDECREF(queue);
    Py_XDECREF(serial);
    Py_XDECREF(get_record);
    Py_XDECREF(obj);
    Py_XDECREF(value);
    Py_XDECREF(record);
    return NULL;
python:
    if (py_write_found == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "durus._speedups not configured");
        return NULL;
    }
    return PyObject_Vectorcall(py_write_found, args, nargs, NULL);
}

/* set_write_found(connection._py_write_found): the Python twin. */
static PyObject *
set_write_found(PyObject *module, PyObject *func)
{
    Py_XSETREF(py_write_found, Py_NewRef(func));
    Py_RETURN_NONE;
}
