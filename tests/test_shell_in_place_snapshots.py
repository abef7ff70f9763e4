"""The shell sees every in-place edit while load snapshots spare it the
record comparison of untouched data (durus.load_snapshots, the change
tracker in durus_shell.changes).  In-process Sessions on real files; the
suite runs compiled and with DURUS_NO_SPEEDUPS=1."""

import pytest

from durus import inspect
from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.unpickle_policy import UnpicklePolicy
from durus_shell.commands import run_input
from durus_shell.session import Session
from durus_shell.ui import RecordingUI
from fixture_app.models import Account, User


class Box(object):
    def __init__(self, value):
        self.value = value


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    users = root['users'] = BTree()
    for i in range(60):
        user = users[i] = User()
        user.name = 'user%d' % i
        user.tags = ['t%d' % i]
        user.prefs = {'colours': ['red'], 'n': i}
        user.seen = {i}
        user.box = Box(i)
    account = root['account'] = Account()
    account.balance = 1
    account.history = [1]
    connection.commit()
    storage.close()
    return path


def open_session(path):
    # Trusted (--trust): the records name Box, a plain class of this module.
    return Session(FileStorage(path), cache_size=20,
                   unpickle_policy=UnpicklePolicy.from_argument('trusted'))


@pytest.fixture
def session(path):
    session = open_session(path)
    yield session
    session.close()


def run(session, code):
    result = run_input(session, code, RecordingUI())
    assert not result.failed, result.traceback
    return result


def unnoted(session):
    return session.tracker.pending().unnoted


def user(session, i):
    return session.connection.get_root()['users'][i]


EDITS = [
    "u.tags.append('x')",
    "u.tags.pop(); u.tags.append('t' + 'z')",
    "u.tags[0] = 'T'",
    "u.prefs['n'] = -1",
    "del u.prefs['n']",
    "u.prefs['colours'].append('blue')",
    "u.seen.add(-1)",
    "u.box.value = -1",                 # a plain object: compared as before
    "u.__dict__['name'] = 'raw'",
]


@pytest.mark.parametrize('edit', EDITS)
def test_each_kind_of_in_place_edit_is_counted_everywhere(session, edit):
    run(session, "u = root['users'][7]; " + edit)
    target = user(session, 7)
    assert unnoted(session) == [target]
    assert session.has_unsaved_work()
    ui = RecordingUI()
    run_input(session, ':diff', ui)
    assert 'UNNOTED' in ui.text and "root['users'][7]" in ui.text
    ui = RecordingUI()
    run_input(session, ':status', ui)
    assert 'No uncommitted changes' not in ui.text


@pytest.mark.parametrize('edit', EDITS)
def test_an_edit_of_an_object_loaded_statements_ago(session, edit):
    run(session, "u = root['users'][3]")
    run(session, "[root['users'][i].name for i in range(10)]")
    assert unnoted(session) == []
    run(session, edit)                  # reads u only
    assert unnoted(session) == [user(session, 3)]


def test_a_walk_compares_no_unchanged_object_with_its_record(
        session, monkeypatch):
    compared = []
    real = inspect.differing_from_records

    def counting(connection, objects, same=None):
        compared.extend(objects)
        return real(connection, objects, same)
    monkeypatch.setattr(inspect, 'differing_from_records', counting)
    run(session, "[u.tags for u in root['users'].values()]")
    # Only the users holding a plain Box (no snapshot) are compared.
    assert compared and all(isinstance(obj, User) for obj in compared)
    assert unnoted(session) == []
    del compared[:]
    run(session, "root['users'][5].tags.append('x')")
    assert unnoted(session) == [user(session, 5)]


def test_a_walk_of_snapshot_friendly_objects_reads_no_record(
        path, monkeypatch):
    storage = FileStorage(path)
    connection = Connection(storage)
    for u in connection.get_root()['users'].values():
        del u.box
    connection.commit()
    storage.close()
    session = open_session(path)
    try:
        compared = []
        real = inspect.differing_from_records

        def counting(connection, objects, same=None):
            compared.extend(objects)
            return real(connection, objects, same)
        monkeypatch.setattr(inspect, 'differing_from_records', counting)
        run(session, "[u.tags for u in root['users'].values()]")
        assert compared == []
        run(session, "root['users'][5].prefs['colours'][0] = 'x'")
        assert compared == [user(session, 5)]
        assert unnoted(session) == [user(session, 5)]
    finally:
        session.close()


def test_edits_after_commit_are_seen_even_back_to_the_old_state(session):
    run(session, "u = root['users'][2]; u.tags.append('x'); u._p_note_change()")
    ui = RecordingUI(answers=['y'])
    run_input(session, ':commit', ui)
    assert unnoted(session) == []
    run(session, "u.tags.pop()")        # back to the state loaded first
    assert unnoted(session) == [user(session, 2)]


def test_edits_after_abort_are_seen(session):
    run(session, "root['users'][4].tags.append('x')")
    assert unnoted(session) == [user(session, 4)]
    run_input(session, ':abort', RecordingUI(answers=['y']))
    assert unnoted(session) == []
    assert user(session, 4).tags == ['t4']
    run(session, "root['users'][4].tags.append('y')")
    assert unnoted(session) == [user(session, 4)]


def test_edits_after_cache_eviction_and_reload_are_seen(session):
    connection = session.connection
    run(session, "[u.name for u in root['users'].values()]")
    run_input(session, ':abort', RecordingUI(answers=['y']))
    run_input(session, ':abort', RecordingUI(answers=['y']))
    ghosts = [u for u in connection.get_root()['users'].values()
              if u._p_is_ghost()]
    assert len(ghosts) > 30             # evicted (cache_size=20)
    assert all(connection.load_snapshots.snapshot(u._p_oid) is None
               for u in ghosts)
    key = int(ghosts[0].name[4:])
    run(session, "root['users'][%d].prefs['colours'].append('x')" % key)
    assert unnoted(session) == [user(session, key)]


def test_a_kept_reference_is_watched_until_dropped(session):
    run(session, "t = root['users'][9].tags; h = root['account'].history")
    run(session, "t.append('x')")       # reads no persistent object
    assert unnoted(session) == [user(session, 9)]
    run(session, "h.append(2)")
    assert set(map(id, unnoted(session))) == {
        id(user(session, 9)), id(session.connection.get_root()['account'])}
    run(session, "t.pop(); h.pop(); del t, h")
    assert unnoted(session) == []
    assert session.tracker._exposed == {}
