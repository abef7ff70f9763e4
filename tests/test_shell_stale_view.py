"""The toolbar says when another client's commits make the view stale,
and :abort says what it would bring in (a real server process; the
shell in-process).  The pty tests are in test_shell_stale_view_pty.py."""

import pytest

from durus.client_storage import ClientStorage
from durus.error import WriteConflictError
from durus_shell import freshness
from durus_shell.session import Session

from test_shell_retry import (open_session, other_client_sets,  # noqa: F401
                              run, server, toolbar_of)


def toolbar_with(session, watch):
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.output import DummyOutput
    from durus_shell import app
    ui = app.TerminalUI(session, color=False, output=DummyOutput())
    prompt = app.make_prompt_session(session, ui, app.Stash(),
                                     output=DummyOutput(),
                                     history=InMemoryHistory(),
                                     freshness=watch)
    return prompt.bottom_toolbar()


def test_the_toolbar_counts_what_others_committed(open_session):
    mine = open_session()
    watch = freshness.watch(mine)
    assert isinstance(watch, freshness.StorageFreshness)
    assert watch.look() == ''
    run(mine, "root['users'][3].name")            # loaded here
    other_client_sets(open_session, "root['users'][3].name = 'Zed'")
    note = watch.look()
    assert note == '1 object changed by others (:abort brings it in)'
    assert note in toolbar_with(mine, watch)
    assert watch.look() == note                   # asking took nothing
    other_client_sets(open_session, "root['users'][4].name = 'Yan'")
    assert watch.look().startswith('2 objects changed by others')
    _, ui = run(mine, ':abort')
    assert watch.note == ''
    assert '2 objects changed by other clients meanwhile' in ui.text
    assert watch.look() == ''
    assert mine.connection.get_root()['users'][3].name == 'Zed'


def test_abort_names_the_objects_it_would_bring_in(open_session):
    mine = open_session()
    run(mine, "u = root['users'][3]; u.name")
    run(mine, "root['users'][5].name = 'edited'")
    other_client_sets(open_session, "root['users'][3].name = 'Zed'")
    other_client_sets(open_session, "root['users'][7].email = 'x@y'")
    _, ui = run(mine, ':abort', answers=['n'])
    text = ui.text
    assert 'Would drop: 1 changed object' in text
    assert 'Would bring in: 2 objects changed by other clients' in text
    # users[3] is loaded here: named by its path; users[7] never was.
    assert "at root['users'][3]" in text
    assert '1 not loaded in this session' in text
    assert 'Not aborted' in text
    assert mine.change_count() == 1
    _, ui = run(mine, ':abort', answers=['y'])
    assert 'Dropped 1 changed object; 2 objects changed' in ui.text


def test_abort_without_edits_reports_what_it_brought_in(open_session):
    mine = open_session()
    run(mine, "root['users'][3].name")
    other_client_sets(open_session, "root['users'][3].name = 'Zed'")
    _, ui = run(mine, ':abort')
    assert "Brought in: 1 object changed by other clients" in ui.text
    assert "at root['users'][3]" in ui.text


def test_watching_keeps_the_conflict(open_session):
    mine = open_session()
    watch = freshness.watch(mine)
    run(mine, "root['users'][3].name = 'mine'")
    other_client_sets(open_session, "root['users'][3].name = 'Zed'")
    for _ in range(3):
        assert watch.look().startswith('1 object changed')
    freshness.incoming(mine)
    with pytest.raises(WriteConflictError):
        mine.connection.commit()


def test_a_server_that_stops_answering_shows_nothing_stale(open_session,
                                                           monkeypatch):
    mine = open_session()
    watch = freshness.watch(mine)
    other_client_sets(open_session, "root['users'][3].name = 'Zed'")

    def fails(**kw):
        raise OSError('gone')
    monkeypatch.setattr(mine.storage, 'pending_changes', fails)
    assert watch.look() == '' and freshness.incoming(mine) == []


def test_a_storage_that_cannot_tell_is_not_watched(open_session):
    storage = ClientStorage(port=open_session().storage.address.port,
                            protocol=2)     # as against an older server
    session = Session(storage)
    try:
        assert freshness.watch(session) is None
        assert freshness.incoming(session) == []
    finally:
        session.close()


def test_status_says_what_the_toolbar_says(open_session):
    mine = open_session()
    _, ui = run(mine, ':status')
    assert 'View:' not in ui.text
    other_client_sets(open_session, "root['users'][3].name = 'Zed'")
    _, ui = run(mine, ':status')
    assert 'View: 1 object changed by others (:abort brings it in)' in ui.text
