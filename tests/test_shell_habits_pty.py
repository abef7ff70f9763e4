"""Issue 14, sections 6, 6b and 7, in a real pseudo-terminal: a long :find
is cut to a screenful and :more pages it; Ctrl-C during a long :find; vi
mode keys at the prompt and in a question; config file warnings."""

import os
import re
import sys
import time

import pexpect
import pytest

from test_shell_habits import make_marked_db

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PROMPT = r'\x1b\[\?2004h[^\n]*?durus> '
ROWS = 40
ESC = '\x1b'

_children = []


@pytest.fixture(autouse=True)
def reap_shells():
    """Stop every shell the test started, even when the test failed."""
    yield
    while _children:
        child = _children.pop()
        if child.isalive():
            child.close(force=True)
        else:
            child.close()


def spawn(tmp_path, db, *more, config=None):
    home = tmp_path / 'cfg'
    (home / 'durus-shell').mkdir(parents=True, exist_ok=True)
    if config is not None:
        (home / 'durus-shell' / 'config.toml').write_text(config)
    env = dict(os.environ)
    env.update({'TERM': 'xterm', 'PROMPT_TOOLKIT_NO_CPR': '1',
                'NO_COLOR': '1', 'HOME': str(tmp_path),
                'XDG_STATE_HOME': str(tmp_path / 'state'),
                'XDG_CONFIG_HOME': str(home), 'PAGER': 'cat'})
    for name in ('DURUS_SHELL_PATH', 'DURUSSTARTUP'):
        env.pop(name, None)
    child = pexpect.spawn(sys.executable, ['-m', 'durus_shell', str(db),
                                           '--path', str(tmp_path)]
                          + list(more), env=env, encoding='utf-8',
                          timeout=20, dimensions=(ROWS, 120),
                          cwd=TESTS_DIR)
    _children.append(child)
    return child


def quit_shell(child):
    child.sendline(':quit')
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def rows_of(text):
    return [line for line in text.splitlines() if 'marked_app.Marked' in line]


def test_long_find_is_cut_and_more_shows_the_rest(tmp_path):
    db = make_marked_db(tmp_path, 1500)
    child = spawn(tmp_path, db)
    child.expect(PROMPT)
    child.sendline(':find Marked')
    child.expect(r'\.\.\. (\d+) more lines \(:more shows all of it')
    shown = child.before
    child.expect(r'1500 found \(in _\)')
    child.expect(PROMPT)
    assert 0 < len(rows_of(shown)) < ROWS        # one screenful, not 1500
    child.sendline('len(_)')
    child.expect(r'(?<!\d)1500\r')
    child.expect(PROMPT)
    child.sendline(':more')                      # PAGER=cat: all of it
    child.expect(r'1500 found \(in _\)')
    assert len(rows_of(child.before)) == 1500
    child.expect(PROMPT)
    assert quit_shell(child) == 0


def test_ctrl_c_during_a_long_find_stops_at_once(tmp_path):
    db = make_marked_db(tmp_path, 4000)
    child = spawn(tmp_path, db)
    child.expect(PROMPT)
    # About 3 ms a record: 12 s in all unless Ctrl-C stops it.  (The
    # progress line comes per chunk of records, so wait by the clock.)
    child.sendline(':find Marked --where "__import__(\'time\').sleep(0.003)'
                   ' or True"')
    time.sleep(2.5)
    started = time.monotonic()
    child.sendintr()
    child.expect('INTERRUPTED')
    after = child.before
    child.expect(PROMPT, timeout=5)
    assert time.monotonic() - started < 5
    # What was found so far is cut to a screenful, with its count.
    assert 'more lines (:more' in after
    assert 0 < len(rows_of(after)) < ROWS
    child.sendline('40 < len(_) < 4000')
    child.expect(r'True\r')
    child.expect(PROMPT)
    assert quit_shell(child) == 0


def test_vi_mode_at_the_prompt_and_in_the_commit_question(tmp_path):
    db = make_marked_db(tmp_path, 3)
    child = spawn(tmp_path, db, config='editing_mode = "vi"\n')
    child.expect(PROMPT)
    # Insert mode first; Escape, 0 (start of line), x (delete '1'),
    # i (insert) '4': the input becomes 4 + 2.
    child.send('1 + 2')
    child.send(ESC)
    time.sleep(0.7)                              # Escape alone, not a key
    child.send('0x')
    child.send('i4')
    child.send('\r')
    child.expect(r'm6\r')
    child.expect(PROMPT)
    child.sendline("root['n'] = 1")
    child.expect(PROMPT)
    child.sendline(':commit')
    child.expect(r'Commit 1 object\?')
    # In the question too: 'n', Escape, x deletes it, i inserts 'y'.
    child.send('n')
    child.send(ESC)
    time.sleep(0.7)
    child.send('x')
    child.send('iy\r')
    child.expect('Committed 1 object')
    child.expect(PROMPT)
    assert quit_shell(child) == 0


def test_emacs_mode_does_not_take_vi_keys(tmp_path):
    db = make_marked_db(tmp_path, 3)
    child = spawn(tmp_path, db)
    child.expect(PROMPT)
    child.send('1 + 2')
    child.send(ESC)
    time.sleep(0.7)
    child.send('0x')                   # Escape 0 is a count here, not vi
    child.send('i4')
    child.send('\r')
    child.expect(r'1 \+ 2i4|SyntaxError|invalid')   # not vi's 4 + 2
    child.expect(PROMPT)
    assert quit_shell(child) == 0


def test_bad_config_is_a_warning_and_the_shell_runs(tmp_path):
    db = make_marked_db(tmp_path, 3)
    child = spawn(tmp_path, db, '--vi',
                  config='theme = "nosuchstyle"\ncache_size = 0\n')
    child.expect(r'config\.toml:1: theme = .nosuchstyle. ignored')
    child.expect(r'config\.toml:2: cache_size = 0 ignored: must be at '
                 r'least 1')
    child.expect(PROMPT)
    child.sendline('connection.get_cache_size()')
    child.expect(r'(?<!\d)100000\r')
    child.expect(PROMPT)
    assert quit_shell(child) == 0
