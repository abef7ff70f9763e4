"""The prompt_toolkit application in-process: pipe input, DummyOutput."""

import threading
import time

import pytest
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from durus_shell import app, render
from durus_shell.keys import input_is_complete, next_line_indent
from durus_shell.opening import open_file
from durus_shell.session import GATE_READONLY, Session
from durus_shell.commands import run_input

CTRL_D = '\x04'
CTRL_C = '\x03'
CTRL_X = '\x18'
TAB = '\t'


@pytest.fixture
def shown(monkeypatch):
    """Everything the app shows, as plain text."""
    lines = []
    monkeypatch.setattr(app.TerminalUI, '_print',
                        lambda self, text: lines.append(render.plain(text)))
    return lines


def open_session(fixture_copy, mode='open'):
    path = fixture_copy('shelf.durus')
    target = open_file(path, readonly=mode == GATE_READONLY)
    return path, Session(target.storage, target, mode)


def stored(path, expression):
    target = open_file(path, readonly=True)
    session = Session(target.storage, target, GATE_READONLY)
    try:
        return run_input(session, expression).value
    finally:
        session.close()


def drive(session, keys, tab_completes=True):
    """Type ``keys`` into the shell.  After a Tab the typist waits, as a
    person would, until the completer has answered (and a moment for the
    completion to be inserted) before typing on."""
    answered = threading.Event()
    completer_get = app.ShellCompleter.get_completions

    def get_completions(self, document, event):
        yield from completer_get(self, document, event)
        answered.set()

    with create_pipe_input() as pipe:
        def type_keys():
            for index, piece in enumerate(keys.split(TAB)):
                if index:
                    answered.clear()
                    pipe.send_text(TAB)
                    if tab_completes:
                        answered.wait(10)
                    time.sleep(0.2)
                pipe.send_text(piece)
        typist = threading.Thread(target=type_keys, daemon=True)
        app.ShellCompleter.get_completions = get_completions
        typist.start()
        try:
            return app.run_app(session, color=False, input=pipe,
                               output=DummyOutput(),
                               history=InMemoryHistory())
        finally:
            app.ShellCompleter.get_completions = completer_get
            typist.join(5)


def test_complete_change_commit(fixture_copy, shown):
    path, session = open_session(fixture_copy)
    status = drive(session, "root['users'][3].na" + TAB + " = 'Zed'\r"
                   ":commit\ry\r" + CTRL_D)
    session.close()
    assert status == 0
    text = '\n'.join(shown)
    assert 'SHELF-1 file' in text and "'users'" in text  # the banner
    assert 'Will write: 1 changed object' in text
    assert 'Committed 1 object.' in text
    assert stored(path, "root['users'][3].name") == 'Zed'


def test_exit_guard_stays_by_default_then_aborts(fixture_copy, shown):
    path, session = open_session(fixture_copy)
    drive(session, "root['users'][3].name = 'Zed'\r" + CTRL_D + '\r' +
          "root['users'][3].name\r" + CTRL_D + 'a\r')
    session.close()
    text = '\n'.join(shown)
    assert 'Staying.' in text and "'Zed'" in text
    assert 'Changes dropped.' in text
    assert stored(path, "root['users'][3].name") == 'user3'


def test_command_key_binding_and_multiline_block(fixture_copy, shown):
    path, session = open_session(fixture_copy)
    drive(session, "for uid in (1, 2):\rroot['users'][uid].email = 'x'\r"
          "if uid:\r\troot['log'].append(1)\r\r"
          + CTRL_X + 'c' + 'y\r' + CTRL_D, tab_completes=False)
    session.close()
    assert 'Committed 3 objects.' in '\n'.join(shown)
    assert stored(path, "list(root['log'])")[-2:] == [1, 1]
    assert stored(path, "root['users'][2].email") == 'x'


def test_ctrl_c_and_errors_keep_the_session(fixture_copy, shown):
    path, session = open_session(fixture_copy)
    drive(session, "half typed" + CTRL_C + "root['nope']\r:bogus\r"
          "len(root['log'])\r" + CTRL_D)
    session.close()
    text = '\n'.join(shown)
    assert "KeyError: 'nope'" in text
    assert ':bogus: unknown command' in text
    assert '3' in shown


def test_readonly_prompt_toolbar_and_refusal(fixture_copy, shown):
    path, session = open_session(fixture_copy, GATE_READONLY)
    ui = app.TerminalUI(session, color=False, output=DummyOutput())
    prompt = app.make_prompt_session(session, ui, app.Stash(),
                                     output=DummyOutput(),
                                     history=InMemoryHistory())
    assert prompt.message() == [('class:prompt', 'durus[ro]> ')]
    toolbar = prompt.bottom_toolbar()
    assert 'READ-ONLY' in toolbar and 'shelf.durus (SHELF-1)' in toolbar
    assert 'no changes' in toolbar
    drive(session, "root['users'][3].name = 'Zed'\r:commit\r" + CTRL_D +
          'a\r')
    session.close()
    assert any('read-only' in line for line in shown)
    assert stored(path, "root['users'][3].name") == 'user3'


def test_long_output_is_cut_with_a_note(fixture_copy, shown, monkeypatch):
    import pydoc
    paged = []
    monkeypatch.setattr(pydoc, 'pager', paged.append)
    path, session = open_session(fixture_copy)
    drive(session, "list(range(5000))\r['x' * 50] * 200\r:more\r" + CTRL_D)
    session.close()
    assert any('more lines (:more shows all of it' in line for line in shown)
    assert session.last_output.count('\n') > 40
    assert paged == [session.last_output]
    assert paged[0].splitlines()[-1] == '  ... 150 more'


class Unshowable(object):
    def __repr__(self):
        raise KeyboardInterrupt  # even this does not end the shell


def test_nothing_typed_crashes_the_shell(fixture_copy, shown):
    path, session = open_session(fixture_copy)
    session.namespace['Unshowable'] = Unshowable

    def broken_hook(session, source, result):
        if 'boom' in source:
            raise RuntimeError('hook failed')
    session.hooks.add('after_statement', broken_hook)
    status = drive(session, "[Unshowable()]\r'boom'\r:status\r" + CTRL_D)
    session.close()
    assert status == 0
    text = '\n'.join(shown)
    assert 'Interrupted.' in text
    assert 'durus-shell: RuntimeError: hook failed' in text
    assert 'No uncommitted changes.' in text


def test_enter_rules():
    assert input_is_complete('x = 1')
    assert input_is_complete(':commit')
    assert not input_is_complete('for x in y:')
    assert not input_is_complete('for x in y:\n    pass')
    assert input_is_complete('for x in y:\n    pass\n')
    assert input_is_complete('x = (')  is False
    assert input_is_complete('1 +* 2')  # a syntax error runs, to show it
    assert next_line_indent('    if x:') == ' ' * 8
    assert next_line_indent('    y = 1') == ' ' * 4


def test_an_unwritable_history_file_costs_only_the_history(fixture_copy,
                                                           shown):
    path, session = open_session(fixture_copy)
    history = app.SafeFileHistory('/proc/no-such-dir/history')
    with create_pipe_input() as pipe:
        pipe.send_text("6 * 7\r6 * 8\r" + CTRL_D)
        status = app.run_app(session, color=False, input=pipe,
                             output=DummyOutput(), history=history)
    session.close()
    assert status == 0 and shown[-2:] == ['42', '48']


def test_history_goes_to_the_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv('XDG_STATE_HOME', str(tmp_path))
    assert app.history_path() == str(tmp_path / 'durus-shell' / 'history')
    monkeypatch.delenv('XDG_STATE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path))
    assert app.history_path() == str(
        tmp_path / '.local' / 'state' / 'durus-shell' / 'history')


def test_a_long_find_table_is_built_in_full_only_for_more(fixture_copy, shown,
                                                         monkeypatch):
    """The screenful needs the first rows only; :more builds the rest."""
    import pydoc
    from durus_shell import fix_commands
    from durus_shell.ui import RecordingUI
    paged, built = [], []
    monkeypatch.setattr(pydoc, 'pager', paged.append)
    monkeypatch.setattr(fix_commands, 'HEAD_ROWS', 5)
    table = fix_commands.object_table

    def counted(objects, *args):
        built.append(len(objects))
        return table(objects, *args)
    monkeypatch.setattr(fix_commands, 'object_table', counted)
    path, session = open_session(fixture_copy)
    expected = RecordingUI()
    run_input(session, ':find User', expected)
    found = len(session.namespace['_'])
    assert found == 40 and built == [found]    # no cut: built at once
    del built[:]
    monkeypatch.setattr(app.TerminalUI, 'size', lambda self: (20, 100))
    drive(session, ':find User\r:more\r' + CTRL_D)
    session.close()
    # The head (and a row or two to measure a row), then all for :more.
    assert max(built[:-1]) == 5 and built[-1] == found
    assert len(session.namespace['_']) == found  # _ has everything
    text = '\n'.join(shown)
    assert '%d found (in _)' % found in text
    held = [line for line in shown if 'more lines (:more' in line]
    printed = sum(line.count('\n') + 1 for line in shown
                  if line.startswith('oid '))
    assert held[-1].startswith('... %d more lines' % (found + 1 - printed))
    # Every row (paths may differ: the second search found more of them).
    assert [line.split()[0] for line in paged[0].split('\n')[:-1]] == \
        [line.split()[0] for line in expected.text.split('\n')[:-1]]
