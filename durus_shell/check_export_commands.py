""":check (durus.check on the open storage) and :export (durus_shell.export).

Both read records through the session's connection with its unpickling
policy (safe unless --trust): no code from the database runs.
"""

import re
import shlex
import time

from durus.check import check_storage

from durus_shell import export
from durus_shell.fix_commands import Progress, _evaluate, _int_option
from durus_shell.registry import CommandError, command


class _CheckProgress(object):
    """durus.check's progress(done, total) on the shell's Progress line."""

    def __init__(self, ui):
        self.progress = Progress(ui, ':check')
        self.started = time.monotonic()

    def __call__(self, done, total):
        self.progress(done, total, 0, time.monotonic() - self.started)

    def done(self):
        self.progress.done()


@command('check', usage=':check')
def check_command(session, args, ui):
    """Check the whole database: missing, unreachable and unparsable
    records, unimportable classes, BTree invariants (report in _).

    The same check as `durus check PATH` on the command line, run on
    what is committed (uncommitted edits are not looked at).  Over a
    server only the records reachable from the root can be read, so
    unreachable ones are not counted there.
    """
    if args.strip():
        raise CommandError(':check takes no arguments')
    progress = _CheckProgress(ui)
    target = session.target
    name = getattr(target, 'label', None) or str(session.storage)
    try:
        report = check_storage(session.storage, name=name, progress=progress,
                               connection=session.connection)
    finally:
        progress.done()
    session.namespace['_'] = report.as_dict()
    ui.show('\n'.join(report.lines()))


_TRAILING_OPTION = re.compile(
    r'\s(?:--(force)|--(depth|format)(?:=|\s+)(\S+))\s*$')
_EXPORT_USAGE = ('usage: :export EXPR FILE [--depth N] [--format json|jsonl]'
                 ' [--force]')


def split_export_args(args):
    """``(expression, file, {option: value}, force)`` of :export's
    arguments: options from the end, then FILE (a word, or quoted), and
    the rest of the line, as typed, is the expression."""
    text = ' ' + args.strip()
    values = {}
    force = False
    while True:
        match = _TRAILING_OPTION.search(text)
        if match is None:
            break
        if match.group(1):
            force = True
        else:
            values.setdefault(match.group(2), match.group(3))
        text = text[:match.start()]
    text = text.strip()
    if text[-1:] in ('"', "'"):
        start = text.rfind(' ' + text[-1], 0, len(text) - 1)
        if start < 0:
            raise CommandError(_EXPORT_USAGE)
        try:
            path = shlex.split(text[start + 1:])[0]
        except (ValueError, IndexError):
            raise CommandError('cannot read the file name %s'
                               % text[start + 1:])
        expression = text[:start].strip()
    else:
        expression, _, path = text.rpartition(' ')
        expression = expression.strip()
    if not expression or not path or path.startswith('--'):
        raise CommandError(_EXPORT_USAGE)
    return expression, path, values, force


@command('export', usage=':export EXPR FILE [--depth N] [--format json|jsonl]'
                         ' [--force]')
def export_command(session, args, ui):
    """Write an object (or a list of them, like _ after :find) as JSON.

    One entry per persistent object: oid, class, attributes; references
    as {"$ref": OID}; bytes, datetimes, sets, tuples ... tagged by type.
    --depth N also writes what the objects reach up to N references
    away (default 0: only the objects).  --format jsonl writes one
    object a line, as they are read (for large exports).  An existing
    FILE is refused unless --force.  Objects are read quietly with the
    session's unpickling policy: no code from the database runs.
    """
    expression, path, values, force = split_export_args(args)
    depth = _int_option(values, 'depth', 0)
    kind = values.get('format', 'json')
    if kind not in ('json', 'jsonl'):
        raise CommandError('--format is json or jsonl, not %r' % kind)
    value = _evaluate(session, expression)
    try:
        objects = export.start_objects(value)
        target = session.target
        source = getattr(target, 'label', None) or str(session.storage)
        count = export.write_export(path, objects, depth=depth,
                                    lines=kind == 'jsonl', source=source,
                                    force=force)
    except export.ExportError as error:
        raise CommandError(str(error))
    except OSError as error:
        raise CommandError('cannot write %s: %s' % (path, error.strerror
                                                    or error))
    ui.show('wrote %d object%s to %s (%s%s)' % (
        count, '' if count == 1 else 's', path, kind,
        ', depth %d' % depth if depth else ''))
