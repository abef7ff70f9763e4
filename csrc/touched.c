/* Connection.touched_since_last_call (durus/connection.py): the objects
   read or written since the previous call, each once, in first-touch
   order, their hooks armed again.

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static.  Uses refresh() of hooks.c.

   Objects are told apart by address, as the Python twin does with id():
   a small open-addressing set of pointers, so no object's own __hash__
   or __eq__ runs. */

typedef struct {
    PyObject **slots;
    size_t mask;
} PointerSet;

static int
pointer_set_init(PointerSet *set, Py_ssize_t count)
{
    size_t size = 16;
    while (size < (size_t)count * 2)
        size <<= 1;
    set->slots = PyMem_Calloc(size, sizeof(PyObject *));
    if (set->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    set->mask = size - 1;
    return 0;
}

/* 1 when added, 0 when already there. */
static int
pointer_set_add(PointerSet *set, PyObject *obj)
{
    size_t hash = (size_t)obj;
    size_t i = (hash >> 4 ^ hash >> 12) & set->mask;
    while (set->slots[i] != NULL) {
        if (set->slots[i] == obj)
            return 0;
        i = (i + 1) & set->mask;
    }
    set->slots[i] = obj;
    return 1;
}

static PyObject *
touched_since_last_call(PyObject *module, PyObject *connection)
{
    PyObject *unhooked, *empty, *result = NULL;
    PyObject *last_type = NULL, *last_triple = NULL;
    PointerSet seen;
    Py_ssize_t i, count;

    unhooked = PyObject_GetAttr(connection, s_unhooked);
    if (unhooked == NULL)
        return NULL;
    if (!PyList_CheckExact(unhooked) || !configured) {
        Py_DECREF(unhooked);
        PyErr_SetString(PyExc_TypeError,
                        "touched_since_last_call: _unhooked is not a list");
        return NULL;
    }
    empty = PyList_New(0);
    if (empty == NULL || PyObject_SetAttr(connection, s_unhooked, empty) < 0) {
        Py_XDECREF(empty);
        Py_DECREF(unhooked);
        return NULL;
    }
    Py_DECREF(empty);
    /* The old list is ours now: no other code appends to it. */
    count = PyList_GET_SIZE(unhooked);
    if (pointer_set_init(&seen, count) < 0) {
        Py_DECREF(unhooked);
        return NULL;
    }
    result = PyList_New(0);
    if (result == NULL)
        goto done;
    for (i = 0; i < PyList_GET_SIZE(unhooked); i++) {
        PyObject *obj = PyList_GET_ITEM(unhooked, i);
        PyObject *triple, *status, *owner;
        if (!pointer_set_add(&seen, obj))
            continue;
        if (PyList_Append(result, obj) < 0)
            goto fail;
        /* Runs of objects of one class are the rule: the last class's
           entry is kept (held) for the next object. */
        if ((PyObject *)Py_TYPE(obj) == last_type)
            triple = last_triple;
        else {
            triple = PyDict_GetItemWithError(variants,
                                             (PyObject *)Py_TYPE(obj));
            if (triple == NULL && PyErr_Occurred())
                goto fail;
            Py_XINCREF(triple);
            Py_XSETREF(last_triple, triple);
            last_type = triple ? (PyObject *)Py_TYPE(obj) : NULL;
        }
        status = triple ? slot(obj, off_status) : NULL;
        owner = triple ? slot(obj, off_connection) : NULL;
        if (triple == NULL || !PyList_CheckExact(triple) ||
                PyList_GET_SIZE(triple) != 4 || status == NULL ||
                owner != connection || status_of(status) == GHOST) {
            /* refresh_hooks(obj); its own checks, its Python twin for
               anything unusual. */
            Py_INCREF(obj);
            if ((triple != NULL ? refresh(obj) :
                    call_twin(py_refresh_hooks, obj)) < 0) {
                Py_DECREF(obj);
                goto fail;
            }
            Py_DECREF(obj);
        }
        else if ((PyObject *)Py_TYPE(obj) != PyList_GET_ITEM(triple, 1)) {
            PyObject *watched = Py_NewRef(PyList_GET_ITEM(triple, 1));
            int failed = set_type(obj, watched);
            Py_DECREF(watched);
            if (failed < 0)
                goto fail;
        }
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    PyMem_Free(seen.slots);
    Py_XDECREF(last_triple);
    Py_DECREF(unhooked);
    return result;
}

/* instances_of_class(objects, cls) of durus.inspect: the objects whose
   type is a subclass of cls, in order.  issubclass() is asked once per
   distinct type (it may run Python code: an ABC's __subclasscheck__), so
   a walk of many objects of few types costs a type comparison each. */
static PyObject *
instances_of_class(PyObject *module, PyObject *args)
{
    PyObject *objects, *cls, *sequence, *answers, *result = NULL;
    PyObject *last_type = NULL;
    int last_answer = 0;
    Py_ssize_t i;

    if (!PyArg_ParseTuple(args, "OO:instances_of_class", &objects, &cls))
        return NULL;
    sequence = PySequence_Fast(objects, "instances_of_class needs a sequence");
    if (sequence == NULL)
        return NULL;
    /* type -> answer; holds the types, so last_type stays alive. */
    answers = PyDict_New();
    result = PyList_New(0);
    if (answers == NULL || result == NULL)
        goto fail;
    /* The size is read again each step: issubclass() may change a list. */
    for (i = 0; i < PySequence_Fast_GET_SIZE(sequence); i++) {
        PyObject *obj = PySequence_Fast_GET_ITEM(sequence, i);
        PyObject *kind = (PyObject *)Py_TYPE(obj);
        if (kind != last_type) {
            PyObject *known = PyDict_GetItemWithError(answers, kind);
            if (known == NULL) {
                int answer;
                if (PyErr_Occurred())
                    goto fail;
                Py_INCREF(obj);
                Py_INCREF(kind);
                answer = PyObject_IsSubclass(kind, cls);
                if (answer >= 0 && PyDict_SetItem(
                        answers, kind, answer ? Py_True : Py_False) < 0)
                    answer = -1;
                Py_DECREF(kind);
                if (answer < 0) {
                    Py_DECREF(obj);
                    goto fail;
                }
                last_answer = answer;
                /* A list may have been changed meanwhile: append the
                   object asked about, held until then. */
                last_type = kind;
                if (last_answer && PyList_Append(result, obj) < 0) {
                    Py_DECREF(obj);
                    goto fail;
                }
                Py_DECREF(obj);
                continue;
            }
            last_type = kind;
            last_answer = known == Py_True;
        }
        if (last_answer && PyList_Append(result, obj) < 0)
            goto fail;
    }
    Py_DECREF(answers);
    Py_DECREF(sequence);
    return result;
fail:
    Py_XDECREF(answers);
    Py_XDECREF(result);
    Py_DECREF(sequence);
    return NULL;
}
