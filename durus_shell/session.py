"""The open database and the operator's namespace; no terminal here.

A ``Session`` owns one Connection over one storage (wrapped in a
``CommitGate``), the namespace the operator's code runs in, and the
hooks other features attach to.  It runs one input at a time:

    run(text)
      ':' ...      -> a shortcut command (durus_shell.commands)
      otherwise    -> Python: hooks.before_statement(session, source)
                      exec (the value of a final expression is returned)
                      hooks.after_statement(session, source, result)

Commit policy (the gate): interactive read-write sessions let every commit
through; ``readonly`` refuses every commit; ``script`` refuses commits
made by the operator's code, so a script commits only at its end, through
``Session.commit``, when asked to (``--commit``).
"""

import ast
import builtins
import contextlib
import io
import linecache
import pickle
import signal
import sys
import threading
import traceback

from durus.connection import Connection
from durus.error import ConflictError, ReadOnlyError
from durus.persistent import PersistentBase, _getattribute
from durus.storage import Storage
from durus.unpickle_policy import UnpicklePolicy
from durus.utils import int8_to_str, str_to_int8

HOOK_NAMES = ('before_statement', 'after_statement', 'before_commit',
              'after_commit', 'after_abort', 'on_close')

GATE_OPEN, GATE_READONLY, GATE_SCRIPT = 'open', 'readonly', 'script'


class CommitGate(Storage):
    """A storage wrapper that decides whether a commit may begin.

    Refusing in ``begin()`` (before any object is serialized) leaves the
    Connection exactly as it was.  It also counts the oids ``sync()``
    reports, so ``:abort`` can say how many objects changed meanwhile.
    """

    def __init__(self, storage, mode=GATE_OPEN):
        self.storage = storage
        self.mode = mode
        self._allowed = False
        self.synced_oids = 0

    @contextlib.contextmanager
    def allow(self):
        """Let commits through while the block runs (script mode)."""
        self._allowed = True
        try:
            yield
        finally:
            self._allowed = False

    def begin(self):
        if self.mode == GATE_READONLY:
            raise ReadOnlyError('read-only session: nothing can be committed;'
                                ' reopen without --readonly to write')
        if self.mode == GATE_SCRIPT and not self._allowed:
            raise ReadOnlyError('scripts do not commit themselves: remove the'
                                ' commit call and run with --commit')
        return self.storage.begin()

    def sync(self):
        oids = self.storage.sync()
        self.synced_oids += len(oids)
        return oids

    def load(self, oid):
        return self.storage.load(oid)

    def store(self, oid, record):
        return self.storage.store(oid, record)

    def end(self, handle_invalidations=None):
        return self.storage.end(handle_invalidations)

    def new_oid(self):
        return self.storage.new_oid()

    def close(self):
        return self.storage.close()

    def get_packer(self):
        return self.storage.get_packer()

    def pack(self):
        return self.storage.pack()

    def bulk_load(self, oids):
        return self.storage.bulk_load(oids)

    def gen_oid_record(self, *args, **kwargs):
        return self.storage.gen_oid_record(*args, **kwargs)

    def __getattr__(self, name):
        # Storage-specific extras (get_filename, ...) of the real storage.
        return getattr(self.__dict__['storage'], name)

    def __str__(self):
        return str(self.storage)


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


class Changes(object):
    """Objects a commit would write: ``changed`` (stored before) and ``new``."""

    def __init__(self, changed, new):
        self.changed = changed
        self.new = new

    def __len__(self):
        return len(self.changed) + len(self.new)

    def __bool__(self):
        return bool(self.changed or self.new)


class CommitConflict(Exception):
    """A commit failed because other clients changed objects meanwhile.

    The transaction has been aborted; ``objects`` describes what conflicted.
    """

    def __init__(self, error, oids):
        Exception.__init__(self, error, oids)
        self.error = error
        self.oids = oids


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
        self.gate = CommitGate(storage, mode)
        # Records never run code they name (issue 13): the safe policy,
        # refused globals shown as placeholders, unless --trust.
        if unpickle_policy is None:
            unpickle_policy = UnpicklePolicy.safe(placeholders=True)
        self.unpickle_policy = unpickle_policy
        self._reported_refusals = set()
        self.target = target
        self.hooks = Hooks()
        # Objects of unimportable classes open as placeholders (issue 6),
        # already while the root is loaded.
        from durus_shell.placeholders import placeholders_while_opening
        with self.gate.allow():  # a new database gets its root written
            with placeholders_while_opening():
                self.connection = Connection(
                    self.gate, cache_size=cache_size,
                    unpickle_policy=unpickle_policy)
        self.namespace = self._make_namespace()
        self.input_count = 0
        self.last_output = None
        self.closed = False
        # Features that attach to every session (issue 6: change tracking,
        # placeholders); see commands.attach_extensions.
        self.extensions = {}
        from durus_shell.commands import attach_extensions
        attach_extensions(self)

    # -- facts -----------------------------------------------------------

    @property
    def storage(self):
        """The real storage (not the gate)."""
        return self.gate.storage

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
        return self.gate.mode == GATE_READONLY

    @property
    def root(self):
        return self.connection.get_root()

    def change_count(self):
        """Number of changed objects awaiting commit (cheap)."""
        return len(self.connection.changed)

    def unnoted_changes(self):
        """Loaded objects changed in place without ``_p_note_change()``.

        A commit would not write them.  Found by the change-tracking
        extension (comparing with stored records); empty without it.
        """
        finder = self.extensions.get('find_unnoted')
        return finder() if finder is not None else []

    def has_unsaved_work(self):
        """Whether leaving now would lose an edit (noted or not)."""
        return bool(self.change_count() or self.unnoted_changes())

    def pending_changes(self):
        """The objects a commit would write now, changed and new.

        New objects are found the way a commit finds them: persistent
        objects without an oid referenced from the state of what is
        written.  Nothing is stored or marked.
        """
        changed = sorted(self.connection.changed.values(),
                         key=lambda obj: _getattribute(obj, '_p_oid'))
        new = []
        seen = set(id(obj) for obj in changed)
        todo = list(changed)
        while todo:
            obj = todo.pop(0)
            for ref in _referenced_persistents(obj):
                if id(ref) in seen:
                    continue
                seen.add(id(ref))
                if _getattribute(ref, '_p_oid') is None:
                    new.append(ref)
                    todo.append(ref)
        return Changes(changed, new)

    # -- running input ---------------------------------------------------

    def run(self, text, ui=None):
        """Run one input (a statement, block, or ``:command``)."""
        stripped = text.strip()
        if not stripped:
            return Result('empty', text)
        if stripped.startswith(':') and '\n' not in stripped:
            return self.run_command(stripped, ui)
        return self.run_python(text)

    def run_command(self, line, ui=None):
        from durus_shell import commands
        if ui is None:
            from durus_shell.ui import SilentUI
            ui = SilentUI()
        try:
            name, args = commands.split_command_line(line)
            cmd = commands.find_command(name)
            if cmd.interactive_only and not ui.interactive:
                raise commands.CommandError(
                    ':%s works only at the prompt' % cmd.name)
            cmd.func(self, args, ui)
        except QuitRequest:
            return Result('quit', line)
        except KeyboardInterrupt:
            return Result('interrupted', line,
                          traceback='Interrupted: %s stopped' % line)
        except commands.CommandError as error:
            return Result('error', line, error=error,
                          traceback='%s: %s' % (line.split()[0], error))
        except Exception as error:
            return Result('error', line, error=error,
                          traceback='%s: %s' % (line.split()[0],
                                                describe_error(error)))
        return Result('command', line)

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
        changes = self.pending_changes()
        self.hooks.call('before_commit', self, changes)
        try:
            with self.gate.allow(), _sigint_deferred():
                self.connection.commit()
        except ConflictError as error:
            oids = list(error.oids or ())
            self.abort()
            raise CommitConflict(error, oids)
        self.hooks.call('after_commit', self, changes)
        return changes

    def abort(self):
        """Drop every edit and sync; returns how many objects others changed."""
        before = self.gate.synced_oids
        self.connection.abort()
        count = self.gate.synced_oids - before
        self.hooks.call('after_abort', self, count)
        return count

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
        import os
        import pprint
        return {
            '__name__': '__console__',
            '__builtins__': builtins,
            'root': self.connection.get_root(),
            'connection': self.connection,
            'conn': self.connection,
            'get': self.get,
            'storage': self.gate,
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


class _ReferenceFinder(pickle.Pickler):
    """Pickles a state only to collect the persistent objects it refers to.

    ``persistent_id`` is a method here: Python 3.13 made the attribute
    read-only on plain Pickler instances.
    """

    def __init__(self, obj):
        super().__init__(io.BytesIO(), 2)
        self.obj = obj
        self.found = []

    def persistent_id(self, value):
        if isinstance(value, PersistentBase) and value is not self.obj:
            self.found.append(value)
            return 0  # stop here: referenced objects are records of their own
        return None


def _referenced_persistents(obj):
    """The persistent objects directly referenced by ``obj``'s state."""
    finder = _ReferenceFinder(obj)
    try:
        finder.dump(obj.__getstate__())
    except Exception:
        return []  # the commit itself will report what cannot be pickled
    return finder.found


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
    lines.extend(line.rstrip('\n') for line in
                 traceback.format_exception_only(type(error), error))
    if isinstance(error, ConflictError):
        lines.append('Another client changed these objects: run :abort and'
                     ' redo the change.')
    return '\n'.join(lines)


def _is_operator_frame(frame):
    name = frame.filename
    if name in OPERATOR_FILES:
        return True
    return not (name.startswith('<') or _in_library(name))


def _in_library(filename):
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    durus_dir = os.path.join(os.path.dirname(here), 'durus')
    return (filename.startswith(here) or filename.startswith(durus_dir)
            or filename.startswith(os.path.dirname(os.__file__)))
