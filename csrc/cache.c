/* The connection's cache: get_instance, the unpickler's persistent_load
   (PersistentLoader) and _bind_new_object (durus/connection.py,
   durus/serialize.py).

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static. */

/* The hook variants entry of cls, [cls, watched, saved or None, maker]
   (borrowed), made by Python's hook_variants on first use (which raises
   for a class that cannot be subclassed); NULL with an error. */
static PyObject *
variants_entry(PyObject *cls)
{
    PyObject *triple = PyDict_GetItemWithError(variants, cls);
    if (triple == NULL) {
        PyObject *made;
        if (PyErr_Occurred())
            return NULL;
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
    return triple;
}

/* mapping[oid] = an _OidRef to obj whose callback is objects._callback:
   ObjectDictionary.__setitem__ (mapping is objects.mapping). */
static int
file_in_cache_with(PyObject *objects, PyObject *mapping, PyObject *callback,
                   PyObject *oid, PyObject *obj)
{
    PyObject *ref;
    int failed;

    PyTypeObject *type = (PyTypeObject *)oid_ref_type;

    /* (callback: objects._callback when the caller has it, else NULL) */
    if (callback != NULL)
        Py_INCREF(callback);
    else if ((callback = PyObject_GetAttr(objects, s_callback)) == NULL)
        return -1;
    if (off_ref_key > 0 && type->tp_new == _PyWeakref_RefType.tp_new &&
            type->tp_init == _PyWeakref_RefType.tp_init) {
        /* _OidRef(obj, callback) without the call machinery (weakref's
           __init__ only checks the arguments __new__ took), key set in
           its slot. */
        PyObject *args = PyTuple_Pack(2, obj, callback);
        Py_DECREF(callback);
        if (args == NULL)
            return -1;
        ref = type->tp_new(type, args, NULL);
        Py_DECREF(args);
        if (ref == NULL)
            return -1;
        set_slot(ref, off_ref_key, oid);
        failed = PyObject_SetItem(mapping, oid, ref) < 0;
        Py_DECREF(ref);
        return failed ? -1 : 0;
    }
    ref = PyObject_CallFunctionObjArgs(oid_ref_type, obj, callback, NULL);
    Py_DECREF(callback);
    if (ref == NULL)
        return -1;
    failed = PyObject_SetAttr(ref, s_key, oid) < 0 ||
             PyObject_SetItem(mapping, oid, ref) < 0;
    Py_DECREF(ref);
    return failed ? -1 : 0;
}

static int
file_in_cache(PyObject *objects, PyObject *mapping, PyObject *oid,
              PyObject *obj)
{
    return file_in_cache_with(objects, mapping, NULL, oid, obj);
}

/* Cache.get_instance: the cached object of oid if of class cls, else a new
   ghost filed in objects (an ObjectDictionary). */
static PyObject *
ghost_of(PyObject *objects, PyObject *mapping, PyObject *callback,
         PyObject *oid, PyObject *cls, PyObject *connection,
         PyObject *watched);

static PyObject *
get_instance_impl(PyObject *objects, PyObject *oid, PyObject *cls,
                  PyObject *connection, PyObject *watched)
{
    PyObject *mapping, *result;

    mapping = PyObject_GetAttr(objects, s_mapping);
    if (mapping == NULL)
        return NULL;
    if (!PyDict_CheckExact(mapping)) {
        Py_DECREF(mapping);
        PyErr_SetString(PyExc_TypeError, "cache mapping is not a dict");
        return NULL;
    }
    result = ghost_of(objects, mapping, NULL, oid, cls, connection, watched);
    Py_DECREF(mapping);
    return result;
}

/* get_instance_impl with objects.mapping (an exact dict) and, unless
   NULL, objects._callback already at hand (borrowed). */
static PyObject *
ghost_of(PyObject *objects, PyObject *mapping, PyObject *callback,
         PyObject *oid, PyObject *cls, PyObject *connection,
         PyObject *watched)
{
    PyObject *ref, *obj;
    int failed;

    Py_INCREF(mapping);
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
        obj = weakref_referent(ref);
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
    failed = file_in_cache_with(objects, mapping, callback, oid, obj);
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
    triple = variants_entry(cls);
    if (triple == NULL)
        return NULL;
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

/* Connection._bind_new_object(obj, oid): give a new object its oid and
   this connection during a commit (see the Python method). */
static PyObject *s_class;

static PyObject *
bind_new_object(PyObject *connection, PyObject *const *args,
                Py_ssize_t nargs)
{
    PyObject *obj, *oid, *real, *serial, *attributes, *cache = NULL,
        *objects = NULL, *mapping = NULL, *recent = NULL, *recent_map = NULL,
        *key = NULL, *unhooked = NULL;
    PyObject *result = NULL;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_bind_new_object(obj, oid)");
        return NULL;
    }
    obj = args[0];
    oid = args[1];
    if (!configured || oid_ref_type == NULL ||
            !PyObject_TypeCheck(obj, (PyTypeObject *)persistent_base))
        return PyObject_CallFunctionObjArgs(py_bind_new_object, connection,
                                            obj, oid, NULL);
    /* hook_variants(obj.__class__): fail here, before anything is stored */
    real = PyObject_GetAttr(obj, s_class);
    if (real == NULL)
        return NULL;
    if (variants_entry(real) == NULL) {
        Py_DECREF(real);
        return NULL;
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
            file_in_cache(objects, mapping, oid, obj) < 0)
        goto done;
    if ((recent = PyObject_GetAttr(cache, s_recent_objects)) == NULL ||
            (recent_map = PyObject_GetAttr(recent, s_map)) == NULL ||
            (key = PyLong_FromVoidPtr(obj)) == NULL ||
            PyObject_SetItem(recent_map, key, obj) < 0)
        goto done;
    if ((unhooked = PyObject_GetAttr(connection, s_unhooked)) == NULL ||
            append_to(unhooked, obj) < 0)
        goto done;
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(cache);
    Py_XDECREF(objects);
    Py_XDECREF(mapping);
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
