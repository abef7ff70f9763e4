"""The operator's view must be true: each case the change tracker and the
commit path used to get wrong, typed into durus-shell in a real
pseudo-terminal (two shells on one server for the first)."""

import pexpect
import pytest

from test_shell_pty import (CTRL_X, PROMPT, TESTS_DIR, env, finish,  # noqa
                            spawn, value_of)


def typed(child, line):
    child.send(line + '\r')
    child.expect(PROMPT)


def quit_dropping(child):
    child.sendcontrol('d')
    index = child.expect([r'\[a\]bort', pexpect.EOF])
    if index == 0:
        child.send('a\r')
        child.expect(pexpect.EOF)
    child.close()


def test_diff_on_a_server_after_another_client_committed(shelf_server, env):
    first = spawn(env, '--client', shelf_server, '--path', TESTS_DIR)
    second = spawn(env, '--client', shelf_server, '--path', TESTS_DIR)
    try:
        for child in (first, second):
            child.expect(PROMPT)
            typed(child, "w = root['users'][10]; w.name")
        typed(first, "w.name = 'ten-A'")
        first.send(':commit\r')
        first.expect(r'\[y\]es')
        first.send('y\r')
        first.expect('Committed 1 object')
        first.expect(PROMPT)
        typed(second, "w.email = 'b@x'")
        second.send(':diff\r')
        second.expect('CONFLICT: another client changed it')
        second.expect(r"\.email: 'USER10@EXAMPLE.ORG' -> 'b@x'")
        second.expect(PROMPT)
        assert ".name: +" not in second.before
        assert "'user10'" not in second.before   # .name did not change here
        quit_dropping(second)
        first.sendcontrol('d')
        assert finish(first) == 0
    finally:
        first.close(force=True)
        second.close(force=True)
    assert value_of('--client', shelf_server, '-c',
                    "root['users'][10].email") == "'USER10@EXAMPLE.ORG'"


def test_commit_preview_shows_an_in_place_edit_and_offers_touch(
        fixture_copy, env):
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    try:
        child.expect(PROMPT)
        typed(child, "u = root['users'][8]; u.name = 'eight'")
        typed(child, "root['users'][9].tags.append('x')")
        child.send(':commit\r')
        child.expect(r'changed <User 11>')
        child.expect('1 object changed in place without _p_note_change')
        child.expect(r'in place <User 12>')
        child.expect(r'\[t\]ouch them and commit all, \[y\]es, without'
                     r' them, \[n\]o')
        child.send('t\r')
        child.expect('Committed 2 objects.')
        child.expect(PROMPT)
        child.sendcontrol('d')
        assert finish(child) == 0
    finally:
        child.close(force=True)
    assert value_of(path, '-c', "root['users'][9].tags") == \
        "['t0', 'all', 'x']"
    assert value_of(path, '-c', "root['users'][8].name") == "'eight'"


def test_an_in_place_edit_alone_is_seen_by_commit_status_and_toolbar(
        fixture_copy, env):
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    try:
        child.expect(PROMPT)
        typed(child, "root['users'][20].tags.append('q')")
        child.send(':status\r')
        child.expect('Uncommitted: 0 changed objects, 0 new')
        child.expect(r'in place <User 43>')
        child.expect(PROMPT)
        assert 'No uncommitted changes' not in child.before
        child.send(':commit\r')
        child.expect(r'Commit the 1 object changed in place\? \[t\]ouch and'
                     r' commit, \[n\]o')
        child.send('t\r')
        child.expect('Committed 1 object.')
        child.expect(PROMPT)
        child.sendcontrol('d')
        assert finish(child) == 0
    finally:
        child.close(force=True)
    assert value_of(path, '-c', "root['users'][20].tags") == \
        "['t2', 'all', 'q']"


def test_undo_takes_back_an_in_place_edit_and_counts_honestly(
        fixture_copy, env):
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    try:
        child.expect(PROMPT)
        typed(child, "root['users'][20].name = 'x'")
        typed(child, "root['users'][21].tags.append('y')")
        child.send(':status\r')
        child.expect('Uncommitted: 1 changed object, 0 new')
        child.expect(r'in place <User 44>')
        child.expect(PROMPT)
        child.send(':undo\r')
        child.expect('undid 1 statement; 1 changed object remains')
        child.expect(PROMPT)
        typed(child, "root['users'][21].tags, root['users'][20].name")
        assert "(['t0', 'all'], 'x')" in child.before
        child.send(':undo\r')
        child.expect('undid 1 statement; 0 changed objects remain')
        child.expect(PROMPT)
        child.sendcontrol('d')
        assert finish(child) == 0     # nothing pending: no question
    finally:
        child.close(force=True)


def test_toolbar_counts_what_status_counts(fixture_copy):
    """The toolbar (drawn by prompt_toolkit; not drawn in a pty without
    cursor position reports) counts in-place edits like :status."""
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.output import DummyOutput
    from durus.file_storage import FileStorage
    from durus_shell import app
    from durus_shell.commands import run_input
    from durus_shell.session import Session
    from durus_shell.ui import RecordingUI
    session = Session(FileStorage(fixture_copy('shelf.durus')))
    try:
        ui = app.TerminalUI(session, color=False, output=DummyOutput())
        prompt = app.make_prompt_session(session, ui, app.Stash(),
                                         output=DummyOutput(),
                                         history=InMemoryHistory())
        assert 'no changes' in prompt.bottom_toolbar()
        run_input(session, "root['users'][20].tags.append('q')")
        assert '1 uncommitted' in prompt.bottom_toolbar()
        run_input(session, "root['users'][21].name = 'x'")
        assert '2 uncommitted' in prompt.bottom_toolbar()
        run_input(session, ':undo', RecordingUI())
        assert '1 uncommitted' in prompt.bottom_toolbar()
        run_input(session, ':undo', RecordingUI())
        assert 'no changes' in prompt.bottom_toolbar()
    finally:
        session.close()


class Box(object):
    """A plain holder (importable: tests/ is on sys.path)."""

    def __init__(self, content):
        self.content = content


NESTINGS = {
    'plain object': 'Box(new)',
    'list': '[1, [2, new]]',
    'dict': "{'a': {'b': new}}",
    'set': '{new}',
    'tuple': '(1, (2, (3, new)))',
    'several deep': "Box([{'k': (Box({new}),)}])",
}


@pytest.mark.parametrize('nesting', sorted(NESTINGS))
def test_diff_status_and_commit_agree_on_new_objects(nesting, tmp_path):
    from durus.connection import ConnectionObserver
    from durus.file_storage import FileStorage
    from durus_shell.commands import run_input
    from durus_shell.session import Session
    from durus_shell.ui import RecordingUI
    from fixture_app.models import User

    class Written(ConnectionObserver):
        def after_commit(self, connection, written):
            self.objects = list(written)

    session = Session(FileStorage(str(tmp_path / 'agree.durus')))
    try:
        session.namespace.update(Box=Box, User=User)
        run_input(session, 'new = User(); new.friend = User()')
        result = run_input(session, "root['box'] = " + NESTINGS[nesting])
        assert result.kind == 'ok', result.traceback
        status = RecordingUI()
        run_input(session, ':status', status)
        diff = RecordingUI()
        run_input(session, ':diff', diff)
        ask = RecordingUI(answers=['y'])
        written = session.connection.add_observer(Written())
        run_input(session, ':commit', ask)
        assert 'Uncommitted: 1 changed object, 2 new' in status.text
        assert '1 changed, 2 new, 0 unnoted' in diff.text
        assert 'Will write: 1 changed object, 2 new' in ask.text
        assert ask.questions == ['Commit 3 objects?']
        assert 'Committed 3 objects.' in ask.text
        assert len(written.objects) == 3
    finally:
        session.close()
