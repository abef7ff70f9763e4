"""durus-shell end to end in a real pseudo-terminal (pexpect), as pgcli does.

Opens copies of the Durus 4.3 fixture (with --path pointing at tests/ so
fixture_app.models imports), and a real `python -m durus -s` server.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pexpect
import pytest

from server_process import default_signals

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
# A *new* prompt: prompt_toolkit turns bracketed paste on (ESC[?2004h) as
# each prompt starts; the redraw of the line just entered does not match.
PROMPT = r'\x1b\[\?2004h[^\n]*?durus> '
RO_PROMPT = r'\x1b\[\?2004h[^\n]*?durus\[ro\]> '
F1 = '\x1bOP'
CTRL_X = '\x18'


@pytest.fixture
def env(tmp_path):
    environment = dict(os.environ)
    environment.update({
        'TERM': 'xterm', 'PROMPT_TOOLKIT_NO_CPR': '1', 'NO_COLOR': '1',
        'HOME': str(tmp_path), 'XDG_STATE_HOME': str(tmp_path / 'state')})
    for name in ('DURUS_SHELL_PATH', 'DURUSSTARTUP'):
        environment.pop(name, None)
    return environment


# Every shell a test starts; the autouse fixture below kills what is left.
_children = []
def spawn(env, *args, module='durus_shell', ignored=()):
    child = pexpect.spawn(sys.executable, ['-m', module] + list(args),
                          env=env, encoding='utf-8', timeout=15,
                          dimensions=(40, 120), cwd=TESTS_DIR,
                          preexec_fn=default_signals(ignored))
    _children.append(child)
    return child


@pytest.fixture(autouse=True)
def reap_shells():
    """Kill every shell the test started, even when the test failed."""
    yield
    while _children:
        child = _children.pop()
        if child.isalive():
            child.close(force=True)  # SIGHUP, SIGINT, then SIGKILL
        else:
            child.close()


def finish(child):
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def value_of(*args):
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell'] + list(args) +
        ['--path', TESTS_DIR], capture_output=True, text=True, timeout=60,
        cwd=TESTS_DIR)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def complete_change_commit(child):
    child.expect(PROMPT)
    child.send("root['users'][3].na\t")
    child.expect('me')  # Tab completed .na -> .name
    child.send(" = 'Zed'\r")
    child.expect(PROMPT)
    child.send(':commit\r')
    child.expect(r'changed <User 6>')
    child.expect(r'Commit 1 object\? \[y\]es, \[n\]o')
    child.send('y\r')
    child.expect('Committed 1 object.')
    child.expect(PROMPT)


def test_complete_change_commit_reopen(fixture_copy, env, tmp_path):
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    child.expect('SHELF-1 file')
    child.expect(r"'users'\s+BTree\s+1")
    child.expect(':help')
    complete_change_commit(child)
    child.sendcontrol('d')
    assert finish(child) == 0
    assert value_of(path, '-c', "root['users'][3].name") == "'Zed'"
    history = tmp_path / 'state' / 'durus-shell' / 'history'
    assert ':commit' in history.read_text()


def test_exit_guard(fixture_copy, env):
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    child.expect(PROMPT)
    child.send("root['users'][3].name = 'Zed'\r")
    child.expect(PROMPT)
    child.sendcontrol('d')
    child.expect(r'1 uncommitted change: \[c\]ommit, \[a\]bort, \[s\]tay '
                 r'\(default s\)')
    child.send('\r')
    child.expect('Staying.')
    child.expect(PROMPT)
    child.send(':quit\r')
    child.expect('1 uncommitted change')
    child.send('a\r')
    child.expect('Changes dropped.')
    assert finish(child) == 0
    assert value_of(path, '-c', "root['users'][3].name") == "'user3'"


def test_exit_guard_catches_a_change_made_in_place(fixture_copy, env):
    """tags.append() without _p_note_change(): Ctrl-D still asks."""
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    child.expect(PROMPT)
    child.send("root['users'][3].tags.append('late')\r")
    child.expect(PROMPT)
    child.sendcontrol('d')
    child.expect(r'1 object changed in place without _p_note_change\(\) '
                 r'\(see :diff\): \[c\]ommit, \[a\]bort, \[s\]tay')
    child.send('c\r')
    child.expect('Committed 1 object.')
    assert finish(child) == 0
    assert value_of(path, '-c', "root['users'][3].tags") == \
        "['t0', 'all', 'late']"


def test_readonly_refuses_to_commit(fixture_copy, env):
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--readonly', '--path', TESTS_DIR)
    child.expect('read-only')
    child.expect(RO_PROMPT)
    child.send("root['users'][3].name = 'Zed'\r")
    child.expect(RO_PROMPT)
    child.send(':commit\r')
    child.expect('read-only session: nothing can be committed')
    child.expect(RO_PROMPT)
    child.send('connection.commit()\r')
    child.expect('ReadOnlyError')
    child.expect(RO_PROMPT)
    child.sendcontrol('d')
    child.expect(r'\[a\]bort, \[s\]tay')
    child.send('a\r')
    assert finish(child) == 0
    assert value_of(path, '-c', "root['users'][3].name") == "'user3'"


def test_ctrl_c_interrupts_a_statement_and_keys_run_commands(fixture_copy,
                                                             env):
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    child.expect(PROMPT)
    child.send("print('running'); any(False for _ in iter(int, 1))\r")
    child.expect('running')
    time.sleep(0.3)  # the terminal is back in cooked mode: ^C is SIGINT
    child.sendcontrol('c')
    child.expect('Interrupted')
    child.expect(PROMPT)
    child.send('6 * 7\r')
    child.expect('42')
    child.expect(PROMPT)
    child.send('1 + 1\r')
    child.expect(PROMPT)
    child.sendcontrol('r')  # reverse history search finds '6 * 7'
    child.expect('I-search backward')
    child.send('6 *')
    time.sleep(0.3)
    child.send('\r')  # ends the search with '6 * 7' in the line
    child.send('\r')  # runs it
    child.expect('42')
    child.send(F1)
    child.expect('what it does')
    child.expect(PROMPT)
    child.send("root['log'].append('x')\r")
    child.expect(PROMPT)
    child.send(CTRL_X + 'a')
    child.expect(r'Drop 1 changed object\?')  # asks first (issue 14)
    child.send('y\r')
    child.expect('Dropped 1 changed object; 0 objects changed by other '
                 'clients meanwhile.')
    child.expect(PROMPT)
    child.sendcontrol('d')
    assert finish(child) == 0


def test_ctrl_c_interrupts_when_started_with_sigint_ignored(fixture_copy,
                                                          env):
    """A background job of a non-interactive shell starts with SIGINT
    ignored; the shell still stops a runaway statement on Ctrl-C."""
    inherited = subprocess.run(
        [sys.executable, '-c', 'import signal; '
         'print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)'],
        preexec_fn=default_signals(ignored=(signal.SIGINT,)),
        capture_output=True, text=True, timeout=30)
    assert inherited.stdout.strip() == 'True'  # the setup does ignore it
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR, ignored=(signal.SIGINT,))
    child.expect(PROMPT)
    child.send("print('running'); any(False for _ in iter(int, 1))\r")
    child.expect('running')
    time.sleep(0.3)  # the terminal is back in cooked mode: ^C is SIGINT
    child.sendcontrol('c')
    child.expect('Interrupted')
    child.expect(PROMPT)
    child.send('6 * 7\r')
    child.expect('42')
    child.expect(PROMPT)
    child.sendcontrol('d')
    assert finish(child) == 0


# One write of ~290 KB: far more than the terminal buffers, so after the
# first thousand lines the shell is still writing (cooked mode).
LONG_OUTPUT = "print('\\n'.join(map(str, range(50000))))\r"


def test_ctrl_d_typed_during_output_is_kept(fixture_copy, env):
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    child.expect(PROMPT)
    child.send(LONG_OUTPUT)
    child.expect('\r\n1000\r\n')
    child.sendcontrol('d')
    child.expect('\r\n49999\r\n')
    assert finish(child) == 0  # no prompt needed a second Ctrl-D


def test_keys_typed_during_output_run_in_order(fixture_copy, env):
    """Typed ahead: a statement, then Ctrl-D; the statement runs, then
    the Ctrl-D reaches the exit guard (an uncommitted change)."""
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    child.expect(PROMPT)
    child.send("root['users'][3].name = 'Zed'\r")
    child.expect(PROMPT)
    child.send(LONG_OUTPUT)
    child.expect('\r\n1000\r\n')
    child.send('6 * 7\r')
    child.sendcontrol('d')
    child.expect('\r\n49999\r\n')
    child.expect('42')
    child.expect(r'1 uncommitted change: \[c\]ommit, \[a\]bort, \[s\]tay')
    child.send('a\r')
    child.expect('Changes dropped.')
    assert finish(child) == 0
    assert value_of(path, '-c', "root['users'][3].name") == "'user3'"


def test_against_a_server(shelf_server, env):
    child = spawn(env, '--client', shelf_server, '--path', TESTS_DIR)
    child.expect('Connected to the storage server at ' + shelf_server)
    complete_change_commit(child)
    child.sendcontrol('d')
    assert finish(child) == 0
    assert value_of('--client', shelf_server, '-c',
                    "root['users'][3].name") == "'Zed'"


def test_durus_c_opens_the_shell(fixture_copy, env):
    path = fixture_copy('shelf.durus')
    env = dict(env, DURUS_SHELL_PATH=TESTS_DIR)
    child = spawn(env, '-c', '--file', path, module='durus')
    child.expect(PROMPT)
    child.send("root['users'][3].name\r")
    child.expect("'user3'")
    child.expect(PROMPT)
    child.sendcontrol('d')
    assert finish(child) == 0


def test_repair_asks_before_repairing(fixture_copy, env, manifest):
    path = fixture_copy('shelf-torn.durus')
    size = os.path.getsize(path)
    child = spawn(env, path, '--repair', '--path', TESTS_DIR)
    child.expect('A repair drops the last')
    child.expect(r'Repair the file\? \[y\]es, \[n\]o \(default n\)')
    child.send('\r')
    child.expect('not repaired')
    assert finish(child) == 2
    assert os.path.getsize(path) == size
    child = spawn(env, path, '--repair', '--path', TESTS_DIR)
    child.expect(r'Repair the file\?')
    child.send('y\r')
    child.expect(PROMPT)
    child.sendcontrol('d')
    assert finish(child) == 0
    assert os.path.getsize(path) == \
        manifest['files']['shelf-torn.durus']['intact_size']


def test_colour_and_startup_variable(fixture_copy, env, tmp_path):
    path = fixture_copy('shelf.durus')
    startup = tmp_path / 'startup.py'
    startup.write_text("users = root['users']\n")
    env = dict(env, DURUSSTARTUP=str(startup))
    del env['NO_COLOR']
    child = spawn(env, path, '--path', TESTS_DIR)
    child.expect(PROMPT)
    child.send("users[3].name\r")
    child.expect(r"\x1b\[[0-9;]*m'user3'")  # a coloured string
    child.expect(PROMPT)
    child.sendcontrol('d')
    assert finish(child) == 0
    child = spawn(env, path, '--path', TESTS_DIR, '--no-color')
    child.expect(PROMPT)
    child.send("users[3].name\r")
    child.expect("'user3'")
    # Only resets, no colour code right before it.
    assert not re.search(r'\x1b\[[0-9;]*[39][0-7]m$', child.before)
    child.expect(PROMPT)
    child.sendcontrol('d')
    assert finish(child) == 0


APPEND_USERS = '''
import sys
from durus.connection import Connection
from durus.file_storage import FileStorage
from fixture_app.models import User
connection = Connection(FileStorage(sys.argv[1]))
users = connection.get_root()['users']
for number in range(100, 110):
    user = User()
    user.name = 'late%d' % number
    users[number] = user
    connection.commit()
'''


def test_readonly_abort_shows_what_a_writer_appended(fixture_copy, env):
    path = fixture_copy('shelf.durus')
    child = spawn(env, path, '--readonly', '--path', TESTS_DIR)
    child.expect(RO_PROMPT)
    child.send("len(root['users'])\r")
    child.expect(r'\x1b\[0m(\d+)\r')
    before = int(child.match.group(1))
    child.expect(RO_PROMPT)
    subprocess.run([sys.executable, '-c', APPEND_USERS, path], check=True,
                   timeout=60, cwd=TESTS_DIR)
    child.send(':abort\r')
    child.expect(r'Dropped 0 changed objects; (\d+) objects? changed by '
                 r'other clients')
    assert int(child.match.group(1)) >= 11  # 10 users and the tree
    child.expect(RO_PROMPT)
    child.send("len(root['users']), root['users'][109].name\r")
    child.expect(r"\(%d, 'late109'\)" % (before + 10))
    child.expect(RO_PROMPT)
    child.sendcontrol('d')
    assert finish(child) == 0
