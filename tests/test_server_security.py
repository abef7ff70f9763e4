"""A server that can be exposed: users and roles, TLS (certificates made
by trustme), socket permissions and peer credentials, against real
`durus -s` processes on 127.0.0.1 and in-thread servers; and Durus 4.3's
own client against a server with users."""

import datetime
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid

import pytest
import trustme

from durus.auth import set_user
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import (
    AuthenticationError, PermissionDeniedError, ProtocolError,
    ServerRefusedError, ShortRead)
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.storage_server import StorageServer
from durus.tls import client_context, server_context
from durus43_env import run_durus43

from server_process import durus_server, free_port, wait_for  # noqa: F401

ITERATIONS = 4096
# A new prompt of durus-shell (as in test_shell_pty.py).
PROMPT = r'\x1b\[\?2004h[^\n]*?durus> '


def durus(*args, timeout=60, **kw):
    return subprocess.run([sys.executable, '-m', 'durus'] + list(args),
                          capture_output=True, text=True, timeout=timeout,
                          **kw)


@pytest.fixture
def users_file(tmp_path):
    path = str(tmp_path / 'users.txt')
    for name, role in (('reader', 'read'), ('writer', 'write'),
                       ('boss', 'admin')):
        set_user(path, name, role, 'pw-' + name, ITERATIONS)
    return path


def client(server, name=None, **kw):
    if name is not None:
        kw.update(user=name, secret=kw.pop('secret', 'pw-' + name))
    return ClientStorage(port=server.port, timeout=20, **kw)


# Authentication against a real server process ---------------------------------

def test_users_roles_and_refusals_end_to_end(durus_server, users_file):
    server = durus_server('--users', users_file)
    writer = Connection(client(server, 'writer'))
    assert writer.get_storage().role == 'write'
    writer.get_root()['data'] = PersistentDict(n=1)
    writer.commit()

    reader = Connection(client(server, 'reader'))
    assert reader.get_root()['data']['n'] == 1
    reader.get_root()['data']['n'] = 2
    with pytest.raises(PermissionDeniedError, match='role read'):
        reader.commit()
    reader.abort()                          # the connection stays usable
    assert reader.get_root()['data']['n'] == 1
    with pytest.raises(PermissionDeniedError):
        writer.pack()

    with pytest.raises(AuthenticationError, match='wrong user name or secret'):
        client(server, 'writer', secret='wrong')
    with pytest.raises(AuthenticationError, match='wrong user name or secret'):
        client(server, 'nobody', secret='pw-writer')
    with pytest.raises(AuthenticationError, match='requires authentication'):
        client(server)
    log = server.log()
    assert "wrong secret for user 'writer'" in log
    assert "unknown user 'nobody'" in log
    assert 'peer 127.0.0.1' in log
    assert 'without authenticating' in log

    # A raw pack from a read user is refused with a reason; the server
    # goes on serving.
    # The server denies what the role does not allow (here a client that
    # does not check first); the connection goes on.
    storage = client(server, 'reader')
    storage.role = None
    with pytest.raises(PermissionDeniedError, match='role read does not '
                       'allow a pack'):
        storage.pack()
    with pytest.raises(PermissionDeniedError, match='new oids'):
        storage.new_oid()
    assert Connection(storage).get_root()['data']['n'] == 1
    assert "denied: the role read does not allow a pack (P) (user reader)" \
        in server.log()
    assert Connection(client(server, 'boss')).get_root()['data']['n'] == 1

    # Only an admin stops it: durus -s --stop --user.
    refused = durus('-s', '--stop', '--port', str(server.port), '--user',
                    'writer', env=dict(os.environ, DURUS_SECRET='pw-writer'))
    assert refused.returncode == 1 and 'role write' in refused.stderr
    assert server.process.poll() is None
    secret_file = os.path.join(os.path.dirname(users_file), 'boss.secret')
    with open(secret_file, 'w') as f:
        f.write('pw-boss\n')
    stopped = durus('-s', '--stop', '--port', str(server.port), '--user',
                    'boss', '--secret-file', secret_file)
    assert stopped.returncode == 0, stopped.stderr
    assert server.wait(10) == 0


def test_a_bad_users_file_stops_the_server_at_start(tmp_path):
    path = tmp_path / 'users.txt'
    path.write_text('alice:superuser:SCRAM-SHA-256$4096:x$y:z\n')
    result = durus('-s', '--users', str(path), '--port', str(free_port()),
                   '--file', str(tmp_path / 'db.durus'))
    assert result.returncode == 1
    assert 'line 1' in result.stderr and "unknown role 'superuser'" in \
        result.stderr
    assert not (tmp_path / 'db.durus').exists()   # checked before opening


def test_durus_passwd_reads_the_secret_from_stdin(tmp_path):
    path = str(tmp_path / 'users.txt')
    result = durus('passwd', path, 'ops', '--role', 'admin', '--iterations',
                   '4096', input='s3cret\n')
    assert result.returncode == 0 and 'added user ops' in result.stdout
    assert 's3cret' not in open(path).read()
    result = durus('passwd', path, 'ops', '--role', 'root', input='x\n')
    assert result.returncode == 2 and 'invalid choice' in result.stderr


def test_users_server_accepts_beyond_loopback_without_insecure(
        durus_server, users_file):
    server = durus_server('--host', '0.0.0.0', '--users', users_file)
    assert 'Authentication required: 3 users' in server.log()
    # (a read user could not create the root of this new database)
    assert Connection(client(server, 'writer')).get_root() is not None


@pytest.mark.slow
def test_durus43_client_against_servers_with_and_without_users(
        durus_server, users_file, durus43_python):
    script = '''
import sys
from durus.client_storage import ClientStorage
from durus.connection import Connection
try:
    c = Connection(ClientStorage(port=int(sys.argv[1])))
    c.get_root()['from_43'] = 1
    c.commit()
    print('ok')
except Exception as error:
    print('%s: %s' % (type(error).__name__, error))
'''
    secured = durus_server('--users', users_file)
    result = run_durus43(durus43_python, script, secured.port)
    assert result.stdout.strip() == 'ProtocolError: Protocol version mismatch.'
    assert wait_for(lambda: 'a Durus 4.3 client' in secured.log())
    plain = durus_server()
    assert run_durus43(durus43_python, script, plain.port).stdout.strip() \
        == 'ok'


# Protected by default: Unix sockets and peer credentials -------------------

def test_socket_files_are_private_unless_widened(durus_server, tmp_path):
    path = str(tmp_path / 'private.sock')
    durus_server('--address', path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    wide = str(tmp_path / 'wide.sock')
    durus_server('--address', wide, '--socket-mode', '660')
    assert os.stat(wide).st_mode & 0o777 == 0o660


def test_peer_credentials_give_a_role_without_a_secret(durus_server,
                                                       users_file, tmp_path):
    path = str(tmp_path / 'peer.sock')
    server = durus_server('--address', path, '--users', users_file,
                          '--peer-uid', '%d:read' % os.getuid())
    # An authenticated user still authenticates as itself over the socket:
    first = Connection(ClientStorage(address=path, user='writer',
                                     secret='pw-writer'))
    first.commit()                                    # the root
    local = Connection(ClientStorage(address=path))   # no user, no secret
    assert local.get_root() is not None
    local.get_root()['x'] = 1
    with pytest.raises(ServerRefusedError, match='permission denied'):
        local.commit()
    assert 'role read does not allow' in server.log()


# TLS --------------------------------------------------------------------------

@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1, a client certificate, an
    expired server certificate, and another CA."""
    directory = tmp_path_factory.mktemp('pki')
    ca = trustme.CA()
    other_ca = trustme.CA()
    files = {}

    def write(name, blob):
        path = str(directory / name)
        blob.write_to_path(path)
        files[name] = path

    write('ca.pem', ca.cert_pem)
    write('other-ca.pem', other_ca.cert_pem)
    server_cert = ca.issue_cert('127.0.0.1', 'localhost')
    write('server.pem', server_cert.cert_chain_pems[0])
    write('server.key', server_cert.private_key_pem)
    expired = ca.issue_cert('127.0.0.1', not_after=datetime.datetime(
        2000, 1, 1, tzinfo=datetime.timezone.utc), not_before=datetime.datetime(
        1999, 1, 1, tzinfo=datetime.timezone.utc))
    write('expired.pem', expired.cert_chain_pems[0])
    write('expired.key', expired.private_key_pem)
    client_cert = ca.issue_cert('alice@example.org')
    write('client.pem', client_cert.cert_chain_pems[0])
    write('client.key', client_cert.private_key_pem)
    stranger = other_ca.issue_cert('mallory@example.org')
    write('stranger.pem', stranger.cert_chain_pems[0])
    write('stranger.key', stranger.private_key_pem)
    return files


def test_tls_server_and_client(durus_server, pki, users_file):
    server = durus_server('--tls-cert', pki['server.pem'], '--tls-key',
                          pki['server.key'], '--users', users_file)
    context = client_context(pki['ca.pem'])
    connection = Connection(client(server, 'writer', ssl_context=context))
    connection.get_root()['tls'] = 'yes'
    connection.commit()
    assert isinstance(connection.get_storage().s, ssl.SSLSocket)
    # Wrong CA: the client refuses the server's certificate.
    with pytest.raises(ProtocolError, match='not trust'):
        client(server, 'writer', ssl_context=client_context(
            pki['other-ca.pem']))
    # Plain TCP to a TLS server: a one-line error; the server goes on.
    with pytest.raises((ProtocolError, ShortRead), match='TLS'):
        client(server, 'writer')
    assert wait_for(lambda: 'TLS handshake failed' in server.log())
    again = Connection(client(server, 'reader', ssl_context=context))
    assert again.get_root()['tls'] == 'yes'


def test_mutual_tls_needs_a_client_certificate_from_the_ca(durus_server, pki):
    server = durus_server('--tls-cert', pki['server.pem'], '--tls-key',
                          pki['server.key'], '--tls-client-ca', pki['ca.pem'])
    good = client_context(pki['ca.pem'], pki['client.pem'], pki['client.key'])
    assert Connection(client(server, ssl_context=good)).get_root() is not None
    for context in (client_context(pki['ca.pem']),
                    client_context(pki['ca.pem'], pki['stranger.pem'],
                                   pki['stranger.key'])):
        with pytest.raises((ProtocolError, ShortRead)):
            Connection(client(server, ssl_context=context)).get_root()
    assert wait_for(lambda: server.log().count('TLS handshake failed') >= 1)
    assert Connection(client(server, ssl_context=good)).get_root() is not None


def test_expired_server_certificate_is_refused(durus_server, pki):
    server = durus_server('--tls-cert', pki['expired.pem'], '--tls-key',
                          pki['expired.key'])
    with pytest.raises(ProtocolError, match='expired'):
        client(server, ssl_context=client_context(pki['ca.pem']))


def test_tls_client_to_a_plain_server(durus_server, pki):
    server = durus_server()
    with pytest.raises(ProtocolError, match='TLS handshake .* failed'):
        client(server, ssl_context=client_context(pki['ca.pem']))
    assert wait_for(lambda: 'this server does not use TLS' in server.log())
    assert Connection(client(server)).get_root() is not None


def test_a_stalled_handshake_holds_up_nobody(pki, tmp_path):
    storage = FileStorage(str(tmp_path / 'tls.durus'))
    server = StorageServer(storage, port=0, timeout=1,
                           ssl_context=server_context(pki['server.pem'],
                                                      pki['server.key']))
    server.listen()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    stalled = socket.create_connection(('127.0.0.1', server.address.port), 5)
    try:
        stalled.sendall(b'\x16\x03\x01')      # the start of a ClientHello
        start = time.monotonic()
        storage_client = ClientStorage(
            port=server.address.port,
            ssl_context=client_context(pki['ca.pem']))
        Connection(storage_client).get_root()
        assert time.monotonic() - start < 0.9
        storage_client.close()
        stalled.settimeout(5)
        assert stalled.recv(100) == b''      # dropped after the timeout
    finally:
        stalled.close()
        server.stop()
        thread.join(10)


# Slow clients ---------------------------------------------------------------

def test_a_trickling_client_is_dropped_and_others_stay_fast(tmp_path):
    storage = FileStorage(str(tmp_path / 'slow.durus'))
    server = StorageServer(storage, port=0, timeout=1, min_rate=1024)
    server.listen()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    slow = socket.create_connection(('127.0.0.1', server.address.port), 5)
    try:
        slow.sendall(b'V\0\0\0\x02')
        assert slow.recv(4) == b'\0\0\0\x02'
        slow.sendall(b'A' + (10 << 20).to_bytes(4, 'big'))
        latencies = []
        dropped = False
        good = Connection(ClientStorage(port=server.address.port))
        for step in range(40):           # one byte every 0.1 s, at most 4 s
            try:
                slow.sendall(b'z')
            except OSError:
                dropped = True
                break
            start = time.monotonic()
            good.get_root()['n'] = step
            good.commit()
            latencies.append(time.monotonic() - start)
            time.sleep(0.1)
        if not dropped:
            slow.settimeout(3)
            dropped = slow.recv(10) == b''
        assert dropped
        assert max(latencies) < 0.5
        good.get_storage().close()
    finally:
        slow.close()
        server.stop()
        thread.join(10)


def peak_rss_kb(server):
    with open('/proc/%d/status' % server.pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    raise AssertionError('no VmHWM')


def test_buffered_input_is_bounded_in_total_and_given_back(durus_server):
    limit = 40 << 20
    server = durus_server('--max-buffered', str(limit), '--max-frame',
                          str(200 << 20))
    baseline = server.rss_kb()
    hogs = []
    try:
        chunk = b'x' * (1 << 20)
        for number in range(2):
            hog = socket.create_connection(('127.0.0.1', server.port), 10)
            hogs.append(hog)
            hog.sendall(b'V\0\0\0\x02')
            assert hog.recv(4) == b'\0\0\0\x02'
            hog.sendall(b'A' + (150 << 20).to_bytes(4, 'big'))
            try:
                for _ in range(30):        # 30 MiB each: 60 MiB in all
                    hog.sendall(chunk)
            except OSError:
                break                      # refused and closed meanwhile
        assert wait_for(lambda: 'would pass the limit' in server.log(), 10)
        peak = peak_rss_kb(server)
        # 60 MiB were sent; at most the limit (and slack) is held.
        assert peak - baseline < (limit >> 10) + 12 * 1024, (baseline, peak)
        # One hog is still served; the server answers others.
        other = client(server)
        assert Connection(other).get_root() is not None
        other.close()
    finally:
        for hog in hogs:
            hog.close()
    assert wait_for(lambda: 'closed in the middle of a request'
                    in server.log(), 10)
    assert wait_for(lambda: server.rss_kb() - baseline < 24 * 1024, 5), (
        baseline, server.rss_kb())


# The shell ------------------------------------------------------------------

def test_shell_asks_for_the_secret_without_echo(durus_server, users_file,
                                                tmp_path):
    import pexpect
    server = durus_server('--users', users_file)
    setup = Connection(client(server, 'writer'))
    setup.get_root()['greeting'] = 'hello'
    setup.commit()
    env = dict(os.environ, TERM='xterm', PROMPT_TOOLKIT_NO_CPR='1',
               NO_COLOR='1', HOME=str(tmp_path))
    env.pop('DURUS_SECRET', None)
    child = pexpect.spawn(sys.executable, [
        '-m', 'durus_shell', '--client', '127.0.0.1:%d' % server.port,
        '--user', 'reader'], env=env, encoding='utf-8', timeout=20,
        dimensions=(40, 120))
    try:
        child.expect('Secret for reader: ')
        child.sendline('pw-reader')
        child.expect(PROMPT)
        assert 'pw-reader' not in child.before
        child.send("root['greeting']\r")
        child.expect("'hello'")
        child.expect(PROMPT)
        child.sendcontrol('d')
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    # Wrong secret from DURUS_SECRET, without a prompt: one clear line.
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', '--client',
         '127.0.0.1:%d' % server.port, '--user', 'reader', '-c', '1'],
        capture_output=True, text=True, timeout=60,
        env=dict(env, DURUS_SECRET='nope'), stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert 'wrong user name or secret' in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    # Right secret from a file, TLS-less script mode:
    secret_file = tmp_path / 'secret'
    secret_file.write_text('pw-reader\n')
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', '--client',
         '127.0.0.1:%d' % server.port, '--user', 'reader', '--secret-file',
         str(secret_file), '-c', "print(root['greeting'])"],
        capture_output=True, text=True, timeout=60, env=env,
        stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'hello'


def test_shell_over_tls(durus_server, pki, tmp_path):
    server = durus_server('--tls-cert', pki['server.pem'], '--tls-key',
                          pki['server.key'])
    setup = Connection(client(server, ssl_context=client_context(
        pki['ca.pem'])))
    setup.get_root()['tls'] = 'on'
    setup.commit()
    base = [sys.executable, '-m', 'durus_shell', '--client',
            '127.0.0.1:%d' % server.port, '-c', "print(root['tls'])"]
    done = subprocess.run(base + ['--tls-ca', pki['ca.pem']],
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'on'
    done = subprocess.run(base, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and '--tls-ca' in done.stderr


# Packing never unpickles --------------------------------------------------------

def test_packing_a_server_holding_hostile_records_runs_nothing(
        durus_server, users_file, tmp_path):
    from durus.serialize import pack_record
    marker = tmp_path / 'pwned'
    evil = ("cos\nsystem\n(S'touch %s'\ntR." % marker).encode()
    server = durus_server('--users', users_file)
    storage = client(server, 'boss')
    root, child = b'\0' * 8, storage.new_oid()
    if child == root:
        child = storage.new_oid()
    storage.begin()
    storage.store(root, pack_record(root, evil + evil, child))
    storage.store(child, pack_record(child, evil + evil, b''))
    storage.end()
    storage.pack()
    assert wait_for(lambda: 'Pack finished' in server.log(), 10)
    assert not marker.exists()
    assert storage.load(child)[12:12 + len(evil)] == evil    # kept: reachable
    storage.close()
    assert os.path.exists(str(tmp_path / 'db0.durus.prepack'))


def test_a_plain_stop_of_a_server_with_users_says_how(durus_server,
                                                      users_file,
                                                      monkeypatch):
    import logging
    import durus.__main__ as durus_main
    server = durus_server('--users', users_file)
    monkeypatch.setattr(durus_main, 'STOP_WAIT', 0.5)
    messages = []

    class Handler(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Handler()
    logging.getLogger('durus').addHandler(handler)
    try:
        assert durus_main.stop_durus(('127.0.0.1', server.port)) is None
    finally:
        logging.getLogger('durus').removeHandler(handler)
    assert server.process.poll() is None
    assert any('--stop --user NAME' in m for m in messages)
    assert wait_for(lambda: 'stopping the server (Q)' in server.log())


def test_an_authenticated_client_commits_in_one_round_trip(durus_server,
                                                           users_file):
    server = durus_server('--users', users_file)
    storage = client(server, 'writer')
    assert storage.version == 5   # protocol 3 plus pending_changes
    connection = Connection(storage)
    connection.commit()                 # the root
    before = storage.requests
    connection.get_root()['x'] = 1
    connection.commit()
    assert storage.requests - before == 1      # 'A', as under protocol 2


def test_tls_requests_in_separate_records_arriving_together(durus_server,
                                                            pki):
    server = durus_server('--tls-cert', pki['server.pem'], '--tls-key',
                          pki['server.key'])
    raw = socket.create_connection(('127.0.0.1', server.port), 10)
    sock = client_context(pki['ca.pem']).wrap_socket(
        raw, server_hostname='127.0.0.1')
    try:
        sock.settimeout(10)
        sock.sendall(b'V\0\0\0\x02')
        assert sock.recv(4) == b'\0\0\0\x02'
        for _ in range(20):              # twenty records in one burst
            sock.sendall(b'L' + b'\0' * 7 + b'\x09')
        received = b''
        while len(received) < 20:
            received += sock.recv(100)
        assert received == b'K' * 20
    finally:
        sock.close()


def test_which_addresses_count_as_protected(tmp_path):
    from durus.socket_address import InheritedSocket, SocketAddress
    assert SocketAddress.new(('127.0.0.1', 1)).is_protected()
    assert SocketAddress.new(('::1', 1)).is_protected()
    assert not SocketAddress.new(('0.0.0.0', 1)).is_protected()
    assert not SocketAddress.new(('10.1.2.3', 1)).is_protected()
    assert SocketAddress.new(str(tmp_path / 'x.sock')).is_protected()
    assert not SocketAddress.new('@abstract').is_protected()
    # Sockets systemd hands over are judged by what they are bound to.
    sockets = []
    try:
        for family, address, protected in (
                (socket.AF_INET, ('127.0.0.1', 0), True),
                (socket.AF_INET, ('0.0.0.0', 0), False),
                (socket.AF_UNIX, str(tmp_path / 'sd.sock'), True),
                (socket.AF_UNIX, '\0durus-sd-%s' % uuid.uuid4().hex, False)):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(address)
            assert InheritedSocket(sock).is_protected() is protected, address
    finally:
        for sock in sockets:
            sock.close()
