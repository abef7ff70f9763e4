/* LoadSnapshots: load-time snapshots of object states and the walk that
   compares a state with its snapshot (durus/load_snapshots.py, the
   reference; its module doc says what a snapshot is and why a match
   proves a state unchanged).

   Part of durus._speedups, compiled as one translation unit by
   csrc/module.c (which includes every part), so that the helpers of
   common.h stay static.  Included before reader.c, whose compiled
   Connection.load_state calls take_load_snapshot().

   No Python code runs during a walk: items are read with the concrete
   list/dict/set/tuple API, types are compared by pointer, and the leaf
   types set holds type objects only (hashed by identity).  So the state
   cannot change under the walk, and reference counts read during it are
   exact: a container held only by its parent has a count of 1 (2 for a
   tuple, which a matching snapshot holds once more). */

static PyObject *snap_dict_getstate, *snap_slots_getstate,
    *snap_data_slot_names, *snap_leaf_types, *snap_marker_list,
    *snap_marker_dict, *snap_marker_set, *snap_marker_persistent,
    *snap_layouts;
static Py_ssize_t snap_max_depth = 16, snap_max_tokens = 1 << 20,
    snap_prune_minimum = 65536;
/* Set once a compiled store exists: until then compiled loads never look
   for a store (a connection gets a compiled one when this module runs). */
static int snapshots_in_use;
static PyObject *s_load_snapshots, *s_getstate;

/* The store's tables: oid -> snapshot, open addressing with linear
   probing, both held.  A dict did the same for about five times the
   instructions per load (an insert that looks the key up generically,
   a second dict for the tracked snapshots to discard from, a lookup per
   object after each statement).  Keys are exact bytes (what durus
   gives every stored object); a state whose oid is anything else gets
   no snapshot, which leaves its object a suspect, compared with its
   record: slower, never wrong. */
typedef struct {
    PyObject *oid;          /* NULL: a free slot */
    PyObject *snapshot;     /* a Snapshot or TrackedSnapshot */
    uint64_t hash;
} SnapEntry;

typedef struct {
    SnapEntry *entries;     /* NULL until the first entry */
    int shift;              /* 64 - log2(slots): a hash's home slot is
                               hash >> shift */
    Py_ssize_t slots, used;
    size_t changes;         /* counts entries placed and removed */
} SnapTable;

typedef struct {
    PyObject_HEAD
    PyObject *objects;      /* the connection's cache.objects */
    SnapTable plain;        /* Snapshots */
    /* TrackedSnapshots (holding an object the collector tracks: a
       node's item tuples) are kept apart, so that a collection that
       reaches the store walks only them, never the bulk. */
    SnapTable held;
    Py_ssize_t prune_at;
    Py_ssize_t prune_floor; /* prune_at never drops below this */
} SnapshotsObject;

static PyTypeObject SnapshotsType;

#define SNAP_UNSUPPORTED 0
#define SNAP_OK 1

/* -- one snapshot: a row of words ------------------------------------------

   The Python twin's tokens, packed: a word whose two low bits are 00 is
   a held reference (a leaf value, an attribute name, an oid, a tuple);
   the others are raw values the twin makes int objects or markers for:

     (n << 2) | 1      a count or a length
     address | 2       a container's id (object addresses are aligned)
     (kind << 2) | 3   a marker (SNAP_LIST, SNAP_DICT, SNAP_SET,
                       SNAP_PERSISTENT)

   So taking a snapshot allocates one object and no int, and that object
   is not a container for the garbage collector (Snapshot has no
   Py_TPFLAGS_HAVE_GC): it neither counts towards a collection nor is
   ever traversed.  Only a snapshot holding an object the collector
   tracks (a tuple of a BTree node's items, a class, a new persistent
   object) could be part of a reference cycle (such an object can lead
   back to the connection): it is a TrackedSnapshot, the same layout with
   the collector's support. */

typedef struct {
    PyObject_VAR_HEAD
    uintptr_t words[1];
} SnapshotObject;

static PyTypeObject SnapshotType, TrackedSnapshotType;

#define SNAP_LIST 0
#define SNAP_DICT 1
#define SNAP_SET 2
#define SNAP_PERSISTENT 3
#define SNAP_WORD_REF(w) (((w) & 3) == 0)
#define SNAP_WORD_INT(n) ((((uintptr_t)(n)) << 2) | 1)
#define SNAP_WORD_ID(p) (((uintptr_t)(p)) | 2)
#define SNAP_WORD_MARKER(kind) ((((uintptr_t)(kind)) << 2) | 3)

#define IS_SNAPSHOT(op) (Py_IS_TYPE(op, &SnapshotType) || \
                         Py_IS_TYPE(op, &TrackedSnapshotType))

static void
snapshot_dealloc(SnapshotObject *self)
{
    Py_ssize_t i;
    if (Py_IS_TYPE(self, &TrackedSnapshotType))
        PyObject_GC_UnTrack(self);
    for (i = 0; i < Py_SIZE(self); i++)
        if (SNAP_WORD_REF(self->words[i]))
            Py_DECREF((PyObject *)self->words[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
snapshot_traverse(SnapshotObject *self, visitproc visit, void *arg)
{
    Py_ssize_t i;
    for (i = 0; i < Py_SIZE(self); i++)
        if (SNAP_WORD_REF(self->words[i]))
            Py_VISIT((PyObject *)self->words[i]);
    return 0;
}

/* Breaking a cycle leaves an empty snapshot, which matches no state. */
static int
snapshot_clear(SnapshotObject *self)
{
    Py_ssize_t i, size = Py_SIZE(self);
    Py_SET_SIZE(self, 0);
    for (i = 0; i < size; i++)
        if (SNAP_WORD_REF(self->words[i])) {
            PyObject *held = (PyObject *)self->words[i];
            self->words[i] = SNAP_WORD_INT(0);
            Py_DECREF(held);
        }
    return 0;
}

static PyTypeObject SnapshotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "durus._speedups.Snapshot",
    .tp_basicsize = offsetof(SnapshotObject, words),
    .tp_itemsize = sizeof(uintptr_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One object's load snapshot (LoadSnapshots.snapshot(oid) "
              "gives its tokens).",
    .tp_dealloc = (destructor)snapshot_dealloc,
    .tp_free = PyObject_Free,
};

static PyTypeObject TrackedSnapshotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "durus._speedups.TrackedSnapshot",
    .tp_basicsize = offsetof(SnapshotObject, words),
    .tp_itemsize = sizeof(uintptr_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A load snapshot holding objects the collector tracks.",
    .tp_dealloc = (destructor)snapshot_dealloc,
    .tp_traverse = (traverseproc)snapshot_traverse,
    .tp_clear = (inquiry)snapshot_clear,
    .tp_free = PyObject_GC_Del,
};

/* The twin's tokens of a snapshot (a new tuple), NULL with an error. */
static PyObject *
snapshot_tokens(SnapshotObject *self)
{
    PyObject *markers[4] = {snap_marker_list, snap_marker_dict,
                            snap_marker_set, snap_marker_persistent};
    PyObject *tokens = PyTuple_New(Py_SIZE(self)), *token;
    Py_ssize_t i;
    if (tokens == NULL)
        return NULL;
    for (i = 0; i < Py_SIZE(self); i++) {
        uintptr_t word = self->words[i];
        switch (word & 3) {
        case 0:
            token = Py_NewRef((PyObject *)word);
            break;
        case 1:
            token = PyLong_FromSize_t((size_t)(word >> 2));
            break;
        case 2:
            token = PyLong_FromVoidPtr((void *)(word & ~(uintptr_t)3));
            break;
        default:
            token = Py_NewRef(markers[(word >> 2) & 3]);
        }
        if (token == NULL) {
            Py_DECREF(tokens);
            return NULL;
        }
        PyTuple_SET_ITEM(tokens, i, token);
    }
    return tokens;
}

/* Leaves: 0 (not a leaf), LEAF_PLAIN (an immutable value or a class:
   the value itself is the token) or LEAF_PERSISTENT (the persistent
   marker and its oid, or the object itself when it has none); -1. */
#define LEAF_PLAIN 1
#define LEAF_PERSISTENT 2

static inline int
snap_leaf_kind(PyObject *value)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyUnicode_Type || type == &PyLong_Type ||
            type == &PyFloat_Type || value == Py_None ||
            type == &PyBool_Type || type == &PyBytes_Type)
        return LEAF_PLAIN;
    if (is_persistent_type(type))
        return LEAF_PERSISTENT;
    if (PyType_Check(value))
        return LEAF_PLAIN;
    switch (PySet_Contains(snap_leaf_types, (PyObject *)type)) {
    case 1:
        return LEAF_PLAIN;
    case 0:
        return 0;
    default:
        return -1;
    }
}

/* The data slots of a class: a tuple of (name, offset) pairs, or None
   when one is not a plain object slot (borrowed, cached). */
static PyObject *
snap_layout(PyTypeObject *type)
{
    PyObject *layout = PyDict_GetItemWithError(snap_layouts,
                                               (PyObject *)type);
    PyObject *names, *pairs = NULL;
    Py_ssize_t i, count;

    if (layout != NULL || PyErr_Occurred())
        return layout;
    names = PyObject_CallOneArg(snap_data_slot_names, (PyObject *)type);
    if (names == NULL)
        return NULL;
    if (!PyList_CheckExact(names) && !PyTuple_CheckExact(names)) {
        layout = Py_NewRef(Py_None);
        goto store;
    }
    count = PySequence_Fast_GET_SIZE(names);
    pairs = PyTuple_New(count);
    if (pairs == NULL) {
        Py_DECREF(names);
        return NULL;
    }
    layout = pairs;
    for (i = 0; i < count; i++) {
        PyObject *name = PySequence_Fast_GET_ITEM(names, i);
        PyObject *found = PyUnicode_CheckExact(name) ?
            _PyType_Lookup(type, name) : NULL;
        PyObject *pair;
        if (found == NULL || !Py_IS_TYPE(found, &PyMemberDescr_Type) ||
                ((PyMemberDescrObject *)found)->d_member->type
                != T_OBJECT_EX) {
            Py_DECREF(pairs);
            layout = Py_NewRef(Py_None);
            break;
        }
        pair = Py_BuildValue("(On)", name,
            ((PyMemberDescrObject *)found)->d_member->offset);
        if (pair == NULL) {
            Py_DECREF(pairs);
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(pairs, i, pair);
    }
store:
    Py_DECREF(names);
    if (PyDict_SetItem(snap_layouts, (PyObject *)type, layout) < 0) {
        Py_DECREF(layout);
        return NULL;
    }
    Py_DECREF(layout);
    return layout;   /* held by snap_layouts */
}

/* What the writer's state of obj holds: its instance dict (new ref, or
   NULL) and its data slots layout (borrowed tuple, or NULL).  Returns
   SNAP_OK, SNAP_UNSUPPORTED (a class with its own __getstate__, an odd
   layout) or -1 with an error. */
/* What a class's states hold, remembered for the last class asked about
   (by address and version tag, see type_tag in common.h): its
   __getstate__ is one of the two the writer knows (PARTS_DICT,
   PARTS_SLOTS with the slots' layout) or another (PARTS_OTHER). */
#define PARTS_OTHER 0
#define PARTS_DICT 1
#define PARTS_SLOTS 2
static PyTypeObject *parts_type_seen;
static unsigned int parts_tag_seen;
static int parts_seen;
static PyObject *parts_layout_seen;     /* borrowed from snap_layouts */

static int
snap_class_parts(PyTypeObject *type, PyObject **layout)
{
    PyObject *getstate;
    unsigned int tag = type_tag(type);
    int parts;
    if (type == parts_type_seen && tag == parts_tag_seen && tag != 0) {
        *layout = parts_layout_seen;
        return parts_seen;
    }
    getstate = _PyType_Lookup(type, s_getstate);
    *layout = NULL;
    if (getstate == snap_dict_getstate)
        parts = PARTS_DICT;
    else if (getstate != snap_slots_getstate)
        parts = PARTS_OTHER;
    else {
        *layout = snap_layout(type);
        if (*layout == NULL)
            return -1;
        parts = *layout == Py_None ? PARTS_OTHER : PARTS_SLOTS;
    }
    tag = type_tag(type);     /* (the lookup may have given it one) */
    if (tag != 0) {
        parts_type_seen = type;
        parts_tag_seen = tag;
        parts_seen = parts;
        parts_layout_seen = *layout;
    }
    return parts;
}

static inline int
snap_state_parts(PyObject *obj, PyObject **attributes, PyObject **layout)
{
    PyTypeObject *type = Py_TYPE(obj);
    int parts = snap_class_parts(type, layout);
    *attributes = NULL;
    if (parts < 0)
        return -1;
    if (parts == PARTS_OTHER) {
        *layout = NULL;
        return SNAP_UNSUPPORTED;
    }
    if (type->tp_dictoffset != 0) {
        /* The dict itself when there is one (made real from inline
           values if need be), else a new one as obj.__dict__ makes. */
        PyObject **where = _PyObject_GetDictPtr(obj);
        *attributes = where != NULL && *where != NULL ?
            Py_NewRef(*where) : PyObject_GenericGetDict(obj, NULL);
        if (*attributes == NULL)
            return -1;
        if (!PyDict_CheckExact(*attributes)) {
            Py_CLEAR(*attributes);
            return SNAP_UNSUPPORTED;
        }
    }
    if (parts == PARTS_DICT)
        return *attributes == NULL ? SNAP_UNSUPPORTED : SNAP_OK;
    return SNAP_OK;
}

/* -- taking: words gathered in a buffer, then one Snapshot -------------- */

typedef struct {
    uintptr_t *items;
    Py_ssize_t size, capacity;
    int tracked;            /* holds an object the collector tracks */
    uintptr_t inline_items[64];
} SnapTokens;

/* More room: the capacity never passes snap_max_tokens, so a full buffer
   at that size means the state has too many tokens (SNAP_UNSUPPORTED). */
static int
snap_grow(SnapTokens *t)
{
    Py_ssize_t capacity = t->capacity * 2;
    uintptr_t *items;
    if (t->capacity >= snap_max_tokens)
        return SNAP_UNSUPPORTED;
    if (capacity > snap_max_tokens)
        capacity = snap_max_tokens;
    if (t->items == t->inline_items) {
        items = PyMem_New(uintptr_t, capacity);
        if (items != NULL)
            memcpy(items, t->items, t->size * sizeof(uintptr_t));
    }
    else
        items = PyMem_Resize(t->items, uintptr_t, capacity);
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->items = items;
    t->capacity = capacity;
    return SNAP_OK;
}

/* A raw word (see SnapshotObject). */
static inline int
snap_emit_word(SnapTokens *t, uintptr_t word)
{
    if (t->size == t->capacity) {
        int grown = snap_grow(t);
        if (grown != SNAP_OK)
            return grown;
    }
    t->items[t->size++] = word;
    return SNAP_OK;
}

/* A held reference to a value the collector never tracks (an exact str,
   int, float, bool, bytes, None). */
static inline int
snap_emit_atom(SnapTokens *t, PyObject *value)
{
    int result = snap_emit_word(t, (uintptr_t)value);
    if (result == SNAP_OK)
        Py_INCREF(value);
    return result;
}

/* A held reference to any object. */
static inline int
snap_emit(SnapTokens *t, PyObject *value)
{
    int result;
    if (!SNAP_WORD_REF((uintptr_t)value))
        return SNAP_UNSUPPORTED;   /* (objects are aligned: never) */
    result = snap_emit_word(t, (uintptr_t)value);
    if (result != SNAP_OK)
        return result;
    Py_INCREF(value);
    if (!t->tracked && PyObject_IS_GC(value) && PyObject_GC_IsTracked(value))
        t->tracked = 1;
    return SNAP_OK;
}

static void
snap_tokens_clear(SnapTokens *t)
{
    Py_ssize_t i;
    for (i = 0; i < t->size; i++)
        if (SNAP_WORD_REF(t->items[i]))
            Py_DECREF((PyObject *)t->items[i]);
    if (t->items != t->inline_items)
        PyMem_Free(t->items);
    t->items = t->inline_items;
    t->size = 0;
}

static int snap_take_value(SnapTokens *t, PyObject *value, int depth);

/* The immutable values whose token is the value itself and that the
   collector never tracks: most of what a state holds, so tested first
   and inline wherever a state's items are walked. */
#define SNAP_ATOM(type, value) \
    ((type) == &PyUnicode_Type || (type) == &PyLong_Type || \
     (type) == &PyFloat_Type || (value) == Py_None || \
     (type) == &PyBool_Type || (type) == &PyBytes_Type)

/* snap_take_value, without a call for an atom. */
static int snap_take_immutable(SnapTokens *t, PyObject *value, int depth);

static inline int
snap_take_item(SnapTokens *t, PyObject *value, int depth)
{
    if (SNAP_ATOM(Py_TYPE(value), value))
        return snap_emit_atom(t, value);
    if (PyTuple_CheckExact(value))      /* (a node's items) */
        return snap_take_immutable(t, value, depth);
    return snap_take_value(t, value, depth);
}

#define SNAP_TRY(call) do { int r_ = (call); if (r_ != SNAP_OK) return r_; } \
    while (0)

static int
snap_take_container(SnapTokens *t, PyObject *value, int kind, int depth)
{
    if (depth >= snap_max_depth)
        return SNAP_UNSUPPORTED;
    SNAP_TRY(snap_emit_word(t, SNAP_WORD_MARKER(kind)));
    SNAP_TRY(snap_emit_word(t, SNAP_WORD_ID(value)));
    if (kind == SNAP_LIST) {
        Py_ssize_t i;
        SNAP_TRY(snap_emit_word(t, SNAP_WORD_INT(PyList_GET_SIZE(value))));
        for (i = 0; i < PyList_GET_SIZE(value); i++)
            SNAP_TRY(snap_take_item(t, PyList_GET_ITEM(value, i),
                                    depth + 1));
    }
    else if (kind == SNAP_DICT) {
        Py_ssize_t position = 0;
        PyObject *key, *item;
        SNAP_TRY(snap_emit_word(t, SNAP_WORD_INT(PyDict_GET_SIZE(value))));
        while (PyDict_Next(value, &position, &key, &item)) {
            SNAP_TRY(snap_take_item(t, key, depth + 1));
            SNAP_TRY(snap_take_item(t, item, depth + 1));
        }
    }
    else {
        PyObject *iterator, *item;
        int result = SNAP_OK;
        SNAP_TRY(snap_emit_word(t, SNAP_WORD_INT(PySet_GET_SIZE(value))));
        iterator = PyObject_GetIter(value);
        if (iterator == NULL)
            return -1;
        while (result == SNAP_OK && (item = PyIter_Next(iterator)) != NULL) {
            result = snap_take_value(t, item, depth + 1);
            Py_DECREF(item);
        }
        Py_DECREF(iterator);
        if (result == SNAP_OK && PyErr_Occurred())
            return -1;
        return result;
    }
    return SNAP_OK;
}

/* A tuple or frozenset: itself, then its items that are not leaves. */
static int
snap_take_immutable(SnapTokens *t, PyObject *value, int depth)
{
    PyObject *iterator, *item;
    int result = SNAP_OK, leaf;

    SNAP_TRY(snap_emit(t, value));
    if (PyTuple_CheckExact(value)) {
        Py_ssize_t i;
        for (i = 0; i < PyTuple_GET_SIZE(value); i++) {
            item = PyTuple_GET_ITEM(value, i);
            leaf = snap_leaf_kind(item);
            if (leaf < 0)
                return -1;
            if (!leaf)
                SNAP_TRY(depth >= snap_max_depth ? SNAP_UNSUPPORTED :
                         snap_take_value(t, item, depth + 1));
        }
        return SNAP_OK;
    }
    iterator = PyObject_GetIter(value);
    if (iterator == NULL)
        return -1;
    while (result == SNAP_OK && (item = PyIter_Next(iterator)) != NULL) {
        leaf = snap_leaf_kind(item);
        if (leaf < 0)
            result = -1;
        else if (!leaf)
            result = depth >= snap_max_depth ? SNAP_UNSUPPORTED :
                snap_take_value(t, item, depth + 1);
        Py_DECREF(item);
    }
    Py_DECREF(iterator);
    if (result == SNAP_OK && PyErr_Occurred())
        return -1;
    return result;
}

static int
snap_take_value(SnapTokens *t, PyObject *value, int depth)
{
    PyTypeObject *type = Py_TYPE(value);
    int leaf;
    if (SNAP_ATOM(type, value))
        return snap_emit_atom(t, value);
    if (type == &PyList_Type)
        return snap_take_container(t, value, SNAP_LIST, depth);
    if (type == &PyDict_Type)
        return snap_take_container(t, value, SNAP_DICT, depth);
    if (type == &PySet_Type)
        return snap_take_container(t, value, SNAP_SET, depth);
    if (type == &PyTuple_Type || type == &PyFrozenSet_Type)
        return snap_take_immutable(t, value, depth);
    leaf = snap_leaf_kind(value);
    if (leaf < 0)
        return -1;
    if (leaf == LEAF_PERSISTENT) {
        PyObject *oid = slot(value, off_oid);
        if (oid != NULL && oid != Py_None) {
            SNAP_TRY(snap_emit_word(t, SNAP_WORD_MARKER(SNAP_PERSISTENT)));
            return PyBytes_CheckExact(oid) ? snap_emit_atom(t, oid) :
                snap_emit(t, oid);
        }
    }
    return leaf ? snap_emit(t, value) : SNAP_UNSUPPORTED;
}

/* The count, then name and value of each attribute and set slot. */
static int
snap_take_state(SnapTokens *t, PyObject *obj, PyObject *attributes,
                PyObject *layout)
{
    Py_ssize_t count = 0, i, position = 0;
    PyObject *key, *value;

    if (attributes != NULL)
        count = PyDict_GET_SIZE(attributes);
    if (layout != NULL)
        for (i = 0; i < PyTuple_GET_SIZE(layout); i++) {
            Py_ssize_t offset = PyLong_AsSsize_t(
                PyTuple_GET_ITEM(PyTuple_GET_ITEM(layout, i), 1));
            if (SLOT(obj, offset) != NULL)
                count++;
        }
    SNAP_TRY(snap_emit_word(t, SNAP_WORD_INT(count)));
    if (attributes != NULL)
        while (PyDict_Next(attributes, &position, &key, &value)) {
            SNAP_TRY(PyUnicode_CheckExact(key) ? snap_emit_atom(t, key) :
                     snap_emit(t, key));
            SNAP_TRY(snap_take_item(t, value, 0));
        }
    if (layout != NULL)
        for (i = 0; i < PyTuple_GET_SIZE(layout); i++) {
            PyObject *pair = PyTuple_GET_ITEM(layout, i);
            value = SLOT(obj, PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 1)));
            if (value == NULL)
                continue;
            SNAP_TRY(snap_emit(t, PyTuple_GET_ITEM(pair, 0)));
            SNAP_TRY(snap_take_item(t, value, 0));
        }
    return SNAP_OK;
}

/* The snapshot of obj's state (a new Snapshot or TrackedSnapshot),
   Py_None when it cannot be snapshotted, NULL on error. */
static PyObject *
snap_tokens(PyObject *obj)
{
    PyObject *attributes, *layout;
    SnapshotObject *result;
    SnapTokens t;
    int outcome = snap_state_parts(obj, &attributes, &layout);

    if (outcome < 0)
        return NULL;
    if (outcome == SNAP_UNSUPPORTED)
        Py_RETURN_NONE;
    t.items = t.inline_items;
    t.size = 0;
    t.capacity = sizeof(t.inline_items) / sizeof(t.inline_items[0]);
    if (t.capacity > snap_max_tokens)
        t.capacity = snap_max_tokens > 0 ? snap_max_tokens : 0;
    t.tracked = 0;
    outcome = snap_take_state(&t, obj, attributes, layout);
    Py_XDECREF(attributes);
    if (outcome != SNAP_OK) {
        snap_tokens_clear(&t);
        if (outcome < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    result = t.tracked ?
        PyObject_GC_NewVar(SnapshotObject, &TrackedSnapshotType, t.size) :
        PyObject_NewVar(SnapshotObject, &SnapshotType, t.size);
    if (result == NULL) {
        snap_tokens_clear(&t);
        return NULL;
    }
    memcpy(result->words, t.items, t.size * sizeof(uintptr_t));
    t.size = 0;                                   /* references moved */
    snap_tokens_clear(&t);
    if (Py_IS_TYPE(result, &TrackedSnapshotType))
        PyObject_GC_Track(result);
    return (PyObject *)result;
}

/* -- comparing: a state walked against its tokens ---------------------- */

typedef struct {
    const uintptr_t *words;     /* the snapshot's */
    Py_ssize_t size;
    Py_ssize_t next;    /* the next word to match */
    int exposed;
} SnapCompare;

static int snap_match_equal(uintptr_t word, PyObject *value);

/* 1 when the next word holds value (or an equal int or bytes: a leaf
   read anew, an oid), 0 when not. */
static inline int
snap_match(SnapCompare *c, PyObject *value)
{
    uintptr_t word;
    if (c->next >= c->size)
        return 0;
    word = c->words[c->next++];
    if (word == (uintptr_t)value)
        return 1;
    return snap_match_equal(word, value);
}

/* The rare rest of snap_match: a word that is not value itself. */
static int
snap_match_equal(uintptr_t word, PyObject *value)
{
    PyObject *token;
    if (!SNAP_WORD_REF(word))
        return 0;
    token = (PyObject *)word;
    if (PyLong_CheckExact(token) && PyLong_CheckExact(value))
        return PyObject_RichCompareBool(token, value, Py_EQ);
    if (PyBytes_CheckExact(token) && PyBytes_CheckExact(value))
        return PyBytes_GET_SIZE(token) == PyBytes_GET_SIZE(value) &&
            memcmp(PyBytes_AS_STRING(token), PyBytes_AS_STRING(value),
                   PyBytes_GET_SIZE(value)) == 0;
    return 0;
}

/* 1 when the next word is this raw word (a count, length, id or
   marker), 0 when not. */
static inline int
snap_match_word(SnapCompare *c, uintptr_t word)
{
    if (c->next >= c->size)
        return 0;
    return c->words[c->next++] == word;
}

#define SNAP_MATCH(call) do { int r_ = (call); if (r_ != 1) return r_; } \
    while (0)

static int snap_compare_value(SnapCompare *c, PyObject *value, int depth,
                              Py_ssize_t held);

static int snap_compare_immutable(SnapCompare *c, PyObject *value,
                                  int depth, Py_ssize_t held);

/* snap_compare_value, without a call for an atom. */
static inline int
snap_compare_item(SnapCompare *c, PyObject *value, int depth,
                  Py_ssize_t held)
{
    if (SNAP_ATOM(Py_TYPE(value), value))
        return snap_match(c, value);
    if (PyTuple_CheckExact(value))      /* (a node's items) */
        return snap_compare_immutable(c, value, depth, held);
    return snap_compare_value(c, value, depth, held);
}

/* 1 (matches), 0 (differs, or cannot be vouched for) or -1 (error). */
/* held: references this walk holds to value (an iterator's item). */
static int
snap_compare_container(SnapCompare *c, PyObject *value, int kind,
                       int depth, Py_ssize_t held)
{
    if (depth >= snap_max_depth)
        return 0;
    if (Py_REFCNT(value) > 1 + held)
        c->exposed = 1;
    SNAP_MATCH(snap_match_word(c, SNAP_WORD_MARKER(kind)));
    SNAP_MATCH(snap_match_word(c, SNAP_WORD_ID(value)));
    if (kind == SNAP_LIST) {
        Py_ssize_t i;
        SNAP_MATCH(snap_match_word(c,
                                   SNAP_WORD_INT(PyList_GET_SIZE(value))));
        for (i = 0; i < PyList_GET_SIZE(value); i++)
            SNAP_MATCH(snap_compare_item(c, PyList_GET_ITEM(value, i),
                                         depth + 1, 0));
    }
    else if (kind == SNAP_DICT) {
        Py_ssize_t position = 0;
        PyObject *key, *item;
        SNAP_MATCH(snap_match_word(c,
                                   SNAP_WORD_INT(PyDict_GET_SIZE(value))));
        while (PyDict_Next(value, &position, &key, &item)) {
            SNAP_MATCH(snap_compare_item(c, key, depth + 1, 0));
            SNAP_MATCH(snap_compare_item(c, item, depth + 1, 0));
        }
    }
    else {
        PyObject *iterator, *item;
        int result = 1;
        SNAP_MATCH(snap_match_word(c,
                                   SNAP_WORD_INT(PySet_GET_SIZE(value))));
        iterator = PyObject_GetIter(value);
        if (iterator == NULL)
            return -1;
        while (result == 1 && (item = PyIter_Next(iterator)) != NULL) {
            result = snap_compare_value(c, item, depth + 1, 1);
            Py_DECREF(item);
        }
        Py_DECREF(iterator);
        if (result == 1 && PyErr_Occurred())
            return -1;
        return result;
    }
    return 1;
}

static int
snap_compare_immutable(SnapCompare *c, PyObject *value, int depth,
                       Py_ssize_t held)
{
    PyObject *iterator, *item;
    int result = 1, leaf, inner = 0;
    Py_ssize_t own = Py_REFCNT(value) - held;

    SNAP_MATCH(snap_match(c, value));
    if (PyTuple_CheckExact(value)) {
        Py_ssize_t i;
        for (i = 0; result == 1 && i < PyTuple_GET_SIZE(value); i++) {
            item = PyTuple_GET_ITEM(value, i);
            leaf = snap_leaf_kind(item);
            if (leaf < 0)
                return -1;
            if (!leaf) {
                inner = 1;
                result = depth >= snap_max_depth ? 0 :
                    snap_compare_value(c, item, depth + 1, 0);
            }
        }
    }
    else {
        iterator = PyObject_GetIter(value);
        if (iterator == NULL)
            return -1;
        while (result == 1 && (item = PyIter_Next(iterator)) != NULL) {
            leaf = snap_leaf_kind(item);
            if (leaf < 0)
                result = -1;
            else if (!leaf) {
                inner = 1;
                result = depth >= snap_max_depth ? 0 :
                    snap_compare_value(c, item, depth + 1, 1);
            }
            Py_DECREF(item);
        }
        Py_DECREF(iterator);
        if (result == 1 && PyErr_Occurred())
            return -1;
    }
    /* Held by its parent and by the snapshot it matched. */
    if (inner && own > 2)
        c->exposed = 1;
    return result;
}

static int
snap_compare_value(SnapCompare *c, PyObject *value, int depth,
                   Py_ssize_t held)
{
    PyTypeObject *type = Py_TYPE(value);
    int leaf;
    if (SNAP_ATOM(type, value))
        return snap_match(c, value);
    if (type == &PyList_Type)
        return snap_compare_container(c, value, SNAP_LIST, depth, held);
    if (type == &PyDict_Type)
        return snap_compare_container(c, value, SNAP_DICT, depth, held);
    if (type == &PySet_Type)
        return snap_compare_container(c, value, SNAP_SET, depth, held);
    if (type == &PyTuple_Type || type == &PyFrozenSet_Type)
        return snap_compare_immutable(c, value, depth, held);
    leaf = snap_leaf_kind(value);
    if (leaf <= 0)
        return leaf;
    if (leaf == LEAF_PERSISTENT) {
        PyObject *oid = slot(value, off_oid);
        if (oid != NULL && oid != Py_None) {
            SNAP_MATCH(snap_match_word(c,
                                       SNAP_WORD_MARKER(SNAP_PERSISTENT)));
            return snap_match(c, oid);
        }
    }
    return snap_match(c, value);
}

/* 1 when obj's state matches tokens (c->exposed set as found), 0 when
   not, -1 on error. */
static int
snap_compare_state(SnapCompare *c, PyObject *obj)
{
    PyObject *attributes, *layout, *key, *value;
    Py_ssize_t count = 0, i, position = 0;
    int outcome = snap_state_parts(obj, &attributes, &layout);

    if (outcome <= 0)
        return outcome;
    /* The object and this walk hold the instance dict. */
    if (attributes != NULL && Py_REFCNT(attributes) > 2)
        c->exposed = 1;
    if (attributes != NULL)
        count = PyDict_GET_SIZE(attributes);
    if (layout != NULL)
        for (i = 0; i < PyTuple_GET_SIZE(layout); i++)
            if (SLOT(obj, PyLong_AsSsize_t(PyTuple_GET_ITEM(
                    PyTuple_GET_ITEM(layout, i), 1))) != NULL)
                count++;
    outcome = snap_match_word(c, SNAP_WORD_INT(count));
    if (attributes != NULL)
        while (outcome == 1 &&
               PyDict_Next(attributes, &position, &key, &value)) {
            outcome = snap_match(c, key);
            if (outcome == 1)
                outcome = snap_compare_item(c, value, 0, 0);
        }
    if (layout != NULL)
        for (i = 0; outcome == 1 && i < PyTuple_GET_SIZE(layout); i++) {
            PyObject *pair = PyTuple_GET_ITEM(layout, i);
            value = SLOT(obj, PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 1)));
            if (value == NULL)
                continue;
            outcome = snap_match(c, PyTuple_GET_ITEM(pair, 0));
            if (outcome == 1)
                outcome = snap_compare_item(c, value, 0, 0);
        }
    Py_XDECREF(attributes);
    if (outcome == 1 && c->next != c->size)
        outcome = 0;
    return outcome;
}

/* -- the store ------------------------------------------------------------ */

static PyObject *snapshots_prune(SnapshotsObject *self, PyObject *unused);

#define SNAP_HASH_FACTOR 0x9E3779B97F4A7C15ull    /* 2**64 / golden ratio */

/* The tables' hash of an exact bytes oid: its bytes mixed (an 8-byte
   oid, the usual) or its Python hash mixed. */
static inline uint64_t
snap_oid_hash(PyObject *oid)
{
    uint64_t value;
    if (PyBytes_GET_SIZE(oid) == 8)
        memcpy(&value, PyBytes_AS_STRING(oid), 8);
    else
        value = (uint64_t)PyObject_Hash(oid);    /* (bytes: no error) */
    return value * SNAP_HASH_FACTOR;
}

static inline int
snap_same_oid(PyObject *a, PyObject *b)
{
    return a == b || (PyBytes_GET_SIZE(a) == PyBytes_GET_SIZE(b) &&
                      memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b),
                             PyBytes_GET_SIZE(a)) == 0);
}

static void
snap_table_init(SnapTable *table)
{
    table->entries = NULL;
    table->shift = 64;
    table->slots = table->used = 0;
    table->changes = 0;
}

/* The entry of oid (an exact bytes), or NULL. */
static inline SnapEntry *
snap_find(SnapTable *table, PyObject *oid, uint64_t hash)
{
    size_t mask = (size_t)table->slots - 1, i;
    if (table->used == 0)
        return NULL;
    for (i = (size_t)(hash >> table->shift); ; i = (i + 1) & mask) {
        SnapEntry *entry = &table->entries[i];
        if (entry->oid == NULL)
            return NULL;
        if (entry->hash == hash && snap_same_oid(entry->oid, oid))
            return entry;
    }
}

/* Put entry (references owned by the table) in a table with room. */
static void
snap_place(SnapTable *table, SnapEntry entry)
{
    size_t mask = (size_t)table->slots - 1;
    size_t i = (size_t)(entry.hash >> table->shift);
    while (table->entries[i].oid != NULL)
        i = (i + 1) & mask;
    table->entries[i] = entry;
    table->used++;
    table->changes++;
}

/* An empty table of slots slots (a power of two, at least 2), in
   fresh; 0, or -1 with an error. */
static int
snap_table_alloc(SnapTable *fresh, Py_ssize_t slots)
{
    snap_table_init(fresh);
    fresh->entries = PyMem_Calloc((size_t)slots, sizeof(SnapEntry));
    if (fresh->entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    fresh->slots = slots;
    while (((Py_ssize_t)1 << (64 - fresh->shift)) < slots)
        fresh->shift--;
    return 0;
}

/* Room for one more entry, at most half full: short probes. */
static int
snap_table_room(SnapTable *table)
{
    SnapTable fresh;
    Py_ssize_t i;
    if (2 * (table->used + 1) <= table->slots)
        return 0;
    if (snap_table_alloc(&fresh, table->slots ? 2 * table->slots : 64) < 0)
        return -1;
    for (i = 0; i < table->slots; i++)
        if (table->entries[i].oid != NULL)
            snap_place(&fresh, table->entries[i]);
    PyMem_Free(table->entries);
    fresh.changes = table->changes + 1;
    *table = fresh;
    return 0;
}

/* Take oid's entry out of table into *gone (references now the
   caller's); 1 if there was one, else 0.  The entries after it that
   probed past its slot move back, so no probe stops short. */
static int
snap_table_remove(SnapTable *table, PyObject *oid, uint64_t hash,
                  SnapEntry *gone)
{
    SnapEntry *entry = snap_find(table, oid, hash);
    size_t mask, hole, i;
    if (entry == NULL)
        return 0;
    *gone = *entry;
    mask = (size_t)table->slots - 1;
    hole = (size_t)(entry - table->entries);
    for (i = (hole + 1) & mask; table->entries[i].oid != NULL;
            i = (i + 1) & mask) {
        size_t home = (size_t)(table->entries[i].hash >> table->shift);
        /* Movable into the hole unless its home lies in (hole, i]. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            table->entries[hole] = table->entries[i];
            hole = i;
        }
    }
    table->entries[hole].oid = NULL;
    table->entries[hole].snapshot = NULL;
    table->used--;
    table->changes++;
    return 1;
}

/* Release a removed entry (last: a snapshot may release anything). */
static void
snap_release(SnapEntry *gone)
{
    Py_DECREF(gone->oid);
    Py_DECREF(gone->snapshot);
}

/* self[oid] = snapshot (a new reference, given to the store), in the
   table of its kind: 0, or -1 with an error (snapshot released). */
static int
snap_store(SnapshotsObject *self, PyObject *oid, PyObject *snapshot)
{
    uint64_t hash = snap_oid_hash(oid);
    int held = Py_IS_TYPE(snapshot, &TrackedSnapshotType);
    SnapTable *table = held ? &self->held : &self->plain;
    SnapTable *other = held ? &self->plain : &self->held;
    SnapEntry *entry = snap_find(table, oid, hash), gone, fresh;
    int removed = 0;
    if (entry != NULL) {
        PyObject *old = entry->snapshot;
        entry->snapshot = snapshot;
        Py_DECREF(old);    /* (last: it may release anything) */
        return 0;
    }
    if (snap_table_room(table) < 0) {
        Py_DECREF(snapshot);
        return -1;
    }
    fresh.oid = Py_NewRef(oid);
    fresh.snapshot = snapshot;
    fresh.hash = hash;
    snap_place(table, fresh);
    if (other->used)
        removed = snap_table_remove(other, oid, hash, &gone);
    if (removed)
        snap_release(&gone);
    return 0;
}

/* Drop oid's snapshot if there is one. */
static void
snap_discard(SnapshotsObject *self, PyObject *oid)
{
    SnapEntry gone, gone_held;
    uint64_t hash;
    int plain, held;
    if (!PyBytes_CheckExact(oid))
        return;
    hash = snap_oid_hash(oid);
    plain = snap_table_remove(&self->plain, oid, hash, &gone);
    held = snap_table_remove(&self->held, oid, hash, &gone_held);
    if (plain)
        snap_release(&gone);
    if (held)
        snap_release(&gone_held);
}

/* The snapshot kept for oid (borrowed), or NULL. */
static inline PyObject *
snap_lookup(SnapshotsObject *self, PyObject *oid)
{
    SnapEntry *entry;
    uint64_t hash;
    if (!PyBytes_CheckExact(oid))
        return NULL;
    hash = snap_oid_hash(oid);
    entry = snap_find(&self->plain, oid, hash);
    if (entry == NULL)
        entry = snap_find(&self->held, oid, hash);
    return entry == NULL ? NULL : entry->snapshot;
}

/* Empty a table; its references are released once it is empty. */
static void
snap_table_clear(SnapTable *table)
{
    SnapTable old = *table;
    Py_ssize_t i;
    snap_table_init(table);
    for (i = 0; i < old.slots; i++)
        if (old.entries[i].oid != NULL)
            snap_release(&old.entries[i]);
    PyMem_Free(old.entries);
}

/* The oid of a persistent object (borrowed), Py_None when it has none or
   is not persistent. */
static PyObject *
snap_oid(PyObject *obj)
{
    PyObject *oid;
    if (!is_persistent_type(Py_TYPE(obj)))
        return Py_None;
    oid = slot(obj, off_oid);
    return oid == NULL ? Py_None : oid;
}

static int
snap_take(SnapshotsObject *self, PyObject *obj)
{
    PyObject *oid = snap_oid(obj), *tokens;
    int failed;
    if (oid == Py_None)
        return 0;
    /* Pruned before obj's snapshot goes in: obj may still be a ghost
       (load_state runs before its status changes). */
    if (self->plain.used + self->held.used >= self->prune_at) {
        PyObject *kept = snapshots_prune(self, NULL);
        if (kept == NULL)
            return -1;
        Py_DECREF(kept);
    }
    Py_INCREF(oid);
    tokens = snap_tokens(obj);
    if (tokens == NULL) {
        Py_DECREF(oid);
        return -1;
    }
    failed = 0;
    if (tokens == Py_None || !PyBytes_CheckExact(oid)) {
        Py_DECREF(tokens);
        snap_discard(self, oid);
    }
    else
        failed = snap_store(self, oid, tokens);   /* (takes tokens) */
    Py_DECREF(oid);
    return failed;
}

/* The Python twin's take (_PyLoadSnapshots.take), for a store of that
   kind met by the compiled load_state. */
static PyObject *snap_py_take;

/* Called by the compiled Connection.load_state once obj holds its stored
   state: takes its snapshot if the connection keeps them.  0, or -1 with
   an error. */
static int
take_load_snapshot(PyObject *connection, PyObject *obj)
{
    PyObject *store;
    int result = 0;
    if (!snapshots_in_use)
        return 0;
    store = PyObject_GetAttr(connection, s_load_snapshots);
    if (store == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    if (Py_IS_TYPE(store, &SnapshotsType))
        result = snap_take((SnapshotsObject *)store, obj);
    else if (store != Py_None && snap_py_take != NULL) {
        PyObject *args[2] = {store, obj};
        PyObject *done = PyObject_Vectorcall(snap_py_take, args, 2, NULL);
        Py_XDECREF(done);
        result = done == NULL ? -1 : 0;
    }
    Py_DECREF(store);
    return result;
}

static PyObject *
snapshots_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *objects;
    SnapshotsObject *self;
    Py_ssize_t floor = snap_prune_minimum;
    static char *names[] = {"objects", "floor", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:LoadSnapshots",
                                     names, &objects, &floor))
        return NULL;
    if (snap_layouts == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "durus._speedups snapshots not configured");
        return NULL;
    }
    self = (SnapshotsObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->objects = Py_NewRef(objects);
    snap_table_init(&self->plain);
    snap_table_init(&self->held);
    self->prune_floor = floor;
    self->prune_at = floor;
    snapshots_in_use = 1;
    return (PyObject *)self;
}

static void
snapshots_dealloc(SnapshotsObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->objects);
    snap_table_clear(&self->plain);
    snap_table_clear(&self->held);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
snapshots_traverse(SnapshotsObject *self, visitproc visit, void *arg)
{
    Py_ssize_t i;
    Py_VISIT(self->objects);
    /* Only a TrackedSnapshot can lead back here (see SnapshotObject). */
    for (i = 0; i < self->held.slots; i++)
        if (self->held.entries[i].oid != NULL)
            Py_VISIT(self->held.entries[i].snapshot);
    return 0;
}

static int
snapshots_clear(SnapshotsObject *self)
{
    Py_CLEAR(self->objects);
    snap_table_clear(&self->plain);
    snap_table_clear(&self->held);
    return 0;
}

static Py_ssize_t
snapshots_len(SnapshotsObject *self)
{
    return self->plain.used + self->held.used;
}

static PyObject *
snapshots_take(SnapshotsObject *self, PyObject *obj)
{
    if (snap_take(self, obj) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
snapshots_forget(SnapshotsObject *self, PyObject *obj)
{
    PyObject *oid = snap_oid(obj);
    if (oid != Py_None) {
        Py_INCREF(oid);
        snap_discard(self, oid);
        Py_DECREF(oid);
    }
    Py_RETURN_NONE;
}

static PyObject *
snapshots_snapshot(SnapshotsObject *self, PyObject *oid)
{
    PyObject *tokens = snap_lookup(self, oid);
    if (tokens == NULL)
        Py_RETURN_NONE;
    return snapshot_tokens((SnapshotObject *)tokens);
}

/* Whether the object of oid is loaded: in the cache (mapping: oid ->
   weak reference) and not a ghost.  1, 0, or -1 with an error. */
static int
snap_loaded(PyObject *mapping, PyObject *oid)
{
    PyObject *ref = PyDict_GetItemWithError(mapping, oid), *obj, *status;
    if (ref == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyWeakref_Check(ref))
        return 0;
    obj = weakref_referent(ref);
    if (obj == NULL)
        return -1;
    if (obj == Py_None || !is_persistent_type(Py_TYPE(obj)))
        return 0;
    status = slot(obj, off_status);
    return status != NULL && status_of(status) != GHOST;
}

/* The entries of table whose objects are loaded, moved to a new table
   sized for them (in *kept); the others are appended to dropped (room
   for table->used entries) for the caller to release.  0, or -1 with
   an error (nothing moved). */
static int
snap_table_prune(SnapTable *table, PyObject *mapping, SnapTable *kept,
                 SnapEntry *dropped, Py_ssize_t *gone)
{
    SnapEntry *entries = table->entries;
    Py_ssize_t slots = table->slots, i, count = 0, size;
    size_t changes = table->changes;
    unsigned char *keep = slots ? PyMem_Calloc((size_t)slots, 1) : NULL;

    snap_table_init(kept);
    if (slots && keep == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < slots; i++) {
        int loaded;
        if (entries[i].oid == NULL)
            continue;
        loaded = snap_loaded(mapping, entries[i].oid);
        if (loaded < 0) {
            PyMem_Free(keep);
            return -1;
        }
        keep[i] = (unsigned char)loaded;
        count += loaded;
    }
    if (table->entries != entries || table->changes != changes) {
        /* (only code run by a key's __eq__ in the cache could do that) */
        PyMem_Free(keep);
        PyErr_SetString(PyExc_RuntimeError,
                        "the snapshot store changed during its prune");
        return -1;
    }
    for (size = 64; size < 2 * (count + 1); size *= 2)
        ;
    if (count && snap_table_alloc(kept, size) < 0) {
        PyMem_Free(keep);
        return -1;
    }
    for (i = 0; i < slots; i++) {
        if (entries[i].oid == NULL)
            continue;
        if (keep[i])
            snap_place(kept, entries[i]);
        else
            dropped[(*gone)++] = entries[i];
    }
    PyMem_Free(keep);
    PyMem_Free(entries);
    snap_table_init(table);
    return 0;
}

static PyObject *
snapshots_prune(SnapshotsObject *self, PyObject *unused)
{
    PyObject *mapping;
    SnapEntry *dropped;
    SnapTable kept_plain, kept_held;
    Py_ssize_t gone = 0, i, count;

    mapping = PyObject_GetAttr(self->objects, s_mapping);
    if (mapping == NULL)
        return NULL;
    if (!PyDict_CheckExact(mapping)) {
        Py_DECREF(mapping);
        PyErr_SetString(PyExc_TypeError, "cache mapping is not a dict");
        return NULL;
    }
    dropped = PyMem_Calloc((size_t)(self->plain.used + self->held.used + 1),
                           sizeof(SnapEntry));
    if (dropped == NULL) {
        Py_DECREF(mapping);
        return PyErr_NoMemory();
    }
    if (snap_table_prune(&self->plain, mapping, &kept_plain, dropped,
                         &gone) < 0) {
        Py_DECREF(mapping);
        PyMem_Free(dropped);
        return NULL;
    }
    self->plain = kept_plain;
    if (snap_table_prune(&self->held, mapping, &kept_held, dropped,
                         &gone) < 0) {
        Py_DECREF(mapping);
        for (i = 0; i < gone; i++)
            snap_release(&dropped[i]);
        PyMem_Free(dropped);
        return NULL;
    }
    self->held = kept_held;
    Py_DECREF(mapping);
    count = self->plain.used + self->held.used;
    self->prune_at = 2 * count;
    if (self->prune_at < self->prune_floor)
        self->prune_at = self->prune_floor;
    for (i = 0; i < gone; i++)
        snap_release(&dropped[i]);
    PyMem_Free(dropped);
    return PyLong_FromSsize_t(count);
}

static PyObject *
snapshots_sort_out(SnapshotsObject *self, PyObject *objects)
{
    PyObject *sequence, *suspects, *exposed, *result = NULL;
    Py_ssize_t i;

    sequence = PySequence_Fast(objects, "sort_out needs a sequence");
    if (sequence == NULL)
        return NULL;
    suspects = PyList_New(0);
    exposed = PyList_New(0);
    if (suspects == NULL || exposed == NULL)
        goto done;
    for (i = 0; i < PySequence_Fast_GET_SIZE(sequence); i++) {
        PyObject *obj = PySequence_Fast_GET_ITEM(sequence, i);
        PyObject *oid, *status, *tokens;
        SnapCompare compare;
        int outcome;

        if (!is_persistent_type(Py_TYPE(obj)))
            continue;
        status = slot(obj, off_status);
        oid = slot(obj, off_oid);
        if (status == NULL || status_of(status) != SAVED || oid == NULL ||
                oid == Py_None)
            continue;
        tokens = snap_lookup(self, oid);
        if (tokens == NULL) {
            if (PyList_Append(suspects, obj) < 0)
                goto done;
            continue;
        }
        Py_INCREF(tokens);
        compare.words = ((SnapshotObject *)tokens)->words;
        compare.size = Py_SIZE(tokens);
        compare.next = 0;
        compare.exposed = 0;
        outcome = snap_compare_state(&compare, obj);
        Py_DECREF(tokens);
        if (outcome < 0)
            goto done;
        if (outcome == 0) {
            if (PyList_Append(suspects, obj) < 0)
                goto done;
        }
        else if (compare.exposed && PyList_Append(exposed, obj) < 0)
            goto done;
    }
    result = PyTuple_Pack(2, suspects, exposed);
done:
    Py_DECREF(sequence);
    Py_XDECREF(suspects);
    Py_XDECREF(exposed);
    return result;
}

static PyMethodDef snapshots_methods[] = {
    {"take", (PyCFunction)snapshots_take, METH_O,
     "Snapshot obj's state now (it must be its record's)."},
    {"forget", (PyCFunction)snapshots_forget, METH_O,
     "Drop obj's snapshot."},
    {"snapshot", (PyCFunction)snapshots_snapshot, METH_O,
     "The tokens kept for oid, or None."},
    {"prune", (PyCFunction)snapshots_prune, METH_NOARGS,
     "Drop the snapshots of ghosts and of objects gone from the cache."},
    {"sort_out", (PyCFunction)snapshots_sort_out, METH_O,
     "(suspects, exposed) among the SAVED objects given."},
    {NULL}
};

static PyMemberDef snapshots_members[] = {
    {"objects", T_OBJECT, offsetof(SnapshotsObject, objects), READONLY,
     "the cache's ObjectDictionary"},
    {"prune_at", T_PYSSIZET, offsetof(SnapshotsObject, prune_at), 0,
     "prune when this many snapshots are kept"},
    {"prune_floor", T_PYSSIZET, offsetof(SnapshotsObject, prune_floor), 0,
     "prune_at never drops below this after a prune"},
    {NULL}
};

static PySequenceMethods snapshots_as_sequence = {
    .sq_length = (lenfunc)snapshots_len,
};

static PyTypeObject SnapshotsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "durus._speedups.LoadSnapshots",
    .tp_basicsize = sizeof(SnapshotsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Load-time snapshots of one connection's objects "
              "(durus.load_snapshots).",
    .tp_new = snapshots_new,
    .tp_dealloc = (destructor)snapshots_dealloc,
    .tp_traverse = (traverseproc)snapshots_traverse,
    .tp_clear = (inquiry)snapshots_clear,
    .tp_methods = snapshots_methods,
    .tp_members = snapshots_members,
    .tp_as_sequence = &snapshots_as_sequence,
};

/* configure_snapshots(Persistent.__getstate__, PersistentObject.__getstate__,
                       data_slot_names, LEAF_TYPES,
                       (LIST, DICT, SET, PERSISTENT),
                       MAX_DEPTH, MAX_TOKENS, PRUNE_MINIMUM,
                       _PyLoadSnapshots.take) */
static PyObject *
configure_snapshots(PyObject *module, PyObject *args)
{
    PyObject *dict_getstate, *slots_getstate, *slot_names, *leaf_types;
    PyObject *marker_list, *marker_dict, *marker_set, *marker_persistent;
    PyObject *py_take;
    Py_ssize_t depth, tokens, prune;
    if (!PyArg_ParseTuple(args, "OOOO!(OOOO)nnnO:configure_snapshots",
                          &dict_getstate, &slots_getstate, &slot_names,
                          &PyFrozenSet_Type, &leaf_types, &marker_list,
                          &marker_dict, &marker_set, &marker_persistent,
                          &depth, &tokens, &prune, &py_take))
        return NULL;
    Py_XSETREF(snap_py_take, Py_NewRef(py_take));
    if (persistent_base == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "durus._speedups not configured");
        return NULL;
    }
    Py_XSETREF(snap_dict_getstate, Py_NewRef(dict_getstate));
    Py_XSETREF(snap_slots_getstate, Py_NewRef(slots_getstate));
    Py_XSETREF(snap_data_slot_names, Py_NewRef(slot_names));
    Py_XSETREF(snap_leaf_types, Py_NewRef(leaf_types));
    Py_XSETREF(snap_marker_list, Py_NewRef(marker_list));
    Py_XSETREF(snap_marker_dict, Py_NewRef(marker_dict));
    Py_XSETREF(snap_marker_set, Py_NewRef(marker_set));
    Py_XSETREF(snap_marker_persistent, Py_NewRef(marker_persistent));
    snap_max_depth = depth;
    snap_max_tokens = tokens;
    snap_prune_minimum = prune;
    if (snap_layouts == NULL && (snap_layouts = PyDict_New()) == NULL)
        return NULL;
    parts_type_seen = NULL;     /* (answers given for the old getstates) */
    if (PyType_Ready(&SnapshotType) < 0 ||
            PyType_Ready(&TrackedSnapshotType) < 0)
        return NULL;
    Py_RETURN_NONE;
}
