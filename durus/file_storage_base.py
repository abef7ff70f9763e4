"""What the one-file storages (FileStorage, FileStorage2) share.

A pack copies the records reachable from the root (through ``refs``
only) into ``NAME.pack``, then swaps files so that ``NAME`` always exists:
the old file is hard-linked as ``NAME.prepack`` and ``NAME.pack``
atomically replaces ``NAME``.
"""

import heapq
import os
import time

from durus.error import DamagedFileError, ReadOnlyError
from durus.file import File
from durus.record import (
    RecordError, is_well_formed, record_problem, refs_start)
from durus.storage import Storage
from durus.utils import check_oid, int8_to_str, str_to_int8


class SingleFileStorage(Storage):
    """Base of the storages kept in one locked ``durus.file.File``.

    Subclasses set ``MAGIC`` (the format's first bytes) and, on the
    instance, ``file``, ``pending`` (records of the open commit, or
    None), ``invalid`` (oid numbers removed by a pack, not yet reported
    by ``sync()``) and ``pack_commits`` (numbers committed while a pack
    runs, else None); they implement ``_packer()``.
    """

    MAGIC = None
    FORMAT_NAME = None  # a short name for describe()

    @classmethod
    def has_format(klass, file):
        """True if the open binary ``file`` starts with this format's magic."""
        file.seek(0)
        return file.read(len(klass.MAGIC)) == klass.MAGIC

    def __str__(self):
        return '%s(%r)' % (type(self).__name__, self.get_filename())

    def get_filename(self):
        return self.file.name

    def is_temporary(self):
        return self.file.is_temporary()

    def is_readonly(self):
        return self.file.is_readonly()

    def describe(self):
        count, exact = self._object_count()
        try:
            size = self.file.get_size()
        except (OSError, ValueError):
            size = None
        return {'format': self.FORMAT_NAME, 'objects': count,
                'exact': exact, 'size': size,
                'readonly': self.file.is_readonly()}

    def _object_count(self):
        return None, False

    def begin(self):
        self.pending = {}

    def store(self, oid, record):
        """Stage a record; refuse it on a read-only storage, for an oid
        ``_check_oid`` rejects, or when it is not a record of ``oid``."""
        if self.file.is_readonly():
            raise ReadOnlyError('%s is open read-only; reopen it without '
                                'readonly to commit' % self.file.name)
        if self.pending is None:
            self.pending = {}
        check_oid(oid)
        self._check_oid(oid)
        if record[:8] != oid or not is_well_formed(record):
            self.pending = {}
            raise RecordError('record for oid %d: %s' % (
                str_to_int8(oid), record_problem(record, oid)))
        self.pending[oid] = record

    def _check_oid(self, oid):
        """Raise if ``oid`` may not be stored (default: any oid may)."""

    def end(self, handle_invalidations=None):
        self._append_pending(durable=True)

    def end_deferred(self, handle_invalidations=None):
        """``end()`` without the fsync: ``make_durable()`` must follow.

        The storage server uses this to let the commits of several
        clients share one fsync; it answers none of them before
        ``make_durable()`` has returned.
        """
        self._append_pending(durable=False)

    def make_durable(self):
        """fsync every transaction written so far."""
        self.file.fsync()

    def _append_pending(self, durable):
        """Append the staged records as one transaction (fsynced if
        ``durable``) and forget them."""
        raise NotImplementedError

    def sync(self):
        """The oids a pack removed (each reported once); on a read-only
        storage also the oids of the transactions another process
        appended since the last call, which become visible now."""
        if not self.invalid and not self.file.is_readonly():
            return []    # (the storage server asks before every commit)
        numbers = set(self.invalid)
        self.invalid.clear()
        if self.file.is_readonly() and not self.file.is_closed():
            numbers.update(self._catch_up())
        return [int8_to_str(number) for number in sorted(numbers)]

    def _catch_up(self):
        """Read what a writer did to the file since we last looked: the
        oid numbers of its new transactions, or, if it packed (the name
        now holds another file), every number of the old and new file."""
        if not self._file_replaced():
            return self._read_appended()
        before = dict(self.__dict__)
        old_file = self.file
        numbers = set(self._all_numbers())
        self.file = File(old_file.name, readonly=True)
        try:
            self._open_again()
        except BaseException:
            self.file.close()
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        old_file.close()
        numbers.update(self._all_numbers())
        return numbers

    def _file_replaced(self):
        try:
            now = os.stat(self.file.name)
        except OSError:
            return False  # gone for a moment: keep reading what we have
        ours = os.fstat(self.file.fd)
        return (now.st_dev, now.st_ino) != (ours.st_dev, ours.st_ino)

    def _read_appended(self):
        """Index the complete transactions appended after the end we know
        (a transaction still being written waits for the next call);
        returns their oid numbers."""
        raise NotImplementedError

    def _open_again(self):
        """Open ``self.file`` (just reopened by name) as on construction."""
        raise NotImplementedError

    def _all_numbers(self):
        raise NotImplementedError

    def pack(self):
        for _ in self.get_packer():
            pass

    def get_packer(self):
        """A generator that packs step by step (the server runs one step
        between requests); empty when there is nothing it may do."""
        if self.file.is_readonly():
            raise ReadOnlyError('%s is open read-only; it cannot be packed'
                                % self.file.name)
        if (self.pending or self.pack_commits is not None
                or self.file.is_temporary()):
            return iter(())
        return self._packer()


# How often, and after what pause, a read-only open looks again at a
# damaged-looking end of the file while a writer holds the lock.
READONLY_RETRIES = 4
READONLY_PAUSE = 0.02


def open_readonly_tail(open_file, open_at, on_damage=None):
    """``open_at(None)``, telling a commit being written from damage.

    ``on_damage(error)``: for a read-only look at a torn file, instead
    of raising a repairable DamagedFileError, it is passed to
    ``on_damage`` and the file opens at the end of the last intact
    transaction (damage that intact transactions follow is still raised).

    ``open_at(size)`` opens the file as if it ended at ``size`` (None:
    its real end).  A read-only reader can meet a transaction that a
    writer is appending at that moment; it looks like damage at the end
    of the file.  While a writer holds the lock (or the file is still
    changing) the reader looks again a few times, then opens at the end
    of the last complete transaction.  Damage is reported only when no
    writer holds the lock and the file stands still, so a reader never
    suggests repairing a file that is only being written.
    """
    if not open_file.is_readonly():
        return open_at(None)
    error = None
    for _ in range(READONLY_RETRIES):
        size = open_file.get_size()
        try:
            return open_at(None)
        except DamagedFileError as damaged:
            if not getattr(damaged, 'repairable', False):
                raise
            error = damaged
        writer = open_file.writer_holds_lock()
        if not writer and open_file.get_size() == size:
            if writer is not False:
                time.sleep(READONLY_PAUSE)  # no lock to ask: watch the size
                if open_file.get_size() != size:
                    continue
            if on_damage is None:
                raise error
            on_damage(error)
            return open_at(error.offset)
        time.sleep(READONLY_PAUSE)
    return open_at(error.offset)


def gen_pack_records(load_number, roots, written, refresh, filename):
    """``(number, oid, record)`` reachable from ``roots``, smallest first.

    ``load_number(n)`` returns the newest record of oid number ``n`` or
    raises ``KeyError`` (a dangling reference: nothing to keep).
    Numbers in ``written`` are skipped, except the roots when
    ``refresh`` (they were committed again meanwhile); every yielded
    number is added to ``written``.  A record whose refs cannot be read
    stops the pack: dropping what it refers to would lose live objects.
    """
    todo = [number for number in roots if refresh or number not in written]
    seen = set(todo)
    heapq.heapify(todo)
    while todo:
        number = heapq.heappop(todo)
        try:
            record = load_number(number)
        except KeyError:
            continue
        try:
            start = refs_start(record)
        except RecordError as error:
            raise DamagedFileError(
                '%s: the record of oid %d is malformed (%s); the pack '
                'stopped and changed nothing' % (filename, number, error),
                filename, None, 0) from None
        written.add(number)
        yield number, int8_to_str(number), record
        for position in range(start, len(record), 8):
            ref = str_to_int8(record[position:position + 8])
            if ref not in seen and ref not in written:
                seen.add(ref)
                heapq.heappush(todo, ref)


def switch_to_packed(old_file, pack_file, name):
    """Make ``pack_file`` (a locked ``File`` at NAME.pack) the file NAME.

    The old file stays as NAME.prepack.  ``old_file`` is closed.  The
    previous NAME.prepack is replaced atomically, only now that the new
    pack is complete (a crash never leaves no .prepack at all).
    """
    prepack = name + '.prepack'
    staging = prepack + '.new'
    try:
        os.unlink(staging)
    except FileNotFoundError:
        pass
    try:
        os.link(name, staging)
    except OSError:
        os.replace(name, prepack)  # no hard links here: brief gap
    else:
        os.replace(staging, prepack)
    pack_file.rename(name)  # syncs the directory: both names are durable
    old_file.close()


def discard_pack_file(pack_file):
    pack_file.close()
    try:
        os.unlink(pack_file.name)
    except OSError:
        pass
