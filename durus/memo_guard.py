"""Refuse pickles whose memo indices would make the unpickler allocate
gigabytes.

Python's unpickler keeps its memo as an array indexed by the number a
``LONG_BINPUT`` (or a protocol-0 ``PUT``) names, and grows that array to
twice the index, zero-filled, at once: an 8-byte record state such as
``}r\\xff\\xff\\xff\\x7f`` asks for 32 GiB.  Where the system overcommits
memory the zero-filling then gets the loading process killed, with no
error to show for it.  A pickler numbers its memo from 0, one entry per
stored value, so no sound pickle names an index beyond its own length;
this module finds one that does before the unpickler sees it.

(A length-prefixed argument longer than the pickle also makes the
unpickler allocate that length before finding the pickle cut short, but
it never writes to that memory: the allocation fails with MemoryError or
stays untouched, so it is not guarded here.)

The compiled state decoder (csrc/decode.c) never grows its memo past a
small limit: a state it leaves to the Python unpickler comes through
here, as do class pickles.
"""

from pickle import UnpicklingError

from durus import _accel

from durus.record_check import (
    _LENGTH_SIZES, _LINE, _PAIR, _TABLE, MEMO_SLACK)

_LONG_BINPUT, _PUT = 0x72, 0x70


class MemoBombError(UnpicklingError):
    """A pickle names a memo index far beyond its length."""


def _argument_sizes():
    """opcode -> fixed argument size, or the length/line kind."""
    sizes = {}
    for code, (_name, argument, _pops, _to_mark, _pushes) in _TABLE.items():
        sizes[code] = 0 if argument is None else argument
    return sizes


_SIZES = _argument_sizes()


def _python_memo_bomb(data):
    """The memo index far beyond its length that ``data`` names, or None.
    Stops quietly at anything else it cannot read: the unpickler reports
    that itself.  (Its compiled twin: csrc/record_check.c.)"""
    if b'r' not in data and b'p' not in data:
        return None     # no LONG_BINPUT or PUT byte at all
    limit = len(data) + MEMO_SLACK
    size = len(data)
    sizes = _SIZES
    position = 0
    while position < size:
        code = data[position]
        argument = sizes.get(code)
        at = position + 1
        if argument is None or code == 0x2e:    # unknown opcode, or STOP
            return None
        if type(argument) is int:
            if code == _LONG_BINPUT and at + 4 <= size:
                index = int.from_bytes(data[at:at + 4], 'little')
                if index > limit:
                    return index
            position = at + argument
        elif argument == _LINE or argument == _PAIR:
            end = data.find(b'\n', at)
            if end < 0:
                return None
            if code == _PUT:
                try:
                    # (the unpickler reads the line as a C string: to a NUL)
                    index = int(data[at:end].split(b'\0', 1)[0])
                except ValueError:
                    return None
                if index > limit:
                    return index
            position = end + 1
            if argument == _PAIR:
                end = data.find(b'\n', position)
                if end < 0:
                    return None
                position = end + 1
        else:
            width, signed = _LENGTH_SIZES[argument]
            length = int.from_bytes(data[at:at + width], 'little',
                                    signed=signed)
            if length < 0:
                return None
            position = at + width + length
    return None


memo_bomb = _accel.use('memo_bomb', _python_memo_bomb)


def check_memo(data, oid=None):
    """Raise MemoBombError if ``data`` would make the unpickler allocate
    absurdly."""
    index = memo_bomb(data)
    if index is not None:
        where = '' if oid is None else ' in the record of oid %s' % (
            int.from_bytes(oid, 'big') if isinstance(oid, bytes) else oid)
        raise MemoBombError(
            'a pickle%s names memo index %d, far beyond its %d bytes: the '
            'record is damaged or hostile, and was not unpickled (the '
            'unpickler would have allocated memory for that many entries); '
            'durus check names such records' % (where, index, len(data)))
