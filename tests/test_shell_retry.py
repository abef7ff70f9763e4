"""Nothing lost on a conflict: the conflict report, :retry and --retry N.

Two sessions on one real server (``python -m durus -s``) in this process:
the second commit conflicts for real.
"""

import os
import subprocess
import sys

import pytest

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus_shell.commands import run_input
from durus_shell.script import EXIT_CONFLICT, EXIT_ERROR, run_script
from durus_shell.session import GATE_SCRIPT, Session
from durus_shell.ui import RecordingUI
from server_process import ServerProcess, free_port

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def server(fixture_copy, tmp_path):
    path = fixture_copy('shelf.durus')
    port = free_port()
    process = ServerProcess(['--file', path, '--port', str(port)],
                            tmp_path / 'server.log')
    try:
        yield port
    finally:
        process.stop()


@pytest.fixture
def open_session(server):
    sessions = []

    def open_one(mode=None):
        storage = ClientStorage(port=server)
        session = (Session(storage) if mode is None
                   else Session(storage, mode=mode))
        sessions.append(session)
        return session
    yield open_one
    for session in sessions:
        session.close()


def committed(port, expression):
    storage = ClientStorage(port=port)
    try:
        root = Connection(storage).get_root()
        return eval(expression, {'root': root})
    finally:
        storage.close()


def run(session, text, answers=()):
    ui = RecordingUI(answers=list(answers))
    result = run_input(session, text, ui)
    return result, ui


def other_client_sets(open_session, statement):
    other = open_session()
    run(other, statement)
    other.commit()


def test_conflict_shows_read_committed_and_set_then_retry_commits(
        open_session, server):
    mine = open_session()
    run(mine, "u = root['users'][3]")
    run(mine, "old = u.name")
    run(mine, "u.name = old + '-fixed'")
    run(mine, "u.email = 'fixed@example.org'")
    other_client_sets(open_session, "root['users'][3].name = 'Zed'")
    result, ui = run(mine, ':commit', answers=['y'])
    text = ui.text
    assert 'Conflict: another client committed changes to <User' in text
    assert (".name  you read 'user3'; now committed 'Zed'; "
            "you set 'user3-fixed'") in text
    assert ".email  you read " in text
    assert "you set 'fixed@example.org'" in text
    assert 'Your 4 statements are kept: :retry' in text
    assert committed(server, "root['users'][3].name") == 'Zed'
    listed = run(mine, ':retry --list')[1].text
    assert "1  u = root['users'][3]" in listed and "old = u.name" in listed
    # :retry re-runs all four on the new state: old is now 'Zed'.
    result, ui = run(mine, ':retry', answers=['y'])
    assert result.kind == 'command', result.traceback
    assert "Re-running 4 statements on the new state." in ui.text
    assert "'Zed' -> 'Zed-fixed'" in ui.text          # the :diff shown
    assert ui.questions and ui.questions[0].startswith('Commit 1 object')
    assert 'Committed 1 object.' in ui.text
    assert committed(server, "root['users'][3].name") == 'Zed-fixed'
    assert committed(server, "root['users'][3].email") == 'fixed@example.org'
    assert run(mine, ':retry')[0].kind == 'error'   # nothing kept any more


def test_undone_and_failed_statements_are_not_rerun(open_session, server):
    mine = open_session()
    run(mine, "root['users'][3].name = 'first'")
    run(mine, "root['users'][4].name = 'undone'")
    run(mine, ':undo')
    run(mine, "1/0")
    run(mine, "root['users'][3].email = 'kept@example.org'")
    other_client_sets(open_session, "root['users'][3].name = 'Zed'")
    text = run(mine, ':commit', answers=['y'])[1].text
    assert 'Your 2 statements are kept' in text
    listed = run(mine, ':retry --list')[1].text
    assert 'undone' not in listed and '1/0' not in listed
    run(mine, ':retry', answers=['y'])
    assert committed(server, "root['users'][3].name") == 'first'
    assert committed(server, "root['users'][4].name") == 'user4'


def test_a_statement_failing_on_the_new_state_stops_the_retry(
        open_session, server):
    other_client_sets(open_session, "root['config']['contact'] = 'y'")
    mine = open_session()
    run(mine, "root['users'][3].name = 'mine'")
    run(mine, "root['users'][3].email = root['config']['contact']")
    run(mine, "root['config']['seen'] = 1")
    other_client_sets(open_session, "del root['config']['contact']")
    run(mine, ':commit', answers=['y'])
    result, ui = run(mine, ':retry', answers=['y'])
    assert result.kind == 'error'
    assert 'statement 2 failed on the new state' in result.traceback
    assert "KeyError: 'contact'" in result.traceback
    assert "root['users'][3].email = root['config']['contact']" in \
        result.traceback
    assert 'Nothing was committed' in result.traceback
    assert not ui.questions
    assert mine.change_count() == 0            # partial changes dropped
    assert len(mine.journal.kept) == 3         # still kept for later
    assert committed(server, "root['users'][3].name") == 'user3'


def test_retry_refuses_with_pending_changes_and_drop_forgets(open_session):
    mine = open_session()
    run(mine, "root['users'][3].name = 'mine'")
    other_client_sets(open_session, "root['users'][3].name = 'Zed'")
    run(mine, ':commit', answers=['y'])
    run(mine, "root['users'][5].name = 'new edit'")
    result = run(mine, ':retry')[0]
    assert result.kind == 'error' and 'uncommitted changes' in result.traceback
    mine.abort()
    # Leaving would forget the kept statements: asked first.
    result, ui = run(mine, ':quit', answers=['s'])
    assert result.kind == 'command'
    assert ui.questions == ['1 statement kept for :retry (after a failed '
                            'commit) would be lost:']
    assert run(mine, ':quit', answers=['q'])[0].kind == 'quit'
    assert 'Forgot 1 kept statement' in run(mine, ':retry --drop')[1].text
    assert run(mine, ':quit')[0].kind == 'quit'   # nothing left: no question
    assert run(mine, ':retry --list')[0].kind == 'error'


def test_a_conflict_met_before_commit_is_kept_too(open_session, server):
    mine = open_session()
    run(mine, "root['users'][3].name = 'mine'")
    other_client_sets(open_session, "root['users'][3].email = 'z@z'; "
                      "root['users'][39].name = 'other'")
    # Loading an object the other client changed: a read conflict.
    result = run(mine, "root['users'][39].name")[0]
    assert 'ReadConflictError' in result.traceback
    assert mine.connection.invalid_oids
    text = run(mine, ':commit', answers=['y'])[1].text
    assert "Conflict: another client committed changes to <User" in text
    assert "you set 'mine'" in text
    assert ".email  you read" in text and "now committed 'z@z'" in text
    run(mine, ':retry', answers=['y'])
    assert committed(server, "root['users'][3].name") == 'mine'
    assert committed(server, "root['users'][3].email") == 'z@z'


# -- scripts: --commit --retry N ----------------------------------------------

SCRIPT = """\
u = root['users'][3]
u.name = u.name + '+'
"""


def conflicting_session(open_session, times):
    """A script session whose first ``times`` attempts meet another
    client's commit, made through the before_commit hook."""
    session = open_session(GATE_SCRIPT)
    left = [times]

    def interfere(session_, changes):
        if left[0]:
            left[0] -= 1
            other_client_sets(open_session,
                              "root['users'][3].email = 'other%d'" % left[0])
    session.hooks.add('before_commit', interfere)
    return session


def test_script_retries_on_conflicts(open_session, server, capsys):
    session = conflicting_session(open_session, 2)
    status = run_script(session, SCRIPT, 'fix.py', commit=True, retry=2)
    err = capsys.readouterr().err
    assert status == 0, err
    assert err.count('Conflict') == 2
    assert 'attempt 2 of 3' in err and 'attempt 3 of 3' in err
    assert committed(server, "root['users'][3].name") == 'user3+'


def test_script_conflict_exit_status_without_retries(open_session, server,
                                                     capsys):
    session = conflicting_session(open_session, 2)
    status = run_script(session, SCRIPT, 'fix.py', commit=True, retry=1)
    assert status == EXIT_CONFLICT != EXIT_ERROR
    err = capsys.readouterr().err
    assert 'gave up after 2 attempts' in err
    assert committed(server, "root['users'][3].name") == 'user3'


def test_command_line_retry_flag_and_status(server, tmp_path):
    script = tmp_path / 'fix.py'
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', '--client',
         '127.0.0.1:%d' % server, '--path', TESTS_DIR, '--script',
         str(script), '--commit', '--retry', '3'],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert committed(server, "root['users'][3].name") == 'user3+'
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', '--client',
         '127.0.0.1:%d' % server, '-c', '1', '--retry', '2'],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and '--retry needs --commit' in done.stderr


# -- a server that goes away ----------------------------------------------------

def test_server_gone_and_back_keeps_the_statements(fixture_copy, tmp_path):
    from durus_shell import link
    from durus_shell.commands import status_command
    from durus_shell.opening import open_client
    path = fixture_copy('shelf.durus')
    port = free_port()
    args = ['--file', path, '--port', str(port)]
    process = ServerProcess(args, tmp_path / 'server.log')
    session = None
    try:
        target = open_client('127.0.0.1:%d' % port)
        session = Session(target.storage, target)
        run(session, "u = root['users'][3]")
        run(session, "u.name = u.name + '-fixed'")
        assert link.toolbar_part(session) is None
        process.stop()
        result = run(session, "root['users'][9].name")[0]   # not loaded yet
        assert result.kind == 'error'
        assert 'ShortRead' in result.traceback or 'closed' in result.traceback
        assert link.toolbar_part(session) == 'DISCONNECTED (:reconnect)'
        assert 'DISCONNECTED (:reconnect)' in toolbar_of(session)
        ui = RecordingUI()
        status_command(session, '', ui)
        assert 'DISCONNECTED from the storage server' in ui.text
        # Still away: the next command says so and keeps the edits.
        result, ui = run(session, ':status')
        assert 'still unreachable' in ui.text
        assert session.change_count() == 1
        result = run(session, ':reconnect')[0]
        assert 'still unreachable' in result.traceback
        process = ServerProcess(args, tmp_path / 'server2.log')
        other_client_sets_at(port, "root['users'][3].email = 'other@x'")
        result, ui = run(session, ':status')    # reconnects first
        assert 'The server connection was lost; reconnected' in ui.text
        assert 'your 3 statements are kept' in ui.text
        assert link.toolbar_part(session) is None
        assert session.change_count() == 0
        result, ui = run(session, ':retry', answers=['y'])
        assert 'Committed 1 object.' in ui.text, ui.text
        assert committed(port, "root['users'][3].name") == 'user3-fixed'
        assert committed(port, "root['users'][3].email") == 'other@x'
        assert 'nothing to do' in run(session, ':reconnect')[1].text
    finally:
        if session is not None:
            session.close()
        process.stop()


def toolbar_of(session):
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.output import DummyOutput
    from durus_shell import app
    ui = app.TerminalUI(session, color=False, output=DummyOutput())
    prompt = app.make_prompt_session(session, ui, app.Stash(),
                                     output=DummyOutput(),
                                     history=InMemoryHistory())
    return prompt.bottom_toolbar()


def other_client_sets_at(port, statement):
    other = Session(ClientStorage(port=port))
    try:
        run(other, statement)
        other.commit()
    finally:
        other.close()


def test_a_conflicting_object_not_loaded_here_is_named(open_session):
    """The server names every record of the commit; one this session
    never loaded (a ghost) is listed without values."""
    from durus_shell.retry import ConflictSnapshot
    mine = open_session()
    run(mine, "root['users'][3].name = 'mine'")
    ghost = mine.connection.get_root()['users']   # loaded
    ghost._p_set_status_ghost()
    snapshot = ConflictSnapshot(mine, [ghost._p_oid])
    mine.abort()
    (item,) = snapshot.report(mine.connection)
    assert item.rows == [] and 'not loaded by this transaction' in item.note
