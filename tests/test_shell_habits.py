"""Issue 14, sections 6, 6b and 7, in-process: one screenful per input,
paging, EXPR?, \\x, the audit log's reason and script, the config file."""

import os
import re
import subprocess
import sys
import textwrap

import pytest
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus_shell import app, config, paging, render
from durus_shell.commands import run_command, run_input
from durus_shell.opening import open_file
from durus_shell.session import Session
from durus_shell.ui import RecordingUI

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CTRL_D = '\x04'

MARKED_APP = '''\
from durus.persistent import Persistent

class Marked(Persistent):
    """A record someone marked for review."""

    def __init__(self, n):
        self.n = n
        self.note = 'marked %d' % n
'''


def make_marked_db(directory, count, others=10):
    """A file with ``count`` Marked objects (class in directory/marked_app.py)
    in a BTree under root['marked'], built by a child Python so the class
    module is fresh there."""
    (directory / 'marked_app.py').write_text(MARKED_APP)
    path = directory / 'marked.durus'
    code = textwrap.dedent('''
        import sys
        sys.path.insert(0, %r)
        from durus.btree import BTree
        from durus.connection import Connection
        from durus.file_storage import FileStorage
        from marked_app import Marked
        connection = Connection(FileStorage(%r))
        root = connection.get_root()
        tree = root['marked'] = BTree()
        for n in range(%d):
            tree[n] = Marked(n)
            if n %% 5000 == 4999:
                connection.commit()
        root['plain'] = list(range(%d))
        connection.commit()
        connection.storage.close()
    ''') % (str(directory), str(path), count, others)
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)
    return path


@pytest.fixture
def marked(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    path = make_marked_db(tmp_path, 600)
    target = open_file(str(path))
    session = Session(target.storage, target)
    yield session
    session.close()
    sys.modules.pop('marked_app', None)


@pytest.fixture
def printed(monkeypatch):
    """What the terminal UI really prints (after the screenful cut)."""
    lines = []
    monkeypatch.setattr(app.TerminalUI, '_print',
                        lambda self, text: lines.append(render.plain(text)))
    monkeypatch.setattr(app.TerminalUI, 'size', lambda self: (30, 100))
    return lines


@pytest.fixture(autouse=True)
def horizontal():
    yield
    render.DISPLAY.vertical = False


def drive(session, keys):
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        app.run_app(session, color=False, input=pipe, output=DummyOutput(),
                    history=InMemoryHistory())


# -- one screenful per input ------------------------------------------------

def test_screen_cut_keeps_the_first_screenful_the_count_and_everything():
    cut = paging.ScreenCut(10, 80)
    printed = [cut.take([(render.T_TEXT, 'header')])]
    printed.append(cut.take([(render.T_TEXT, '\n'.join(
        'row %d' % n for n in range(100)))]))
    printed.append(cut.take([(render.T_TEXT, 'more: ' + 'x' * 30)] * 1))
    printed.append(cut.take('100 found (in _).'))
    shown = '\n'.join(render.plain(p) for p in printed if p)
    assert shown.count('\n') + 1 == 10      # one screenful, no more
    assert 'row 8' in shown and 'row 9' not in shown
    note = render.plain(cut.finish())
    # 91 rows and the 'more:' line held back; the count line comes last.
    assert note.splitlines() == [
        '... 92 more lines (:more shows all of it in the pager)',
        '100 found (in _).']
    full = cut.full_text()
    assert 'row 99' in full and full.endswith('100 found (in _).')


def test_one_long_report_keeps_its_summary_line_in_view():
    cut = paging.ScreenCut(10, 80)
    report = ['finding %d' % n for n in range(50)] + ['50 findings, 0 ok']
    shown = render.plain(cut.take('\n'.join(report)))
    assert shown.splitlines() == report[:10]
    assert render.plain(cut.finish()).splitlines() == [
        '... 40 more lines (:more shows all of it in the pager)',
        '50 findings, 0 ok']


def test_screen_cut_prints_short_output_untouched():
    cut = paging.ScreenCut(10, 80)
    assert cut.take('one line') == [(render.T_TEXT, 'one line')]
    assert not cut.cut and cut.finish() == []


def test_long_find_shows_one_screenful_the_count_and_more_pages_all(
        marked, printed, monkeypatch):
    import pydoc
    paged = []
    monkeypatch.setattr(pydoc, 'pager', paged.append)
    drive(marked, ':find Marked\r:more\r' + CTRL_D)
    found = marked.namespace['_']
    assert len(found) == 600                           # _ holds them all
    text = '\n'.join(printed)
    rows = [line for line in text.splitlines() if 'marked_app.Marked' in line]
    assert 0 < len(rows) <= 30                         # one screenful
    assert re.search(r'\.\.\. \d+ more lines \(:more', text)
    assert '600 found (in _)' in text                  # the count is shown
    assert len(paged) == 1
    assert paged[0].count('marked_app.Marked') == 600  # :more has them all


def test_every_command_goes_through_the_cut(marked, printed):
    # :census and :refs are cut like :find; a value too.
    drive(marked, ":census\rroot['plain'] * 1\r[str(n) * 30 for n in "
                  "range(300)]\r" + CTRL_D)
    text = '\n'.join(printed)
    assert 'marked_app.Marked' in text and 'classes' in text
    assert 'more lines (:more' in text
    assert len(text.splitlines()) < 150


def test_question_after_long_output_is_not_held_back(marked, printed):
    ui = app.TerminalUI(marked, color=False, output=DummyOutput())
    asked = []
    ui._question_session = lambda: None
    ui.start_output()
    for n in range(100):
        ui.show('line %d' % n)
    # Asking prints the note first, then starts a new screenful.
    ui._question_break()
    asked.append('\n'.join(printed))
    ui.show('after the question')
    ui.end_output()
    assert 'more lines (:more' in asked[0]
    assert printed[-1] == 'after the question'


# -- :page and it -------------------------------------------------------------

def test_page_walks_a_btree_by_key_and_it_goes_on(marked):
    ui = RecordingUI()
    assert run_command(marked, ":page root['marked']", ui).kind == 'command'
    assert 'items 1-20 of 600' in ui.text
    first = marked.namespace['_']
    assert [key for key, _ in first] == list(range(20))
    # A key added before the place does not shift the next page.
    run_input(marked, "root['marked'][-5] = 'new'")
    ui = RecordingUI()
    result = run_input(marked, 'it', ui)
    assert result.kind == 'command', result.traceback
    assert [key for key, _ in marked.namespace['_']] == list(range(20, 40))
    assert 'items 21-40' in ui.text


def test_page_a_generator_to_its_end(marked):
    ui = RecordingUI()
    run_command(marked, ':page (n * n for n in range(25))', ui)
    assert marked.namespace['_'] == [n * n for n in range(20)]
    ui = RecordingUI()
    run_input(marked, 'it', ui)
    assert marked.namespace['_'] == [n * n for n in range(20, 25)]
    assert 'the end' in ui.text
    # Nothing left to page: `it` is a plain name again.
    assert run_input(marked, 'it').kind == 'error'


def test_it_is_a_name_when_one_is_defined(marked):
    run_command(marked, ':page range(100)')
    run_input(marked, 'it = 7')
    assert run_input(marked, 'it').value == 7


# -- EXPR? and \x ---------------------------------------------------------------

def test_question_mark_describes_an_object(marked):
    ui = RecordingUI()
    result = run_input(marked, "root['marked'][3]?", ui)
    assert result.kind == 'command', result.traceback
    text = ui.text
    assert 'class      marked_app.Marked' in text
    assert re.search(r'oid\s+\d+', text)
    assert 'state' in text and 'attributes 2' in text
    assert "note  'marked 3'" in text
    assert 'A record someone marked for review.' in text


def test_a_statement_ending_in_a_question_mark_stays_python(marked):
    result = run_input(marked, 'answer = 42  # right?')
    assert result.kind == 'ok', result.traceback
    assert marked.namespace['answer'] == 42
    assert run_input(marked, "'why?'").value == 'why?'


def test_question_mark_on_a_plain_value(marked):
    ui = RecordingUI()
    run_input(marked, 'len?', ui)
    assert 'builtins' in ui.text and 'Return the number of items' in ui.text


def test_backslash_x_shows_tables_vertically(marked):
    ui = RecordingUI()
    run_input(marked, '\\x', ui)
    assert 'Expanded display is on.' in ui.text
    ui = RecordingUI()
    run_command(marked, ':census', ui)
    assert '-[ RECORD 1 ]' in ui.text
    assert re.search(r'^class \| marked_app\.Marked$', ui.text, re.M)
    run_input(marked, '\\x')
    ui = RecordingUI()
    run_command(marked, ':census', ui)
    assert '-[ RECORD' not in ui.text


# -- the audit log: reason and script ----------------------------------------

def test_commit_asks_the_reason_when_the_log_is_on(marked, tmp_path):
    from durus_shell.fix_commands import enable_log
    log = tmp_path / 'audit.log'
    enable_log(marked, str(log))
    run_input(marked, "root['marked'][1].note = 'checked'")
    ui = RecordingUI(answers=['y', 'TICKET-42 refund\nforged === line'])
    run_command(marked, ':commit', ui)
    assert ui.questions[1].startswith('Reason or ticket')
    text = log.read_text()
    assert '  reason: TICKET-42 refund forged === line\n' in text
    assert "'checked'" in text


def test_script_run_logs_reason_and_script_hash(tmp_path):
    import hashlib
    path = make_marked_db(tmp_path, 3)
    log = tmp_path / 'audit.log'
    code = "root['n'] = 99\n"
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', str(path), '--path',
         str(tmp_path), '-c', code, '--commit', '--log', str(log),
         '--reason', 'INC-7'], capture_output=True, text=True, timeout=60,
        env=dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / 'none')))
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    assert '  reason: INC-7\n' in text
    assert '  script: <-c> sha256:%s\n' % hashlib.sha256(
        code.encode()).hexdigest() in text


# -- the config file ---------------------------------------------------------

def test_config_values_are_read():
    settings, warnings = config.parse_settings(
        b'editing_mode = "vi"\ntheme = "monokai"\npager = "cat"\n'
        b'cache_size = 5\nhistory_size = 0\nconfirm_commit = false\n'
        b'auto_suggest = true\n')
    assert warnings == []
    assert (settings.editing_mode, settings.theme, settings.pager,
            settings.cache_size, settings.history_size,
            settings.confirm_commit, settings.auto_suggest) == (
        'vi', 'monokai', 'cat', 5, 0, False, True)


def test_config_bad_keys_and_values_are_one_line_warnings():
    settings, warnings = config.parse_settings(
        b'# mine\neditng_mode = "vi"\ntheme = "nosuchstyle"\n'
        b'cache_size = -3\nauto_suggest = "yes"\nhistory_size = 20\n',
        path='/cfg/config.toml')
    assert len(warnings) == 4
    assert all('\n' not in w for w in warnings)
    assert warnings[0].startswith('/cfg/config.toml:2: unknown key '
                                  '"editng_mode"')
    assert warnings[1].startswith('/cfg/config.toml:3: theme = ')
    assert warnings[2].startswith('/cfg/config.toml:4: cache_size = -3')
    assert warnings[3].startswith('/cfg/config.toml:5: auto_suggest')
    # The bad ones keep their defaults, the good one is taken.
    assert settings.theme == 'default' and settings.cache_size == 100000
    assert settings.history_size == 20


def test_config_that_is_not_toml_names_the_line():
    settings, warnings = config.parse_settings(
        b'theme = "monokai"\ncache_size = = 3\n', path='c.toml')
    assert len(warnings) == 1 and warnings[0].startswith('c.toml:2: not '
                                                         'valid TOML')
    assert settings.theme == 'default'
    _, warnings = config.parse_settings(b'\xff\xfe', path='c.toml')
    assert 'not UTF-8' in warnings[0]


def test_missing_config_file_gives_defaults(tmp_path):
    settings, warnings = config.load_settings(str(tmp_path / 'none.toml'))
    assert warnings == [] and settings.editing_mode == 'emacs'


def test_config_file_reaches_the_shell(tmp_path):
    path = make_marked_db(tmp_path, 3)
    home = tmp_path / 'cfg'
    (home / 'durus-shell').mkdir(parents=True)
    (home / 'durus-shell' / 'config.toml').write_text(
        'cache_size = 777\nbogus = 1\n')
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', str(path), '--path',
         str(tmp_path), '-c', 'connection.get_cache_size()'],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, XDG_CONFIG_HOME=str(home)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '777'
    assert done.stderr.count('\n') == 1
    assert 'config.toml:2: unknown key "bogus"' in done.stderr


def test_confirm_commit_false_commits_without_asking(marked):
    marked.settings = config.Settings(confirm_commit=False)
    run_input(marked, "root['marked'][2].note = 'x'")
    ui = RecordingUI()
    run_command(marked, ':commit', ui)
    assert ui.questions == []
    assert 'Committed 1 object' in ui.text


def test_history_size_limits_what_is_loaded(tmp_path):
    history = app.SafeFileHistory(str(tmp_path / 'h'), size=3)
    for n in range(10):
        history.store_string('x = %d' % n)
    loaded = list(app.SafeFileHistory(str(tmp_path / 'h'),
                                      size=3).load_history_strings())
    assert loaded == ['x = 9', 'x = 8', 'x = 7']


def test_vi_mode_and_auto_suggest_reach_the_prompt(marked):
    marked.settings = config.Settings(editing_mode='vi', auto_suggest=True)
    ui = app.TerminalUI(marked, color=False, output=DummyOutput())
    with create_pipe_input() as pipe:
        prompt = app.make_prompt_session(marked, ui, app.Stash(), input=pipe,
                                         output=DummyOutput(),
                                         history=InMemoryHistory())
        from prompt_toolkit.enums import EditingMode
        assert prompt.editing_mode == EditingMode.VI
        assert prompt.auto_suggest is not None
        ui.input = pipe
        assert ui._question_session().editing_mode == EditingMode.VI


def test_theme_names_a_pygments_style():
    from pygments.token import Token
    from prompt_toolkit.styles.pygments import pygments_token_to_classname
    from durus_shell.style import shell_style
    keyword = 'class:' + pygments_token_to_classname(Token.Keyword)
    default = shell_style().get_attrs_for_style_str(keyword)
    monokai = shell_style('monokai').get_attrs_for_style_str(keyword)
    assert default.color == 'ansimagenta'
    assert monokai.color != default.color and monokai.color


def test_more_uses_the_configured_pager(marked, monkeypatch):
    import pydoc
    piped = []
    monkeypatch.setattr(pydoc, 'pipepager',
                        lambda text, cmd: piped.append((cmd, text)))
    marked.settings = config.Settings(pager='less -S')
    marked.last_output = 'all of it'
    run_command(marked, ':more', RecordingUI())
    assert piped == [('less -S', 'all of it')]
