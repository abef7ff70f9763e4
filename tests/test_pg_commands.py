"""PostgreSQL everywhere a storage can be named: durus-shell URL,
``durus -s --pg`` (for this project's clients and Durus 4.3's),
``durus -p --pg``, and ``durus copy`` between every kind of storage."""

import os
import subprocess
import sys

import pytest

import pg_cluster
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus43_env import run_durus43
from server_process import durus_server  # noqa: F401

psycopg = pytest.importorskip('psycopg', reason=pg_cluster.DRIVER_HINT)
from durus.pg_storage import PgStorage  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def dsn():
    return pg_cluster.session_cluster().new_dsn()


def run(*args, check=True):
    result = subprocess.run([sys.executable, '-m'] + list(args),
                            capture_output=True, text=True, timeout=60,
                            cwd=TESTS, stdin=subprocess.DEVNULL)
    if check and result.returncode:
        raise AssertionError('%s failed (%d):\n%s%s' % (
            args, result.returncode, result.stdout, result.stderr))
    return result


def fill(storage, n=30):
    connection = Connection(storage)
    root = connection.get_root()
    root['items'] = PersistentList(PersistentDict(i=i) for i in range(n))
    root['name'] = 'grüß'
    root['gone'] = PersistentDict(x=1)
    connection.commit()
    del root['gone']            # garbage: a copy leaves it behind
    connection.commit()
    return connection


def check(storage, n=30):
    root = Connection(storage).get_root()
    assert root['name'] == 'grüß'
    assert [item['i'] for item in root['items']] == list(range(n))


def test_shell_opens_a_postgresql_url_like_a_file(dsn):
    refused = run('durus_shell', dsn, '-c', 'root', check=False)
    assert refused.returncode == 2
    assert '--create' in refused.stderr and 'Traceback' not in refused.stderr
    run('durus_shell', dsn, '--create', '-c', "root['n'] = 41", '--commit')
    out = run('durus_shell', dsn, '-c', "root['n'] += 1\nprint(root['n'])",
              '--commit')
    assert out.stdout.split() == ['42', 'Committed', '1', 'object.']
    storage = PgStorage(dsn)
    try:
        assert Connection(storage).get_root()['n'] == 42
    finally:
        storage.close()


def test_durus_serve_pack_and_durus43_client(dsn, durus_server,
                                             durus43_python):
    server = durus_server('--pg', dsn, file=False)
    client = ClientStorage(port=server.port)
    try:
        fill(client)
        check(client)
    finally:
        client.close()
    script = '''
import sys
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.persistent_dict import PersistentDict
c = Connection(ClientStorage(port=int(sys.argv[1])))
root = c.get_root()
assert root['name'] == u'gr\\xfc\\xdf', repr(root['name'])
root['from_43'] = PersistentDict(text='written by 4.3')
c.commit()
c.abort()
print(c.get_root()['from_43']['text'])
'''
    assert run_durus43(durus43_python, script,
                       server.port).stdout.strip() == 'written by 4.3'
    server.stop()
    storage = PgStorage(dsn)
    try:
        assert Connection(storage).get_root()['from_43']['text'] == (
            'written by 4.3')
        before = storage.get_object_count()
        run('durus', '-p', '--pg', dsn)
        assert storage.get_object_count() == before - 1   # 'gone'
        check(storage)
    finally:
        storage.close()


def test_copy_file_to_postgresql_and_back(tmp_path, dsn):
    source = FileStorage(str(tmp_path / 'a.durus'))
    fill(source, 3000)
    source.close()
    out = run('durus', 'copy', str(tmp_path / 'a.durus'), dsn)
    assert 'copied 3002 records' in out.stdout
    refused = run('durus', 'copy', str(tmp_path / 'a.durus'), dsn,
                  check=False)
    assert refused.returncode == 1 and 'not empty' in refused.stderr
    assert '--force' in refused.stderr
    run('durus', 'copy', '--force', str(tmp_path / 'a.durus'), dsn)
    for name in ('back.durus', 'back.sqlite'):
        if name.endswith('sqlite'):
            from durus.sqlite_storage import SqliteStorage
            SqliteStorage(str(tmp_path / name)).close()
        out = run('durus', 'copy', dsn, str(tmp_path / name))
        assert 'copied 3002 records' in out.stdout
    back = FileStorage(str(tmp_path / 'back.durus'), readonly=True)
    check(back, 3000)
    back.close()
    pg = PgStorage(dsn)
    try:
        check(pg, 3000)
        # The oid sequence moved past the copied oids.
        connection = Connection(pg)
        connection.get_root()['more'] = PersistentDict(y=2)
        connection.commit()
        assert connection.get_root()['items'][5]['i'] == 5
    finally:
        pg.close()


def test_copy_from_a_server_into_postgresql(tmp_path, dsn, durus_server):
    server = durus_server()
    client = ClientStorage(port=server.port)
    try:
        fill(client, 50)
    finally:
        client.close()
    out = run('durus', 'copy', 'durus://127.0.0.1:%d' % server.port, dsn)
    assert 'copied 52 records' in out.stdout
    pg = PgStorage(dsn)
    try:
        check(pg, 50)
    finally:
        pg.close()
    # And into another (empty) server: its file storage hands the oids out.
    second = durus_server()
    out = run('durus', 'copy', dsn, 'durus://127.0.0.1:%d' % second.port)
    assert 'copied 52 records' in out.stdout
    client = ClientStorage(port=second.port)
    try:
        check(client, 50)
    finally:
        client.close()


def test_copy_progress_bar_on_a_terminal():
    import io
    from durus.copy import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    stream = Terminal()
    progress = Progress(200, stream)
    progress.update(50, final=True)
    assert stream.getvalue().startswith('\r[' + '#' * 7 + ' ' * 23 + ']  25% '
                                        '50/200 records')
    quiet = io.StringIO()
    Progress(200, quiet).update(200, final=True)
    assert quiet.getvalue() == ''


def test_durus_c_passes_a_url_to_the_shell_without_create():
    from optparse import Values
    from durus.__main__ import shell_arguments
    options = Values(dict(file='postgresql:///app', address=None,
                          host='127.0.0.1', port=2972, readonly=True,
                          repair=False, cache_size=None, startup=None))
    assert shell_arguments(options) == ['postgresql:///app', '--readonly']


def test_served_and_direct_clients_see_each_others_commits(dsn,
                                                           durus_server):
    direct_storage = PgStorage(dsn, create=True)
    direct = Connection(direct_storage)
    direct.get_root()['box'] = PersistentDict(n=0)
    direct.commit()
    server = durus_server('--pg', dsn, file=False)
    served_storage = ClientStorage(port=server.port)
    try:
        served = Connection(served_storage)
        assert served.get_root()['box']['n'] == 0
        direct.get_root()['box']['n'] = 1
        direct.commit()
        served.abort()
        assert served.get_root()['box']['n'] == 1
        served.get_root()['box']['n'] = 2
        served.commit()
        # Both change the box: the second commit is a conflict.
        direct.get_root()['box']['n'] = 3
        from durus.error import ConflictError
        with pytest.raises(ConflictError):
            direct.commit()
        direct.abort()
        assert direct.get_root()['box']['n'] == 2
    finally:
        served_storage.close()
        direct_storage.close()


def test_shell_on_postgresql_says_how_many_commits_behind(dsn):
    from durus_shell import freshness
    from durus_shell.commands import run_input
    from durus_shell.session import Session
    from durus_shell.ui import RecordingUI
    fill(PgStorage(dsn, create=True), n=3).storage.close()
    session = Session(PgStorage(dsn))
    other = Connection(PgStorage(dsn))
    try:
        watch = freshness.watch(session)
        assert watch.look() == ''
        run_input(session, "root['items'][1]['i']", RecordingUI())
        for value in (10, 11):
            other.get_root()['items'][1]['i'] = value
            other.commit()
        assert watch.look() == 'view 2 commits behind (:abort brings them in)'
        ui = RecordingUI()
        run_input(session, ':abort', ui)
        assert 'Brought in: 1 object changed by other clients (2 commits)' \
            in ui.text
        assert "at root['items'][1]" in ui.text
        assert watch.look() == ''
    finally:
        other.storage.close()
        session.close()
