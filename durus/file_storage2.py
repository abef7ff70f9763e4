"""FileStorage2: the older DFS20 file format (spec formats.md §3).

::

    "DFS20\\0", int8 offset of the index record
    transactions before the index
    index record: int8 n, zlib(pickle({oid: offset}))
    transactions appended after the index
    transaction = (int4 r, r bytes of record)*, int4 0

The pickled index covers the records before it; opening reads every
transaction after it (whole blocks, so any cut is seen).  Commits append
one transaction and fsync; a pack or ``create_from_records`` writes a new
file with a fresh index and renames it over the old one.  Locking, read-only mode, repair and damage
reporting work as in FileStorage.
"""

import io
import pickle
import struct
import zlib

from durus.error import (
    DamagedFileError, DurusKeyError, ReadOnlyError, UnknownFormatError)
from durus.file import File
from durus.oid_index import OidIndex
from durus.record_check import transaction_problem
from durus.file_storage_base import (
    SingleFileStorage, discard_pack_file, gen_pack_records,
    open_readonly_tail, switch_to_packed)
from durus.shelf import (
    Damage, ReadWindow, damage_at, index_entries, resume_after,
    save_and_truncate)
from durus.storage import Storage
from durus.utils import int8_to_str, lazy_names, oid_number, str_to_int8

MAGIC = b'DFS20\0'
_int4 = struct.Struct('>I')
_int8 = struct.Struct('>Q')
_block_head = struct.Struct('>IQI')  # r, oid, data length
_READ_GUESS = 512  # most records fit; a longer one takes a second read
PACK_STEP = 1000


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles the index dict; refuses any class but the bytes helper."""

    def find_class(self, module, name):
        if (module, name) == ('_codecs', 'encode'):
            import codecs
            return codecs.encode
        raise pickle.UnpicklingError('unexpected %s.%s in an index'
                                     % (module, name))


def _decode_index(blob):
    mapping = _IndexUnpickler(io.BytesIO(zlib.decompress(blob))).load()
    index = OidIndex()
    for oid, offset in mapping.items():
        if isinstance(oid, str):
            oid = oid.encode('latin-1')  # written by Python 2
        index.set(str_to_int8(oid), offset)
    return index


def _encode_index(index):
    mapping = dict((int8_to_str(number), offset)
                   for number, offset in index.items())
    blob = zlib.compress(pickle.dumps(mapping, 4))
    return _int8.pack(len(blob)) + blob


def _encode_transaction(items):
    parts = []
    for oid, record in items:
        parts.append(_int4.pack(len(record)))
        parts.append(record)
    parts.append(_int4.pack(0))
    return b''.join(parts)


def scan_transactions(file, start, size, index, filename=None,
                      probe=True, check_last=False):
    """Index the transactions in ``[start, size)``; ``(end, records, damage)``.

    ``probe``: on damage, look whether intact transactions follow (then
    the damage is not repairable by truncation).  ``check_last``: check
    in depth (durus.record_check) the records of the last non-empty
    transaction before the end or before the damage, and index them only
    if they pass (as in durus.shelf).
    """
    window = ReadWindow(file)
    position = start
    records = 0
    empty_run = None
    held = None  # check_last: (start, entries, empty_run, end), unindexed
    reason = resume = None
    while position < size:
        entries = []
        pointer = position
        while True:
            head = window.get(pointer, 4)
            if head is None:
                reason = 'the transaction has no end marker'
                break
            length = _int4.unpack(head)[0]
            if length == 0:
                pointer += 4
                break
            if pointer + 4 + length > size:
                reason = 'a record of %d bytes is cut short' % length
                break
            if length < 12:
                reason = 'a %d-byte block is too short to be a record' % length
                resume = pointer + 4 + length
                break
            _, oid, data_length = _block_head.unpack(window.get(pointer, 16))
            if data_length > length - 12 or (length - 12 - data_length) % 8:
                reason = 'a malformed record at offset %d' % pointer
                resume = pointer + 4 + length
                break
            entries.append((oid, pointer))
            pointer += 4 + length
        if reason is not None:
            if not probe:
                resume = None
            break
        if not entries:
            if empty_run is None:
                empty_run = position
        elif check_last:
            if held is not None:
                records += index_entries(index, held[1])
            held = (position, entries, empty_run, pointer)
            empty_run = None
        else:
            records += index_entries(index, entries)
            empty_run = None
        position = pointer
    if held is not None:
        problem = _deep_problem(file, held[1])
        if (problem is None and empty_run == held[3]
                and (reason is not None or size - empty_run >= 5 * 4)):
            problem = _cut_at_a_record(file, index, held[1])
        if problem is not None:
            return held[0], records, damage_at(
                scan_transactions, file, filename, held[0], held[2], size,
                problem, resume_after(held, reason, resume, probe))
        records += index_entries(index, held[1])
    if reason is not None:
        return position, records, damage_at(
            scan_transactions, file, filename, position, empty_run,
            size, reason, resume)
    if empty_run is not None and size - empty_run >= 5 * 4:
        return empty_run, records, Damage(
            filename, empty_run, size - empty_run,
            '%d zero bytes after the last transaction' % (size - empty_run))
    return position, records, None


def _cut_at_a_record(file, index, entries):
    """Why the transaction at ``entries``, followed by zero bytes, looks
    cut short, or None.

    A DFS20 transaction ends with 4 zero bytes and has no length, so
    zeros written over it from a record boundary on leave a shorter
    transaction that parses.  That is told from zeros after a complete
    transaction only when its records refer to objects the file does not
    have (a commit stores its new objects in the same transaction).
    """
    own = set(number for number, _ in entries)
    for _, offset in entries:
        length = _int4.unpack(file.pread(4, offset))[0]
        record = file.pread(length, offset + 4)
        refs = record[12 + _int4.unpack_from(record, 8)[0]:]
        for position in range(0, len(refs), 8):
            number = _int8.unpack_from(refs, position)[0]
            if number not in own and not index.get(number):
                return ('its records refer to oid %d, which has no record: '
                        'the zero bytes after it may have replaced the '
                        'rest of it' % number)
    return None


def _deep_problem(file, entries):
    """Why one of the records at ``entries`` (``(oid, offset of its
    length)``) is damaged inside, or None."""
    def read_record(offset):
        return file.pread(_int4.unpack(file.pread(4, offset))[0], offset + 4)
    found = transaction_problem(read_record,
                                [offset for _, offset in entries])
    if found is None:
        return None
    offset, problem = found
    return 'the record of oid %d at offset %d is damaged: %s' % (
        _int8.unpack(file.pread(8, offset + 4))[0], offset, problem)


class FileStorage2(SingleFileStorage):
    """A storage in one DFS20 file (``file=None``: a temporary file)."""

    MAGIC = MAGIC
    FORMAT_NAME = 'dfs20'

    def _object_count(self):
        return len(self.index), True

    def __init__(self, file=None, readonly=False, repair=False,
                 intact_part=False):
        if intact_part and not readonly:
            raise ValueError('intact_part=True opens a torn file read-only: '
                             'pass readonly=True too')
        self.file = File(file, readonly=readonly)
        torn = []
        try:
            open_readonly_tail(self.file, lambda size: self._open(
                repair, size=size), torn.append if intact_part else None)
        except BaseException:
            self.file.close()
            raise
        # The DamagedFileError of a torn tail left out (intact_part).
        self.damage = torn[0] if torn else None
        self.pending = None
        self.invalid = set()
        self.pack_commits = None

    def _open(self, repair, check_only=False, size=None):
        """Read the index and scan what follows it (up to ``size``, by
        default the end of the file)."""
        open_file = self.file
        name = open_file.name
        if size is None:
            size = open_file.get_size()
        if size == 0:
            if open_file.is_readonly() or check_only:
                raise UnknownFormatError(
                    '%s is empty: it holds no database yet; open it writable '
                    'to create one' % name)
            self._write_fresh(open_file, [])
            size = open_file.get_size()
        head = open_file.pread(14, 0)
        if not head.startswith(MAGIC):
            raise UnknownFormatError(
                '%s is not a FileStorage2 (DFS20) file: it does not start '
                'with %r' % (name, MAGIC))
        if len(head) < 14:
            raise Damage(name, 0, size, 'the file ends inside its header',
                         repairable=False).error()
        index_offset = _int8.unpack_from(head, 6)[0]
        try:
            if not 14 <= index_offset <= size - 8:
                raise ValueError('index offset %d' % index_offset)
            length = _int8.unpack(open_file.pread(8, index_offset))[0]
            blob = open_file.pread(length, index_offset + 8)
            if len(blob) != length:
                raise ValueError('index record cut short')
            self.index = _decode_index(blob)
        except Exception as error:
            raise Damage(name, index_offset, max(0, size - index_offset),
                         'its index record is unreadable: %s' % error,
                         repairable=False).error() from None
        self.index_offset = index_offset
        start = index_offset + 8 + length
        self.file_end, _, self.damage = scan_transactions(
            open_file, start, size, self.index, name, check_last=True)
        if self.damage is not None and not check_only:
            if repair and not open_file.is_readonly():
                save_and_truncate(open_file, self.damage)
                self.file_end = self.damage.offset
            else:
                raise self.damage.error()
        # Never hand out again an oid issued before a pack or rewrite.
        self.next_number = max(getattr(self, 'next_number', 0),
                               self.index.max_number + 1)

    @staticmethod
    def _write_fresh(open_file, items):
        """Rewrite ``open_file``: header, one transaction of ``items``
        (omitted when empty), the index record; fsync.  Returns the index.
        """
        index = OidIndex()
        body = []
        position = 14
        if items:
            for oid, record in items:
                index.set(str_to_int8(oid), position)
                position += 4 + len(record)
            body.append(_encode_transaction(items))
            position += 4
        open_file.truncate(0)
        open_file.pwrite(b''.join([MAGIC, _int8.pack(position)] + body +
                                  [_encode_index(index)]), 0)
        open_file.fsync()
        return index

    # Reading

    def _load_number(self, number):
        offset = self.index.get(number)
        if not offset:
            raise DurusKeyError(int8_to_str(number))
        data = self.file.pread(_READ_GUESS, offset)
        if len(data) < 16:
            raise self._short(offset)
        total = 4 + _int4.unpack_from(data)[0]
        if len(data) < total:
            data += self.file.pread(total - len(data), offset + len(data))
            if len(data) < total:
                raise self._short(offset)
        return data[4:total]

    def _short(self, offset):
        return DamagedFileError(
            '%s ends inside a record at offset %d; open it writable with '
            'repair=True (command line: --repair)' % (self.file.name, offset),
            self.file.name, offset, max(0, self.file.get_size() - offset))

    def load(self, oid):
        return self._load_number(oid_number(oid))

    def gen_oid_record(self, start_oid=None, batch_size=100):
        """Without ``start_oid``: the newest record of every oid, read
        sequentially.  With it: the records reachable from it."""
        if start_oid is not None:
            return Storage.gen_oid_record(self, start_oid, batch_size)
        return self._gen_current()

    def _gen_current(self):
        window = ReadWindow(self.file)
        index_get = self.index.get
        regions = [(14, self.index_offset)]
        after_index = self.index_offset + 8 + _int8.unpack(
            self.file.pread(8, self.index_offset))[0]
        regions.append((after_index, self.file_end))
        for position, end in regions:
            while position < end:
                head = window.get(position, 4)
                length = _int4.unpack(head)[0]
                if length:
                    block = window.get(position, 4 + length)
                    record = block[4:]
                    if index_get(str_to_int8(record[:8])) == position:
                        yield record[:8], record
                position += 4 + length

    # Catching up with a writer (read-only)

    def _read_appended(self):
        size = self.file.get_size()
        if size <= self.file_end:
            return []
        found = OidIndex()
        self.file_end, _, _ = scan_transactions(
            self.file, self.file_end, size, found, self.file.name,
            probe=False)
        for number, offset in found.items():
            self.index.set(number, offset)
        return list(found.numbers())

    def _open_again(self):
        self._open(repair=False)

    def _all_numbers(self):
        return self.index.numbers()

    # Oids and commits

    def new_oid(self):
        number = self.next_number
        self.next_number += 1
        return int8_to_str(number)

    def _append_pending(self, durable):
        pending, self.pending = self.pending, None
        if not pending:
            return
        data = _encode_transaction(pending.items())
        start = self.file_end
        self.file.append_durably(data, start, durable)
        position = start
        for oid, record in pending.items():
            number = str_to_int8(oid)
            self.index.set(number, position)
            position += 4 + len(record)
            if number >= self.next_number:
                self.next_number = number + 1
            if self.pack_commits is not None:
                self.pack_commits.add(number)
        self.file_end = start + len(data)

    def close(self):
        self.file.close()

    # Rewriting

    def create_from_records(self, oid_records):
        """Replace the whole file's contents by these ``(oid, record)`` pairs.

        The new contents are written to NAME.new, synced, and renamed over
        NAME: a crash or a full disk on the way leaves the old file whole
        (4.3 rewrote the file in place).  A temporary file is rewritten in
        place: nothing outlives it anyway."""
        if self.file.is_readonly():
            raise ReadOnlyError('%s is open read-only' % self.file.name)
        items = list(oid_records)
        if self.file.is_temporary():
            self._write_fresh(self.file, items)
        else:
            name = self.file.name
            fresh = File(name + '.new')
            try:
                fresh.truncate(0)  # a leftover of an earlier attempt
                self._write_fresh(fresh, items)
                fresh.rename(name)
            except BaseException:
                discard_pack_file(fresh)
                raise
            self.file.close()
            self.file = fresh
        self._open(repair=False)

    def _packer(self):
        name = self.file.name
        self.pack_commits = set()
        pack_file = File(name + '.pack')
        switched = False
        try:
            pack_file.truncate(0)
            written = set()
            new_index = OidIndex()
            parts = []
            position = 14
            for step, (number, oid, record) in enumerate(gen_pack_records(
                    self._load_number, [0], written, False, name), 1):
                new_index.set(number, position)
                parts.append(_int4.pack(len(record)))
                parts.append(record)
                position += 4 + len(record)
                if step % PACK_STEP == 0:
                    yield
            parts.append(_int4.pack(0))
            position += 4
            data = b''.join([MAGIC, _int8.pack(position)] + parts +
                            [_encode_index(new_index)])
            tail = []
            if self.pack_commits:
                tail = [(oid, record) for _, oid, record in gen_pack_records(
                    self._load_number, sorted(self.pack_commits), written,
                    True, name)]
            if tail:
                data += _encode_transaction(tail)
            pack_file.pwrite(data, 0)
            pack_file.fsync()
            removed = set(self.index.numbers()) - written
            switch_to_packed(self.file, pack_file, name)
            switched = True
            self.file = pack_file
            self._open(repair=False)
            self.invalid.update(removed)
        finally:
            self.pack_commits = None
            if not switched:
                discard_pack_file(pack_file)


def inspect_file(filename):
    """The ``Damage`` of a DFS20 file, or None; the file is not changed."""
    storage = FileStorage2.__new__(FileStorage2)
    storage.file = File(filename, readonly=True)
    try:
        storage._open(repair=False, check_only=True)
        return storage.damage
    finally:
        storage.file.close()


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
__getattr__, __dir__ = lazy_names(  # durus.logger imports logging
    __name__, {'is_logging': 'durus.logger'})
from durus.serialize import split_oids, unpack_record  # noqa: E402,F401
from durus.utils import (  # noqa: E402,F401
    IntSet, ShortRead, as_bytes, byte_string, iteritems, read, read_int4_str,
    read_int8, read_int8_str, write, write_int4, write_int4_str, write_int8,
    write_int8_str)
