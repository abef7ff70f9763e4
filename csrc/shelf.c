/* Shelf.load_number for memory-mapped SHELF-1 files (durus/shelf.py).

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static. */

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
        else if (PyDict_CheckExact(overflow) && PyDict_GET_SIZE(overflow) == 0)
            offset = 0;  /* (a packed file: nothing appended yet) */
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

/* The four fields of the last OffsetMap read (durus/shelf.py), kept
   with a weak reference to the map: an OffsetMap sets them once, when it
   reads its head (OffsetMap._read, which checked them against the file),
   so the next load through the same map need not read four attributes
   again.  (Weak: a storage dropped without close() still lets its file
   go; a new map at a dead one's address does not match.) */
static PyObject *known_map_ref;
static long long known_count, known_word_size, known_words_start,
    known_start;

/* The fields of map into the known_* statics; -1 not handled, -2 error. */
static int
know_map(PyObject *map)
{
    long long count, word_size, words_start, start;
    PyObject *ref;
    if (known_map_ref != NULL && weakref_referent(known_map_ref) == map)
        return 0;
    count = attr_index(map, s_count);
    word_size = attr_index(map, s_word_size);
    words_start = attr_index(map, s_words_start);
    start = attr_index(map, s_start);
    if (count == -2 || word_size == -2 || words_start == -2 || start == -2)
        return -2;
    if (count < 0 || word_size < 1 || word_size > 8 || words_start < 0 ||
            start < 0)
        return -1;
    known_count = count;
    known_word_size = word_size;
    known_words_start = words_start;
    known_start = start;
    ref = PyWeakref_NewRef(map, NULL);
    if (ref == NULL)
        PyErr_Clear();  /* (not weakly referable: read every time) */
    Py_XSETREF(known_map_ref, ref);
    return 0;
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
        long long word_size, words_start, start;
        int known;
        unindexed = attr_index(shelf, s_unindexed);
        if (unindexed != 0) {
            if (unindexed == -2)
                goto error;
            goto python;
        }
        map = PyObject_GetAttr(shelf, s_map);
        if (map == NULL)
            goto error;
        known = know_map(map);
        if (known == -2)
            goto error;
        if (known < 0 || number >= known_count)
            goto python;
        word_size = known_word_size;
        words_start = known_words_start;
        start = known_start;
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
    result = PyObject_CallMethodOneArg(shelf, s_load_number, args[1]);
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
