"""Read persistent objects without side effects.

Completion and rendering look at objects the operator did not ask to
touch, so everything here obeys three rules:

* no attribute hook runs: state is read with durus.persistent's raw
  ``_getattribute``; no method, property or ``__getattr__`` of an
  application class is called;
* an object never counts as accessed: a ghost's state is loaded through
  the connection directly (``load_quietly``), which does not call
  ``note_access``, so ``_p_serial`` stays as it was;
* nothing is marked changed.

BTrees are walked node by node (``btree_items``), so looking at the start
of a million-key tree loads a handful of nodes, never the whole tree.
"""

import bisect

from durus.persistent import (GHOST, SAVED, UNSAVED, PersistentBase,
                              _getattribute, _hasattribute,
                              data_slot_names)
from durus.persistent import peek as _peek_attribute


def is_persistent(value):
    return isinstance(value, PersistentBase)


def status_name(obj):
    """'ghost', 'saved', 'changed' or 'new' (never stored)."""
    if _getattribute(obj, '_p_oid') is None:
        return 'new'
    status = _getattribute(obj, '_p_status')
    if status == GHOST:
        return 'ghost'
    if status == UNSAVED:
        return 'changed'
    return 'saved'


def load_quietly(obj):
    """Fill a ghost's state without marking it accessed."""
    if (_getattribute(obj, '_p_status') == GHOST
            and _getattribute(obj, '_p_connection') is not None):
        # durus.persistent.peek loads through the connection and marks the
        # object SAVED without note_access.
        _peek_attribute(obj, '_p_oid')


def real_class(obj):
    """The object's class (``type(obj)`` may be a hook variant of it)."""
    return _getattribute(obj, '__class__')


def class_path(cls):
    return '%s.%s' % (cls.__module__, cls.__qualname__)


def slot_names(cls):
    """Every data slot declared along the MRO (except the persistence ones)."""
    return data_slot_names(cls)


def raw_state(obj):
    """``{name: value}`` of a persistent object's stored attributes.

    Loads a ghost quietly first.  Reads slots and ``__dict__`` raw.
    """
    load_quietly(obj)
    state = {}
    try:
        instance_dict = _getattribute(obj, '__dict__')
    except AttributeError:
        instance_dict = None
    for name in slot_names(real_class(obj)):
        if _hasattribute(obj, name):
            state[name] = _getattribute(obj, name)
    if instance_dict:
        state.update(instance_dict)
    return state


def raw_attribute(obj, name):
    """One stored attribute of a persistent object (AttributeError if unset).

    Only the instance ``__dict__`` and slots are read: a property or other
    descriptor of the class is never run.
    """
    load_quietly(obj)
    try:
        instance_dict = _getattribute(obj, '__dict__')
    except AttributeError:
        instance_dict = None
    if instance_dict is not None and name in instance_dict:
        return instance_dict[name]
    if name in slot_names(real_class(obj)):
        return _getattribute(obj, name)
    raise AttributeError(name)


def class_attribute(cls, name):
    """``(found, value)`` for ``name`` looked up in the class MRO's dicts."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return True, klass.__dict__[name]
    return False, None


def class_attribute_names(cls):
    names = set()
    for klass in cls.__mro__:
        names.update(klass.__dict__)
    return names


# -- containers ------------------------------------------------------------

def container_kind(obj):
    """'dict', 'list', 'set', 'btree' for durus containers, else None."""
    from durus.btree import BTree
    from durus.persistent_dict import PersistentDict
    from durus.persistent_list import PersistentList
    from durus.persistent_set import PersistentSet
    if isinstance(obj, PersistentDict):
        return 'dict'
    if isinstance(obj, PersistentList):
        return 'list'
    if isinstance(obj, PersistentSet):
        return 'set'
    if isinstance(obj, BTree):
        return 'btree'
    return None


def container_data(obj, kind):
    """The plain dict/list/set inside a PersistentDict/List/Set, raw."""
    return raw_attribute(obj, 's' if kind == 'set' else 'data')


def _node(node):
    load_quietly(node)
    return _getattribute(node, 'items'), _getattribute(node, 'nodes')


def btree_items(btree, start=None, limit=None):
    """``(key, value)`` pairs of a BTree in key order, from ``start`` on.

    Walks nodes raw and loads ghosts quietly; stops after ``limit``
    pairs.  Keys that do not compare with ``start`` raise TypeError.
    """
    root = raw_attribute(btree, 'root')
    count = 0
    for item in _node_items(root, start):
        yield item
        count += 1
        if limit is not None and count >= limit:
            return


def _node_items(node, start):
    items, nodes = _node(node)
    if start is None:
        first = 0
    else:
        first = bisect.bisect_left([key for key, _ in items], start)
    if nodes is None:
        yield from items[first:]
        return
    for index in range(first, len(items) + 1):
        yield from _node_items(nodes[index], start if index == first
                               else None)
        if index < len(items):
            yield items[index]


def btree_get(btree, key):
    """The value for ``key`` in a BTree, read raw (KeyError if absent)."""
    node = raw_attribute(btree, 'root')
    while True:
        items, nodes = _node(node)
        keys = [k for k, _ in items]
        index = bisect.bisect_left(keys, key)
        if index < len(items) and keys[index] == key:
            return items[index][1]
        if nodes is None:
            raise KeyError(key)
        node = nodes[index]


def btree_size(btree, max_nodes=64):
    """``(count, exact)``: the number of items, counted or estimated.

    One walk down the middle of the tree (a node per level) gives the
    depth and fan-outs.  When the whole tree is then expected to have at
    most ``max_nodes`` nodes it is counted exactly; otherwise the estimate
    (fan-out per level times the items of a node) is returned.
    """
    estimate, nodes = _estimate(raw_attribute(btree, 'root'))
    if nodes > max_nodes:
        return estimate, False
    total = 0
    level = [raw_attribute(btree, 'root')]
    while level:
        following = []
        for node in level:
            items, children = _node(node)
            total += len(items)
            if children is not None:
                following.extend(children)
        level = following
    return total, True


def _estimate(root):
    """``(items, nodes)`` estimated from the path down the middle."""
    items_estimate = 0
    nodes_estimate = 0
    width = 1
    node = root
    while node is not None:
        items, nodes = _node(node)
        items_estimate += width * len(items)
        nodes_estimate += width
        if nodes is None:
            break
        width *= len(nodes)
        node = nodes[len(nodes) // 2]
    return items_estimate, nodes_estimate


__all__ = ['GHOST', 'SAVED', 'UNSAVED']
