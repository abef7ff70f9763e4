"""The server connection: its state, reconnecting, and ``:reconnect``.

Only storages that can lose their server (``ClientStorage``: they have
``connected`` and ``reconnect()``) have a link.  When the server goes
away, the statement that met it fails (ShortRead); the toolbar and
:status then say DISCONNECTED.  The next input (or ``:reconnect``) opens
a new server session first.  The other clients' commits made meanwhile
were never announced to this one, so every loaded state is forgotten
(``Connection.forget_loaded_states``): the pending edits in memory go,
but their statements are kept, as for a conflict, and ``:retry``
re-applies them on the new state.
"""

from durus.error import ProtocolError, ServerUnreachableError, ShortRead
from durus_shell.registry import CommandError, command

LINK_ERRORS = (ShortRead, ServerUnreachableError, ProtocolError, OSError)


def link_of(session):
    """The session's storage if it talks to a server, else None."""
    storage = session.storage
    if hasattr(storage, 'reconnect') and hasattr(storage, 'connected'):
        return storage
    return None


def is_disconnected(session):
    link = link_of(session)
    return link is not None and not link.connected


def lost_the_link(session, error):
    """Whether ``error`` came from losing the server connection (the
    statement it stopped is kept: it may well run after a reconnect)."""
    return isinstance(error, LINK_ERRORS) and is_disconnected(session)


def toolbar_part(session):
    """'DISCONNECTED ...' for the toolbar, or None."""
    if is_disconnected(session):
        return 'DISCONNECTED (:reconnect)'
    return None


def where(session):
    link = link_of(session)
    return str(getattr(link, 'address', 'the server'))


def reconnect(session, ui, automatic=False):
    """Open a new server session; keep the pending edits' statements.

    Raises CommandError, naming the address and the reason, while the
    server cannot be reached (nothing is dropped then)."""
    link = link_of(session)
    try:
        link.reconnect()
    except LINK_ERRORS as error:
        raise CommandError(
            'the storage server at %s is still unreachable (%s). Your edits'
            ' are still in memory; :reconnect tries again, and so does the'
            ' next command.' % (where(session), error))
    pending = session.change_count()
    kept = session.journal.keep('disconnected') if pending else []
    uncertain = session.commit_outcome_unknown
    session.commit_outcome_unknown = False
    session.connection.forget_loaded_states()
    lines = ['%s to the storage server at %s: every object is read again'
             ' (other clients may have committed meanwhile).' % (
                 'Reconnected' if not automatic else
                 'The server connection was lost; reconnected', where(session))]
    if kept:
        lines.append('The %d pending change%s dropped with the old '
                     'connection, but your %d statement%s %s kept: :retry '
                     're-applies %s on the new state and asks to commit '
                     '(:retry --list shows %s).' % (
                         pending, ' was' if pending == 1 else 's were',
                         len(kept),
                         '' if len(kept) == 1 else 's',
                         'is' if len(kept) == 1 else 'are',
                         'it' if len(kept) == 1 else 'them',
                         'it' if len(kept) == 1 else 'them'))
    elif pending:
        lines.append('The %d pending change%s dropped with the old '
                     'connection; no statement made %s (redo %s).'
                     % (pending, ' was' if pending == 1 else 's were',
                        'it' if pending == 1 else 'them',
                        'it' if pending == 1 else 'them'))
    if uncertain:
        lines.append('The connection was lost during a commit: it may have'
                     ' been written. Look at the data before :retry (a'
                     ' statement like x += 1 would apply twice).')
    ui.show('\n'.join(lines))


def reconnect_if_needed(session, ui):
    """Before running an input: reconnect a lost link (best effort: while
    the server is away, say so and let the input run)."""
    if not is_disconnected(session):
        return
    try:
        reconnect(session, ui, automatic=True)
    except CommandError as error:
        ui.show(str(error))


@command('reconnect', usage=':reconnect')
def reconnect_command(session, args, ui):
    """Connect to the storage server again after it went away.

    Any command does it too, when the connection was lost.  Pending edits
    are dropped with the old connection, but their statements are kept:
    :retry re-applies them on the new state.
    """
    if link_of(session) is None:
        raise CommandError('not connected to a storage server (this is %s)'
                           % (session.target.label if session.target
                              else 'a local storage'))
    if not is_disconnected(session):
        ui.show('Connected to the storage server at %s; nothing to do.'
                % where(session))
        return
    reconnect(session, ui)
