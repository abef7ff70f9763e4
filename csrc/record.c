/* The record layout (durus/record.py): the compiled twins of
   record.record_data and record.class_pickle_end, used by the reader and
   exported so that the tests compare them with their Python twins.

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static.  Needs read_be (shelf.c). */

/* The Python twins, handed over by configure_loads (reader.c). */
static PyObject *py_record_data, *py_class_pickle_end;

/* The data field of a record (oid 8, int4 length N, data N, refs),
   in place: 1 with *data and *size set, 0 when the record is malformed
   (the Python twin then says why).  data_of_record: the same as a new
   bytes object, or NULL without an error when malformed, or NULL with
   an error. */
static int
record_data_span(PyObject *record, const char **data, Py_ssize_t *size)
{
    Py_ssize_t total;
    const unsigned char *p;
    unsigned long length;

    if (!PyBytes_CheckExact(record))
        return 0;
    total = PyBytes_GET_SIZE(record);
    p = (const unsigned char *)PyBytes_AS_STRING(record);
    if (total < 12)
        return 0;
    length = (unsigned long)read_be(p + 8, 4);
    if ((Py_ssize_t)length > total - 12)
        return 0;
    *data = (const char *)p + 12;
    *size = (Py_ssize_t)length;
    return 1;
}

static PyObject *
data_of_record(PyObject *record)
{
    const char *data;
    Py_ssize_t size;
    if (!record_data_span(record, &data, &size))
        return NULL;
    return PyBytes_FromStringAndSize(data, size);
}

/* The first b'\nq\x00.' at or after offset 3 (where Durus's class
   pickles end), or NULL. */
static const char *
class_pickle_end(const char *bytes, Py_ssize_t size)
{
    const char *p = bytes + 3, *stop = bytes + size - 3;
    if (size <= 7)
        return NULL;
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
call_python_twin(PyObject *twin, PyObject *arg)
{
    if (twin == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "durus._speedups not configured");
        return NULL;
    }
    return PyObject_CallOneArg(twin, arg);
}

/* record_data(record), for the tests: the reader uses data_of_record. */
static PyObject *
record_data_c(PyObject *module, PyObject *record)
{
    PyObject *data;
    if (!PyBytes_CheckExact(record))
        return call_python_twin(py_record_data, record);
    data = data_of_record(record);
    if (data == NULL && !PyErr_Occurred())
        return call_python_twin(py_record_data, record);
    return data;
}

/* class_pickle_end(data), for the tests: the reader uses the C form. */
static PyObject *
class_pickle_end_c(PyObject *module, PyObject *data)
{
    const char *found;
    if (!PyBytes_CheckExact(data))
        return call_python_twin(py_class_pickle_end, data);
    found = class_pickle_end(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    return PyLong_FromSsize_t(
        found == NULL ? -1 : found - PyBytes_AS_STRING(data) + 4);
}
