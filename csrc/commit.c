/* A commit's per-object steps besides the record itself: the compiled
   twins of FileStorage.new_oid and FileStorage.store (durus/file_storage.py)
   and of the end-of-transaction rehooking loop durus.connection._py_rehook.

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static.  Needs read_be (shelf.c).

   Each does only the usual case and gives anything else to its Python
   twin, which checks each step and names the problem: new_oid only once
   the map's holes are used up (then oids come from a counter), store
   only for a writable storage, an open commit, bytes, a record of that
   oid with a whole refs trailer, and an oid handed out by new_oid(). */

static PyObject *py_storage_new_oid, *py_storage_store;
static PyObject *s_holes, *s_next_number, *s_invalid, *s_allocated,
    *s_pending, *s_readonly;

/* FileStorage.new_oid(), compiled. */
static PyObject *
storage_new_oid(PyObject *storage, PyObject *unused)
{
    PyObject *holes, *next, *invalid = NULL, *allocated = NULL,
        *number = NULL, *after = NULL, *result = NULL;
    unsigned long long value;
    unsigned char bytes[8];
    int i;

    holes = PyObject_GetAttr(storage, s_holes);
    if (holes == NULL)
        return NULL;
    Py_DECREF(holes);
    if (holes != Py_None)
        return PyObject_CallOneArg(py_storage_new_oid, storage);
    next = PyObject_GetAttr(storage, s_next_number);
    if (next == NULL)
        return NULL;
    if (!PyLong_CheckExact(next) ||
            (invalid = PyObject_GetAttr(storage, s_invalid)) == NULL ||
            !PySet_CheckExact(invalid) ||
            (allocated = PyObject_GetAttr(storage, s_allocated)) == NULL ||
            !PySet_CheckExact(allocated))
        goto python;
    number = Py_NewRef(next);
    for (;;) {
        int taken = PySet_Contains(invalid, number);
        if (taken == 0)
            taken = PySet_Contains(allocated, number);
        if (taken < 0)
            goto done;
        if (!taken)
            break;
        Py_SETREF(number, PyNumber_Add(number, one_value));
        if (number == NULL)
            goto done;
    }
    value = PyLong_AsUnsignedLongLong(number);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) {
        /* (negative, or past 8 bytes: the Python way says so) */
        PyErr_Clear();
        goto python;
    }
    after = PyNumber_Add(number, one_value);
    if (after == NULL || PyObject_SetAttr(storage, s_next_number, after) < 0
            || PySet_Add(allocated, number) < 0)
        goto done;
    for (i = 7; i >= 0; i--, value >>= 8)
        bytes[i] = (unsigned char)(value & 0xff);
    result = PyBytes_FromStringAndSize((const char *)bytes, 8);
    goto done;
python:
    if (!PyErr_Occurred())
        result = PyObject_CallOneArg(py_storage_new_oid, storage);
done:
    Py_DECREF(next);
    Py_XDECREF(invalid);
    Py_XDECREF(allocated);
    Py_XDECREF(number);
    Py_XDECREF(after);
    return result;
}

/* FileStorage.store(oid, record), compiled: the record is staged here when
   everything is as a commit of this storage's own oids leaves it. */
static PyObject *
storage_store(PyObject *storage, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *oid, *record, *pending = NULL, *file = NULL, *readonly = NULL,
        *allocated = NULL, *number = NULL;
    const unsigned char *bytes;
    Py_ssize_t size, rest;
    int staged = 0, known;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "store(oid, record)");
        return NULL;
    }
    oid = args[0];
    record = args[1];
    if (!PyBytes_CheckExact(oid) || PyBytes_GET_SIZE(oid) != 8 ||
            !PyBytes_CheckExact(record) || PyBytes_GET_SIZE(record) < 12)
        goto python;
    bytes = (const unsigned char *)PyBytes_AS_STRING(record);
    size = PyBytes_GET_SIZE(record);
    if (memcmp(bytes, PyBytes_AS_STRING(oid), 8) != 0)
        goto python;
    rest = size - 12 - (Py_ssize_t)read_be(bytes + 8, 4);
    if (rest < 0 || rest & 7)
        goto python;
    if ((pending = PyObject_GetAttr(storage, s_pending)) == NULL ||
            (file = PyObject_GetAttr(storage, s_file)) == NULL ||
            (readonly = PyObject_GetAttr(file, s_readonly)) == NULL ||
            (allocated = PyObject_GetAttr(storage, s_allocated)) == NULL)
        goto error;
    if (!PyDict_CheckExact(pending) || readonly != Py_False ||
            !PySet_CheckExact(allocated))
        goto python;
    number = PyLong_FromUnsignedLongLong(
        read_be((const unsigned char *)PyBytes_AS_STRING(oid), 8));
    if (number == NULL)
        goto error;
    known = PySet_Contains(allocated, number);
    if (known < 0)
        goto error;
    if (!known)
        goto python;    /* an oid with a record: the index is asked there */
    if (PyDict_SetItem(pending, oid, record) < 0)
        goto error;
    staged = 1;
    goto done;
error:
    staged = -1;
    goto done;
python:
    staged = 0;
done:
    Py_XDECREF(pending);
    Py_XDECREF(file);
    Py_XDECREF(readonly);
    Py_XDECREF(allocated);
    Py_XDECREF(number);
    if (staged < 0)
        return NULL;
    if (staged)
        Py_RETURN_NONE;
    return PyObject_CallFunctionObjArgs(py_storage_store, storage, oid,
                                        record, NULL);
}

/* _rehook(connection, unhooked), compiled: at the end of a transaction,
   each object bound or changed in it gets the watched variant of its
   class again (or whatever refresh_hooks gives the unusual ones). */
static int
rehook_list(PyObject *connection, PyObject *unhooked)
{
    Py_ssize_t i;
    for (i = 0; i < PyList_GET_SIZE(unhooked); i++) {
        PyObject *obj = Py_NewRef(PyList_GET_ITEM(unhooked, i));
        PyObject *triple = PyDict_GetItemWithError(
            variants, (PyObject *)Py_TYPE(obj));
        PyObject *owner = NULL;
        int status = 0, persistent = 0;
        if (triple == NULL && PyErr_Occurred())
            status = -1;
        else if (!(persistent = is_persistent_instance(obj)) &&
                 PyErr_Occurred())
            status = -1;
        else {
            if (persistent)
                owner = slot(obj, off_connection);
            if (triple == NULL || !PyList_CheckExact(triple) ||
                    PyList_GET_SIZE(triple) != 4 || owner != connection)
                /* refresh_hooks(obj), as the Python loop calls it */
                status = persistent ? refresh(obj)
                                    : call_twin(py_refresh_hooks, obj);
            else if ((PyObject *)Py_TYPE(obj) != PyList_GET_ITEM(triple, 1))
                status = set_type(obj, PyList_GET_ITEM(triple, 1));
        }
        Py_DECREF(obj);
        if (status < 0)
            return -1;
    }
    return 0;
}

/* _rehook(connection, unhooked), compiled: at the end of a transaction,
   each object bound or changed in it gets the watched variant of its
   class again (refresh_hooks decides for the unusual ones). */
static PyObject *
rehook(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *items;
    int status;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_rehook(connection, unhooked)");
        return NULL;
    }
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "durus._speedups not configured");
        return NULL;
    }
    items = PySequence_List(args[1]);
    if (items == NULL)
        return NULL;
    status = rehook_list(args[0], items);
    Py_DECREF(items);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef storage_new_oid_def = {
    "new_oid", (PyCFunction)storage_new_oid, METH_NOARGS,
    "A new oid (compiled FileStorage.new_oid)."
};

static PyMethodDef storage_store_def = {
    "store", (PyCFunction)(void (*)(void))storage_store, METH_FASTCALL,
    "Stage the record of oid for the open commit (compiled)."
};

/* configure_commit(FileStorage, FileStorage.new_oid, FileStorage.store)
   -> (new_oid, store) descriptors for FileStorage. */
static PyObject *
configure_commit(PyObject *module, PyObject *args)
{
    PyObject *storage_type, *new_oid, *store;
    if (!PyArg_ParseTuple(args, "O!OO:configure_commit", &PyType_Type,
                          &storage_type, &new_oid, &store))
        return NULL;
    Py_XSETREF(py_storage_new_oid, Py_NewRef(new_oid));
    Py_XSETREF(py_storage_store, Py_NewRef(store));
    return Py_BuildValue(
        "(NN)",
        PyDescr_NewMethod((PyTypeObject *)storage_type, &storage_new_oid_def),
        PyDescr_NewMethod((PyTypeObject *)storage_type, &storage_store_def));
}
