"""Object records: how one persistent object is laid out in every storage.

A record is ``oid (8) | int4 N | data (N) | refs (8*k)``.  ``data`` is
the class pickle followed by the state pickle (zlib-compressed when it
starts with 0x78); ``refs`` are the oids the state refers to, sorted and
without duplicates.  See docs/formats.md and the spec, formats.md §1.
"""

import struct

from durus.error import ProtocolError

PICKLE_PROTOCOL = 2
WRITE_COMPRESSED_STATE_PICKLES = True
COMPRESSED_START_BYTE = 0x78

_int4 = struct.Struct('>I')


class RecordError(ProtocolError, ValueError):
    """A record's bytes do not follow the record layout."""


def pack_record(oid, data, refs):
    """Join an oid, the data field and the refs trailer into a record."""
    return b''.join((oid, _int4.pack(len(data)), data, refs))


def unpack_record(record):
    """Split a record into ``(oid, data, refs)``."""
    if len(record) < 12:
        raise RecordError('record too short: %d bytes' % len(record))
    data_end = 12 + _int4.unpack_from(record, 8)[0]
    if data_end > len(record) or (len(record) - data_end) % 8:
        raise RecordError('record of %d bytes has a bad data length %d'
                          % (len(record), data_end - 12))
    return record[:8], record[12:data_end], record[data_end:]


def split_oids(s):
    """The 8-byte oids concatenated in ``s``."""
    if len(s) % 8:
        raise RecordError('oid list of %d bytes is not a multiple of 8'
                          % len(s))
    return [s[i:i + 8] for i in range(0, len(s), 8)]


def extract_class_name(record):
    """The class name (without module) of a record, as bytes; b'?' if unknown.

    Reads the second newline-separated field of the data, which is the
    class name when the class was pickled with the GLOBAL opcode.
    """
    try:
        data = unpack_record(record)[1]
        return data.split(b'\n', 2)[1]
    except (RecordError, IndexError):
        return b'?'


def extract_class_path(data):
    """``(module, name)`` of the GLOBAL class pickle at the start of ``data``.

    Returns None when the class pickle is not in the GLOBAL form.
    """
    # PROTO 2 (0x80 0x02) then GLOBAL 'c' module '\n' name '\n'.
    start = 3 if data[:3] == b'\x80\x02c' else (1 if data[:1] == b'c' else -1)
    if start < 0:
        return None
    first = data.find(b'\n', start)
    second = data.find(b'\n', first + 1)
    if first < 0 or second < 0:
        return None
    return (data[start:first].decode('latin-1'),
            data[first + 1:second].decode('latin-1'))
