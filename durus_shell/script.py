"""Running statements without a prompt (``-c``, ``--script``, a pipe).

A script is Python mixed with ``:command`` lines (at column 0).  Each
top-level statement runs on its own through ``Session.run_python`` (so
the statement hooks fire per statement), values of bare expressions are
printed plainly, and the first error stops the run.

The commit policy (the session's gate is in script mode, so the code
itself cannot commit):

* ``commit=True``: at the end, if nothing failed, pending changes are
  committed; exit 0.
* ``dry_run=True``: at the end, what would be written is listed and
  dropped; exit 0.
* neither: pending changes at the end are listed, dropped, and the exit
  status is EXIT_UNCOMMITTED.
* an error: nothing is committed; exit EXIT_ERROR.
* a conflict at the commit (another client changed what the script
  read): with ``retry=N`` the script runs again from a fresh state (a
  new transaction and namespace), up to N more times; when no attempt
  is left, nothing is committed and the exit status is EXIT_CONFLICT.
"""

import ast
import linecache
import sys

from durus_shell import render
from durus_shell.commands import describe_changes, run_command
from durus_shell.fix_commands import diff_lines
from durus_shell.refusals import refusal_note
from durus.error import ConflictError
from durus_shell.session import CommitConflict

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNCOMMITTED = 3
EXIT_CONFLICT = 4


class _Conflicted(Exception):
    """This attempt met another client's change (nothing committed)."""


class Unit(object):
    """One step of a script: a ``:command`` line or one Python statement."""

    def __init__(self, kind, source, lineno):
        self.kind = kind
        self.source = source
        self.lineno = lineno

    def __repr__(self):
        return 'Unit(%r, %r, %d)' % (self.kind, self.source, self.lineno)


def split_script(text, filename='<script>'):
    """The units of a script, in order.  SyntaxError for bad Python."""
    units = []
    chunk = []
    chunk_start = 1
    lines = text.splitlines(True)
    for number, line in enumerate(lines, 1):
        if line.startswith(':'):
            units.extend(_python_units(''.join(chunk), chunk_start, filename))
            units.append(Unit('command', line.strip(), number))
            chunk = []
            chunk_start = number + 1
        else:
            chunk.append(line)
    units.extend(_python_units(''.join(chunk), chunk_start, filename))
    return units


def _python_units(source, first_line, filename):
    if not source.strip():
        return []
    padded = '\n' * (first_line - 1) + source
    tree = ast.parse(padded, filename, 'exec')
    lines = padded.splitlines(True)
    units = []
    for node in tree.body:
        start = node.lineno
        if getattr(node, 'decorator_list', None):
            start = min(d.lineno for d in node.decorator_list)
        units.append(Unit('python', _statement_text(lines, node, start),
                          start))
    return units


def _statement_text(lines, node, start):
    """Exactly one statement's source: ``a = 1; a`` on one line is two
    statements, each run once (slicing whole lines ran the line twice).

    ast columns count UTF-8 bytes, hence the encode/decode.  A statement
    that does not start its line (after ``;``) is a simple statement, so
    dropping what precedes it on its first line keeps it valid Python.
    """
    first = start - 1
    last = node.end_lineno - 1
    if first == last:
        line = lines[first].encode('utf-8')
        begin = node.col_offset if start == node.lineno else 0
        return line[begin:node.end_col_offset].decode('utf-8') + '\n'
    head = lines[first].encode('utf-8')
    if start == node.lineno:
        head = head[node.col_offset:]
    tail = lines[last].encode('utf-8')[:node.end_col_offset]
    return (head.decode('utf-8') + ''.join(lines[first + 1:last])
            + tail.decode('utf-8') + '\n')


def run_script(session, text, filename, out=None, err=None, commit=False,
               dry_run=False, retry=0):
    """Run a script against ``session``; returns the exit status.

    ``retry``: how many more times to run it after a conflict (with
    ``commit``)."""
    from durus_shell.ui import StreamUI
    out = out or sys.stdout
    err = err or sys.stderr
    ui = StreamUI(out)
    linecache.cache[filename] = (len(text), None, text.splitlines(True),
                                 filename)
    try:
        units = split_script(text, filename)
    except SyntaxError as error:
        err.write('%s, line %s: SyntaxError: %s\n' % (
            filename, error.lineno, error.msg))
        return EXIT_ERROR
    attempts = 1 + (max(0, retry) if commit else 0)
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            session.abort()   # a fresh state: the other commits come in
            session.reset_namespace()
            err.write('Running %s again (attempt %d of %d).\n' % (
                filename, attempt, attempts))
        try:
            return _attempt(session, units, filename, ui, out, err, commit,
                            dry_run)
        except _Conflicted as conflict:
            err.write('Conflict: %s; nothing was committed.\n'
                      % conflict.args[0])
    err.write('Conflict: gave up after %d attempt%s; nothing was committed.'
              ' Run it again later%s.\n' % (
                  attempts, '' if attempts == 1 else 's',
                  '' if retry else ', or with --retry N'))
    return EXIT_CONFLICT


def _attempt(session, units, filename, ui, out, err, commit, dry_run):
    renderer = render.Renderer()
    for unit in units:
        if unit.kind == 'command':
            result = run_command(session, unit.source, ui)
        else:
            result = session.run_python(unit.source, filename=filename,
                                        first_line=unit.lineno)
        if result.kind == 'value':
            out.write(render.plain(renderer.render(result.value)) + '\n')
        _note_refusals(session, err)
        if result.failed:
            if commit and isinstance(result.error, ConflictError):
                session.abort()
                raise _Conflicted('line %d read an object another client '
                                  'changed meanwhile' % unit.lineno)
            err.write(result.traceback + '\n')
            dropped = len(session.pending_changes())
            session.abort()
            err.write('Stopped at line %d; nothing was committed%s.\n' % (
                unit.lineno, ' (%d changes dropped)' % dropped
                if dropped else ''))
            return EXIT_ERROR
        elif result.kind == 'quit':
            break
    out.flush()
    return finish(session, out, err, commit, dry_run)


def _note_refusals(session, err):
    note = refusal_note(session)
    if note:
        err.write(render.plain(note) + '\n')


def finish(session, out, err, commit, dry_run):
    """Apply the commit policy at the end of a script."""
    changes = session.pending_changes()
    unnoted = changes.unnoted
    if unnoted and not dry_run:
        # Committing the rest would apply half of the fix: refuse it all.
        err.write('%d object%s changed in place without _p_note_change() '
                  'would not be written: %s. Nothing was committed; call '
                  'obj._p_note_change() after changing an object in place '
                  '(or :touch EXPR), then run the script again.\n' % (
                      len(unnoted), '' if len(unnoted) == 1 else 's',
                      ', '.join(repr(obj) for obj in unnoted[:5])))
        session.abort()
        return EXIT_ERROR if commit else EXIT_UNCOMMITTED
    if dry_run:
        if changes:
            out.write('Would write:\n' + '\n'.join(diff_lines(session))
                      + '\n')
            out.write('Dry run: nothing was committed.\n')
        else:
            out.write('Dry run: nothing to commit.\n')
        session.abort()
        return EXIT_OK
    if commit:
        if not changes:
            return EXIT_OK
        try:
            written = session.commit()
        except CommitConflict as conflict:
            raise _Conflicted('other clients changed %d object(s) this '
                              'script read' % len(conflict.oids))
        except Exception as error:
            err.write('Commit failed: %s: %s\n' % (type(error).__name__,
                                                   error))
            session.abort()
            return EXIT_ERROR
        out.write('Committed %d object%s.\n' % (
            written.written, '' if written.written == 1 else 's'))
        return EXIT_OK
    if changes:
        err.write(describe_changes(changes, 'Not committed: ', session) + '\n')
        err.write('Run with --commit to write these changes, or --dry-run'
                  ' to only show them.\n')
        session.abort()
        return EXIT_UNCOMMITTED
    return EXIT_OK
