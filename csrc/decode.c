/* decode_state: state pickles read without the pickle module's Unpickler
   (the twin of ObjectReader._load_state_pickle, durus/serialize.py).

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static.

   Durus state pickles use a handful of protocol-2 opcodes: dicts, lists
   and tuples of str, int, float, None and bools, the memo, persistent
   references (BINPERSID of (oid, class), the oid spelled as a REDUCE of
   _codecs.encode) and the globals those name.  The Unpickler reads them
   through a file object, copies the class memo in and out, and calls
   back through Python attribute lookups for every reference; here the
   bytes are walked directly.

   The Python reader stays the reference.  Every global goes through the
   reader's cache of resolve_class answers or resolve_class itself, and
   every persistent reference through the same steps as the compiled
   PersistentLoader, so the unpickling policy refuses exactly what it
   refuses.  Any opcode, value or shape not listed here (and any damage:
   a truncated pickle, bytes after STOP, a BINGET of an unset slot)
   stops the walk, which then hands the whole pickle to the Python
   method: the errors and oddities are its.  What the walk did before
   stopping is repeated by that method with the same answers (cached
   classes, the same ghosts from the cache). */

static PyObject *s_classes, *s_resolve_class;

/* The walk's memo and stack, sized for typical states; they grow on the
   heap for larger ones. */
#define DS_SMALL 64
#define DS_MEMO_LIMIT (1 << 20)

typedef struct {
    PyObject **stack;
    Py_ssize_t depth, stack_size;
    Py_ssize_t *marks;
    Py_ssize_t mark_count, marks_size;
    PyObject **memo;
    /* Slots 0 to memo_high are set or NULL; those above are not
       initialised (most states use a few of the DS_SMALL). */
    Py_ssize_t memo_size, memo_high;
    PyObject *small_stack[DS_SMALL];
    Py_ssize_t small_marks[DS_SMALL];
    PyObject *small_memo[DS_SMALL];
    /* Fetched at the first reference of a state and kept for the rest of
       it (ObjectDictionary binds mapping and _callback once): the
       reader's connection, its cache's objects, their mapping and weak
       reference callback, the reader's _placeholder_origins (whose size
       is checked at every reference).  Dropped whenever Python code of
       the reader ran (resolve_class, load_persistent_id). */
    PyObject *objects, *connection, *mapping, *callback, *origins;
} DecodeState;

static void
ds_forget(DecodeState *ds)
{
    Py_CLEAR(ds->objects);
    Py_CLEAR(ds->connection);
    Py_CLEAR(ds->mapping);
    Py_CLEAR(ds->callback);
    Py_CLEAR(ds->origins);
}

static void
ds_init(DecodeState *ds)
{
    ds->stack = ds->small_stack;
    ds->stack_size = DS_SMALL;
    ds->depth = 0;
    ds->marks = ds->small_marks;
    ds->marks_size = DS_SMALL;
    ds->mark_count = 0;
    ds->memo = ds->small_memo;
    ds->memo_size = DS_SMALL;
    ds->memo_high = 0;
    ds->small_memo[0] = NULL;
    ds->objects = ds->connection = ds->mapping = ds->callback = NULL;
    ds->origins = NULL;
}

static void
ds_clear(DecodeState *ds)
{
    Py_ssize_t i;
    for (i = 0; i < ds->depth; i++)
        Py_DECREF(ds->stack[i]);
    for (i = 0; i <= ds->memo_high; i++)
        Py_XDECREF(ds->memo[i]);
    if (ds->stack != ds->small_stack)
        PyMem_Free(ds->stack);
    if (ds->marks != ds->small_marks)
        PyMem_Free(ds->marks);
    if (ds->memo != ds->small_memo)
        PyMem_Free(ds->memo);
    ds_forget(ds);
}

/* Push a new reference (stolen); -1 (no error set) if out of memory. */
static int
ds_push(DecodeState *ds, PyObject *value)
{
    if (ds->depth == ds->stack_size) {
        Py_ssize_t size = ds->stack_size * 2;
        PyObject **grown = PyMem_Malloc(size * sizeof(PyObject *));
        if (grown == NULL) {
            Py_DECREF(value);
            return -1;
        }
        memcpy(grown, ds->stack, ds->depth * sizeof(PyObject *));
        if (ds->stack != ds->small_stack)
            PyMem_Free(ds->stack);
        ds->stack = grown;
        ds->stack_size = size;
    }
    ds->stack[ds->depth++] = value;
    return 0;
}

static int
ds_mark(DecodeState *ds)
{
    if (ds->mark_count == ds->marks_size) {
        Py_ssize_t size = ds->marks_size * 2;
        Py_ssize_t *grown = PyMem_Malloc(size * sizeof(Py_ssize_t));
        if (grown == NULL)
            return -1;
        memcpy(grown, ds->marks, ds->mark_count * sizeof(Py_ssize_t));
        if (ds->marks != ds->small_marks)
            PyMem_Free(ds->marks);
        ds->marks = grown;
        ds->marks_size = size;
    }
    ds->marks[ds->mark_count++] = ds->depth;
    return 0;
}

static int
ds_memo_put(DecodeState *ds, Py_ssize_t index)
{
    PyObject *value;
    /* (nothing above the last MARK: the unpickler's stack underflow) */
    if (ds->depth == 0 || index < 0 || index >= DS_MEMO_LIMIT ||
            (ds->mark_count && ds->marks[ds->mark_count - 1] >= ds->depth))
        return -1;
    if (index >= ds->memo_size) {
        Py_ssize_t size = ds->memo_size;
        PyObject **grown;
        while (size <= index)
            size *= 2;
        grown = PyMem_Calloc(size, sizeof(PyObject *));
        if (grown == NULL)
            return -1;
        memcpy(grown, ds->memo, (ds->memo_high + 1) * sizeof(PyObject *));
        if (ds->memo != ds->small_memo)
            PyMem_Free(ds->memo);
        ds->memo = grown;
        ds->memo_size = size;
    }
    if (index > ds->memo_high) {
        /* Usually the next slot: the loop (a memset call) seldom runs. */
        Py_ssize_t i = ds->memo_high + 1;
        ds->memo[index] = NULL;
        for (; i < index; i++)
            ds->memo[i] = NULL;
        ds->memo_high = index;
    }
    value = ds->stack[ds->depth - 1];
    Py_INCREF(value);
    Py_XSETREF(ds->memo[index], value);
    return 0;
}

/* Stands in the memo for a value the walk dropped (ds_memo_drop). */
static PyObject *ds_dropped;

/* How many memo slots below the highest one ds_memo_drop looks at: the
   puts of one reference (str, 'latin1', args, bytes, class, pid) are
   that close together. */
#define DS_DROP_WINDOW 6

/* The walk has just consumed value (the str or the argument tuple of an
   oid's _codecs.encode, a persistent id), and besides the memo only
   `holders` references keep it.  Python's pickler memoizes such values
   but makes them fresh for every reference, so no BINGET reads them back;
   kept, they would live until the end of the state, and a BTree node's
   ghosts would be allocated between them and later fill the holes they
   leave, out of order: the objects the collector walks in creation order
   would lie back and forth in memory (docs/benchmarks.md, issue 16,
   sixth round).  Dropped, they are freed now, and the ghost and its
   weak reference take the place of the str they followed.  A BINGET of
   a dropped slot stops the walk: the Python method reads that pickle. */
static void
ds_memo_drop(DecodeState *ds, PyObject *value, Py_ssize_t holders)
{
    Py_ssize_t i, low;
    if (Py_REFCNT(value) != holders + 1)
        return;
    low = ds->memo_high - DS_DROP_WINDOW;
    for (i = ds->memo_high; i > low && i > 0; i--) {
        if (ds->memo[i] == value) {
            Py_SETREF(ds->memo[i], Py_NewRef(ds_dropped));
            return;
        }
    }
}

/* Of the class pickle's memo only slot 0, the record's class, is put in
   (decode_walk's record_class): a BINGET of any other slot not set by
   the state itself is left to the Python method. */
static PyObject *
ds_memo_get(DecodeState *ds, Py_ssize_t index)
{
    if (index < 0 || index > ds->memo_high || ds->memo[index] == NULL ||
            ds->memo[index] == ds_dropped)
        return NULL;
    return Py_NewRef(ds->memo[index]);
}

static inline unsigned long
ds_le(const unsigned char *p, int n)
{
    unsigned long value = 0;
    int i;
    for (i = n - 1; i >= 0; i--)
        value = (value << 8) | p[i];
    return value;
}

/* A global as the reader's unpickler resolves it: find_class(module,
   name) is reader.resolve_class(module, name, False), whose answers are
   cached in reader._classes under that key.  NULL: an error (resolve_class
   raised) or, with no error set, "not handled here". */
static PyObject *
ds_global(DecodeState *ds, PyObject *reader, const char *module,
          Py_ssize_t module_size, const char *name, Py_ssize_t name_size)
{
    PyObject *m, *n, *key, *classes, *found;
    m = PyUnicode_DecodeUTF8(module, module_size, "strict");
    n = m ? PyUnicode_DecodeUTF8(name, name_size, "strict") : NULL;
    if (n == NULL) {
        Py_XDECREF(m);
        PyErr_Clear();
        return NULL;
    }
    key = PyTuple_Pack(3, m, n, Py_False);
    if (key == NULL) {
        Py_DECREF(m);
        Py_DECREF(n);
        PyErr_Clear();
        return NULL;
    }
    classes = PyObject_GetAttr(reader, s_classes);
    found = NULL;
    if (classes != NULL && PyDict_CheckExact(classes))
        found = Py_XNewRef(PyDict_GetItemWithError(classes, key));
    Py_XDECREF(classes);
    Py_DECREF(key);
    if (found == NULL) {
        if (PyErr_Occurred())
            PyErr_Clear();
        ds_forget(ds);  /* (Python code runs) */
        found = PyObject_CallMethodObjArgs(reader, s_resolve_class, m, n,
                                           Py_False, NULL);
    }
    Py_DECREF(m);
    Py_DECREF(n);
    return found;
}

/* A persistent reference, as the compiled PersistentLoader takes it
   (a ghost from the cache), or through reader.load_persistent_id. */
static PyObject *
ds_reference(DecodeState *ds, PyObject *reader, PyObject *pid)
{
    PyObject *oid, *cls, *triple, *watched, *result;

    if (!PyTuple_CheckExact(pid) || PyTuple_GET_SIZE(pid) != 2)
        goto python;
    oid = PyTuple_GET_ITEM(pid, 0);
    cls = PyTuple_GET_ITEM(pid, 1);
    if (!PyBytes_CheckExact(oid) || !PyType_Check(cls) ||
            !configured || oid_ref_type == NULL)
        goto python;
    if (ds->origins == NULL) {
        ds->origins = PyObject_GetAttr(reader, s_placeholder_origins);
        if (ds->origins == NULL)
            return NULL;
    }
    /* Stand-ins in play: the Python method knows them. */
    if (!PyDict_CheckExact(ds->origins) || PyDict_GET_SIZE(ds->origins))
        goto python;
    if (ds->mapping == NULL) {
        PyObject *cache;
        ds->connection = PyObject_GetAttr(reader, s_connection);
        if (ds->connection == NULL)
            return NULL;
        cache = PyObject_GetAttr(ds->connection, s_cache);
        if (cache == NULL)
            return NULL;
        ds->objects = PyObject_GetAttr(cache, s_objects);
        Py_DECREF(cache);
        if (ds->objects == NULL)
            return NULL;
        ds->mapping = PyObject_GetAttr(ds->objects, s_mapping);
        if (ds->mapping == NULL)
            return NULL;
        ds->callback = PyObject_GetAttr(ds->objects, s_callback);
        if (ds->callback == NULL)
            return NULL;
    }
    if (!PyDict_CheckExact(ds->mapping)) {
        PyObject *args[4] = {ds->objects, oid, cls, ds->connection};
        return get_instance(NULL, args, 4);  /* (which says what is wrong) */
    }
    triple = PyDict_GetItemWithError(variants, cls);
    if (triple == NULL) {
        if (PyErr_Occurred())
            return NULL;
        /* New to this process: Python makes its variants. */
        triple = variants_entry(cls);
        if (triple == NULL)
            return NULL;
    }
    if (!PyList_CheckExact(triple) || PyList_GET_SIZE(triple) != 4) {
        PyErr_SetString(PyExc_TypeError, "damaged hook variants entry");
        return NULL;
    }
    watched = Py_NewRef(PyList_GET_ITEM(triple, 1));
    result = ghost_of(ds->objects, ds->mapping, ds->callback, oid, cls,
                      ds->connection, watched);
    Py_DECREF(watched);
    return result;
python:
    ds_forget(ds);
    return PyObject_CallMethodOneArg(reader, s_load_persistent_id, pid);
}

/* Whether the stack holds n items above its top mark (an opcode that
   takes n operands must not reach into a mark's items). */
static inline int
ds_has_operands(const DecodeState *ds, Py_ssize_t n)
{
    return ds->depth >= n && !(ds->mark_count &&
                               ds->marks[ds->mark_count - 1] > ds->depth - n);
}

/* The items above the top mark, as a new tuple; the stack drops them. */
static PyObject *
ds_pop_to_mark(DecodeState *ds)
{
    Py_ssize_t start, count, i;
    PyObject *tuple;
    if (ds->mark_count == 0)
        return NULL;
    start = ds->marks[--ds->mark_count];
    count = ds->depth - start;
    tuple = PyTuple_New(count);
    if (tuple == NULL) {
        PyErr_Clear();
        return NULL;
    }
    for (i = 0; i < count; i++)
        PyTuple_SET_ITEM(tuple, i, ds->stack[start + i]);
    ds->depth = start;
    return tuple;
}

/* The attribute names of recent states, interned: a BINUNICODE with the
   same bytes is answered with the kept str, without decoding it or
   looking it up among the interned strings again.  Only ASCII names
   (whose bytes are their UTF-8) of up to DS_KEY_MAX characters; a slot
   holds the last name that hashed to it. */
#define DS_KEYS 256
#define DS_KEY_MAX 40
static PyObject *ds_keys[DS_KEYS];

static inline Py_ssize_t
ds_key_slot(const unsigned char *p, Py_ssize_t size)
{
    return (size * 131 + p[0] * 31 + p[size - 1]) & (DS_KEYS - 1);
}

static PyObject *
ds_known_key(const unsigned char *p, Py_ssize_t size)
{
    PyObject *key;
    if (size == 0 || size > DS_KEY_MAX)
        return NULL;
    key = ds_keys[ds_key_slot(p, size)];
    if (key != NULL && PyUnicode_GET_LENGTH(key) == size &&
            memcmp(PyUnicode_1BYTE_DATA(key), p, size) == 0)
        return Py_NewRef(key);
    return NULL;
}

static void
ds_remember_key(PyObject *key)
{
    Py_ssize_t size = PyUnicode_GET_LENGTH(key);
    if (!PyUnicode_IS_COMPACT_ASCII(key) || !PyUnicode_CHECK_INTERNED(key) ||
            size == 0 || size > DS_KEY_MAX)
        return;
    {
        PyObject **slot = &ds_keys[ds_key_slot(PyUnicode_1BYTE_DATA(key),
                                               size)];
        if (*slot != key)
            Py_XSETREF(*slot, Py_NewRef(key));
    }
}

/* target[key] = value for an exact dict; str keys of the state itself
   (the dict at the bottom of the stack) are interned, as
   Persistent.__setstate__ would intern them.  -1: not handled. */
static int
ds_setitem(DecodeState *ds, Py_ssize_t target_index, PyObject *key,
           PyObject *value)
{
    PyObject *target = ds->stack[target_index];
    int failed;
    if (!PyDict_CheckExact(target))
        return -1;
    Py_INCREF(key);
    if (target_index == 0 && PyUnicode_CheckExact(key)) {
        if (!PyUnicode_CHECK_INTERNED(key))
            PyUnicode_InternInPlace(&key);
        ds_remember_key(key);
    }
    failed = PyDict_SetItem(target, key, value);
    Py_DECREF(key);
    if (failed < 0) {
        PyErr_Clear();  /* (an unhashable key: the Python method says so) */
        return -1;
    }
    return 0;
}

#define DS_NEED(n) do { if (end - p < (n)) goto unhandled; } while (0)
#define DS_PUSH(value) do { PyObject *v_ = (value); \
        if (v_ == NULL) { PyErr_Clear(); goto unhandled; } \
        if (ds_push(&ds, v_) < 0) goto unhandled; } while (0)

/* 1 with *result set, 0 when the Python method must read this pickle,
   -1 with an error raised by the reader (resolve_class, a reference). */
static int
decode_walk(PyObject *reader, PyObject *state, PyObject *record_class,
            PyObject **result)
{
    const unsigned char *p, *end;
    DecodeState ds;
    int outcome = 0;

    ds_init(&ds);
    /* Durus's class pickles end with BINPUT 0 of the class (a state may
       name its own class as BINGET 0, as BTree nodes do). */
    ds.memo[0] = Py_XNewRef(record_class);
    p = (const unsigned char *)PyBytes_AS_STRING(state);
    end = p + PyBytes_GET_SIZE(state);
    if (end - p >= 2 && p[0] == 0x80 && p[1] <= 2)
        p += 2;  /* PROTO */
    while (p < end) {
        unsigned char op = *p++;
        switch (op) {
        case '}':  /* EMPTY_DICT */
            DS_PUSH(PyDict_New());
            break;
        case ']':  /* EMPTY_LIST */
            DS_PUSH(PyList_New(0));
            break;
        case ')':  /* EMPTY_TUPLE */
            DS_PUSH(PyTuple_New(0));
            break;
        case 'N':
            DS_PUSH(Py_NewRef(Py_None));
            break;
        case 0x88:  /* NEWTRUE */
            DS_PUSH(Py_NewRef(Py_True));
            break;
        case 0x89:  /* NEWFALSE */
            DS_PUSH(Py_NewRef(Py_False));
            break;
        case '(':  /* MARK */
            if (ds_mark(&ds) < 0)
                goto unhandled;
            break;
        case 'X': {  /* BINUNICODE */
            Py_ssize_t size;
            DS_NEED(4);
            size = (Py_ssize_t)ds_le(p, 4);
            p += 4;
            DS_NEED(size);
            {
                PyObject *known = ds_known_key(p, size);
                DS_PUSH(known ? known :
                        PyUnicode_DecodeUTF8((const char *)p, size,
                                             "surrogatepass"));
            }
            p += size;
            break;
        }
        case 'K':  /* BININT1 */
            DS_NEED(1);
            DS_PUSH(PyLong_FromLong(p[0]));
            p += 1;
            break;
        case 'M':  /* BININT2 */
            DS_NEED(2);
            DS_PUSH(PyLong_FromLong((long)ds_le(p, 2)));
            p += 2;
            break;
        case 'J':  /* BININT: 4 bytes, signed */
            DS_NEED(4);
            DS_PUSH(PyLong_FromLong((long)(int32_t)(uint32_t)ds_le(p, 4)));
            p += 4;
            break;
        case 0x8a: {  /* LONG1 */
            int size;
            DS_NEED(1);
            size = p[0];
            p += 1;
            DS_NEED(size);
            if (size == 0)
                DS_PUSH(PyLong_FromLong(0));
            else
                DS_PUSH(_PyLong_FromByteArray(p, size, 1, 1));
            p += size;
            break;
        }
        case 'G':  /* BINFLOAT: 8 bytes, big-endian */
            DS_NEED(8);
            {
                double value = PyFloat_Unpack8((const char *)p, 0);
                if (value == -1.0 && PyErr_Occurred()) {
                    PyErr_Clear();
                    goto unhandled;
                }
                DS_PUSH(PyFloat_FromDouble(value));
            }
            p += 8;
            break;
        case 'q':  /* BINPUT */
            DS_NEED(1);
            if (ds_memo_put(&ds, p[0]) < 0)
                goto unhandled;
            p += 1;
            break;
        case 'r':  /* LONG_BINPUT */
            DS_NEED(4);
            /* Far beyond the pickle's length: the Python method's memo
               guard refuses it (durus/memo_guard.py, MEMO_SLACK). */
            if ((Py_ssize_t)ds_le(p, 4) > PyBytes_GET_SIZE(state) + 1024 ||
                    ds_memo_put(&ds, (Py_ssize_t)ds_le(p, 4)) < 0)
                goto unhandled;
            p += 4;
            break;
        case 'h': {  /* BINGET */
            PyObject *value;
            DS_NEED(1);
            value = ds_memo_get(&ds, p[0]);
            if (value == NULL)
                goto unhandled;
            DS_PUSH(value);
            p += 1;
            break;
        }
        case 'j': {  /* LONG_BINGET */
            PyObject *value;
            DS_NEED(4);
            value = ds_memo_get(&ds, (Py_ssize_t)ds_le(p, 4));
            if (value == NULL)
                goto unhandled;
            DS_PUSH(value);
            p += 4;
            break;
        }
        case 0x85: case 0x86: case 0x87: {  /* TUPLE1, TUPLE2, TUPLE3 */
            Py_ssize_t count = op - 0x84, i;
            PyObject *tuple;
            if (ds.depth < count ||
                    (ds.mark_count && ds.marks[ds.mark_count - 1] >
                     ds.depth - count))
                goto unhandled;
            tuple = PyTuple_New(count);
            if (tuple == NULL) {
                PyErr_Clear();
                goto unhandled;
            }
            for (i = 0; i < count; i++)
                PyTuple_SET_ITEM(tuple, i, ds.stack[ds.depth - count + i]);
            ds.depth -= count;
            DS_PUSH(tuple);
            break;
        }
        case 't': {  /* TUPLE */
            PyObject *tuple = ds_pop_to_mark(&ds);
            if (tuple == NULL)
                goto unhandled;
            DS_PUSH(tuple);
            break;
        }
        case 'a': {  /* APPEND */
            PyObject *list, *value;
            if (!ds_has_operands(&ds, 2))
                goto unhandled;
            list = ds.stack[ds.depth - 2];
            value = ds.stack[ds.depth - 1];
            if (!PyList_CheckExact(list) || PyList_Append(list, value) < 0) {
                PyErr_Clear();
                goto unhandled;
            }
            ds.depth--;
            Py_DECREF(value);
            break;
        }
        case 'e': {  /* APPENDS */
            Py_ssize_t start, i;
            PyObject *list;
            if (ds.mark_count == 0)
                goto unhandled;
            start = ds.marks[ds.mark_count - 1];
            if (start < 1)
                goto unhandled;
            list = ds.stack[start - 1];
            if (!PyList_CheckExact(list))
                goto unhandled;
            for (i = start; i < ds.depth; i++) {
                if (PyList_Append(list, ds.stack[i]) < 0) {
                    PyErr_Clear();
                    goto unhandled;
                }
            }
            for (i = start; i < ds.depth; i++)
                Py_DECREF(ds.stack[i]);
            ds.depth = start;
            ds.mark_count--;
            break;
        }
        case 's': {  /* SETITEM */
            if (!ds_has_operands(&ds, 3))
                goto unhandled;
            if (ds_setitem(&ds, ds.depth - 3, ds.stack[ds.depth - 2],
                           ds.stack[ds.depth - 1]) < 0)
                goto unhandled;
            Py_DECREF(ds.stack[ds.depth - 1]);
            Py_DECREF(ds.stack[ds.depth - 2]);
            ds.depth -= 2;
            break;
        }
        case 'u': {  /* SETITEMS */
            Py_ssize_t start, i;
            if (ds.mark_count == 0)
                goto unhandled;
            start = ds.marks[ds.mark_count - 1];
            if (start < 1 || (ds.depth - start) % 2)
                goto unhandled;
            for (i = start; i < ds.depth; i += 2) {
                if (ds_setitem(&ds, start - 1, ds.stack[i],
                               ds.stack[i + 1]) < 0)
                    goto unhandled;
            }
            for (i = start; i < ds.depth; i++)
                Py_DECREF(ds.stack[i]);
            ds.depth = start;
            ds.mark_count--;
            break;
        }
        case 'c': {  /* GLOBAL: module\nname\n */
            const unsigned char *module = p, *name, *stop;
            PyObject *found;
            stop = memchr(p, '\n', end - p);
            if (stop == NULL)
                goto unhandled;
            name = stop + 1;
            stop = memchr(name, '\n', end - name);
            if (stop == NULL)
                goto unhandled;
            found = ds_global(&ds, reader, (const char *)module,
                              name - 1 - module, (const char *)name,
                              stop - name);
            if (found == NULL) {
                if (PyErr_Occurred())
                    goto error;
                goto unhandled;
            }
            p = stop + 1;
            if (ds_push(&ds, found) < 0)
                goto unhandled;
            break;
        }
        case 'R': {  /* REDUCE: only the bytes of _codecs.encode */
            PyObject *func, *args, *value;
            if (!ds_has_operands(&ds, 2))
                goto unhandled;
            func = ds.stack[ds.depth - 2];
            args = ds.stack[ds.depth - 1];
            if (!PyCFunction_Check(func) ||
                    PyCFunction_GET_FUNCTION(func) !=
                    (PyCFunction)(void (*)(void))codecs_encode ||
                    !PyTuple_CheckExact(args) || PyTuple_GET_SIZE(args) != 2)
                goto unhandled;
            value = codecs_encode(NULL, &PyTuple_GET_ITEM(args, 0), 2);
            if (value == NULL) {
                PyErr_Clear();
                goto unhandled;
            }
            /* (the str: the tuple holds it; the tuple: the stack) */
            ds_memo_drop(&ds, PyTuple_GET_ITEM(args, 0), 1);
            ds_memo_drop(&ds, args, 1);
            Py_DECREF(args);
            Py_DECREF(func);
            ds.depth -= 2;
            DS_PUSH(value);
            break;
        }
        case 'Q': {  /* BINPERSID */
            PyObject *pid, *value;
            if (!ds_has_operands(&ds, 1))
                goto unhandled;
            pid = ds.stack[ds.depth - 1];
            value = ds_reference(&ds, reader, pid);
            if (value == NULL)
                goto error;
            ds.depth--;
            ds_memo_drop(&ds, pid, 1);  /* (the stack held it) */
            Py_DECREF(pid);
            if (ds_push(&ds, value) < 0)
                goto unhandled;
            break;
        }
        case '.':  /* STOP: the end of the bytes, one value, no mark */
            if (p != end || ds.depth != 1 || ds.mark_count)
                goto unhandled;
            *result = ds.stack[0];
            ds.depth = 0;
            outcome = 1;
            goto done;
        default:
            goto unhandled;
        }
    }
unhandled:
    outcome = 0;
    goto done;
error:
    outcome = -1;
done:
    ds_clear(&ds);
    return outcome;
}

#undef DS_NEED
#undef DS_PUSH

/* decode_state(reader, state, memo): ObjectReader._load_state_pickle,
   the Python method answering whatever the walk leaves to it. */
static PyObject *
decode_state(PyObject *reader, PyObject *state, PyObject *memo)
{
    PyObject *result = NULL;
    int outcome;
    if (!PyBytes_CheckExact(state) ||
            (PyObject *)Py_TYPE(reader) != reader_type)
        return PyObject_CallFunctionObjArgs(py_load_state_pickle, reader,
                                            state, memo, NULL);
    {
        /* Slot 0 of the class memo, when that memo is {0: class}. */
        PyObject *copy = PyDict_Check(memo) ? Py_NewRef(memo) :
            PyObject_CallMethod(memo, "copy", NULL);
        PyObject *record_class = NULL;
        if (copy == NULL)
            PyErr_Clear();
        else if (PyDict_Check(copy) && PyDict_GET_SIZE(copy) == 1) {
            PyObject *zero = PyLong_FromLong(0);
            record_class = zero ? PyDict_GetItemWithError(copy, zero) : NULL;
            Py_XDECREF(zero);
            PyErr_Clear();
        }
        outcome = decode_walk(reader, state, record_class, &result);
        Py_XDECREF(copy);
    }
    if (outcome > 0)
        return result;
    if (outcome < 0)
        return NULL;
    return PyObject_CallFunctionObjArgs(py_load_state_pickle, reader, state,
                                        memo, NULL);
}

static PyObject *
decode_state_c(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decode_state(reader, state, memo)");
        return NULL;
    }
    if (reader_type == NULL || py_load_state_pickle == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "durus._speedups not configured");
        return NULL;
    }
    return decode_state(args[0], args[1], args[2]);
}
