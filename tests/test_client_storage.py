"""ClientStorage: clear errors naming the address, no hangs, and the
Storage contract over the wire (against an in-thread server or a fake
peer that misbehaves on purpose)."""

import re
import socket
import threading
import time
import uuid

import pytest

from durus.client_storage import ClientStorage
from durus.error import (
    ConflictError, DurusKeyError, ProtocolError, ReadConflictError,
    ServerUnreachableError, ShortRead, WriteConflictError)
from durus.serialize import pack_record
from durus.storage import MemoryStorage
from durus.storage_server import StorageServer

from server_process import free_port

ROOT = b'\0' * 8


def oid(n):
    return n.to_bytes(8, 'big')


@pytest.fixture
def server():
    storage = MemoryStorage()
    root = storage.new_oid()
    storage.begin()
    storage.store(root, pack_record(root, b'root', b''))
    storage.end()
    server = StorageServer(storage, port=0)
    server.listen()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    server.stop()
    thread.join(10)


@pytest.fixture
def fake_server():
    """Factory: a listener whose connections run ``script(sock)`` (the
    first ``connections`` of them, one after the other)."""
    threads = []

    def start(script, connections=1):
        listener = socket.socket()
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)

        def run():
            with listener:
                for _ in range(connections):
                    conn, _ = listener.accept()
                    with conn:
                        try:
                            script(conn)
                        except OSError:
                            pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return listener.getsockname()[1]

    yield start
    for thread in threads:
        thread.join(10)


def answer_version(conn, version=1, asked=1):
    """Answer the client's 'V' (for protocol ``asked``) with ``version``.
    The scripted servers below speak protocol 1, as Durus 4.3 does."""
    assert conn.recv(5) == b'V' + asked.to_bytes(4, 'big')
    conn.sendall(version.to_bytes(4, 'big'))


def test_nobody_listening_on_tcp_names_the_address():
    port = free_port()
    with pytest.raises(ServerUnreachableError) as caught:
        ClientStorage(port=port)
    assert '127.0.0.1:%d' % port in str(caught.value)
    assert 'durus -s' in str(caught.value)


def test_nobody_listening_on_unix_or_abstract_sockets(tmp_path):
    path = str(tmp_path / 'missing.sock')
    with pytest.raises(ServerUnreachableError, match='missing.sock'):
        ClientStorage(address=path)
    name = '@missing-%s' % uuid.uuid4().hex
    with pytest.raises(ServerUnreachableError, match=name):
        ClientStorage(address=name)


def test_a_bad_oid_is_refused_before_anything_is_sent(server):
    storage = ClientStorage(port=server.address.port)
    with pytest.raises(TypeError, match="'root'"):
        storage.load('root')
    with pytest.raises(ValueError, match=re.escape(repr(b'short'))):
        list(storage.bulk_load([ROOT, b'short']))
    storage.begin()
    with pytest.raises(ValueError, match=re.escape(repr(b'\0' * 9))):
        storage.store(b'\0' * 9, pack_record(ROOT, b'root', b''))
    # The connection is still in step: the next request works.
    assert storage.load(ROOT) == pack_record(ROOT, b'root', b'')
    storage.close()


def test_contract_over_the_wire(server):
    storage = ClientStorage(port=server.address.port)
    assert str(storage) == 'ClientStorage(127.0.0.1:%d)' % server.address.port
    assert storage.load(ROOT) == pack_record(ROOT, b'root', b'')
    with pytest.raises(DurusKeyError):
        storage.load(oid(99))
    first = storage.new_oid()
    assert len(storage.oid_pool) == storage.oid_pool_size - 1
    assert storage.new_oid() > first                      # ascending
    storage.begin()
    storage.store(first, pack_record(first, b'child', b''))
    storage.store(ROOT, pack_record(ROOT, b'root', first))
    storage.end()
    assert [o for o, _ in storage.gen_oid_record()] == [ROOT, first]
    assert storage.sync() == []
    storage.pack()


def test_bulk_load_reads_every_reply_before_raising(server):
    storage = ClientStorage(port=server.address.port)
    records = storage.bulk_load([ROOT, oid(99), ROOT])
    assert next(records) == pack_record(ROOT, b'root', b'')
    with pytest.raises(DurusKeyError):
        next(records)
    # the stream stayed in step: the next request gets its own reply
    assert storage.load(ROOT) == pack_record(ROOT, b'root', b'')
    assert list(storage.bulk_load([])) == []
    # more oids than one request may carry are split into several
    before = storage.requests
    assert len(list(storage.bulk_load([ROOT] * 70000))) == 70000
    assert storage.requests - before == 2


def test_invalidated_load_is_a_read_conflict(server):
    a = ClientStorage(port=server.address.port)
    b = ClientStorage(port=server.address.port)
    a.begin()
    a.store(ROOT, pack_record(ROOT, b'new', b''))
    a.end()
    with pytest.raises(ReadConflictError) as caught:
        b.load(ROOT)
    assert caught.value.oids == [ROOT]
    assert b.sync() == [ROOT]
    assert b.load(ROOT) == pack_record(ROOT, b'new', b'')


def test_back_out_returns_oids_and_stores_nothing(server):
    a = ClientStorage(port=server.address.port)
    b = ClientStorage(port=server.address.port)
    b.begin()
    b.store(ROOT, pack_record(ROOT, b'by b', b''))
    b.end()
    a.begin()
    new = a.new_oid()
    a.store(new, pack_record(new, b'x', b''))
    a.store(ROOT, pack_record(ROOT, b'by a', new))
    seen = []

    def conflict(oids):
        seen.extend(oids)
        raise WriteConflictError(oids)

    with pytest.raises(WriteConflictError):
        a.end(conflict)
    assert seen == [ROOT]
    assert a.new_oid() == new                        # back in the pool
    assert a.load(ROOT) == pack_record(ROOT, b'by b', b'')
    with pytest.raises(DurusKeyError):
        a.load(new)


def test_empty_commit_sends_nothing_more(server):
    storage = ClientStorage(port=server.address.port)
    storage.begin()
    storage.end()
    assert storage.sync() == []


def test_close_ends_the_session(server):
    storage = ClientStorage(port=server.address.port)
    assert len(server.clients) == 1
    storage.close()
    storage.close()                                    # twice is fine
    assert _wait(lambda: not server.clients)
    with pytest.raises(ShortRead, match='closed'):
        storage.load(ROOT)


def _wait(predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return predicate()


def test_server_going_away_is_a_clear_error(server):
    storage = ClientStorage(port=server.address.port)
    server.stop()
    assert _wait(lambda: server._listener is None)
    with pytest.raises(ShortRead) as caught:
        storage.load(ROOT)
    assert '127.0.0.1:%d' % server.address.port in str(caught.value)
    with pytest.raises(ShortRead):
        storage.sync()


def test_version_mismatch(fake_server):
    # (3 would mean "authenticate first": see test_server_security.py)
    port = fake_server(lambda conn: answer_version(conn, 7))
    with pytest.raises(ProtocolError) as caught:
        ClientStorage(port=port, protocol=1)
    message = str(caught.value)
    assert '127.0.0.1:%d' % port in message and 'version 7' in message


def test_asks_for_protocol_4_then_2_then_falls_back_to_1_like_with_durus_43(
        fake_server):
    # Durus 4.3 answers a 'V' it does not know with its own version and
    # hangs up: the client connects again and asks for protocol 2 (what a
    # server of this project from before protocol 4 speaks), then 1.
    asked = []

    def server_of_protocol_1(conn):
        request = conn.recv(5)
        asked.append(request)
        conn.sendall((1).to_bytes(4, 'big'))
        if request != b'V\x00\x00\x00\x01':
            return  # hang up
        assert conn.recv(9) == b'L' + ROOT
        conn.sendall(b'K')
        conn.recv(1)
    port = fake_server(server_of_protocol_1, connections=3)
    storage = ClientStorage(port=port)
    assert storage.version == 1
    assert storage.pending_changes() is None   # 4.3 cannot tell
    with pytest.raises(DurusKeyError):
        storage.load(ROOT)
    storage.close()
    assert asked == [b'V\x00\x00\x00\x04', b'V\x00\x00\x00\x02',
                     b'V\x00\x00\x00\x01']


def test_a_server_from_before_protocol_4_is_spoken_to_in_protocol_2(
        fake_server):
    asked = []

    def server_of_protocol_2(conn):
        request = conn.recv(5)
        asked.append(request)
        if request != b'V\x00\x00\x00\x02':
            conn.sendall((1).to_bytes(4, 'big'))
            return  # hang up
        conn.sendall((2).to_bytes(4, 'big'))
        conn.recv(1)
    port = fake_server(server_of_protocol_2, connections=2)
    storage = ClientStorage(port=port)
    assert storage.version == 2
    # It never sends 'W' to a server that would drop it for that.
    assert storage.pending_changes() is None
    storage.close()
    assert asked == [b'V\x00\x00\x00\x04', b'V\x00\x00\x00\x02']


def test_a_server_of_another_version_is_an_error_without_retry(
        fake_server):
    # Only a protocol-1 answer means "ask again for 1".
    # (3 would mean "authenticate first": see test_server_security.py)
    def server_of_protocol_7(conn):
        assert conn.recv(5) == b'V\x00\x00\x00\x04'
        conn.sendall((7).to_bytes(4, 'big'))
    port = fake_server(server_of_protocol_7, connections=1)
    with pytest.raises(ProtocolError, match='version 7'):
        ClientStorage(port=port)


def test_peer_that_speaks_another_protocol(fake_server):
    def http(conn):
        conn.recv(5)
        conn.sendall(b'HTTP/1.1 400 Bad Request\r\n\r\n')
    with pytest.raises(ProtocolError, match='protocol version'):
        ClientStorage(port=fake_server(http))


def test_silent_peer_does_not_hang_the_client(fake_server):
    done = threading.Event()
    port = fake_server(lambda conn: done.wait(10))
    started = time.monotonic()
    with pytest.raises(ServerUnreachableError, match='did not answer'):
        ClientStorage(port=port, connect_timeout=0.3)
    assert time.monotonic() - started < 3
    done.set()


def test_read_timeout_on_a_stalled_server(fake_server):
    done = threading.Event()

    def stall(conn):
        answer_version(conn)
        done.wait(10)
    storage = ClientStorage(port=fake_server(stall), timeout=0.3, protocol=1)
    with pytest.raises(ServerUnreachableError, match='within 0.3 s'):
        storage.load(ROOT)
    done.set()


def test_unexpected_status_bytes_are_protocol_errors(fake_server):
    def odd(conn):
        answer_version(conn)
        conn.recv(9)
        conn.sendall(b'Z')
    storage = ClientStorage(port=fake_server(odd), protocol=1)
    with pytest.raises(ProtocolError, match="unexpected status byte b'Z'"):
        storage.load(ROOT)

    def odd_commit(conn):
        answer_version(conn)
        assert conn.recv(1) == b'C'
        conn.sendall(b'\x00\x00\x00\x00')
        conn.recv(65536)
        conn.sendall(b'X')
    storage = ClientStorage(port=fake_server(odd_commit), protocol=1)
    storage.begin()
    storage.store(ROOT, pack_record(ROOT, b'x', b''))
    with pytest.raises(ProtocolError, match='commit'):
        storage.end()


def test_commit_refused_by_server_storage_is_a_write_conflict(fake_server):
    def refuse(conn):
        answer_version(conn)
        assert conn.recv(1) == b'C'
        conn.sendall(b'\x00\x00\x00\x00')
        conn.recv(65536)
        conn.sendall(b'I')
        conn.recv(1)
    storage = ClientStorage(port=fake_server(refuse), protocol=1)
    storage.begin()
    storage.store(ROOT, pack_record(ROOT, b'x', b''))
    with pytest.raises(ConflictError):
        storage.end()


# Sibling prefetch ------------------------------------------------------

from durus.connection import Connection  # noqa: E402
from durus.persistent_dict import PersistentDict  # noqa: E402
from durus.prefetch import Prefetcher  # noqa: E402


def test_prefetcher_fetches_following_siblings_after_two_loads():
    prefetcher = Prefetcher(batch=3)
    children = b''.join(oid(n) for n in range(10, 20))
    prefetcher.note_record(oid(1), pack_record(oid(1), b'list', children))
    assert prefetcher.siblings_to_fetch_with(oid(10)) == []   # first child
    assert prefetcher.siblings_to_fetch_with(oid(11)) == [
        oid(12), oid(13), oid(14)]
    prefetcher.keep(oid(12), b'r12')
    assert prefetcher.siblings_to_fetch_with(oid(11)) == [oid(13), oid(14)]
    assert prefetcher.take(oid(12)) == b'r12'
    assert prefetcher.take(oid(12)) is None
    prefetcher.keep(oid(13), b'r13')
    prefetcher.forget_records()
    assert prefetcher.take(oid(13)) is None


def test_prefetcher_ignores_one_child_per_node_walks():
    prefetcher = Prefetcher()
    for level in range(5):
        node = oid(100 + level)
        kids = b''.join(oid(1000 * level + k) for k in range(16))
        prefetcher.note_record(node, pack_record(node, b'node', kids))
        assert prefetcher.siblings_to_fetch_with(oid(1000 * level + 7)) == []


def _list_server_storage(server, count):
    connection = Connection(ClientStorage(port=server.address.port))
    connection.get_root()['items'] = PersistentDict(
        (i, PersistentDict(v=i)) for i in range(count))
    connection.commit()
    return connection


@pytest.fixture
def empty_server():
    server = StorageServer(MemoryStorage(), port=0)
    server.listen()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    server.stop()
    thread.join(10)


def test_walking_a_container_takes_few_round_trips(empty_server):
    _list_server_storage(empty_server, 1000)
    storage = ClientStorage(port=empty_server.address.port)
    items = Connection(storage).get_root()['items']
    before = storage.requests
    assert sum(items[i]['v'] for i in range(1000)) == sum(range(1000))
    assert storage.requests - before < 20


def test_prefetched_records_are_dropped_at_sync(empty_server):
    writer = _list_server_storage(empty_server, 300)
    storage = ClientStorage(port=empty_server.address.port)
    reader = Connection(storage)
    items = reader.get_root()['items']
    assert items[0]['v'] == 0 and items[1]['v'] == 1     # prefetches 2..
    assert storage.prefetcher.records
    writer.get_root()['items'][100]['v'] = 'new'
    writer.commit()
    reader.abort()
    assert not storage.prefetcher.records
    assert items[100]['v'] == 'new'


def test_prefetched_snapshot_still_detects_write_conflicts(empty_server):
    writer = _list_server_storage(empty_server, 300)
    reader = Connection(ClientStorage(port=empty_server.address.port))
    items = reader.get_root()['items']
    assert items[0]['v'] == 0 and items[1]['v'] == 1
    writer.get_root()['items'][100]['v'] = 'new'
    writer.commit()
    assert items[100]['v'] == 100      # snapshot as of the last sync
    items[100]['v'] = 'mine'
    with pytest.raises(WriteConflictError):
        reader.commit()
    reader.abort()
    assert items[100]['v'] == 'new'


def test_a_commit_takes_one_round_trip_with_protocol_2(empty_server):
    connection = Connection(ClientStorage(port=empty_server.address.port))
    storage = connection.storage
    assert storage.version == 4   # protocol 2 plus pending_changes
    root = connection.get_root()
    root['n'] = 0
    connection.commit()
    for expected in range(1, 4):
        before = storage.requests
        root['n'] = expected
        connection.commit()
        assert storage.requests - before == 1
    # The same with protocol 1 (what a Durus 4.3 server speaks): 'C',
    # then the payload.
    old = Connection(ClientStorage(port=empty_server.address.port,
                                   protocol=1))
    assert old.storage.version == 1
    old_root = old.get_root()
    before = old.storage.requests
    old_root['n'] = 10
    old.commit()
    assert old.storage.requests - before == 2
    # The protocol-2 client has not seen that commit: its next one-step
    # commit is refused with the invalidation, and the change it made to
    # the same object is a conflict, exactly as under protocol 1.
    root['n'] = 20
    with pytest.raises(ConflictError):
        connection.commit()
    connection.abort()
    assert root['n'] == 10
    # Others are committing: the next commit goes the protocol-1 way
    # (no one-step attempt that would only come back "retry"), the one
    # after that tries one step again.
    root['other'] = 1
    before = storage.requests
    connection.commit()
    assert storage.requests - before == 2
    root['other'] = 2
    before = storage.requests
    connection.commit()
    assert storage.requests - before == 1
    old.abort()
    assert old.get_root()['other'] == 2 and old.get_root()['n'] == 10
    storage.close()
    old.storage.close()


def test_a_one_step_commit_answered_retry_is_sent_one_step_again(
        empty_server):
    from durus.persistent_dict import PersistentDict
    port = empty_server.address.port
    mine = Connection(ClientStorage(port=port))
    other = Connection(ClientStorage(port=port))
    root = mine.get_root()
    root['a'], root['b'] = PersistentDict(), PersistentDict()
    mine.commit()
    a, b = root['a'], root['b']
    mine.abort()                          # a transaction that used neither
    other.abort()
    other.get_root()['a']['seen'] = 1     # changes a, which mine loaded
    other.commit()
    # The server answers 'R' (mine loaded a); a is not in this
    # transaction, so the same records go one step again at once: two
    # round trips, and no commit lock held over either.
    b['n'] = 1
    before = mine.storage.requests
    mine.commit()
    assert mine.storage.requests - before == 2
    b['n'] = 2                            # and no back-off after it
    before = mine.storage.requests
    mine.commit()
    assert mine.storage.requests - before == 1
    assert a['seen'] == 1
    other.abort()
    assert other.get_root()['b']['n'] == 2
    mine.storage.close()
    other.storage.close()


def test_protocol_argument_is_checked(empty_server):
    with pytest.raises(ValueError, match='protocol must be 1, 2 or 4'):
        ClientStorage(port=empty_server.address.port, protocol=3)


def test_store_of_an_oid_that_is_not_8_bytes_is_refused(server):
    # Durus 4.3 asserted the length: the error is still an AssertionError.
    from durus.error import InvalidOidError
    storage = ClientStorage(port=server.address.port)
    try:
        storage.begin()
        with pytest.raises(InvalidOidError) as info:
            storage.store(b'abc', pack_record(oid(1), b'x', b''))
        assert isinstance(info.value, AssertionError)
        assert isinstance(info.value, ValueError)
        storage.end()
        assert storage.load(ROOT) == pack_record(ROOT, b'root', b'')
    finally:
        storage.close()


def test_reconnect_after_the_server_came_back(tmp_path):
    """A server stopped and started again on the same port: the client
    says it is disconnected, then reconnect() opens a new session."""
    from server_process import ServerProcess
    from durus.connection import Connection
    from durus.error import ServerUnreachableError
    path = str(tmp_path / 'db.durus')
    port = free_port()
    process = ServerProcess(['--file', path, '--port', str(port)],
                            tmp_path / 'server.log')
    try:
        storage = ClientStorage(port=port)
        connection = Connection(storage)
        connection.get_root()['n'] = 1
        connection.commit()
        assert storage.connected
        process.stop()
        with pytest.raises(ShortRead):
            storage.sync()
        assert not storage.connected
        with pytest.raises(ServerUnreachableError):
            storage.reconnect(connect_timeout=2)
        assert not storage.connected
        process = ServerProcess(['--file', path, '--port', str(port)],
                                tmp_path / 'server2.log')
        other = ClientStorage(port=port)
        other_connection = Connection(other)
        other_connection.get_root()['n'] = 2
        other_connection.commit()
        other.close()
        storage.reconnect()
        assert storage.connected
        root = connection.get_root()
        assert root['n'] == 1            # stale: the invalidation was lost
        forgotten = connection.forget_loaded_states()
        assert ROOT in forgotten
        assert root['n'] == 2            # read again
        root['m'] = 3
        connection.commit()
        storage.close()
    finally:
        process.stop()


def test_reconnect_authenticates_again(tmp_path):
    """A client with a user: the new server session proves the user again
    (the server would refuse everything else before authentication)."""
    from server_process import ServerProcess
    from durus.auth import set_user
    from durus.connection import Connection
    users = str(tmp_path / 'users.txt')
    set_user(users, 'writer', 'write', 'pw-writer', 4096)
    path = str(tmp_path / 'db.durus')
    port = free_port()
    args = ['--file', path, '--port', str(port), '--users', users]
    process = ServerProcess(args, tmp_path / 'server.log')
    try:
        storage = ClientStorage(port=port, user='writer', secret='pw-writer')
        connection = Connection(storage)
        connection.commit()
        process.stop()
        with pytest.raises(ShortRead):
            storage.sync()
        process = ServerProcess(args, tmp_path / 'server2.log')
        storage.reconnect()
        assert storage.role == 'write'
        connection.forget_loaded_states()
        connection.get_root()['after'] = 1
        connection.commit()
        storage.close()
        assert 'writer' in process.log()
    finally:
        process.stop()
