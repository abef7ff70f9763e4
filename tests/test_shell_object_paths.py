"""Issue 14, section 0: an object reached through :find is named by its
path from the root wherever the shell names it (:status, the conflict
report, :find and :refs rows), through one bounded, remembered lookup."""

import pytest

from durus.file_storage import FileStorage
from durus.persistent import Persistent
from durus.persistent_list import PersistentList
from durus_shell import object_paths, scan
from durus_shell.commands import run_command, run_input
from durus_shell.session import Session
from durus_shell.ui import RecordingUI
from test_shell_mislead import make_file
from test_shell_retry import open_session, run, server  # noqa: F401

ACCOUNT_PATH = "root['users'][0].account"


def shown(session, line, answers=()):
    ui = RecordingUI(answers=list(answers))
    result = run_command(session, line, ui)
    assert result.kind == 'command', result.traceback
    return ui.text


@pytest.fixture
def shelf(fixture_copy):
    session = Session(FileStorage(fixture_copy('shelf-packed.durus')))
    yield session
    session.close()


def test_find_rows_show_the_path(shelf):
    text = shown(shelf, ':find Account --limit 1')
    assert 'path' in text.splitlines()[0]
    assert ACCOUNT_PATH in text


def test_refs_rows_show_the_path(shelf):
    shown(shelf, ':find Account --limit 1')
    text = shown(shelf, ':refs _[0]')
    assert "root['users'][0] " in text and '.account' in text


def test_status_names_a_found_object_by_its_path(shelf):
    shown(shelf, ':find Account --limit 1')
    run_input(shelf, '_[0].balance = -5')
    text = shown(shelf, ':status')
    assert '<Account 13>' in text and 'at ' + ACCOUNT_PATH in text


def test_conflict_report_names_a_found_object_by_its_path(
        open_session):  # noqa: F811
    mine = open_session()
    run(mine, ":find User --where obj.name == 'user3'")
    run(mine, "_[0].name = 'mine'")
    assert mine.pending_changes().changed   # the edit is pending
    other = open_session()
    run(other, "root['users'][3].name = 'Zed'")
    other.commit()
    text = run(mine, ':commit', answers=['y'])[1].text
    assert ("Conflict: another client committed changes to "
            "<User 6> at root['users'][3] this transaction read") in text
    assert "at root['users'][3]" in text


@pytest.fixture
def many(tmp_path):
    """60 objects under a list: a fresh session has not loaded the list,
    so each path has to be looked up in the storage."""
    items = PersistentList(Persistent() for _ in range(60))
    session = Session(FileStorage(make_file(tmp_path / 'many.durus',
                                            items=items)))
    yield session
    session.close()


def counting_searches(monkeypatch, delay=0.0):
    calls = []
    search = scan.path_search

    def counted(connection, oid, seconds):
        calls.append(seconds)
        if delay:
            import time
            time.sleep(delay)
        return search(connection, oid, seconds)
    monkeypatch.setattr(scan, 'path_search', counted)
    return calls


def rows_with_paths(text):
    return sum(1 for line in text.splitlines() if "root['items'][" in line)


def test_only_the_first_rows_get_paths_and_answers_are_remembered(
        many, monkeypatch):
    calls = counting_searches(monkeypatch)
    text = shown(many, ':find Persistent')
    assert len(many.namespace['_']) == 60
    assert len(calls) == object_paths.MAX_STORED_SEARCHES
    assert rows_with_paths(text) == object_paths.MAX_STORED_SEARCHES
    rows = text.splitlines()[1:61]
    assert all("root['items'][" in row for row in rows[:10])
    assert not any("root['items'][" in row for row in rows[10:])
    del calls[:]   # remembered: asked again, no storage search
    first = many.namespace['_'][:10]
    paths = object_paths.object_paths(many, first, in_memory=False)
    assert calls == [] and len(paths) == 10


def test_the_lookup_stops_at_its_time_bound(many, monkeypatch):
    monkeypatch.setattr(object_paths, 'SECONDS_PER_CALL', 0.12)
    calls = counting_searches(monkeypatch, delay=0.05)
    text = shown(many, ':find Persistent')
    assert 1 <= len(calls) <= 3
    assert all(seconds <= 0.12 for seconds in calls)
    assert rows_with_paths(text) == len(calls)


def test_the_walk_through_loaded_objects_stops_at_its_deadline():
    """Many loaded objects (1M after a big statement) must not make every
    :commit preview or :diff walk them all for paths."""
    import time
    from durus.connection import Connection
    from durus.storage import MemoryStorage
    from durus_shell import peek
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    chain = root['chain'] = PersistentList()
    for _ in range(3000):   # a deep path: each level one more object
        inner = PersistentList()
        chain.append(inner)
        chain = inner
    chain.append(PersistentList())
    target = chain[0]
    assert peek.find_memory_paths(root, [target])   # found without a bound
    visits = []
    real_gen_refs = peek.gen_refs

    def counting(obj):
        visits.append(obj)
        return real_gen_refs(obj)

    peek.gen_refs = counting
    try:
        found = peek.find_memory_paths(root, [target],
                                       deadline=time.monotonic() - 1)
    finally:
        peek.gen_refs = real_gen_refs
    assert found == {} and len(visits) <= 256
