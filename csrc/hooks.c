/* Attribute hooks and object state: refresh_hooks, _note_read, the
   watched variants' __getattribute__, Persistent.__setstate__ and
   PersistentBase.__new__ (durus/persistent.py).

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static. */

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
        if (PyErr_Occurred())
            return -1;
        return call_twin(py_refresh_hooks, obj);
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
            /* Listed to be hooked again when the transaction ends. */
            if (wanted != cls && append_to(unhooked, obj) < 0)
                goto done;
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

/* connection.note_access(obj), serial being the connection's
   transaction_serial just read.  Connection.note_access itself (stamp
   _p_serial, then cache.recent_objects.add(obj)) runs here when neither
   it nor ReferenceContainer.add is replaced; else the method is called. */
static PyObject *py_note_access, *py_reference_add, *reference_type;

static int
note_access(PyObject *connection, PyObject *obj, PyObject *serial)
{
    PyObject *cache, *recent, *map, *key, *r;
    int failed;

    if (py_note_access == NULL ||
            _PyType_Lookup(Py_TYPE(connection), s_note_access) !=
            py_note_access)
        goto python;
    cache = PyObject_GetAttr(connection, s_cache);
    if (cache == NULL)
        return -1;
    recent = PyObject_GetAttr(cache, s_recent_objects);
    Py_DECREF(cache);
    if (recent == NULL)
        return -1;
    if ((PyObject *)Py_TYPE(recent) != reference_type ||
            _PyType_Lookup(Py_TYPE(recent), s_add) != py_reference_add) {
        Py_DECREF(recent);
        goto python;
    }
    map = PyObject_GetAttr(recent, s_map);
    Py_DECREF(recent);
    if (map == NULL)
        return -1;
    set_slot(obj, off_serial, serial);
    key = PyLong_FromVoidPtr(obj);
    failed = key == NULL || PyObject_SetItem(map, key, obj) < 0;
    Py_XDECREF(key);
    Py_DECREF(map);
    return failed ? -1 : 0;
python:
    r = PyObject_CallMethodOneArg(connection, s_note_access, obj);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* set_access_note(Connection.note_access, ReferenceContainer): the
   method note_access stands in for and the class whose add it inlines. */
static PyObject *
set_access_note(PyObject *module, PyObject *args)
{
    PyObject *method, *container;
    if (!PyArg_ParseTuple(args, "OO!:set_access_note", &method,
                          &PyType_Type, &container))
        return NULL;
    Py_XSETREF(py_reference_add, Py_XNewRef(
        _PyType_Lookup((PyTypeObject *)container, s_add)));
    if (py_reference_add == NULL) {
        PyErr_SetString(PyExc_TypeError, "the container class has no add");
        return NULL;
    }
    Py_XSETREF(py_note_access, Py_NewRef(method));
    Py_XSETREF(reference_type, Py_NewRef(container));
    Py_RETURN_NONE;
}

/* _note_read(obj) of durus.persistent. */
static int
note_read(PyObject *obj)
{
    PyObject *connection = slot(obj, off_connection);
    PyObject *status = slot(obj, off_status);
    PyObject *serial, *current;
    int same;

    if (connection == NULL || status == NULL)
        return call_twin(py_note_read, obj);
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
        if (same < 0 || (!same && note_access(connection, obj, current) < 0)) {
            Py_DECREF(current);
            Py_DECREF(connection);
            return -1;
        }
        Py_DECREF(current);
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

/* obj.__setstate__(state), state by position or by keyword as in 4.3. */
static PyObject *
persistent_setstate_call(PyObject *self, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames != NULL || nargs != 1)
        return twin_decides(py_setstate, self, args, nargs, kwnames);
    return persistent_setstate(self, args[0]);
}

static PyMethodDef persistent_setstate_def = {
    "__setstate__", (PyCFunction)(void (*)(void))persistent_setstate_call,
    METH_FASTCALL | METH_KEYWORDS,
    "__setstate__($self, /, state)\n--\n\n"
    "Take the unpickled state as the instance __dict__ (keys interned)."
};

/* object.__new__(cls) with the four slots set as PersistentBase.__new__
   sets them (cls: a persistent class). */
static PyObject *
persistent_alloc(PyTypeObject *cls)
{
    PyObject *obj = PyBaseObject_Type.tp_new(cls, empty_tuple, NULL);
    if (obj == NULL)
        return NULL;
    set_slot(obj, off_status, one_value);  /* UNSAVED */
    set_slot(obj, off_serial, zero_value);
    set_slot(obj, off_connection, Py_None);
    set_slot(obj, off_oid, Py_None);
    return obj;
}

/* PersistentBase.__new__: the four slots set, no Python frame. */
static PyObject *
persistent_new(PyObject *module, PyObject *args, PyObject *kwargs)
{
    PyObject *cls;
    if (PyTuple_GET_SIZE(args) < 1 || !PyType_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_SetString(PyExc_TypeError,
                        "PersistentBase.__new__(cls): cls must be a class");
        return NULL;
    }
    cls = PyTuple_GET_ITEM(args, 0);
    if (!configured || !PyType_IsSubtype((PyTypeObject *)cls,
            (PyTypeObject *)persistent_base)) {
        PyErr_Format(PyExc_TypeError, "%R is not a persistent class", cls);
        return NULL;
    }
    return persistent_alloc((PyTypeObject *)cls);
}
