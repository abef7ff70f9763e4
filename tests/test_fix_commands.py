"""The data-fix commands through a Session (durus_shell.fix_commands)."""

import pytest

from durus.connection import Connection, gen_every_instance
from durus.format import open_storage
from durus_shell.session import Session
from durus_shell.ui import RecordingUI
from fixture_app.models import Account, User
from durus_shell.commands import run_input, run_command


@pytest.fixture
def session(fixture_copy):
    path = fixture_copy('shelf-packed.durus')
    session = Session(open_storage(path))
    session.path = path
    yield session
    session.close()


def command(session, line):
    ui = RecordingUI()
    result = run_command(session, line, ui)
    assert result.kind == 'command', result.traceback
    return ui.text


def test_edit_diff_undo_diff_commit(session):
    run_input(session, "root['users'][3].name = 'renamed'")
    run_input(session, "root['log'].append('fix-1')")
    run_input(session, "root['config']['new'] = 1")
    text = command(session, ':diff')
    assert "root['users'][3] <fixture_app.models.User" in text
    assert ".name: 'user3' -> 'renamed'" in text
    assert "root['log']" in text and "'fix-1'" in text
    assert "['new']: + 1" in text
    assert 'undid 2 statements' in command(session, ':undo 2')
    text = command(session, ':diff')
    assert 'renamed' in text and 'fix-1' not in text and "['new']" not in text
    assert 'redid 1' in command(session, ':redo')
    assert 'fix-1' in command(session, ':diff')
    session.commit()
    assert command(session, ':diff').startswith('no uncommitted changes')
    session.close()
    storage = open_storage(session.path)
    try:
        root = Connection(storage).get_root()
        assert root['users'][3].name == 'renamed'
        assert root['log'][-1] == 'fix-1'
        assert 'new' not in root['config']
    finally:
        storage.close()


def test_find_census_refs_path_get(session, manifest):
    text = command(session, ':find User --limit 5')
    found = session.namespace['_']
    assert len(found) == 5 and all(isinstance(u, User) for u in found)
    assert 'oid' in text and 'fixture_app.models.User' in text
    command(session, ':find fixture_app.models.Account --where "obj.balance > 200"')
    rich = session.namespace['_']
    expected = [a for a in gen_every_instance(session.connection, Account)
                if a.balance > 200]
    assert sorted(a._p_oid for a in rich) == sorted(a._p_oid for a in expected)
    text = command(session, ':census')
    assert session.namespace['_']['fixture_app.models.User'] == \
        manifest['n_users']
    assert 'durus.btree.BNode16' in text
    account = run_input(session, "root['users'][2].account").value
    command(session, ":refs root['users'][2].account")
    assert session.namespace['_'] == [account.owner]
    text = command(session, ':path %d' % int.from_bytes(account._p_oid, 'big'))
    assert session.namespace['_'] == "root['users'][2].account"
    command(session, ':get %d' % int.from_bytes(account._p_oid, 'big'))
    assert session.namespace['_'] is account


def test_ls_and_tree(session):
    text = command(session, ":ls root['users'][1]")
    assert '.email' in text and '.account' in text and 'user1' in text
    text = command(session, ':tree root --depth 2')
    assert "['users']  <durus.btree.BTree" in text
    assert '(cycle)' in command(session, ":tree root['users'][1] --depth 3")
    assert '30 more' in command(session, ":tree root['users'] --depth 1")


def test_touch_and_unnoted_warning(session):
    run_input(session, "root['users'][1].tags.append('x')")
    assert 'UNNOTED' in command(session, ':diff')
    command(session, ":touch root['users'][1]")
    assert 'UNNOTED' not in command(session, ':diff')
    assert 'undid 1' in command(session, ':undo')
    assert 'UNNOTED' in command(session, ':diff')
    session.abort()
    assert run_input(session, "root['users'][1].tags").value == ['t1', 'all']


def test_log_appends_each_commit(session, tmp_path):
    log = tmp_path / 'fixes.log'
    command(session, ':log %s' % log)
    run_input(session, "root['users'][4].email = 'x@example.org'")
    session.commit()
    run_input(session, "root['log'].append('second')")
    session.commit()
    text = log.read_text()
    assert text.count('=== ') == 2
    assert session.path in text
    assert "'x@example.org'" in text and "'second'" in text


def test_bad_arguments_are_one_line_errors(session):
    ui = RecordingUI()
    for line in (':undo', ':find', ':find User --limit x', ':get abc',
                 ':refs 1+', ':tree root --depth'):
        result = run_command(session, line, ui)
        assert result.kind == 'error', line
        assert '\n' not in result.traceback


def test_leaving_with_only_an_unnoted_change_asks_first(session):
    """An edit made in place without _p_note_change() is not lost at exit."""
    from durus_shell.commands import decide_exit
    run_input(session, "root['users'][1].tags.append('late')")
    assert session.change_count() == 1  # counted like any pending change
    assert session.has_unsaved_work()
    assert 'changed in place' in command(session, ':status')
    stay = RecordingUI(answers=['s'])
    assert decide_exit(session, stay) is False
    assert 'changed in place without _p_note_change()' in stay.questions[0]
    # Commit includes the unnoted object (touched); what it writes is
    # listed before the question.
    leave = RecordingUI(answers=['c'])
    assert decide_exit(session, leave) is True
    assert 'in place <User 4>' in leave.shown[0]
    assert 'Committed 1 object.' in leave.text
    session.close()
    reopened = Connection(open_storage(session.path))
    assert reopened.get_root()['users'][1].tags == ['t1', 'all', 'late']
    reopened.storage.close()


def test_quit_command_asks_about_unnoted_changes(session):
    run_input(session, "root['users'][2].tags.append('late')")
    ui = RecordingUI(answers=['a'])
    result = run_command(session, ':quit', ui)
    assert ui.questions and 'changed in place' in ui.questions[0]
    assert result.kind == 'quit'
    # :abort-like choice restored the stored state in memory.
    assert run_input(session, "root['users'][2].tags").value == ['t2', 'all']
