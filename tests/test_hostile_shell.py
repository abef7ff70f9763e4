"""Hostile records through durus-shell and a storage server (issue 13 §2).

The database's records name os.system, subprocess.Popen, getattr tricks,
an INST call, a hostile class pickle and a standard module that acts when
imported (tests/hostile_records.py).  The shell, in a real pseudo-terminal,
over a file and over a real server, and a server packing them, must never
run any of it; the operator sees where each refused value is.
"""

import os
import subprocess
import sys

import pexpect
import pytest

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.unpickle_policy import UnpicklePolicy

from hostile_records import write_hostile_database
from server_process import default_signals, durus_server  # noqa: F401

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PROMPT = r'\x1b\[\?2004h[^\n]*?durus(\[ro\])?> '


@pytest.fixture
def hostile(tmp_path):
    path = str(tmp_path / 'hostile.durus')
    marker = str(tmp_path / 'MARKER')
    write_hostile_database(path, marker)
    return path, marker


@pytest.fixture
def env(tmp_path):
    environment = dict(os.environ)
    environment.update({
        'TERM': 'xterm', 'PROMPT_TOOLKIT_NO_CPR': '1', 'NO_COLOR': '1',
        'HOME': str(tmp_path), 'XDG_STATE_HOME': str(tmp_path / 'state')})
    for name in ('DURUS_SHELL_PATH', 'DURUSSTARTUP', 'DURUS_ALLOW'):
        environment.pop(name, None)
    return environment


_children = []


@pytest.fixture(autouse=True)
def reap_shells():
    yield
    while _children:
        child = _children.pop()
        if child.isalive():
            child.close(force=True)
        else:
            child.close()


def spawn(env, *args):
    child = pexpect.spawn(sys.executable, ['-m', 'durus_shell'] + list(args),
                          env=env, encoding='utf-8', timeout=20,
                          dimensions=(40, 200), cwd=TESTS_DIR,
                          preexec_fn=default_signals())
    _children.append(child)
    return child


def run(child, line, *expected):
    child.send(line + '\r')
    for text in expected:
        child.expect(text)
    child.expect(PROMPT)


def operate(child, marker):
    """Everything an operator might do; nothing may create ``marker``."""
    child.expect('Not loaded \\(safe loading\\): refused ')
    child.expect(PROMPT)
    # Tab completion reads the hostile dict's keys (loading its record).
    child.send("root['harmless_looking']['pay\t")
    child.expect("load'")  # completed to ['payload']
    child.send('\r')
    child.expect(r'<refused posix.system in oid 1>')
    child.expect(PROMPT)
    run(child, "root['harmless_looking']",
        r"'payload': <refused posix.system in oid 1>", r"'count': 3")
    run(child, "root['inst']", r'<refused os.system in oid 3>')
    run(child, "root['this']", r'<refused this.s in oid 4>')
    run(child, "root['hostile_class']._p_load_state()",
        r'refused posix.system in oid 2')
    run(child, "root['harmless_looking']['count'] = 4",
        r'RefusedValueError: cannot change <PersistentDict 1>')
    run(child, ':find Persistent', '2 found')
    run(child, ':get 3', r'<refused os.system in oid 3>')
    run(child, ':ls', r'<refused subprocess.Popen in oid 0>')
    run(child, ':census', r'posix.system +1')  # read from record headers
    # The referrer, its path, the key holding oid 1 in it, then its summary.
    run(child, ':refs 1',
        r"PersistentDict +root +\['harmless_looking'\] +len 7")
    run(child, ':tree', r"\['inst'\]")
    run(child, ':path 3', r"root\['inst'\]")
    run(child, ':diff', 'no uncommitted changes')
    assert not os.path.exists(marker)
    child.sendcontrol('d')
    child.expect(pexpect.EOF)


def test_shell_over_a_file_never_runs_hostile_records(hostile, env):
    path, marker = hostile
    child = spawn(env, path)
    operate(child, marker)
    assert not os.path.exists(marker)


def test_shell_over_a_server_never_runs_hostile_records(hostile, env,
                                                        durus_server):
    path, marker = hostile
    server = durus_server(file=path)
    child = spawn(env, '--client', '127.0.0.1:%d' % server.port)
    operate(child, marker)
    # The server packs records it cannot and need not unpickle.
    storage = ClientStorage(address=server.address)
    try:
        storage.pack()
        connection = Connection(storage, unpickle_policy=UnpicklePolicy.safe(
            placeholders=True, use_environment=False))
        assert repr(connection.get_root()['system']) == \
            '<refused posix.system in oid 0>'
    finally:
        storage.close()
    assert not os.path.exists(marker)
    assert 'Traceback' not in server.log()


def shell_output(env, *args, stdin=None):
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell'] + list(args), env=env,
        input=stdin, capture_output=True, text=True, timeout=60,
        cwd=TESTS_DIR)
    return done


def test_readonly_code_and_scripts_never_run_hostile_records(hostile, env,
                                                             tmp_path):
    path, marker = hostile
    done = shell_output(env, path, '--readonly', '-c', 'root')
    assert done.returncode == 0, done.stderr
    assert "'system': <refused posix.system in oid 0>" in done.stdout
    assert 'refused subprocess.Popen in oid 0' in done.stderr
    script = tmp_path / 'look.py'
    script.write_text("root['harmless_looking']\n:census\n:find system\n")
    done = shell_output(env, path, '--script', str(script))
    assert done.returncode == 0, done.stderr
    assert "'payload': <refused posix.system in oid 1>" in done.stdout
    assert 'refused posix.system in oid 1' in done.stderr
    assert not os.path.exists(marker)


def test_trust_loads_everything_and_says_so(hostile, env):
    path, marker = hostile
    done = shell_output(env, path, '--trust', '--allow', 'os:system')
    assert done.returncode != 0 and '--allow is for the safe' in done.stderr
    child = spawn(env, path, '--trust', '--readonly')
    child.expect('--trust: records may name functions')
    child.expect(PROMPT)
    child.sendcontrol('d')
    # (Trusted Popen values read back unequal: the exit guard may ask.)
    if child.expect([pexpect.EOF, r'\[a\]bort']) == 1:
        child.send('a\r')
        child.expect(pexpect.EOF)
    # (Its root holds the payloads: trusting this database ran them.)
    assert os.path.exists(marker)


def test_allow_loads_a_named_global(hostile, env):
    path, marker = hostile
    done = shell_output(env, path, '--readonly', '--allow', 'nodots',
                        '-c', '1')
    assert done.returncode != 0 and 'module:name' in done.stderr
    done = shell_output(env, path, '--readonly', '--allow', 'this:s',
                        '-c', "root['this'].x")
    assert done.returncode == 0, done.stderr
    assert 'Gur Mra bs Clguba' in done.stdout  # this.s, loaded
    assert 'refused this.s' not in done.stderr
    done = shell_output(dict(env, DURUS_ALLOW='nodots'), path, '-c', '1')
    assert done.returncode != 0 and 'DURUS_ALLOW' in done.stderr
    env = dict(env, DURUS_ALLOW='this:s')
    done = shell_output(env, path, '--readonly', '-c', "root['this'].x")
    assert 'Gur Mra bs Clguba' in done.stdout, done.stderr
    assert not os.path.exists(marker)


def toolbar_of(session):
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.output import DummyOutput
    from durus_shell import app
    ui = app.TerminalUI(session, color=False, output=DummyOutput())
    prompt = app.make_prompt_session(session, ui, app.Stash(),
                                     output=DummyOutput(),
                                     history=InMemoryHistory())
    return prompt.bottom_toolbar()


def test_toolbar_and_banner_name_the_trusted_policy(hostile):
    from durus_shell.opening import banner, open_file
    from durus_shell.render import plain
    from durus_shell.session import GATE_READONLY, Session
    path, marker = hostile
    target = open_file(path, readonly=True)
    session = Session(target.storage, target, GATE_READONLY)
    try:
        assert not session.trusted
        assert 'TRUSTED' not in toolbar_of(session)
        text = plain(banner(session))
        assert 'refused posix.system in oid 0' in text
        assert '--trust' in text
    finally:
        session.close()
    assert not os.path.exists(marker)
    target = open_file(path, readonly=True)
    session = Session(target.storage, target, GATE_READONLY,
                      unpickle_policy=UnpicklePolicy(trusted=True))
    try:
        assert session.trusted
        assert 'TRUSTED LOADS' in toolbar_of(session)
        assert '--trust: records may name' in plain(banner(session))
    finally:
        session.close()
