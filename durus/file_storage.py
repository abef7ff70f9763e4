"""FileStorage: the default durus storage, one SHELF-1 file (see durus.shelf).

Invariants beyond the Storage contract (durus.storage):

* ``end()`` appends the whole transaction with one write and returns only
  after fsync; a crash leaves at most one incomplete transaction at the
  end of the file, which opening detects (``DamagedFileError``) and
  ``repair=True`` removes, saving the dropped bytes as ``NAME.torn-N``.
* A writable storage holds the file's exclusive lock until ``close()``
  (``DatabaseInUseError`` for a second writer); a read-only one takes no
  lock and refuses commits and packs with ``ReadOnlyError``.
* ``store()`` accepts only the root oid, oids that have a record, and
  oids this storage handed out with ``new_oid()``.
* A pack writes ``NAME.pack``, then keeps the old file as ``NAME.prepack``
  and atomically replaces ``NAME``; commits made while an incremental
  pack runs are carried into the new file.
* A writer saves its index as ``NAME.index`` (durus.shelf_index) so that
  reopening a large never-packed file does not read every record.
"""

import heapq
import struct

from durus import shelf_index
from durus._accel import speedups as _speedups, use as _use_compiled
from durus.error import (DamagedFileError, DurusKeyError, UnexpectedOidError,
                         bad_oid_error)
from durus.file import File
from durus.file_storage_base import (
    SingleFileStorage, discard_pack_file, gen_pack_records,
    open_readonly_tail, switch_to_packed)
from durus.record import HEADER_SIZE, refs_start
from durus.record import _data_length
from durus.shelf import PREFIX, Shelf, ShelfWriter
from durus.storage import ROOT_OID
from durus.utils import int8_to_str, lazy_names, oid_number, str_to_int8

_pack_int8 = struct.Struct('>Q').pack
_unpack_int8 = struct.Struct('>Q').unpack

# Save NAME.index when at least this many records sit after the map.
SAVE_INDEX_MIN_RECORDS = 2000
# Records written per step of the incremental packer.
PACK_STEP = 1000


class FileStorage(SingleFileStorage):
    """A storage in one SHELF-1 file (``filename=None``: a temporary file)."""

    MAGIC = PREFIX
    FORMAT_NAME = 'shelf'

    def _object_count(self):
        # Oid numbers in the offset map (holes included) plus oids
        # appended after it (some also in the map): an estimate.
        shelf = self.shelf
        return max(0, len(shelf.map) - 1) + len(shelf.index), False

    def __init__(self, filename=None, readonly=False, repair=False,
                 intact_part=False):
        if intact_part and not readonly:
            raise ValueError('intact_part=True opens a torn file read-only: '
                             'pass readonly=True too')
        self.file = File(filename, readonly=readonly)
        # The DamagedFileError of a torn tail left out (intact_part).
        self.damage = None
        try:
            self.shelf = self._open_shelf(self.file, repair, intact_part and
                                          self._note_damage)
        except BaseException:
            self.file.close()
            raise
        self.pending = None
        self.allocated = set()
        self.invalid = set()
        self.pack_commits = None  # set of numbers while a pack runs
        self._reset_oid_candidates()
        # End offset covered by NAME.index on disk, if it is current.
        self._index_covered = (self.shelf.scan_start
                               if self.shelf.scan_start != self.shelf.map.end
                               else None)
        if self.shelf.scanned_records >= 50 * SAVE_INDEX_MIN_RECORDS:
            self._save_index()

    def _note_damage(self, error):
        self.damage = error

    @staticmethod
    def _open_shelf(open_file, repair, on_damage=None):
        saved = None
        if not open_file.is_temporary():
            saved = shelf_index.load(open_file)

        def open_at(size):
            if saved is not None:
                try:
                    return Shelf(open_file, repair=repair, saved_index=saved,
                                 size=size)
                except DamagedFileError:
                    pass  # judge the damage on the file alone
            return Shelf(open_file, repair=repair, size=size)
        return open_readonly_tail(open_file, open_at, on_damage or None)

    # Reading

    def load(self, oid):
        try:
            return _load_number(self.shelf, oid_number(oid))
        except DurusKeyError:
            raise DurusKeyError(oid) from None

    def gen_oid_record(self, start_oid=None, seen=None, **ignored):
        """Without ``start_oid``: the newest record of every oid, read
        sequentially (unreachable ones included).  With it: the records
        reachable from it, smallest oid first; ``seen`` (a set of oids)
        is updated and its members are skipped."""
        if start_oid is None:
            return self.shelf.gen_current_records()
        return self._gen_reachable(start_oid, seen)

    def _gen_reachable(self, start_oid, seen):
        if seen is None:
            seen = set()
        if start_oid in seen:
            return
        todo = [start_oid]
        seen.add(start_oid)
        while todo:
            oid = heapq.heappop(todo)
            try:
                record = self.load(oid)
            except KeyError:
                continue
            yield oid, record
            for position in range(refs_start(record), len(record), 8):
                ref = record[position:position + 8]
                if ref not in seen:
                    seen.add(ref)
                    heapq.heappush(todo, ref)

    # Catching up with a writer (read-only)

    def _read_appended(self):
        return self.shelf.read_appended()

    def _open_again(self):
        self.shelf = self._open_shelf(self.file, False)
        self._reset_oid_candidates()
        self._index_covered = None

    def _all_numbers(self):
        return self.shelf.gen_numbers()

    # Oids

    def _reset_oid_candidates(self):
        """Oids come from the map's holes first, then from a counter that
        starts above every oid with a record (nothing can appear above it
        but oids this storage hands out)."""
        self._holes = self.shelf.map.gen_holes()
        self._next_number = None

    def new_oid(self):
        if self._holes is not None:
            for number in self._holes:
                if not (number in self.allocated or number in self.invalid
                        or self.shelf.has(number)):
                    self.allocated.add(number)
                    return int8_to_str(number)
            self._holes = None
            self.shelf.complete_index()
            self._next_number = max(len(self.shelf.map),
                                    self.shelf.index.max_number + 1)
        number = self._next_number
        while number in self.invalid or number in self.allocated:
            number += 1
        self._next_number = number + 1
        self.allocated.add(number)
        return _pack_int8(number)

    # Committing

    def store(self, oid, record):
        # A commit stores every object through here: the usual case (a
        # writable storage, an oid handed out by new_oid() or one with a
        # record already, a well-formed record of it) is checked inline;
        # anything else goes the base class's way, which checks each step
        # and names the problem.
        pending = self.pending
        if (pending is not None and type(oid) is bytes and len(oid) == 8
                and not self.file.readonly and type(record) is bytes
                and record[:8] == oid and len(record) >= HEADER_SIZE):
            number = _unpack_int8(oid)[0]
            shelf = self.shelf
            if (number in self.allocated or shelf.index.get(number)
                    or shelf.has(number)):
                rest = len(record) - HEADER_SIZE - _data_length(record, 8)[0]
                if rest >= 0 and not rest & 7:
                    pending[oid] = record
                    return
        SingleFileStorage.store(self, oid, record)

    def _check_oid(self, oid):
        if type(oid) is not bytes or len(oid) != 8:
            self.pending = {}
            raise bad_oid_error(oid)
        number = str_to_int8(oid)
        if not (number in self.allocated or oid == ROOT_OID
                or self.shelf.has(number)):
            self.pending = {}
            raise UnexpectedOidError(
                'oid %d is a surprise: it has no record and was not handed '
                'out by new_oid() of this storage' % number)

    def _append_pending(self, durable):
        pending, self.pending = self.pending, None
        if not pending:
            return
        numbers = self.shelf.append_transaction(pending.items(), durable)
        self.allocated.difference_update(numbers)
        if self.pack_commits is not None:
            self.pack_commits.update(numbers)

    # Closing

    def _save_index(self):
        """Save NAME.index if it would spare the next open a long scan."""
        shelf = self.shelf
        if (self.file.is_readonly() or self.file.is_temporary()
                or self.file.is_closed()):
            return
        shelf.complete_index()  # after a lazy open: pay once, here
        if (len(shelf.index) < SAVE_INDEX_MIN_RECORDS
                or shelf.end == self._index_covered):
            return
        shelf_index.save(self.file, shelf.index, shelf.end, shelf.map_start)
        self._index_covered = shelf.end

    def close(self):
        if self.file.is_closed():
            return
        try:
            self._save_index()
        finally:
            self.file.close()

    # Packing

    def _packer(self):
        name = self.file.name
        self.pack_commits = set()
        pack_file = File(name + '.pack')
        switched = False
        try:
            writer = ShelfWriter(pack_file)
            written = set()
            load = self.shelf.load_number
            for step, (number, oid, record) in enumerate(gen_pack_records(
                    load, [0], written, False, name), 1):
                writer.add(number, oid, record)
                if step % PACK_STEP == 0:
                    yield
            writer.finish_map()
            # No yield from here on: commits made during the pack are
            # copied, then the files are switched.
            if self.pack_commits:
                writer.append_transaction(
                    (oid, record) for _, oid, record in gen_pack_records(
                        load, sorted(self.pack_commits), written, True,
                        name))
            writer.fsync()
            removed = set(self.shelf.gen_numbers()) - written
            switch_to_packed(self.file, pack_file, name)
            switched = True
            shelf_index.remove(name)
            self.file = pack_file
            self.shelf = Shelf(pack_file)
            self._index_covered = None
            self._reset_oid_candidates()
            self.invalid.update(removed)
        finally:
            self.pack_commits = None
            if not switched:
                discard_pack_file(pack_file)


def TempFileStorage():
    """A FileStorage in a temporary file (named while open, removed when
    closed)."""
    return FileStorage()


def inspect_file(filename):
    """The ``Damage`` of a SHELF-1 file, or None; the file is not changed."""
    open_file = File(filename, readonly=True)
    try:
        return Shelf(open_file, check_only=True).damage
    finally:
        open_file.close()


# Shelf.load_number, or its compiled twin (durus/_accel.py).
_load_number = _use_compiled('shelf_load_number', Shelf.load_number)
if _speedups is not None:
    # Connection.load_state reads records of exactly this class directly.
    _speedups.set_file_storage_type(FileStorage)

# FileStorage.new_oid and store, or their compiled twins (durus/_accel.py).
_compiled = (None, None)
if _speedups is not None:
    _compiled = _speedups.configure_commit(FileStorage, FileStorage.new_oid,
                                           FileStorage.store)
FileStorage.new_oid = _use_compiled('storage_new_oid', FileStorage.new_oid,
                                    _compiled[0])
FileStorage.store = _use_compiled('storage_store', FileStorage.store,
                                  _compiled[1])
del _compiled


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
__getattr__, __dir__ = lazy_names(  # durus.logger imports logging
    __name__, {'is_logging': 'durus.logger'})
from durus.serialize import split_oids, unpack_record  # noqa: E402,F401
from durus.storage import Storage  # noqa: E402,F401
from durus.utils import IntSet, iteritems  # noqa: E402,F401
