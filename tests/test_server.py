"""A real `python -m durus -s` process serving a file to real clients.

Every server is a subprocess on 127.0.0.1 (or a Unix/abstract socket)
started by the ``durus_server`` fixture and stopped in its finalizer.
"""

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ReadConflictError, ServerUnreachableError, WriteConflictError
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.serialize import pack_record

from server_process import (durus_server, free_port,  # noqa: F401
                            stop_process, wait_for)


def connect(server, **kw):
    if isinstance(server.address, tuple):
        storage = ClientStorage(port=server.port)
    else:
        storage = ClientStorage(address=server.address)
    return Connection(storage, **kw)


def recv_all(sock, timeout=5):
    """Everything until the server closes (each recv waits ``timeout``;
    a server still sending after 3 x ``timeout`` fails the test)."""
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + 3 * timeout
    while time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            return b''.join(chunks)
        chunks.append(data)
    raise AssertionError('the server did not close the connection')


def test_loads_and_commits_are_shared_between_clients(durus_server):
    server = durus_server()
    a = connect(server)
    a.get_root()['greeting'] = PersistentDict(text='hello')
    a.commit()
    b = connect(server)
    assert b.get_root()['greeting']['text'] == 'hello'
    b.get_root()['greeting']['text'] = 'bye'
    b.commit()
    # a learns about b's commit at its next transaction boundary
    assert a.get_root()['greeting']['text'] == 'hello'
    a.abort()
    assert a.get_root()['greeting']['text'] == 'bye'


def test_write_conflict_then_abort_and_retry(durus_server):
    server = durus_server()
    a, b = connect(server), connect(server)
    a.get_root()['n'] = 0
    a.commit()
    b.abort()
    a.get_root()['n'] += 1                 # a reads and changes n ...
    b.get_root()['n'] += 10                # ... b changes it and commits first
    b.commit()
    with pytest.raises(WriteConflictError):
        a.commit()
    a.abort()
    a.get_root()['n'] += 1
    a.commit()
    b.abort()
    assert b.get_root()['n'] == 11


def test_read_conflict_when_a_loaded_object_changed(durus_server):
    server = durus_server()
    a = connect(server)
    root = a.get_root()
    root['x'] = PersistentDict(v=1)
    root['y'] = PersistentDict(v=1)
    a.commit()
    reader = connect(server)
    assert reader.get_root()['x']['v'] == 1      # x loaded in this transaction
    root['x']['v'] = 2
    root['y']['v'] = 2
    a.commit()
    with pytest.raises(ReadConflictError):
        reader.get_root()['y']['v']              # y is a ghost, stale on server
    reader.abort()
    assert reader.get_root()['y']['v'] == 2
    assert reader.get_root()['x']['v'] == 2


def test_untouched_objects_are_invalidated_silently(durus_server):
    server = durus_server()
    a, b = connect(server), connect(server)
    a.get_root()['x'] = PersistentDict(v=1)
    a.commit()
    b.abort()
    assert b.get_root()['x']['v'] == 1
    b.commit()                                     # new transaction on b
    a.get_root()['x']['v'] = 2
    a.commit()
    b.get_root()['other'] = 1                      # touches root, not x
    b.commit()                                     # x gets ghosted, no error
    assert b.get_root()['x']['v'] == 2


def test_pack_while_clients_commit(durus_server, tmp_path):
    path = tmp_path / 'packed.durus'
    server = durus_server(file=path)
    a = connect(server)
    root = a.get_root()
    # garbage first: pack reports removed oids below the new map's size
    garbage = [PersistentDict(g=i) for i in range(200)]
    root['junk'] = PersistentDict(enumerate(garbage))
    a.commit()
    junk_oids = {obj._p_oid for obj in garbage}
    root['keep'] = PersistentDict((i, PersistentDict(i=i)) for i in range(3000))
    del root['junk']
    a.commit()
    observer = ClientStorage(port=server.port)
    a.storage.pack()                               # 'P': replies at once
    for i in range(20):                            # commits during the pack
        root['keep'][i]['i'] = -i
        a.commit()
    assert wait_for(lambda: 'Pack finished' in server.log(), 20)
    # the removed oids reach every client through sync
    assert junk_oids <= set(observer.sync())
    b = connect(server)
    keep = b.get_root()['keep']
    assert [keep[i]['i'] for i in range(25)] == [-i for i in range(20)] + list(
        range(20, 25))
    assert os.path.exists(str(path) + '.prepack')
    assert os.path.getsize(path) < os.path.getsize(str(path) + '.prepack')


def test_sigterm_closes_the_storage(durus_server, tmp_path):
    path = tmp_path / 'stop.durus'
    server = durus_server(file=path)
    a = connect(server)
    a.get_root()['x'] = 1
    a.commit()
    assert server.stop() == 0
    assert 'Stopped serving' in server.log()
    # the write lock is released: the file opens for writing
    storage = FileStorage(str(path))
    assert Connection(storage).get_root()['x'] == 1
    storage.close()
    with pytest.raises(ServerUnreachableError, match='127.0.0.1:%d'
                       % server.port):
        ClientStorage(port=server.port)


def test_stop_option_sends_quit(durus_server):
    server = durus_server()
    result = subprocess.run(
        [sys.executable, '-m', 'durus', '-s', '--stop', '--port',
         str(server.port)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert server.wait(10) == 0
    assert 'asked the server to quit' in server.log()


def test_unix_socket_server(durus_server, tmp_path):
    import grp
    import pwd
    path = str(tmp_path / 'durus.sock')
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    server = durus_server('--address', path, '--umask', '077',
                          '--owner', user, '--group', group)
    info = os.stat(path)
    assert info.st_mode & 0o077 == 0
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
    a = connect(server)
    a.get_root()['unix'] = True
    a.commit()
    assert connect(server).get_root()['unix'] is True
    # --stop sends Q; the server removes its socket file on the way out
    stop = subprocess.run([sys.executable, '-m', 'durus', '-s', '--stop',
                           '--address', path], capture_output=True,
                          text=True, timeout=30)
    assert stop.returncode == 0
    assert server.wait(10) == 0
    assert not os.path.exists(path)


def test_stale_unix_socket_file_is_replaced(durus_server, tmp_path):
    path = str(tmp_path / 'stale.sock')
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(path)                            # bound, never listening
    leftover.close()
    server = durus_server('--address', path)
    assert connect(server).get_root() is not None


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='abstract sockets are Linux only')
def test_abstract_socket_server(durus_server):
    name = '@durus-test-%s' % uuid.uuid4().hex
    server = durus_server('--address', name, '--insecure')
    a = connect(server)
    a.get_root()['abstract'] = True
    a.commit()
    assert connect(server).get_root()['abstract'] is True
    assert 'Ready on %s' % name in server.log()


def test_ipv6_loopback(durus_server):
    if not socket.has_ipv6:
        pytest.skip('no IPv6 support in this Python')
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(('::1', 0))
    except OSError:
        pytest.skip('no IPv6 loopback on this machine')
    port = free_port()
    server = durus_server('--host', '::1', port=port)
    storage = ClientStorage(host='::1', port=port)
    assert str(storage) == 'ClientStorage([::1]:%d)' % port
    Connection(storage).get_root()['v6'] = 1
    storage.close()
    assert 'WARNING' not in server.log()


def test_reserved_oids_are_per_client(durus_server):
    server = durus_server()
    connect(server).commit()                       # creates the root
    a = ClientStorage(port=server.port)
    reserved = a.new_oid()
    # b commits an oid handed to a: b is dropped, a is unaffected
    with socket.create_connection(('127.0.0.1', server.port)) as b:
        record = pack_record(reserved, b'x', b'')
        item = (8 + len(record)).to_bytes(4, 'big') + reserved + record
        b.sendall(b'C')
        b.settimeout(5)
        assert b.recv(4) == b'\x00\x00\x00\x00'
        b.sendall(len(item).to_bytes(4, 'big') + item)
        assert recv_all(b) == b'E'      # refused (protocol 1: no reason)
    assert 'handed to client' in server.log()
    a.begin()
    a.store(reserved, pack_record(reserved, b'mine', b''))
    a.end()
    assert a.load(reserved) == pack_record(reserved, b'mine', b'')
    # N hands out one oid, never one reserved by someone else
    with socket.create_connection(('127.0.0.1', server.port)) as c:
        c.sendall(b'N')
        c.settimeout(5)
        new = c.recv(8)
        assert len(new) == 8 and new != reserved


def test_gcbytes_starts_a_pack(durus_server):
    server = durus_server('--gcbytes', '2000')
    a = connect(server)
    for i in range(30):
        a.get_root()['x'] = 'y' * 100 + str(i)
        a.commit()
    assert wait_for(lambda: 'Pack finished' in server.log(), 10)
    assert 'bytes committed since the last pack' in server.log()


INCREMENTER = textwrap.dedent('''
    import sys
    from durus.client_storage import ClientStorage
    from durus.connection import Connection
    from durus.error import ConflictError
    port, rounds = int(sys.argv[1]), int(sys.argv[2])
    connection = Connection(ClientStorage(port=port))
    successes = tries = 0
    while successes < rounds and tries < rounds * 100:  # bounded retries
        tries += 1
        try:
            counters = connection.get_root()['counters']
            counters['total'] += 1
            counters['p%d' % (successes % 3)] += 1
            connection.commit()
            successes += 1
        except ConflictError:
            connection.abort()
    print(successes)
''')


def test_concurrent_increments_lose_nothing(durus_server):
    server = durus_server()
    setup = connect(server)
    setup.get_root()['counters'] = PersistentDict(total=0, p0=0, p1=0, p2=0)
    setup.commit()
    rounds, workers = 40, 4
    procs = [subprocess.Popen([sys.executable, '-c', INCREMENTER,
                               str(server.port), str(rounds)],
                              stdout=subprocess.PIPE, text=True)
             for _ in range(workers)]
    try:
        outputs = [int(p.communicate(timeout=60)[0]) for p in procs]
    finally:
        for p in procs:
            stop_process(p, kill=True)
    assert outputs == [rounds] * workers
    setup.abort()
    counters = setup.get_root()['counters']
    assert counters['total'] == rounds * workers
    assert counters['p0'] + counters['p1'] + counters['p2'] == rounds * workers
