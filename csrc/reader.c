/* Reading records: ObjectReader.get_state, Connection.load_state and
   the _codecs.encode global (durus/serialize.py, durus/connection.py).

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static. */

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

/* ObjectReader.get_state(data) and Connection.load_state(obj).

   get_state: the class pickle is found in the reader's cache of validated
   class pickles, the state is decompressed and read with the reader's
   shared unpickler, exactly as durus.serialize does; a class pickle not
   seen yet, or a shared unpickler not made yet or busy (a nested load),
   goes to the Python method. */

static int decode_walk(PyObject *reader, PyObject *state,
                       PyObject *record_class, PyObject **result);
static PyObject *inflate_state(const unsigned char *state, Py_ssize_t size);

static PyObject *decompress_func, *zlib_error, *empty_memo, *py_get_state,
    *reader_type, *file_storage_type, *py_load_state, *py_get_stored_pickle,
    *py_load_state_pickle;
static PyObject *s_record_classes, *s_shared, *s_feed, *s_memo, *s_load,
    *s_load_count, *s_reader, *s_storage, *s_shelf, *s_invalid_oids,
    *s_loading_oid,
    *s_setstate, *s_get_state, *s_get_stored_pickle;

static PyObject *
python_get_state(PyObject *reader, PyObject *data)
{
    return PyObject_CallMethodOneArg(reader, s_get_state, data);
}

/* The class pickles of recent records, as bytes objects that keep
   their hash: the next record of one of these classes is looked up in
   the reader's _record_classes with the kept bytes instead of new ones
   made and hashed for it.  A slot holds the last pickle that went to it
   (a walk alternates between a node class and its items' classes). */
#define RECENT_CLASS_KEYS 4
static PyObject *recent_class_keys[RECENT_CLASS_KEYS];
static int recent_class_next;

/* The class pickle bytes[:end] as a bytes object (new reference). */
static PyObject *
class_key(const char *bytes, Py_ssize_t end)
{
    PyObject *key;
    int i;
    for (i = 0; i < RECENT_CLASS_KEYS; i++) {
        key = recent_class_keys[i];
        if (key != NULL && PyBytes_GET_SIZE(key) == end &&
                memcmp(PyBytes_AS_STRING(key), bytes, end) == 0)
            return Py_NewRef(key);
    }
    key = PyBytes_FromStringAndSize(bytes, end);
    if (key != NULL) {
        Py_XSETREF(recent_class_keys[recent_class_next], Py_NewRef(key));
        recent_class_next = (recent_class_next + 1) % RECENT_CLASS_KEYS;
    }
    return key;
}

/* ObjectReader.get_state for record data at bytes[:size], inside owner
   (a bytes object: the data itself, or the record holding it), which the
   caller keeps alive; data is the data as a bytes object if the caller
   has it, else NULL (made when the Python method is needed). */
static PyObject *
python_get_state_of(PyObject *reader, PyObject *data, const char *bytes,
                    Py_ssize_t size)
{
    PyObject *result;
    if (data != NULL)
        return python_get_state(reader, data);
    data = PyBytes_FromStringAndSize(bytes, size);
    if (data == NULL)
        return NULL;
    result = python_get_state(reader, data);
    Py_DECREF(data);
    return result;
}

static PyObject *
get_state_of(PyObject *reader, PyObject *data, const char *bytes,
             Py_ssize_t size)
{
    PyObject *classes, *key, *entry, *memo, *record_class, *state,
        *value = NULL, *count, *new_count;
    Py_ssize_t end;
    const char *found;

    if ((PyObject *)Py_TYPE(reader) != reader_type)
        return python_get_state_of(reader, data, bytes, size);
    found = class_pickle_end(bytes, size);
    if (found == NULL)
        return python_get_state_of(reader, data, bytes, size);
    end = found - bytes + 4;
    classes = PyObject_GetAttr(reader, s_record_classes);
    if (classes == NULL)
        return NULL;
    key = class_key(bytes, end);
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
        return python_get_state_of(reader, data, bytes, size);
    }
    memo = Py_NewRef(PyTuple_GET_ITEM(entry, 1));
    record_class = Py_NewRef(PyTuple_GET_ITEM(entry, 0));
    Py_DECREF(classes);
    if (end < size && (unsigned char)bytes[end] == 0x78 &&
            (state = inflate_state((const unsigned char *)bytes + end,
                                   size - end)) != NULL)
        ;  /* inflated with the kept stream (csrc/record_check.c) */
    else if (end < size && (unsigned char)bytes[end] == 0x78) {
        PyObject *compressed = PyBytes_FromStringAndSize(bytes + end,
                                                         size - end);
        if (compressed == NULL) {
            Py_DECREF(memo);
            Py_DECREF(record_class);
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
        Py_DECREF(record_class);
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
    if (PyBytes_CheckExact(state)) {
        /* The common opcodes walked directly (csrc/decode.c). */
        int outcome = decode_walk(reader, state, record_class, &value);
        if (outcome != 0)
            goto done;
    }
    /* What the walk leaves goes to the Python method: its memo guard
       (durus/memo_guard.py) runs before Python's unpickler sizes a memo
       for a hostile index, and it keeps the shared unpickler. */
    value = PyObject_CallFunctionObjArgs(py_load_state_pickle, reader,
                                         state, memo, NULL);
    goto done;
done:
    Py_DECREF(state);
    Py_DECREF(memo);
    Py_DECREF(record_class);
    return value;
}

static PyObject *
get_state_impl(PyObject *reader, PyObject *data)
{
    if (!PyBytes_CheckExact(data))
        return python_get_state(reader, data);
    return get_state_of(reader, data, PyBytes_AS_STRING(data),
                        PyBytes_GET_SIZE(data));
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

/* Whether state, about to be given to setstate, can become the
   instance dict as it is: setstate is the compiled
   Persistent.__setstate__, state a dict that only the caller refers to,
   every key an interned exact str (the decoder interns the keys of the
   state dict it makes). */
static int
adoptable_state(PyObject *setstate, PyObject *state)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    if (!Py_IS_TYPE(setstate, &PyMethodDescr_Type) ||
            ((PyMethodDescrObject *)setstate)->d_method !=
            &persistent_setstate_def ||
            !PyDict_CheckExact(state) || Py_REFCNT(state) != 1)
        return 0;
    while (PyDict_Next(state, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || !PyUnicode_CHECK_INTERNED(key))
            return 0;
    }
    return 1;
}

static PyObject *
connection_load_state(PyObject *connection, PyObject *obj)
{
    PyObject *status, *oid, *invalid, *record, *reader, *state,
        *setstate, *result;
    const char *data;
    Py_ssize_t data_size;

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
    if (!record_data_span(record, &data, &data_size)) {
        Py_DECREF(record);
        goto python;  /* malformed: the Python path reports it */
    }
    reader = PyObject_GetAttr(connection, s_reader);
    if (reader == NULL) {
        Py_DECREF(record);
        return NULL;
    }
    /* Names the record in refusals of the unpickling policy. */
    if (PyObject_SetAttr(reader, s_loading_oid, oid) < 0) {
        Py_DECREF(reader);
        Py_DECREF(record);
        return NULL;
    }
    Py_INCREF(obj);
    /* (read in place: the record stays alive until the state is made) */
    state = get_state_of(reader, NULL, data, data_size);
    Py_DECREF(reader);
    Py_DECREF(record);
    if (state == NULL) {
        Py_DECREF(obj);
        return NULL;
    }
    /* type(obj).__setstate__(obj, state) */
    setstate = _PyType_Lookup(Py_TYPE(obj), s_setstate);
    if (setstate != NULL && adoptable_state(setstate, state)) {
        /* What the compiled Persistent.__setstate__ would make (a new
           dict with the same items and interned str keys) is this dict
           itself: nothing else refers to it. */
        int failed = PyObject_GenericSetAttr(obj, s_dict, state);
        Py_DECREF(state);
        if (failed == 0)
            set_slot(obj, off_status, saved_value);  /* as 4.3: loaded */
        /* The load snapshot, if the connection keeps them (snapshot.c). */
        if (failed == 0)
            failed = take_load_snapshot(connection, obj);
        Py_DECREF(obj);
        if (failed < 0)
            return NULL;
        Py_RETURN_NONE;
    }
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
    if (result != NULL)
        set_slot(obj, off_status, saved_value);  /* as 4.3: loaded */
    /* The load snapshot, if the connection keeps them (snapshot.c). */
    if (result != NULL && take_load_snapshot(connection, obj) < 0)
        Py_CLEAR(result);
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

/* connection.load_state(obj), obj by position or by keyword as in 4.3. */
static PyObject *
connection_load_state_call(PyObject *connection, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames != NULL || nargs != 1)
        return twin_decides(py_load_state, connection, args, nargs, kwnames);
    return connection_load_state(connection, args[0]);
}

static PyMethodDef connection_load_state_def = {
    "load_state", (PyCFunction)(void (*)(void))connection_load_state_call,
    METH_FASTCALL | METH_KEYWORDS,
    "load_state($self, /, obj)\n--\n\n"
    "Fill the ghost obj with its stored state."
};

/* configure_loads(ObjectReader, ObjectReader.get_state,
                   ObjectReader._load_state_pickle, decompress, zlib.error,
                   _EMPTY_MEMO, ConnectionBase, Connection.load_state,
                   Connection.get_stored_pickle, Connection._bind_new_object,
                   record.record_data, record.class_pickle_end)
   -> (load_state, _bind_new_object) descriptors for Connection.
   Every Python function the compiled loads fall back to is handed over
   here (durus/_accel.py lists the twins). */
static PyObject *
configure_loads(PyObject *module, PyObject *args)
{
    PyObject *new_reader_type, *get_state, *load_state_pickle, *decompress,
        *error, *memo, *connection_type, *load_state, *stored_pickle,
        *bind_new, *record_data, *pickle_end;
    if (!PyArg_ParseTuple(args, "O!OOOOO!O!OOOOO:configure_loads",
                          &PyType_Type, &new_reader_type, &get_state,
                          &load_state_pickle, &decompress, &error,
                          &PyDict_Type, &memo, &PyType_Type, &connection_type,
                          &load_state, &stored_pickle, &bind_new,
                          &record_data, &pickle_end))
        return NULL;
    Py_XSETREF(py_get_stored_pickle, Py_NewRef(stored_pickle));
    Py_XSETREF(reader_type, Py_NewRef(new_reader_type));
    Py_XSETREF(py_get_state, Py_NewRef(get_state));
    Py_XSETREF(py_load_state_pickle, Py_NewRef(load_state_pickle));
    Py_XSETREF(decompress_func, Py_NewRef(decompress));
    Py_XSETREF(zlib_error, Py_NewRef(error));
    Py_XSETREF(empty_memo, Py_NewRef(memo));
    Py_XSETREF(py_load_state, Py_NewRef(load_state));
    Py_XSETREF(py_bind_new_object, Py_NewRef(bind_new));
    Py_XSETREF(py_record_data, Py_NewRef(record_data));
    Py_XSETREF(py_class_pickle_end, Py_NewRef(pickle_end));
    return Py_BuildValue("(NN)",
        PyDescr_NewMethod((PyTypeObject *)connection_type,
                          &connection_load_state_def),
        PyDescr_NewMethod((PyTypeObject *)connection_type,
                          &bind_new_object_def));
}
