"""A deep check of object records that never unpickles them.

Opening a file checks its last transaction record by record (a power
cut can leave it with its length written but its bytes zeroed or
garbage from any byte on).  ``record_problem(record)`` says what is
wrong with one record (spec formats.md §1), or returns None:

* the class pickle and the state pickle must each parse to their STOP
  (the state ends exactly there), walking the opcodes with a model of
  the unpickler's stack and memo: no code runs and nothing is imported;
* a state starting with 0x78 must be one complete zlib stream (Durus
  would fall back to the raw bytes, which can never unpickle);
* when the state names persistent references, the refs trailer must
  list exactly those oids (minus the record's own), each once.  (A
  state without references accepts any trailer: storage-level callers
  may write such records.)
"""

import struct
import zlib

from durus import _accel

_ANY = object()   # a stack value the check does not follow
_MARK = object()
_ENCODE = ('_codecs', 'encode')
_int4 = struct.Struct('>I')


class _Bad(Exception):
    """The pickle does not parse: ``what`` went wrong with opcode
    ``name`` at byte ``at`` of the pickle (not of the file)."""

    def __str__(self):
        what, name, at = (self.args + (None, None))[:3]
        if name is None:
            return what
        return '%s at pickle byte %d %s' % (name, at, what)


# Memo indices allowed beyond a pickle's length (durus.memo_guard).
MEMO_SLACK = 1024

# How each opcode's argument is laid out (an int >= 0: that many bytes).
_HIGHEST_PROTOCOL = 5  # pickle.HIGHEST_PROTOCOL (checked by the tests)
_LINE = 'line'        # up to a newline
_PAIR = 'pair'        # two lines (GLOBAL, INST)
_LEN1 = 'len1'        # a 1-byte length, then that many bytes
_LEN4 = 'len4'        # a 4-byte signed little-endian length, then bytes
_LEN4U = 'len4u'      # the same, unsigned
_LEN8 = 'len8'        # an 8-byte unsigned length, then bytes

# opcode byte -> (name, argument, items popped, pops to a MARK first,
# items pushed); the facts of pickletools.opcodes (the test suite checks
# them against it), written out so that opening a file does not import
# pickletools.
_TABLE = {
    0x28: ('MARK', None, 0, False, 1),
    0x29: ('EMPTY_TUPLE', None, 0, False, 1),
    0x2e: ('STOP', None, 1, False, 0),
    0x30: ('POP', None, 1, False, 0),
    0x31: ('POP_MARK', None, 0, True, 0),
    0x32: ('DUP', None, 1, False, 2),
    0x42: ('BINBYTES', _LEN4U, 0, False, 1),
    0x43: ('SHORT_BINBYTES', _LEN1, 0, False, 1),
    0x46: ('FLOAT', _LINE, 0, False, 1),
    0x47: ('BINFLOAT', 8, 0, False, 1),
    0x49: ('INT', _LINE, 0, False, 1),
    0x4a: ('BININT', 4, 0, False, 1),
    0x4b: ('BININT1', 1, 0, False, 1),
    0x4c: ('LONG', _LINE, 0, False, 1),
    0x4d: ('BININT2', 2, 0, False, 1),
    0x4e: ('NONE', None, 0, False, 1),
    0x50: ('PERSID', _LINE, 0, False, 1),
    0x51: ('BINPERSID', None, 1, False, 1),
    0x52: ('REDUCE', None, 2, False, 1),
    0x53: ('STRING', _LINE, 0, False, 1),
    0x54: ('BINSTRING', _LEN4, 0, False, 1),
    0x55: ('SHORT_BINSTRING', _LEN1, 0, False, 1),
    0x56: ('UNICODE', _LINE, 0, False, 1),
    0x58: ('BINUNICODE', _LEN4U, 0, False, 1),
    0x5d: ('EMPTY_LIST', None, 0, False, 1),
    0x61: ('APPEND', None, 2, False, 1),
    0x62: ('BUILD', None, 2, False, 1),
    0x63: ('GLOBAL', _PAIR, 0, False, 1),
    0x64: ('DICT', None, 0, True, 1),
    0x65: ('APPENDS', None, 1, True, 1),
    0x67: ('GET', _LINE, 0, False, 1),
    0x68: ('BINGET', 1, 0, False, 1),
    0x69: ('INST', _PAIR, 0, True, 1),
    0x6a: ('LONG_BINGET', 4, 0, False, 1),
    0x6c: ('LIST', None, 0, True, 1),
    0x6f: ('OBJ', None, 0, True, 1),
    0x70: ('PUT', _LINE, 0, False, 0),
    0x71: ('BINPUT', 1, 0, False, 0),
    0x72: ('LONG_BINPUT', 4, 0, False, 0),
    0x73: ('SETITEM', None, 3, False, 1),
    0x74: ('TUPLE', None, 0, True, 1),
    0x75: ('SETITEMS', None, 1, True, 1),
    0x7d: ('EMPTY_DICT', None, 0, False, 1),
    0x80: ('PROTO', 1, 0, False, 0),
    0x81: ('NEWOBJ', None, 2, False, 1),
    0x82: ('EXT1', 1, 0, False, 1),
    0x83: ('EXT2', 2, 0, False, 1),
    0x84: ('EXT4', 4, 0, False, 1),
    0x85: ('TUPLE1', None, 1, False, 1),
    0x86: ('TUPLE2', None, 2, False, 1),
    0x87: ('TUPLE3', None, 3, False, 1),
    0x88: ('NEWTRUE', None, 0, False, 1),
    0x89: ('NEWFALSE', None, 0, False, 1),
    0x8a: ('LONG1', _LEN1, 0, False, 1),
    0x8b: ('LONG4', _LEN4, 0, False, 1),
    0x8c: ('SHORT_BINUNICODE', _LEN1, 0, False, 1),
    0x8d: ('BINUNICODE8', _LEN8, 0, False, 1),
    0x8e: ('BINBYTES8', _LEN8, 0, False, 1),
    0x8f: ('EMPTY_SET', None, 0, False, 1),
    0x90: ('ADDITEMS', None, 1, True, 1),
    0x91: ('FROZENSET', None, 0, True, 1),
    0x92: ('NEWOBJ_EX', None, 3, False, 1),
    0x93: ('STACK_GLOBAL', None, 2, False, 1),
    0x94: ('MEMOIZE', None, 1, False, 1),
    0x95: ('FRAME', 8, 0, False, 0),
    0x96: ('BYTEARRAY8', _LEN8, 0, False, 1),
    0x97: ('NEXT_BUFFER', None, 0, False, 1),
    0x98: ('READONLY_BUFFER', None, 1, False, 1),
}
_FIXED_VALUES = {1: lambda data, at: data[at],
                 2: lambda data, at: data[at] | data[at + 1] << 8,
                 4: lambda data, at: int.from_bytes(data[at:at + 4], 'little')}
_LENGTH_SIZES = {_LEN1: (1, False), _LEN4: (4, True), _LEN4U: (4, False),
                 _LEN8: (8, False)}
_TEXT = frozenset(('SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8'))
_BYTES = frozenset(('SHORT_BINSTRING', 'BINSTRING', 'SHORT_BINBYTES',
                    'BINBYTES', 'BINBYTES8'))
# Opcodes whose pushed value the check follows (to read pids).
_VALUE_PUSHERS = _TEXT | _BYTES | frozenset((
    'UNICODE', 'GLOBAL', 'STACK_GLOBAL', 'REDUCE', 'TUPLE', 'TUPLE1',
    'TUPLE2', 'TUPLE3', 'EMPTY_TUPLE'))
_NUMBER_LINES = {'INT': int, 'LONG': lambda text: int(text.rstrip('L')),
                 'FLOAT': float}


def walk_pickle(data, position, memo):
    """Walk one pickle in ``data`` from ``position`` to its STOP.

    ``memo`` (a dict, updated) holds the memo the pickle starts with.
    Returns ``(end, pids)``: the offset after STOP and the oids of the
    persistent references met (None if one of them is not an
    ``(oid, class)`` pair this check can read).  Raises ``_Bad``.
    """
    stack = []
    marks = []
    pids = []
    size = len(data)
    table = _TABLE
    while True:
        if position >= size:
            raise _Bad('it ends before its STOP opcode')
        entry = table.get(data[position])
        if entry is None:
            raise _Bad('is no opcode', 'byte 0x%02x' % data[position],
                       position)
        name, arg, pops, to_mark, pushes = entry
        at = position + 1
        value = _ANY
        if arg is None:
            position = at
        elif type(arg) is int and arg >= 0:
            position = at + arg
            if position > size:
                raise _Bad('is cut short', name, at - 1)
            if arg in _FIXED_VALUES and name in (
                    'BINPUT', 'LONG_BINPUT', 'BINGET', 'LONG_BINGET',
                    'PROTO'):
                value = _FIXED_VALUES[arg](data, at)
        elif arg in _LENGTH_SIZES:
            width, signed = _LENGTH_SIZES[arg]
            if at + width > size:
                raise _Bad('is cut short', name, at - 1)
            length = int.from_bytes(data[at:at + width], 'little',
                                    signed=signed)
            start = at + width
            position = start + length
            if length < 0 or position > size:
                raise _Bad('is cut short', name, at - 1)
            if name in _TEXT:
                try:
                    value = data[start:position].decode('utf-8',
                                                        'surrogatepass')
                except UnicodeDecodeError:
                    raise _Bad('is not UTF-8', name, at - 1)
            elif name in _BYTES and length <= 64:
                value = bytes(data[start:position])
        else:  # one line, or two for GLOBAL and INST
            end = data.find(b'\n', at)
            if end < 0:
                raise _Bad('has no line end', name, at - 1)
            line = data[at:end]
            position = end + 1
            if arg == _PAIR:
                end = data.find(b'\n', position)
                if end < 0:
                    raise _Bad('has no second line', name, at - 1)
                value = (line.decode('utf-8', 'replace'),
                         data[position:end].decode('utf-8', 'replace'))
                position = end + 1
            elif name in _NUMBER_LINES or name in ('GET', 'PUT'):
                try:
                    text = line.decode('ascii')
                    value = _NUMBER_LINES.get(name, int)(text)
                except (UnicodeDecodeError, ValueError):
                    raise _Bad('has a bad number', name, at - 1) from None
            elif name == 'UNICODE':
                try:
                    value = line.decode('raw-unicode-escape')
                except UnicodeDecodeError:
                    raise _Bad('does not decode', 'UNICODE', at - 1)
        # The stack, as the unpickler would see it.
        if name == 'MARK':
            marks.append(len(stack))
            continue
        if to_mark:
            if not marks:
                raise _Bad('has no MARK', name, at - 1)
            cut = marks.pop()
            items = stack[cut:]
            del stack[cut:]
            if name == 'OBJ' and not items:
                raise _Bad('has no class', 'OBJ', at - 1)
            if name == 'TUPLE':
                value = tuple(items)
        if len(stack) - (marks[-1] if marks else 0) < pops:
            raise _Bad('finds too few items on the stack', name, at - 1)
        if name in ('BINPUT', 'LONG_BINPUT', 'PUT', 'MEMOIZE'):
            if not stack:
                raise _Bad('with an empty stack', name, at - 1)
            if name in ('LONG_BINPUT', 'PUT') and value > size + MEMO_SLACK:
                raise _Bad('names memo index %d, far beyond the pickle\'s '
                           'length (the unpickler would allocate for it)'
                           % value, name, at - 1)
            memo[len(memo) if name == 'MEMOIZE' else value] = stack[-1]
            continue
        if name in ('BINGET', 'LONG_BINGET', 'GET'):
            if value not in memo:
                raise _Bad('reads memo %r, never written' % (value,), name,
                           at - 1)
            stack.append(memo[value])
            continue
        if name == 'STOP':
            if len(stack) != 1 or marks:
                raise _Bad('leaves %d items on the stack' % len(stack),
                           name, at - 1)
            return position, pids
        if name == 'PROTO':
            if value > _HIGHEST_PROTOCOL:
                raise _Bad('unknown protocol %d' % value)
            continue
        if name in ('NEXT_BUFFER', 'READONLY_BUFFER', 'PERSID'):
            if name != 'PERSID':
                raise _Bad('needs out-of-band buffers', name, at - 1)
            if pids is not None:
                pids = None  # a text pid: not one this check reads
        popped = stack[len(stack) - pops:] if pops else ()
        if pops:
            del stack[len(stack) - pops:]
        if name in ('TUPLE1', 'TUPLE2', 'TUPLE3'):
            value = tuple(popped)
        elif name == 'EMPTY_TUPLE':
            value = ()
        elif name == 'STACK_GLOBAL':
            value = tuple(popped) if all(
                isinstance(item, str) for item in popped) else _ANY
        elif name == 'REDUCE':
            value = _reduce(popped[0], popped[1])
        elif name == 'BINPERSID':
            pid = popped[0]
            if (pids is not None and type(pid) is tuple and len(pid) == 2
                    and isinstance(pid[0], bytes) and len(pid[0]) == 8):
                pids.append(pid[0])
            else:
                pids = None
        elif name == 'DUP':
            stack.extend((popped[0], popped[0]))
            continue
        if pushes:
            stack.append(value if name in _VALUE_PUSHERS else _ANY)


def _reduce(function, args):
    """What ``_codecs.encode(text, 'latin1')`` (a pickled bytes) gives."""
    if (function == _ENCODE and type(args) is tuple and len(args) == 2
            and isinstance(args[0], str)
            and args[1] in ('latin1', 'latin-1')):
        try:
            return args[0].encode('latin-1')
        except UnicodeEncodeError:
            return _ANY
    return _ANY


def record_problem(record):
    """Why ``record`` (oid, int4 N, data, refs) is damaged, or None."""
    if len(record) < 12:
        return 'a record of %d bytes is too short' % len(record)
    data_end = 12 + _int4.unpack_from(record, 8)[0]
    if data_end > len(record) or (len(record) - data_end) & 7:
        return 'a bad data length'
    oid = record[:8]
    data = record[12:data_end]
    memo = {}
    try:
        class_end, _ = walk_pickle(data, 0, memo)
    except _Bad as error:
        return 'its class pickle does not parse (%s)' % error
    state = data[class_end:]
    if state[:1] == b'\x78':
        inflater = zlib.decompressobj()
        try:
            state = inflater.decompress(state)
        except zlib.error as error:
            return 'its compressed state is damaged (zlib: %s)' % error
        if not inflater.eof or inflater.unused_data:
            return 'its compressed state (zlib stream) is %s' % (
                'cut short' if not inflater.eof
                else 'followed by stray bytes')
    try:
        state_end, pids = walk_pickle(state, 0, memo)
    except _Bad as error:
        return 'its state pickle does not parse (%s)' % error
    if state_end != len(state):
        return 'its state pickle is followed by %d stray bytes' % (
            len(state) - state_end)
    if pids:
        refs = record[data_end:]
        listed = set(refs[i:i + 8] for i in range(0, len(refs), 8))
        expected = set(pids)
        expected.discard(oid)
        if listed != expected or len(listed) * 8 != len(refs):
            return ('its reference list does not match the references in '
                    'its state')
    return None


_python_record_problem = record_problem  # the reference, and the messages


def _python_record_fine(record):
    """True when ``record`` passes the check, else False.  Its compiled
    twin (csrc/record_check.c) gives the same verdicts, or None for a
    record it leaves to this walk."""
    return _python_record_problem(record) is None


_record_fine = _accel.use('record_fine', _python_record_fine)

if _record_fine is not _python_record_fine:
    def record_problem(record):
        """Why ``record`` (oid, int4 N, data, refs) is damaged, or None.

        The compiled walk settles a sound record alone; anything it does
        not call fine gets the verdict and the message of the Python walk.
        """
        if _record_fine(record):
            return None
        return _python_record_problem(record)


def transaction_problem(read_record, offsets):
    """``(offset, reason)`` of the newest damaged record, or None.

    ``offsets`` are the file offsets of one transaction's records, in
    file order; ``read_record(offset)`` returns the §1 record there.
    Every record is checked, newest first: damage from a power cut or a
    bad copy runs from some byte to the end of the transaction.
    """
    fine = _record_fine
    for offset in reversed(offsets):
        record = read_record(offset)
        if fine(record):
            continue  # one call per sound record
        problem = _python_record_problem(record)
        if problem is not None:
            return offset, problem
    return None
