"""Scans over a storage's raw records: find, census, referrers, paths.

Nothing here unpickles a state to decide anything: through durus.record
(which knows the record layout)

* the class of every record is read from its first bytes,
* the objects a record refers to are its ``refs`` trailer.

Scans read ``storage.gen_oid_record()`` (every current record) in
chunks; between chunks they report progress (``progress(scanned, total,
found, elapsed)``; ``total`` may be None) and Ctrl-C
(KeyboardInterrupt) ends the scan with what was found so far
(``ScanResult.interrupted``).
"""

import collections
import heapq
import itertools
import time

from durus.record import class_key, record_refs, refers_to
from durus.storage import ROOT_OID
from durus.utils import int8_to_str
from durus_shell import peek

CHUNK = 4096


class ScanResult(object):
    """What a scan found: ``items``, how many records it read (``scanned``),
    whether Ctrl-C cut it short (``interrupted``) and how long it took."""

    def __init__(self, items, scanned, total, interrupted, elapsed):
        self.items = items
        self.scanned = scanned
        self.total = total
        self.interrupted = interrupted
        self.elapsed = elapsed

    @property
    def rate(self):
        return self.scanned / self.elapsed if self.elapsed > 0 else 0.0

    def __repr__(self):
        return '<ScanResult %d found in %d records%s>' % (
            len(self.items), self.scanned,
            ' (interrupted)' if self.interrupted else '')


def estimate_record_count(storage):
    """Roughly how many records a full scan reads (None if unknown)."""
    try:
        return storage.describe()['objects']
    except Exception:
        return None
    return None


def _scan(storage, chunk_visit, progress, limit=None, total=None):
    """Feed chunks of ``(oid, record)`` to ``chunk_visit(chunk, found)``."""
    if total is None:
        total = estimate_record_count(storage)
    found = []
    scanned = 0
    interrupted = False
    start = time.monotonic()
    records = storage.gen_oid_record()
    try:
        while not interrupted:
            chunk = []
            try:
                # extend() keeps what it read if Ctrl-C arrives meanwhile.
                chunk.extend(itertools.islice(records, CHUNK))
            except KeyboardInterrupt:
                interrupted = True
            if not chunk:
                break
            try:
                chunk_visit(chunk, found)
            except KeyboardInterrupt:
                interrupted = True
            scanned += len(chunk)
            if progress is not None:
                progress(scanned, total, len(found),
                         time.monotonic() - start)
            if limit is not None and len(found) >= limit:
                del found[limit:]
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(records, 'close', None)
        if close is not None:
            close()
    return ScanResult(found, scanned, total, interrupted,
                      time.monotonic() - start)


# -- class names from record bytes ------------------------------------------

def record_class(record):
    """``'module.Name'`` of a record, read from its first bytes (``'?'``
    when they do not name it)."""
    key = class_key(record)
    return '?' if key is None else key.decode('latin-1').replace('\n', '.')


def class_matcher(spec):
    """A function ``record -> bool`` for a class given by name or dotted path.

    ``'User'`` matches that class name in any module; ``'app.models.User'``
    matches exactly that module and name.
    """
    spec = spec.strip()
    module, dot, name = spec.rpartition('.')
    if dot:
        wanted = module.encode('latin-1') + b'\n' + name.encode('latin-1')

        def match(record):
            return class_key(record) == wanted
        return match
    suffix = b'\n' + name.encode('latin-1')

    def match_name(record):
        key = class_key(record)
        return key is not None and key.endswith(suffix)
    return match_name


def find_oids(storage, spec, limit=None, progress=None, total=None):
    """Oids (8 bytes) of the records whose class is ``spec``."""
    match = class_matcher(spec)

    def visit(chunk, found):
        found.extend([oid for oid, record in chunk if match(record)])
    return _scan(storage, visit, progress, limit, total)


def find_instances(connection, spec, limit=None, where=None, progress=None):
    """Objects of class ``spec`` (see ``class_matcher``), loaded through the
    connection; ``where(obj)`` filters them (only matching records are
    loaded).  Returns a ScanResult whose items are objects."""
    match = class_matcher(spec)
    get = connection.get

    def visit(chunk, found):
        for oid, record in chunk:
            if match(record):
                obj = get(oid)
                if where is None or where(obj):
                    found.append(obj)
                    if limit is not None and len(found) >= limit:
                        return
    return _scan(connection.storage, visit, progress, limit)


def census(storage, progress=None):
    """``{'module.Name': count}`` over every record (ScanResult.items),
    and the bytes of each class's records (``ScanResult.bytes``)."""
    counts = collections.Counter()
    sizes = collections.Counter()

    def visit(chunk, found):
        for _, record in chunk:
            key = class_key(record) or b'?'
            counts[key] += 1
            sizes[key] += len(record)
    result = _scan(storage, visit, progress)
    named = {}
    result.bytes = {}  # bytes of the records of each class
    for key, count in counts.items():
        label = key.decode('latin-1').replace('\n', '.')
        named[label] = named.get(label, 0) + count
        result.bytes[label] = result.bytes.get(label, 0) + sizes[key]
    result.items = named
    return result


# -- references ---------------------------------------------------------------

def referrers(storage, oid, limit=None, progress=None):
    """Oids of the records whose refs include ``oid``."""
    if isinstance(oid, int):
        oid = int8_to_str(oid)

    def visit(chunk, found):
        found.extend([other for other, record in chunk
                      if oid in record and refers_to(record, oid)])
    return _scan(storage, visit, progress, limit)


def oid_path(storage, target, progress=None, batch_size=500):
    """Oids from the root to ``target`` (a shortest chain by refs).

    Breadth first from the root, loading records ``batch_size`` at a
    time; stops when the target is reached.  ``items`` is the chain (an
    empty list if the target is not reachable).
    """
    if isinstance(target, int):
        target = int8_to_str(target)
    start = time.monotonic()
    total = estimate_record_count(storage)
    parent = {ROOT_OID: None}
    level = [ROOT_OID]
    scanned = 0
    interrupted = False
    found = target == ROOT_OID
    try:
        while level and not found:
            following = []
            for begin in range(0, len(level), batch_size):
                batch = level[begin:begin + batch_size]
                for oid, record in zip(batch, storage.bulk_load(batch)):
                    scanned += 1
                    for ref in record_refs(record):
                        if ref not in parent:
                            parent[ref] = oid
                            following.append(ref)
                            if ref == target:
                                found = True
                if progress is not None:
                    progress(scanned, total, int(found),
                             time.monotonic() - start)
                if found:
                    break
            heapq.heapify(following)
            level = following
    except KeyboardInterrupt:
        interrupted = True
    chain = []
    if found:
        oid = target
        while oid is not None:
            chain.append(oid)
            oid = parent[oid]
        chain.reverse()
    return ScanResult(chain, scanned, total, interrupted,
                      time.monotonic() - start)


def describe_chain(connection, chain):
    """A Python path (``root['users'][3].account``) for a chain of oids.

    Steps through BTree nodes are folded into the BTree's ``[key]``.
    """
    if not chain:
        return None
    objects = [connection.get(oid) for oid in chain]
    path = 'root' if chain[0] == ROOT_OID else 'get(%d)' % int.from_bytes(
        chain[0], 'big')
    index = 0
    while index < len(objects) - 1:
        parent = objects[index]
        following = index + 1
        if peek.container_kind(parent) == 'btree':
            while following < len(objects) - 1 and \
                    peek.container_kind(objects[following]) == 'bnode':
                following += 1
        step = peek.find_step(parent, objects[following])
        if step is None:
            # e.g. the target is a BNode itself: show the raw steps.
            step = peek.find_step(parent, objects[index + 1],) or \
                '->get(%d)' % int.from_bytes(chain[index + 1], 'big')
            following = index + 1
        path += step
        index = following
    return path


class _OutOfTime(Exception):
    pass


def path_within(connection, oid, seconds):
    """The Python path of ``oid`` (see ``describe_chain``), or None when
    it is not found within ``seconds`` (a bounded ``oid_path``)."""
    return path_search(connection, oid, seconds)[0]


def path_search(connection, oid, seconds):
    """``(path or None, settled)``: ``settled`` is False when the search
    ran out of ``seconds`` or was interrupted (the answer may differ with
    more time), True when it found the path or proved there is none."""
    def progress(scanned, total, found, elapsed):
        if elapsed > seconds:
            raise _OutOfTime()
    try:
        result = oid_path(connection.storage, oid, progress=progress)
    except _OutOfTime:
        return None, False
    if result.interrupted:
        return None, False
    if not result.items:
        return None, True
    return describe_chain(connection, result.items), True


def reachable_oids(storage, progress=None, batch_size=500):
    """The oids reachable from the root (ScanResult.items, a set), by
    following the records' refs breadth first.  On Ctrl-C the result is
    marked interrupted (and its set is incomplete)."""
    start = time.monotonic()
    total = estimate_record_count(storage)
    seen = {ROOT_OID}
    level = [ROOT_OID]
    scanned = 0
    interrupted = False
    try:
        while level:
            following = []
            for begin in range(0, len(level), batch_size):
                batch = level[begin:begin + batch_size]
                for oid, record in zip(batch, storage.bulk_load(batch)):
                    scanned += 1
                    for ref in record_refs(record):
                        if ref not in seen:
                            seen.add(ref)
                            following.append(ref)
                if progress is not None:
                    progress(scanned, total, scanned,
                             time.monotonic() - start)
            following.sort()
            level = following
    except KeyboardInterrupt:
        interrupted = True
    return ScanResult(seen, scanned, total, interrupted,
                      time.monotonic() - start)
