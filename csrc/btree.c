/* BTree lookups and inserts: the walk of durus.btree's BTree.get,
   __getitem__ and add, over the same BNode objects.

   The pure-Python methods stay the reference: btree_methods() is given
   them and every call this code does not take on itself (keyword
   arguments) goes to them.  Node attributes are read straight from their
   slots only when that is what reading them in Python would do: the
   node's type reads attributes the standard way (an unhooked variant)
   and `items`/`nodes` are BNode's own slots.  A watched node (a ghost,
   or not yet accessed in this transaction) is read through
   PyObject_GetAttr, which loads it and notes the access exactly as the
   Python loop does.  Keys are compared as bisect_left and `==` compare
   them, so a key's own __lt__/__eq__ runs the same number of times in
   the same order.  A split, a new root and a changed node's
   _p_note_change() are Python calls, as in the pure code.

   Lookups and inserts of exact int and str keys (the common case) first
   take a walk with borrowed references that runs no Python code at all
   (plain nodes, lists of exact tuples, int's or str's own comparisons)
   and fetches each node's tuples into the cache together before
   bisecting; anything else (and an insert's split) hands the walk to the
   general code at the node where it stopped, before anything Python
   could see has happened there.  btree_slots() lets tree[key],
   tree[key] = value and `key in tree` reach the walk without CPython's
   method lookup.

   Part of durus._speedups (included by csrc/module.c). */

static PyObject *bt_items_descr, *bt_nodes_descr, *bt_root_descr;
static Py_ssize_t bt_off_items = -1, bt_off_nodes = -1, bt_off_root = -1;
static PyObject *bt_py_get, *bt_py_getitem, *bt_py_add, *bt_py_split;
static PyObject *bt_py_contains;
static PyObject *bt_d_get, *bt_d_getitem, *bt_d_add, *bt_d_contains;
static PyObject *bt_missing;    /* a default no caller can pass */
static PyObject *s_items, *s_nodes, *s_root, *s_max_items, *s_split_child,
    *s_p_note_change, *s_grow_root, *s_minimum_degree, *s_getitem,
    *s_setitem, *s_delitem, *s_contains, *s_get, *s_init;
/* BNode.__init__ and the standard _p_note_change, as BNode has them. */
static PyObject *bt_py_init, *bt_std_note_change;

/* The last node type found to read `items`, `nodes` and `max_items` the
   standard way, and its version tag (which changes when the type or one
   of its bases is changed, and is never reused). */
static PyTypeObject *bt_plain_type;
static unsigned int bt_plain_tag;
static Py_ssize_t bt_plain_max;     /* its max_items, -1 if not an int */
static int bt_plain_simple;         /* bt_check_simple() of it */
static Py_ssize_t bt_plain_degree;  /* its minimum_degree, when simple */

/* Are tp's nodes made, changed and split the standard way, so that C can
   do what BNode.split_child does without a Python call: `tp()` is type's
   own call of PersistentBase.__new__ and BNode.__init__, setting an
   attribute is the standard setattr, `__class__` is object's,
   split_child is BNode's, _p_note_change is PersistentObject's, there is
   no instance dict and minimum_degree is an int >= 1 (*degree). */
static int
bt_check_simple(PyTypeObject *tp, Py_ssize_t *degree)
{
    PyObject *found;
    if (Py_TYPE((PyObject *)tp)->tp_call != PyType_Type.tp_call ||
            tp->tp_setattro != PyObject_GenericSetAttr ||
            tp->tp_dictoffset != 0 || bt_py_init == NULL ||
            base_new == NULL || class_setter == NULL ||
            _PyType_Lookup(tp, s_new) != base_new ||
            _PyType_Lookup(tp, s_init) != bt_py_init ||
            _PyType_Lookup(tp, s_class) != class_setter ||
            _PyType_Lookup(tp, s_split_child) != bt_py_split ||
            _PyType_Lookup(tp, s_p_note_change) != bt_std_note_change)
        return 0;
    found = _PyType_Lookup(tp, s_minimum_degree);
    if (found == NULL || !PyLong_CheckExact(found))
        return 0;
    *degree = PyLong_AsSsize_t(found);
    if (*degree == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return *degree >= 1;
}

/* Does reading these attributes of tp's instances give their slots?
   (The slow part of the check: remembers tp when it can.) */
static int
bt_check_plain(PyTypeObject *tp)
{
    PyObject *limit;
    if (tp->tp_getattro != PyObject_GenericGetAttr ||
            _PyType_Lookup(tp, s_items) != bt_items_descr ||
            _PyType_Lookup(tp, s_nodes) != bt_nodes_descr)
        return 0;
    /* Both lookups gave the type a version tag, if it can have one. */
    if (!PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) ||
            tp->tp_version_tag == 0)
        return 1;
    limit = _PyType_Lookup(tp, s_max_items);
    bt_plain_max = -1;
    if (limit != NULL && PyLong_CheckExact(limit) && tp->tp_dictoffset == 0) {
        bt_plain_max = PyLong_AsSsize_t(limit);
        if (bt_plain_max == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            bt_plain_max = -1;
        }
    }
    bt_plain_simple = bt_check_simple(tp, &bt_plain_degree);
    bt_plain_type = tp;
    bt_plain_tag = tp->tp_version_tag;
    return 1;
}

static inline int
bt_is_plain(PyTypeObject *tp)
{
    if (tp == bt_plain_type && tp->tp_version_tag == bt_plain_tag &&
            bt_plain_tag != 0)
        return 1;
    return bt_check_plain(tp);
}

/* Is tp a plain node type that bt_check_simple() accepted?  (The
   metaclass's call again: changing it does not change tp's tag.) */
static inline int
bt_is_simple(PyTypeObject *tp)
{
    return bt_is_plain(tp) && tp == bt_plain_type && bt_plain_simple &&
        Py_TYPE((PyObject *)tp)->tp_call == PyType_Type.tp_call;
}

/* obj.<name> (new reference), from the slot when that is equivalent. */
static inline PyObject *
bt_read(PyObject *obj, PyObject *name, Py_ssize_t offset, PyObject *descr)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (bt_is_plain(tp)) {
        PyObject *value = SLOT(obj, offset);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(obj, name);
}

/* The last tree type found to read `root` the standard way, and its
   version tag (as bt_plain_type). */
static PyTypeObject *bt_root_type;
static unsigned int bt_root_tag;

static int
bt_check_plain_root(PyTypeObject *tp)
{
    if (tp->tp_getattro != PyObject_GenericGetAttr ||
            _PyType_Lookup(tp, s_root) != bt_root_descr)
        return 0;
    if (PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) &&
            tp->tp_version_tag != 0) {
        bt_root_type = tp;
        bt_root_tag = tp->tp_version_tag;
    }
    return 1;
}

/* tree.root (new reference). */
static inline PyObject *
bt_read_root(PyObject *tree)
{
    PyTypeObject *tp = Py_TYPE(tree);
    if ((tp == bt_root_type && tp->tp_version_tag == bt_root_tag &&
            bt_root_tag != 0) || bt_check_plain_root(tp)) {
        PyObject *value = SLOT(tree, bt_off_root);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(tree, s_root);
}

#define READ_ITEMS(node) bt_read(node, s_items, bt_off_items, bt_items_descr)
#define READ_NODES(node) bt_read(node, s_nodes, bt_off_nodes, bt_nodes_descr)

/* item[0], as itemgetter(0) reads it (new reference). */
static inline PyObject *
bt_first(PyObject *item)
{
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) > 0)
        return Py_NewRef(PyTuple_GET_ITEM(item, 0));
    return PyObject_GetItem(item, zero_value);
}

/* seq[i] (new reference): a list directly, else through __getitem__. */
static inline PyObject *
bt_index(PyObject *seq, Py_ssize_t i)
{
    if (PyList_CheckExact(seq)) {
        if (i < 0 || i >= PyList_GET_SIZE(seq)) {
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            return NULL;
        }
        return Py_NewRef(PyList_GET_ITEM(seq, i));
    }
    return PySequence_GetItem(seq, i);
}

/* len(seq), or -1 with an error. */
static inline Py_ssize_t
bt_len(PyObject *seq)
{
    if (PyList_CheckExact(seq))
        return PyList_GET_SIZE(seq);
    return PyObject_Length(seq);
}

/* A small int's value, for ints of at most one digit. */
#if PY_VERSION_HEX >= 0x030C0000
#define BT_SMALL(v) PyUnstable_Long_IsCompact((PyLongObject *)(v))
#define BT_VALUE(v) ((long)PyUnstable_Long_CompactValue((PyLongObject *)(v)))
#else
#define BT_SMALL(v) (Py_SIZE(v) >= -1 && Py_SIZE(v) <= 1)
#define BT_VALUE(v) ((long)Py_SIZE(v) * \
                     (long)((PyLongObject *)(v))->ob_digit[0])
#endif

/* a < b: 1, 0 or -1; small ints compared directly (what int.__lt__
   answers, without its call). */
static inline int
bt_less(PyObject *a, PyObject *b)
{
    if (PyLong_CheckExact(a) && PyLong_CheckExact(b) && BT_SMALL(a) &&
            BT_SMALL(b))
        return BT_VALUE(a) < BT_VALUE(b);
    return PyObject_RichCompareBool(a, b, Py_LT);
}

/* The keys compared without running Python code: exact ints with exact
   ints, exact strs with exact strs (int's and str's own comparisons,
   which are C and cannot fail for these).  Anything else, subclasses
   and bools included, is BT_OTHER. */
enum { BT_OTHER, BT_INT, BT_STR };

static inline int
bt_kind(PyObject *key)
{
    if (PyLong_CheckExact(key))
        return BT_INT;
    if (PyUnicode_CheckExact(key))
        return BT_STR;
    return BT_OTHER;
}

/* a < b for a and b of one kind: 1, 0 (or -1, which int's and str's
   comparisons never give). */
static inline int
bt_kind_less(int kind, PyObject *a, PyObject *b)
{
    if (kind == BT_INT && BT_SMALL(a) && BT_SMALL(b))
        return BT_VALUE(a) < BT_VALUE(b);
    return PyObject_RichCompareBool(a, b, Py_LT);
}

/* a == b for a and b of one kind (the identity shortcut of
   PyObject_RichCompareBool is what int and str answer anyway). */
static inline int
bt_kind_equal(int kind, PyObject *a, PyObject *b)
{
    if (kind == BT_INT && BT_SMALL(a) && BT_SMALL(b))
        return BT_VALUE(a) == BT_VALUE(b);
    return PyObject_RichCompareBool(a, b, Py_EQ);
}

/* item[0] (borrowed) when item is an exact tuple whose first element is
   of the exact type `type`, else NULL. */
static inline PyObject *
bt_kind_key(PyObject *item, PyTypeObject *type)
{
    PyObject *k;
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) < 1)
        return NULL;
    k = PyTuple_GET_ITEM(item, 0);
    return Py_IS_TYPE(k, type) ? k : NULL;
}

/* Nodes of at most this many items have all their tuples fetched before
   the bisection: a lookup in a large tree waits on memory rather than on
   instructions (each probe reads a tuple, then its key, from scattered
   places), and fetching a node's tuples together overlaps those waits
   instead of taking them one after another.  BNode16 holds up to 31. */
#define BT_FETCH_ALL 64

static inline void
bt_fetch(PyObject *const *slots, Py_ssize_t n)
{
#ifdef __GNUC__
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        __builtin_prefetch(slots[i]);
#endif
}

/* bisect_left(slots[:n], key, key=itemgetter(0)) for a key of `kind`
   (not BT_OTHER), comparing in place with no reference taken, as no
   Python code runs meanwhile.  The position; -2 at the first probed item
   that is not an exact tuple holding a key of the key's exact type (the
   caller then bisects the general way, from the start: nothing seen by
   Python has happened); -1 with an error. */
static Py_ssize_t
bt_bisect_kind(PyObject *const *slots, Py_ssize_t n, PyObject *key,
               int kind)
{
    PyTypeObject *type = Py_TYPE(key);
    Py_ssize_t lo = 0, hi = n, mid;
    PyObject *k;
    int less;

    if (n <= BT_FETCH_ALL)
        bt_fetch(slots, n);
    if (kind == BT_INT && BT_SMALL(key)) {
        /* The usual keys, in a loop of their own.  The first other int
           leaves the rest of the bisection to the loop below. */
        long wanted = BT_VALUE(key);
        while (lo < hi) {
            PyObject *item;
            mid = ((size_t)lo + hi) / 2;
            item = slots[mid];
            if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) < 1)
                return -2;
            k = PyTuple_GET_ITEM(item, 0);
            if (!PyLong_CheckExact(k) || !BT_SMALL(k))
                break;
            if (BT_VALUE(k) < wanted)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    while (lo < hi) {
        mid = ((size_t)lo + hi) / 2;
#ifdef __GNUC__
        if (n > BT_FETCH_ALL) {
            /* Large nodes: the next probe on either side. */
            if (lo < mid)
                __builtin_prefetch(slots[((size_t)lo + mid) / 2]);
            if (mid + 1 < hi)
                __builtin_prefetch(slots[((size_t)mid + 1 + hi) / 2]);
        }
#endif
        k = bt_kind_key(slots[mid], type);
        if (k == NULL)
            return -2;
        less = bt_kind_less(kind, k, key);
        if (less < 0)
            return -1;
        if (less)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* bisect_left(items, key, key=itemgetter(0)): the position, or -1. */
static Py_ssize_t
bt_bisect(PyObject *items, PyObject *key)
{
    Py_ssize_t lo = 0, hi = bt_len(items), mid;
    PyObject *item, *item_key;
    int less, kind;

    if (hi < 0)
        return -1;
    if (PyList_CheckExact(items) && (kind = bt_kind(key)) != BT_OTHER) {
        Py_ssize_t at = bt_bisect_kind(((PyListObject *)items)->ob_item,
                                       hi, key, kind);
        if (at != -2)
            return at;
    }
    while (lo < hi) {
        mid = ((size_t)lo + hi) / 2;
        item = bt_index(items, mid);
        if (item == NULL)
            return -1;
        item_key = bt_first(item);
        Py_DECREF(item);
        if (item_key == NULL)
            return -1;
        less = bt_less(item_key, key);
        Py_DECREF(item_key);
        if (less < 0)
            return -1;
        if (less)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Python's `a == b` in an if: 1, 0 or -1 (no identity shortcut). */
static inline int
bt_equal(PyObject *a, PyObject *b)
{
    PyObject *result;
    int truth;
    if (PyLong_CheckExact(a) && PyLong_CheckExact(b)) {
        if (BT_SMALL(a) && BT_SMALL(b))
            return BT_VALUE(a) == BT_VALUE(b);
        return PyObject_RichCompareBool(a, b, Py_EQ);  /* ints: the same */
    }
    result = PyObject_RichCompare(a, b, Py_EQ);
    if (result == NULL)
        return -1;
    truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

/* Is items[i] the item of key?  1 with *found (new ref), 0, or -1. */
static int
bt_match(PyObject *items, Py_ssize_t i, PyObject *key, PyObject **found)
{
    Py_ssize_t n = bt_len(items);
    PyObject *item, *item_key;
    int equal;

    if (n < 0)
        return -1;
    if (i >= n)
        return 0;
    item = bt_index(items, i);
    if (item == NULL)
        return -1;
    item_key = bt_first(item);
    if (item_key == NULL) {
        Py_DECREF(item);
        return -1;
    }
    equal = bt_equal(item_key, key);
    Py_DECREF(item_key);
    if (equal <= 0) {
        Py_DECREF(item);
        return equal;
    }
    *found = item;
    return 1;
}

/* The item of key under root: 1 with *found (new ref), 0, or -1. */
static int
bt_search(PyObject *root, PyObject *key, PyObject **found)
{
    PyObject *node = Py_NewRef(root), *items, *nodes, *next;
    Py_ssize_t i;
    int match;

    while (1) {
        items = READ_ITEMS(node);
        if (items == NULL)
            goto error;
        i = bt_bisect(items, key);
        if (i < 0) {
            Py_DECREF(items);
            goto error;
        }
        match = bt_match(items, i, key, found);
        Py_DECREF(items);
        if (match != 0) {
            Py_DECREF(node);
            return match;
        }
        nodes = READ_NODES(node);
        if (nodes == NULL)
            goto error;
        if (nodes == Py_None) {
            Py_DECREF(nodes);
            Py_DECREF(node);
            return 0;
        }
        next = bt_index(nodes, i);
        Py_DECREF(nodes);
        if (next == NULL)
            goto error;
        Py_SETREF(node, next);
    }
error:
    Py_DECREF(node);
    return -1;
}

/* A plain node's items (an exact list) and nodes, borrowed, read
   straight from their slots: 1, or 0 when the borrowed walks must leave
   this node to the general one. */
static inline int
bt_plain_lists(PyObject *node, PyObject **items, PyObject **nodes)
{
    if (!bt_is_plain(Py_TYPE(node)))
        return 0;
    *items = SLOT(node, bt_off_items);
    *nodes = SLOT(node, bt_off_nodes);
    return *items != NULL && *nodes != NULL && PyList_CheckExact(*items);
}

/* The lookup walk of an exact int or str key (kind) from root, with
   borrowed references: it runs no Python code, so nothing can change
   under it.  It takes plain nodes (bt_is_plain) whose `items` is a list
   of exact tuples holding keys of the key's type and whose `nodes` is
   None or a list.  1 with *found (the item, borrowed, of 2 or more
   elements), 0 when the key is absent, -1 with an error, or 2 with
   *resume (borrowed): the node where the general walk must take over,
   which nothing has read yet in a way Python could see. */
static int
bt_search_kind(PyObject *root, PyObject *key, int kind, PyObject **found,
               PyObject **resume)
{
    PyObject *node = root, *items, *nodes, **slots;
    Py_ssize_t i, n;

    while (1) {
        if (!bt_plain_lists(node, &items, &nodes))
            break;
#ifdef __GNUC__
        __builtin_prefetch(nodes);      /* read after the bisection */
#endif
        n = PyList_GET_SIZE(items);
        slots = ((PyListObject *)items)->ob_item;
        i = bt_bisect_kind(slots, n, key, kind);
        if (i == -2)
            break;
        if (i < 0)
            return -1;
        if (i < n) {
            PyObject *item = slots[i];
            PyObject *k = bt_kind_key(item, Py_TYPE(key));
            int equal;
            if (k == NULL)
                break;
            equal = bt_kind_equal(kind, k, key);
            if (equal < 0)
                return -1;
            if (equal) {
                if (PyTuple_GET_SIZE(item) < 2)
                    break;
                *found = item;
                return 1;
            }
        }
        if (nodes == Py_None)
            return 0;
        if (!PyList_CheckExact(nodes) || i >= PyList_GET_SIZE(nodes))
            break;
        node = PyList_GET_ITEM(nodes, i);
    }
    *resume = node;
    return 2;
}

/* item[1] of a found item (new reference). */
static PyObject *
bt_second(PyObject *item)
{
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) > 1)
        return Py_NewRef(PyTuple_GET_ITEM(item, 1));
    return PySequence_GetItem(item, 1);
}

static PyObject *
bt_lookup(PyObject *self, PyObject *key, PyObject *missing)
{
    PyObject *root = bt_read_root(self);
    PyObject *found = NULL, *value, *resume;
    int match, kind;

    if (root == NULL)
        return NULL;
    kind = bt_kind(key);
    if (kind != BT_OTHER) {
        match = bt_search_kind(root, key, kind, &found, &resume);
        if (match == 1) {
            /* found is borrowed: nothing has run since it was read. */
            value = Py_NewRef(PyTuple_GET_ITEM(found, 1));
            Py_DECREF(root);
            return value;
        }
        if (match == 2) {
            Py_SETREF(root, Py_NewRef(resume));
            match = bt_search(root, key, &found);
        }
    }
    else
        match = bt_search(root, key, &found);
    Py_DECREF(root);
    if (match < 0)
        return NULL;
    if (match == 0) {
        if (missing == NULL) {
            /* KeyError(key), even when the key is a tuple. */
            PyObject *args = PyTuple_Pack(1, key);
            if (args != NULL) {
                PyErr_SetObject(PyExc_KeyError, args);
                Py_DECREF(args);
            }
            return NULL;
        }
        return Py_NewRef(missing);
    }
    value = bt_second(found);
    Py_DECREF(found);
    return value;
}

/* BTree.__getitem__(self, key) */
static PyObject *
bt_getitem(PyObject *self, PyObject *key)
{
    return bt_lookup(self, key, NULL);
}

/* BTree.get(self, key, default=None) */
static PyObject *
bt_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
       PyObject *kwnames)
{
    if (kwnames != NULL || nargs < 1 || nargs > 2)
        return twin_decides(bt_py_get, self, args, nargs, kwnames);
    return bt_lookup(self, args[0], nargs == 2 ? args[1] : Py_None);
}

/* BTree.__contains__(self, key): self.get(key, missing) is not missing,
   the compiled walk when type(self).get is the compiled get. */
static PyObject *
bt_contains(PyObject *self, PyObject *key)
{
    PyObject *found;
    if (_PyType_Lookup(Py_TYPE(self), s_get) != bt_d_get)
        return PyObject_CallFunctionObjArgs(bt_py_contains, self, key, NULL);
    found = bt_lookup(self, key, bt_missing);
    if (found == NULL)
        return NULL;
    Py_DECREF(found);
    return PyBool_FromLong(found != bt_missing);
}

/* node._p_status != UNSAVED, as Python compares it: 1, 0 or -1. */
static int
bt_not_unsaved(PyObject *node)
{
    PyObject *status = slot(node, off_status);
    if (status == one_value)    /* the usual UNSAVED: the cached small 1 */
        return 0;
    if (status == NULL) {
        PyObject *value = PyObject_GetAttrString(node, "_p_status");
        int result;
        if (value == NULL)
            return -1;
        result = PyObject_RichCompareBool(value, one_value, Py_NE);
        Py_DECREF(value);
        return result;
    }
    if (PyLong_CheckExact(status))
        return status_of(status) != 1;
    return PyObject_RichCompareBool(status, one_value, Py_NE);
}

static int
bt_note_change(PyObject *node)
{
    int changed = bt_not_unsaved(node);
    PyObject *result;
    if (changed <= 0)
        return changed;
    result = PyObject_CallMethodNoArgs(node, s_p_note_change);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* len(child.items) == child.max_items: 1, 0 or -1. */
static int
bt_is_full(PyObject *child)
{
    PyObject *items, *limit, *count;
    Py_ssize_t n;
    int full;

    if (bt_is_plain(Py_TYPE(child)) && Py_TYPE(child) == bt_plain_type &&
            bt_plain_max >= 0 && (items = SLOT(child, bt_off_items)) != NULL
            && PyList_CheckExact(items))
        return PyList_GET_SIZE(items) == bt_plain_max;
    items = READ_ITEMS(child);
    if (items == NULL)
        return -1;
    n = bt_len(items);
    Py_DECREF(items);
    if (n < 0)
        return -1;
    if (bt_is_plain(Py_TYPE(child)) && Py_TYPE(child) == bt_plain_type &&
            bt_plain_max >= 0)
        return n == bt_plain_max;
    limit = PyObject_GetAttr(child, s_max_items);
    if (limit == NULL)
        return -1;
    if (PyLong_CheckExact(limit)) {
        Py_ssize_t m = PyLong_AsSsize_t(limit);
        Py_DECREF(limit);
        if (m == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;       /* too large to equal a length */
        }
        return n == m;
    }
    count = PyLong_FromSsize_t(n);
    if (count == NULL) {
        Py_DECREF(limit);
        return -1;
    }
    full = bt_equal(count, limit);
    Py_DECREF(count);
    Py_DECREF(limit);
    return full;
}

/* items[i] = item, as a list assignment (or __setitem__). */
static int
bt_set_index(PyObject *items, Py_ssize_t i, PyObject *item)
{
    if (PyList_CheckExact(items)) {
        if (i < 0 || i >= PyList_GET_SIZE(items)) {
            PyErr_SetString(PyExc_IndexError,
                            "list assignment index out of range");
            return -1;
        }
        Py_INCREF(item);
        Py_SETREF(PyList_GET_ITEM(items, i), item);
        return 0;
    }
    return PySequence_SetItem(items, i, item);
}

static int
bt_insert_at(PyObject *items, Py_ssize_t i, PyObject *item)
{
    PyObject *result;
    if (PyList_CheckExact(items))
        return PyList_Insert(items, i, item);
    result = PyObject_CallMethod(items, "insert", "nO", i, item);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* seq[start:stop] (new reference); stop -1 for the end. */
static PyObject *
bt_slice(PyObject *seq, Py_ssize_t start, Py_ssize_t stop)
{
    PyObject *low, *high, *slice, *result;
    if (PyList_CheckExact(seq))
        return PyList_GetSlice(seq, start,
                               stop < 0 ? PyList_GET_SIZE(seq) : stop);
    low = start == 0 ? Py_NewRef(Py_None) : PyLong_FromSsize_t(start);
    high = stop < 0 ? Py_NewRef(Py_None) : PyLong_FromSsize_t(stop);
    slice = low && high ? PySlice_New(low, high, NULL) : NULL;
    Py_XDECREF(low);
    Py_XDECREF(high);
    if (slice == NULL)
        return NULL;
    result = PyObject_GetItem(seq, slice);
    Py_DECREF(slice);
    return result;
}

/* obj.<name> = value: straight into the slot for a node of a simple
   type (bt_is_simple), where setattr does just that; 0 or -1. */
static int
bt_write(PyObject *obj, PyObject *name, Py_ssize_t offset, PyObject *value)
{
    if (bt_is_simple(Py_TYPE(obj))) {
        set_slot(obj, offset, value);
        return 0;
    }
    return PyObject_SetAttr(obj, name, value);
}

/* child.__class__() for a child of a simple type: what type's call of
   PersistentBase.__new__ and BNode.__init__ make (items [], nodes None),
   without the Python frame.  The caller sets items before any Python
   code can see the node, so the empty list is left out. */
static PyObject *
bt_new_sibling(PyObject *child)
{
    PyObject *sibling = persistent_alloc(Py_TYPE(child));
    if (sibling != NULL)
        set_slot(sibling, bt_off_nodes, Py_None);
    return sibling;
}

/* node.split_child(position, child): BNode.split_child's steps in C when
   the node's class has not replaced it, else the method is called.  Each
   attribute is read and set as the method does: through the object, or
   straight from and into the slots for nodes of a simple type, where
   that is the same (bt_read, bt_write); for a node of a simple type the
   sibling is made in C and an UNSAVED node's _p_note_change() (which
   does nothing then) is not called. */
static int
bt_split(PyObject *node, Py_ssize_t position, PyObject *child)
{
    PyObject *degree = NULL, *cls = NULL, *sibling = NULL, *items = NULL,
        *part = NULL, *middle = NULL, *nodes = NULL, *result, *p_status;
    Py_ssize_t t;
    int status = -1;

    if (_PyType_Lookup(Py_TYPE(node), s_split_child) != bt_py_split) {
        result = PyObject_CallMethod(node, "split_child", "nO", position,
                                     child);    /* s_split_child's name */
        Py_XDECREF(result);
        return result == NULL ? -1 : 0;
    }
    if (bt_is_simple(Py_TYPE(child))) {
        /* t = child.minimum_degree; sibling = child.__class__() */
        t = bt_plain_degree;
        if ((sibling = bt_new_sibling(child)) == NULL)
            goto done;
    }
    else {
        /* t = child.minimum_degree */
        degree = PyObject_GetAttr(child, s_minimum_degree);
        if (degree == NULL)
            goto done;
        t = PyLong_CheckExact(degree) ? PyLong_AsSsize_t(degree) : -1;
        if (t == -1 && PyErr_Occurred())
            PyErr_Clear();
        if (t < 1) {
            /* Not a usable int: the method's own steps (and errors). */
            result = PyObject_CallFunction(bt_py_split, "OnO", node,
                                           position, child);
            Py_XDECREF(result);
            status = result == NULL ? -1 : 0;
            goto done;
        }
        /* sibling = child.__class__() */
        cls = PyObject_GetAttr(child, s_class);
        if (cls == NULL || (sibling = PyObject_CallNoArgs(cls)) == NULL)
            goto done;
    }
    /* sibling.items = child.items[t:] */
    if ((items = READ_ITEMS(child)) == NULL ||
            (part = bt_slice(items, t, -1)) == NULL ||
            bt_write(sibling, s_items, bt_off_items, part) < 0)
        goto done;
    Py_CLEAR(part);
    Py_CLEAR(items);
    /* middle = child.items[t - 1] */
    if ((items = READ_ITEMS(child)) == NULL ||
            (middle = bt_index(items, t - 1)) == NULL)
        goto done;
    Py_CLEAR(items);
    /* if child.nodes is not None: sibling.nodes = child.nodes[t:];
       child.nodes = child.nodes[:t] */
    if ((nodes = READ_NODES(child)) == NULL)
        goto done;
    if (nodes != Py_None) {
        if ((part = bt_slice(nodes, t, -1)) == NULL ||
                bt_write(sibling, s_nodes, bt_off_nodes, part) < 0)
            goto done;
        Py_CLEAR(part);
        Py_CLEAR(nodes);
        if ((nodes = READ_NODES(child)) == NULL ||
                (part = bt_slice(nodes, 0, t)) == NULL ||
                bt_write(child, s_nodes, bt_off_nodes, part) < 0)
            goto done;
        Py_CLEAR(part);
    }
    Py_CLEAR(nodes);
    /* child.items = child.items[:t - 1] */
    if ((items = READ_ITEMS(child)) == NULL ||
            (part = bt_slice(items, 0, t - 1)) == NULL ||
            bt_write(child, s_items, bt_off_items, part) < 0)
        goto done;
    Py_CLEAR(part);
    Py_CLEAR(items);
    /* self._p_note_change() */
    p_status = bt_is_simple(Py_TYPE(node)) ? slot(node, off_status) : NULL;
    if (p_status != one_value && (p_status == NULL ||
            !PyLong_CheckExact(p_status) || status_of(p_status) != 1)) {
        result = PyObject_CallMethodNoArgs(node, s_p_note_change);
        if (result == NULL)
            goto done;
        Py_DECREF(result);
    }
    /* self.items.insert(position, middle);
       self.nodes.insert(position + 1, sibling) */
    if ((items = READ_ITEMS(node)) == NULL ||
            bt_insert_at(items, position, middle) < 0 ||
            (nodes = READ_NODES(node)) == NULL ||
            bt_insert_at(nodes, position + 1, sibling) < 0)
        goto done;
    status = 0;
done:
    Py_XDECREF(degree);
    Py_XDECREF(cls);
    Py_XDECREF(sibling);
    Py_XDECREF(items);
    Py_XDECREF(part);
    Py_XDECREF(middle);
    Py_XDECREF(nodes);
    return status;
}

/* Can obj be, or become, part of a reference cycle?  CPython's own rule
   for the elements of a tuple: a container that is not tracked now (an
   empty dict) may be later; only an untracked tuple stays so. */
static inline int
bt_may_be_tracked(PyObject *obj)
{
    if (!PyObject_IS_GC(obj))
        return 0;
    if (PyTuple_CheckExact(obj))
        return PyObject_GC_IsTracked(obj);
    return 1;
}

/* Untrack a new (key, value) tuple that can never be part of a cycle
   (ints, strs and the like), as the collector does to such a tuple at
   its first pass over it: inserts then leave it nothing to do there. */
static inline void
bt_untrack_atomic(PyObject *item, PyObject *key, PyObject *value)
{
    if (!bt_may_be_tracked(key) && !bt_may_be_tracked(value))
        PyObject_GC_UnTrack(item);
}

/* A new (key, value) tuple, untracked when it can never be part of a
   cycle (bt_untrack_atomic). */
static inline PyObject *
bt_pair(PyObject *key, PyObject *value)
{
    PyObject *item = PyTuple_New(2);
    if (item == NULL)
        return NULL;
    PyTuple_SET_ITEM(item, 0, Py_NewRef(key));
    PyTuple_SET_ITEM(item, 1, Py_NewRef(value));
    bt_untrack_atomic(item, key, value);
    return item;
}

/* The insert walk of BTree.add from node (not full); 0 or -1. */
static int
bt_insert(PyObject *node, PyObject *key, PyObject *value)
{
    PyObject *items = NULL, *nodes = NULL, *child = NULL, *item = NULL,
        *middle = NULL, *found = NULL;
    Py_ssize_t i;
    int match, full, cmp;

    Py_INCREF(node);
    while (1) {
        items = READ_ITEMS(node);
        if (items == NULL)
            goto error;
        i = bt_bisect(items, key);
        if (i < 0)
            goto error;
        match = bt_match(items, i, key, &found);
        if (match < 0)
            goto error;
        if (match) {
            Py_CLEAR(found);
            if (bt_note_change(node) < 0)
                goto error;
            goto replace;
        }
        nodes = READ_NODES(node);
        if (nodes == NULL)
            goto error;
        if (nodes == Py_None) {
            if (bt_note_change(node) < 0)
                goto error;
            item = bt_pair(key, value);
            if (item == NULL || bt_insert_at(items, i, item) < 0)
                goto error;
            goto done;
        }
        child = bt_index(nodes, i);
        if (child == NULL)
            goto error;
        full = bt_is_full(child);
        if (full < 0)
            goto error;
        if (full) {
            if (bt_split(node, i, child) < 0)
                goto error;
            item = bt_index(items, i);
            if (item == NULL)
                goto error;
            middle = bt_first(item);
            Py_CLEAR(item);
            if (middle == NULL)
                goto error;
            cmp = bt_equal(key, middle);
            if (cmp < 0)
                goto error;
            if (cmp)
                goto replace;
            cmp = bt_less(middle, key);
            if (cmp < 0)
                goto error;
            Py_CLEAR(middle);
            if (cmp) {
                Py_SETREF(child, bt_index(nodes, i + 1));
                if (child == NULL)
                    goto error;
            }
        }
        Py_CLEAR(items);
        Py_CLEAR(nodes);
        Py_SETREF(node, child);
        child = NULL;
    }
replace:
    item = bt_pair(key, value);
    if (item == NULL || bt_set_index(items, i, item) < 0)
        goto error;
done:
    Py_XDECREF(item);
    Py_XDECREF(middle);
    Py_XDECREF(child);
    Py_XDECREF(nodes);
    Py_XDECREF(items);
    Py_DECREF(node);
    return 0;
error:
    Py_XDECREF(item);
    Py_XDECREF(middle);
    Py_XDECREF(child);
    Py_XDECREF(nodes);
    Py_XDECREF(items);
    Py_DECREF(node);
    return -1;
}

/* node._p_note_change() if node is not UNSAVED, then items[i] = item
   (replace) or items.insert(i, item), as BTree.add ends: 0 or -1. */
static int
bt_store(PyObject *node, PyObject *items, Py_ssize_t i, PyObject *key,
         PyObject *value, int replace)
{
    PyObject *item = NULL;
    int status = -1;

    /* _p_note_change may run Python code: hold what is used after it. */
    Py_INCREF(node);
    Py_INCREF(items);
    if (bt_note_change(node) < 0)
        goto done;
    item = bt_pair(key, value);
    if (item == NULL)
        goto done;
    status = replace ? bt_set_index(items, i, item)
        : bt_insert_at(items, i, item);
done:
    Py_XDECREF(item);
    Py_DECREF(items);
    Py_DECREF(node);
    return status;
}

/* The split of the full child (nodes[i]) on the way down, and what
   BTree.add does next, as the general walk does them: node.split_child(i,
   child), then the key is compared with the middle item's (items[i]).
   Holds what it uses, as the split may run Python code.  1 with *next
   (new reference): the child to go on with; 0 when the key is the
   middle one and its item is stored; -1 with an error. */
static int
bt_split_on_the_way(PyObject *node, PyObject *items, PyObject *nodes,
                    Py_ssize_t i, PyObject *child, PyObject *key,
                    PyObject *value, PyObject **next)
{
    PyObject *item = NULL, *middle = NULL;
    int cmp, status = -1;

    Py_INCREF(node);
    Py_INCREF(items);
    Py_INCREF(nodes);
    Py_INCREF(child);
    if (bt_split(node, i, child) < 0 ||
            (item = bt_index(items, i)) == NULL ||
            (middle = bt_first(item)) == NULL)
        goto done;
    Py_CLEAR(item);
    cmp = bt_equal(key, middle);
    if (cmp < 0)
        goto done;
    if (cmp) {
        /* items[i] = (key, value) */
        item = bt_pair(key, value);
        if (item != NULL && bt_set_index(items, i, item) == 0)
            status = 0;
        goto done;
    }
    cmp = bt_less(middle, key);
    if (cmp < 0)
        goto done;
    *next = cmp ? bt_index(nodes, i + 1) : Py_NewRef(child);
    if (*next != NULL)
        status = 1;
done:
    Py_XDECREF(item);
    Py_XDECREF(middle);
    Py_DECREF(child);
    Py_DECREF(nodes);
    Py_DECREF(items);
    Py_DECREF(node);
    return status;
}

/* The insert walk of an exact int or str key (kind) from node (not full),
   with borrowed references, as bt_search_kind: through plain nodes whose
   child on the way is plain, down to the node that gets the item.  A
   full child is split on the way (bt_split_on_the_way), after which the
   walk goes on from a node held in *anchor (a new reference, or NULL,
   for the caller to release when done with *resume): the split may have
   run Python code.  0 when stored, -1 with an error, or 2 with *resume
   (borrowed, alive while *anchor is held): the node from which the
   general walk (bt_insert) must take over, which nothing has read yet in
   a way Python could see (a child of another kind, an odd item are left
   to it). */
static int
bt_insert_kind(PyObject *node, PyObject *key, PyObject *value, int kind,
               PyObject **resume, PyObject **anchor)
{
    PyObject *items, *nodes, **slots, *child, *child_items, *next;
    Py_ssize_t i, n;
    int split;

    while (1) {
        if (!bt_plain_lists(node, &items, &nodes))
            break;
        n = PyList_GET_SIZE(items);
        slots = ((PyListObject *)items)->ob_item;
        i = bt_bisect_kind(slots, n, key, kind);
        if (i == -2)
            break;
        if (i < 0)
            return -1;
        if (i < n) {
            PyObject *k = bt_kind_key(slots[i], Py_TYPE(key));
            int equal;
            if (k == NULL)
                break;
            equal = bt_kind_equal(kind, k, key);
            if (equal < 0)
                return -1;
            if (equal)
                return bt_store(node, items, i, key, value, 1);
        }
        if (nodes == Py_None)
            return bt_store(node, items, i, key, value, 0);
        if (!PyList_CheckExact(nodes) || i >= PyList_GET_SIZE(nodes))
            break;
        child = PyList_GET_ITEM(nodes, i);
        /* len(child.items) == child.max_items, read without side effects
           only for a plain child of the remembered node type. */
        if (!bt_is_plain(Py_TYPE(child)) || Py_TYPE(child) != bt_plain_type
                || bt_plain_max < 0)
            break;
        child_items = SLOT(child, bt_off_items);
        if (child_items == NULL || !PyList_CheckExact(child_items))
            break;
        if (PyList_GET_SIZE(child_items) == bt_plain_max) {
            split = bt_split_on_the_way(node, items, nodes, i, child, key,
                                        value, &next);
            if (split <= 0)
                return split;
            Py_XSETREF(*anchor, next);
            child = next;
        }
        node = child;
    }
    *resume = node;
    return 2;
}

/* The walk of BTree.add(self, key, value): 0, or -1 with an error. */
static int
bt_add_item(PyObject *self, PyObject *key, PyObject *value)
{
    PyObject *root = bt_read_root(self);
    int full, kind;

    if (root == NULL)
        return -1;
    full = bt_is_full(root);
    if (full > 0)
        Py_SETREF(root, PyObject_CallMethodOneArg(self, s_grow_root, root));
    if (full < 0 || root == NULL) {
        Py_XDECREF(root);
        return -1;
    }
    kind = bt_kind(key);
    if (kind != BT_OTHER) {
        PyObject *resume = NULL, *anchor = NULL;
        int done = bt_insert_kind(root, key, value, kind, &resume, &anchor);
        /* resume is alive through root or anchor, which this holds. */
        if (done == 2)
            done = bt_insert(resume, key, value);
        Py_XDECREF(anchor);
        Py_DECREF(root);
        return done;
    }
    if (bt_insert(root, key, value) < 0) {
        Py_DECREF(root);
        return -1;
    }
    Py_DECREF(root);
    return 0;
}

/* BTree.add(self, key, value=True) and __setitem__(self, key, value) */
static PyObject *
bt_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
       PyObject *kwnames)
{
    if (kwnames != NULL || nargs < 1 || nargs > 2)
        return twin_decides(bt_py_add, self, args, nargs, kwnames);
    if (bt_add_item(self, args[0], nargs == 2 ? args[1] : Py_True) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* tree.__getitem__(key) and tree.__contains__(key) called by name: key
   may be given by keyword, as 4.3's Python methods take it ("tree[key]"
   and "key in tree" come through btree_slots, not these). */
static PyObject *
bt_getitem_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    if (kwnames != NULL || nargs != 1)
        return twin_decides(bt_py_getitem, self, args, nargs, kwnames);
    return bt_getitem(self, args[0]);
}

static PyObject *
bt_contains_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    if (kwnames != NULL || nargs != 1)
        return twin_decides(bt_py_contains, self, args, nargs, kwnames);
    return bt_contains(self, args[0]);
}

static PyMethodDef bt_getitem_def = {
    "__getitem__", (PyCFunction)(void (*)(void))bt_getitem_call,
    METH_FASTCALL | METH_KEYWORDS,
    "__getitem__($self, /, key)\n--\n\n"
    "The value of key; KeyError if absent (compiled walk)."};
static PyMethodDef bt_get_def = {
    "get", (PyCFunction)(void (*)(void))bt_get,
    METH_FASTCALL | METH_KEYWORDS,
    "The value of key, or default (compiled walk)."};
static PyMethodDef bt_contains_def = {
    "__contains__", (PyCFunction)(void (*)(void))bt_contains_call,
    METH_FASTCALL | METH_KEYWORDS,
    "__contains__($self, /, key)\n--\n\n"
    "Whether key is in the tree (compiled walk)."};
static PyMethodDef bt_add_def = {
    "add", (PyCFunction)(void (*)(void))bt_add,
    METH_FASTCALL | METH_KEYWORDS,
    "Insert or replace the item of key (compiled walk)."};

/* A slot's offset in cls, and its member descriptor (new ref); -1. */
static Py_ssize_t
bt_slot(PyObject *cls, PyObject *name, PyObject **descr)
{
    PyObject *found = _PyType_Lookup((PyTypeObject *)cls, name);
    if (found == NULL || !Py_IS_TYPE(found, &PyMemberDescr_Type) ||
            ((PyMemberDescrObject *)found)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%U is not an object slot", name);
        return -1;
    }
    Py_XSETREF(*descr, Py_NewRef(found));
    return ((PyMemberDescrObject *)found)->d_member->offset;
}

/* btree_methods(BTree, BNode, get, getitem, add, split_child, contains)
   -> (get, __getitem__, add, __contains__) method descriptors of BTree;
   the functions are the Python twins (BNode.split_child: the one done in
   C when a node's class has not replaced it). */
static PyObject *
btree_methods(PyObject *module, PyObject *args)
{
    PyObject *tree, *node, *get, *getitem, *add, *split, *contains, *d_get,
        *d_getitem, *d_add, *d_contains;

    if (!PyArg_ParseTuple(args, "O!O!OOOOO:btree_methods", &PyType_Type,
                          &tree, &PyType_Type, &node, &get, &getitem, &add,
                          &split, &contains))
        return NULL;
    if (bt_missing == NULL &&
            (bt_missing = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type))
            == NULL)
        return NULL;
    if (!configured) {
        PyErr_SetString(PyExc_TypeError, "durus.persistent not configured");
        return NULL;
    }
    if ((bt_off_items = bt_slot(node, s_items, &bt_items_descr)) < 0 ||
            (bt_off_nodes = bt_slot(node, s_nodes, &bt_nodes_descr)) < 0 ||
            (bt_off_root = bt_slot(tree, s_root, &bt_root_descr)) < 0)
        return NULL;
    Py_XSETREF(bt_py_get, Py_NewRef(get));
    Py_XSETREF(bt_py_getitem, Py_NewRef(getitem));
    Py_XSETREF(bt_py_add, Py_NewRef(add));
    Py_XSETREF(bt_py_split, Py_NewRef(split));
    Py_XSETREF(bt_py_contains, Py_NewRef(contains));
    Py_XSETREF(bt_py_init, Py_XNewRef(_PyType_Lookup((PyTypeObject *)node,
                                                     s_init)));
    Py_XSETREF(bt_std_note_change, Py_XNewRef(
        _PyType_Lookup((PyTypeObject *)node, s_p_note_change)));
    bt_plain_type = NULL;       /* checked again against these */
    d_get = PyDescr_NewMethod((PyTypeObject *)tree, &bt_get_def);
    d_getitem = PyDescr_NewMethod((PyTypeObject *)tree, &bt_getitem_def);
    d_add = PyDescr_NewMethod((PyTypeObject *)tree, &bt_add_def);
    d_contains = PyDescr_NewMethod((PyTypeObject *)tree, &bt_contains_def);
    if (d_get == NULL || d_getitem == NULL || d_add == NULL ||
            d_contains == NULL) {
        Py_XDECREF(d_get);
        Py_XDECREF(d_getitem);
        Py_XDECREF(d_add);
        Py_XDECREF(d_contains);
        return NULL;
    }
    Py_XSETREF(bt_d_get, Py_NewRef(d_get));
    Py_XSETREF(bt_d_getitem, Py_NewRef(d_getitem));
    Py_XSETREF(bt_d_add, Py_NewRef(d_add));
    Py_XSETREF(bt_d_contains, Py_NewRef(d_contains));
    return Py_BuildValue("(NNNN)", d_get, d_getitem, d_add, d_contains);
}

/* type(self).<name>(self, *args), looked up and called as CPython's own
   slot functions do (for trees of another type than the one whose slots
   were set, and for del tree[key]). */
static PyObject *
bt_call_special(PyObject *self, PyObject *name, PyObject *key,
                PyObject *value)
{
    PyObject *func = _PyType_Lookup(Py_TYPE(self), name), *bound, *result;
    PyObject *stack[3] = {self, key, value};
    Py_ssize_t nargs = value == NULL ? 2 : 3;

    if (func == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_AttributeError, name);
        return NULL;
    }
    Py_INCREF(func);
    if (PyType_HasFeature(Py_TYPE(func), Py_TPFLAGS_METHOD_DESCRIPTOR))
        result = PyObject_Vectorcall(func, stack, nargs, NULL);
    else {
        descrgetfunc get = Py_TYPE(func)->tp_descr_get;
        bound = get == NULL ? Py_NewRef(func)
            : get(func, self, (PyObject *)Py_TYPE(self));
        result = bound == NULL ? NULL
            : PyObject_Vectorcall(bound, stack + 1, nargs - 1, NULL);
        Py_XDECREF(bound);
    }
    Py_DECREF(func);
    return result;
}

/* BTree's subscript slots (and `in`).  For a class that defines __getitem__ in its
   body CPython's slot looks the method up and calls it through its
   descriptor on every tree[key]: about 150 instructions beside a lookup
   of about 900.  btree_slots() points BTree's own slots here while its
   __getitem__ / __setitem__ are the compiled ones; setting either (or
   __delitem__) on BTree or a base later makes CPython recompute the slot,
   which drops this, and subclasses get CPython's slots when created. */
static PyTypeObject *bt_slots_type;

static PyObject *
bt_subscript(PyObject *self, PyObject *key)
{
    if (Py_TYPE(self) == bt_slots_type)
        return bt_lookup(self, key, NULL);
    return bt_call_special(self, s_getitem, key, NULL);
}

static int
bt_sq_contains(PyObject *self, PyObject *key)
{
    PyObject *result = Py_TYPE(self) == bt_slots_type
        ? bt_contains(self, key)
        : bt_call_special(self, s_contains, key, NULL);
    int truth;
    if (result == NULL)
        return -1;
    truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

static int
bt_ass_subscript(PyObject *self, PyObject *key, PyObject *value)
{
    PyObject *result;
    if (value != NULL && Py_TYPE(self) == bt_slots_type)
        return bt_add_item(self, key, value);
    result = bt_call_special(self, value == NULL ? s_delitem : s_setitem,
                             key, value);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* btree_slots(BTree) -> (getitem set, setitem set, contains set):
   called by durus.btree once the compiled methods are in place. */
static PyObject *
btree_slots(PyObject *module, PyObject *tree)
{
    PyTypeObject *tp = (PyTypeObject *)tree;
    PyMappingMethods *mapping;
    PySequenceMethods *sequence;
    PyObject *getitem, *setitem, *contains;
    int set_get = 0, set_set = 0, set_contains = 0;

    if (!PyType_Check(tree) || !PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE)) {
        PyErr_SetString(PyExc_TypeError, "btree_slots takes the BTree class");
        return NULL;
    }
    mapping = &((PyHeapTypeObject *)tp)->as_mapping;
    if (tp->tp_as_mapping == mapping && bt_d_getitem != NULL) {
        getitem = PyDict_GetItemWithError(tp->tp_dict, s_getitem);
        if (getitem == NULL && PyErr_Occurred())
            return NULL;
        setitem = PyDict_GetItemWithError(tp->tp_dict, s_setitem);
        if (setitem == NULL && PyErr_Occurred())
            return NULL;
        set_get = getitem == bt_d_getitem;
        set_set = setitem == bt_d_add;
    }
    sequence = &((PyHeapTypeObject *)tp)->as_sequence;
    if (tp->tp_as_sequence == sequence && bt_d_contains != NULL) {
        contains = PyDict_GetItemWithError(tp->tp_dict, s_contains);
        if (contains == NULL && PyErr_Occurred())
            return NULL;
        set_contains = contains == bt_d_contains;
    }
    if (set_get || set_set || set_contains) {
        Py_XSETREF(bt_slots_type, (PyTypeObject *)Py_NewRef(tree));
        if (set_get)
            mapping->mp_subscript = bt_subscript;
        if (set_set)
            mapping->mp_ass_subscript = bt_ass_subscript;
        if (set_contains)
            sequence->sq_contains = bt_sq_contains;
    }
    return Py_BuildValue("(OOO)", set_get ? Py_True : Py_False,
                         set_set ? Py_True : Py_False,
                         set_contains ? Py_True : Py_False);
}
