"""``durus copy SRC DST``: every record reachable from the root of one
storage, written to another (any kind: see durus.storage_names).

Records are copied byte for byte under their own oids (references inside
them name oids), in commits of ``BATCH`` records.  A destination that
checks oids (FileStorage refuses an oid it did not hand out) is asked for
its oids in order first, which an empty destination hands out from 0 up.
At the end the records reachable in the destination are counted again
and must match.
"""

import sys
import time

from durus.error import ConflictError, DurusError, DurusKeyError
from durus.storage import ROOT_OID
from durus.utils import str_to_int8

BATCH = 5000


class CopyError(DurusError):
    """The copy cannot start or did not verify."""


def is_empty(storage):
    try:
        storage.load(ROOT_OID)
    except DurusKeyError:
        return True
    return False


def estimated_count(storage):
    """The number of records, where the storage knows it cheaply."""
    for name in ('get_object_count', '__len__'):
        method = getattr(storage, name, None)
        if method is not None:
            try:
                return int(method())
            except Exception:
                return None
    index = getattr(storage, 'index', None)
    if index is not None and hasattr(index, '__len__'):
        return len(index)
    return None


class _OidReserver(object):
    """Has the destination hand out every oid up to the ones stored."""

    def __init__(self, storage):
        self.storage = storage
        self.needed = not getattr(storage, 'accepts_any_oid', False)
        self.reserved = -1

    def reserve(self, oid):
        number = str_to_int8(oid)
        while self.needed and number > self.reserved:
            given = str_to_int8(self.storage.new_oid())
            if given != self.reserved + 1:
                raise CopyError(
                    'the destination handed out oid %d where %d was '
                    'expected: is something else writing to it?'
                    % (given, self.reserved + 1))
            self.reserved = given


class Progress(object):
    """A one-line progress bar on a terminal (nothing otherwise)."""

    def __init__(self, total, stream=None):
        self.total = total
        self.stream = stream or sys.stderr
        self.show = getattr(self.stream, 'isatty', lambda: False)()
        self.start = self.last = time.monotonic()

    def update(self, done, final=False):
        now = time.monotonic()
        if not self.show or (now - self.last < 0.2 and not final):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        if self.total:
            part = min(1.0, done / self.total)
            bar = '#' * int(part * 30)
            text = '[%-30s] %3d%% %s/%s records, %d/s' % (
                bar, part * 100, '{:,}'.format(done),
                '{:,}'.format(self.total), rate)
        else:
            text = '%s records, %d/s' % ('{:,}'.format(done), rate)
        self.stream.write('\r' + text + ('\n' if final else ''))
        self.stream.flush()


def copy_storage(source, destination, force=False, stream=None):
    """Copy every record reachable from ``source``'s root into
    ``destination``; returns the number copied."""
    if not force and not is_empty(destination):
        raise CopyError('the destination %s is not empty (it has a root '
                        'object); copy into an empty database, or pass '
                        '--force to write over its records'
                        % destination)
    if is_empty(source):
        raise CopyError('the source %s has no root object: nothing to copy'
                        % source)
    progress = Progress(estimated_count(source), stream)
    reserver = _OidReserver(destination)
    copied = 0
    pending = 0
    destination.begin()
    try:
        for oid, record in source.gen_oid_record(start_oid=ROOT_OID):
            reserver.reserve(oid)
            destination.store(oid, record)
            copied += 1
            pending += 1
            if pending >= BATCH:
                destination.end()
                destination.begin()
                pending = 0
                progress.update(copied)
    except ConflictError:
        raise CopyError('the source changed during the copy (another client '
                        'committed); stop its writers and copy again into '
                        'an empty destination') from None
    destination.end()
    progress.update(copied, final=True)
    found = sum(1 for _ in destination.gen_oid_record(start_oid=ROOT_OID))
    if found != copied:
        raise CopyError('copied %d records but %d are reachable in the '
                        'destination' % (copied, found))
    return copied
