"""Looking at persistent objects without disturbing them (the shell's one
module for it, on ``durus.inspect``).

Completion, rendering, diffs and change tracking look at objects the
operator did not ask to touch, so everything here obeys three rules:

* no attribute hook runs and no method, property or ``__getattr__`` of an
  application class is called (``__getstate__`` aside, for classes that
  define their own);
* an object never counts as accessed (``_p_serial`` stays as it was), and
  a ghost is loaded only where a function says so (``load``);
* nothing is marked changed.

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
import time
import uuid

from durus import inspect
from durus.inspect import (GHOST, SAVED, UNSAVED, is_persistent,
                           load_quietly, peek_state, raw_attribute,
                           real_class)
from durus.persistent import PersistentBase, data_slot_names
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet

__all__ = ['GHOST', 'SAVED', 'UNSAVED', 'is_persistent', 'load_quietly',
           'peek_state', 'raw_attribute', 'real_class']

IMMUTABLE_TYPES = frozenset([str, bytes, int, float, bool, type(None), complex,
                        range, decimal.Decimal, fractions.Fraction, uuid.UUID,
                        datetime.date, datetime.datetime, datetime.time,
                        datetime.timedelta, datetime.timezone])


def is_ghost(obj):
    return inspect.status(obj) == GHOST


def oid_of(obj):
    return inspect.oid_of(obj)


def status_name(obj):
    """'ghost', 'saved', 'changed' or 'new' (never stored)."""
    if inspect.oid_of(obj) is None:
        return 'new'
    status = inspect.status(obj)
    if status == GHOST:
        return 'ghost'
    if status == UNSAVED:
        return 'changed'
    return 'saved'


def class_path(cls):
    """``'module.Name'`` as pickled (placeholders name what they replace)."""
    module = getattr(cls, 'placeholder_module', None)
    if module is not None:
        return '%s.%s' % (module, cls.placeholder_name)
    return inspect.class_path(cls)


def format_oid(obj):
    oid = inspect.oid_of(obj)
    return 'new' if oid is None else str(int.from_bytes(oid, 'big'))


def set_state(obj, state):
    """Replace ``obj``'s state (a copy of ``state``) quietly."""
    inspect.set_state(obj, copy_value(state))


def raw_state(obj):
    """``{name: value}`` of a persistent object's stored attributes.

    Loads a ghost quietly first.  Reads slots and ``__dict__`` raw.
    """
    load_quietly(obj)
    state = {}
    try:
        instance_dict = object.__getattribute__(obj, '__dict__')
    except AttributeError:
        instance_dict = None
    for name in data_slot_names(real_class(obj)):
        try:
            state[name] = object.__getattribute__(obj, name)
        except AttributeError:
            pass
    if instance_dict:
        state.update(instance_dict)
    return state


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
    """'dict', 'list', 'set', 'btree', 'bnode' for durus containers, else None."""
    if isinstance(obj, PersistentDict):
        return 'dict'
    if isinstance(obj, PersistentList):
        return 'list'
    if isinstance(obj, PersistentSet):
        return 'set'
    if inspect.is_btree(obj):
        return 'btree'
    if inspect.is_bnode(obj):
        return 'bnode'
    return None


def container_data(obj, kind):
    """The plain dict/list/set inside a PersistentDict/List/Set, raw."""
    return raw_attribute(obj, 's' if kind == 'set' else 'data')


def btree_items(btree, start=None, limit=None):
    """``(key, value)`` pairs of a BTree in key order, from ``start`` on,
    at most ``limit`` of them (nodes are loaded quietly as walked)."""
    count = 0
    if limit is not None and limit <= 0:
        return
    for item in inspect.btree_items(btree, start=start):
        yield item
        count += 1
        if limit is not None and count >= limit:
            return


btree_get = inspect.btree_get
btree_size = inspect.btree_size


def gen_btree_items(tree, load=False):
    """``(key, value)`` of a BTree in key order; without ``load`` only
    what is in memory."""
    return inspect.btree_items(tree, load=load)


def gen_btree_nodes(tree, load=False):
    """Every node under a BTree (root first); without ``load`` only the
    nodes in memory."""
    return inspect.btree_nodes(tree, load=load)


# -- state values ------------------------------------------------------------

def copy_value(value):
    """A copy in which no plain container is shared with ``value``.

    Persistent objects and immutable values are kept by identity, so a
    copy refers to the same objects but can be changed independently.
    """
    kind = type(value)
    if kind in IMMUTABLE_TYPES:
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
    if kind in IMMUTABLE_TYPES:
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
    if kind in IMMUTABLE_TYPES or kind is frozenset:
        return False
    if kind is dict:
        return True
    if kind is tuple:
        return any(contains_mutable(item) for item in value)
    return not isinstance(value, PersistentBase)


# -- references with their path steps ------------------------------------

def gen_plain_refs(value, prefix=''):
    """``(step, persistent object)`` for every persistent object inside a
    plain value, the step written as Python (``['k'][2]``)."""
    kind = type(value)
    if kind in IMMUTABLE_TYPES:
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


def gen_refs(obj, load=False):
    """``(step, persistent object)`` for the references in ``obj``'s state.

    Containers read as Python: a PersistentDict's items as ``[key]``, a
    BTree's values as ``[key]`` (its nodes are skipped over), attributes
    as ``.name``.  A ghost has no references unless ``load``.
    """
    state = peek_state(obj, load)
    if state is None:
        return
    kind = container_kind(obj)
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


def find_memory_paths(root, targets, limit_objects=None, deadline=None):
    """``{id(target): path}`` for targets reachable from ``root`` through
    loaded objects only (nothing is read from the storage).

    Breadth first, so each path is a shortest one; stops as soon as every
    target is found, after ``limit_objects`` references followed, or at
    ``deadline`` (a ``time.monotonic()`` value, checked every 256
    references: one loaded BTree can hold a million).
    """
    wanted = {id(obj) for obj in targets}
    found = {}
    if id(root) in wanted:
        found[id(root)] = 'root'
    seen = {id(root)}
    queue = [(root, 'root')]
    followed = 0
    while queue and len(found) < len(wanted):
        next_queue = []
        for obj, path in queue:
            for step, child in gen_refs(obj):
                followed += 1
                if not followed & 255 and (
                        (limit_objects is not None and
                         followed > limit_objects) or
                        (deadline is not None and
                         time.monotonic() > deadline)):
                    return found
                key = id(child)
                if key in seen:
                    continue
                seen.add(key)
                child_path = path + step
                if key in wanted:
                    found[key] = child_path
                    if len(found) == len(wanted):
                        return found
                if inspect.status(child) != GHOST:
                    next_queue.append((child, child_path))
        queue = next_queue
    return found
