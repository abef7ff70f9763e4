"""Load-time snapshots: cheap evidence that an object still holds its record.

An object's plain lists, dicts and sets can be changed in place
(``obj.tags.append(x)``) without any hook of the object running, so a
tool that must see such edits (durus-shell) has to compare objects with
their records.  Pickling a state and comparing bytes costs about twice
what loading it did.  A snapshot makes the common answer ("unchanged")
cost a walk of the state instead.

Opt-in per connection: ``Connection(storage, load_snapshots=True)``.
Then ``connection.load_snapshots`` is a ``LoadSnapshots`` and each
object, when its state is read from its record (and again after a commit
writes it), gets a snapshot of that state: a flat tuple of tokens,

* the number of attributes, then each attribute's name and value;
* a value of an immutable type (``LEAF_TYPES``), a class or a persistent
  object: the value itself (held, so its id cannot be reused);
* a list, dict or set: a marker, the container's id, its length, then its
  items (a dict's keys and values in order; a set in iteration order);
* a tuple or frozenset: the value itself, then the tokens of its items
  that are not leaves.

Anything else (a plain object, a subclass of list, a class with its own
``__getstate__``, nesting deeper than ``MAX_DEPTH``, more than
``MAX_TOKENS`` tokens) gets no snapshot: the object is a suspect, always
compared with its record as before.

``sort_out(objects)`` walks each object's state now against its snapshot
(ids and lengths by value, everything else by identity).  A match proves
the state is the one its record holds: the same containers in the same
places with the same items, so the writer would write the same bytes.  A
mismatch proves nothing (``obj.tags = list(obj.tags)`` without a note
changes no byte) and makes the object a suspect.  Containers are not held
by the snapshot, only their ids: two containers alive at once have
different ids, so equal ids in equal places mean the same sharing
pattern, and a container freed and replaced by an equal one at the same
address is the same data.

A snapshot stays true while the record is unchanged: it is taken only
from a state just read from the record or just written by a commit (or
found byte-equal to the record, ``durus.inspect.differing_from_records``),
and a record that changes otherwise (another client's commit) makes the
object a ghost, whose reload replaces the snapshot.  Ghosts and objects
that left the cache lose their snapshots when the store is pruned (when
it doubles past its ``prune_floor``, which a Connection sets to twice its
cache's size, and when the cache is shrunk), so memory follows the
loaded objects.

``sort_out`` also says which matching objects are *exposed*: one of their
plain containers (or the instance ``__dict__``) is referenced from
outside the object (``t = obj.tags``), so code can change it later
without reading the object.  A tool keeps those under watch.

The compiled twin (``durus._speedups.LoadSnapshots``, csrc/snapshot.c)
does the same walks in C; this class is the reference
(durus/_accel.py).  It packs the same tokens into machine words (ids,
lengths and markers raw, no int objects) in an object the garbage
collector does not see unless it holds one the collector tracks;
``snapshot(oid)`` unpacks them into the tokens this class keeps.
"""

import datetime
import decimal
import sys

from durus._accel import speedups as _speedups, use as _use_compiled
from durus.persistent import (GHOST, SAVED, Persistent, PersistentBase,
                              PersistentObject, data_slot_names)

__all__ = ['LoadSnapshots', 'LEAF_TYPES', 'MAX_DEPTH', 'MAX_TOKENS']

# Values that cannot change in place (exact types); classes and
# persistent objects are leaves too (a state refers to them).
LEAF_TYPES = frozenset([str, bytes, int, float, bool, type(None), complex,
                        range, decimal.Decimal, datetime.date,
                        datetime.datetime, datetime.time, datetime.timedelta,
                        datetime.timezone])
MAX_DEPTH = 16
MAX_TOKENS = 1 << 20
PRUNE_MINIMUM = 65536   # prune when the store reaches this size, or twice
                        # what the last prune kept

_raw_get = object.__getattribute__
_DICT_GETSTATE = Persistent.__getstate__
_SLOTS_GETSTATE = PersistentObject.__getstate__
_getrefcount = sys.getrefcount


# Markers (plain objects, which the garbage collector does not track, and
# which no state can hold as a leaf).
LIST, DICT, SET, PERSISTENT = object(), object(), object(), object()
_MARKERS = {list: LIST, dict: DICT, set: SET}


class _Unsupported(Exception):
    """The state holds something a snapshot cannot vouch for."""


def _is_leaf(value):
    return (type(value) in LEAF_TYPES or isinstance(value, PersistentBase)
            or isinstance(value, type))


def _state_items(obj):
    """``(instance dict or None, [name, value, name, value, ...])``: the
    attributes the writer's state would hold, in its order;
    _Unsupported for a class with its own ``__getstate__``."""
    getstate = type(obj).__getstate__
    try:
        attributes = _raw_get(obj, '__dict__')
    except AttributeError:
        attributes = None
    if attributes is not None and type(attributes) is not dict:
        raise _Unsupported
    if getstate is _DICT_GETSTATE:
        if attributes is None:
            raise _Unsupported
        return attributes, [x for pair in attributes.items() for x in pair]
    if getstate is not _SLOTS_GETSTATE:
        raise _Unsupported
    kids = ([x for pair in attributes.items() for x in pair]
            if attributes else [])
    for name in data_slot_names(type(obj)):
        try:
            value = _raw_get(obj, name)
        except AttributeError:
            continue
        kids.append(name)
        kids.append(value)
    return attributes, kids


class _Walk(object):
    """The tokens of one state, and whether it is exposed.

    Every item is read from a list of its own (``kids``) by the same
    loop, so a container held only by its parent shows the same
    reference count wherever it is (``_OWN``, measured at import)."""

    __slots__ = ('tokens', 'exposed', 'check')

    def __init__(self, check):
        self.tokens = []
        self.exposed = False
        self.check = check   # read reference counts (sort_out)

    def state(self, obj):
        attributes, kids = _state_items(obj)
        self.tokens.append(len(kids) // 2)
        if (self.check and attributes is not None
                and _getrefcount(attributes) > _OWN_DICT):
            self.exposed = True
        attributes = None
        self.values(kids, 0, True)
        if len(self.tokens) > MAX_TOKENS:
            raise _Unsupported

    def values(self, kids, depth, named=False):
        tokens = self.tokens
        check = self.check
        odd = False
        for value in kids:
            if named:
                odd = not odd
                if odd:
                    tokens.append(value)   # an attribute name
                    continue
            kind = type(value)
            if kind in LEAF_TYPES:
                tokens.append(value)
                continue
            marker = _MARKERS.get(kind)
            if marker is not None:
                if depth >= MAX_DEPTH:
                    raise _Unsupported
                if check and _getrefcount(value) > _OWN:
                    self.exposed = True
                tokens.append(marker)
                tokens.append(id(value))
                tokens.append(len(value))
                if kind is dict:
                    self.values([x for pair in value.items() for x in pair],
                                depth + 1)
                else:
                    self.values(list(value), depth + 1)
                continue
            if kind is tuple or kind is frozenset:
                inner = [item for item in value if not _is_leaf(item)]
                if inner:
                    if depth >= MAX_DEPTH:
                        raise _Unsupported
                    # A snapshot that matches holds the value once more.
                    if check and _getrefcount(value) > _OWN + 1:
                        self.exposed = True
                    tokens.append(value)
                    self.values(inner, depth + 1)
                else:
                    tokens.append(value)
                continue
            if isinstance(value, PersistentBase):
                oid = _raw_get(value, '_p_oid')
                if oid is None:
                    tokens.append(value)   # new: by identity
                else:
                    # What the writer writes for it (an object that left
                    # the cache and came back is the same reference).
                    tokens.append(PERSISTENT)
                    tokens.append(oid)
                continue
            if isinstance(value, type):
                tokens.append(value)
                continue
            raise _Unsupported


def _snapshot(obj):
    """The tokens of ``obj``'s state, or None (see the module doc)."""
    walk = _Walk(False)
    try:
        walk.state(obj)
    except _Unsupported:
        return None
    return tuple(walk.tokens)


def _same_tokens(now, snapshot):
    # Ids, lengths and oids are made anew by each walk: equal values.
    if len(now) != len(snapshot):
        return False
    for a, b in zip(now, snapshot):
        if a is not b and not (type(a) is type(b) and type(a) in _BY_VALUE
                               and a == b):
            return False
    return True


_BY_VALUE = (int, bytes)


class _PyLoadSnapshots(object):
    """Snapshots of one connection's loaded objects, by oid (see the
    module doc).  ``objects``: the connection's ``cache.objects``;
    ``floor``: the store prunes itself only once it holds this many
    snapshots (``prune_floor``), or twice what the last prune kept."""

    def __init__(self, objects, floor=PRUNE_MINIMUM):
        self.objects = objects
        self.by_oid = {}
        self.prune_floor = floor
        self.prune_at = floor

    def __len__(self):
        return len(self.by_oid)

    def take(self, obj):
        """Snapshot ``obj``'s state now (it must be its record's)."""
        oid = _raw_get(obj, '_p_oid')
        if oid is None:
            return
        if len(self.by_oid) >= self.prune_at:
            # Before obj's snapshot goes in: obj may still be a ghost
            # (load_state runs before its status changes).
            self.prune()
        tokens = _snapshot(obj)
        if tokens is None:
            self.by_oid.pop(oid, None)
        else:
            self.by_oid[oid] = tokens

    def forget(self, obj):
        """Drop ``obj``'s snapshot (its state is no longer its record's)."""
        oid = _raw_get(obj, '_p_oid')
        if oid is not None:
            self.by_oid.pop(oid, None)

    def snapshot(self, oid):
        """The tokens kept for ``oid``, or None."""
        return self.by_oid.get(oid)

    def prune(self):
        """Drop the snapshots of ghosts and of objects gone from the
        cache; returns how many are kept."""
        mapping = self.objects.mapping
        kept = {}
        for oid, tokens in self.by_oid.items():
            ref = mapping.get(oid)
            obj = None if ref is None else ref()
            if obj is not None and _raw_get(obj, '_p_status') != GHOST:
                kept[oid] = tokens
        self.by_oid = kept
        self.prune_at = max(self.prune_floor, 2 * len(kept))
        return len(kept)

    def sort_out(self, objects):
        """``(suspects, exposed)`` among the SAVED objects with an oid in
        ``objects`` (others are skipped): suspects have no snapshot or no
        longer match it (compare them with their records); exposed match
        it but share a container with code outside the object."""
        suspects = []
        exposed = []
        by_oid = self.by_oid
        for obj in objects:
            if (not isinstance(obj, PersistentBase)
                    or _raw_get(obj, '_p_status') != SAVED):
                continue
            oid = _raw_get(obj, '_p_oid')
            if oid is None:
                continue
            snapshot = by_oid.get(oid)
            if snapshot is None:
                suspects.append(obj)
                continue
            walk = _Walk(True)
            try:
                walk.state(obj)
            except _Unsupported:
                suspects.append(obj)
                continue
            if not _same_tokens(walk.tokens, snapshot):
                suspects.append(obj)
            elif walk.exposed:
                exposed.append(obj)
        return suspects, exposed


def _calibrate():
    """Measure ``_OWN`` (the count a walk reads for a container held only
    by its parent) and ``_OWN_DICT`` (for an instance dict held only by
    its object): the smallest thresholds at which probes read unshared."""
    global _OWN, _OWN_DICT

    class Probe(Persistent):
        pass

    def exposed(make_attributes):
        # The dict is made here, so that no caller's frame holds it (on
        # Python 3.10 a call's argument stays referenced by the caller).
        probe = Probe.__new__(Probe)
        object.__setattr__(probe, '__dict__', make_attributes())
        walk = _Walk(True)
        walk.state(probe)
        return walk.exposed

    _OWN_DICT = sys.maxsize
    for _OWN in range(1, 30):
        if not exposed(lambda: {'a': [1], 'b': {'c': [2]}, 'd': ([3],)}):
            break
    for _OWN_DICT in range(1, 30):
        if not exposed(lambda: {}):
            break
    shared = [4]
    if (not exposed(lambda: {'a': shared}) or exposed(lambda: {'a': [5]})
            or _OWN >= 29):
        raise RuntimeError('cannot measure reference counts here')
    held = {}
    probe = Probe.__new__(Probe)
    object.__setattr__(probe, '__dict__', held)
    walk = _Walk(True)
    walk.state(probe)
    if not walk.exposed:    # an instance dict held outside must show
        raise RuntimeError('cannot measure reference counts here')


_OWN = _OWN_DICT = None
_calibrate()

if _speedups is not None:
    _speedups.configure_snapshots(
        _DICT_GETSTATE, _SLOTS_GETSTATE, data_slot_names, LEAF_TYPES,
        (LIST, DICT, SET, PERSISTENT), MAX_DEPTH, MAX_TOKENS,
        PRUNE_MINIMUM, _PyLoadSnapshots.take)

LoadSnapshots = _use_compiled('LoadSnapshots', _PyLoadSnapshots)
