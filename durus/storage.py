"""The storage contract, the in-memory reference storage, and graph helpers.

A storage maps oids (8-byte big-endian ``bytes``) to records (see
``durus.serialize``: oid, data length, class and state pickles, refs).

Invariants every storage keeps:

* ``load(oid)`` returns the record of the newest *committed* transaction
  that stored ``oid``; records staged by ``store`` are invisible to
  ``load`` until ``end()`` returns.
* A transaction is ``begin()``, any number of ``store(oid, record)``,
  then ``end()``.  ``end()`` makes all of its records durable and
  visible at once, or none of them (it raises and nothing is visible).
* ``new_oid()`` never returns an oid that has a record, nor one it has
  already returned to this storage object.  The first oid an empty
  storage hands out is ROOT_OID (8 zero bytes).
* ``sync()`` returns the oids whose cached copies a client must drop
  (objects changed by other clients, or removed by a pack), each once.
* Reachability (for pack and traversal) is computed only from the
  ``refs`` trailer of each record, never by unpickling.
"""

import heapq

from durus.error import DurusKeyError
from durus.record import class_name, record_refs
from durus.utils import check_oid, int8_to_str

ROOT_OID = b'\x00' * 8


class PendingChanges(object):
    """What ``Storage.pending_changes()`` found: ``count`` objects
    changed by others since this storage object's view (the last sync or
    commit), ``oids`` some of them (at most the limit asked for), and
    ``commits`` the number of transactions when the storage knows it
    (else None)."""

    __slots__ = ('count', 'oids', 'commits')

    def __init__(self, count, oids, commits=None):
        self.count = count
        self.oids = list(oids)
        self.commits = commits

    def __repr__(self):
        return 'PendingChanges(count=%r, oids=%d listed, commits=%r)' % (
            self.count, len(self.oids), self.commits)


class Storage(object):
    """Base of every storage: the methods a Connection relies on."""

    def __init__(self):
        raise RuntimeError('Storage is abstract')

    def load(self, oid):
        """The record for ``oid``; ``KeyError`` if there is none."""
        raise NotImplementedError

    def begin(self):
        """Start collecting the records of a commit."""
        raise NotImplementedError

    def store(self, oid, record):
        """Add one record to the commit being collected."""
        raise NotImplementedError

    def end(self, handle_invalidations=None):
        """Make the collected records durable and visible.

        May call ``handle_invalidations(oids)`` and may raise
        ``ConflictError``; then nothing is stored.
        """
        raise NotImplementedError

    def sync(self):
        """Oids to invalidate since the last call (and forget them)."""
        raise NotImplementedError

    def new_oid(self):
        """An unused oid."""
        raise NotImplementedError

    def pending_changes(self, limit=100, timeout=1.0):
        """What the next ``sync()`` would bring, without taking it: a
        ``PendingChanges``, or None when this storage cannot tell cheaply
        (within ``timeout`` seconds).  An addition to Durus 4.3."""
        return None

    def close(self):
        """Release files, locks and sockets."""

    def get_packer(self):
        """A generator that packs step by step, or None."""
        return None

    def pack(self):
        """Remove records that are not reachable from the root."""

    def bulk_load(self, oids):
        """The records of ``oids``, in order."""
        for oid in oids:
            yield self.load(oid)

    def gen_oid_record(self, start_oid=None, batch_size=100):
        """``(oid, record)`` of every object reachable from ``start_oid``.

        Traversal follows ``refs``, smallest oid first, loading records
        ``batch_size`` at a time through ``bulk_load``.
        """
        if start_oid is None:
            start_oid = ROOT_OID
        todo = [start_oid]
        seen = set(todo)
        while todo:
            batch = []
            while todo and len(batch) < batch_size:
                batch.append(heapq.heappop(todo))
            for oid, record in zip(batch, self.bulk_load(batch)):
                yield oid, record
                for ref in record_refs(record):
                    if ref not in seen:
                        seen.add(ref)
                        heapq.heappush(todo, ref)

    def describe(self):
        """Cheap facts about this storage, for tools: a dict with
        ``format`` (a short name), ``objects`` (a count or None),
        ``exact`` (whether that count is exact rather than an estimate),
        ``size`` (bytes, or None) and ``readonly``.  Never reads records.
        """
        return {'format': type(self).__name__, 'objects': None,
                'exact': False, 'size': None, 'readonly': False}

    def __str__(self):
        return type(self).__name__ + '()'


class MemoryStorage(Storage):
    """A storage kept in a dict; single process, never conflicts.

    Oids are handed out as 0, 1, 2, ... .
    """

    def __init__(self):
        self.records = {}
        self.transaction = None
        self.next_oid = 0

    def new_oid(self):
        oid = int8_to_str(self.next_oid)
        self.next_oid += 1
        return oid

    def load(self, oid):
        check_oid(oid)
        try:
            return self.records[oid]
        except KeyError:
            raise DurusKeyError(oid) from None

    def begin(self):
        self.transaction = {}

    def store(self, oid, record):
        check_oid(oid)
        self.transaction[oid] = record

    def end(self, handle_invalidations=None):
        self.records.update(self.transaction)
        self.transaction = None

    def sync(self):
        return []

    def describe(self):
        return {'format': 'memory', 'objects': len(self.records),
                'exact': True, 'size': None, 'readonly': False}

    def gen_oid_record(self, start_oid=None, batch_size=100):
        """The records reachable from ``start_oid`` (the root by default):
        as in 4.3, unreachable records are not listed.  Nothing before the
        root is stored (4.3 raised KeyError)."""
        if start_oid is None and ROOT_OID not in self.records:
            return iter(())
        return Storage.gen_oid_record(self, start_oid, batch_size)

    def pack(self):
        reachable = set(oid for oid, _ in
                        Storage.gen_oid_record(self, ROOT_OID))
        for oid in list(self.records):
            if oid not in reachable:
                del self.records[oid]


def gen_referring_oid_record(storage, referred_oid):
    """``(oid, record)`` of every record whose refs include ``referred_oid``."""
    for oid, record in storage.gen_oid_record():
        if referred_oid in record_refs(record):
            yield oid, record


def gen_oid_class(storage, *class_names):
    """``(oid, class_name_bytes)`` for all records, or those named."""
    wanted = set(class_names)
    for oid, record in storage.gen_oid_record():
        name = class_name(record)
        if not wanted or name in wanted:
            yield oid, name


def get_census(storage):
    """``{class_name_bytes: count}`` over every record."""
    census = {}
    for _, name in gen_oid_class(storage):
        census[name] = census.get(name, 0) + 1
    return census


def get_reference_index(storage):
    """``{oid: [oids of the records that refer to it]}``."""
    index = {}
    for oid, record in storage.gen_oid_record():
        for ref in record_refs(record):
            index.setdefault(ref, []).append(oid)
    return index


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
from durus.record import (  # noqa: E402,F401
    class_name as extract_class_name, split_oids, unpack_record)
