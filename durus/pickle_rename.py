"""Rename a class inside pickle bytes, without unpickling them.

A pickle names a class by ``GLOBAL 'module\\nname'`` (protocols 0-3, what
Durus writes), ``INST`` (protocol 0) or ``STACK_GLOBAL`` after two string
pushes (protocol 4+).  ``rename_in_pickle`` walks the opcodes
(``pickletools.genops``: a parser, nothing is imported or run) and
rewrites the ones that name the old class, copying every other byte as
it is.  A ``STACK_GLOBAL`` naming it becomes ``POP POP GLOBAL new``: its
two strings may be memoized and used again elsewhere, so they stay.
Frames are dropped (they are optional, and their lengths would no longer
hold); memo indexes do not depend on positions, so nothing else moves.
"""

import pickletools


def parse_class_name(text):
    """``(module, name)`` from ``'module:Class'`` or ``'module.Class'``
    (the last dot separates the class; use ':' for a nested class)."""
    text = text.strip()
    if ':' in text:
        module, _, name = text.partition(':')
    else:
        module, _, name = text.rpartition('.')
    if not module or not name or any(
            not part.isidentifier() for part in
            module.split('.') + name.split('.')):
        raise ValueError('%r is not a class name: write module:Class or '
                         'module.Class' % text)
    return module, name


_STRING_OPS = frozenset([
    'SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE',
    'SHORT_BINSTRING', 'BINSTRING', 'STRING'])


def rename_in_pickle(data, old, new):
    """``(new_bytes, count)``: ``data`` (one pickle) with every reference
    to the class ``old`` (``(module, name)``) turned into ``new``.

    ``count`` is how many references were rewritten; with none, the
    original bytes come back.  ``ValueError`` for bytes that are not a
    pickle.
    """
    try:
        ops = list(pickletools.genops(data))
    except Exception as error:
        raise ValueError('not a pickle: %s' % error)
    if not ops:
        raise ValueError('not a pickle: empty')
    end = ops[-1][2] + 1  # after STOP
    edits = []  # (start, stop, replacement)
    renamed = 0
    # The last two values pushed (memo puts aside), for STACK_GLOBAL:
    # (string or None, unused).
    pushes = []
    memo = {}  # memo index -> string, to resolve BINGETs
    for index, (op, arg, position) in enumerate(ops):
        stop = ops[index + 1][2] if index + 1 < len(ops) else end
        name = op.name
        if name in ('GLOBAL', 'INST'):
            module, _, qualname = arg.partition(' ')
            if (module, qualname) == old:
                text = ('%s\n%s\n' % new).encode('utf-8')
                edits.append((position + 1, stop, text))
                renamed += 1
        elif name == 'STACK_GLOBAL' and len(pushes) == 2:
            if (pushes[0][0], pushes[1][0]) == old:
                # POP POP GLOBAL: the two strings stay as they were (the
                # memo may hand them to other uses), the class is new.
                text = b'00c' + ('%s\n%s\n' % new).encode('utf-8')
                edits.append((position, stop, text))
                renamed += 1
        if name == 'FRAME':
            edits.append((position, stop, b''))
        elif name in _STRING_OPS:
            pushes.append((arg, None))
        elif name in ('BINGET', 'LONG_BINGET', 'GET'):
            pushes.append((memo.get(arg), None))
        elif name in ('MEMOIZE', 'PUT', 'BINPUT', 'LONG_BINPUT'):
            key = len(memo) if name == 'MEMOIZE' else arg
            memo[key] = pushes[-1][0] if pushes else None
        else:
            pushes.append((None, None))
        del pushes[:-2]
    if not renamed:
        return data, 0
    parts = []
    cursor = 0
    for start, stop, text in sorted(edits):
        parts.append(data[cursor:start])
        parts.append(text)
        cursor = stop
    parts.append(data[cursor:])
    return b''.join(parts), renamed


def pickle_end(data):
    """The offset just after the first pickle in ``data`` (its STOP)."""
    last = None
    try:
        for last in pickletools.genops(data):
            pass
    except Exception as error:
        raise ValueError('not a pickle: %s' % error)
    if last is None:
        raise ValueError('not a pickle: empty')
    return last[2] + 1
