""":history, :revert and :rename-class through a Session, on real files."""

import pytest

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.sqlite_storage import SqliteStorage
from durus.storage import MemoryStorage
from durus_shell.commands import run_command, run_input
from durus_shell.session import Session
from durus_shell.ui import RecordingUI
from fixture_app.models import User
from server_process import durus_server  # noqa: F401 (fixture)


def make_versions(storage_class, path):
    """A never-packed file: root['user'] named four times, with a friend
    added in the third state."""
    connection = Connection(storage_class(str(path)))
    root = connection.get_root()
    user = root['user'] = User()
    for name in ('ann', 'Ann', 'Anne'):
        user.name = name
        if name == 'Ann':
            user.friend = root['friend'] = PersistentDict(a=1)
        connection.commit()
    user.email = 'anne@example.com'
    connection.commit()
    connection.get_storage().close()
    return str(path)


def command(session, line, answers=()):
    ui = RecordingUI(answers=answers)
    result = run_command(session, line, ui)
    return result, ui.text + (result.traceback or '')


def ok(session, line, answers=()):
    result, text = command(session, line, answers)
    assert result.kind == 'command', result.traceback
    return text


@pytest.fixture(params=[FileStorage, FileStorage2])
def session(request, tmp_path):
    path = make_versions(request.param, tmp_path / 'db.durus')
    session = Session(request.param(path))
    yield session
    session.close()


def test_history_lists_every_state_with_what_changed(session):
    text = ok(session, ":history root['user']")
    assert '4 states kept' in text
    lines = text.splitlines()
    heads = [line for line in lines if line.startswith('#')]
    assert [h.split()[0] for h in heads] == ['#1', '#2', '#3', '#4']
    offsets = [int(h.split()[4].rstrip(',').replace(',', ''))
               for h in heads]
    assert offsets == sorted(offsets)
    assert "      .name: 'ann' -> 'Ann'" in lines
    assert any(line.startswith('      .friend: + <durus.persistent_dict.'
                               'PersistentDict oid') for line in lines)
    assert "      .email: + 'anne@example.com'" in lines
    assert [state['name'] for state in session.namespace['_']] == [
        'ann', 'Ann', 'Anne', 'Anne']
    assert '(the committed state)' in heads[-1]
    # by oid, the same
    oid = int.from_bytes(session.root['user']._p_oid, 'big')
    assert ok(session, ':history %d' % oid) == text


def test_show_displays_an_old_state_without_loading_references(session):
    friend = session.root['friend']
    session.connection.abort()
    text = ok(session, ":history root['user'] --show 2")
    assert "name = 'Ann'" in text
    assert 'friend = <durus.persistent_dict.PersistentDict oid' in text
    assert 'read-only' in text
    assert friend._p_is_ghost()
    assert session.namespace['_']['name'] == 'Ann'
    result, text = command(session, ":history root['user'] --show 9")
    assert result.kind == 'error' and 'from 1 to 4' in text


def test_revert_is_an_ordinary_edit(session):
    assert 'uncommitted' in ok(session, ":revert root['user'] 1")
    assert session.root['user'].name == 'ann'
    diff = ok(session, ':diff')
    assert ".name: 'Anne' -> 'ann'" in diff
    assert ".email: - 'anne@example.com'" in diff
    ok(session, ':undo')
    assert session.root['user'].name == 'Anne'
    ok(session, ":revert root['user'] 2")
    session.commit()
    text = ok(session, ":history root['user']")
    assert '5 states kept' in text
    assert session.root['user'].name == 'Ann'


def test_revert_refuses_references_to_missing_objects(session):
    # a state whose reference names an oid with no record (written raw)
    storage = session.storage
    user_oid = session.root['user']._p_oid
    friend_oid = session.root['friend']._p_oid
    record = storage.load(user_oid)
    gone = (99).to_bytes(8, 'big')  # ASCII, as in the pickled text
    assert record.count(friend_oid) == 2  # in the state and the refs
    storage.begin()
    storage.store(user_oid, record.replace(friend_oid, gone))
    storage.end()
    session.abort()
    result, text = command(session, ":revert root['user'] 5")
    assert result.kind == 'error'
    assert 'oid 99,' in text or 'oid 99 ' in text and 'no longer exist' in text
    assert not session.has_unsaved_work()


@pytest.mark.parametrize('make', [
    lambda path: MemoryStorage(),
    lambda path: SqliteStorage(str(path / 'db.sqlite'))])
def test_history_elsewhere_says_it_needs_a_file(make, tmp_path):
    session = Session(make(tmp_path))
    try:
        result, text = command(session, ':history 0')
        assert result.kind == 'error'
        assert 'needs a FileStorage or FileStorage2 file opened directly' \
            in text
        assert len(text.splitlines()) == 1
    finally:
        session.close()


def test_rename_class_in_the_shell(session):
    text = ok(session, ':rename-class fixture_app.models:User '
                       'renamed_h17.models:Person --dry-run')
    assert '2 records to rewrite (1 class header, 1 reference' in text
    run_input(session, "root['user'].name = 'x'")
    result, text = command(session, ':rename-class fixture_app.models.User '
                                    'renamed_h17.models.Person')
    assert result.kind == 'error' and 'uncommitted' in text
    session.abort()
    text = ok(session, ':rename-class fixture_app.models.User '
                       'renamed_h17.models.Person', answers=['n'])
    assert 'nothing written' in text
    text = ok(session, ':rename-class fixture_app.models.User '
                       'renamed_h17.models.Person', answers=['y'])
    assert 'renamed fixture_app.models.User to renamed_h17.models.Person' \
        in text
    assert 'refuses to commit until you restart' in text
    from durus.record import class_path
    oid = session.root['user']._p_oid
    assert class_path(session.storage.load(oid)) == (
        'renamed_h17.models', 'Person')
    # The User still loaded here would write the old name back: refused.
    run_input(session, "root['user'].name = 'after'")
    result, text = command(session, ':commit', answers=['y'])
    assert result.kind == 'error'
    assert 'loaded as fixture_app.models.User before :rename-class' in text
    assert 'Restart durus-shell' in text
    assert class_path(session.storage.load(oid)) == (
        'renamed_h17.models', 'Person')


def test_rename_class_before_loading_leaves_commits_open(tmp_path):
    from durus.persistent_list import PersistentList
    path = str(tmp_path / 'boxed.durus')
    connection = Connection(FileStorage(path))
    connection.get_root()['box'] = PersistentList([User()])
    connection.commit()
    connection.get_storage().close()
    session = Session(FileStorage(path))
    try:
        text = ok(session, ':rename-class fixture_app.models.User '
                           'renamed_h17.models.Person', answers=['y'])
        assert 'Objects loaded from now on have the new class' in text
        run_input(session, "root['n'] = 2")
        text = ok(session, ':commit', answers=['y'])
        assert 'Committed 1 object' in text
        assert not session.has_unsaved_work()
    finally:
        session.close()


def test_command_line_rename_on_a_file(tmp_path, capsys):
    from durus.record import class_path
    from durus_shell.cli import main
    path = make_versions(FileStorage, tmp_path / 'db.durus')
    assert main([path, '--rename-class', 'fixture_app.models:User',
                 'renamed_h17.models:Person', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert '2 records to rewrite' in out and 'nothing written' in out
    assert main([path, '--rename-class', 'fixture_app.models:User',
                 'durus.persistent_dict:PersistentDict']) == 1
    assert '--merge' in capsys.readouterr().err
    assert main([path, '--rename-class', 'fixture_app.models.User',
                 'renamed_h17.models.Person']) == 0
    assert 'committed: 2 records' in capsys.readouterr().out
    storage = FileStorage(path, readonly=True)
    try:
        classes = set(class_path(record) for _, record in
                      storage.gen_oid_record())
    finally:
        storage.close()
    assert ('renamed_h17.models', 'Person') in classes
    assert ('fixture_app.models', 'User') not in classes
    assert main([path, '--rename-class', 'User', 'x.Y']) == 2


def test_command_line_rename_over_a_real_server(durus_server, capsys):
    from durus.client_storage import ClientStorage
    from durus.record import class_path
    from durus_shell.cli import main
    server = durus_server()
    connection = Connection(ClientStorage(port=server.port))
    connection.get_root()['user'] = User()
    connection.commit()
    oid = connection.get_root()['user']._p_oid
    assert main(['--client', '127.0.0.1:%d' % server.port,
                 '--rename-class', 'fixture_app.models:User',
                 'renamed_h17.models:Person']) == 0
    assert 'committed: 2 records' in capsys.readouterr().out
    connection.abort()
    assert class_path(connection.get_storage().load(oid)) == (
        'renamed_h17.models', 'Person')


def test_a_placeholder_says_how_to_rename_its_class(tmp_path):
    path = make_versions(FileStorage, tmp_path / 'db.durus')
    storage = FileStorage(path)
    from durus.class_rename import rename_class
    rename_class(storage, 'fixture_app.models:User', 'moved_h17.models:User')
    session = Session(storage)
    try:
        result = session.run_python("root['user'].name = 'x'")
        assert result.failed
        assert (':rename-class moved_h17.models:User NEWMODULE:NEWNAME'
                in result.traceback)
    finally:
        session.close()


def test_history_over_a_real_server_says_it_needs_a_file(durus_server):
    from durus.client_storage import ClientStorage
    server = durus_server()
    session = Session(ClientStorage(port=server.port))
    try:
        result, text = command(session, ':history 0')
        assert result.kind == 'error'
        assert 'needs a FileStorage or FileStorage2 file opened directly' \
            in text and 'ClientStorage' in text
        assert len(text.splitlines()) == 1
    finally:
        session.close()
