/* durus._speedups: what every part shares.

   The module's references to the Python side (set once by configure()
   and configure_loads(), called by durus.persistent and durus.connection
   at import), interned attribute names (the contract in durus/_accel.py),
   and the slot helpers. */

#ifndef DURUS_SPEEDUPS_COMMON_H
#define DURUS_SPEEDUPS_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* Python 3.10 (the oldest supported) has these under their private names. */
#if PY_VERSION_HEX < 0x030B0000
#define PyFloat_Unpack8(p, le) \
    _PyFloat_Unpack8((const unsigned char *)(p), (le))
#endif

/* The referent of a weak reference, borrowed, Py_None once it is dead (as
   PyWeakref_GetObject, deprecated from 3.13, gave it).  Borrowing is safe
   where the callers use it: the object is alive, held elsewhere, while
   the caller runs no Python code. */
#if PY_VERSION_HEX >= 0x030D0000
static inline PyObject *
weakref_referent(PyObject *ref)
{
    PyObject *obj;
    if (PyWeakref_GetRef(ref, &obj) < 0)
        return NULL;
    if (obj == NULL)
        return Py_None;
    Py_DECREF(obj);
    return obj;
}
#else
#define weakref_referent PyWeakref_GetObject
#endif

/* twin(self, *args, **kwargs): a compiled method hands calls it does not
   take itself (keywords, odd arity) to its Python twin, which then decides
   exactly as the pure path would, errors included. */
static PyObject *
twin_decides(PyObject *twin, PyObject *self, PyObject *const *args,
             Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *small[8], **full;
    Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0), i;
    PyObject *result;

    full = total + 1 <= 8 ? small : PyMem_New(PyObject *, total + 1);
    if (full == NULL)
        return PyErr_NoMemory();
    full[0] = self;
    for (i = 0; i < total; i++)
        full[i + 1] = args[i];
    result = PyObject_Vectorcall(twin, full, nargs + 1, kwnames);
    if (full != small)
        PyMem_Free(full);
    return result;
}

/* Set once by configure(), from durus.persistent and durus.connection. */
static PyObject *variants;          /* durus.persistent._variants */
static PyObject *exempt;            /* durus.persistent._EXEMPT */
static PyObject *standard_load_state;
static PyObject *base_new;          /* PersistentBase.__dict__['__new__'] */
static PyObject *class_setter;      /* object.__dict__['__class__'] */
static PyObject *py_note_read;      /* the Python twins, for the rare paths */
static PyObject *py_refresh_hooks;
static PyObject *py_setstate;
static PyObject *oid_ref_type;      /* durus.connection._OidRef */
static Py_ssize_t off_ref_key;      /* its 'key' slot (0: not known) */
static PyObject *py_hook_variants;
static PyObject *py_bind_new_object; /* Connection._bind_new_object */
static PyObject *empty_tuple, *saved_value, *ghost_value, *zero_value,
    *one_value;
static Py_ssize_t off_status, off_serial, off_connection, off_oid;
static int configured;
static PyObject *persistent_base;   /* durus.persistent.PersistentBase */

static PyObject *s_load_state, *s_p_load_state, *s_note_access,
    *s_transaction_serial, *s_unhooked, *s_key, *s_dict, *s_new, *s_append,
    *s_mapping, *s_callback, *s_latin1, *s_cache, *s_objects,
    *s_placeholder_origins, *s_connection, *s_load_persistent_id, *s_add,
    *s_recent_objects;

static PyObject *s_index, *s_dense, *s_overflow, *s_unindexed, *s_map,
    *s_count, *s_word_size, *s_words_start, *s_start, *s_file, *s_mm,
    *s_mapped, *s_load_number;

#define GHOST (-1)
#define SAVED 0

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* The slot's value (borrowed), or NULL when unset: the caller then takes
   the Python path, which raises the same AttributeError as before. */
static inline PyObject *
slot(PyObject *obj, Py_ssize_t off)
{
    return SLOT(obj, off);
}

static inline void
set_slot(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(value);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

/* -1, 0 or 1 as a C long; anything else (an odd status) gives 2. */
static inline long
status_of(PyObject *status)
{
    /* (small ints are shared: the usual statuses are these objects) */
    if (status == saved_value)
        return SAVED;
    if (status == ghost_value)
        return GHOST;
    if (PyLong_CheckExact(status)) {
        int overflow;
        long value = PyLong_AsLongAndOverflow(status, &overflow);
        if (!overflow && value >= -1 && value <= 1)
            return value;
    }
    return 2;
}

static int
is_persistent_instance(PyObject *obj)
{
    /* The slot offsets are valid for instances of PersistentBase's
       subclasses only; variants is keyed by exactly those classes. */
    return configured && PyDict_GetItemWithError(variants,
                                                 (PyObject *)Py_TYPE(obj))
                         != NULL;
}

/* A type's version tag, or 0 when it has none valid.  CPython gives a
   type a new tag, from a counter that never repeats, whenever something
   about it that its lookups depend on changes (its dict, its bases), and
   a type made at the address of a freed one starts without a tag: so
   (address, tag) names one state of one type, and remembering facts
   about it needs no reference. */
static inline unsigned int
type_tag(PyTypeObject *type)
{
#ifdef Py_TPFLAGS_VALID_VERSION_TAG
    if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG))
        return 0;
#endif
    return type->tp_version_tag;
}

/* Whether type is a subclass of PersistentBase.  PyType_IsSubtype walks
   the MRO; a walk of many objects meets few types, so the last type
   found persistent is remembered by (address, tag). */
static PyTypeObject *persistent_type_seen;
static unsigned int persistent_tag_seen;

static inline int
is_persistent_type(PyTypeObject *type)
{
    unsigned int tag;
    if (type == persistent_type_seen && type_tag(type) == persistent_tag_seen
            && persistent_tag_seen != 0)
        return 1;
    if (!PyType_IsSubtype(type, (PyTypeObject *)persistent_base))
        return 0;
    tag = type_tag(type);
    if (tag != 0) {
        persistent_type_seen = type;
        persistent_tag_seen = tag;
    }
    return 1;
}

/* obj.__class__ = cls, for a switch between two hook variants of one
   class (durus.persistent), which happens once or twice per loaded
   object.  CPython's __class__ setter checks on every call that the two
   layouts are compatible, a fact about the pair of classes alone; so a
   pair it accepted is remembered (by address and version tag, see
   type_tag), and later switches of that pair do only what the setter
   does after its checks: the audit event, the instance dict made real
   (the variants' shared dict keys differ), the class references.  Up to
   Python 3.12 only: 3.13 also detaches the dict from inline values,
   which no public function does, so there every switch takes the setter. */
#define SWITCHES_KEPT 16
static struct {
    PyTypeObject *from, *to;
    unsigned int from_tag, to_tag;
} switches_seen[SWITCHES_KEPT];

static inline size_t
switch_index(PyTypeObject *from, PyTypeObject *to)
{
    size_t a = (size_t)from, b = (size_t)to;
    return ((a >> 4) ^ (b >> 6) ^ (b >> 10)) & (SWITCHES_KEPT - 1);
}

/* Whether the pair (from, to) was accepted by the setter before: 1 when
   it was and is unchanged since, else 0. */
static inline int
switch_known(PyTypeObject *from, PyTypeObject *to)
{
    size_t i = switch_index(from, to);
    unsigned int from_tag = switches_seen[i].from_tag;
    return switches_seen[i].from == from && switches_seen[i].to == to &&
        from_tag != 0 && from_tag == type_tag(from) &&
        switches_seen[i].to_tag == type_tag(to);
}

static int
set_type(PyObject *obj, PyObject *cls)
{
    PyTypeObject *from = Py_TYPE(obj), *to = (PyTypeObject *)cls;
    int failed;
#if PY_VERSION_HEX < 0x030D0000
    if (PyType_Check(cls) && switch_known(from, to)) {
        if (PySys_Audit("object.__setattr__", "OsO", obj, "__class__",
                        cls) < 0)
            return -1;
        /* An audit hook may have changed the object or the classes; the
           dict pointer is NULL only when the dict could not be made (no
           memory): the setter then decides and says so. */
        if (Py_TYPE(obj) != from || !switch_known(from, to) ||
                !(from->tp_flags & Py_TPFLAGS_HEAPTYPE) ||
                !(to->tp_flags & Py_TPFLAGS_HEAPTYPE) ||
                (from->tp_dictoffset != 0 &&
                 _PyObject_GetDictPtr(obj) == NULL))
            goto setter;
        Py_INCREF(to);
        Py_SET_TYPE(obj, to);
        Py_DECREF(from);
        return 0;
    }
setter:
#endif
    /* The setter holds what it needs of from across the switch. */
    Py_INCREF(from);
    failed = Py_TYPE(class_setter)->tp_descr_set(class_setter, obj, cls);
    if (failed == 0 && PyType_Check(cls) && Py_TYPE(obj) == to &&
            type_tag(from) != 0 && type_tag(to) != 0) {
        size_t i = switch_index(from, to);
        switches_seen[i].from = from;
        switches_seen[i].to = to;
        switches_seen[i].from_tag = type_tag(from);
        switches_seen[i].to_tag = type_tag(to);
    }
    Py_DECREF(from);
    return failed;
}

/* func(obj), the Python twin of a step: 0, or -1 with its error. */
static int
call_twin(PyObject *func, PyObject *obj)
{
    PyObject *result = PyObject_CallOneArg(func, obj);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* sequence.append(obj), directly for a list: 0, or -1 with an error. */
static int
append_to(PyObject *sequence, PyObject *obj)
{
    PyObject *result;
    if (PyList_CheckExact(sequence))
        return PyList_Append(sequence, obj);
    result = PyObject_CallMethodOneArg(sequence, s_append, obj);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* connection._unhooked, or NULL with no error when absent; -1 on error. */
static int
get_unhooked(PyObject *connection, PyObject **result)
{
    PyObject *value = PyObject_GetAttr(connection, s_unhooked);
    if (value == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        *result = NULL;
        return 0;
    }
    *result = value;
    return 0;
}

#endif
