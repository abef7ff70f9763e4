"""Shortcut commands (``:commit``, ``:status`` ...): one registry, one decorator.

A command is a function ``func(session, args, ui)``: ``args`` is the text
after the command name (stripped), ``ui`` the small interface the command
talks to the operator through (see ``durus_shell.ui``).  Registering it
with ``@command`` also feeds ``:help`` and the documentation test, so a
command cannot exist without its help text.

Other modules add commands the same way::

    from durus_shell.commands import command, CommandError

    @command('census', usage=':census [CLASS]')
    def census(session, args, ui):
        '''Count the objects of each class.'''

``durus_shell.fix_commands`` (issue 6) is imported by ``load_extensions``
when it exists; any module can be imported to register more.

A command signals an operator mistake by raising ``CommandError``: the
shell shows its message as one line and carries on.
"""

import importlib
import importlib.util
import sys

EXTENSION_MODULES = ('durus_shell.fix_commands',)


class CommandError(Exception):
    """An operator mistake in a shortcut: shown as one line."""


class Command(object):
    """One registered command and its help."""

    def __init__(self, name, func, usage, key, aliases, complete,
                 interactive_only):
        self.name = name
        self.func = func
        self.usage = usage or ':' + name
        self.key = key
        self.aliases = tuple(aliases)
        self.complete = complete
        self.interactive_only = interactive_only
        doc = (func.__doc__ or '').strip()
        self.summary = doc.splitlines()[0] if doc else ''
        self.doc = doc

    def __repr__(self):
        return '<Command :%s>' % self.name


REGISTRY = {}
_ALIASES = {}


def command(name, usage=None, key=None, aliases=(), complete=None,
            interactive_only=False):
    """Register ``func`` as the shortcut ``:name``.

    ``key``: the documented key binding (prompt_toolkit key names, e.g.
    ``('c-x', 'c')``), bound by the app to run this command.
    ``complete(session, text)``: suggestions for the argument being typed.
    ``interactive_only``: refused in scripts (e.g. commands that page).
    """
    def register(func):
        if name in REGISTRY or name in _ALIASES:
            raise ValueError('command :%s is already registered' % name)
        cmd = Command(name, func, usage, key, aliases, complete,
                      interactive_only)
        if not cmd.summary:
            raise ValueError('command :%s needs a docstring (its help)' % name)
        REGISTRY[name] = cmd
        for alias in aliases:
            _ALIASES[alias] = name
        return func
    return register


def load_extensions():
    """Import the modules that register more commands, if present."""
    for module in EXTENSION_MODULES:
        if module in sys.modules:
            continue
        try:
            found = importlib.util.find_spec(module)
        except ImportError:
            found = None
        if found is not None:
            importlib.import_module(module)


def attach_extensions(session):
    """Let each extension module with ``attach_session(session)`` attach
    to a new session (hooks, trackers)."""
    load_extensions()
    for module in EXTENSION_MODULES:
        attach = getattr(sys.modules.get(module), 'attach_session', None)
        if attach is not None:
            attach(session)


def all_commands():
    """Every command, sorted by name."""
    load_extensions()
    return [REGISTRY[name] for name in sorted(REGISTRY)]


def find_command(name):
    """The command called ``name`` (or an alias of it); CommandError if none."""
    load_extensions()
    name = _ALIASES.get(name, name)
    try:
        return REGISTRY[name]
    except KeyError:
        known = ', '.join(':' + n for n in sorted(REGISTRY))
        raise CommandError('unknown command :%s (known: %s)' % (name, known))


def split_command_line(line):
    """``(name, args)`` from ``':name args'``."""
    text = line.strip()
    if not text.startswith(':'):
        raise CommandError('a command starts with ":"')
    name, _, args = text[1:].partition(' ')
    if not name:
        raise CommandError('type a command name after ":" (see :help)')
    return name, args.strip()


def key_label(key):
    """A human label for a key binding tuple: ('c-x', 'c') -> 'Ctrl-X C'."""
    if key is None:
        return ''
    if isinstance(key, str):
        key = (key,)
    labels = []
    for part in key:
        if part.startswith('c-'):
            labels.append('Ctrl-' + part[2:].upper())
        elif part.startswith('f') and part[1:].isdigit():
            labels.append(part.upper())
        else:
            labels.append(part.upper() if len(part) == 1 else part)
    return ' '.join(labels)


# -- the built-in commands ---------------------------------------------------

MAX_LISTED = 30


def _complete_command_names(session, text):
    return [cmd.name for cmd in all_commands()]


@command('help', usage=':help [COMMAND]', key=('f1',), aliases=('h', '?'),
         complete=_complete_command_names)
def help_command(session, args, ui):
    """Show the commands, their keys, and what is in the namespace.

    With a command name, show that command's full help.
    """
    from durus_shell import render
    if args:
        cmd = find_command(args.lstrip(':'))
        lines = [cmd.usage + ('   (key: %s)' % key_label(cmd.key)
                              if cmd.key else ''), '', cmd.doc]
        ui.show('\n'.join(lines))
        return
    rows = [(cmd.usage, key_label(cmd.key), cmd.summary)
            for cmd in all_commands()]
    out = render.table(['command', 'key', 'what it does'],
                       [list(row) for row in rows])
    ui.show(out)
    ui.show('Python runs as typed: root, connection (conn), get(oid), storage'
            ' are defined.\nTab completes names, attributes and keys;'
            ' Ctrl-R searches history; Ctrl-C cancels; Ctrl-D leaves.')


@command('status', key=('f2',), aliases=('st',))
def status_command(session, args, ui):
    """Show what is open and the changes not yet committed."""
    target = session.target
    if target is not None:
        ui.show('\n'.join(target.describe()))
    changes = session.pending_changes()
    unnoted = session.unnoted_changes()
    if unnoted:
        ui.show('%d object%s changed in place without _p_note_change(): a '
                'commit would not write them (:diff shows them, :touch EXPR '
                'includes one).' % (len(unnoted), '' if len(unnoted) == 1
                                    else 's'))
    if not changes:
        ui.show('No uncommitted changes.')
        return
    ui.show(describe_changes(changes, 'Uncommitted: '))


def describe_changes(changes, heading):
    """Lines listing changed and new objects, as a str."""
    from durus_shell import peek
    lines = ['%s%d changed object%s, %d new' % (
        heading, len(changes.changed), '' if len(changes.changed) == 1
        else 's', len(changes.new))]
    listed = [('changed', obj) for obj in changes.changed] + \
        [('new', obj) for obj in changes.new]
    for kind, obj in listed[:MAX_LISTED]:
        oid = peek._getattribute(obj, '_p_oid')
        label = '<%s %d>' % (type(obj).__name__, int.from_bytes(oid, 'big')) \
            if oid is not None else '<%s>' % type(obj).__name__
        lines.append('  %-7s %-24s %s' % (kind, label,
                                          peek.class_path(type(obj))))
    if len(listed) > MAX_LISTED:
        lines.append('  ... %d more' % (len(listed) - MAX_LISTED))
    return '\n'.join(lines)


@command('commit', key=('c-x', 'c'), aliases=('c',))
def commit_command(session, args, ui):
    """Show what will be written, ask, then commit.

    On a conflict (another client changed objects this transaction read)
    the transaction is aborted and the objects are named: redo the change.
    """
    if not ui.interactive:
        raise CommandError('scripts commit once, at the end, when run with'
                           ' --commit')
    if session.readonly:
        raise CommandError('read-only session: nothing can be committed'
                           ' (reopen without --readonly)')
    if session.connection.invalid_oids:
        raise CommandError('another client changed objects this transaction '
                           'read (a conflict): run :abort, then redo the '
                           'change')
    changes = session.pending_changes()
    if not changes:
        ui.show('Nothing to commit.')
        return
    ui.show(describe_changes(changes, 'Will write: '))
    answer = ui.ask('Commit %d object%s?' % (len(changes), '' if
                    len(changes) == 1 else 's'),
                    [('y', 'yes'), ('n', 'no')], 'n')
    if answer != 'y':
        ui.show('Not committed; the changes are still pending.')
        return
    commit_now(session, ui)


def commit_now(session, ui):
    """Commit and report, explaining a conflict.  Returns True on success."""
    from durus_shell.session import CommitConflict
    try:
        changes = session.commit()
    except CommitConflict as conflict:
        ui.show(explain_conflict(session, conflict))
        return False
    ui.show('Committed %d object%s.' % (len(changes), '' if len(changes) == 1
                                        else 's'))
    return True


def explain_conflict(session, conflict):
    count = len(conflict.oids)
    names = []
    for oid in conflict.oids[:10]:
        obj = session.connection.cache.get(oid)
        number = int.from_bytes(oid, 'big')
        names.append('<%s %d>' % (type(obj).__name__, number)
                     if obj is not None else 'oid %d' % number)
    if count == 0:  # the storage did not say which
        objects = 'objects'
    elif count == 1:
        objects = names[0]
    else:
        objects = '%d objects (%s%s)' % (
            count, ', '.join(names),
            ' and %d more' % (count - 10) if count > 10 else '')
    pronoun = 'it' if count == 1 else 'them'
    return ('Conflict: another client changed %s after this transaction read '
            '%s. Nothing was written; the transaction was aborted and your '
            'edits dropped. Look at %s again, redo the change, and :commit.'
            % (objects, pronoun, pronoun))


@command('abort', key=('c-x', 'a'))
def abort_command(session, args, ui):
    """Drop every uncommitted edit and catch up with other clients."""
    dropped = session.change_count()
    others = session.abort()
    ui.show('Dropped %d changed object%s; %d object%s changed by other clients'
            ' meanwhile.' % (dropped, '' if dropped == 1 else 's', others,
                             '' if others == 1 else 's'))


@command('quit', key=('c-x', 'q'), aliases=('q', 'exit'))
def quit_command(session, args, ui):
    """Leave the shell; with uncommitted changes, ask: commit, abort or stay."""
    from durus_shell.session import QuitRequest
    if ui.interactive and session.has_unsaved_work():
        if not decide_exit(session, ui):
            return
    raise QuitRequest()


def decide_exit(session, ui):
    """Ask what to do with uncommitted changes; True means leave.

    Objects changed in place without ``_p_note_change()`` count too: a
    commit would not write them, so leaving would silently lose them.
    Choosing commit includes them (as ``:touch`` would).
    """
    count = session.change_count()
    unnoted = session.unnoted_changes()
    if session.readonly:
        choices = [('a', 'abort'), ('s', 'stay')]
    else:
        choices = [('c', 'commit'), ('a', 'abort'), ('s', 'stay')]
    parts = []
    if count:
        parts.append('%d uncommitted change%s' % (count, '' if count == 1
                                                  else 's'))
    if unnoted:
        parts.append('%d object%s changed in place without _p_note_change()'
                     ' (see :diff)' % (len(unnoted), '' if len(unnoted) == 1
                                       else 's'))
    answer = ui.ask(' and '.join(parts) + ':', choices, 's')
    if answer == 'c' and not session.readonly:
        touch = session.extensions.get('touch')
        for obj in unnoted:
            touch(obj)
        return commit_now(session, ui)
    if answer == 'a':
        session.abort()
        ui.show('Changes dropped.')
        return True
    ui.show('Staying.')
    return False


@command('root', key=('c-x', 'r'))
def root_command(session, args, ui):
    """Show the root as a table: key, class, oid and record size."""
    from durus_shell.opening import root_table
    ui.show(root_table(session))


@command('more', interactive_only=True)
def more_command(session, args, ui):
    """Show the last long output in full, in the pager."""
    if not session.last_output:
        raise CommandError('no output to show yet')
    import pydoc
    pydoc.pager(session.last_output)
