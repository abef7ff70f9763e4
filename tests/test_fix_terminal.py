"""End to end in a real pseudo-terminal and as a script: the data-fix flow."""

import os
import subprocess
import sys

import pexpect

from durus.connection import Connection
from durus.format import open_storage
from server_process import default_signals

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = 'durus>'
TESTS_DIR = os.path.join(ROOT_DIR, 'tests')


def shell_args(path, *more):
    return ['-m', 'durus_shell', path, '--path', TESTS_DIR, '--no-color'] + \
        list(more)


def spawn(path):
    env = dict(os.environ, PYTHONPATH=ROOT_DIR, TERM='xterm',
               HOME=os.path.dirname(path), PROMPT_TOOLKIT_NO_CPR='1')
    child = pexpect.spawn(sys.executable, shell_args(path), cwd=ROOT_DIR,
                          env=env, encoding='utf-8', timeout=15,
                          dimensions=(40, 160), preexec_fn=default_signals())
    return child


def test_edit_diff_undo_diff_commit_reopen(fixture_copy):
    path = fixture_copy('shelf-packed.durus')
    child = spawn(path)
    try:
        child.expect(PROMPT)
        child.sendline("root['users'][3].name = 'renamed'")
        child.expect(PROMPT)
        child.sendline("root['log'].append('mistake')")
        child.expect(PROMPT)
        child.sendline(':diff')
        child.expect("'user3' -> 'renamed'")
        child.expect(PROMPT)
        child.sendline(':undo')
        child.expect('undid 1 statement')
        child.expect(PROMPT)
        child.sendline(':diff')
        child.expect('1 changed, 0 new')
        child.expect(PROMPT)
        child.sendline(':commit')
        child.expect(r'Commit 1 object\?')
        child.sendline('y')
        child.expect(PROMPT)
        child.sendline(':quit')
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    storage = open_storage(path)
    try:
        root = Connection(storage).get_root()
        assert root['users'][3].name == 'renamed'
        assert root['log'][-1] != 'mistake'
    finally:
        storage.close()


def test_ctrl_c_during_find_keeps_the_session(tmp_path):
    from durus.file_storage import FileStorage
    from durus.persistent_list import PersistentList
    path = str(tmp_path / 'many.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    for block in range(20):
        items = PersistentList()
        for i in range(5000):
            items.append(PersistentList([i]))
        root[block] = items
        connection.commit()
    storage.close()
    child = spawn(path)
    try:
        child.expect(PROMPT)
        # --where makes every match load its object: slow enough to stop.
        child.sendline(':find PersistentList --where "obj._p_oid and '
                       '__import__(\'time\').sleep(0.001) is None"')
        child.expect('records')      # the progress line
        child.sendintr()
        child.expect('INTERRUPTED')
        child.expect(PROMPT)
        child.sendline('len(_) > 0, 1 + 1')
        child.expect(r'\(True, 2\)')
        child.sendline(':quit')
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_dry_run_script_prints_the_diff_and_commits_nothing(fixture_copy,
                                                            tmp_path):
    path = fixture_copy('shelf-packed.durus')
    script = tmp_path / 'fix.py'
    script.write_text("root['users'][5].email = 'fixed@example.org'\n"
                      "root['log'].append('fixed')\n")
    env = dict(os.environ, PYTHONPATH=ROOT_DIR)
    run = subprocess.run(
        [sys.executable] + shell_args(path, '--script', str(script),
                                      '--dry-run'),
        cwd=ROOT_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "root['users'][5] <fixture_app.models.User" in run.stdout
    assert "-> 'fixed@example.org'" in run.stdout
    assert "+ 'fixed'" in run.stdout
    assert 'Dry run' in run.stdout
    log = tmp_path / 'audit.log'
    run = subprocess.run(
        [sys.executable] + shell_args(path, '--script', str(script),
                                      '--commit', '--log', str(log)),
        cwd=ROOT_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "-> 'fixed@example.org'" in log.read_text()
    storage = open_storage(path)
    try:
        root = Connection(storage).get_root()
        assert root['users'][5].email == 'fixed@example.org'
        assert list(root['log']).count('fixed') == 1
    finally:
        storage.close()
