"""The shell's commands and their dispatch, outside the Session.

``run_input(session, text, ui)`` runs one input: a ``:command`` line is
looked up in the registry (durus_shell.registry) and run here; anything
else is Python, run by the session.  Commands register themselves when
their module is imported: the basic ones below, and those of
durus_shell.fix_commands, imported here for that.
"""

from durus_shell import fix_commands  # noqa: F401 (registers its commands)
from durus_shell import habit_commands  # noqa: F401 (registers its commands)
from durus_shell import check_export_commands  # noqa: F401 (:check :export)
from durus_shell import history_commands  # noqa: F401 (registers its commands)
from durus_shell import retry_commands  # noqa: F401 (registers its commands)
from durus_shell import freshness, link
from durus_shell import object_paths, peek, render
from durus_shell.opening import root_table
from durus_shell.registry import (CommandError, all_commands, command,
                                  find_command, key_label,
                                  split_command_line)
from durus_shell.session import (CommitConflict, QuitRequest, Result,
                                 describe_error)
from durus_shell.retry import (COMMAND, HISTORY_COMMANDS, format_conflict,
                               last_step)
from durus_shell.ui import SilentUI

__all__ = ['run_input', 'run_command', 'CommandError', 'all_commands',
           'command', 'find_command', 'key_label', 'split_command_line',
           'decide_exit', 'commit_now']


def run_input(session, text, ui=None):
    """Run one input (a statement, block, or ``:command``)."""
    stripped = text.strip()
    if not stripped:
        return Result('empty', text)
    if ui is not None and stripped.split()[0] != ':reconnect':
        link.reconnect_if_needed(session, ui)
    short = habit_commands.shorthand(session, stripped)
    if short is not None:  # EXPR?, \\x, it
        return run_command(session, short, ui)
    if stripped.startswith(':') and '\n' not in stripped:
        return run_command(session, stripped, ui)
    word = BARE_WORDS.get(stripped)
    if word is not None and stripped not in session.namespace:
        # What a psql or Python user means by a bare 'exit' or '\\q'
        # (Python itself would only print how to leave).
        return run_command(session, word, ui)
    return session.run_python(text)


BARE_WORDS = {'exit': ':quit', 'quit': ':quit', '\\q': ':quit',
              'help': ':help'}


def run_command(session, line, ui=None):
    """Run one ``:command`` line; a Result says how it went."""
    if ui is None:
        ui = SilentUI()
    tracker = session.tracker
    try:
        name, args = split_command_line(line)
        cmd = find_command(name)
        if cmd.interactive_only and not ui.interactive:
            raise CommandError(':%s works only at the prompt' % cmd.name)
        tracker.begin_statement()
        steps_before = len(tracker.history)
        try:
            cmd.func(session, args, ui)
        finally:
            # A command may run the operator's expressions: what they
            # changed is one undo step, like a statement's.
            tracker.end_statement()
        if cmd.name not in HISTORY_COMMANDS:
            # Kept with the transaction's statements for :retry.
            session.journal.note(COMMAND, line,
                                 last_step(tracker, steps_before))
    except QuitRequest:
        return Result('quit', line)
    except KeyboardInterrupt:
        return Result('interrupted', line,
                      traceback='Interrupted: %s stopped' % line)
    except CommandError as error:
        return Result('error', line, error=error,
                      traceback='%s: %s' % (line.split()[0], error))
    except Exception as error:
        return Result('error', line, error=error,
                      traceback='%s: %s' % (line.split()[0],
                                            describe_error(error)))
    return Result('command', line)


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
    if args:
        cmd = find_command(args.lstrip(':'))
        lines = [cmd.usage + ('   (key: %s)' % key_label(cmd.key)
                              if cmd.key else '')]
        if cmd.aliases:
            lines.append('also: ' + ', '.join(':' + alias
                                              for alias in cmd.aliases))
        lines += ['', cmd.doc]
        ui.show('\n'.join(lines))
        return
    rows = [(cmd.usage, ' '.join(':' + alias for alias in cmd.aliases),
             key_label(cmd.key), cmd.summary)
            for cmd in all_commands()]
    out = render.table(['command', 'aliases', 'key', 'what it does'],
                       [list(row) for row in rows])
    ui.show(out)
    ui.show('Python runs as typed: root, connection (conn), get(oid), storage'
            ' are defined.\nTab completes names, attributes and keys;'
            ' Ctrl-R searches history; Ctrl-C cancels; Ctrl-D leaves.')


@command('status', key=('f2',), aliases=('st',))
def status_command(session, args, ui):
    """Show what is open, whether others committed since this view (as
    the toolbar does), and the changes not yet committed."""
    target = session.target
    if target is not None:
        ui.show('\n'.join(target.describe()))
    behind = freshness.status_note(session)
    if behind:
        ui.show('View: ' + behind)
    changes = session.pending_changes()
    if not changes:
        ui.show('No uncommitted changes.')
        return
    ui.show(describe_changes(changes, 'Uncommitted: ', session))


def describe_changes(changes, heading, session=None):
    """Lines listing changed, new and changed-in-place objects, as a str.
    With ``session``, each listed object's path from the root is shown
    when the shared bounded lookup finds it (durus_shell.object_paths)."""
    lines = ['%s%d changed object%s, %d new' % (
        heading, len(changes.changed), '' if len(changes.changed) == 1
        else 's', len(changes.new))]
    listed = [('changed', obj) for obj in changes.changed] + \
        [('new', obj) for obj in changes.new]
    paths = _listed_paths(session, [obj for _, obj in listed[:MAX_LISTED]])
    for kind, obj in listed[:MAX_LISTED]:
        lines.append(_object_line(kind, obj, paths))
    if len(listed) > MAX_LISTED:
        lines.append('  ... %d more' % (len(listed) - MAX_LISTED))
    if changes.unnoted:
        lines.append(describe_in_place(changes.unnoted, session))
    return '\n'.join(lines)


def describe_in_place(unnoted, session=None):
    """The lines naming objects changed in place (a commit skips them)."""
    count = len(unnoted)
    lines = ['%d object%s changed in place without _p_note_change(): a '
             'commit would NOT write %s unless touched (:touch EXPR, or '
             't at the commit question; :diff shows the change):' % (
                 count, '' if count == 1 else 's',
                 'it' if count == 1 else 'them')]
    paths = _listed_paths(session, unnoted[:MAX_LISTED])
    for obj in unnoted[:MAX_LISTED]:
        lines.append(_object_line('in place', obj, paths))
    if count > MAX_LISTED:
        lines.append('  ... %d more' % (count - MAX_LISTED))
    return '\n'.join(lines)


def _listed_paths(session, objects):
    if session is None or not objects:
        return {}
    return object_paths.object_paths(session, objects)


def _object_line(kind, obj, paths=None):
    oid = peek.oid_of(obj)
    label = '<%s %d>' % (type(obj).__name__, int.from_bytes(oid, 'big')) \
        if oid is not None else '<%s>' % type(obj).__name__
    line = '  %-7s %-24s %s' % (kind, label, peek.class_path(type(obj)))
    path = (paths or {}).get(id(obj))
    return line + '  at ' + path if path else line


def _plural(count, word):
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


@command('commit', key=('c-x', 'c'), aliases=('c',))
def commit_command(session, args, ui):
    """Show what will be written, ask, then commit.

    Objects changed in place without _p_note_change() are listed too: the
    question offers to include them (t) or to commit without them.  On a
    conflict (another client changed objects this transaction read) the
    transaction is aborted and, per object and attribute, the value read,
    the value now committed and the value set are shown; the statements
    are kept, and :retry re-runs them on the new state.
    """
    if not ui.interactive:
        raise CommandError('scripts commit once, at the end, when run with'
                           ' --commit')
    if session.readonly:
        raise CommandError('read-only session: nothing can be committed'
                           ' (reopen without --readonly)')
    if session.connection.invalid_oids:
        # Another client's change already met: a conflict, shown now.
        commit_now(session, ui)
        return
    changes = session.pending_changes()
    if not changes:
        ui.show('Nothing to commit.')
        return
    ui.show(describe_changes(changes, 'Will write: ', session))
    if changes.unnoted and changes.written:
        choices = [('t', 'touch them and commit all'),
                   ('y', 'yes, without them'), ('n', 'no')]
        question = 'Commit %s, and the %s changed in place?' % (
            _plural(changes.written, 'object'),
            _plural(len(changes.unnoted), 'object'))
    elif changes.unnoted:
        choices = [('t', 'touch and commit'), ('n', 'no')]
        question = 'Commit the %s changed in place?' % _plural(
            len(changes.unnoted), 'object')
    else:
        choices = [('y', 'yes'), ('n', 'no')]
        question = 'Commit %s?' % _plural(changes.written, 'object')
    settings = getattr(session, 'settings', None)
    if choices[0][0] == 'y' and settings is not None and \
            not settings.confirm_commit:
        ui.show('Committing without asking (confirm_commit = false in the'
                ' config file).')
        answer = 'y'
    else:
        answer = ui.ask(question, choices, 'n')
    if answer == 't':
        session.tracker.touch_unnoted()
    elif answer != 'y':
        ui.show('Not committed; the changes are still pending.')
        return
    ask_reason(session, ui)
    commit_now(session, ui)


def ask_reason(session, ui):
    """With --log on and no --reason, ask the reason for the log entry."""
    log = getattr(session, 'audit_log', None)
    if log is None or log.reason:
        return
    reason = ui.ask_text('Reason or ticket (recorded in the audit log):')
    log.next_reason = reason.strip() or None


def commit_now(session, ui):
    """Commit and report, explaining a conflict.  Returns True on success."""
    try:
        changes = session.commit()
    except CommitConflict as conflict:
        ui.show(explain_conflict(session, conflict))
        return False
    ui.show('Committed %s.' % _plural(changes.written, 'object'))
    if changes.unnoted:
        ui.show(describe_in_place(changes.unnoted, session).replace(
            'would NOT write', 'did NOT write'))
    return True


def explain_conflict(session, conflict):
    """The conflict, per object and attribute, and what :retry would do."""
    objects = conflict.objects
    paths = _listed_paths(session, [item.obj for item in objects[:10]])
    return '\n'.join(format_conflict(
        objects, len(conflict.statements),
        paths={item.oid: paths[id(item.obj)] for item in objects
               if item.obj is not None and id(item.obj) in paths}))


@command('abort', key=('c-x', 'a'))
def abort_command(session, args, ui):
    """Drop every uncommitted edit and catch up with other clients.

    With edits pending, asks first (default no); :undo right after brings
    the dropped edits back (until the next edit).
    """
    changes = session.pending_changes()
    dropped = len(changes)
    # Asked before the abort takes them: what others committed meanwhile.
    coming = freshness.incoming(session)
    asked = dropped and ui.interactive
    if asked:
        ui.show(describe_changes(changes, 'Would drop: ', session))
        if coming:
            ui.show('\n'.join(coming))
        answer = ui.ask('Drop %s?' % _plural(dropped, 'changed object'),
                        [('y', 'yes, drop them'), ('n', 'no')], 'n')
        if answer != 'y':
            ui.show('Not aborted; the changes are still pending.')
            return
    others = session.abort()
    ui.show('Dropped %d changed object%s; %d object%s changed by other clients'
            ' meanwhile.%s' % (dropped, '' if dropped == 1 else 's', others,
                               '' if others == 1 else 's',
                               ' (:undo brings the edits back)'
                               if session.tracker.aborted_steps else ''))
    if coming and not asked:
        ui.show('\n'.join(coming).replace('Would bring in', 'Brought in', 1))


@command('quit', key=('c-x', 'q'), aliases=('q', 'exit'))
def quit_command(session, args, ui):
    """Leave the shell; with uncommitted changes, ask: commit, abort or stay."""
    if ui.interactive and session.has_unsaved_work():
        if not decide_exit(session, ui):
            return
    raise QuitRequest()


def decide_exit(session, ui):
    """Ask what to do with uncommitted changes; True means leave.

    Objects changed in place without ``_p_note_change()`` count too: a
    commit would not write them, so leaving would silently lose them.
    What a commit would write is listed first; choosing commit includes
    the objects changed in place (as ``:touch`` would).
    """
    changes = session.pending_changes()
    if not changes and session.journal.kept:
        return _leave_kept_statements(session, ui)
    if session.readonly:
        choices = [('a', 'abort'), ('s', 'stay')]
    else:
        choices = [('c', 'commit'), ('a', 'abort'), ('s', 'stay')]
        ui.show(describe_changes(changes, 'Uncommitted: ', session))
    parts = []
    if changes.written:
        parts.append(_plural(changes.written, 'uncommitted change'))
    if changes.unnoted:
        parts.append('%s changed in place without _p_note_change()'
                     ' (see :diff)' % _plural(len(changes.unnoted), 'object'))
    answer = ui.ask(' and '.join(parts) + ':', choices, 's')
    if answer == 'c' and not session.readonly:
        session.tracker.touch_unnoted()
        return commit_now(session, ui)
    if answer == 'a':
        session.abort()
        ui.show('Changes dropped.')
        return True
    ui.show('Staying.')
    return False


def _leave_kept_statements(session, ui):
    """Nothing pending, but statements kept after a conflict (or a lost
    server): leaving forgets them, so ask."""
    count = len(session.journal.kept)
    answer = ui.ask('%s kept for :retry (after a failed commit) would be '
                    'lost:' % _plural(count, 'statement'),
                    [('q', 'quit'), ('s', 'stay')], 's')
    if answer == 'q':
        return True
    ui.show('Staying (:retry re-runs them, :retry --list shows them).')
    return False


@command('root', key=('c-x', 'r'))
def root_command(session, args, ui):
    """Show the root as a table: key, class, oid and record size."""
    ui.show(root_table(session))


@command('more', interactive_only=True)
def more_command(session, args, ui):
    """Show the last long output in full, in the pager."""
    if not session.last_output:
        raise CommandError('no output to show yet')
    if callable(session.last_output):   # built only now (paging.Deferred)
        session.last_output = session.last_output()
    import pydoc
    settings = getattr(session, 'settings', None)
    if settings is not None and settings.pager:
        pydoc.pipepager(session.last_output, settings.pager)
    else:
        pydoc.pager(session.last_output)
