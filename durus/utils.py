"""Small helpers shared by the storages and used by applications.

Integers on disk and on the wire are unsigned and big-endian: int4 is 4
bytes, int8 is 8 bytes (an oid is an int8).  ``read`` and ``write`` work
on files and on sockets alike (anything with ``recv_into``/``recv`` or
``read``; ``sendall``/``send`` or ``write``).
"""

import pickle
import struct
import sys
from builtins import bytearray, bytes
from io import BytesIO
from pickle import Pickler, Unpickler, dumps, loads
from struct import pack, unpack

from durus.error import ShortRead, bad_oid_error

__all__ = [
    'int8_to_str', 'str_to_int8', 'int4_to_str', 'str_to_int4', 'as_bytes',
    'join_bytes', 'empty_byte_string', 'byte_string', 'iteritems', 'xrange',
    'next', 'BytesIO', 'dumps', 'loads', 'Pickler', 'Unpickler', 'ShortRead',
    'read', 'write', 'write_all', 'read_int4', 'read_int8', 'write_int4',
    'write_int8', 'read_int4_str', 'read_int8_str', 'write_int4_str',
    'write_int8_str', 'pickle', 'TRACE', 'all_bytes', 'pack', 'unpack',
    'bytearray', 'bytes', 'sys',
]

# When true, read() and write() print what they move to sys.stdout (a
# debugging switch of Durus 4.3's, read at each call).
TRACE = False

_int4 = struct.Struct('>I')
_int8 = struct.Struct('>Q')

empty_byte_string = b''
byte_string = (bytearray, bytes)
xrange = range
next = next


def int8_to_str(n):
    """The 8-byte big-endian form of ``n`` (an oid from its number)."""
    return _int8.pack(n)


def str_to_int8(s):
    """The number held in 8 big-endian bytes."""
    return _int8.unpack(s)[0]


def oid_number(oid):
    """The number of ``oid``; ``bad_oid_error`` (a TypeError or
    ValueError naming it) when it is not 8 bytes."""
    try:
        return _int8.unpack(oid)[0]
    except (struct.error, TypeError):
        raise bad_oid_error(oid) from None


def check_oid(oid):
    """Raise ``bad_oid_error`` unless ``oid`` is 8 bytes."""
    if type(oid) is not bytes or len(oid) != 8:
        raise bad_oid_error(oid)


def int4_to_str(v):
    return _int4.pack(v)


def str_to_int4(v):
    return _int4.unpack(v)[0]


def as_bytes(s):
    """``str`` as latin-1 bytes; ``bytes`` and ``bytearray`` are returned
    unchanged, other buffers copied into ``bytes``."""
    if isinstance(s, byte_string):
        return s
    if isinstance(s, str):
        return s.encode('latin-1')
    return bytes(s)


join_bytes = empty_byte_string.join


def iteritems(x):
    """``x.items()`` (Python 2's ``iteritems`` spelled for Python 3)."""
    return x.items()


def _receive(source, n):
    if hasattr(source, 'recv_into'):
        buffer = bytearray(n)
        view = memoryview(buffer)
        got = 0
        while got < n:
            count = source.recv_into(view[got:], n - got)
            if not count:
                break
            got += count
        return bytes(buffer[:got])
    if hasattr(source, 'read'):
        return source.read(n)
    parts = []
    got = 0
    while got < n:
        part = source.recv(min(n - got, 1 << 20))
        if not part:
            break
        parts.append(part[:n - got])
        got += len(parts[-1])
    return b''.join(parts)


def read(f, n):
    """Exactly ``n`` bytes from a file or socket, else ``ShortRead``."""
    data = _receive(f, n)
    if TRACE:
        sys.stdout.write('read(%r, %r) -> %r\n' % (f, n, data))
    if len(data) != n:
        raise ShortRead('wanted %d bytes, got %d' % (n, len(data)))
    return data


# A socket whose send() accepts nothing this many times in a row is stuck.
_SEND_RETRIES = 10


def _send(f, data):
    view = memoryview(data)
    refusals = 0
    while view:
        count = f.send(view)
        if count:
            view = view[count:]
            refusals = 0
        else:
            refusals += 1
            if refusals > _SEND_RETRIES:
                raise OSError('send() accepted no bytes %d times in a row; '
                              '%d bytes were not sent'
                              % (refusals, len(view)))


def write(f, s):
    """All of ``s`` (``str`` is sent as latin-1) to a file or socket."""
    s = as_bytes(s)
    if TRACE:
        sys.stdout.write('write(%r, %r)\n' % (f, s))
    if hasattr(f, 'sendall'):
        f.sendall(s)
    elif hasattr(f, 'write'):
        f.write(s)
    else:
        _send(f, s)


def write_all(f, *args):
    write(f, b''.join(as_bytes(part) for part in args))


def read_int4(f):
    return _int4.unpack(read(f, 4))[0]


def read_int8(f):
    return _int8.unpack(read(f, 8))[0]


def write_int4(f, n):
    write(f, _int4.pack(n))


def write_int8(f, n):
    write(f, _int8.pack(n))


def read_int4_str(f):
    """A byte string preceded by its int4 length."""
    return read(f, read_int4(f))


def read_int8_str(f):
    """A byte string preceded by its int8 length."""
    return read(f, read_int8(f))


def write_int4_str(f, s):
    s = as_bytes(s)
    write(f, _int4.pack(len(s)) + s)


def write_int8_str(f, s):
    s = as_bytes(s)
    write(f, _int8.pack(len(s)) + s)

# Durus 4.3's arrays kept in a file (SHELF-1's offset map is an IntArray).
from durus.disk_arrays import (  # noqa: E402
    ALL_BYTES as all_bytes, BitArray, Byte, ByteArray, IntArray, IntSet,
    WordArray)

__all__ += ['ByteArray', 'Byte', 'BitArray', 'WordArray', 'IntArray',
            'IntSet']


def lazy_names(module_name, names):
    """``(__getattr__, __dir__)`` for a module that offers ``names``
    (``{name: module it comes from}``) but imports each only when first
    asked for: names Durus 4.3's modules re-exported, kept out of start-up
    (durus.logger imports logging, the server imports sockets...)."""
    def __getattr__(name):
        source = names.get(name)
        if source is None:
            raise AttributeError('module %r has no attribute %r'
                                 % (module_name, name))
        return getattr(__import__(source, {}, {}, [name]), name)

    def __dir__():
        return sorted(list(sys.modules[module_name].__dict__) + list(names))
    return __getattr__, __dir__
