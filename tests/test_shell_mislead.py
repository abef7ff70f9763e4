"""Issue 14, section 0: the shell never misleads the operator.

In-process tests of each item (the pty ones are in
tests/test_shell_mislead_pty.py).
"""

import io
import subprocess
import sys
import os

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus_shell.script import run_script, split_script
from durus_shell.session import Session

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def make_file(path, **items):
    storage = FileStorage(str(path))
    connection = Connection(storage)
    root = connection.get_root()
    for key, value in items.items():
        root[key] = value
    connection.commit()
    storage.close()
    return str(path)


def value_in(path, key):
    storage = FileStorage(path, readonly=True)
    try:
        return Connection(storage).get_root()[key]
    finally:
        storage.close()


# -- script mode runs each statement of a line once --------------------------

def test_statements_sharing_a_line_are_separate_units():
    units = split_script("a = 1; a\nb = [1,\n 2]; b\n")
    assert [u.source.strip() for u in units] == [
        'a = 1', 'a', 'b = [1,\n 2]', 'b']
    assert [u.lineno for u in units] == [1, 1, 2, 3]


def test_augmented_assignment_on_a_shared_line_runs_once(tmp_path, capsys):
    path = make_file(tmp_path / 'n.durus', n=42)
    session = Session(FileStorage(path), mode='script')
    out, err = io.StringIO(), io.StringIO()
    status = run_script(session, "root['n'] += 1; print(root['n'])",
                        '<c>', out=out, err=err, commit=True)
    session.close()
    assert status == 0, err.getvalue()
    assert capsys.readouterr().out == '43\n'
    assert out.getvalue() == 'Committed 1 object.\n'
    assert value_in(path, 'n') == 43


def test_c_prints_a_shared_line_value_once(tmp_path):
    path = make_file(tmp_path / 'n.durus', n=42)
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', path, '-c', 'a = 1; a; "é"'],
        capture_output=True, text=True, timeout=60, cwd=TESTS_DIR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['1', "'é'"]


# -- fixture-based in-process tests --------------------------------------------

import pytest  # noqa: E402

from durus.format import open_storage  # noqa: E402
from durus_shell.commands import run_command, run_input  # noqa: E402
from durus_shell.ui import RecordingUI  # noqa: E402


@pytest.fixture
def session(fixture_copy):
    session = Session(open_storage(fixture_copy('shelf-packed.durus')))
    yield session
    session.close()


def failing(session, line):
    result = run_command(session, line, RecordingUI())
    assert result.kind == 'error', line
    return result.traceback


def test_a_failing_where_stops_find_and_names_the_object(session):
    text = failing(session, ':find User --where obj.nosuch > 1')
    assert "AttributeError" in text and "'nosuch'" in text
    assert '<fixture_app.models.User' in text or 'User' in text
    assert '--skip-errors' in text
    assert 'Did you mean' in failing(
        session, ':find User --where obk.name == 1')


def test_skip_errors_counts_them_as_no_match(session):
    ui = RecordingUI()
    result = run_command(session, ':find User --skip-errors --where '
                         'obj.nosuch > 1', ui)
    assert result.kind == 'command', result.traceback
    assert '0 found' in ui.text and 'skipped' in ui.text


def test_where_takes_the_rest_of_the_line_unquoted(session):
    ui = RecordingUI()
    run_command(session, ':find Account --where obj.balance > 200', ui)
    unquoted = sorted(a._p_oid for a in session.namespace['_'])
    run_command(session, ':find Account --where "obj.balance > 200"', ui)
    assert unquoted == sorted(a._p_oid for a in session.namespace['_'])
    assert unquoted and all(
        session.connection.get(oid).balance > 200 for oid in unquoted)


def test_find_of_an_unknown_class_suggests_close_names(session):
    text = failing(session, ':find Usr')
    assert 'no record of class Usr' in text and 'User' in text
    # A known class with no match for --where is still "0 found".
    ui = RecordingUI()
    run_command(session, ':find User --where False', ui)
    assert '0 found' in ui.text


def test_command_typos_case_and_bare_words(session):
    text = failing(session, ':comit')
    assert 'did you mean :commit' in text
    ui = RecordingUI()
    assert run_command(session, ':STATUS', ui).kind == 'command'
    assert run_input(session, 'exit', RecordingUI()).kind == 'quit'
    assert run_input(session, '\\q', RecordingUI()).kind == 'quit'
    ui = RecordingUI()
    assert run_input(session, 'help', ui).kind == 'command'
    assert ':census' in ui.text
    run_input(session, 'quit = 5')
    assert run_input(session, 'quit').value == 5  # the operator's name wins


def test_help_lists_aliases(session):
    ui = RecordingUI()
    run_command(session, ':help', ui)
    for alias in (':c', ':q', ':st', ':h'):
        assert alias in ui.text
    ui = RecordingUI()
    run_command(session, ':help commit', ui)
    assert 'also: :c' in ui.text


def test_tracebacks_keep_did_you_mean(session):
    result = run_input(session, 'roots')
    assert "Did you mean: 'root'?" in result.traceback
    result = run_input(session, 'root.itemz()')
    assert "Did you mean: 'items'?" in result.traceback


def test_empty_and_random_files_say_it_in_the_shells_words(tmp_path):
    from durus_shell.opening import OpenError, open_file
    empty = tmp_path / 'empty.durus'
    empty.write_bytes(b'')
    with pytest.raises(OpenError) as caught:
        open_file(str(empty))
    assert '--create' in str(caught.value)
    assert 'create=True' not in str(caught.value)
    junk = tmp_path / 'junk.durus'
    junk.write_bytes(os.urandom(3000))
    with pytest.raises(OpenError) as caught:
        open_file(str(junk))
    assert str(caught.value).count(str(junk)) == 1


def test_completion_inside_command_arguments(session):
    from durus_shell.completion import complete
    found = [s.text for s in complete(':find Us', session.namespace,
                                      session=session)]
    assert 'User' in found
    found = [s.text for s in complete(':find fixture_app.models.Acc',
                                      session.namespace, session=session)]
    assert 'fixture_app.models.Account' in found
    found = [s.text for s in complete(":ls root['users'][3].na",
                                      session.namespace, session=session)]
    assert 'name' in found
    found = [s.display for s in complete(":tree root['us",
                                         session.namespace, session=session)]
    assert "'users']" in found or any('users' in f for f in found)


def test_completion_labels_methods_as_methods(session):
    from durus_shell.completion import complete
    labels = dict((s.text, s.meta) for s in complete(
        "root['users'][3]._p_", session.namespace, session=session))
    assert labels['_p_note_change'] == 'method'
    labels = dict((s.text, s.meta) for s in complete(
        "root.", session.namespace, session=session))
    assert labels['keys'] == 'method' and labels['items'] == 'method'
    labels = dict((s.text, s.meta) for s in complete(
        "sys.version_info.", session.namespace, session=session))
    assert labels['count'] == 'method'


def shown(session, line, ui=None):
    ui = ui or RecordingUI()
    result = run_command(session, line, ui)
    assert result.kind == 'command', result.traceback
    return ui.text


def test_tree_marks_where_depth_cut_it(session):
    text = shown(session, ":tree root['chain']")
    assert '... 1 below' in text
    assert 'cut at depth 2, the default' in text
    deep = shown(session, ":tree root['chain'] --depth 50")
    assert 'below' not in deep and 'cut at depth' not in deep


def test_summaries_use_a_wide_screen(session):
    from durus_shell.fix_commands import object_table
    from durus_shell import render
    user = session.root['users'][0]
    user.name = 'x' * 150
    narrow = render.plain(object_table([user], 80))
    wide = render.plain(object_table([user], 200))
    assert max(map(len, narrow.splitlines())) <= 110
    assert len(wide.splitlines()[1]) > 150
    ui = RecordingUI()
    ui.size = lambda: (40, 200)
    assert 'x' * 40 in shown(session, ':find User --limit 1', ui)


def test_ls_of_a_long_btree_ends_with_a_note_not_a_row(tmp_path):
    from durus.btree import BTree
    tree = BTree()
    for i in range(300):
        tree[i] = i
    path = make_file(tmp_path / 'b.durus', big=tree)
    session = Session(FileStorage(path))
    try:
        text = shown(session, ":ls root['big']")
    finally:
        session.close()
    assert "'(more)'" not in text and '(more)' not in text
    assert 'more items after these 200' in text
    assert '\n199 ' in text and '\n200 ' not in text


def test_readonly_toolbar_offers_no_commit_key(fixture_copy):
    from durus_shell.app import make_prompt_session
    from durus_shell.app import TerminalUI
    from durus_shell.opening import open_file
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from durus_shell.keys import Stash
    path = fixture_copy('shelf-packed.durus')
    for readonly, offered in ((True, False), (False, True)):
        target = open_file(path, readonly=readonly)
        session = Session(target.storage, target,
                          mode='readonly' if readonly else 'open')
        try:
            with create_pipe_input() as pipe:
                ui = TerminalUI(session, color=False, input=pipe,
                                output=DummyOutput())
                prompt = make_prompt_session(session, ui, Stash(), pipe,
                                             DummyOutput(), InMemoryHistory())
                text = prompt.bottom_toolbar()
        finally:
            session.close()
        assert ('Ctrl-X C' in text) == offered, text


# -- :abort asks, :undo brings it back ----------------------------------------

def test_abort_asks_and_undo_brings_it_back(session):
    run_input(session, "root['users'][3].name = 'renamed'")
    run_input(session, "root['log'].append('entry')")
    ui = RecordingUI(answers=['n'])
    run_command(session, ':abort', ui)
    assert ui.questions == ['Drop 2 changed objects?']
    assert session.root['users'][3].name == 'renamed'
    ui = RecordingUI(answers=['y'])
    run_command(session, ':abort', ui)
    assert ':undo brings the edits back' in ui.text
    assert session.root['users'][3].name == 'user3'
    assert session.change_count() == 0
    text = shown(session, ':undo')
    assert 'brought back the 2 statements' in text
    assert session.root['users'][3].name == 'renamed'
    assert session.root['log'][-1] == 'entry'
    assert session.change_count() == 2
    # Brought back edits commit like any others.
    run_command(session, ':commit', RecordingUI(answers=['y']))
    assert session.change_count() == 0
    assert session.root['users'][3].name == 'renamed'


def test_abort_with_nothing_to_drop_asks_nothing(session):
    ui = RecordingUI()
    run_command(session, ':abort', ui)
    assert ui.questions == [] and 'Dropped 0' in ui.text


def test_a_new_edit_after_abort_keeps_the_abort(session):
    run_input(session, "root['users'][3].name = 'renamed'")
    run_command(session, ':abort', RecordingUI(answers=['y']))
    run_input(session, "root['users'][4].name = 'other'")
    shown(session, ':undo')
    assert session.root['users'][3].name == 'user3'
    assert session.root['users'][4].name == 'user4'
    assert 'nothing to undo' in failing(session, ':undo')


def test_undo_of_an_abort_never_overwrites_another_clients_commit(
        fixture_copy, tmp_path):
    from server_process import ServerProcess, free_port
    from durus_shell.opening import open_client
    path = fixture_copy('shelf.durus')
    port = free_port()
    process = ServerProcess(['--file', path, '--port', str(port)],
                            tmp_path / 'server.log')
    sessions = []
    try:
        for _ in range(2):
            target = open_client('127.0.0.1:%d' % port)
            sessions.append(Session(target.storage, target))
        mine, other = sessions
        run_input(mine, "root['users'][3].name = 'mine'")
        run_input(other, "root['users'][3].name = 'theirs'")
        other.commit()
        run_command(mine, ':abort', RecordingUI(answers=['y']))
        text = failing(mine, ':undo')
        assert 'other clients changed' in text and 'oid 6' in text
        assert run_input(mine, "root['users'][3].name").value == 'theirs'
        assert mine.change_count() == 0
    finally:
        for one in sessions:
            one.close()
        process.stop()


# -- the toolbar says when the view is older than the file ---------------------

APPEND_USER = """
import sys
from durus.connection import Connection
from durus.file_storage import FileStorage
storage = FileStorage(sys.argv[1])
connection = Connection(storage)
connection.get_root()['late'] = 'x' * 3000
connection.commit()
storage.close()
"""


def test_freshness_notes_another_writers_commit(fixture_copy):
    from durus_shell import freshness
    from durus_shell.opening import open_file
    path = fixture_copy('shelf-packed.durus')
    target = open_file(path, readonly=True)
    session = Session(target.storage, target, mode='readonly')
    try:
        watch = freshness.watch(session)
        assert watch.look() == ''
        subprocess.run([sys.executable, '-c', APPEND_USER, path],
                       check=True, timeout=60, cwd=TESTS_DIR)
        note = watch.look()
        assert 'view older than the file' in note and ' B committed' in note
        from prompt_toolkit.history import InMemoryHistory
        from prompt_toolkit.output import DummyOutput
        from durus_shell import app
        ui = app.TerminalUI(session, color=False, output=DummyOutput())
        prompt = app.make_prompt_session(session, ui, app.Stash(),
                                         output=DummyOutput(),
                                         history=InMemoryHistory(),
                                         freshness=watch)
        assert note in prompt.bottom_toolbar()
        assert 'late' not in session.root
        run_command(session, ':abort', RecordingUI())
        assert watch.note == '' and watch.look() == ''
        assert session.root['late'] == 'x' * 3000
    finally:
        session.close()


def test_freshness_watches_only_read_only_files(session):
    from durus_shell import freshness
    assert freshness.watch(session) is None


# -- a missing object gets one answer -------------------------------------------

def test_missing_oid_is_one_answer_everywhere(session):
    for line in (':path 999999', ':get 999999', ':refs 999999',
                 ':touch 999999'):
        assert 'no object with oid 999999 in this database' in failing(
            session, line), line


def test_touch_takes_an_oid_and_names_the_owner_of_a_plain_value(session):
    user = session.root['users'][3]
    number = int.from_bytes(user._p_oid, 'big')
    assert 'next commit' in shown(session, ':touch %d' % number)
    assert session.change_count() == 1
    text = failing(session, ":touch root['users'][3].tags")
    assert 'is not a persistent object (a list)' in text
    assert "holding it is root['users'][3]" in text


def test_counts_say_where_they_come_from(session, fixture_copy):
    from durus_shell.opening import open_file
    from durus_shell import scan
    text = shown(session, ':census')
    assert 'bytes' in text.splitlines()[0]
    assert 'the exact count' in text
    result = scan.census(session.storage)
    assert set(result.bytes) == set(result.items)
    assert all(size > 0 for size in result.bytes.values())
    target = open_file(fixture_copy('shelf.durus'), readonly=True)
    try:
        line = target.describe()[0]
    finally:
        target.storage.close()
    if 'about' in line:
        assert 'estimated from the index; :census counts them' in line


# -- paths and containers where objects are named ----------------------------

def test_diff_shows_the_path_of_an_object_found_by_find(session):
    shown(session, ':find Account --limit 1')
    run_input(session, '_[0].balance = -5')
    text = shown(session, ':diff')
    assert "~ root['users'][0].account <fixture_app.models.Account" in text
    assert 'oid 13' not in text


def test_refs_names_the_btree_and_key_not_its_nodes(tmp_path):
    from durus.btree import BTree
    from durus.persistent import Persistent
    tree = BTree()
    for i in range(3000):
        tree[i] = Persistent() if i == 2500 else i
    path = make_file(tmp_path / 'deep.durus', tree=tree)
    session = Session(FileStorage(path))
    try:
        text = shown(session, ":refs root['tree'][2500]")
        assert session.namespace['_'] == [session.root['tree']]
    finally:
        session.close()
    assert 'durus.btree.BTree ' in text and '[2500]' in text
    assert 'BNode' not in text


def test_unreachable_records_are_marked_and_reachable_leaves_them_out(
        tmp_path):
    from durus.persistent_dict import PersistentDict
    from durus.persistent_list import PersistentList
    path = str(tmp_path / 'garbage.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    kept, dropped = PersistentList([1]), PersistentList([2])
    root['kept'] = kept
    root['dropped'] = dropped
    holder = PersistentDict(item=kept)
    root['holder'] = holder
    connection.commit()
    del root['dropped']
    del root['holder']   # holder (and its reference to kept) is garbage
    connection.commit()  # not packed: the records stay in the file
    storage.close()
    session = Session(FileStorage(path))
    try:
        text = shown(session, ':find PersistentList')
        assert len(session.namespace['_']) == 2
        assert text.count('[unreachable]') == 1
        assert '1 of them unreachable from the root' in text
        shown(session, ':find PersistentList --reachable')
        assert session.namespace['_'] == [session.root['kept']]
        text = shown(session, ":refs root['kept']")
        assert text.count('[unreachable]') == 1
        assert len(session.namespace['_']) == 2
        shown(session, ":refs root['kept'] --reachable")
        assert session.namespace['_'] == [session.root]
    finally:
        session.close()


# -- --readonly opens a torn file's intact part --------------------------------

def torn_copy(path, kind):
    from durus.file_storage2 import FileStorage2
    storage = (FileStorage if kind == 'shelf' else FileStorage2)(path)
    connection = Connection(storage)
    root = connection.get_root()
    root['first'] = 1
    connection.commit()
    root['second'] = 'x' * 500
    connection.commit()
    storage.close()
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size - 100)   # the last transaction cut short
    return path


@pytest.mark.parametrize('kind', ['shelf', 'dfs20'])
def test_readonly_opens_the_intact_part_of_a_torn_file(tmp_path, kind):
    from durus.error import DamagedFileError
    from durus.format import open_storage
    from durus_shell.opening import OpenError, open_file
    path = torn_copy(str(tmp_path / 'torn.durus'), kind)
    before = open(path, 'rb').read()
    with pytest.raises(DamagedFileError):
        open_storage(path, readonly=True)          # the default still refuses
    with pytest.raises(ValueError):
        open_storage(path, intact_part=True)       # only read-only
    storage = open_storage(path, readonly=True, intact_part=True)
    try:
        assert storage.damage is not None and storage.damage.nbytes > 0
        root = Connection(storage).get_root()
        assert root['first'] == 1 and 'second' not in root
    finally:
        storage.close()
    with pytest.raises(OpenError) as refused:
        open_file(path)
    assert '--readonly to look at the intact part' in str(refused.value)
    target = open_file(path, readonly=True)
    try:
        text = '\n'.join(target.describe())
    finally:
        target.storage.close()
    assert 'DAMAGED: %d bytes at offset' % target.damage.nbytes in text
    assert '--repair' in text
    assert open(path, 'rb').read() == before     # nothing was changed


def test_intact_files_open_read_only_with_no_damage(fixture_copy):
    from durus.format import open_storage
    storage = open_storage(fixture_copy('shelf-packed.durus'),
                           readonly=True, intact_part=True)
    try:
        assert storage.damage is None
    finally:
        storage.close()
