/* Optional compiled versions of the per-load steps of durus.

   Everything here has a pure-Python twin (durus.persistent, durus.connection,
   durus.serialize) that stays the reference and runs whenever this module is
   missing or DURUS_NO_SPEEDUPS is set; the tests run both.  Each function
   handles the common case itself and hands anything unusual (an unset slot,
   a class without variants yet, a connection of another kind) to its Python
   twin, so the two cannot drift apart on rare paths.

   What it covers: the attribute hook of ghosts and not-yet-accessed objects
   (note_read and refresh_hooks), Persistent.__setstate__, and the creation of
   ghosts for references met while unpickling (get_instance and the
   unpickler's persistent_load). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* Set once by configure(), from durus.persistent and durus.connection. */
static PyObject *variants;          /* durus.persistent._variants */
static PyObject *exempt;            /* durus.persistent._EXEMPT */
static PyObject *standard_load_state;
static PyObject *base_new;          /* PersistentBase.__dict__['__new__'] */
static PyObject *class_setter;      /* object.__dict__['__class__'] */
static PyObject *py_note_read;      /* the Python twins, for the rare paths */
static PyObject *py_refresh_hooks;
static PyObject *py_setstate;
static PyObject *oid_ref_type;      /* durus.connection._OidRef */
static PyObject *py_hook_variants;
static PyObject *empty_tuple, *saved_value, *ghost_value, *zero_value,
    *one_value;
static Py_ssize_t off_status, off_serial, off_connection, off_oid;
static int configured;
static PyObject *persistent_base_holder;  /* (PersistentBase,) */

static PyObject *s_load_state, *s_p_load_state, *s_note_access,
    *s_transaction_serial, *s_unhooked, *s_key, *s_dict, *s_new, *s_append,
    *s_mapping, *s_callback, *s_latin1, *s_cache, *s_objects,
    *s_placeholder_origins, *s_connection, *s_load_persistent_id;

static PyObject *s_index, *s_dense, *s_overflow, *s_unindexed, *s_map,
    *s_count, *s_word_size, *s_words_start, *s_start, *s_file, *s_mm,
    *s_mapped, *s_py_load_number;

#define GHOST (-1)
#define SAVED 0

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* The slot's value (borrowed), or NULL when unset: the caller then takes
   the Python path, which raises the same AttributeError as before. */
static inline PyObject *
slot(PyObject *obj, Py_ssize_t off)
{
    return SLOT(obj, off);
}

static inline void
set_slot(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(value);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

/* -1, 0 or 1 as a C long; anything else (an odd status) gives 2. */
static inline long
status_of(PyObject *status)
{
    if (PyLong_CheckExact(status)) {
        int overflow;
        long value = PyLong_AsLongAndOverflow(status, &overflow);
        if (!overflow && value >= -1 && value <= 1)
            return value;
    }
    return 2;
}

static int
is_persistent_instance(PyObject *obj)
{
    /* The slot offsets are valid for instances of PersistentBase's
       subclasses only; variants is keyed by exactly those classes. */
    return configured && PyDict_GetItemWithError(variants,
                                                 (PyObject *)Py_TYPE(obj))
                         != NULL;
}

static int
set_type(PyObject *obj, PyObject *cls)
{
    return Py_TYPE(class_setter)->tp_descr_set(class_setter, obj, cls);
}

/* connection._unhooked, or NULL with no error when absent; -1 on error. */
static int
get_unhooked(PyObject *connection, PyObject **result)
{
    PyObject *value = PyObject_GetAttr(connection, s_unhooked);
    if (value == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        *result = NULL;
        return 0;
    }
    *result = value;
    return 0;
}

/* refresh_hooks(obj) of durus.persistent.  Returns 0, or -1 with an error. */
static int
refresh(PyObject *obj)
{
    PyObject *cls = (PyObject *)Py_TYPE(obj);
    PyObject *triple = PyDict_GetItemWithError(variants, cls);
    PyObject *status = slot(obj, off_status);
    PyObject *connection = slot(obj, off_connection);
    PyObject *wanted = NULL, *unhooked = NULL, *serial = NULL,
        *current = NULL;
    long state;
    int result = -1;

    if (triple == NULL || !PyList_CheckExact(triple) ||
            PyList_GET_SIZE(triple) != 4 || status == NULL ||
            connection == NULL || slot(obj, off_serial) == NULL) {
        PyObject *r;
        if (PyErr_Occurred())
            return -1;
        r = PyObject_CallOneArg(py_refresh_hooks, obj);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    /* Python code may run below (attribute reads of the connection). */
    Py_INCREF(triple);
    Py_INCREF(connection);
    state = status_of(status);
    if (state == GHOST)
        wanted = Py_NewRef(PyList_GET_ITEM(triple, 1));
    else if (connection == Py_None)
        wanted = Py_NewRef(PyList_GET_ITEM(triple, 0));
    else {
        int same = 0;
        if (get_unhooked(connection, &unhooked) < 0)
            goto done;
        if (unhooked != NULL && unhooked != Py_None) {
            serial = Py_NewRef(slot(obj, off_serial));
            current = PyObject_GetAttr(connection, s_transaction_serial);
            if (current == NULL)
                goto done;
            same = PyObject_RichCompareBool(serial, current, Py_EQ);
            if (same < 0)
                goto done;
        }
        if (!same)
            wanted = Py_NewRef(PyList_GET_ITEM(triple, 1));
        else {
            if (state == SAVED) {
                /* The saved variant is made on first need (by Python). */
                wanted = PyList_GET_ITEM(triple, 2);
                if (wanted == Py_None)
                    wanted = PyObject_CallNoArgs(PyList_GET_ITEM(triple, 3));
                else
                    Py_INCREF(wanted);
                if (wanted == NULL)
                    goto done;
            }
            else
                wanted = Py_NewRef(PyList_GET_ITEM(triple, 0));
            if (wanted != cls) {
                /* Listed to be hooked again when the transaction ends. */
                if (PyList_CheckExact(unhooked)) {
                    if (PyList_Append(unhooked, obj) < 0)
                        goto done;
                }
                else {
                    PyObject *r = PyObject_CallMethodOneArg(unhooked,
                                                            s_append, obj);
                    if (r == NULL)
                        goto done;
                    Py_DECREF(r);
                }
            }
        }
    }
    if (wanted != cls && set_type(obj, wanted) < 0)
        goto done;
    result = 0;
done:
    Py_XDECREF(wanted);
    Py_XDECREF(unhooked);
    Py_XDECREF(serial);
    Py_XDECREF(current);
    Py_DECREF(connection);
    Py_DECREF(triple);
    return result;
}

/* _note_read(obj) of durus.persistent. */
static int
note_read(PyObject *obj)
{
    PyObject *connection = slot(obj, off_connection);
    PyObject *status = slot(obj, off_status);
    PyObject *serial, *current;
    int same;

    if (connection == NULL || status == NULL) {
        PyObject *r = PyObject_CallOneArg(py_note_read, obj);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    Py_INCREF(connection);
    if (status_of(status) == GHOST) {
        PyObject *method = _PyType_Lookup(Py_TYPE(obj), s_p_load_state);
        if (connection != Py_None && method == standard_load_state) {
            PyObject *r = PyObject_CallMethodOneArg(connection, s_load_state,
                                                    obj);
            if (r == NULL) {
                Py_DECREF(connection);
                return -1;
            }
            Py_DECREF(r);
            set_slot(obj, off_status, saved_value);
        }
        else {
            PyObject *bound = PyObject_GenericGetAttr(obj, s_p_load_state);
            PyObject *r;
            if (bound == NULL) {
                Py_DECREF(connection);
                return -1;
            }
            r = PyObject_CallNoArgs(bound);
            Py_DECREF(bound);
            if (r == NULL) {
                Py_DECREF(connection);
                return -1;
            }
            Py_DECREF(r);
            Py_DECREF(connection);
            connection = slot(obj, off_connection);
            if (connection == NULL) {
                PyErr_SetString(PyExc_AttributeError, "_p_connection");
                return -1;
            }
            Py_INCREF(connection);
        }
    }
    if (connection != Py_None) {
        serial = slot(obj, off_serial);
        if (serial == NULL) {
            Py_DECREF(connection);
            PyErr_SetString(PyExc_AttributeError, "_p_serial");
            return -1;
        }
        Py_INCREF(serial);
        current = PyObject_GetAttr(connection, s_transaction_serial);
        if (current == NULL) {
            Py_DECREF(serial);
            Py_DECREF(connection);
            return -1;
        }
        same = PyObject_RichCompareBool(serial, current, Py_EQ);
        Py_DECREF(serial);
        Py_DECREF(current);
        if (same < 0) {
            Py_DECREF(connection);
            return -1;
        }
        if (!same) {
            PyObject *r = PyObject_CallMethodOneArg(connection, s_note_access,
                                                    obj);
            if (r == NULL) {
                Py_DECREF(connection);
                return -1;
            }
            Py_DECREF(r);
        }
    }
    Py_DECREF(connection);
    return refresh(obj);
}

static int
is_exempt(PyObject *name)
{
    /* name[:3] == '_p_' or name in _EXEMPT */
    if (PyUnicode_GET_LENGTH(name) >= 3 &&
            PyUnicode_READ_CHAR(name, 0) == '_' &&
            PyUnicode_READ_CHAR(name, 1) == 'p' &&
            PyUnicode_READ_CHAR(name, 2) == '_')
        return 1;
    return PySet_Contains(exempt, name);
}

/* The __getattribute__ of watched variants whose class reads attributes
   the standard way (object.__getattribute__). */
static PyObject *
watched_getattribute(PyObject *self, PyObject *name)
{
    if (PyUnicode_Check(name)) {
        int skip = is_exempt(name);
        if (skip < 0)
            return NULL;
        if (!skip && note_read(self) < 0)
            return NULL;
    }
    return PyObject_GenericGetAttr(self, name);
}

static PyMethodDef watched_getattribute_def = {
    "__getattribute__", (PyCFunction)watched_getattribute, METH_O,
    "Load a ghost and note the access before reading the attribute."
};

/* Persistent.__setstate__: a new __dict__ with interned keys.  Only a
   plain dict with str keys (what unpickling gives) is handled here: no
   Python code can run while it is copied.  Anything else goes to Python. */
static PyObject *
persistent_setstate(PyObject *self, PyObject *state)
{
    PyObject *attributes, *key, *value;
    Py_ssize_t pos = 0;
    int failed;

    if (!PyDict_CheckExact(state))
        return PyObject_CallFunctionObjArgs(py_setstate, self, state, NULL);
    while (PyDict_Next(state, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key))
            return PyObject_CallFunctionObjArgs(py_setstate, self, state,
                                                NULL);
    }
    attributes = PyDict_New();
    if (attributes == NULL)
        return NULL;
    pos = 0;
    while (PyDict_Next(state, &pos, &key, &value)) {
        Py_INCREF(key);
        PyUnicode_InternInPlace(&key);
        failed = PyDict_SetItem(attributes, key, value);
        Py_DECREF(key);
        if (failed < 0) {
            Py_DECREF(attributes);
            return NULL;
        }
    }
    failed = PyObject_GenericSetAttr(self, s_dict, attributes);
    Py_DECREF(attributes);
    if (failed < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef persistent_setstate_def = {
    "__setstate__", (PyCFunction)persistent_setstate, METH_O,
    "Take the unpickled state as the instance __dict__ (keys interned)."
};

/* Cache.get_instance: the cached object of oid if of class cls, else a new
   ghost filed in objects (an ObjectDictionary). */
static PyObject *
get_instance_impl(PyObject *objects, PyObject *oid, PyObject *cls,
                  PyObject *connection, PyObject *watched)
{
    PyObject *mapping, *ref, *obj, *callback, *new_ref;
    int failed;

    mapping = PyObject_GetAttr(objects, s_mapping);
    if (mapping == NULL)
        return NULL;
    if (!PyDict_CheckExact(mapping)) {
        Py_DECREF(mapping);
        PyErr_SetString(PyExc_TypeError, "cache mapping is not a dict");
        return NULL;
    }
    ref = PyDict_GetItemWithError(mapping, oid);
    if (ref == NULL && PyErr_Occurred()) {
        Py_DECREF(mapping);
        return NULL;
    }
    if (ref != NULL) {
        if (!PyWeakref_Check(ref)) {
            Py_DECREF(mapping);
            PyErr_SetString(PyExc_TypeError, "cache entry is not a weakref");
            return NULL;
        }
        obj = PyWeakref_GetObject(ref);
        if (obj == NULL) {
            Py_DECREF(mapping);
            return NULL;
        }
        if (obj != Py_None) {
            if ((PyObject *)Py_TYPE(obj) == cls) {
                Py_DECREF(mapping);
                return Py_NewRef(obj);
            }
            else {
                PyObject *real;
                Py_INCREF(obj);
                real = PyObject_GetAttrString(obj, "__class__");
                if (real == NULL) {
                    Py_DECREF(obj);
                    Py_DECREF(mapping);
                    return NULL;
                }
                Py_DECREF(real);
                if (real == cls) {
                    Py_DECREF(mapping);
                    return obj;
                }
                Py_DECREF(obj);
            }
        }
    }
    if (_PyType_Lookup((PyTypeObject *)cls, s_new) == base_new) {
        obj = PyBaseObject_Type.tp_new((PyTypeObject *)watched, empty_tuple,
                                       NULL);
        if (obj == NULL) {
            Py_DECREF(mapping);
            return NULL;
        }
        set_slot(obj, off_serial, zero_value);
    }
    else {
        PyObject *new = PyObject_GetAttr(cls, s_new);
        if (new == NULL) {
            Py_DECREF(mapping);
            return NULL;
        }
        obj = PyObject_CallOneArg(new, cls);
        Py_DECREF(new);
        if (obj == NULL) {
            Py_DECREF(mapping);
            return NULL;
        }
        if (set_type(obj, watched) < 0) {
            Py_DECREF(obj);
            Py_DECREF(mapping);
            return NULL;
        }
    }
    set_slot(obj, off_oid, oid);
    set_slot(obj, off_connection, connection);
    set_slot(obj, off_status, ghost_value);
    callback = PyObject_GetAttr(objects, s_callback);
    if (callback == NULL) {
        Py_DECREF(obj);
        Py_DECREF(mapping);
        return NULL;
    }
    new_ref = PyObject_CallFunctionObjArgs(oid_ref_type, obj, callback, NULL);
    Py_DECREF(callback);
    if (new_ref == NULL || PyObject_SetAttr(new_ref, s_key, oid) < 0) {
        Py_XDECREF(new_ref);
        Py_DECREF(obj);
        Py_DECREF(mapping);
        return NULL;
    }
    failed = PyDict_SetItem(mapping, oid, new_ref);
    Py_DECREF(new_ref);
    Py_DECREF(mapping);
    if (failed < 0) {
        Py_DECREF(obj);
        return NULL;
    }
    return obj;
}

static PyObject *
get_instance(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *objects, *oid, *cls, *connection, *triple;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "get_instance(objects, oid, cls, connection)");
        return NULL;
    }
    objects = args[0];
    oid = args[1];
    cls = args[2];
    connection = args[3];
    if (!PyType_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "%R is not a class", cls);
        return NULL;
    }
    if (!configured || oid_ref_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "durus._speedups not configured");
        return NULL;
    }
    triple = PyDict_GetItemWithError(variants, cls);
    if (triple == NULL) {
        PyObject *made;
        if (PyErr_Occurred())
            return NULL;
        /* Make the variants (or fail the way Python does) first. */
        made = PyObject_CallOneArg(py_hook_variants, cls);
        if (made == NULL)
            return NULL;
        Py_DECREF(made);
        triple = PyDict_GetItemWithError(variants, cls);
        if (triple == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "no hook variants for %R", cls);
            return NULL;
        }
    }
    if (!PyList_CheckExact(triple) || PyList_GET_SIZE(triple) != 4) {
        PyErr_SetString(PyExc_TypeError, "damaged hook variants entry");
        return NULL;
    }
    {
        PyObject *watched = Py_NewRef(PyList_GET_ITEM(triple, 1));
        PyObject *result = get_instance_impl(objects, oid, cls, connection,
                                             watched);
        Py_DECREF(watched);
        return result;
    }
}

/* The unpickler's persistent_load for one reader: (oid, cls) -> object. */
typedef struct {
    PyObject_HEAD
    PyObject *reader;
    vectorcallfunc vectorcall;
} LoaderObject;

static PyObject *
loader_call_one(LoaderObject *self, PyObject *pid)
{
    PyObject *oid, *cls, *origins, *connection, *cache, *objects, *result;
    PyObject *args[4];

    if (!PyTuple_CheckExact(pid) || PyTuple_GET_SIZE(pid) != 2)
        goto python;
    oid = PyTuple_GET_ITEM(pid, 0);
    cls = PyTuple_GET_ITEM(pid, 1);
    if (!PyBytes_CheckExact(oid) || !PyType_Check(cls))
        goto python;
    origins = PyObject_GetAttr(self->reader, s_placeholder_origins);
    if (origins == NULL)
        return NULL;
    if (!PyDict_CheckExact(origins) || PyDict_GET_SIZE(origins)) {
        Py_DECREF(origins);
        goto python;
    }
    Py_DECREF(origins);
    connection = PyObject_GetAttr(self->reader, s_connection);
    if (connection == NULL)
        return NULL;
    cache = PyObject_GetAttr(connection, s_cache);
    if (cache == NULL) {
        Py_DECREF(connection);
        return NULL;
    }
    objects = PyObject_GetAttr(cache, s_objects);
    Py_DECREF(cache);
    if (objects == NULL) {
        Py_DECREF(connection);
        return NULL;
    }
    args[0] = objects;
    args[1] = oid;
    args[2] = cls;
    args[3] = connection;
    result = get_instance(NULL, args, 4);
    Py_DECREF(objects);
    Py_DECREF(connection);
    return result;
python:
    return PyObject_CallMethodOneArg(self->reader, s_load_persistent_id, pid);
}

static PyObject *
loader_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 ||
            (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "persistent_load(pid)");
        return NULL;
    }
    return loader_call_one((LoaderObject *)self, args[0]);
}

static PyObject *
loader_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *reader;
    LoaderObject *self;
    if (!PyArg_ParseTuple(args, "O:PersistentLoader", &reader))
        return NULL;
    self = (LoaderObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->reader = Py_NewRef(reader);
    self->vectorcall = loader_vectorcall;
    return (PyObject *)self;
}

static int
loader_traverse(LoaderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->reader);
    return 0;
}

static int
loader_clear(LoaderObject *self)
{
    Py_CLEAR(self->reader);
    return 0;
}

static void
loader_dealloc(LoaderObject *self)
{
    PyObject_GC_UnTrack(self);
    loader_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef loader_members[] = {
    {"reader", T_OBJECT, offsetof(LoaderObject, reader), READONLY,
     "the ObjectReader whose connection gets the ghosts"},
    {NULL}
};

static PyTypeObject LoaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "durus._speedups.PersistentLoader",
    .tp_basicsize = sizeof(LoaderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
                Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "persistent_load for an ObjectReader: (oid, class) -> object",
    .tp_new = loader_new,
    .tp_dealloc = (destructor)loader_dealloc,
    .tp_traverse = (traverseproc)loader_traverse,
    .tp_clear = (inquiry)loader_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(LoaderObject, vectorcall),
    .tp_members = loader_members,
};

/* Feed: durus.serialize._Feed in C (the file the shared unpickler reads).
   The unpickler calls peek() once per pickle and read() at the end;
   compiled, those calls make no Python frames. */
typedef struct {
    PyObject_HEAD
    PyObject *data;     /* bytes */
    Py_ssize_t pos;
} FeedObject;

static PyObject *
feed_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    FeedObject *self;
    if (PyTuple_GET_SIZE(args) ||
            (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Feed() takes no arguments");
        return NULL;
    }
    self = (FeedObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->data = PyBytes_FromStringAndSize(NULL, 0);
    if (self->data == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->pos = 0;
    return (PyObject *)self;
}

static void
feed_dealloc(FeedObject *self)
{
    Py_XDECREF(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
feed_get_data(FeedObject *self, void *closure)
{
    return Py_NewRef(self->data);
}

static int
feed_set_data(FeedObject *self, PyObject *value, void *closure)
{
    PyObject *data;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete data");
        return -1;
    }
    data = PyBytes_CheckExact(value) ? Py_NewRef(value)
                                     : PyBytes_FromObject(value);
    if (data == NULL)
        return -1;
    Py_SETREF(self->data, data);
    return 0;
}

/* data[start:end] without a copy when it is all of it. */
static PyObject *
feed_slice(FeedObject *self, Py_ssize_t start, Py_ssize_t end)
{
    Py_ssize_t size = PyBytes_GET_SIZE(self->data);
    if (start < 0)
        start = 0;
    if (end > size)
        end = size;
    if (start == 0 && end == size)
        return Py_NewRef(self->data);
    if (end < start)
        end = start;
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self->data) + start,
                                     end - start);
}

static PyObject *
feed_read_n(FeedObject *self, Py_ssize_t n)
{
    Py_ssize_t size = PyBytes_GET_SIZE(self->data);
    Py_ssize_t start = self->pos;
    Py_ssize_t end = (n < 0 || n > PY_SSIZE_T_MAX - start) ? size : start + n;
    self->pos = end < size ? end : size;
    return feed_slice(self, start, end);
}

/* An optional size argument: None or missing -> -1. */
static int
size_arg(PyObject *const *args, Py_ssize_t nargs, const char *name,
         Py_ssize_t *n)
{
    *n = -1;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument", name);
        return -1;
    }
    if (nargs == 1 && args[0] != Py_None) {
        *n = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
        if (*n == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *
feed_read(FeedObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n;
    if (size_arg(args, nargs, "read", &n) < 0)
        return NULL;
    return feed_read_n(self, n);
}

static PyObject *
feed_peek(FeedObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n;
    if (size_arg(args, nargs, "peek", &n) < 0)
        return NULL;
    return feed_slice(self, self->pos, PY_SSIZE_T_MAX);
}

static PyObject *
feed_readinto(FeedObject *self, PyObject *buffer)
{
    Py_buffer view;
    Py_ssize_t size = PyBytes_GET_SIZE(self->data), count;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE) < 0)
        return NULL;
    count = size - self->pos;
    if (count > view.len)
        count = view.len;
    if (count < 0)
        count = 0;
    memcpy(view.buf, PyBytes_AS_STRING(self->data) + self->pos, count);
    self->pos += count;
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(count);
}

static PyObject *
feed_readline(FeedObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n, size = PyBytes_GET_SIZE(self->data), start = self->pos;
    const char *base = PyBytes_AS_STRING(self->data);
    const char *newline;
    if (size_arg(args, nargs, "readline", &n) < 0)
        return NULL;
    if (start >= size)
        return feed_read_n(self, -1);
    newline = memchr(base + start, '\n', size - start);
    return feed_read_n(self, newline == NULL ? -1 : newline - base + 1 - start);
}

static PyMethodDef feed_methods[] = {
    {"read", (PyCFunction)(void (*)(void))feed_read, METH_FASTCALL, NULL},
    {"peek", (PyCFunction)(void (*)(void))feed_peek, METH_FASTCALL, NULL},
    {"readinto", (PyCFunction)feed_readinto, METH_O, NULL},
    {"readline", (PyCFunction)(void (*)(void))feed_readline, METH_FASTCALL,
     NULL},
    {NULL}
};

static PyMemberDef feed_members[] = {
    {"pos", T_PYSSIZET, offsetof(FeedObject, pos), 0, "read position"},
    {NULL}
};

static PyGetSetDef feed_getset[] = {
    {"data", (getter)feed_get_data, (setter)feed_set_data, "the pickle", NULL},
    {NULL}
};

static PyTypeObject FeedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "durus._speedups.Feed",
    .tp_basicsize = sizeof(FeedObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A file over one pickle at a time (durus.serialize._Feed).",
    .tp_new = feed_new,
    .tp_dealloc = (destructor)feed_dealloc,
    .tp_methods = feed_methods,
    .tp_members = feed_members,
    .tp_getset = feed_getset,
};

/* PersistentIdWriter(func, base, connection, refs, new_objects,
   objects_found): the pickler's persistent_id while writing records, the
   twin of the closure made by ObjectWriter._make_persistent_id (func).
   The pickler asks about every object it writes (about ten per
   reference): plain values get None without a Python call; a persistent
   object of this connection, or a new one, gets (oid, class) here; the
   cases that raise go to func. */
typedef struct {
    PyObject_HEAD
    PyObject *func, *base, *connection, *refs, *new_objects, *objects_found;
    vectorcallfunc vectorcall;
} WriterObject;

static PyObject *s_new_oid, *s_bind_new_object;

static PyObject *
writer_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    WriterObject *writer = (WriterObject *)self;
    PyObject *obj, *oid, *owner, *cls, *triple, *result;
    int is_persistent;

    if (PyVectorcall_NARGS(nargsf) != 1 ||
            (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "persistent_id(obj)");
        return NULL;
    }
    obj = args[0];
    is_persistent = PyObject_IsInstance(obj, writer->base);
    if (is_persistent < 0)
        return NULL;
    if (!is_persistent)
        Py_RETURN_NONE;
    if (!configured || !PyObject_TypeCheck(obj, (PyTypeObject *)writer->base)
            || !PyList_CheckExact(writer->refs) ||
            !PyList_CheckExact(writer->new_objects) ||
            !PyList_CheckExact(writer->objects_found))
        return PyObject_CallOneArg(writer->func, obj);
    oid = slot(obj, off_oid);
    owner = slot(obj, off_connection);
    if (oid == NULL || owner == NULL)
        return PyObject_CallOneArg(writer->func, obj);
    if (oid == Py_None) {
        PyObject *bound;
        if (owner != Py_None)
            return PyObject_CallOneArg(writer->func, obj);  /* raises */
        oid = PyObject_CallMethodNoArgs(writer->connection, s_new_oid);
        if (oid == NULL)
            return NULL;
        bound = PyObject_CallMethodObjArgs(writer->connection,
                                           s_bind_new_object, obj, oid, NULL);
        if (bound == NULL) {
            Py_DECREF(oid);
            return NULL;
        }
        Py_DECREF(bound);
        if (PyList_Append(writer->new_objects, obj) < 0 ||
                PyList_Append(writer->objects_found, obj) < 0) {
            Py_DECREF(oid);
            return NULL;
        }
    }
    else if (owner != writer->connection)
        return PyObject_CallOneArg(writer->func, obj);  /* raises */
    else
        Py_INCREF(oid);
    if (PyList_Append(writer->refs, oid) < 0) {
        Py_DECREF(oid);
        return NULL;
    }
    cls = (PyObject *)Py_TYPE(obj);
    triple = PyDict_GetItemWithError(variants, cls);
    if (triple != NULL && PyList_CheckExact(triple) &&
            PyList_GET_SIZE(triple) == 4)
        cls = PyList_GET_ITEM(triple, 0);
    else if (PyErr_Occurred()) {
        Py_DECREF(oid);
        return NULL;
    }
    result = PyTuple_Pack(2, oid, cls);
    Py_DECREF(oid);
    return result;
}

static PyObject *
writer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *func, *base, *connection, *refs, *new_objects, *objects_found;
    WriterObject *self;
    if (!PyArg_ParseTuple(args, "OO!OOOO:PersistentIdWriter", &func,
                          &PyType_Type, &base, &connection, &refs,
                          &new_objects, &objects_found))
        return NULL;
    self = (WriterObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->func = Py_NewRef(func);
    self->base = Py_NewRef(base);
    self->connection = Py_NewRef(connection);
    self->refs = Py_NewRef(refs);
    self->new_objects = Py_NewRef(new_objects);
    self->objects_found = Py_NewRef(objects_found);
    self->vectorcall = writer_vectorcall;
    return (PyObject *)self;
}

static int
writer_traverse(WriterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->func);
    Py_VISIT(self->base);
    Py_VISIT(self->connection);
    Py_VISIT(self->refs);
    Py_VISIT(self->new_objects);
    Py_VISIT(self->objects_found);
    return 0;
}

static int
writer_clear(WriterObject *self)
{
    Py_CLEAR(self->func);
    Py_CLEAR(self->base);
    Py_CLEAR(self->connection);
    Py_CLEAR(self->refs);
    Py_CLEAR(self->new_objects);
    Py_CLEAR(self->objects_found);
    return 0;
}

static void
writer_dealloc(WriterObject *self)
{
    PyObject_GC_UnTrack(self);
    writer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "durus._speedups.PersistentIdWriter",
    .tp_basicsize = sizeof(WriterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
                Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "persistent_id for an ObjectWriter (see durus.serialize)",
    .tp_new = writer_new,
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_traverse = (traverseproc)writer_traverse,
    .tp_clear = (inquiry)writer_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(WriterObject, vectorcall),
};

/* Connection._bind_new_object(obj, oid): give a new object its oid and
   this connection during a commit (see the Python method). */
static PyObject *s_class, *s_recent_objects, *s_unhooked_name;

static PyObject *
bind_new_object(PyObject *connection, PyObject *const *args,
                Py_ssize_t nargs)
{
    PyObject *obj, *oid, *real, *serial, *attributes, *cache = NULL,
        *objects = NULL, *mapping = NULL, *callback = NULL, *ref = NULL,
        *recent = NULL, *recent_map = NULL, *key = NULL, *unhooked = NULL;
    PyObject *result = NULL;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_bind_new_object(obj, oid)");
        return NULL;
    }
    obj = args[0];
    oid = args[1];
    if (!configured || oid_ref_type == NULL ||
            !PyObject_TypeCheck(obj, (PyTypeObject *)PyTuple_GET_ITEM(
                persistent_base_holder, 0)))
        return PyObject_CallMethod(connection, "_py_bind_new_object", "OO",
                                   obj, oid);
    /* hook_variants(obj.__class__): fail here, before anything is stored */
    real = PyObject_GetAttr(obj, s_class);
    if (real == NULL)
        return NULL;
    if (PyDict_GetItemWithError(variants, real) == NULL) {
        PyObject *made;
        if (PyErr_Occurred()) {
            Py_DECREF(real);
            return NULL;
        }
        made = PyObject_CallOneArg(py_hook_variants, real);
        if (made == NULL) {
            Py_DECREF(real);
            return NULL;
        }
        Py_DECREF(made);
    }
    Py_DECREF(real);
    serial = PyObject_GetAttr(connection, s_transaction_serial);
    if (serial == NULL)
        return NULL;
    set_slot(obj, off_oid, oid);
    set_slot(obj, off_connection, connection);
    set_slot(obj, off_serial, serial);
    Py_DECREF(serial);
    /* A plain dict: a compact instance dict reads slowly once the object
       changes type (see the Python method). */
    attributes = PyObject_GenericGetAttr(obj, s_dict);
    if (attributes == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
    }
    else {
        PyObject *copy = PyDict_New();
        int failed = copy == NULL || PyDict_Update(copy, attributes) < 0 ||
                     PyObject_GenericSetAttr(obj, s_dict, copy) < 0;
        Py_XDECREF(copy);
        Py_DECREF(attributes);
        if (failed)
            return NULL;
    }
    if ((cache = PyObject_GetAttr(connection, s_cache)) == NULL ||
            (objects = PyObject_GetAttr(cache, s_objects)) == NULL ||
            (mapping = PyObject_GetAttr(objects, s_mapping)) == NULL ||
            (callback = PyObject_GetAttr(objects, s_callback)) == NULL)
        goto done;
    ref = PyObject_CallFunctionObjArgs(oid_ref_type, obj, callback, NULL);
    if (ref == NULL || PyObject_SetAttr(ref, s_key, oid) < 0 ||
            PyObject_SetItem(mapping, oid, ref) < 0)
        goto done;
    if ((recent = PyObject_GetAttr(cache, s_recent_objects)) == NULL ||
            (recent_map = PyObject_GetAttr(recent, s_map)) == NULL ||
            (key = PyLong_FromVoidPtr(obj)) == NULL ||
            PyObject_SetItem(recent_map, key, obj) < 0)
        goto done;
    if ((unhooked = PyObject_GetAttr(connection, s_unhooked_name)) == NULL)
        goto done;
    if (PyList_CheckExact(unhooked)) {
        if (PyList_Append(unhooked, obj) < 0)
            goto done;
    }
    else {
        PyObject *r = PyObject_CallMethodOneArg(unhooked, s_append, obj);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(cache);
    Py_XDECREF(objects);
    Py_XDECREF(mapping);
    Py_XDECREF(callback);
    Py_XDECREF(ref);
    Py_XDECREF(recent);
    Py_XDECREF(recent_map);
    Py_XDECREF(key);
    Py_XDECREF(unhooked);
    return result;
}

static PyMethodDef bind_new_object_def = {
    "_bind_new_object", (PyCFunction)(void (*)(void))bind_new_object,
    METH_FASTCALL, "Give a new object its oid and this connection."
};

/* PersistentBase.__new__: the four slots set, no Python frame. */
static PyObject *
persistent_new(PyObject *module, PyObject *args, PyObject *kwargs)
{
    PyObject *cls, *obj;
    if (PyTuple_GET_SIZE(args) < 1 || !PyType_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_SetString(PyExc_TypeError,
                        "PersistentBase.__new__(cls): cls must be a class");
        return NULL;
    }
    cls = PyTuple_GET_ITEM(args, 0);
    if (!configured || !PyType_IsSubtype((PyTypeObject *)cls,
            (PyTypeObject *)PyTuple_GET_ITEM(persistent_base_holder, 0))) {
        PyErr_Format(PyExc_TypeError, "%R is not a persistent class", cls);
        return NULL;
    }
    obj = PyBaseObject_Type.tp_new((PyTypeObject *)cls, empty_tuple, NULL);
    if (obj == NULL)
        return NULL;
    set_slot(obj, off_status, one_value);  /* UNSAVED */
    set_slot(obj, off_serial, zero_value);
    set_slot(obj, off_connection, Py_None);
    set_slot(obj, off_oid, Py_None);
    return obj;
}

/* _codecs.encode as protocol-2 pickles of bytes call it. */
static PyObject *
codecs_encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 2 && PyUnicode_CheckExact(args[0]) &&
            PyUnicode_CheckExact(args[1]) &&
            PyUnicode_Compare(args[1], s_latin1) == 0)
        return PyUnicode_AsLatin1String(args[0]);
    {
        PyObject *codecs = PyImport_ImportModule("_codecs");
        PyObject *encode, *result;
        if (codecs == NULL)
            return NULL;
        encode = PyObject_GetAttrString(codecs, "encode");
        Py_DECREF(codecs);
        if (encode == NULL)
            return NULL;
        result = PyObject_Vectorcall(encode, args, nargs, NULL);
        Py_DECREF(encode);
        return result;
    }
}

static Py_ssize_t
member_offset(PyObject *cls, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(cls, name);
    Py_ssize_t offset = -1;
    if (descr == NULL)
        return -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX)
            offset = member->offset;
    }
    Py_DECREF(descr);
    if (offset < 0)
        PyErr_Format(PyExc_TypeError, "%s is not an object slot", name);
    return offset;
}

/* configure(PersistentBase, _variants, _EXEMPT, standard_load_state,
              _note_read, refresh_hooks, hook_variants, setstate)
   -> (watched __getattribute__, Persistent.__setstate__) descriptors. */
static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *base, *new_variants, *new_exempt, *load_state, *note, *refresh_,
        *hooks, *setstate, *getattribute_descr, *setstate_descr;
    PyObject *dict;

    if (!PyArg_ParseTuple(args, "O!O!O!OOOOO:configure", &PyType_Type,
                          &base, &PyDict_Type, &new_variants,
                          &PyFrozenSet_Type, &new_exempt, &load_state, &note,
                          &refresh_, &hooks, &setstate))
        return NULL;
    off_status = member_offset(base, "_p_status");
    off_serial = member_offset(base, "_p_serial");
    off_connection = member_offset(base, "_p_connection");
    off_oid = member_offset(base, "_p_oid");
    if (off_status < 0 || off_serial < 0 || off_connection < 0 || off_oid < 0)
        return NULL;
    Py_XSETREF(persistent_base_holder, PyTuple_Pack(1, base));
    if (persistent_base_holder == NULL)
        return NULL;
    dict = ((PyTypeObject *)base)->tp_dict;
    Py_XSETREF(base_new, Py_XNewRef(PyDict_GetItemString(dict, "__new__")));
    Py_XSETREF(class_setter, Py_XNewRef(PyDict_GetItemString(
        PyBaseObject_Type.tp_dict, "__class__")));
    if (base_new == NULL || class_setter == NULL ||
            Py_TYPE(class_setter)->tp_descr_set == NULL) {
        PyErr_SetString(PyExc_TypeError, "unexpected PersistentBase");
        return NULL;
    }
    Py_XSETREF(variants, Py_NewRef(new_variants));
    Py_XSETREF(exempt, Py_NewRef(new_exempt));
    Py_XSETREF(standard_load_state, Py_NewRef(load_state));
    Py_XSETREF(py_note_read, Py_NewRef(note));
    Py_XSETREF(py_refresh_hooks, Py_NewRef(refresh_));
    Py_XSETREF(py_hook_variants, Py_NewRef(hooks));
    Py_XSETREF(py_setstate, Py_NewRef(setstate));
    getattribute_descr = PyDescr_NewMethod((PyTypeObject *)base,
                                           &watched_getattribute_def);
    if (getattribute_descr == NULL)
        return NULL;
    setstate_descr = PyDescr_NewMethod((PyTypeObject *)base,
                                       &persistent_setstate_def);
    if (setstate_descr == NULL) {
        Py_DECREF(getattribute_descr);
        return NULL;
    }
    configured = 1;
    return Py_BuildValue("(NN)", getattribute_descr, setstate_descr);
}

/* Shelf.load_number for the common case: the oid's offset is in the index
   of appended transactions or in the packed offset map, and the file is
   memory-mapped over the record.  Anything else (lazy index, unmapped
   file, damage, a missing oid) goes to the Python method, which gives the
   answer or the error. */


static inline unsigned long long
read_be(const unsigned char *p, int size)
{
    unsigned long long value = 0;
    int i;
    for (i = 0; i < size; i++)
        value = (value << 8) | p[i];
    return value;
}

/* An attribute as a non-negative C integer; -1 when it is not one (no
   error set) or -2 on a real error. */
static long long
attr_index(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    long long result;
    if (value == NULL)
        return -2;
    result = PyLong_CheckExact(value) ? PyLong_AsLongLong(value) : -1;
    Py_DECREF(value);
    if (result == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return result < 0 ? -1 : result;
}

/* The index offset of number (0 when absent); -1 not handled; -2 error. */
static long long
index_offset(PyObject *shelf, long long number)
{
    PyObject *index, *dense, *overflow, *found, *key;
    Py_buffer view;
    long long offset = -1;

    index = PyObject_GetAttr(shelf, s_index);
    if (index == NULL)
        return -2;
    dense = PyObject_GetAttr(index, s_dense);
    overflow = dense ? PyObject_GetAttr(index, s_overflow) : NULL;
    Py_DECREF(index);
    if (overflow == NULL) {
        Py_XDECREF(dense);
        return -2;
    }
    if (PyObject_GetBuffer(dense, &view, PyBUF_FORMAT | PyBUF_ND) < 0) {
        PyErr_Clear();
        goto done;
    }
    if (view.itemsize == 8 && view.format != NULL &&
            strcmp(view.format, "Q") == 0) {
        if (number < view.len / 8)
            offset = (long long)((unsigned long long *)view.buf)[number];
        else if (PyDict_CheckExact(overflow)) {
            key = PyLong_FromLongLong(number);
            if (key == NULL) {
                PyBuffer_Release(&view);
                offset = -2;
                goto done;
            }
            found = PyDict_GetItemWithError(overflow, key);
            Py_DECREF(key);
            if (found == NULL)
                offset = PyErr_Occurred() ? -2 : 0;
            else if (PyLong_CheckExact(found)) {
                offset = PyLong_AsLongLong(found);
                if (offset < 0) {
                    PyErr_Clear();
                    offset = -1;
                }
            }
        }
    }
    PyBuffer_Release(&view);
done:
    Py_DECREF(dense);
    Py_DECREF(overflow);
    return offset;
}

static PyObject *
shelf_load_number(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *shelf, *file = NULL, *mm = NULL, *map = NULL, *result = NULL;
    long long number, offset, mapped, unindexed;
    Py_buffer view;
    int have_view = 0;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "shelf_load_number(shelf, number)");
        return NULL;
    }
    shelf = args[0];
    if (!PyLong_CheckExact(args[1]))
        goto python;
    number = PyLong_AsLongLong(args[1]);
    if (number < 0) {
        PyErr_Clear();
        goto python;
    }
    file = PyObject_GetAttr(shelf, s_file);
    if (file == NULL)
        return NULL;
    mm = PyObject_GetAttr(file, s_mm);
    if (mm == NULL)
        goto error;
    if (mm == Py_None)
        goto python;
    mapped = attr_index(file, s_mapped);
    if (mapped == -2)
        goto error;
    if (PyObject_GetBuffer(mm, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        goto python;
    }
    have_view = 1;
    if (mapped < 0 || mapped > view.len)
        goto python;
    offset = index_offset(shelf, number);
    if (offset == -2)
        goto error;
    if (offset < 0)
        goto python;
    if (offset == 0) {
        long long count, word_size, words_start, start;
        unindexed = attr_index(shelf, s_unindexed);
        if (unindexed != 0) {
            if (unindexed == -2)
                goto error;
            goto python;
        }
        map = PyObject_GetAttr(shelf, s_map);
        if (map == NULL)
            goto error;
        count = attr_index(map, s_count);
        word_size = attr_index(map, s_word_size);
        words_start = attr_index(map, s_words_start);
        start = attr_index(map, s_start);
        if (count == -2 || word_size == -2 || words_start == -2 ||
                start == -2)
            goto error;
        if (count < 0 || word_size < 1 || word_size > 8 || words_start < 0 ||
                start < 0 || number >= count)
            goto python;
        if (words_start + (number + 1) * word_size > mapped)
            goto python;
        offset = (long long)read_be(
            (unsigned char *)view.buf + words_start + number * word_size,
            (int)word_size);
        if (offset >= start || offset == 0)
            goto python;  /* a hole: the Python method raises */
    }
    {
        const unsigned char *p = (const unsigned char *)view.buf;
        unsigned long long length, total;
        if (offset + 16 > mapped)
            goto python;
        length = read_be(p + offset, 8);
        if (length < 8 || length > (unsigned long long)(mapped - offset - 8))
            goto python;
        total = 8 + length;
        if (read_be(p + offset + 8, 8) != (unsigned long long)number)
            goto python;  /* damaged: the Python method says so */
        result = PyBytes_FromStringAndSize((const char *)p + offset + 16,
                                           (Py_ssize_t)(total - 16));
    }
    goto done;
python:
    if (have_view) {
        PyBuffer_Release(&view);
        have_view = 0;
    }
    result = PyObject_CallMethodOneArg(shelf, s_py_load_number, args[1]);
    goto done;
error:
    result = NULL;
done:
    if (have_view)
        PyBuffer_Release(&view);
    Py_XDECREF(map);
    Py_XDECREF(mm);
    Py_XDECREF(file);
    return result;
}

/* ObjectReader.get_state(data) and Connection.load_state(obj).

   get_state: the class pickle is found in the reader's cache of validated
   class pickles, the state is decompressed and read with the reader's
   shared unpickler, exactly as durus.serialize does; a class pickle not
   seen yet, or a shared unpickler not made yet or busy (a nested load),
   goes to the Python method. */

static PyObject *decompress_func, *zlib_error, *empty_memo, *py_get_state,
    *reader_type, *file_storage_type, *py_load_state, *py_get_stored_pickle;
static PyObject *s_record_classes, *s_shared, *s_feed, *s_memo, *s_load,
    *s_load_count, *s_reader, *s_storage, *s_shelf, *s_invalid_oids,
    *s_setstate, *s_get_state, *s_get_stored_pickle;

/* The first b'\nq\x00.' at or after offset 3 (where Durus's class
   pickles end), or NULL. */
static const char *
class_pickle_end(const char *bytes, Py_ssize_t size)
{
    const char *p = bytes + 3, *stop = bytes + size - 3;
    while (p < stop) {
        p = memchr(p, '\n', stop - p);
        if (p == NULL)
            return NULL;
        if (p[1] == 'q' && p[2] == '\0' && p[3] == '.')
            return p;
        p++;
    }
    return NULL;
}

static PyObject *
python_get_state(PyObject *reader, PyObject *data)
{
    return PyObject_CallMethodOneArg(reader, s_get_state, data);
}

static PyObject *
get_state_impl(PyObject *reader, PyObject *data)
{
    PyObject *classes, *key, *entry, *memo, *state, *shared = NULL,
        *feed = NULL, *value = NULL, *count, *new_count;
    const char *bytes;
    Py_ssize_t size, end;
    const char *found;

    if (!PyBytes_CheckExact(data) ||
            (PyObject *)Py_TYPE(reader) != reader_type)
        return python_get_state(reader, data);
    bytes = PyBytes_AS_STRING(data);
    size = PyBytes_GET_SIZE(data);
    found = size > 7 ? class_pickle_end(bytes, size) : NULL;
    if (found == NULL)
        return python_get_state(reader, data);
    end = found - bytes + 4;
    classes = PyObject_GetAttr(reader, s_record_classes);
    if (classes == NULL)
        return NULL;
    key = PyBytes_FromStringAndSize(bytes, end);
    if (key == NULL) {
        Py_DECREF(classes);
        return NULL;
    }
    entry = PyDict_CheckExact(classes) ?
        PyDict_GetItemWithError(classes, key) : NULL;
    Py_DECREF(key);
    if (entry == NULL || !PyTuple_CheckExact(entry) ||
            PyTuple_GET_SIZE(entry) != 2) {
        Py_DECREF(classes);
        if (PyErr_Occurred())
            return NULL;
        return python_get_state(reader, data);
    }
    memo = Py_NewRef(PyTuple_GET_ITEM(entry, 1));
    Py_DECREF(classes);
    if (end < size && (unsigned char)bytes[end] == 0x78) {
        PyObject *compressed = PyBytes_FromStringAndSize(bytes + end,
                                                         size - end);
        if (compressed == NULL) {
            Py_DECREF(memo);
            return NULL;
        }
        state = PyObject_CallOneArg(decompress_func, compressed);
        if (state == NULL && PyErr_ExceptionMatches(zlib_error)) {
            /* Not compressed after all: the bytes are the pickle. */
            PyErr_Clear();
            state = Py_NewRef(compressed);
        }
        Py_DECREF(compressed);
    }
    else
        state = PyBytes_FromStringAndSize(bytes + end, size - end);
    if (state == NULL) {
        Py_DECREF(memo);
        return NULL;
    }
    count = PyObject_GetAttr(reader, s_load_count);
    if (count == NULL)
        goto done;
    new_count = PyNumber_Add(count, one_value);
    Py_DECREF(count);
    if (new_count == NULL)
        goto done;
    if (PyObject_SetAttr(reader, s_load_count, new_count) < 0) {
        Py_DECREF(new_count);
        goto done;
    }
    Py_DECREF(new_count);
    shared = PyObject_GetAttr(reader, s_shared);
    feed = shared ? PyObject_GetAttr(reader, s_feed) : NULL;
    if (feed == NULL)
        goto done;
    if (shared == Py_None || !Py_IS_TYPE(feed, &FeedType) ||
            !PyBytes_CheckExact(state)) {
        /* Not made yet, or busy: the Python method knows what to do. */
        value = PyObject_CallMethod(reader, "_load_state_pickle", "OO",
                                    state, memo);
        goto done;
    }
    if (PyObject_SetAttr(reader, s_shared, Py_None) < 0 ||
            PyObject_SetAttr(reader, s_feed, Py_None) < 0)
        goto done;
    Py_SETREF(((FeedObject *)feed)->data, Py_NewRef(state));
    ((FeedObject *)feed)->pos = 0;
    if (PyObject_SetAttr(shared, s_memo, memo) == 0)
        value = PyObject_CallMethodNoArgs(shared, s_load);
    if (value == NULL) {
        /* Its input buffer may hold the rest of this pickle: drop it. */
        PyObject *type, *error, *traceback, *fresh;
        PyErr_Fetch(&type, &error, &traceback);
        fresh = PyObject_CallNoArgs((PyObject *)&FeedType);
        if (fresh == NULL || PyObject_SetAttr(reader, s_feed, fresh) < 0)
            PyErr_Clear();
        Py_XDECREF(fresh);
        PyErr_Restore(type, error, traceback);
        goto done;
    }
    if (PyObject_SetAttr(reader, s_feed, feed) < 0)
        goto fail;
    if (((FeedObject *)feed)->pos == PyBytes_GET_SIZE(state)) {
        /* Its memo would keep this state's objects alive. */
        if (PyObject_SetAttr(shared, s_memo, empty_memo) < 0 ||
                PyObject_SetAttr(reader, s_shared, shared) < 0)
            goto fail;
    }
    /* else: bytes after the STOP opcode are still buffered: drop it. */
    {
        PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
        if (empty == NULL)
            goto fail;
        Py_SETREF(((FeedObject *)feed)->data, empty);
    }
    goto done;
fail:
    Py_CLEAR(value);
done:
    Py_XDECREF(shared);
    Py_XDECREF(feed);
    Py_DECREF(state);
    Py_DECREF(memo);
    return value;
}

static PyObject *
reader_get_state(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "get_state(reader, data)");
        return NULL;
    }
    if (reader_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "durus._speedups not configured");
        return NULL;
    }
    return get_state_impl(args[0], args[1]);
}

/* The record of oid when the connection's storage is a plain FileStorage
   and the compiled shelf lookup answers; NULL without an error when the
   Python path must run. */
static PyObject *
fast_record(PyObject *connection, PyObject *oid)
{
    PyObject *storage, *shelf, *number, *record;
    PyObject *args[2];

    if (file_storage_type == NULL || !PyBytes_CheckExact(oid) ||
            PyBytes_GET_SIZE(oid) != 8)
        return NULL;
    storage = PyObject_GetAttr(connection, s_storage);
    if (storage == NULL)
        return NULL;
    if ((PyObject *)Py_TYPE(storage) != file_storage_type) {
        Py_DECREF(storage);
        return NULL;
    }
    shelf = PyObject_GetAttr(storage, s_shelf);
    Py_DECREF(storage);
    if (shelf == NULL)
        return NULL;
    number = PyLong_FromUnsignedLongLong(
        read_be((const unsigned char *)PyBytes_AS_STRING(oid), 8));
    if (number == NULL) {
        Py_DECREF(shelf);
        return NULL;
    }
    args[0] = shelf;
    args[1] = number;
    record = shelf_load_number(NULL, args, 2);
    Py_DECREF(number);
    Py_DECREF(shelf);
    if (record == NULL) {
        /* A missing oid and damage are for the Python path to report. */
        PyErr_Clear();
    }
    return record;
}

static PyObject *
connection_load_state(PyObject *connection, PyObject *obj)
{
    PyObject *status, *oid, *invalid, *record, *data, *reader, *state,
        *setstate, *result;
    Py_ssize_t size;
    unsigned long length;
    const unsigned char *p;

    if (!is_persistent_instance(obj) ||
            _PyType_Lookup(Py_TYPE(connection), s_get_stored_pickle) !=
            py_get_stored_pickle)
        goto python;  /* (a subclass reads records its own way) */
    status = slot(obj, off_status);
    oid = slot(obj, off_oid);
    if (status == NULL || oid == NULL || status_of(status) != GHOST)
        goto python;
    invalid = PyObject_GetAttr(connection, s_invalid_oids);
    if (invalid == NULL)
        return NULL;
    if (!PyAnySet_CheckExact(invalid) || PySet_GET_SIZE(invalid)) {
        Py_DECREF(invalid);
        goto python;
    }
    Py_DECREF(invalid);
    Py_INCREF(oid);
    record = fast_record(connection, oid);
    Py_DECREF(oid);
    if (record == NULL) {
        if (PyErr_Occurred())
            return NULL;
        goto python;
    }
    size = PyBytes_GET_SIZE(record);
    p = (const unsigned char *)PyBytes_AS_STRING(record);
    length = size >= 12 ? (unsigned long)read_be(p + 8, 4) : 0;
    if (size < 12 || (Py_ssize_t)length > size - 12) {
        Py_DECREF(record);
        goto python;
    }
    data = PyBytes_FromStringAndSize((const char *)p + 12, length);
    Py_DECREF(record);
    if (data == NULL)
        return NULL;
    reader = PyObject_GetAttr(connection, s_reader);
    if (reader == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    Py_INCREF(obj);
    state = get_state_impl(reader, data);
    Py_DECREF(reader);
    Py_DECREF(data);
    if (state == NULL) {
        Py_DECREF(obj);
        return NULL;
    }
    /* type(obj).__setstate__(obj, state) */
    setstate = _PyType_Lookup(Py_TYPE(obj), s_setstate);
    if (setstate == NULL) {
        Py_DECREF(state);
        Py_DECREF(obj);
        PyErr_Format(PyExc_AttributeError, "%R has no __setstate__", obj);
        return NULL;
    }
    Py_INCREF(setstate);
    {
        PyObject *call_args[2] = {obj, state};
        result = PyObject_Vectorcall(setstate, call_args, 2, NULL);
    }
    Py_DECREF(setstate);
    Py_DECREF(state);
    Py_DECREF(obj);
    return result;
python:
    return PyObject_CallFunctionObjArgs(py_load_state, connection, obj, NULL);
}

/* set_file_storage_type(FileStorage): loads from exactly this class read
   its shelf through shelf_load_number. */
static PyObject *
set_file_storage_type(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "a class is needed");
        return NULL;
    }
    Py_XSETREF(file_storage_type, Py_NewRef(cls));
    Py_RETURN_NONE;
}

static PyMethodDef connection_load_state_def = {
    "load_state", (PyCFunction)connection_load_state, METH_O,
    "Fill the ghost obj with its stored state."
};

/* configure_loads(ObjectReader, ObjectReader.get_state, decompress,
                   zlib.error, _EMPTY_MEMO, Connection, Connection.load_state,
                   Connection.get_stored_pickle)
   -> (load_state, _bind_new_object) descriptors for Connection */
static PyObject *
configure_loads(PyObject *module, PyObject *args)
{
    PyObject *new_reader_type, *get_state, *decompress, *error, *memo,
        *connection_type, *load_state, *stored_pickle;
    if (!PyArg_ParseTuple(args, "O!OOOO!O!OO:configure_loads",
                          &PyType_Type, &new_reader_type, &get_state,
                          &decompress, &error, &PyDict_Type, &memo,
                          &PyType_Type, &connection_type, &load_state,
                          &stored_pickle))
        return NULL;
    Py_XSETREF(py_get_stored_pickle, Py_NewRef(stored_pickle));
    Py_XSETREF(reader_type, Py_NewRef(new_reader_type));
    Py_XSETREF(py_get_state, Py_NewRef(get_state));
    Py_XSETREF(decompress_func, Py_NewRef(decompress));
    Py_XSETREF(zlib_error, Py_NewRef(error));
    Py_XSETREF(empty_memo, Py_NewRef(memo));
    Py_XSETREF(py_load_state, Py_NewRef(load_state));
    return Py_BuildValue("(NN)",
        PyDescr_NewMethod((PyTypeObject *)connection_type,
                          &connection_load_state_def),
        PyDescr_NewMethod((PyTypeObject *)connection_type,
                          &bind_new_object_def));
}

/* set_ref_type(_OidRef): the weak reference class of the cache. */
static PyObject *
set_ref_type(PyObject *module, PyObject *ref_type)
{
    if (!PyType_Check(ref_type) ||
            !PyType_IsSubtype((PyTypeObject *)ref_type,
                              &_PyWeakref_RefType)) {
        PyErr_SetString(PyExc_TypeError, "a weakref.ref subclass is needed");
        return NULL;
    }
    Py_XSETREF(oid_ref_type, Py_NewRef(ref_type));
    Py_RETURN_NONE;
}

static PyObject *
py_note_read_c(PyObject *module, PyObject *obj)
{
    if (!is_persistent_instance(obj)) {
        if (PyErr_Occurred())
            return NULL;
        return PyObject_CallOneArg(py_note_read, obj);
    }
    if (note_read(obj) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
py_refresh_c(PyObject *module, PyObject *obj)
{
    if (!is_persistent_instance(obj)) {
        if (PyErr_Occurred())
            return NULL;
        return PyObject_CallOneArg(py_refresh_hooks, obj);
    }
    if (refresh(obj) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"persistent_new", (PyCFunction)(void (*)(void))persistent_new,
     METH_VARARGS | METH_KEYWORDS,
     "PersistentBase.__new__: a new UNSAVED object, slots set."},
    {"configure", configure, METH_VARARGS,
     "Connect the module to durus.persistent (called once by it)."},
    {"configure_loads", configure_loads, METH_VARARGS,
     "Connect the module to the reader, connection and FileStorage."},
    {"set_file_storage_type", set_file_storage_type, METH_O,
     "Name the FileStorage class whose shelf can be read directly."},
    {"get_state", (PyCFunction)(void (*)(void))reader_get_state,
     METH_FASTCALL, "ObjectReader.get_state(data) (the loading form)."},
    {"set_ref_type", set_ref_type, METH_O,
     "Give the cache's weak reference class (called once by connection)."},
    {"note_read", py_note_read_c, METH_O,
     "durus.persistent._note_read: load a ghost, note the access."},
    {"refresh_hooks", py_refresh_c, METH_O,
     "durus.persistent.refresh_hooks: the type variant for obj's state."},
    {"shelf_load_number", (PyCFunction)(void (*)(void))shelf_load_number,
     METH_FASTCALL, "Shelf.load_number for mapped files (else the Python one)."},
    {"get_instance", (PyCFunction)(void (*)(void))get_instance, METH_FASTCALL,
     "get_instance(objects, oid, cls, connection): cached object or ghost."},
    {"codecs_encode", (PyCFunction)(void (*)(void))codecs_encode,
     METH_FASTCALL, "_codecs.encode with latin-1 text answered directly."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "durus._speedups",
    "Compiled versions of durus's per-load steps (optional).", -1,
    module_methods
};

#define INTERN(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module;
    INTERN(s_load_state, "load_state");
    INTERN(s_p_load_state, "_p_load_state");
    INTERN(s_note_access, "note_access");
    INTERN(s_transaction_serial, "transaction_serial");
    INTERN(s_unhooked, "_unhooked");
    INTERN(s_key, "key");
    INTERN(s_dict, "__dict__");
    INTERN(s_new, "__new__");
    INTERN(s_append, "append");
    INTERN(s_mapping, "mapping");
    INTERN(s_callback, "_callback");
    INTERN(s_latin1, "latin1");
    INTERN(s_cache, "cache");
    INTERN(s_objects, "objects");
    INTERN(s_placeholder_origins, "_placeholder_origins");
    INTERN(s_connection, "connection");
    INTERN(s_load_persistent_id, "load_persistent_id");
    INTERN(s_index, "index");
    INTERN(s_dense, "dense");
    INTERN(s_overflow, "overflow");
    INTERN(s_unindexed, "_unindexed");
    INTERN(s_map, "map");
    INTERN(s_count, "count");
    INTERN(s_word_size, "word_size");
    INTERN(s_words_start, "_words_start");
    INTERN(s_start, "start");
    INTERN(s_file, "file");
    INTERN(s_mm, "_map");
    INTERN(s_mapped, "_mapped");
    INTERN(s_py_load_number, "_py_load_number");
    INTERN(s_record_classes, "_record_classes");
    INTERN(s_shared, "_shared");
    INTERN(s_feed, "_feed");
    INTERN(s_memo, "memo");
    INTERN(s_load, "load");
    INTERN(s_load_count, "load_count");
    INTERN(s_reader, "reader");
    INTERN(s_storage, "storage");
    INTERN(s_shelf, "shelf");
    INTERN(s_invalid_oids, "invalid_oids");
    INTERN(s_setstate, "__setstate__");
    INTERN(s_get_state, "get_state");
    INTERN(s_get_stored_pickle, "get_stored_pickle");
    INTERN(s_new_oid, "new_oid");
    INTERN(s_bind_new_object, "_bind_new_object");
    INTERN(s_class, "__class__");
    INTERN(s_recent_objects, "recent_objects");
    INTERN(s_unhooked_name, "_unhooked");
    empty_tuple = PyTuple_New(0);
    saved_value = PyLong_FromLong(SAVED);
    ghost_value = PyLong_FromLong(GHOST);
    zero_value = PyLong_FromLong(0);
    one_value = PyLong_FromLong(1);
    if (!empty_tuple || !saved_value || !ghost_value || !zero_value ||
            !one_value)
        return NULL;
    if (PyType_Ready(&LoaderType) < 0)
        return NULL;
    module = PyModule_Create(&speedups_module);
    if (module == NULL)
        return NULL;
    if (PyType_Ready(&FeedType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&FeedType);
    if (PyModule_AddObject(module, "Feed", (PyObject *)&FeedType) < 0) {
        Py_DECREF(&FeedType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyType_Ready(&WriterType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(module, "PersistentIdWriter",
                           (PyObject *)&WriterType) < 0) {
        Py_DECREF(&WriterType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&LoaderType);
    if (PyModule_AddObject(module, "PersistentLoader",
                           (PyObject *)&LoaderType) < 0) {
        Py_DECREF(&LoaderType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
