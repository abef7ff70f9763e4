"""The transactions a one-file storage still holds, and each object's past
states in them.

A FileStorage (SHELF-1) or FileStorage2 (DFS20) file appends every commit
as a transaction and keeps the old ones until a pack, so a file that has
not been packed since a change still holds the states before it.  This
module reads them, by file position, without loading or unpickling
anything::

    for transaction in gen_transactions(storage):
        transaction.position, transaction.records  # RecordLocation list

    history = RecordHistory(storage)      # one pass over the file
    for location in history.versions(oid):  # oldest first
        record = read_record(storage, location)

Only the transactions the storage has indexed are read (a damaged tail
the storage refused stays out).  Other storages keep no old states:
``HistoryUnavailable`` says so.
"""

import struct
from array import array
from collections import namedtuple

from durus.error import DurusError
from durus.utils import str_to_int8

_int4 = struct.Struct('>I')
_int8 = struct.Struct('>Q')
CHUNK = 4 << 20


class HistoryUnavailable(DurusError, TypeError):
    """The storage keeps no old states (not a file opened directly)."""


class HistoryReadError(DurusError, ValueError):
    """The bytes of a transaction do not parse (the file changed or is
    damaged)."""


RecordLocation = namedtuple('RecordLocation',
                            'oid transaction offset size')
RecordLocation.__doc__ = """Where one stored state is: ``oid`` (a number),
``transaction`` (file offset of its transaction), ``offset`` (of the
record's bytes) and ``size`` (of the record)."""

FileTransaction = namedtuple('FileTransaction', 'position size records')
FileTransaction.__doc__ = """One transaction: its file ``position``, its
``size`` in bytes (with its framing) and its ``records``
(RecordLocation, in file order)."""


def _layout(storage):
    """``(kind, file, [(start, end), ...])``: where the storage's
    transactions lie."""
    from durus.file_storage import FileStorage
    from durus.file_storage2 import FileStorage2
    if isinstance(storage, FileStorage):
        shelf = storage.shelf
        first = _int8.unpack(shelf.file.pread(8, 8))[0]
        ranges = [(8, 8 + 8 + first)] if first else []
        ranges.append((shelf.map.end, shelf.end))
        return 'shelf', storage.file, ranges
    if isinstance(storage, FileStorage2):
        ranges = []
        if storage.index_offset > 14:
            ranges.append((14, storage.index_offset))
        length = _int8.unpack(storage.file.pread(8, storage.index_offset))[0]
        ranges.append((storage.index_offset + 8 + length, storage.file_end))
        return 'dfs20', storage.file, ranges
    raise HistoryUnavailable(
        'history needs a FileStorage or FileStorage2 file opened directly; '
        '%s keeps no old states' % type(storage).__name__)


def history_available(storage):
    """Whether ``storage`` holds old states (a file opened directly)."""
    try:
        _layout(storage)
    except HistoryUnavailable:
        return False
    return True


def storage_end(storage):
    """The offset after the last transaction the storage has indexed."""
    return _layout(storage)[2][-1][1]


class _Reader(object):
    """Sequential reads through a big buffer (one pread per CHUNK)."""

    def __init__(self, file, start, end):
        self.file = file
        self.end = end
        self.base = start
        self.buffer = b''

    def get(self, position, n):
        if position + n > self.end:
            raise HistoryReadError('a transaction runs past offset %d'
                                   % self.end)
        local = position - self.base
        if local < 0 or local + n > len(self.buffer):
            self.buffer = self.file.pread(max(n, CHUNK), position)
            self.base = position
            local = 0
            if len(self.buffer) < n:
                raise HistoryReadError('the file ends at offset %d'
                                       % (position + len(self.buffer)))
        return self.buffer, local


def gen_transactions(storage, start=None):
    """Yield each transaction of the file (FileTransaction), oldest first.

    ``start``: a position returned earlier as the end of a scan
    (``storage_end``); only the transactions from there on are read.
    """
    kind, file, ranges = _layout(storage)
    for begin, end in ranges:
        if start is not None:
            if end <= start:
                continue
            begin = max(begin, start)
        if kind == 'shelf':
            for transaction in _gen_shelf(file, begin, end):
                yield transaction
        else:
            for transaction in _gen_dfs20(file, begin, end):
                yield transaction


def _gen_shelf(file, position, end):
    # int8 L, then disk-records: int8 R, 8-byte key, record (R - 8 bytes)
    reader = _Reader(file, position, end)
    while position < end:
        buffer, local = reader.get(position, 8)
        length = _int8.unpack_from(buffer, local)[0]
        stop = position + 8 + length
        if stop > end:
            raise HistoryReadError('the transaction at offset %d runs past '
                                   'offset %d' % (position, end))
        records = []
        pointer = position + 8
        while pointer < stop:
            buffer, local = reader.get(pointer, 16)
            size, key = struct.unpack_from('>QQ', buffer, local)
            if size < 20 or pointer + 8 + size > stop:
                raise HistoryReadError('a malformed record at offset %d'
                                       % pointer)
            records.append(RecordLocation(key, position, pointer + 16,
                                          size - 8))
            pointer += 8 + size
        if records:
            yield FileTransaction(position, 8 + length, records)
        position = stop


def _gen_dfs20(file, position, end):
    # (int4 r, r bytes of record)*, int4 0
    reader = _Reader(file, position, end)
    while position < end:
        records = []
        pointer = position
        while True:
            buffer, local = reader.get(pointer, 4)
            size = _int4.unpack_from(buffer, local)[0]
            if size == 0:
                pointer += 4
                break
            if size < 12 or pointer + 4 + size > end:
                raise HistoryReadError('a malformed record at offset %d'
                                       % pointer)
            buffer, local = reader.get(pointer + 4, 8)
            records.append(RecordLocation(
                _int8.unpack_from(buffer, local)[0], position, pointer + 4,
                size))
            pointer += 4 + size
        if records:
            yield FileTransaction(position, pointer - position, records)
        position = pointer


def read_record(storage, location):
    """The record bytes at ``location`` (a RecordLocation)."""
    _, file, _ = _layout(storage)
    record = file.pread(location.size, location.offset)
    if len(record) != location.size or _int8.unpack_from(
            record, 0)[0] != location.oid:
        raise HistoryReadError('no record of oid %d at offset %d (was the '
                               'file packed?)' % (location.oid,
                                                  location.offset))
    return record


# The scans below are gen_transactions' loops made tight for RecordHistory
# (a million records in about a second): reads of CHUNK bytes, no object
# per record.
_record_size_key = struct.Struct('>QQ').unpack_from
_record_size4_key = struct.Struct('>IQ').unpack_from


def _scan_shelf(file, position, end, into):
    oids, transactions = into.oids, into.transactions
    offsets, sizes = into.offsets, into.sizes
    buffer, base = b'', position
    while position < end:
        head = file.pread(8, position)
        if len(head) < 8:
            raise HistoryReadError('the file ends at offset %d' % position)
        stop = position + 8 + _int8.unpack(head)[0]
        if stop > end:
            raise HistoryReadError('the transaction at offset %d runs past '
                                   'offset %d' % (position, end))
        pointer = position + 8
        while pointer < stop:
            local = pointer - base
            if local + 16 > len(buffer):
                buffer = file.pread(min(CHUNK, stop - pointer), pointer)
                base, local = pointer, 0
            if local + 16 > len(buffer):
                raise HistoryReadError('a malformed record at offset %d'
                                       % pointer)
            size, key = _record_size_key(buffer, local)
            if size < 20 or pointer + 8 + size > stop:
                raise HistoryReadError('a malformed record at offset %d'
                                       % pointer)
            oids.append(key)
            transactions.append(position)
            offsets.append(pointer + 16)
            sizes.append(size - 8)
            pointer += 8 + size
        position = stop


def _scan_dfs20(file, position, end, into):
    # no transaction length: records are walked through CHUNK-sized reads
    oids, transactions = into.oids, into.transactions
    offsets, sizes = into.offsets, into.sizes
    buffer, base = b'', position
    transaction = pointer = position
    while pointer < end:
        local = pointer - base
        if local + 12 > len(buffer):
            buffer = file.pread(min(CHUNK, end - pointer), pointer)
            base, local = pointer, 0
            if len(buffer) < 4:
                raise HistoryReadError('the transaction at offset %d is '
                                       'cut short' % transaction)
        if local + 12 > len(buffer):  # the last 4 to 11 bytes
            size, key = _int4.unpack_from(buffer, local)[0], None
        else:
            size, key = _record_size4_key(buffer, local)
        if size == 0:
            pointer += 4
            transaction = pointer
            continue
        if size < 12 or pointer + 4 + size > end or key is None:
            raise HistoryReadError('a malformed record at offset %d'
                                   % pointer)
        oids.append(key)
        transactions.append(transaction)
        offsets.append(pointer + 4)
        sizes.append(size)
        pointer += 4 + size
    if transaction != end:
        raise HistoryReadError('the transaction at offset %d does not end '
                               'before offset %d' % (transaction, end))


class RecordHistory(object):
    """Where every state of every object lies in a file: built by one pass
    over its transactions, then brought up to date (only what was appended
    since) by ``update()``; ``versions(oid)`` is a search of an array.

    Memory: 24 bytes per stored state (three arrays of 8-byte words).
    """

    def __init__(self, storage):
        self.storage = storage
        self.file = _layout(storage)[1]
        self.oids = array('Q')
        self.transactions = array('Q')
        self.offsets = array('Q')
        self.sizes = array('Q')
        self.end = None
        self._oid_bytes = None
        self.update()

    def is_stale(self):
        """True when the storage now reads another file (after a pack)."""
        return self.storage.file is not self.file

    def update(self):
        """Read the transactions appended since the last pass."""
        if self.is_stale():
            raise HistoryReadError('the file was packed or replaced; build '
                                   'a new RecordHistory')
        end = storage_end(self.storage)
        if end == self.end:
            return 0
        kind, file, ranges = _layout(self.storage)
        before = len(self.oids)
        scan = _scan_shelf if kind == 'shelf' else _scan_dfs20
        try:
            for begin, stop in ranges:
                if self.end is not None:
                    if stop <= self.end:
                        continue
                    begin = max(begin, self.end)
                scan(file, begin, stop, self)
        except BaseException:
            for column in (self.oids, self.transactions, self.offsets,
                           self.sizes):
                del column[before:]  # as before the call
            raise
        count = len(self.oids) - before
        self.end = end
        self._oid_bytes = None
        return count

    def __len__(self):
        return len(self.oids)

    def versions(self, oid):
        """Every stored state of ``oid`` (a number or 8 bytes), oldest
        first, as RecordLocation."""
        if isinstance(oid, bytes):
            oid = str_to_int8(oid)
        if self._oid_bytes is None:
            self._oid_bytes = self.oids.tobytes()
        needle = array('Q', [oid]).tobytes()
        haystack = self._oid_bytes
        found = []
        position = haystack.find(needle)
        while position != -1:
            if position % 8 == 0:
                j = position // 8
                found.append(RecordLocation(oid, self.transactions[j],
                                            self.offsets[j], self.sizes[j]))
                position = haystack.find(needle, position + 8)
            else:
                position = haystack.find(needle, position + 1)
        return found
