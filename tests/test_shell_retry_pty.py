"""Conflicts, :retry and a lost server, in real pseudo-terminals.

Two shells on one real `python -m durus -s` server; a server stopped and
started again under a shell.
"""

import pexpect
import pytest

from server_process import ServerProcess, free_port
from test_shell_pty import (PROMPT, TESTS_DIR, env, finish, reap_shells,  # noqa: F401
                            spawn, value_of)


@pytest.fixture
def served(fixture_copy, tmp_path):
    """(address, restart, stop) for a server on a copy of the fixture."""
    path = fixture_copy('shelf.durus')
    port = free_port()
    processes = []

    def start():
        processes.append(ServerProcess(
            ['--file', path, '--port', str(port)],
            tmp_path / ('server%d.log' % len(processes))))

    def stop():
        processes[-1].stop()

    start()
    try:
        yield '127.0.0.1:%d' % port, start, stop
    finally:
        for process in processes:
            process.stop()


def shell(env, address):
    child = spawn(env, '--client', address, '--path', TESTS_DIR)
    child.expect(PROMPT)
    return child


def send(child, line):
    child.send(line + '\r')
    child.expect(PROMPT)
    return child.before


def test_two_shells_conflict_then_retry(served, env):
    address, _, _ = served
    mine = shell(env, address)
    theirs = shell(env, address)
    send(mine, "u = root['users'][3]")
    send(mine, "u.name = u.name + '-mine'")
    send(theirs, "root['users'][3].name = 'Zed'")
    theirs.send(':commit\r')
    theirs.expect(r'Commit 1 object\?')
    theirs.send('y\r')
    theirs.expect('Committed 1 object.')
    theirs.expect(PROMPT)
    mine.send(':commit\r')
    mine.expect(r'Commit 1 object\?')
    mine.send('y\r')
    mine.expect('Conflict: another client committed changes to <User')
    mine.expect(".name  you read 'user3'; now committed 'Zed'; "
                "you set 'user3-mine'")
    mine.expect('Your 2 statements are kept')
    mine.expect(PROMPT)
    mine.send(':retry\r')
    mine.expect('Re-running 2 statements on the new state.')
    mine.expect("'Zed' -> 'Zed-mine'")
    mine.expect(r'Commit 1 object\?')
    mine.send('y\r')
    mine.expect('Committed 1 object.')
    mine.expect(PROMPT)
    for child in (mine, theirs):
        child.sendcontrol('d')
        assert finish(child) == 0
    assert value_of('--client', address, '-c',
                    "root['users'][3].name") == "'Zed-mine'"


def test_server_stopped_and_restarted_under_a_shell(served, env):
    address, start, stop = served
    mine = shell(env, address)
    send(mine, "u = root['users'][3]")
    send(mine, "u.email = 'fixed@example.org'")
    stop()
    mine.send("root['users'][12].name\r")
    mine.expect('ShortRead')
    mine.expect(PROMPT)
    # (The toolbar is not drawn in a pty without cursor position
    # reports: test_shell_retry checks it in-process.)
    mine.send(':status\r')
    mine.expect('still unreachable')
    mine.expect('DISCONNECTED from the storage server at ' + address)
    mine.expect('Uncommitted: 1 changed object')
    mine.expect(PROMPT)
    mine.send(':reconnect\r')
    mine.expect('still unreachable')
    mine.expect(PROMPT)
    start()
    mine.send(':status\r')
    mine.expect('The server connection was lost; reconnected')
    mine.expect('your 3 statements are kept')
    mine.expect(PROMPT)
    mine.send(':retry\r')
    mine.expect(r'Commit 1 object\?')
    mine.send('y\r')
    mine.expect('Committed 1 object.')
    mine.expect(PROMPT)
    mine.send(':abort\r')            # works again too (nothing to drop)
    mine.expect(PROMPT)
    assert 'Error' not in mine.before and 'ShortRead' not in mine.before
    mine.send(':status\r')
    mine.expect('Connected to the storage server at ' + address)
    mine.expect('No uncommitted changes.')
    mine.expect(PROMPT)
    mine.sendcontrol('d')
    assert finish(mine) == 0
    assert value_of('--client', address, '-c',
                    "root['users'][3].email") == "'fixed@example.org'"
