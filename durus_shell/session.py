"""The open database and the operator's namespace; no terminal here.

A ``Session`` owns one Connection, the namespace the operator's code
runs in, and the hooks other features attach to.  It runs Python one
input at a time (``:commands`` are dispatched by durus_shell.commands,
outside the session):

    run_python(source)  -> hooks.before_statement(session, source)
                           exec (the value of a final expression is returned)
                           the change tracker takes in what changed
                           hooks.after_statement(session, source, result)

The session uses durus only through public APIs: its connection is a
plain ``Connection`` (opened with the placeholder class factory), and
the shell's parts are observers of it (``ConnectionObserver``): the
commit policy below, the placeholder guard and the change tracker
(durus_shell.changes), which also feeds the audit log.

Commit policy (an observer that vetoes ``before_commit``): interactive
read-write sessions let every commit through; ``readonly`` refuses every
commit; ``script`` refuses commits made by the operator's code, so a
script commits only at its end, through ``Session.commit``, when asked to
(``--commit``).
"""

import ast
import builtins
import contextlib
import linecache
import os
import pprint
import signal
import sys
import threading
import traceback

from durus.connection import Connection, ConnectionObserver
from durus.error import ConflictError, ReadOnlyError
from durus.unpickle_policy import UnpicklePolicy
from durus.utils import int8_to_str, str_to_int8
from durus_shell import link, placeholders
from durus_shell.rename_guard import RenamedClassGuard
from durus_shell.changes import ChangeTracker
from durus_shell.retry import (PYTHON, ConflictSnapshot, StatementJournal,
                               last_step)

HOOK_NAMES = ('before_statement', 'after_statement', 'before_commit',
              'after_commit', 'after_abort', 'on_close')

GATE_OPEN, GATE_READONLY, GATE_SCRIPT = 'open', 'readonly', 'script'


class CommitPolicy(ConnectionObserver):
    """Decides whether a commit may happen (a veto on ``before_commit``).

    Refusing before anything is serialized leaves the Connection exactly
    as it was.  It also keeps the oids the last abort reported changed
    by other clients, so ``:abort`` can say how many.
    """

    def __init__(self, mode=GATE_OPEN):
        self.mode = mode
        self._allowed = False
        self.last_invalidated = []

    @contextlib.contextmanager
    def allow(self):
        """Let commits through while the block runs (script mode)."""
        self._allowed = True
        try:
            yield
        finally:
            self._allowed = False

    def before_commit(self, connection):
        if self.mode == GATE_READONLY:
            raise ReadOnlyError('read-only session: nothing can be committed;'
                                ' reopen without --readonly to write')
        if self.mode == GATE_SCRIPT and not self._allowed:
            raise ReadOnlyError('scripts do not commit themselves: remove the'
                                ' commit call and run with --commit')

    def after_abort(self, connection, invalidated):
        self.last_invalidated = list(invalidated)


class Result(object):
    """What running one input produced.

    ``kind``: 'empty', 'ok' (ran, nothing to show), 'value' (``value``),
    'error' (``error`` and a short ``traceback`` text), 'interrupted',
    'command' (a shortcut ran), 'quit' (the operator asked to leave).
    """

    def __init__(self, kind, source='', value=None, error=None,
                 traceback=None):
        self.kind = kind
        self.source = source
        self.value = value
        self.error = error
        self.traceback = traceback

    @property
    def failed(self):
        return self.kind in ('error', 'interrupted')

    def __repr__(self):
        return '<Result %s>' % self.kind


class CommitConflict(Exception):
    """A commit failed because other clients changed objects meanwhile.

    The transaction has been aborted; ``objects`` describes what
    conflicted (durus_shell.retry.ConflictedObject: per attribute, the
    value read, committed by the other client, and set here) and
    ``statements`` the transaction's statements, kept for :retry.
    """

    def __init__(self, error, oids, objects=(), statements=()):
        Exception.__init__(self, error, oids)
        self.error = error
        self.oids = oids
        self.objects = list(objects)
        self.statements = list(statements)


class Hooks(object):
    """Named lists of callables; see HOOK_NAMES and docs/shell.md."""

    def __init__(self):
        self._hooks = dict((name, []) for name in HOOK_NAMES)

    def add(self, name, func):
        if name not in self._hooks:
            raise ValueError('unknown hook %r (known: %s)'
                             % (name, ', '.join(HOOK_NAMES)))
        self._hooks[name].append(func)
        return func

    def remove(self, name, func):
        self._hooks[name].remove(func)

    def call(self, name, *args):
        for func in list(self._hooks[name]):
            func(*args)


class Session(object):
    """One open database, its namespace, and the statements run against it.

    ``target`` describes what is open (durus_shell.opening.Target or any
    object with ``label``); ``mode`` is GATE_OPEN, GATE_READONLY or
    GATE_SCRIPT (see the module docstring).
    """

    def __init__(self, storage, target=None, mode=GATE_OPEN,
                 cache_size=100000, unpickle_policy=None):
        self.target = target
        self.hooks = Hooks()
        self.policy = CommitPolicy(mode)
        # Records never run code they name (issue 13): the safe policy,
        # refused globals shown as placeholders, unless --trust.
        if unpickle_policy is None:
            unpickle_policy = UnpicklePolicy.safe(placeholders=True)
        self.unpickle_policy = unpickle_policy
        self._reported_refusals = set()
        # Objects of unimportable classes open as placeholders, already
        # while the root is loaded (this connection only).  Load
        # snapshots let the change tracker skip, after each statement,
        # the objects still holding their records' states.
        self.connection = Connection(
            storage, cache_size=cache_size,
            class_factory=placeholders.missing_class_factory,
            unpickle_policy=unpickle_policy, load_snapshots=True)
        self.connection.add_observer(self.policy)
        self.connection.add_observer(placeholders.PlaceholderGuard())
        # After :rename-class, objects still loaded with the old class
        # must not be committed (durus_shell/rename_guard.py).
        self.renamed_classes = RenamedClassGuard()
        self.connection.add_observer(self.renamed_classes)
        self.tracker = ChangeTracker(self.connection)
        self.journal = StatementJournal(self.tracker)
        self.audit_log = None
        self.settings = None  # durus_shell.config.Settings (cli sets it)
        self.namespace = self._make_namespace()
        self.input_count = 0
        self.last_output = None
        self.closed = False
        # The server connection was lost during a commit: it may have
        # been written (said when reconnecting).
        self.commit_outcome_unknown = False

    # -- facts -----------------------------------------------------------

    @property
    def storage(self):
        return self.connection.storage

    @property
    def mode(self):
        return self.policy.mode

    @property
    def trusted(self):
        """True when records may name any global (--trust)."""
        return self.unpickle_policy.trusted

    def new_refusals(self):
        """``[(oid, 'module.name'), ...]`` refused since the last call."""
        found = set((oid or b'', name) for oid, names in
                    self.connection.reader.refusals.items()
                    for name in names)
        fresh = sorted(found - self._reported_refusals)
        self._reported_refusals |= found
        return fresh

    @property
    def readonly(self):
        return self.policy.mode == GATE_READONLY

    @property
    def root(self):
        return self.connection.get_root()

    def pending_changes(self):
        """Changes: what a commit would write now (changed and new, found
        by the writer's own dry run) and the objects changed in place
        that it would not write (``unnoted``).  Nothing is stored or
        marked."""
        return self.tracker.pending()

    def change_count(self):
        """Pending objects (changed, new and changed in place), as of the
        last statement or command: cheap (the toolbar asks often)."""
        return len(self.tracker.last_pending())

    def unnoted_changes(self):
        """Loaded objects changed in place without ``_p_note_change()``:
        a commit would not write them."""
        return self.pending_changes().unnoted

    def has_unsaved_work(self):
        """Whether leaving now would lose an edit (noted or not), or the
        statements kept for :retry."""
        return bool(self.pending_changes()) or bool(self.journal.kept)

    # -- running input ---------------------------------------------------

    def run_python(self, source, filename=None, first_line=1):
        """Run Python source; the value of a final expression is returned.

        ``filename``/``first_line`` name where the source comes from (a
        script or startup file) for tracebacks; typed input gets its own
        ``<shell-N>`` name.
        """
        self.input_count += 1
        if filename is None:
            filename = '%s%d>' % (SHELL_FILE_PREFIX, self.input_count)
            linecache.cache[filename] = (len(source), None,
                                         source.splitlines(True), filename)
        OPERATOR_FILES.add(filename)
        try:
            tree = ast.parse(source, filename, 'exec')
            if first_line > 1:
                ast.increment_lineno(tree, first_line - 1)
        except (SyntaxError, ValueError) as error:
            return Result('error', source, error=error,
                          traceback=''.join(
                              traceback.format_exception_only(
                                  type(error), error)).rstrip())
        self.hooks.call('before_statement', self, source)
        self.tracker.begin_statement()
        steps_before = len(self.tracker.history)
        try:
            value = self._execute(tree, filename)
        except KeyboardInterrupt:
            result = Result('interrupted', source,
                            traceback='Interrupted (the session and its'
                            ' changes are kept)')
        except SystemExit:
            result = Result('quit', source)
        except BaseException as error:
            result = Result('error', source, error=error,
                            traceback=short_traceback(error))
        else:
            if value is None:
                result = Result('ok', source)
            else:
                self.namespace['_'] = value
                result = Result('value', source, value=value)
        self.tracker.end_statement()
        # A statement stopped by another client's change or by the lost
        # server may well run on the new state: kept with the others.
        self.journal.note(PYTHON, source,
                          last_step(self.tracker, steps_before),
                          failed=(result.failed or result.kind == 'quit')
                          and not isinstance(result.error, ConflictError)
                          and not link.lost_the_link(self, result.error))
        self.hooks.call('after_statement', self, source, result)
        return result

    def _execute(self, tree, filename):
        body = tree.body
        last = None
        if body and isinstance(body[-1], ast.Expr):
            last = body.pop()
        if body:
            code = compile(ast.Module(body=body, type_ignores=[]),
                           filename, 'exec')
            exec(code, self.namespace)
        if last is not None:
            code = compile(ast.Expression(body=last.value), filename, 'eval')
            return eval(code, self.namespace)
        return None

    def run_file(self, path):
        """Run a startup file in the namespace (tracebacks name the file)."""
        with open(path) as f:
            source = f.read()
        linecache.checkcache(path)
        self.namespace['__file__'] = path
        try:
            return self.run_python(source, filename=path)
        finally:
            del self.namespace['__file__']

    # -- transactions ----------------------------------------------------

    def commit(self):
        """Write the pending changes; returns the Changes written.

        On a conflict the transaction is aborted and CommitConflict raised.
        Ctrl-C waits until the commit is over: a commit cut in the middle
        could leave a server connection out of step.
        """
        if self.connection.invalid_oids:
            # A statement already met another client's change (a read
            # conflict): the commit cannot succeed, handle it as one.
            raise self._lost_to_conflict(
                None, sorted(self.connection.invalid_oids))
        changes = self.pending_changes()
        self.hooks.call('before_commit', self, changes)
        try:
            with self.policy.allow(), _sigint_deferred():
                self.connection.commit()
        except ConflictError as error:
            raise self._lost_to_conflict(error, list(error.oids or ()))
        except link.LINK_ERRORS as error:
            if link.lost_the_link(self, error):
                self.commit_outcome_unknown = True
            raise
        self.hooks.call('after_commit', self, changes)
        return changes

    def _lost_to_conflict(self, error, oids):
        """Abort after a conflict; the CommitConflict to raise.

        What this transaction read and set, and its statements, are taken
        before the abort forgets them."""
        statements = self.journal.keep('conflict')
        try:
            snapshot = ConflictSnapshot(self, oids)
        except Exception:   # the report is a help; the statements matter
            snapshot = None
        self.abort()
        objects = []
        if snapshot is not None:
            try:
                objects = snapshot.report(self.connection)
            except Exception:
                objects = []
        return CommitConflict(error, oids, objects, statements)

    def abort(self):
        """Drop every edit and sync; returns how many objects others changed.

        The edits are taken in first, so ``:undo`` can bring them back
        (until the next edit)."""
        try:
            self.tracker.refresh()
        except Exception:
            pass  # an abort must never be refused
        self.connection.abort()
        count = len(self.policy.last_invalidated)
        self.hooks.call('after_abort', self, count)
        return count

    def reset_namespace(self):
        """A fresh namespace (a script's next attempt starts from it)."""
        self.namespace = self._make_namespace()
        self.last_output = None

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.hooks.call('on_close', self)
        try:
            self.storage.close()
        except Exception:
            pass

    # -- namespace -------------------------------------------------------

    def get(self, oid):
        """The object with ``oid`` (an int or 8 bytes), or None."""
        if isinstance(oid, int):
            oid = int8_to_str(oid)
        return self.connection.get(oid)

    def _make_namespace(self):
        return {
            '__name__': '__console__',
            '__builtins__': builtins,
            'root': self.connection.get_root(),
            'connection': self.connection,
            'conn': self.connection,
            'get': self.get,
            'storage': self.connection.storage,
            'int8_to_str': int8_to_str,
            'str_to_int8': str_to_int8,
            'pp': pprint.pprint,
            'sys': sys,
            'os': os,
        }


@contextlib.contextmanager
def _sigint_deferred():
    """Hold SIGINT while the block runs; an interrupt is dropped, since
    the block (a commit) completed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda number, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class QuitRequest(Exception):
    """Raised by :quit once leaving is decided."""


def describe_error(error):
    """One line: the error's class and message."""
    text = str(error)
    name = type(error).__name__
    return '%s: %s' % (name, text) if text else name


SHELL_FILE_PREFIX = '<shell-'
# Files whose frames are the operator's own code in tracebacks.
OPERATOR_FILES = set()


def short_traceback(error):
    """The traceback of the operator's code only, then the error line.

    Frames from the shell and the libraries it calls are dropped; the
    frames kept are those of typed input and startup/script files.
    """
    frames = traceback.extract_tb(error.__traceback__)
    own = [frame for frame in frames if _is_operator_frame(frame)]
    lines = []
    if own:
        lines.append('Traceback (most recent call last):')
        for frame in own:
            where = ('input' if frame.filename.startswith(SHELL_FILE_PREFIX)
                     else frame.filename)
            lines.append('  %s, line %d, in %s' % (where, frame.lineno,
                                                 frame.name))
            if frame.line:
                lines.append('    ' + frame.line.strip())
    # Built with the traceback, so Python 3.11+ can add its "Did you
    # mean: 'root'?" hint (a NameError's needs the frame's names).
    summary = traceback.TracebackException(
        type(error), error, error.__traceback__, compact=True)
    lines.extend(line.rstrip('\n') for line in
                 summary.format_exception_only())
    hint = did_you_mean(error)
    if hint and 'Did you mean' not in lines[-1]:
        lines[-1] += hint
    if isinstance(error, ConflictError):
        lines.append('Another client changed these objects: :commit shows'
                     ' how, and keeps this transaction\'s statements;'
                     ' :retry re-runs them on the new state.')
    return '\n'.join(lines)


def did_you_mean(error):
    """Python's ``". Did you mean: 'root'?"`` for a NameError or
    AttributeError, or ''.  Python 3.11 computes it only in its own
    excepthook (3.12's traceback module does it too), so the shell
    finds the close name itself: among the failing frame's names, or the
    object's attributes."""
    import difflib
    name = getattr(error, 'name', None)
    if not isinstance(name, str):
        return ''
    if isinstance(error, NameError):
        tb = error.__traceback__
        if tb is None:
            return ''
        while tb.tb_next is not None:
            tb = tb.tb_next
        frame = tb.tb_frame
        candidates = set(frame.f_locals) | set(frame.f_globals) | set(
            dir(builtins))
    elif isinstance(error, AttributeError):
        try:
            candidates = set(dir(error.obj))
        except Exception:
            return ''
    else:
        return ''
    close = difflib.get_close_matches(name, sorted(candidates), n=1,
                                      cutoff=0.6)
    return ". Did you mean: '%s'?" % close[0] if close else ''


def _is_operator_frame(frame):
    name = frame.filename
    if name in OPERATOR_FILES:
        return True
    return not (name.startswith('<') or _in_library(name))


def _in_library(filename):
    here = os.path.dirname(os.path.abspath(__file__))
    durus_dir = os.path.join(os.path.dirname(here), 'durus')
    return (filename.startswith(here) or filename.startswith(durus_dir)
            or filename.startswith(os.path.dirname(os.__file__)))
