"""The stale-view toolbar and :abort's report in a real pseudo-terminal:
a shell on a real `durus -s` process while another client commits; and
the shell against the real Durus 4.3 server, which cannot tell (so the
shell says nothing stale-related, and everything else works)."""

import pexpect
import pytest

from server_process import durus_server  # noqa: F401
from test_shell_pty import (PROMPT, TESTS_DIR, env, finish, reap_shells,  # noqa: F401
                            spawn, value_of)
from test_shell_retry_pty import send, served, shell  # noqa: F401


def test_toolbar_and_abort_show_another_clients_commit(served, env):
    address, _, _ = served
    mine = shell(env, address)
    send(mine, "root['users'][3].name")
    assert value_of('--client', address, '--commit', '-c',
                    "root['users'][3].name = 'Zed'") is not None
    # (The toolbar is not drawn in a pty without cursor position reports;
    # test_shell_stale_view checks it in-process.  :status says the same.)
    mine.send(':status\r')
    mine.expect(r'View: 1 object changed by others \(:abort brings it in\)')
    mine.expect(PROMPT)
    mine.send(':abort\r')
    mine.expect('1 object changed by other clients meanwhile')
    mine.expect(r"Brought in: 1 object changed by other clients")
    mine.expect(r"at root\['users'\]\[3\]")
    mine.expect(PROMPT)
    mine.send("root['users'][3].name\r")
    mine.expect("'Zed'")
    mine.expect(PROMPT)
    assert 'changed by others' not in mine.before
    mine.sendcontrol('d')
    assert finish(mine) == 0


@pytest.mark.slow
def test_shell_against_a_durus43_server(durus_server, durus43_python,
                                        fixture_copy, env):
    server = durus_server(python=durus43_python,
                          file=fixture_copy('shelf.durus'))
    address = '127.0.0.1:%d' % server.port
    mine = shell(env, address)
    send(mine, "root['users'][3].name")
    assert value_of('--client', address, '--commit', '-c',
                    "root['users'][3].name = 'Zed'") is not None
    before = send(mine, ':status')
    assert 'No uncommitted changes' in before
    assert 'changed by others' not in before    # 4.3 cannot tell: no guess
    mine.send("root['users'][4].name = 'Yan'\r")
    mine.expect(PROMPT)
    mine.send(':abort\r')
    mine.expect(r'Drop 1 changed object\?')
    assert 'Would bring in' not in mine.before
    mine.send('y\r')
    mine.expect('1 object changed by other clients meanwhile')
    mine.expect(PROMPT)
    send(mine, "root['users'][4].name = 'Yan'")
    mine.send(':commit\r')
    mine.expect(r'Commit 1 object\?')
    mine.send('y\r')
    mine.expect('Committed 1 object.')
    mine.expect(PROMPT)
    mine.sendcontrol('d')
    assert finish(mine) == 0
    assert value_of('--client', address, '-c',
                    "(root['users'][3].name, root['users'][4].name)") == \
        "('Zed', 'Yan')"
