"""Quiet reads: look at persistent objects without taking part in the transaction.

For tools (the shell's browsing, diffs, change tracking) that look at a
database from the side.  Nothing here

* counts as an access (``_p_serial`` stays as it was, so what a tool
  looks at takes no part in conflict detection and stays first in line
  for cache shrinking),
* marks anything changed, or
* runs a method, property or ``__getattr__`` of an application class,
  except ``__getstate__``/``__setstate__`` where a class has its own.

A ghost's state is read only where a function says it loads (``load``).

What a commit would write is found by the writer itself, in a dry run
(``pending_writes``): the same pickling, the same new-object finder, but
no oid is given and nothing is bound or stored.
"""

from bisect import bisect_left
from itertools import compress

from durus._accel import use as _use_compiled
from durus.btree import _MISSING as _NO_KEY, BNode, BTree, _iter_forward
from durus.error import ReadConflictError
from durus.persistent import (GHOST, SAVED, UNSAVED, Persistent,
                              PersistentBase, PersistentObject, _variants,
                              data_slot_names, refresh_hooks)
from durus.serialize import ObjectWriter, unpack_record

__all__ = ['GHOST', 'SAVED', 'UNSAVED', 'is_persistent', 'real_class',
           'class_path', 'status', 'oid_of', 'load_quietly', 'peek_state',
           'set_state', 'raw_attribute', 'pending_writes', 'PendingWrites',
           'stored_states', 'differing_from_records', 'in_place_suspects',
           'btree_items',
           'btree_get', 'btree_nodes', 'btree_size', 'is_btree', 'is_bnode',
           'instances_of_class']

_raw_get = object.__getattribute__
_raw_set = object.__setattr__
_DICT_GETSTATE = Persistent.__getstate__
_SLOTS_GETSTATE = PersistentObject.__getstate__


# -- one object ---------------------------------------------------------------

def is_persistent(value):
    return isinstance(value, PersistentBase)


def real_class(obj):
    """The object's class (``type(obj)`` may be a hook variant of it)."""
    cls = type(obj)
    triple = _variants.get(cls)
    return cls if triple is None else triple[0]


def class_path(cls):
    """``'module.QualName'`` of a class or of a hook variant's class."""
    triple = _variants.get(cls)
    if triple is not None:
        cls = triple[0]
    return '%s.%s' % (cls.__module__, cls.__qualname__)


def status(obj):
    """GHOST, SAVED or UNSAVED."""
    return _raw_get(obj, '_p_status')


def oid_of(obj):
    """The 8-byte oid, or None for an object never committed."""
    return _raw_get(obj, '_p_oid')


def load_quietly(obj):
    """Fill a ghost's state from its record without marking it accessed."""
    if _raw_get(obj, '_p_status') != GHOST:
        return
    connection = _raw_get(obj, '_p_connection')
    if connection is None:
        raise ValueError('%r is a ghost without a connection' % (obj,))
    serial = _raw_get(obj, '_p_serial')
    type(obj)._p_load_state(obj)
    if _raw_get(obj, '_p_serial') != serial:
        _raw_set(obj, '_p_serial', serial)
    refresh_hooks(obj)


def peek_state(obj, load=False):
    """``obj.__getstate__()`` without marking ``obj`` accessed.

    A ghost gives None unless ``load``.  The usual classes' states are
    read raw; a class with its own ``__getstate__`` is asked, and an
    access mark it leaves is taken back.
    """
    if _raw_get(obj, '_p_status') == GHOST:
        if not load:
            return None
        load_quietly(obj)
    getstate = type(obj).__getstate__
    if getstate is _DICT_GETSTATE:
        return _raw_get(obj, '__dict__')
    if getstate is _SLOTS_GETSTATE:
        return getstate(obj)   # reads raw
    serial = _raw_get(obj, '_p_serial')
    try:
        return getstate(obj)
    finally:
        if _raw_get(obj, '_p_serial') != serial:
            _raw_set(obj, '_p_serial', serial)
            refresh_hooks(obj)


def set_state(obj, state):
    """Replace ``obj``'s state with no change noted and no access mark."""
    serial = _raw_get(obj, '_p_serial')
    try:
        type(obj).__setstate__(obj, state)
    finally:
        if _raw_get(obj, '_p_serial') != serial:
            _raw_set(obj, '_p_serial', serial)
        refresh_hooks(obj)


def raw_attribute(obj, name, load=True):
    """One stored attribute (instance dict or data slot), read raw.

    A property or other descriptor of the class is never run.
    AttributeError if the object has no such stored attribute.
    """
    if load:
        load_quietly(obj)
    try:
        attributes = _raw_get(obj, '__dict__')
    except AttributeError:
        attributes = None
    if attributes is not None and name in attributes:
        return attributes[name]
    if name in data_slot_names(type(obj)):
        return _raw_get(obj, name)
    raise AttributeError(name)


# -- what a commit would write ------------------------------------------------

class PendingWrites(object):
    """What ``connection.commit()`` would write now.

    ``changed``: the objects noted as changed (sorted by oid); ``new``:
    the objects without an oid they reach, in the order the writer meets
    them; ``errors``: ``(object, exception)`` for states that cannot be
    pickled (the commit would fail on them).
    """

    def __init__(self, changed, new, errors):
        self.changed = changed
        self.new = new
        self.errors = errors

    def __len__(self):
        return len(self.changed) + len(self.new)

    def __bool__(self):
        return bool(self.changed or self.new)

    def __repr__(self):
        return '<PendingWrites %d changed, %d new>' % (len(self.changed),
                                                      len(self.new))


def pending_writes(connection, extra=()):
    """The objects a commit would write: a dry run of the writer.

    ``extra``: objects to treat as changed too (e.g. ones a tool is
    about to touch).  Nothing is bound, stored or marked accessed.
    """
    changed = sorted(connection.changed.values(), key=oid_of)
    listed = set(map(id, changed))
    for obj in extra:
        if id(obj) not in listed:
            listed.add(id(obj))
            changed.append(obj)
    writer = ObjectWriter(connection, dry_run=True)
    errors = []
    try:
        for obj in changed:
            for found in writer.gen_new_objects(obj):
                try:
                    _quiet_state_pickle(writer, found)
                except Exception as error:
                    errors.append((found, error))
    finally:
        writer.close()
    return PendingWrites(changed, list(writer.new_objects), errors)


def _quiet_state_pickle(writer, obj):
    return writer.get_state_pickle(obj, peek_state(obj))


# -- stored states ------------------------------------------------------------

def _stored_data(connection, objects):
    """``(obj, record data or None, error or None)`` for each object with
    an oid, generated (a list of a million tuples would wake the cyclic
    garbage collector over and over).

    Read through ``bulk_load`` (one request per batch on a server); an
    oid that another client invalidated gives its ReadConflictError, a
    missing record None.  A failing oid costs one more request for the
    ones after it, never one request per object.
    """
    storage = connection.storage
    invalid = connection.invalid_oids
    readable = []
    for obj in objects:
        oid = _raw_get(obj, '_p_oid')
        if oid is None:
            continue
        if oid in invalid:
            yield obj, None, ReadConflictError([oid])
        else:
            readable.append(obj)
    while readable:
        done = 0
        try:
            records = storage.bulk_load([_raw_get(obj, '_p_oid')
                                         for obj in readable])
            for record in records:
                # unpack_record's data field, inlined (this runs per object)
                end = 12 + int.from_bytes(record[8:12], 'big')
                if end > len(record):
                    unpack_record(record)   # raises, naming the problem
                obj = readable[done]
                done += 1
                yield obj, record[12:end], None
            if done != len(readable):
                raise ValueError('bulk_load gave %d records for %d oids'
                                 % (done, len(readable)))
            return
        except ReadConflictError as error:
            yield readable[done], None, error
        except KeyError:
            yield readable[done], None, None
        readable = readable[done + 1:]


def stored_states(connection, objects):
    """``{id(obj): (state or None, error or None)}`` from the records.

    The state is what the storage holds now, unpickled (references
    become the connection's objects, ghosts if not loaded); ``error`` is
    the ReadConflictError of an object another client changed since this
    transaction read it, or the error that stopped the record's reading.
    """
    reader = connection.reader
    result = {}
    for obj, data, error in _stored_data(connection, objects):
        if data is None:
            result[id(obj)] = (None, error)
            continue
        try:
            # The oid names the record in any refusal of the safe policy.
            result[id(obj)] = (reader.get_state(data, oid=oid_of(obj)),
                               None)
        except Exception as failure:
            result[id(obj)] = (None, failure)
    return result


def differing_from_records(connection, objects, same=None):
    """The loaded SAVED objects among ``objects`` whose state in memory
    differs from their stored record (changed in place, never noted).

    Compared as the writer would write the state (bytes, cheap); where
    the bytes differ, ``same(stored_state, state_now)`` decides (records
    written by another program may pickle the same state differently);
    without ``same`` differing bytes count as a difference.  Objects
    whose record cannot be read are left out.  On a connection that
    keeps load snapshots, an object found byte-equal to its record gets
    a fresh snapshot (so ``in_place_suspects`` clears it next time).
    """
    candidates = [obj for obj in objects
                  if _raw_get(obj, '_p_status') == SAVED
                  and oid_of(obj) is not None]
    if not candidates:
        return []
    reader = connection.reader
    writer = ObjectWriter(connection, dry_run=True)
    matches_record = writer.matches_record
    snapshots = connection.load_snapshots
    found = []
    try:
        for obj, data, error in _stored_data(connection, candidates):
            if data is None:
                continue
            try:
                state = peek_state(obj)
                if matches_record(obj, state, data):
                    # the common case: the same bytes
                    if snapshots is not None:
                        snapshots.take(obj)
                    continue
                now = writer.get_state_pickle(obj, state)
                stored = reader.get_state_pickle(data)
            except Exception:
                continue
            if now == stored:
                if snapshots is not None:
                    snapshots.take(obj)
                continue
            if same is not None:
                try:
                    if same(reader.get_state(data), peek_state(obj)):
                        continue
                except Exception:
                    pass
            found.append(obj)
    finally:
        writer.close()
    return found


def in_place_suspects(connection, objects):
    """``(suspects, exposed)``: which of ``objects`` may have been
    changed in place, cheaply.

    Only SAVED objects with an oid are considered.  On a connection that
    keeps load snapshots (``Connection(..., load_snapshots=True)``, see
    durus.load_snapshots), an object whose state still matches its
    snapshot holds its record's state: it is left out, or listed in
    ``exposed`` when one of its plain containers is referenced from
    outside it (code can change that without reading the object again).
    The others are ``suspects``: compare them with their records
    (``differing_from_records``).  Without snapshots every such object
    is a suspect.
    """
    snapshots = connection.load_snapshots
    if snapshots is not None:
        return snapshots.sort_out(objects)
    return [obj for obj in objects
            if isinstance(obj, PersistentBase)
            and _raw_get(obj, '_p_status') == SAVED
            and _raw_get(obj, '_p_oid') is not None], []


def _py_instances_of_class(objects, cls):
    """The ``objects`` (a sequence) whose type is a subclass of ``cls``
    (``issubclass``, asked once per type, so abstract base classes cost
    nothing per object), in order."""
    kinds = list(map(type, objects))
    wanted = {kind for kind in set(kinds) if issubclass(kind, cls)}
    if not wanted:
        return []
    return list(compress(objects, map(wanted.__contains__, kinds)))


# The compiled twin (durus/_accel.py) makes no call per object: the shell
# picks the BTrees out of every object a statement touched.
instances_of_class = _use_compiled('instances_of_class',
                                   _py_instances_of_class)


# -- BTrees ---------------------------------------------------------------------

def is_btree(obj):
    return isinstance(obj, BTree)


def is_bnode(obj):
    return isinstance(obj, BNode)


def _quiet_read(node, name):
    return raw_attribute(node, name)


def _loaded_read(node, name):
    # Ghost nodes read as empty leaves: only what is in memory is seen.
    if _raw_get(node, '_p_status') == GHOST:
        return [] if name == 'items' else None
    return raw_attribute(node, name, load=False)


def btree_items(tree, start=None, stop=None, prefix=None, load=True):
    """``(key, value)`` of a BTree in key order, quietly.

    From ``start`` (included) to ``stop`` (excluded); ``prefix`` (a str
    or bytes) keeps the keys that start with it.  Only the nodes walked
    are read, so stopping early reads a handful of nodes.  Without
    ``load``, subtrees that are ghosts are skipped (nothing is read from
    the storage).  Keys that do not compare with ``start`` raise
    TypeError.
    """
    read = _quiet_read if load else _loaded_read
    if not load and _raw_get(tree, '_p_status') == GHOST:
        return
    root = read(tree, 'root')
    if prefix is not None and (start is None or start < prefix):
        start = prefix
    key = _NO_KEY if start is None else start
    for item in _iter_forward(root, key, False, read):
        if stop is not None and not item[0] < stop:
            return
        if prefix is not None and not (
                isinstance(item[0], type(prefix))
                and item[0].startswith(prefix)):
            return
        yield item


def btree_get(tree, key):
    """The value for ``key``, read quietly (KeyError if absent)."""
    node = raw_attribute(tree, 'root')
    while True:
        items = raw_attribute(node, 'items')
        index = bisect_left(items, key, key=_first)
        if index < len(items) and items[index][0] == key:
            return items[index][1]
        nodes = raw_attribute(node, 'nodes')
        if nodes is None:
            raise KeyError(key)
        node = nodes[index]


def _first(item):
    return item[0]


def btree_nodes(tree, load=False):
    """Every node of a BTree, root first; without ``load`` only the nodes
    in memory (the children of a ghost are not visited)."""
    read = _quiet_read if load else _loaded_read
    if not load and _raw_get(tree, '_p_status') == GHOST:
        return
    stack = [read(tree, 'root')]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        stack.extend(reversed(read(node, 'nodes') or ()))


def btree_size(tree, max_nodes=64):
    """``(count, exact)``: the number of items, counted or estimated.

    One walk down the middle gives the depth and fan-outs; a tree
    expected to have at most ``max_nodes`` nodes is then counted exactly,
    a larger one estimated (fan-out per level times the items of a node).
    """
    root = raw_attribute(tree, 'root')
    estimate = nodes_estimate = 0
    width = 1
    node = root
    while node is not None:
        items = raw_attribute(node, 'items')
        children = raw_attribute(node, 'nodes')
        estimate += width * len(items)
        nodes_estimate += width
        if children is None:
            break
        width *= len(children)
        node = children[len(children) // 2]
    if nodes_estimate > max_nodes:
        return estimate, False
    total = 0
    level = [root]
    while level:
        following = []
        for node in level:
            total += len(raw_attribute(node, 'items'))
            following.extend(raw_attribute(node, 'nodes') or ())
        level = following
    return total, True


def state_of_record(connection, record):
    """The state held by ``record`` (any record of this database, such as
    a past state read from a file's history), unpickled with the
    connection's reader and policy: references become the connection's
    objects (ghosts if not loaded), nothing else is loaded."""
    oid, data, _ = unpack_record(record)
    return connection.reader.get_state(data, oid=oid)
