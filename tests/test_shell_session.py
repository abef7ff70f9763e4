"""durus_shell.session and the built-in commands, without a terminal."""

import os
import signal

import pytest

from durus.error import WriteConflictError
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.storage import MemoryStorage
from durus_shell import commands
from durus_shell.session import (GATE_OPEN, GATE_READONLY, GATE_SCRIPT,
                                 Session)
from durus_shell.ui import RecordingUI
from durus_shell.commands import run_input


class Item(Persistent):
    def explode(self):
        raise ValueError('boom inside the application')


def make_session(storage=None, mode=GATE_OPEN):
    storage = storage or MemoryStorage()
    return Session(storage, mode=mode)


def stored_root_data(storage):
    """The root's dict as another connection sees it (what was committed)."""
    from durus.connection import Connection
    return dict(Connection(storage).get_root().items())


def test_expression_value_and_statement():
    session = make_session()
    assert run_input(session, '1 + 2').value == 3
    assert session.namespace['_'] == 3
    result = run_input(session, 'x = 5\nx * 2')
    assert result.kind == 'value' and result.value == 10
    assert run_input(session, 'y = 1').kind == 'ok'
    assert run_input(session, '   ').kind == 'empty'


def test_namespace_names():
    session = make_session()
    ns = session.namespace
    assert ns['root'] is session.connection.get_root()
    assert ns['connection'] is ns['conn'] is session.connection
    assert run_input(session, 'get(0)').value is ns['root']
    assert run_input(session, 'storage').value is session.storage


def test_error_shows_only_the_operators_frames():
    session = make_session()
    session.namespace['Item'] = Item
    run_input(session, 'def helper():\n    return {}["missing"]\n')
    result = run_input(session, 'helper()')
    assert result.kind == 'error'
    text = result.traceback
    assert 'helper()' in text and "KeyError: 'missing'" in text
    assert 'session.py' not in text and 'durus_shell' not in text
    result = run_input(session, 'Item().explode()')
    assert 'ValueError: boom inside the application' in result.traceback
    syntax = run_input(session, 'def (')
    assert syntax.kind == 'error' and 'SyntaxError' in syntax.traceback
    assert 'Traceback' not in syntax.traceback


def test_hooks_run_around_each_statement():
    session = make_session()
    calls = []
    session.hooks.add('before_statement',
                      lambda s, source: calls.append(('before', source)))
    session.hooks.add('after_statement',
                      lambda s, source, result: calls.append(
                          ('after', source, result.kind)))
    run_input(session, 'a = 1')
    run_input(session, '1/0')
    run_input(session, ':status', RecordingUI())
    assert calls == [('before', 'a = 1'), ('after', 'a = 1', 'ok'),
                     ('before', '1/0'), ('after', '1/0', 'error')]
    with pytest.raises(ValueError):
        session.hooks.add('no_such_hook', print)


def test_pending_changes_lists_changed_and_new():
    session = make_session()
    assert not session.pending_changes()
    session.namespace['PersistentDict'] = PersistentDict
    run_input(session, 'root["a"] = PersistentDict(inner=PersistentDict())')
    changes = session.pending_changes()
    assert [obj._p_oid for obj in changes.changed] == [b'\0' * 8]
    assert len(changes.new) == 2 and len(changes) == 3
    assert session.change_count() == 3  # what :status and :commit count


def test_commit_asks_and_writes():
    storage = MemoryStorage()
    session = make_session(storage)
    run_input(session, 'root["n"] = 42')
    ui = RecordingUI(answers=['n'])
    assert run_input(session, ':commit', ui).kind == 'command'
    assert 'Will write: 1 changed object' in ui.text
    assert 'Not committed' in ui.text
    assert 'n' not in stored_root_data(storage)
    ui = RecordingUI(answers=['y'])
    run_input(session, ':commit', ui)
    assert ui.questions == ['Commit 1 object?']
    assert 'Committed 1 object.' in ui.text
    assert stored_root_data(storage)['n'] == 42
    assert session.change_count() == 0


def test_commit_hooks_see_the_changes():
    session = make_session()
    seen = []
    session.hooks.add('after_commit', lambda s, changes: seen.append(
        len(changes)))
    run_input(session, 'root["n"] = 1')
    run_input(session, ':commit', RecordingUI(answers=['y']))
    assert seen == [1]


def test_abort_drops_edits_and_counts():
    storage = MemoryStorage()
    session = make_session(storage)
    run_input(session, 'root["n"] = 1')
    ui = RecordingUI(answers=['y'])
    run_input(session, ':abort', ui)
    assert 'Dropped 1 changed object; 0 objects changed by other clients' \
        in ui.text
    assert 'n' not in session.root
    assert session.change_count() == 0


class ConflictingStorage(MemoryStorage):
    """Refuses the next commit as if another client wrote the root."""

    conflict = False

    def end(self, handle_invalidations=None):
        if self.conflict:
            self.transaction = None
            raise WriteConflictError([b'\0' * 8])
        MemoryStorage.end(self, handle_invalidations)


def test_conflict_is_explained_and_aborted():
    storage = ConflictingStorage()
    session = make_session(storage)
    storage.conflict = True
    run_input(session, 'root["n"] = 1')
    ui = RecordingUI(answers=['y'])
    run_input(session, ':commit', ui)
    assert ('Conflict: another client committed changes to '
            '<PersistentDict 0>') in ui.text
    assert 'Your 1 statement is kept: :retry re-runs it' in ui.text
    assert session.change_count() == 0
    assert 'n' not in session.root


class ManyConflictsStorage(MemoryStorage):
    """Refuses the next commit naming ``oids`` as changed by another client."""

    oids = None

    def end(self, handle_invalidations=None):
        if self.oids is not None:
            self.transaction = None
            raise WriteConflictError(self.oids)
        MemoryStorage.end(self, handle_invalidations)


@pytest.mark.parametrize('count, named, listed', [
    (1, 'changes to <PersistentDict 0> at root this transaction read', 1),
    (2, 'changes to 2 objects this transaction read', 2),
    (12, 'changes to 12 objects this transaction read', 10),
    (0, 'changes to objects this transaction read', 0),
])
def test_conflict_wording_fits_the_count(count, named, listed):
    storage = ManyConflictsStorage()
    session = make_session(storage)
    run_input(session, 'root["n"] = 1')
    storage.oids = [i.to_bytes(8, 'big') for i in range(count)]
    ui = RecordingUI(answers=['y'])
    run_input(session, ':commit', ui)
    assert named in ui.text
    assert ui.text.count('\n  <PersistentDict 0>') + ui.text.count(
        '\n  oid ') == listed
    assert ('... 2 more' in ui.text) == (count == 12)


def test_readonly_refuses_every_commit():
    storage = MemoryStorage()
    make_session(storage).connection.commit()  # write the root first
    session = make_session(storage, mode=GATE_READONLY)
    run_input(session, 'root["n"] = 1')
    result = run_input(session, ':commit', RecordingUI(answers=['y']))
    assert result.kind == 'error'
    assert 'read-only' in result.traceback and '\n' not in result.traceback
    result = run_input(session, 'connection.commit()')
    assert 'ReadOnlyError' in result.traceback
    assert session.change_count() == 1
    assert 'n' not in stored_root_data(storage)


def test_script_gate_blocks_commits_from_code():
    session = make_session(mode=GATE_SCRIPT)
    run_input(session, 'root["n"] = 1')
    result = run_input(session, 'connection.commit()')
    assert 'run with --commit' in result.traceback
    session.commit()  # the script runner's own commit goes through
    assert session.change_count() == 0


def test_command_mistakes_are_one_line():
    session = make_session()
    result = run_input(session, ':nosuch')
    assert result.kind == 'error'
    assert result.traceback.startswith(':nosuch: unknown command :nosuch')
    assert '\n' not in result.traceback
    result = run_input(session, ':help nosuch', RecordingUI())
    assert '\n' not in result.traceback


def test_quit_guard_choices():
    session = make_session()
    run_input(session, 'root["n"] = 1')
    ui = RecordingUI(answers=['s'])
    assert run_input(session, ':quit', ui).kind == 'command'  # stayed
    assert session.change_count() == 1
    ui = RecordingUI(answers=['a'])
    assert run_input(session, ':quit', ui).kind == 'quit'
    assert session.change_count() == 0
    run_input(session, 'root["n"] = 2')
    ui = RecordingUI(answers=['c'])
    assert run_input(session, ':quit', ui).kind == 'quit'
    assert session.change_count() == 0 and session.root['n'] == 2


def test_help_lists_every_command_with_its_key():
    session = make_session()
    ui = RecordingUI()
    run_input(session, ':help', ui)
    for cmd in commands.all_commands():
        assert cmd.usage in ui.text
        if cmd.key:
            assert commands.key_label(cmd.key) in ui.text
    ui = RecordingUI()
    run_input(session, ':help commit', ui)
    assert 'Ctrl-X C' in ui.text and 'conflict' in ui.text


def test_registry_rejects_duplicates_and_missing_help():
    with pytest.raises(ValueError):
        commands.command('commit')(lambda s, a, u: None)

    def nodoc(session, args, ui):
        pass
    with pytest.raises(ValueError):
        commands.command('nodoc-test')(nodoc)


def test_keyboard_interrupt_keeps_the_session():
    session = make_session()
    run_input(session, 'root["n"] = 1')
    result = run_input(session, 'raise KeyboardInterrupt')
    assert result.kind == 'interrupted'
    assert run_input(session, 'root["n"]').value == 1


def test_status_lists_uncommitted():
    session = make_session()
    ui = RecordingUI()
    run_input(session, ':status', ui)
    assert 'No uncommitted changes.' in ui.text
    run_input(session, 'root["n"] = 1')
    ui = RecordingUI()
    run_input(session, ':status', ui)
    assert 'Uncommitted: 1 changed object' in ui.text
    assert 'PersistentDict 0' in ui.text


def test_exit_inside_code_asks_to_quit():
    session = make_session()
    assert run_input(session, 'exit()').kind == 'quit'


def client_session(address, readonly=False):
    from durus_shell.opening import open_client
    target = open_client(address, readonly=readonly)
    return Session(target.storage, target,
                   GATE_READONLY if readonly else GATE_OPEN)


def test_conflict_and_abort_against_a_real_server(shelf_server):
    mine = client_session(shelf_server)
    other = client_session(shelf_server)
    try:
        assert run_input(mine, "root['users'][3].name").value == 'user3'
        run_input(other, "root['users'][3].name = 'theirs'")
        other.commit()
        run_input(mine, "root['users'][3].name = 'mine'")
        ui = RecordingUI(answers=['y'])
        run_input(mine, ':commit', ui)
        assert 'Conflict: another client committed changes to <User 6>' \
            in ui.text
        assert (".name  you read 'user3'; now committed 'theirs'; "
                "you set 'mine'") in ui.text
        assert mine.change_count() == 0
        assert run_input(mine, "root['users'][3].name").value == 'theirs'
        # :abort reports what other clients changed meanwhile.
        run_input(other, "root['users'][4].name = 'x'\nroot['users'][5].name = 'y'")
        other.commit()
        ui = RecordingUI()
        run_input(mine, ':abort', ui)
        assert '2 objects changed by other clients meanwhile' in ui.text
        assert run_input(mine, "root['users'][5].name").value == 'y'
    finally:
        mine.close()
        other.close()


def test_readonly_client_cannot_commit(shelf_server):
    session = client_session(shelf_server, readonly=True)
    try:
        run_input(session, "root['users'][3].name = 'x'")
        assert 'ReadOnlyError' in run_input(session, 
            'connection.commit()').traceback
        assert 'read-only' in run_input(session, ':commit', RecordingUI()).traceback
    finally:
        session.close()
    check = client_session(shelf_server)
    try:
        assert run_input(check, "root['users'][3].name").value == 'user3'
    finally:
        check.close()


def test_unix_socket_and_abstract_addresses(fixture_copy, tmp_path):
    from server_process import ServerProcess
    path = fixture_copy('shelf.durus')
    for number, address in enumerate((str(tmp_path / 'durus.sock'),
                                      '@durus-shell-test-%d' % os.getpid())):
        # (an abstract socket needs --insecure without users)
        process = ServerProcess(['--file', path, '--address', address,
                                 '--insecure'],
                                tmp_path / ('server%d.log' % number))
        try:
            session = client_session(address)
            try:
                assert session.target.label == 'server ' + address
                assert run_input(session, "root['users'][3].name").value == 'user3'
            finally:
                session.close()
        finally:
            process.stop()


def test_commit_after_a_read_conflict_says_to_abort(shelf_server):
    mine = client_session(shelf_server)
    other = client_session(shelf_server)
    try:
        run_input(mine, "root['users'][3].name")  # read: part of the transaction
        run_input(other, "root['users'][3].name = 'theirs'\n"
                  "root['users'][4].name = 'theirs too'")
        other.commit()
        # Loading user 4 (changed meanwhile) tells this client about the
        # commit: user 3, read in this transaction, is stale.
        result = run_input(mine, "root['users'][3].name = 'mine'\n"
                          "root['users'][4].email")
        assert result.kind == 'error'
        assert 'ReadConflictError' in result.traceback
        assert ':retry re-runs them' in result.traceback
        ui = RecordingUI(answers=['y'])
        result = run_input(mine, ':commit', ui)
        assert "you set 'mine'" in ui.text    # the statement stopped by
        assert 'Your 2 statements are kept' in ui.text   # the conflict too
        ui = RecordingUI(answers=['y'])
        run_input(mine, ':retry', ui)
        assert 'Committed 1 object.' in ui.text, ui.text
        assert mine.change_count() == 0
    finally:
        mine.close()
        other.close()


class InterruptedStorage(MemoryStorage):
    """The operator presses Ctrl-C while the commit is being written."""

    armed = False

    def end(self, handle_invalidations=None):
        if self.armed:
            os.kill(os.getpid(), signal.SIGINT)
        MemoryStorage.end(self, handle_invalidations)


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt in this test, whatever the runner
    inherited (started with SIGINT ignored, Python leaves it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_a_commit_waits_for_it(sigint_raises):
    storage = InterruptedStorage()
    session = make_session(storage)
    storage.armed = True
    run_input(session, 'root["n"] = 1')
    ui = RecordingUI(answers=['y'])
    assert run_input(session, ':commit', ui).kind == 'command'
    assert 'Committed 1 object.' in ui.text
    assert stored_root_data(storage)['n'] == 1
    # Afterwards Ctrl-C interrupts statements again.
    # Bounded: if SIGINT did not interrupt, the loop ends and the test fails.
    result = run_input(session, 'import os, signal, time\n'
                         'deadline = time.monotonic() + 10\n'
                         'os.kill(os.getpid(), signal.SIGINT)\n'
                         'while time.monotonic() < deadline: pass')
    assert result.kind == 'interrupted'
