"""The record: one persistent object's bytes, the same in every storage
and on the wire (spec formats.md §1).  This module is the one place that
knows their layout::

    oid (8) | int4 N (big-endian) | data (N) | refs (8*k)

``data`` is the class pickle followed by the state pickle (zlib-compressed
when it starts with 0x78); ``refs`` are the oids the state refers to,
sorted, without duplicates or the record's own oid.  Durus writes the
class pickle as protocol 2, GLOBAL ``module\\nname\\n``, BINPUT 0, STOP::

    \\x80\\x02 c <module> \\n <name> \\n q \\x00 .

so a record's class can be read from its first bytes without unpickling
(census, find, the reader's class cache).  Storages use only this module
(never pickle) to read records: reachability (pack, traversal) goes
through the refs trailer.

Functions that take a whole record validate what they read and raise
``RecordError`` (also a ProtocolError and a ValueError); the class-name
readers answer None or ``b'?'`` instead, since they serve scans that must
go on past a damaged record.
"""

import struct

from durus.error import ProtocolError

OID_SIZE = 8
HEADER_SIZE = 12          # oid, then the int4 length of data
DATA_START = HEADER_SIZE

_int4 = struct.Struct('>I')
_data_length = _int4.unpack_from
_PROTO2_GLOBAL = b'\x80\x02c'
# What ends a class pickle in Durus's form (after the name's newline).
CLASS_PICKLE_TAIL = b'q\x00.'
_END_MARK = b'\n' + CLASS_PICKLE_TAIL


class RecordError(ProtocolError, ValueError):
    """A record's bytes do not follow the record layout."""


# -- the layout ---------------------------------------------------------------

def pack_record(oid, data, refs):
    """Join an oid, the data field and the refs trailer into a record."""
    return b''.join((oid, _int4.pack(len(data)), data, refs))


def record_problem(record, oid=None):
    """Why ``record`` is not a well-formed record (of ``oid``), or None."""
    size = len(record)
    if size == 0:
        return 'empty record'
    if size < HEADER_SIZE:
        return ('record of %d bytes is shorter than its %d-byte header'
                % (size, HEADER_SIZE))
    if oid is not None and record[:OID_SIZE] != oid:
        return 'record starts with another oid'
    data_end = HEADER_SIZE + _data_length(record, OID_SIZE)[0]
    if data_end > size or (size - data_end) % OID_SIZE:
        return ('record of %d bytes has a bad data length %d'
                % (size, data_end - HEADER_SIZE))
    return None


def is_well_formed(record):
    """Cheaply: is ``record`` laid out as oid, data length, data, refs?"""
    if len(record) < HEADER_SIZE:
        return False
    rest = len(record) - HEADER_SIZE - _data_length(record, OID_SIZE)[0]
    return rest >= 0 and not rest & 7


def unpack_record(record):
    """Split a record into ``(oid, data, refs)``; RecordError if malformed."""
    if len(record) < HEADER_SIZE:
        raise RecordError(record_problem(record))
    data_end = HEADER_SIZE + _data_length(record, OID_SIZE)[0]
    if data_end > len(record) or (len(record) - data_end) % OID_SIZE:
        raise RecordError(record_problem(record))
    return record[:OID_SIZE], record[HEADER_SIZE:data_end], record[data_end:]


def record_data(record):
    """The data field of a record (the per-load path: only the data length
    is checked; the storage checked the rest when it stored the record)."""
    if len(record) < HEADER_SIZE:
        raise RecordError(record_problem(record))
    data_end = HEADER_SIZE + _data_length(record, OID_SIZE)[0]
    if data_end > len(record):
        raise RecordError(record_problem(record))
    return record[HEADER_SIZE:data_end]


def refs_start(record):
    """Offset of the refs trailer in ``record`` (RecordError if malformed)."""
    if len(record) < HEADER_SIZE:
        raise RecordError(record_problem(record))
    start = HEADER_SIZE + _data_length(record, OID_SIZE)[0]
    if start > len(record) or (len(record) - start) % OID_SIZE:
        raise RecordError(record_problem(record))
    return start


def record_refs(record):
    """The oids in a record's refs trailer, in their order."""
    start = refs_start(record)
    return [record[i:i + OID_SIZE] for i in range(start, len(record),
                                                  OID_SIZE)]


def refers_to(record, oid):
    """Whether ``oid`` is in the refs trailer of ``record``."""
    start = refs_start(record)
    position = record.find(oid, start)
    while position >= 0:
        if (position - start) % OID_SIZE == 0:
            return True
        position = record.find(oid, position + 1)
    return False


class OidListError(RecordError, AssertionError):
    """A list of references is not a whole number of 8-byte oids (an
    assert in 4.3)."""


def split_oids(s):
    """The 8-byte oids concatenated in ``s``."""
    if len(s) % OID_SIZE:
        raise OidListError('oid list of %d bytes is not a multiple of 8'
                          % len(s))
    return [s[i:i + OID_SIZE] for i in range(0, len(s), OID_SIZE)]


# -- the class, from the first bytes --------------------------------------------

def _class_key(buffer, start, end):
    """``module\\nname`` of the GLOBAL at ``start`` (before ``end``), or None.

    The one parser of class names out of record bytes.
    """
    if buffer.startswith(_PROTO2_GLOBAL, start):
        start += 3
    elif buffer.startswith(b'c', start):
        start += 1   # GLOBAL without PROTO (protocols 0 and 1)
    else:
        return None
    first = buffer.find(b'\n', start, end)
    if first < 0:
        return None
    second = buffer.find(b'\n', first + 1, end)
    if second < 0:
        return None
    return buffer[start:second]


def class_key(record):
    """``b'module\\nname'`` of a record's class, read from its first bytes;
    None when the class pickle is not a GLOBAL or the record is malformed.
    Equal keys mean the same class (a cheap key for census and find)."""
    if len(record) < HEADER_SIZE:
        return None
    end = HEADER_SIZE + _data_length(record, OID_SIZE)[0]
    return _class_key(record, HEADER_SIZE, end)


def _path(key):
    if key is None:
        return None
    module, _, name = key.partition(b'\n')
    return module.decode('latin-1'), name.decode('latin-1')


def class_path(record):
    """``(module, name)`` of a record's class as text, or None (see
    ``class_key``)."""
    return _path(class_key(record))


def data_class_path(data):
    """``(module, name)`` of the class pickle at the start of a record's
    data field, or None when it is not in the GLOBAL form."""
    return _path(_class_key(data, 0, len(data)))


def class_name(record):
    """The class name (without module) of a record, as bytes; ``b'?'``
    when it cannot be read from the first bytes."""
    key = class_key(record)
    return b'?' if key is None else key.partition(b'\n')[2]


def class_pickle_end(data):
    """Where the class pickle of record data probably ends: just after the
    first ``b'\\nq\\x00.'`` at or after offset 3, or -1.

    A candidate only (a module or class name could contain those bytes):
    trust it for a prefix already known to be a class pickle.  The
    compiled reader has the same function (durus/_accel.py).
    """
    if len(data) <= 7:
        return -1
    found = data.find(_END_MARK, 3)
    return found + 4 if found >= 0 else -1


def class_pickle_length(data):
    """The length of the class pickle at the start of record data when it
    is exactly in Durus's form (PROTO 2, GLOBAL, BINPUT 0, STOP), else -1
    (the reader then unpickles to find out)."""
    if not data.startswith(_PROTO2_GLOBAL):
        return -1
    first = data.find(b'\n', 3)
    if first < 0:
        return -1
    second = data.find(b'\n', first + 1)
    if second > 0 and data.startswith(CLASS_PICKLE_TAIL, second + 1):
        return second + 4
    return -1
