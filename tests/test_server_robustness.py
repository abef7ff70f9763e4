"""Misbehaving clients: each is disconnected with a logged reason, the
server stays up with bounded memory, and well-behaved clients never wait.

Most tests run the server in a thread of this process (so they can look
at its buffers and use short timeouts); one runs `durus -s` as a process
and watches its resident memory.
"""

import logging
import socket
import threading
import time

import pytest

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ServerRefusedError, WriteConflictError
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.serialize import pack_record
from durus.storage_server import OUTPUT_LIMIT, StorageServer

from server_process import durus_server, wait_for  # noqa: F401

ROOT = b'\0' * 8


class LogRecords(logging.Handler):
    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def text(self):
        return '\n'.join(self.messages)


@pytest.fixture
def log_records():
    handler = LogRecords()
    logger = logging.getLogger('durus')
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture
def start_server(tmp_path):
    """Factory for an in-thread server on a fresh file; stopped at the end."""
    running = []

    def start(readonly_after_setup=False, **options):
        path = str(tmp_path / ('robust%d.durus' % len(running)))
        storage = FileStorage(path)
        connection = Connection(storage)
        connection.get_root()['data'] = PersistentDict(n=0, blob='x' * 1000)
        connection.commit()
        if readonly_after_setup:
            storage.close()
            storage = FileStorage(path, readonly=True)
        options.setdefault('timeout', 0.5)
        options.setdefault('max_frame', 1 << 20)
        server = StorageServer(storage, port=0, **options)
        server.listen()
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.stop()
        thread.join(10)
        assert not thread.is_alive()


def raw(server):
    sock = socket.create_connection(('127.0.0.1', server.address.port), 5)
    sock.settimeout(5)
    return sock


def closed_by_server(sock, timeout=5):
    """True once the server has closed ``sock`` (all replies drained);
    False if it still sends after 3 x ``timeout``."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + 3 * timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    return False


def well_behaved_round(server):
    """Load and commit through a fresh client; return elapsed seconds."""
    start = time.monotonic()
    connection = Connection(ClientStorage(port=server.address.port))
    data = connection.get_root()['data']
    data['n'] += 1
    connection.commit()
    value = data['n']
    connection.storage.close()
    check = Connection(ClientStorage(port=server.address.port))
    assert check.get_root()['data']['n'] == value
    check.storage.close()
    return time.monotonic() - start


def item(oid, record):
    return (8 + len(record)).to_bytes(4, 'big') + oid + record


def start_commit(sock):
    sock.sendall(b'C')
    count = int.from_bytes(sock.recv(4), 'big')
    if count:
        sock.recv(8 * count)


@pytest.mark.parametrize('name, payload, reason', [
    ('unknown command', b'X', "No such command code: 'X'"),
    ('one-step commit under protocol 1', b'A\x00\x00\x00\x10',
     "No such command code: 'A'"),
    ('absurd bulk load', b'B\xff\xff\xff\xff', 'exceeds the limit'),
    ('bulk load beyond the per-request limit', b'B\x00\x01\x00\x01',
     'limit of 65536 oids'),
])
def test_bad_requests_disconnect_only_that_client(
        start_server, log_records, name, payload, reason):
    server = start_server()
    bystander = ClientStorage(port=server.address.port)
    sock = raw(server)
    sock.sendall(payload)
    assert closed_by_server(sock)
    assert wait_for(lambda: reason in log_records.text())
    assert well_behaved_round(server) < 5
    assert bystander.load(ROOT)        # the other connection still works


@pytest.mark.parametrize('name, payload, reason', [
    ('absurd commit length', b'\xff\xff\xff\xf0', 'exceeds the frame limit'),
    ('zero-length record', (12).to_bytes(4, 'big') + item(ROOT, b''),
     'empty record'),
    ('overrunning record', (30).to_bytes(4, 'big') + b'\x00\x00\x10\x00' +
     ROOT + b'\0' * 18, 'overruns'),
    ('record of another oid',
     (len(item(ROOT, pack_record(b'\0' * 7 + b'\1', b'd', b''))) + 0
      ).to_bytes(4, 'big') + item(ROOT, pack_record(b'\0' * 7 + b'\1', b'd',
                                                     b'')), 'another oid'),
    ('oid never handed out', None, 'storage refused its commit'),
])
@pytest.mark.parametrize('way', ['C then payload', 'A (protocol 2)'])
def test_bad_commits_disconnect_and_store_nothing(
        start_server, log_records, name, payload, reason, way):
    server = start_server()
    if payload is None:
        stray = (12345).to_bytes(8, 'big')
        body = item(stray, pack_record(stray, b'data', b''))
        payload = len(body).to_bytes(4, 'big') + body
    sock = raw(server)
    if way == 'A (protocol 2)':
        sock.sendall(b'V\x00\x00\x00\x02')
        assert sock.recv(4) == b'\x00\x00\x00\x02'
        sock.sendall(b'A' + payload)
    else:
        start_commit(sock)
        sock.sendall(payload)
    assert closed_by_server(sock)
    assert wait_for(lambda: reason in log_records.text())
    assert wait_for(lambda: server.commit_holder is None)
    assert well_behaved_round(server) < 5


def test_commit_on_a_readonly_storage(start_server, log_records):
    server = start_server(readonly_after_setup=True)
    connection = Connection(ClientStorage(port=server.address.port))
    assert connection.get_root()['data']['n'] == 0       # loads work
    connection.get_root()['data']['n'] = 1
    with pytest.raises(ServerRefusedError,
                       match='refused the commit: ReadOnlyError: .* read-only'):
        connection.commit()
    assert 'storage refused its commit: ReadOnlyError' in log_records.text()
    other = Connection(ClientStorage(port=server.address.port))
    assert other.get_root()['data']['n'] == 0


def test_truncated_frame_then_close(start_server, log_records):
    server = start_server()
    sock = raw(server)
    sock.sendall(b'L\0\0\0')
    sock.shutdown(socket.SHUT_WR)
    assert closed_by_server(sock)
    assert 'middle of a request' in log_records.text()
    assert well_behaved_round(server) < 5


def test_stalled_client_neither_blocks_others_nor_stays(
        start_server, log_records):
    server = start_server(timeout=1.5)
    staller = raw(server)
    staller.sendall(b'L\0\0\0')             # half a load, then silence
    elapsed = [well_behaved_round(server) for _ in range(3)]
    assert max(elapsed) < 0.5               # nobody waited for the staller
    assert closed_by_server(staller, timeout=5)
    assert 'stalled for' in log_records.text()


def test_client_stalling_inside_the_commit_exchange(start_server, log_records):
    server = start_server(timeout=5, commit_lock_grace=0.3)
    port = server.address.port
    staller = raw(server)
    start_commit(staller)                   # holds the commit lock, then stops
    started = time.monotonic()
    assert well_behaved_round(server) < 3   # waits at most the grace period
    assert time.monotonic() - started >= 0.3
    assert 'letting others commit' in log_records.text()
    # the staller's late payload is refused as a conflict, not stored
    record = pack_record(ROOT, b'stale', b'')
    body = item(ROOT, record)
    staller.sendall(len(body).to_bytes(4, 'big') + body)
    assert staller.recv(1) == b'I'
    assert ClientStorage(port=port).load(ROOT) != record
    # and its connection stays usable
    staller.sendall(b'S')
    assert len(staller.recv(4)) == 4


def test_late_payload_without_competing_commit_is_stored(start_server):
    server = start_server(timeout=5, commit_lock_grace=0.2)
    port = server.address.port
    staller = raw(server)
    start_commit(staller)
    reader = ClientStorage(port=port)
    time.sleep(0.4)                         # others only read meanwhile
    assert reader.load(ROOT)
    record = pack_record(ROOT, b'late but fine', b'')
    body = item(ROOT, record)
    staller.sendall(len(body).to_bytes(4, 'big') + body)
    assert staller.recv(1) == b'O'
    reader.sync()
    assert reader.load(ROOT) == record


def test_client_that_never_reads_is_throttled_then_dropped(
        start_server, log_records):
    server = start_server(timeout=4)
    hog = raw(server)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = b'B' + (100).to_bytes(4, 'big') + ROOT * 100
    # ~110 kB of replies per request, never read: send until the server
    # stops reading (our sends block), or far past any sane buffer
    hog.settimeout(0.5)
    sent = 0
    try:
        while sent < 20000:
            hog.sendall(request)
            sent += 1
    except (socket.timeout, BlockingIOError):
        pass
    assert sent < 20000
    assert sent * 110_000 > OUTPUT_LIMIT      # more was asked than is kept
    clients = list(server.clients)
    assert max(len(c.output) for c in clients) < OUTPUT_LIMIT + 200_000
    assert max(c.session.protocol.buffered() for c in clients) < 4 << 20
    assert well_behaved_round(server) < 3     # well before the hog's timeout
    assert wait_for(lambda: 'stalled for' in log_records.text(), 10)
    hog.close()


def test_version_mismatch_is_answered_then_closed(start_server, log_records):
    server = start_server()
    sock = raw(server)
    sock.sendall(b'V\x00\x00\x00\x07')   # 3 means authentication
    assert sock.recv(4) == b'\x00\x00\x00\x01'
    assert closed_by_server(sock)
    assert 'protocol version 7' in log_records.text()


def test_protocol_2_commits_in_one_round_trip_unless_others_came_first(
        start_server):
    server = start_server()
    sock = raw(server)
    sock.sendall(b'V\x00\x00\x00\x02')
    assert sock.recv(4) == b'\x00\x00\x00\x02'
    sock.sendall(b'M\x01')
    oid = sock.recv(8)

    def one_step(value):
        body = item(oid, pack_record(oid, value, b''))
        sock.sendall(b'A' + len(body).to_bytes(4, 'big') + body)
        reply = b''
        while len(reply) < 5 or len(reply) < 5 + 8 * int.from_bytes(
                reply[:4], 'big'):
            chunk = sock.recv(65536)
            assert chunk, 'the server closed the connection mid-reply'
            reply += chunk
        count = int.from_bytes(reply[:4], 'big')
        return reply[4:4 + 8 * count], reply[4 + 8 * count:]

    assert one_step(b'first') == (b'', b'O')
    # Another client commits the same object: the next one-step commit
    # is not made; the reply lists the oid it has not seen yet.
    other = ClientStorage(port=server.address.port)
    other.begin()
    other.store(oid, pack_record(oid, b'other', b''))
    other.end()
    assert one_step(b'second') == (oid, b'R')
    assert server.storage.load(oid) == pack_record(oid, b'other', b'')
    assert one_step(b'third') == (b'', b'O')       # now it has seen it
    assert server.storage.load(oid) == pack_record(oid, b'third', b'')
    assert other.sync() == [oid]
    other.close()


def test_pipelined_requests_are_answered_in_order(start_server):
    server = start_server()
    sock = raw(server)
    sock.sendall(b'V\x00\x00\x00\x01' + b'L' + ROOT + b'S' + b'M\x02' + b'.')
    data = b''
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data[:5] == b'\x00\x00\x00\x01O'
    size = int.from_bytes(data[5:9], 'big')
    rest = data[9 + size:]
    assert rest[:4] == b'\x00\x00\x00\x00' and len(rest) == 4 + 16


def test_write_conflict_reply_from_the_storage(start_server):
    """A storage whose end() raises ConflictError makes the commit answer
    'I', which the client turns into WriteConflictError."""
    server = start_server(group_commit_window=0)  # commits call end()

    def refuse(handle_invalidations=None):
        from durus.error import ConflictError
        server.storage.pending = None
        raise ConflictError([ROOT])

    server.storage.end = refuse
    storage = ClientStorage(port=server.address.port)
    storage.begin()
    storage.store(ROOT, pack_record(ROOT, b'x', b''))
    with pytest.raises(WriteConflictError):
        storage.end()
    assert storage.sync() == []             # connection still in step


def test_absurd_length_does_not_allocate(durus_server):
    """Announced sizes under the limit are not allocated before the bytes
    come; one over the limit is refused.  (Bulk loads are capped at 65536
    oids, 512 KiB, so only commits can announce hundreds of MB.)"""
    server = durus_server()
    Connection(ClientStorage(port=server.port)).commit()
    before = server.rss_kb()
    socks = []
    for index in range(5):
        sock = socket.create_connection(('127.0.0.1', server.port), 5)
        sock.settimeout(5)
        sock.sendall(b'V\x00\x00\x00\x02')
        assert sock.recv(4) == b'\x00\x00\x00\x02'
        # one-step commits announcing 480+ MB (the default limit is
        # 512 MiB) of which 1 MB comes, then nothing: no commit lock is
        # taken before a whole payload is there, so none of them waits
        sock.sendall(b'A' + ((480 << 20) + index).to_bytes(4, 'big') +
                     b'\0' * (1 << 20))
        socks.append(sock)
    bad = socket.create_connection(('127.0.0.1', server.port), 5)
    start_commit(bad)
    bad.sendall(b'\xff\xff\xff\xff')
    assert closed_by_server(bad)
    assert 'exceeds the frame limit' in server.log()
    # the others are still answered at once
    assert Connection(ClientStorage(port=server.port)).get_root() is not None
    growth_mb = (server.rss_kb() - before) / 1024
    assert growth_mb < 40
    for sock in socks:
        sock.close()
    assert Connection(ClientStorage(port=server.port)).get_root() is not None


def test_client_leaving_inside_the_commit_exchange_frees_the_lock(
        start_server, log_records):
    server = start_server(timeout=5)        # grace 1 s: not what frees it
    leaver = raw(server)
    start_commit(leaver)
    leaver.close()
    assert wait_for(lambda: server.commit_holder is None, 2)
    assert well_behaved_round(server) < 0.9
    assert 'middle of a request' in log_records.text()
