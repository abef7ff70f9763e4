/* PersistentIdWriter: the record writer's persistent_id (durus/serialize.py).

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static. */

/* PersistentIdWriter(func, base, connection, refs, new_objects,
   objects_found): the pickler's persistent_id while writing records, the
   twin of the closure made by ObjectWriter._make_persistent_id (func).
   The pickler asks about every object it writes (about ten per
   reference): plain values get None without a Python call; a persistent
   object of this connection, or a new one, gets (oid, class) here; the
   cases that raise go to func.  With dry_run (a tool's look at what a
   commit would write), new objects go to func too, which neither gives
   them oids nor binds them. */
typedef struct {
    PyObject_HEAD
    PyObject *func, *base, *connection, *refs, *new_objects, *objects_found;
    int dry_run;
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
    if (!PyObject_TypeCheck(obj, (PyTypeObject *)writer->base)) {
        /* The values a state is made of answer isinstance() False
           without asking (their __class__ is their type); anything
           else gets the full isinstance(), as in the Python twin. */
        PyTypeObject *type = Py_TYPE(obj);
        if (type == &PyUnicode_Type || type == &PyLong_Type ||
                type == &PyTuple_Type || type == &PyDict_Type ||
                type == &PyList_Type || type == &PyBytes_Type ||
                type == &PyFloat_Type || type == &PyBool_Type ||
                obj == Py_None || type == &PyType_Type)
            Py_RETURN_NONE;
        is_persistent = PyObject_IsInstance(obj, writer->base);
        if (is_persistent < 0)
            return NULL;
        if (!is_persistent)
            Py_RETURN_NONE;
    }
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
        if (owner != Py_None || writer->dry_run)
            return PyObject_CallOneArg(writer->func, obj);
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
    int dry_run = 0;
    if (!PyArg_ParseTuple(args, "OO!OOOO|p:PersistentIdWriter", &func,
                          &PyType_Type, &base, &connection, &refs,
                          &new_objects, &objects_found, &dry_run))
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
    self->dry_run = dry_run;
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
