"""Issue 14, section 0 in a real pseudo-terminal: what the operator sees.

Uses the helpers of tests/test_shell_pty.py (its autouse fixture stops
every shell a test starts, even when the test fails).
"""

import subprocess
import sys

import pexpect

from test_shell_pty import (CTRL_X, PROMPT, RO_PROMPT,  # noqa
                            TESTS_DIR, env, finish, reap_shells, spawn,
                            value_of)


def test_operator_is_never_misled_at_the_prompt(fixture_copy, env):
    path = fixture_copy('shelf-packed.durus')
    child = spawn(env, path, '--path', TESTS_DIR)
    child.expect(PROMPT)
    child.send(':comit\r')
    child.expect(r'unknown command :comit; did you mean :commit\?')
    child.expect(PROMPT)
    child.send(':STATUS\r')
    child.expect('No uncommitted changes.')
    child.expect(PROMPT)
    child.send('roots\r')
    child.expect(r"NameError: name 'roots' is not defined\. Did you mean: "
                 r"'root'\?")
    child.expect(PROMPT)
    child.send(':find User --where obj.nosuch > 1\r')
    child.expect(r"the --where expression failed on <User \d+>: "
                 r"AttributeError")
    child.expect(PROMPT)
    child.send(':find Usr\r')
    child.expect(r'no record of class Usr in this database; did you mean '
                 r'User')
    child.expect(PROMPT)
    child.send(':find Us\t')
    child.expect('er')  # Tab completed the class name from the census
    child.send(' --limit 2\r')
    child.expect(r'2 found \(in _\)')
    child.expect(PROMPT)
    child.send(":tree root['chain']\r")
    child.expect(r'\.\.\. 1 below')
    child.expect('cut at depth 2, the default')
    child.expect(PROMPT)
    child.send("root['users'][3].name = 'Zed'\r")
    child.expect(PROMPT)
    child.send(CTRL_X + 'a')
    child.expect(r'Drop 1 changed object\? \[y\]es, drop them, \[n\]o '
                 r'\(default n\)')
    child.send('\r')
    child.expect('Not aborted; the changes are still pending.')
    child.expect(PROMPT)
    child.send(':abort\r')
    child.expect(r'Drop 1 changed object\?')
    child.send('y\r')
    child.expect(r':undo brings the edits back')
    child.expect(PROMPT)
    child.send(':undo\r')
    child.expect('brought back the 1 statement the abort dropped')
    child.expect(PROMPT)
    child.send('\\q\r')
    child.expect(r'1 uncommitted change: \[c\]ommit')
    child.send('c\r')
    child.expect('Committed 1 object.')
    assert finish(child) == 0
    assert value_of(path, '-c', "root['users'][3].name") == "'Zed'"


def test_readonly_opens_a_torn_file_with_the_damage_named(fixture_copy, env):
    torn = fixture_copy('shelf-torn.durus')
    child = spawn(env, torn, '--readonly', '--path', TESTS_DIR)
    child.expect(r'DAMAGED: \d+ bytes at offset \d+ are a torn transaction')
    child.expect(RO_PROMPT)
    child.send("root['users'][3].name\r")
    child.expect("'user3'")
    child.expect(RO_PROMPT)
    child.sendcontrol('d')
    assert finish(child) == 0

    # (The toolbar is not drawn in a pty without cursor position reports:
    # its read-only and freshness parts are tested in-process.)


def test_script_runs_each_statement_of_a_line_once(fixture_copy):
    path = fixture_copy('shelf.durus')
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', path, '--path', TESTS_DIR,
         '--commit', '-c', "root['n'] = 42"], capture_output=True,
        text=True, timeout=60, cwd=TESTS_DIR)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', path, '--path', TESTS_DIR,
         '--commit', '-c', "root['n'] += 1; print(root['n'])"],
        capture_output=True, text=True, timeout=60, cwd=TESTS_DIR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['43', 'Committed 1 object.']
    assert value_of(path, '-c', "root['n']") == '43'
