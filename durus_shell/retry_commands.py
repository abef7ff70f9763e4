"""``:retry``: re-run the statements a conflict (or a lost server) kept.

The statements are kept by the session (durus_shell.retry); this module
is only the command around them.
"""

from durus_shell.fix_commands import diff_lines
from durus_shell.registry import CommandError, command, find_command
from durus_shell.retry import RetryFailed, rerun

REASONS = {'conflict': 'a conflict',
           'disconnected': 'the lost server connection'}


def kept_lines(statements):
    """The kept statements, numbered, as lines."""
    lines = []
    for number, statement in enumerate(statements, 1):
        text = statement.source.rstrip().splitlines() or ['']
        lines.append('%3d  %s' % (number, text[0]))
        lines.extend('     %s' % line for line in text[1:])
    return lines


@command('retry', usage=':retry [--list | --drop]')
def retry_command(session, args, ui):
    """Re-run the statements kept after a conflict, then ask to commit.

    After a conflict at :commit the transaction's statements are kept.
    :retry starts a fresh transaction (the other client's changes come
    in), re-runs them in order, shows :diff and asks to commit, as
    :commit does.  A statement that fails on the new state stops it: the
    statement and the error are named, the changes made so far dropped,
    nothing committed, and the statements stay kept.  --list shows the
    kept statements; --drop forgets them.
    """
    journal = session.journal
    option = args.strip()
    if option not in ('', '--list', '--drop'):
        raise CommandError('unknown option %r (use --list or --drop)'
                           % option)
    kept = list(journal.kept)
    if not kept:
        raise CommandError('nothing to retry: statements are kept only when'
                           ' a commit conflicts')
    if option == '--list':
        ui.show('Kept after %s (%d statement%s; :retry re-runs them):\n%s'
                % (REASONS.get(journal.kept_reason, 'a failed commit'),
                   len(kept), '' if len(kept) == 1 else 's',
                   '\n'.join(kept_lines(kept))))
        return
    if option == '--drop':
        journal.drop_kept()
        ui.show('Forgot %d kept statement%s.' % (
            len(kept), '' if len(kept) == 1 else 's'))
        return
    if not ui.interactive:
        raise CommandError('scripts retry with --commit --retry N')
    if session.readonly:
        raise CommandError('read-only session: nothing can be committed'
                           ' (reopen without --readonly)')
    if session.pending_changes():
        raise CommandError('there are uncommitted changes: :commit or :abort'
                           ' them first (:retry re-runs the kept statements'
                           ' on a fresh state)')
    session.abort()   # the freshest state: other clients' commits come in
    ui.show('Re-running %d statement%s on the new state.' % (
        len(kept), '' if len(kept) == 1 else 's'))
    try:
        rerun(session, kept, ui)
    except RetryFailed as failed:
        session.abort()
        raise CommandError(
            '%s\nNothing was committed; the changes the earlier statements'
            ' made were dropped. The statements are still kept (:retry'
            ' --list, :retry again, or :retry --drop).' % failed)
    # Now the open transaction's own statements: a new conflict keeps
    # them again.
    journal.drop_kept()
    if not session.pending_changes():
        ui.show('The statements changed nothing on the new state; nothing'
                ' to commit.')
        return
    ui.show('\n'.join(diff_lines(session, max_objects=200)))
    # :commit's question and outcome (found by name: commands.py imports
    # this module).
    find_command('commit').func(session, '', ui)
