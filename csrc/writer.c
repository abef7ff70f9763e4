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

/* A reference to the persistent obj from a state written for
   connection, as the Python persistent_id makes it: a new object gets an
   oid, is bound and is added to new_objects and objects_found first.
   0 with *oid (new reference) and *cls (borrowed: the class the record
   names, the user's class for a hook variant); -1 with an error; 1 when
   the Python twin must decide (slots unset, a new object during a dry
   run or bound elsewhere, another connection's object: it raises). */
static int
reference_to(PyObject *connection, PyObject *new_objects,
             PyObject *objects_found, int dry_run, PyObject *obj,
             PyObject **oid_out, PyObject **cls_out)
{
    PyObject *oid = slot(obj, off_oid), *owner = slot(obj, off_connection),
        *cls, *triple;

    if (oid == NULL || owner == NULL)
        return 1;
    if (oid == Py_None) {
        PyObject *bound;
        if (owner != Py_None || dry_run)
            return 1;
        oid = PyObject_CallMethodNoArgs(connection, s_new_oid);
        if (oid == NULL)
            return -1;
        bound = PyObject_CallMethodObjArgs(connection, s_bind_new_object,
                                           obj, oid, NULL);
        if (bound == NULL) {
            Py_DECREF(oid);
            return -1;
        }
        Py_DECREF(bound);
        if (PyList_Append(new_objects, obj) < 0 ||
                PyList_Append(objects_found, obj) < 0) {
            Py_DECREF(oid);
            return -1;
        }
    }
    else if (owner != connection)
        return 1;
    else
        Py_INCREF(oid);
    cls = (PyObject *)Py_TYPE(obj);
    triple = PyDict_GetItemWithError(variants, cls);
    if (triple != NULL && PyList_CheckExact(triple) &&
            PyList_GET_SIZE(triple) == 4)
        cls = PyList_GET_ITEM(triple, 0);
    else if (PyErr_Occurred()) {
        Py_DECREF(oid);
        return -1;
    }
    *oid_out = oid;
    *cls_out = cls;
    return 0;
}

static PyObject *
writer_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    WriterObject *writer = (WriterObject *)self;
    PyObject *obj, *oid, *cls, *result;
    int is_persistent, status;

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
    status = reference_to(writer->connection, writer->new_objects,
                          writer->objects_found, writer->dry_run, obj,
                          &oid, &cls);
    if (status < 0)
        return NULL;
    if (status > 0)
        return PyObject_CallOneArg(writer->func, obj);  /* raises */
    if (PyList_Append(writer->refs, oid) < 0) {
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
