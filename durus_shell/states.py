"""Looking at persistent objects' states without disturbing them.

The shell's change tracking and browsing read many objects' states.  A
plain attribute get on a persistent object counts as an *access* (it sets
``_p_serial``), and accessed objects take part in conflict detection, so
every read here goes through ``peek_state``, which leaves the access
marker as it was and never loads a ghost unless asked.

Also here: copying a state (plain containers copied, persistent objects
kept by identity), comparing states (persistent objects compared by
identity, never by their own ``__eq__``, which would load them), and the
references a state holds, each with the path step that reaches it
(``.name``, ``['key']``, ``[3]``) so that paths read as Python.
"""

import copy
import datetime
import decimal
import fractions
import uuid

from durus.persistent import (Persistent, PersistentBase, PersistentObject,
                              _getattribute, refresh_hooks)

_IMMUTABLE = frozenset([str, bytes, int, float, bool, type(None), complex,
                        range, decimal.Decimal, fractions.Fraction, uuid.UUID,
                        datetime.date, datetime.datetime, datetime.time,
                        datetime.timedelta, datetime.timezone])

_DICT_GETSTATE = Persistent.__getstate__
_SLOTS_GETSTATE = PersistentObject.__getstate__

GHOST = -1
SAVED = 0
UNSAVED = 1


def is_persistent(value):
    return isinstance(value, PersistentBase)


def is_ghost(obj):
    return obj._p_status == GHOST


def peek_state(obj, load=False):
    """``obj.__getstate__()`` without marking ``obj`` accessed.

    A ghost gives None unless ``load`` (then its state is loaded, which
    reads the storage but still does not count as an access).
    """
    if obj._p_status == GHOST:
        if not load:
            return None
        # Machinery, exempt from the hooks: loads without an access mark.
        type(obj)._p_load_state(obj)
    getstate = type(obj).__getstate__
    if getstate is _DICT_GETSTATE:
        return _getattribute(obj, '__dict__')
    if getstate is _SLOTS_GETSTATE:
        return getstate(obj)   # reads raw
    serial = obj._p_serial
    try:
        return getstate(obj)
    finally:
        if obj._p_serial != serial:
            obj._p_serial = serial
            refresh_hooks(obj)


def set_state(obj, state):
    """Replace ``obj``'s state without change tracking or access marks."""
    serial = obj._p_serial
    try:
        type(obj).__setstate__(obj, copy_value(state))
    finally:
        if obj._p_serial != serial:
            obj._p_serial = serial
            refresh_hooks(obj)


def copy_value(value):
    """A copy in which no plain container is shared with ``value``.

    Persistent objects and immutable values are kept by identity, so a
    copy refers to the same objects but can be changed independently.
    """
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict:
        return {key: copy_value(item) for key, item in value.items()}
    if kind is list:
        return [copy_value(item) for item in value]
    if kind is tuple:
        items = tuple(copy_value(item) for item in value)
        return value if all(a is b for a, b in zip(items, value)) else items
    if kind is set:
        return set(value)
    if kind is frozenset or isinstance(value, (PersistentBase, type)):
        return value
    try:
        return copy.copy(value)
    except Exception:
        return value


def same_value(a, b):
    """Equal as stored data: persistent objects compare by identity."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind in _IMMUTABLE:
        return a == b
    if kind is dict:
        if len(a) != len(b):
            return False
        for key, item in a.items():
            if key not in b or not same_value(item, b[key]):
                return False
        return True
    if kind is list or kind is tuple:
        return len(a) == len(b) and all(map(same_value, a, b))
    if kind is set or kind is frozenset:
        return a == b
    if isinstance(a, PersistentBase):
        return False
    if kind.__eq__ is not object.__eq__:
        try:
            return bool(a == b)
        except Exception:
            return False
    return same_value(_reduced(a), _reduced(b))


def _reduced(value):
    try:
        parts = value.__reduce_ex__(2)
    except Exception:
        return id(value)
    if isinstance(parts, str):
        return parts
    parts = list(parts[1:])
    for i in (2, 3):
        if i < len(parts) and parts[i] is not None:
            parts[i] = list(parts[i])
    return parts


def contains_mutable(value):
    """Whether ``value`` holds anything that can change in place."""
    kind = type(value)
    if kind in _IMMUTABLE or kind is frozenset:
        return False
    if kind is dict:
        return True
    if kind is tuple:
        return any(contains_mutable(item) for item in value)
    return not isinstance(value, PersistentBase)


def class_path(cls):
    """``'module.Name'`` as pickled (placeholders name what they replace)."""
    module = getattr(cls, 'placeholder_module', None)
    if module is not None:
        return '%s.%s' % (module, cls.placeholder_name)
    return '%s.%s' % (cls.__module__, cls.__qualname__)


def format_oid(obj):
    oid = obj._p_oid
    return 'new' if oid is None else str(int.from_bytes(oid, 'big'))


# -- references with their path steps ------------------------------------

def _container_kind(obj):
    """'dict', 'list', 'set', 'btree', 'bnode' or None for ``obj``'s class."""
    for klass in type(obj).__mro__:
        kind = _KINDS.get((klass.__module__, klass.__name__))
        if kind:
            return kind
    return None


_KINDS = {
    ('durus.persistent_dict', 'PersistentDict'): 'dict',
    ('durus.persistent_list', 'PersistentList'): 'list',
    ('durus.persistent_set', 'PersistentSet'): 'set',
    ('durus.btree', 'BTree'): 'btree',
    ('durus.btree', 'BNode'): 'bnode',
}


def container_kind(obj):
    return _container_kind(obj)


def gen_plain_refs(value, prefix=''):
    """``(step, persistent object)`` for every persistent object inside a
    plain value, the step written as Python (``['k'][2]``)."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return
    if isinstance(value, PersistentBase):
        yield prefix, value
    elif kind is dict or isinstance(value, dict):
        for key, item in value.items():
            if is_persistent(key):
                yield prefix + '<key>', key
            yield from gen_plain_refs(item, '%s[%r]' % (prefix, key))
    elif kind is list or kind is tuple:
        for index, item in enumerate(value):
            yield from gen_plain_refs(item, '%s[%d]' % (prefix, index))
    elif kind is set or kind is frozenset:
        for item in value:
            yield from gen_plain_refs(item, prefix + '<in set>')


def gen_btree_items(tree, load=False):
    """``(key, value)`` of a BTree in key order, lazily; subtrees that are
    ghosts are skipped unless ``load``."""
    state = peek_state(tree, load)
    if state is None:
        return
    yield from _gen_node_items(state.get('root'), load)


def _gen_node_items(node, load):
    if node is None:
        return
    state = peek_state(node, load)
    if state is None:
        return
    items = state.get('items') or ()
    nodes = state.get('nodes')
    if not nodes:
        yield from items
        return
    for index, item in enumerate(items):
        yield from _gen_node_items(nodes[index], load)
        yield item
    yield from _gen_node_items(nodes[-1], load)


def gen_btree_nodes(tree, load=False):
    """Every loaded BNode under a BTree (root first)."""
    state = peek_state(tree, load)
    if state is None:
        return
    stack = [state.get('root')]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        node_state = peek_state(node, load)
        if node_state is not None:
            stack.extend(node_state.get('nodes') or ())


def gen_refs(obj, load=False):
    """``(step, persistent object)`` for the references in ``obj``'s state.

    Containers read as Python: a PersistentDict's items as ``[key]``, a
    BTree's values as ``[key]`` (its nodes are skipped over), attributes
    as ``.name``.  A ghost has no references unless ``load``.
    """
    state = peek_state(obj, load)
    if state is None:
        return
    kind = _container_kind(obj)
    if kind == 'btree':
        for key, value in gen_btree_items(obj, load):
            yield from gen_plain_refs(value, '[%r]' % (key,))
        return
    if kind == 'dict' and isinstance(state, dict) and 'data' in state:
        yield from gen_plain_refs(state['data'])
        return
    if kind == 'list' and isinstance(state, dict) and 'data' in state:
        yield from gen_plain_refs(state['data'])
        return
    if kind == 'set' and isinstance(state, dict) and 's' in state:
        yield from gen_plain_refs(state['s'])
        return
    if isinstance(state, dict):
        for name, value in state.items():
            yield from gen_plain_refs(value, '.' + name)
    else:
        yield from gen_plain_refs(state, '<state>')


def find_step(parent, child, load=True):
    """The path step from ``parent`` to ``child`` (None if not referred)."""
    for step, value in gen_refs(parent, load):
        if value is child:
            return step
    return None


def find_memory_paths(root, targets, limit_objects=None):
    """``{id(target): path}`` for targets reachable from ``root`` through
    loaded objects only (nothing is read from the storage).

    Breadth first, so each path is a shortest one; stops once every
    target is found.
    """
    wanted = {id(obj) for obj in targets}
    found = {}
    if id(root) in wanted:
        found[id(root)] = 'root'
    seen = {id(root)}
    queue = [(root, 'root')]
    visited = 0
    while queue and len(found) < len(wanted):
        next_queue = []
        for obj, path in queue:
            visited += 1
            if limit_objects is not None and visited > limit_objects:
                return found
            for step, child in gen_refs(obj):
                key = id(child)
                if key in seen:
                    continue
                seen.add(key)
                child_path = path + step
                if key in wanted:
                    found[key] = child_path
                if child._p_status != GHOST:
                    next_queue.append((child, child_path))
        queue = next_queue
    return found
