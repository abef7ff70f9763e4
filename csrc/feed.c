/* Feed: the file the reader's shared unpickler reads (durus/serialize.py).

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static. */

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
