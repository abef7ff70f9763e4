"""SHELF-1: the file layout behind FileStorage (spec formats.md §2).

::

    "SHELF-1\\n"
    int8 L0, L0 bytes of disk-records        initial transaction (from pack)
    int8 B, int8 W, int8 M, M words of W     offset map, B = 16 + W*M
    (int8 L, L bytes of disk-records)*       appended transactions
    disk-record = int8 R, 8-byte key oid, record (R - 8 bytes)

The offset map (starting at S) gives the disk-record offset of each oid
of the initial transaction: word ``i < S`` is an offset, other words are
holes linked into a list (``word - S`` is the next hole).  Lookups read
map words on demand, so opening a packed file costs O(1) plus a scan of
the transactions appended after the map.

A ``Shelf`` owns one open ``durus.file.File`` and keeps, in an
``OidIndex``, the offset of the newest disk-record of every oid stored
after the map.  It appends transactions in one write followed by fsync.

Damage rules (stricter than Durus 4.3, which misses cuts inside the last
record's body): a transaction whose length runs past the end of the file,
whose disk-records do not tile it exactly or do not look like records
(key != embedded oid, bad data length), a partial length field, or a
tail of five or more empty transactions (at least 40 zero bytes: the
smallest transaction zeroed by a crash) is damage.  Durus itself may
end a file with an empty transaction or two, so fewer are accepted.  The
records of the last non-empty transaction (and of the one just before
any damage) are also checked in depth (durus.record_check): a power cut
can leave a transaction well laid out but zeroed or garbage inside.  Damage
in the final transaction (or garbage after the last good one) can be
repaired by truncation; damage followed by intact transactions cannot.
"""

import errno
import os
import struct
import sys
from array import array
from bisect import bisect_right

from durus.error import (
    DamagedFileError, DurusError, DurusKeyError, ReadOnlyError,
    UnknownFormatError)
from durus.disk_arrays import GROW_CHUNK, StreamAccess, word_size_for
from durus.file import File, ReadOnlyFileError, fsync_directory
from durus.oid_index import OidIndex
from durus.record import is_well_formed
from durus.record_check import record_problem, transaction_problem
# Names Durus 4.3's durus.shelf offered (it imported them from durus.utils).
from durus.utils import (  # noqa: F401
    IntArray, ShortRead, as_bytes, int8_to_str, iteritems, next, read,
    read_int8, read_int8_str, str_to_int8, write, write_int8, xrange)

PREFIX = b'SHELF-1\n'
EMPTY_FILE = PREFIX + struct.pack('>QQQQ', 0, 16, 1, 0)  # 40 bytes

CHUNK = 4 << 20
_int8 = struct.Struct('>Q')
_record_head = struct.Struct('>QQQI')  # R, key, embedded oid, data length
_map_head = struct.Struct('>QQQ')
_key_head = struct.Struct('>QQ')  # R, key
_READ_GUESS = 512
# A tail of appended transactions this large, with no saved index, is
# indexed lazily (newest first) instead of being read in full on open.
LAZY_MIN_BYTES = 16 << 20
# Lookups answered by searching the unindexed bytes before indexing all.
SEARCH_LIMIT = 4


class Damage(object):
    """Where and how a database file is damaged (nothing is changed).

    ``offset`` is where the file would be truncated by a repair;
    ``nbytes`` how many bytes from there to the end would be dropped.
    """

    def __init__(self, filename, offset, nbytes, reason, repairable=True):
        self.filename = filename
        self.offset = offset
        self.nbytes = nbytes
        self.reason = reason
        self.repairable = repairable

    def __repr__(self):
        return 'Damage(%r, offset=%d, nbytes=%d, %r, repairable=%r)' % (
            self.filename, self.offset, self.nbytes, self.reason,
            self.repairable)

    def torn_name(self):
        return '%s.torn-%d' % (self.filename, self.offset)

    def message(self):
        if not self.repairable:
            return ('%s is damaged at offset %d (%s) and intact transactions '
                    'follow, so repair would lose them; the file was left '
                    'unchanged: restore it from a backup'
                    % (self.filename, self.offset, self.reason))
        return ('%s has a damaged last transaction at offset %d: %d '
                'bytes up to the end of the file (%s); open it with '
                'repair=True (command line: --repair) to truncate it to %d '
                'bytes, keeping the dropped bytes in %s'
                % (self.filename, self.offset, self.nbytes, self.reason,
                   self.offset, self.torn_name()))

    def error(self):
        error = DamagedFileError(self.message(), self.filename, self.offset,
                                 self.nbytes)
        error.repairable = self.repairable
        return error


def save_and_truncate(file, damage):
    """Repair: copy the damaged tail beside the file, then cut it off.

    Returns the path the dropped bytes were saved to.
    """
    if not damage.repairable:
        raise damage.error()
    path = damage.torn_name()
    serial = 0
    while os.path.exists(path):
        serial += 1
        path = '%s.%d' % (damage.torn_name(), serial)
    with open(path, 'xb') as torn:
        position = damage.offset
        end = damage.offset + damage.nbytes
        while position < end:
            piece = file.pread(min(CHUNK, end - position), position)
            if not piece:
                break
            torn.write(piece)
            position += len(piece)
        torn.flush()
        os.fsync(torn.fileno())
    fsync_directory(path)
    file.truncate(damage.offset)
    file.fsync()
    return path


class ReadWindow(object):
    """Sequential reads of a file region through a large buffer."""

    def __init__(self, file, position=0):
        self.file = file
        self.base = position
        self.buffer = b''

    def ensure(self, position, n):
        """Make ``[position, position + n)`` readable; False at end of file."""
        start = position - self.base
        if start >= 0 and start + n <= len(self.buffer):
            return True
        self.buffer = self.file.pread(max(CHUNK, n), position)
        self.base = position
        return len(self.buffer) >= n

    def get(self, position, n):
        """The ``n`` bytes at ``position``, or None past the end of file."""
        if not self.ensure(position, n):
            return None
        start = position - self.base
        return self.buffer[start:start + n]


def scan_transactions(file, start, size, index, filename=None,
                      probe=True, tail=True, check_last=False):
    """Read the transactions in ``[start, size)`` into ``index``.

    Records each disk-record's key number -> offset (later transactions
    win).  Returns ``(end, records, damage)``: the offset after the last
    good transaction, the number of records indexed, and a ``Damage`` or
    None.  A transaction enters the index only when all of it is valid.
    ``probe``: on damage, look whether intact transactions follow (then
    the damage is not repairable by truncation).  ``tail``: ``size`` is
    the end of the file, so a run of empty transactions there is zeros.
    ``check_last``: check in depth (durus.record_check) the records of
    the last non-empty transaction before the end or before the damage
    (bytes damaged from inside it on can still make a well-laid-out
    transaction), and index them only if they pass.
    """
    window = ReadWindow(file, start)
    position = start
    records = 0
    empty_run = None  # start of a trailing run of empty transactions
    held = None  # check_last: (start, entries, empty_run, end), unindexed
    reason = resume = None
    while position < size:
        if not window.ensure(position, 8):
            reason = 'a partial transaction length'
            break
        buffer = window.buffer
        length = _int8.unpack_from(buffer, position - window.base)[0]
        end = position + 8 + length
        if end > size:
            reason = 'a transaction of %d bytes is cut short' % length
            break
        if not window.ensure(position, 8 + length):
            reason = 'the file shrank while being read'
            break
        entries, reason = parse_records(window.buffer,
                                        position + 8 - window.base,
                                        end - window.base, window.base)
        if reason is not None:
            resume = end if probe else None
            break
        if length == 0:
            if empty_run is None:
                empty_run = position
        elif check_last:
            if held is not None:
                records += index_entries(index, held[1])
            held = (position, entries, empty_run, end)
            empty_run = None
        else:
            records += index_entries(index, entries)
            empty_run = None
        position = end
    if held is not None:
        problem = deep_problem(file, held[1])
        if problem is not None:
            return held[0], records, damage_at(
                scan_transactions, file, filename, held[0], held[2], size,
                problem, resume_after(held, reason, resume, probe))
        records += index_entries(index, held[1])
    if reason is not None:
        return position, records, damage_at(
            scan_transactions, file, filename, position, empty_run, size,
            reason, resume)
    if tail and empty_run is not None and size - empty_run >= 5 * 8:
        return empty_run, records, Damage(
            filename, empty_run, size - empty_run,
            '%d zero bytes after the last transaction' % (size - empty_run))
    return position, records, None


def resume_after(held, reason, resume, probe):
    """Where intact transactions could follow when the ``held``
    transaction is damaged: after it, or after the later damage."""
    if not probe:
        return None
    return held[3] if reason is None else resume


def index_entries(index, entries):
    """Index ``(oid number, offset)`` pairs; how many there were."""
    for key, offset in entries:
        index.set(key, offset)
    return len(entries)


def _read_disk_record(file, offset):
    head = file.pread(8, offset)
    return file.pread(_int8.unpack(head)[0] - 8, offset + 16)


def deep_problem(file, entries):
    """Why a transaction of well-laid-out disk-records (``entries``:
    ``(oid number, offset)``) is damaged inside a record, or None."""
    found = transaction_problem(lambda offset: _read_disk_record(file, offset),
                                [offset for _, offset in entries])
    if found is None:
        return None
    offset, problem = found
    return 'the record of oid %d at offset %d is damaged: %s' % (
        _int8.unpack(file.pread(8, offset + 8))[0], offset, problem)


def parse_records(buffer, pointer, local_end, base):
    """The disk-records of one transaction body ``buffer[pointer:local_end]``.

    Returns ``(entries, reason)``: ``(oid number, file offset)`` pairs
    (``base`` is the file offset of ``buffer[0]``), and None or why the
    body is not a valid sequence of disk-records.
    """
    entries = []
    while pointer < local_end:
        if pointer + 28 > local_end:
            return entries, 'a disk-record header crosses the transaction end'
        size, key, oid, data_length = _record_head.unpack_from(buffer,
                                                               pointer)
        body = size - 20
        if (body < 0 or pointer + 8 + size > local_end or key != oid
                or data_length > body or (body - data_length) & 7):
            return entries, ('a malformed disk-record at offset %d'
                             % (pointer + base))
        entries.append((key, pointer + base))
        pointer += 8 + size
    return entries, None


def walk_transaction_heads(file, start, size):
    """Offsets of the transactions in ``[start, size)``, reading only
    their length fields.  None if the chain does not end exactly at
    ``size`` or ends in zero bytes (then a full scan gives the verdict).
    """
    starts = array('Q')
    buffer, base = b'', start
    position = start
    empty_run = None
    while position < size:
        if not base <= position <= base + len(buffer) - 8:
            buffer, base = file.pread(1 << 16, position), position
            if len(buffer) < 8:
                return None
        length = _int8.unpack_from(buffer, position - base)[0]
        if position + 8 + length > size:
            return None
        starts.append(position)
        if length:
            empty_run = None
        elif empty_run is None:
            empty_run = position
        position += 8 + length
    if empty_run is not None and size - empty_run >= 5 * 8:
        return None
    return starts


def damage_at(scan, file, filename, position, empty_run, size, reason,
              resume):
    """Damage found at ``position``: repairable unless intact data follows.

    ``scan`` is the format's ``scan_transactions``; ``resume`` is where
    intact transactions could start again after the damaged one (None if
    the damage runs to the end of the file).  A run of empty transactions
    just before the damage (zero bytes, or a length placeholder from an
    interrupted write) is dropped with it.
    """
    cut = position if empty_run is None else empty_run
    repairable = True
    if resume is not None and resume < size:
        _, found, later = scan(file, resume, size, OidIndex(), probe=False)
        if later is None and found:
            repairable = False
    return Damage(filename, cut, size - cut, reason, repairable)


def _short(file, offset):
    return DamagedFileError(
        '%s ends inside a record at offset %d; open it writable with '
        'repair=True (command line: --repair)' % (file.name, offset),
        file.name, offset, max(0, file.get_size() - offset))


class OffsetMapError(DurusError, AssertionError):
    """A misuse of an offset map that Durus 4.3 asserted against: setting
    a slot that holds an offset, or a map not at the end of its file."""


class OffsetMap(object):
    """The on-disk offset map of a SHELF-1 file, read in place.

    ``start`` is S, the offset of the map's B field.  Durus 4.3's
    constructor ``OffsetMap(file, max_oid=-2, max_offset=0)`` takes the
    map at ``file``'s stream position, first writing a blank one there
    (room for oids up to ``max_oid``) when that position is the end of
    the file.  ``OffsetMap.at(file, start)`` reads the map at ``start``
    and neither writes nor moves the stream position.
    """

    def __init__(self, file, max_oid=-2, max_offset=0):
        start = file.tell()
        file.seek(0, 2)
        if file.tell() == start:
            for _ in self.generate(file, max_oid, max_offset):
                pass
        file.seek(start)
        stream = file
        if not hasattr(file, 'pread'):  # a plain stream, such as BytesIO
            file = StreamAccess(file)
        self._read(file, start)
        stream.seek(self.end)  # where the transactions after it start

    @classmethod
    def at(cls, file, start):
        """The map at offset ``start`` of ``file`` (anything with
        ``pread``, ``get_size`` and ``name``, such as a ``File``)."""
        offset_map = cls.__new__(cls)
        offset_map._read(file, start)
        return offset_map

    def _read(self, file, start):
        self.file = file
        self.start = start
        head = file.pread(24, start)
        if len(head) < 24:
            raise DamagedFileError(
                '%s ends inside its offset map at offset %d; it is not '
                'repairable by truncation: restore it from a backup'
                % (file.name, start), file.name, start,
                max(0, file.get_size() - start))
        total, self.word_size, self.count = _map_head.unpack(head)
        self.end = start + 8 + total
        if (not 1 <= self.word_size <= 8
                or total != 16 + self.word_size * self.count
                or self.end > file.get_size()):
            raise DamagedFileError(
                '%s has a damaged offset map at offset %d (B=%d, W=%d, '
                'M=%d); restore it from a backup'
                % (file.name, start, total, self.word_size, self.count),
                file.name, start, max(0, file.get_size() - start))
        self._words_start = start + 24

    @staticmethod
    def generate(file, max_oid=-2, max_offset=0):
        """Append a blank map for oids up to ``max_oid`` at ``file``'s
        stream position (its end), records having been written below
        ``max_offset``; yields progress while writing (Durus 4.3's API)."""
        start = file.tell()
        if not max_offset < start:
            raise OffsetMapError(
                'an offset map goes after the records it indexes: it would '
                'start at %d, a record is at %d' % (start, max_offset))
        for step in IntArray.generate(file, max_oid + 2,
                                      start + max_oid + 2):
            yield step
        file.seek(start)

    def __len__(self):
        return self.count

    def get(self, j, default=None):
        """Offset of oid number ``j``'s disk-record in the initial
        transaction, or ``default``."""
        if not 0 <= j < self.count:
            if not -self.count <= j < 0:
                return default
            j += self.count  # Durus 4.3 indexed from the end too
        # The word read here rather than through _word (the same bytes):
        # a call less on every load.
        size = self.word_size
        word = int.from_bytes(
            self.file.pread(size, self._words_start + j * size), 'big')
        return word if word < self.start else default

    def _slot(self, j):
        if not -self.count <= j < self.count:
            raise IndexError(j)
        return j + self.count if j < 0 else j

    def _word(self, j):
        size = self.word_size
        return int.from_bytes(
            self.file.pread(size, self._words_start + j * size), 'big')

    def _put_word(self, j, value):
        if value < 0:
            raise struct.error('an offset map word cannot hold %d' % value)
        try:
            word = value.to_bytes(self.word_size, 'big')
        except OverflowError:
            raise ValueError('%d does not fit in this offset map\'s words of '
                             '%d bytes' % (value, self.word_size)) from None
        self.file.pwrite(word, self._words_start + j * self.word_size)

    def __getitem__(self, j):
        offset = self.get(j)
        if offset is None:
            raise IndexError(j)
        return offset

    def __setitem__(self, j, value):
        """Put an offset in an empty slot (as while building a map)."""
        slot = self._slot(j)
        if self.get(slot) is not None:
            raise OffsetMapError(
                'slot %d of the offset map already holds offset %d; a '
                'slot is set once, while the map is built'
                % (slot, self.get(slot)))
        self._put_word(slot, value)

    def __iter__(self):
        """The numbers that have an offset."""
        return self.gen_numbers()

    def iteritems(self):
        """``(number, offset)`` of every number that has an offset."""
        start = self.start
        for number, word in enumerate(self.load_words()):
            if word < start:
                yield number, word

    items = iteritems

    def get_start(self):
        return self.start

    def get_array_size(self):
        """Number of slots (M), holes included."""
        return self.count

    def gen_stitch(self):
        """Link every slot without an offset into the list of holes (each
        links to the previous hole; the first to slot M - 1), then yield
        each slot number, as Durus 4.3 did while it wrote them."""
        words = self.load_words()
        start = self.start
        last = self.count - 1
        for index in range(self.count):
            if words[index] >= start:
                words[index] = start + last
                last = index
        if self.count:
            if (start + self.count - 1).bit_length() > 8 * self.word_size:
                raise ValueError('the hole links of this offset map do not '
                                 'fit in its words of %d bytes'
                                 % self.word_size)
            self.file.pwrite(_pack_words(words, self.word_size),
                             self._words_start)
        for index in range(self.count):
            yield index

    def gen_holes(self):
        """Hole numbers in walk order (descending, ending with M - 1)."""
        if not self.count:
            return
        last = self.count - 1
        current = last
        for _ in range(self.count):
            following = self._word(current) - self.start
            if not 0 <= following <= last:
                return  # blank or damaged link: stop rather than loop
            yield following
            if following == last:
                return
            current = following

    def load_words(self):
        """Every word of the map, as an ``array('Q')`` (one read)."""
        size = self.word_size
        data = self.file.pread(size * self.count, self.start + 24)
        wide = bytearray(8 * self.count)
        for byte in range(size):  # right-align each word in 8 bytes
            wide[8 - size + byte::8] = data[byte::size]
        words = array('Q')
        words.frombytes(bytes(wide))
        if sys.byteorder != 'big':
            words.byteswap()
        return words

    def gen_numbers(self):
        """Numbers of the oids that have a record in the map."""
        start = self.start
        for number, word in enumerate(self.load_words()):
            if word < start:
                yield number


def build_offset_map(start, offsets, count=None):
    """The bytes of an offset map at ``start`` for ``{number: offset}``
    (``count`` slots: by default two more than the largest number)."""
    if count is None:
        count = (max(offsets) + 2) if offsets else 0
    word_size = word_size_for(start + count + 1)
    words = array('Q', bytes(8 * count))
    previous_hole = None
    for number in range(count):
        offset = offsets.get(number)
        if offset is not None:
            words[number] = offset
        else:
            # Holes link downwards; the lowest one links to slot M - 1,
            # where the walk starts.
            words[number] = start + (count - 1 if previous_hole is None
                                     else previous_hole)
            previous_hole = number
    return _map_head.pack(16 + word_size * count, word_size, count) + \
        _pack_words(words, word_size)


def _pack_words(words, word_size):
    """The big-endian ``word_size``-byte form of an ``array('Q')``."""
    words = array('Q', words)
    if sys.byteorder != 'big':
        words.byteswap()
    full = words.tobytes()
    packed = bytearray(word_size * len(words))
    for byte in range(word_size):
        packed[byte::word_size] = full[8 - word_size + byte::8]
    return bytes(packed)


def encode_transaction(items, start):
    """The bytes of a transaction of ``(oid, record)`` pairs to be written
    at ``start``, and ``(oid number, offset)`` of each disk-record."""
    pack = _int8.pack
    unpack = _int8.unpack
    parts = [b'']
    placed = []
    position = start + 8
    for oid, record in items:
        size = len(record)
        parts += (pack(8 + size), oid, record)
        placed.append((unpack(oid)[0], position))
        position += 16 + size
    parts[0] = pack(position - start - 8)
    return b''.join(parts), placed


class ShelfUsageError(DurusError, AssertionError):
    """A Shelf call that Durus 4.3 asserted against (items for a file
    that already holds a shelf, a read-only temporary shelf)."""


class ShelfRecordError(DurusError, ValueError):
    """``store()`` got a value that is not a record of its name, which
    every SHELF-1 reader here would take for damage."""


class RecordMismatchError(DamagedFileError, AssertionError):
    """The record at a name's position has another name."""


class Shelf(object):
    """An open SHELF-1 file: lookups, appends, sequential scans.

    ``file`` is a ``durus.file.File``, a path (opened as a ``File`` with
    ``readonly``), or None for a new temporary file.  An empty writable
    file is initialised, with ``items`` (name, value) pairs as its
    initial transaction if given.  Damage found while opening is repaired
    when ``repair`` is true (and the damage is repairable), otherwise
    raised.  ``saved_index`` (a ``durus.shelf_index.SavedIndex`` or None)
    may supply the index of a prefix of the appended transactions.  ``size``
    (default: the file's size) is where the file is taken to end: a
    reader opens at the last complete transaction while a writer appends.

    Besides the storages' calls by oid number (``load_number``,
    ``append_transaction``), a Shelf has Durus 4.3's API by name (the
    8-byte oid) and position: ``get_value``, ``get_position``,
    ``store``, ``next_name``, iteration.
    """

    prefix = PREFIX
    unused_name_generator = None  # next_name()'s, made on first use

    def __init__(self, file=None, items=None, repair=False, readonly=False,
                 saved_index=None, check_only=False, size=None):
        open_file = self._prepare_file(file, items, repair, readonly)
        try:
            self._open(open_file, repair, saved_index, check_only, size)
        except BaseException:
            if open_file is not file:  # opened here: do not leak its lock
                open_file.close()
            raise

    def _open(self, open_file, repair, saved_index, check_only, size):
        self.file = open_file
        self.name = open_file.name
        if size is None:
            size = open_file.get_size()
        if size == 0:
            if open_file.is_readonly() or check_only:
                raise UnknownFormatError(
                    '%s is empty: it holds no database yet; open it writable '
                    'to create one' % self.name)
            open_file.pwrite(EMPTY_FILE, 0)
            open_file.fsync()
            size = len(EMPTY_FILE)
        head = open_file.pread(16, 0)
        if not head.startswith(PREFIX[:len(head)]) or len(head) < 8:
            raise UnknownFormatError(
                '%s is not a FileStorage (SHELF-1) file: it does not start '
                'with %r' % (self.name, PREFIX))
        if len(head) < 16:
            raise Damage(self.name, 0, size, 'the file ends inside its '
                         'header', repairable=False).error()
        self.map_start = 16 + _int8.unpack_from(head, 8)[0]
        if self.map_start == size and not (open_file.is_readonly()
                                           or check_only):
            # A pack that stopped before writing the map (as Durus does).
            open_file.pwrite(_map_head.pack(16, 1, 0), size)
            open_file.fsync()
            size += 24
        self.map = OffsetMap.at(open_file, self.map_start)
        self.index = OidIndex()
        scan_from = self.map.end
        use_saved = (saved_index is not None
                     and saved_index.map_start == self.map_start)
        if use_saved:
            self.index = saved_index.index
            scan_from = saved_index.covered_end
        self.scan_start = scan_from
        self._unindexed = 0  # transactions not indexed yet (lazy mode)
        self.damage = None
        if (repair or check_only or use_saved
                or size - scan_from < LAZY_MIN_BYTES
                or not self._open_lazily(size)):
            self.end, self.scanned_records, self.damage = scan_transactions(
                open_file, scan_from, size, self.index, self.name,
                check_last=True)
        if self.damage is not None and not check_only:
            if repair and not open_file.is_readonly():
                self.repaired_to = save_and_truncate(open_file, self.damage)
                self.end = self.damage.offset
            else:
                error = self.damage.error()
                if repair and self.damage.repairable:
                    error = DamagedFileError(
                        error.message + ' (repair needs a writable open)',
                        error.filename, error.offset, error.nbytes)
                    error.repairable = True
                raise error

    @classmethod
    def _prepare_file(cls, file, items, repair, readonly):
        """The ``File`` a new Shelf opens, written with ``items`` if it is
        new (Durus 4.3's constructor arguments)."""
        if file is None:
            if readonly or repair:
                raise ShelfUsageError('a Shelf on a new temporary file can '
                                      'be neither read-only nor repaired')
            opened = File()
        elif not hasattr(file, 'seek'):
            opened = File(file, readonly=readonly)
        else:
            opened = file
        try:
            if opened.get_size() == 0:
                if items:  # as in 4.3: [] and None make the same empty shelf
                    for _ in cls.generate_shelf(opened, items):
                        pass
                    opened.fsync()
            elif items is not None:
                raise ShelfUsageError(
                    'items are for a new, empty file; %s already holds %d '
                    'bytes (store() appends to it)'
                    % (opened.name, opened.get_size()))
        except BaseException:
            if opened is not file:
                opened.close()
            raise
        return opened

    # Lazy indexing of a large never-indexed tail
    #
    # The index then covers the newest transaction only; the older ones
    # (``_starts[:_unindexed]``) are indexed when something needs them
    # all.  A lookup that misses the index searches the unindexed bytes
    # for the oid written twice (disk-record key, then the record's own
    # oid) and checks the match by parsing its transaction; after
    # SEARCH_LIMIT such searches everything left is indexed instead.

    def _open_lazily(self, size):
        """Index only the newest transaction now; older ones on demand.

        Opening then costs a walk over the transaction length fields.
        Returns False (nothing changed) if the tail needs a full scan to
        judge it: its length chain is broken, it ends in zero bytes, or
        its last transaction is malformed.
        """
        starts = walk_transaction_heads(self.file, self.map.end, size)
        if not starts:
            return False
        entries, reason = self._read_transaction(starts[-1], size)
        if reason is not None or not entries or deep_problem(self.file,
                                                             entries):
            return False  # a full scan judges it (damaged, or empty)
        for number, offset in entries:
            self.index.set(number, offset)
        self._starts = starts
        self._unindexed = len(starts) - 1
        self._found = {}
        self._searches = 0
        self.end = size
        self.scanned_records = len(entries)
        return True

    def _transaction_end(self, position):
        following = position + 1
        return (self._starts[following] if following < len(self._starts)
                else self.end)

    def _read_transaction(self, start, end):
        body = self.file.pread(end - start, start)
        return parse_records(body, 8, len(body), start)

    def _parse_unindexed(self, position):
        """Entries of unindexed transaction number ``position``."""
        start = self._starts[position]
        entries, reason = self._read_transaction(
            start, self._transaction_end(position))
        if reason is not None:
            raise Damage(self.name, start, self.end - start, reason,
                         repairable=False).error()
        return entries

    def is_complete(self):
        """True when the index covers every transaction after the map."""
        return not self._unindexed

    def complete_index(self):
        """Index every transaction left (one forward scan; the entries
        already indexed are newer and win)."""
        if not self._unindexed:
            return
        start, end = self._starts[0], self._starts[self._unindexed]
        older = OidIndex()
        _, _, damage = scan_transactions(self.file, start, end, older,
                                         self.name, probe=False, tail=False)
        if damage is not None:
            raise Damage(self.name, damage.offset, self.end - damage.offset,
                         damage.reason, repairable=False).error()
        for number, offset in self.index.items():
            older.set(number, offset)
        self.index = older
        self._unindexed = 0
        self._found = {}

    def _search_unindexed(self, number):
        """Offset of the newest disk-record of ``number`` among the
        unindexed transactions, or 0."""
        pattern = _int8.pack(number) * 2
        low = self._starts[0]
        region_end = high = self._starts[self._unindexed]
        while high > low:
            chunk_start = max(low, high - CHUNK)
            data = self.file.pread(min(high + 15, region_end) - chunk_start,
                                   chunk_start)
            search_end = len(data)
            while True:
                found = data.rfind(pattern, 0, search_end)
                if found < 0:
                    break
                offset = chunk_start + found - 8
                position = bisect_right(self._starts, offset) - 1
                if (0 <= position < self._unindexed and (number, offset)
                        in self._parse_unindexed(position)):
                    return offset
                search_end = found + 15  # look further back
            high = chunk_start
        return 0

    # Lookups

    def get_offset(self, number):
        """Offset of the newest disk-record of oid ``number``, or 0."""
        offset = self.index.get(number)
        if not offset and self._unindexed:
            offset = self._found.get(number)
            if offset is None:
                if self._searches < SEARCH_LIMIT:
                    self._searches += 1
                    offset = self._found[number] = \
                        self._search_unindexed(number)
                else:
                    self.complete_index()
                    offset = self.index.get(number)
        return offset or self.map.get(number, 0)

    def has(self, number):
        return bool(self.get_offset(number))

    def read_at(self, offset, number=None):
        """The §1 record of the disk-record at ``offset``."""
        data = self.file.pread(_READ_GUESS, offset)
        if len(data) < 16:
            raise _short(self.file, offset)
        total = 8 + _int8.unpack_from(data)[0]
        if len(data) < total:
            data += self.file.pread(total - len(data), offset + len(data))
            if len(data) < total:
                raise _short(self.file, offset)
        if number is not None and _int8.unpack_from(data, 8)[0] != number:
            raise DamagedFileError(
                '%s: the index points oid %d at offset %d, which holds '
                'another record; the file or its .index was changed '
                'behind our back' % (self.name, number, offset),
                self.name, offset, 0)
        return data[16:total]

    def load_number(self, number):
        # The index of appended transactions, then (unless a lazily opened
        # tail is still partly unindexed) straight to the packed map.
        offset = self.index.get(number)
        if not offset:
            if self._unindexed:
                offset = self.get_offset(number)
            else:
                offset = self.map.get(number)
            if not offset:
                raise DurusKeyError(_int8.pack(number))
        return self.read_at(offset, number)

    def gen_numbers(self):
        """Numbers of every oid that has a record."""
        self.complete_index()
        for number in self.map.gen_numbers():
            if number not in self.index:
                yield number
        for number, _ in self.index.items():
            yield number

    def gen_current_records(self):
        """``(oid, record)`` of the newest record of every oid, in file order.

        Reads the file sequentially in large chunks and skips superseded
        versions: a record is current if the index (or, in the initial
        transaction, the offset map) points at it.
        """
        self.complete_index()
        dense = self.index.dense
        overflow = self.index.overflow
        words = self.map.load_words()
        head = _key_head.unpack_from
        for start, end, initial in ((8, self.map_start, True),
                                    (self.map.end, self.end, False)):
            window = ReadWindow(self.file, start)
            position = start
            while position < end:
                if not window.ensure(position, 8):
                    raise _short(self.file, position)
                txn_end = position + 8 + _int8.unpack_from(
                    window.buffer, position - window.base)[0]
                position += 8
                while position < txn_end:
                    local = position - window.base
                    buffer = window.buffer
                    if local + 16 > len(buffer):
                        if not window.ensure(position, 16):
                            raise _short(self.file, position)
                        buffer, local = window.buffer, 0
                    size, number = head(buffer, local)
                    total = 8 + size
                    if local + total > len(buffer):
                        if not window.ensure(position, total):
                            raise _short(self.file, position)
                        buffer, local = window.buffer, 0
                    newest = (dense[number] if number < len(dense)
                              else overflow.get(number, 0))
                    if newest == position or (
                            initial and not newest
                            and number < len(words)
                            and words[number] == position):
                        yield (buffer[local + 8:local + 16],
                               buffer[local + 16:local + total])
                    position += total

    # Appending

    def append_transaction(self, items, durable=True):
        """Append ``(oid, record)`` pairs as one transaction, durably.

        Returns the oid numbers written, once the bytes are fsynced (with
        ``durable=False``: once written; the caller fsyncs later).  On
        failure the file is cut back to where the transaction started.
        """
        if self.file.is_readonly():
            raise ReadOnlyError('%s is open read-only; reopen it without '
                                'readonly to commit' % self.name)
        start = self.end
        data, placed = encode_transaction(items, start)
        self.file.append_durably(data, start, durable)
        self.index.set_many(placed)
        self.end = start + len(data)
        return [number for number, _ in placed]

    def read_appended(self):
        """Index the complete transactions another process appended since
        ``end`` (read-only storages); returns their oid numbers.  A
        transaction still being written is left for the next call."""
        size = self.file.get_size()
        if size <= self.end:
            return []
        found = OidIndex()
        self.end, _, _ = scan_transactions(self.file, self.end, size, found,
                                           self.name, probe=False,
                                           tail=False)
        for number, offset in found.items():
            self.index.set(number, offset)
        return list(found.numbers())

    def close(self):
        self.file.close()

    # Durus 4.3's API: names (8-byte oids), values (records), positions

    @classmethod
    def has_format(klass, file):
        """Does ``file`` (moved to just after the prefix) start like a
        SHELF-1 file?"""
        file.seek(0)
        try:
            return read(file, len(klass.prefix)) == klass.prefix
        except ShortRead:
            return False

    @classmethod
    def generate_shelf(klass, file, items):
        """Write a new shelf holding ``items`` ((name, value) pairs) into
        the empty ``file``, yielding progress numbers as it goes (in the
        order Durus 4.3 yielded them); the bytes are those 4.3 writes."""
        file.seek_end()
        if file.tell() != 0:
            raise ValueError('Expected %s to be empty: a shelf is generated '
                             'into a new file' % (file,))
        if not items:
            file.write(EMPTY_FILE)
            file.seek_end()
            return
        offsets = {}
        buffer = [PREFIX, _int8.pack(0)]
        buffered = position = len(PREFIX) + 8
        count = 0
        for name, value in items:
            name, value = as_bytes(name), as_bytes(value)
            number = str_to_int8(name)
            if number in offsets:
                raise ShelfUsageError(
                    'name %r appears twice in the items of a new shelf'
                    % (name,))
            offsets[number] = position
            buffer += (_int8.pack(len(name) + len(value)), name, value)
            size = 8 + len(name) + len(value)
            position += size
            buffered += size
            if buffered >= CHUNK:
                file.write(b''.join(buffer))
                buffer, buffered = [], 0
            count += 1
            yield count
        file.write(b''.join(buffer))
        file.seek(len(PREFIX))
        file.write(_int8.pack(position - len(PREFIX) - 8))
        file.seek(position)
        slots = max(offsets, default=0) + 2  # 4.3's size, even for no items
        map_bytes = build_offset_map(position, offsets, slots)
        file.write(map_bytes)
        file.seek_end()
        # Durus 4.3 wrote the blank map in steps of GROW_CHUNK bytes,
        # then set each offset, then linked each hole.
        remaining = len(map_bytes) - 24
        while remaining > 0:
            remaining = max(0, remaining - GROW_CHUNK)
            yield remaining
        for left in range(count - 1, -1, -1):
            yield left
        for index in range(slots):
            yield index

    def get_file(self):
        return self.file

    def get_offset_map(self):
        return self.map

    @property
    def offset_map(self):
        return self.map

    @property
    def memory_index(self):
        """``{name: position}`` of the records appended after the map (a
        snapshot: Durus 4.3 kept this dict itself)."""
        self.complete_index()
        return dict((_int8.pack(number), position)
                    for number, position in self.index.items())

    def get_position(self, name):
        """Offset of the newest record of ``name``, or None."""
        if len(name) != 8:
            raise ValueError('a shelf name is 8 bytes (an oid), not %r'
                             % (name,))
        return self.get_offset(_int8.unpack(name)[0]) or None

    def get_item_at_position(self, position):
        """``(name, value)`` of the record at ``position``."""
        if position < 0:
            raise OSError(errno.EINVAL, 'no record at the negative position '
                          '%d' % position)
        head = self.file.pread(8, position)
        if len(head) == 8:
            length = _int8.unpack(head)[0]
            if position + 8 + length <= self.file.get_size():
                record = self.file.pread(length, position + 8)
                return record[:8], record[8:]
        raise ShortRead('%s has no whole record at position %d (it holds '
                        '%d bytes)' % (self.name, position,
                                       self.file.get_size()))

    def get_value(self, name):
        """The newest value stored under ``name``, or None."""
        position = self.get_position(name)
        if position is None:
            return None
        found, value = self.get_item_at_position(position)
        if found != name:
            raise RecordMismatchError(
                '%s: the record at position %d, found for %r, is named %r; '
                'the file or its .index was changed behind our back'
                % (self.name, position, name, found), self.name, position, 0)
        return value

    def __contains__(self, name):
        return self.get_position(name) is not None

    def iterindex(self):
        """``(name, position)`` of the newest record of every name."""
        self.complete_index()
        index = self.index
        for number, position in self.map.iteritems():
            if number not in index:
                yield _int8.pack(number), position
        for number, position in list(index.items()):
            yield _int8.pack(number), position

    def __iter__(self):
        for name, _ in self.iterindex():
            yield name

    def iteritems(self):
        """``(name, value)`` of the newest record of every name."""
        for name, position in self.iterindex():
            item = self.get_item_at_position(position)
            if item[0] != name:
                raise RecordMismatchError(
                    '%s: the record at position %d is named %r, not %r'
                    % (self.name, position, item[0], name), self.name,
                    position, 0)
            yield item

    items = iteritems

    def next_name(self):
        """A name never used and not returned before by this Shelf: the
        holes of the offset map first, then names past it."""
        if self.unused_name_generator is None:
            self.unused_name_generator = self._generate_unused_names()
        return next(self.unused_name_generator)

    def _generate_unused_names(self):
        self.complete_index()
        for number in self.map.gen_holes():
            if number not in self.index:
                yield _int8.pack(number)
        number = self.map.get_array_size()
        while True:
            if number not in self.index:
                yield _int8.pack(number)
            number += 1

    def store(self, name_value_sequence):
        """Append the (name, value) pairs as one transaction, durably.

        Returns ``(name, old position or None, new position)`` for each.
        Each value must be a record of its name (as FileStorage writes:
        it starts with the name); nothing is written if one is not.
        """
        if self.file.is_readonly():
            raise ReadOnlyFileError('%s is open read-only; reopen it without '
                                    'readonly to store' % self.name)
        items = []
        result = []
        position = self.end + 8
        for name, value in name_value_sequence:
            name, value = as_bytes(name), as_bytes(value)
            old_position = self.get_position(name)
            if value[:8] != name or not is_well_formed(value):
                raise ShelfRecordError(
                    'the value stored under %r is not a Durus record of that '
                    'oid (its own oid, int4 data length, data, 8-byte '
                    'references); nothing was stored' % (name,))
            problem = record_problem(value)
            if problem:  # the reader would call the file damaged
                raise ShelfRecordError(
                    'the value stored under %r is not a Durus record: %s; '
                    'nothing was stored' % (name, problem))
            items.append((name, value))
            result.append((name, old_position, position))
            position += 16 + len(value)
        self.append_transaction(items)
        return result


class ShelfWriter(object):
    """Writes a new packed SHELF-1 file: initial transaction, then map.

    Records are buffered and written in large pieces.  ``finish_map()``
    patches L0 and writes the offset map; ``append_transaction`` may
    follow; ``fsync()`` makes it durable.
    """

    def __init__(self, open_file):
        self.file = open_file
        open_file.truncate(0)
        self.position = 16
        self.offsets = {}
        self.buffer = [PREFIX, _int8.pack(0)]
        self.buffered = 16
        self.written = 0

    def add(self, number, oid, record):
        self.offsets[number] = self.position
        self.buffer.append(_int8.pack(8 + len(record)))
        self.buffer.append(oid)
        self.buffer.append(record)
        size = 16 + len(record)
        self.position += size
        self.buffered += size
        if self.buffered >= CHUNK:
            self._flush()

    def _flush(self):
        data = b''.join(self.buffer)
        self.file.pwrite(data, self.written)
        self.written += len(data)
        self.buffer = []
        self.buffered = 0

    def finish_map(self):
        self._flush()
        self.file.pwrite(_int8.pack(self.position - 16), 8)
        map_bytes = build_offset_map(self.position, self.offsets)
        self.file.pwrite(map_bytes, self.position)
        self.position += len(map_bytes)
        self.written = self.position

    def append_transaction(self, items):
        items = list(items)
        if items:
            data, _ = encode_transaction(items, self.position)
            self.file.pwrite(data, self.position)
            self.position += len(data)

    def fsync(self):
        self.file.fsync()


def read_transaction_offsets(file, repair=False):
    """``{name: position}`` of the records of the one transaction at
    ``file``'s stream position, which moves past it; None at the end of
    the file.

    ``file`` is a ``durus.file.File``.  An incomplete transaction there
    raises ``DamagedFileError`` (a ``ShortRead``); with ``repair`` it is
    cut off instead (its bytes kept beside the file, as every repair
    here does), the position left where it started, and None returned.
    Damage followed by intact transactions is never cut off.
    """
    start = file.tell()
    size = file.get_size()
    if start >= size:
        return None
    reason = None
    head = file.pread(8, start)
    if len(head) < 8:
        reason = 'a partial transaction length'
        end = None
    else:
        end = start + 8 + _int8.unpack(head)[0]
        if end > size:
            reason = 'a transaction runs past the end of the file'
            end = None
    if reason is None:
        offsets = {}
        body = file.pread(end - start - 8, start + 8)
        pointer = 0
        while pointer < len(body):
            if pointer + 16 > len(body):
                reason = 'a record header crosses the transaction end'
                break
            length = _int8.unpack_from(body, pointer)[0]
            if length < 8 or pointer + 8 + length > len(body):
                reason = 'a record crosses the transaction end'
                break
            offsets[body[pointer + 8:pointer + 16]] = start + 8 + pointer
            pointer += 8 + length
        else:
            file.seek(end)
            return offsets
    damage = damage_at(scan_transactions, file, file.name, start, None, size,
                       reason, end)
    if not repair:
        raise damage.error()
    appended = _appended_start(file)
    if appended is None or start < appended:
        raise ShelfUsageError(
            'repair cuts only transactions appended after the offset map; '
            'position %d of %s is before them (they start at %s): seek '
            'there first' % (start, file.name, appended))
    save_and_truncate(file, damage)
    file.seek(start)
    return None


def _appended_start(file):
    """Offset of the first transaction after the map of the SHELF-1 file
    ``file``, or None if it does not have that layout."""
    head = file.pread(16, 0)
    if len(head) < 16 or not head.startswith(PREFIX):
        return None
    map_start = 16 + _int8.unpack_from(head, 8)[0]
    total = file.pread(8, map_start)
    if len(total) < 8:
        return None
    return map_start + 8 + _int8.unpack(total)[0]
