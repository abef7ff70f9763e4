"""Asking for other clients' commits without taking them (protocols 4
and 5, 'W'; ``Storage.pending_changes()``): the wire format and its
negotiation, the server core, and two clients on a real server process,
where asking must leave every conflict exactly as it was."""

import threading
import time

import pytest

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import (ProtocolError, ReadConflictError, ShortRead,
                         WriteConflictError)
from durus.persistent_dict import PersistentDict
from durus.protocol import (
    MAX_PEEK_OIDS, NEED_DATA, ClientConnection, Load,
    LoadReply, OutOfTurnError, PeekInvalidations, PendingInvalidations,
    ServerConnection, STATUS_INVALID, Sync, Version, VersionReply)
from durus.serialize import pack_record
from durus.storage import MemoryStorage

from server_process import durus_server  # noqa: F401
from test_client_storage import fake_server  # noqa: F401
from test_server_core import Harness, commit_one_step, reserve


def agreed(version):
    """A client and a server end that agreed on ``version``."""
    client, server = ClientConnection(), ServerConnection()
    server.receive_data(client.send(Version(version)))
    server.next_event()
    client.receive_data(server.send(VersionReply(version)))
    assert client.next_event() == VersionReply(version)
    return client, server


# The wire ----------------------------------------------------------------

@pytest.mark.parametrize('version', [4, 5])
def test_peek_round_trips_in_protocols_4_and_5(version):
    client, server = agreed(version)
    data = client.send(PeekInvalidations(2))
    assert data == b'W\0\0\0\2'
    server.receive_data(data)
    assert server.next_event() == PeekInvalidations(2)
    oids = [b'\0' * 7 + b'\1', b'\0' * 7 + b'\2']
    client.receive_data(server.send(PendingInvalidations(7, oids)))
    assert client.next_event() == PendingInvalidations(7, oids)


@pytest.mark.parametrize('version', [1, 2, 3])
def test_peek_is_an_unknown_command_before_protocol_4(version):
    client, server = agreed(version)
    with pytest.raises(OutOfTurnError, match='needs protocol 4 or 5'):
        client.send(PeekInvalidations(1))
    server.receive_data(b'W\0\0\0\1')
    with pytest.raises(ProtocolError, match='No such command'):
        server.next_event()


def test_peek_limits_are_checked_on_both_ends():
    client, server = agreed(4)
    with pytest.raises(OutOfTurnError):
        client.send(PeekInvalidations(MAX_PEEK_OIDS + 1))
    server.receive_data(b'W' + (MAX_PEEK_OIDS + 1).to_bytes(4, 'big'))
    with pytest.raises(ProtocolError, match='limit'):
        server.next_event()
    # A reply listing more oids than asked for is not believed.
    client.send(PeekInvalidations(1))
    client.receive_data((5).to_bytes(4, 'big') + (2).to_bytes(4, 'big') +
                        b'\0' * 16)
    with pytest.raises(ProtocolError, match='lists 2 oids'):
        client.next_event()


def test_a_partial_peek_reply_waits_for_the_rest():
    client, _ = agreed(4)
    client.send(PeekInvalidations(3))
    reply = (3).to_bytes(4, 'big') + (1).to_bytes(4, 'big') + b'\0' * 7 + b'9'
    client.receive_data(reply[:6])
    assert client.next_event() is NEED_DATA
    client.receive_data(reply[6:])
    assert client.next_event() == PendingInvalidations(3, [b'\0' * 7 + b'9'])


# The server core -----------------------------------------------------------

def test_the_core_answers_a_peek_without_taking_the_invalidations():
    harness = Harness()
    a, b = harness.connect('a'), harness.connect('b')
    a.send(Version(4))
    assert a.reply() == VersionReply(4)
    [x, y] = reserve(b, 2)
    commit_one_step(b, [(x, pack_record(x, b'1', b'')),
                        (y, pack_record(y, b'1', b''))])
    b.reply()
    a.send(PeekInvalidations(1))
    reply = a.reply()
    assert reply.count == 2 and len(reply.oids) == 1
    assert reply.oids[0] in (x, y)
    a.send(PeekInvalidations(10))
    assert sorted(a.reply().oids) == [x, y]        # still there
    a.send(Load(x))
    assert a.reply() == LoadReply(STATUS_INVALID)  # still stale
    a.send(Sync())
    assert sorted(a.reply().oids) == [x, y]        # delivered once, by sync
    a.send(PeekInvalidations(10))
    assert a.reply() == PendingInvalidations(0, [])


def test_the_core_negotiates_4_and_refuses_5_without_users():
    harness = Harness()
    a = harness.connect('a')
    a.send(Version(5))
    assert a.reply() == VersionReply(2)     # "I do not authenticate"
    c = harness.connect('c')
    c.send(Version(6))
    assert c.reply() == VersionReply(1)     # unknown: Durus 4.3's answer


# The client against scripted and real servers -------------------------------

def test_a_late_answer_is_skipped_and_the_connection_stays_in_step(
        fake_server):
    root = b'\0' * 8
    answered = threading.Event()

    def slow_server(conn):
        assert conn.recv(5) == b'V\0\0\0\4'
        conn.sendall((4).to_bytes(4, 'big'))
        assert conn.recv(5) == b'W\0\0\0\x64'
        time.sleep(0.5)
        conn.sendall((1).to_bytes(4, 'big') + (1).to_bytes(4, 'big') + root)
        answered.set()
        assert conn.recv(9) == b'L' + root
        conn.sendall(b'I')
        conn.recv(1)
    storage = ClientStorage(port=fake_server(slow_server), timeout=5)
    started = time.monotonic()
    assert storage.pending_changes(timeout=0.1) is None
    assert time.monotonic() - started < 0.4
    assert storage.connected
    answered.wait(5)
    # The peek's answer arrives first and is skipped; the load gets its own.
    with pytest.raises(ReadConflictError):
        storage.load(root)
    storage.close()


def two_clients(server, **kw):
    a = Connection(ClientStorage(port=server.port, timeout=20, **kw))
    b = Connection(ClientStorage(port=server.port, timeout=20, **kw))
    a.get_root()['x'] = PersistentDict(n=0)
    a.get_root()['y'] = PersistentDict(n=0)
    a.commit()
    b.abort()
    return a, b


@pytest.mark.parametrize('peek', [False, True])
def test_asking_leaves_a_write_conflict_exactly_as_it_was(durus_server,
                                                          peek):
    server = durus_server()
    a, b = two_clients(server)
    x = b.get_root()['x']
    assert x['n'] == 0                  # b read x
    a.get_root()['x']['n'] = 1
    a.get_root()['y']['n'] = 1
    a.commit()
    storage = b.get_storage()
    if peek:
        for _ in range(3):
            pending = storage.pending_changes()
            assert pending.count == 2
            assert sorted(pending.oids) == sorted(
                [a.get_root()['x']._p_oid, a.get_root()['y']._p_oid])
    x['n'] = 2
    with pytest.raises(WriteConflictError):
        b.commit()
    b.abort()
    assert b.get_root()['x']['n'] == 1
    assert storage.pending_changes().count == 0


def test_asking_leaves_loads_stale_until_the_sync(durus_server):
    server = durus_server()
    a, b = two_clients(server)
    a.get_root()['y']['n'] = 5
    a.commit()
    storage = b.get_storage()
    oid = a.get_root()['y']._p_oid
    assert storage.pending_changes(limit=0).count == 1
    assert storage.pending_changes(limit=0).oids == []
    with pytest.raises(ReadConflictError):
        storage.load(oid)               # the server still says 'I'
    assert storage.sync() == [oid]
    assert storage.pending_changes().count == 0
    assert b.get_storage().version == 4


def test_an_authenticated_client_asks_with_protocol_5(durus_server, tmp_path):
    from durus.auth import set_user
    users = str(tmp_path / 'users.txt')
    set_user(users, 'writer', 'write', 'pw-writer', 4096)
    server = durus_server('--users', users)
    a, b = two_clients(server, user='writer', secret='pw-writer')
    assert b.get_storage().version == 5
    a.get_root()['x']['n'] = 3
    a.commit()
    assert b.get_storage().pending_changes().count == 1


def test_the_base_storage_cannot_tell():
    assert MemoryStorage().pending_changes() is None


def test_invalidations_stay_pending_for_a_sync_after_peeks(durus_server):
    server = durus_server()
    a, b = two_clients(server)
    a.get_root()['x']['n'] = 1
    a.commit()
    b.get_storage().pending_changes()
    b.abort()                           # the sync takes them
    assert b.get_root()['x']['n'] == 1
    assert b.get_storage().sync() == []


def test_a_user_falls_back_to_protocol_3_on_an_older_server(fake_server):
    # A server of this project from before protocol 5, with users: it
    # answers 'V' 5 with 3 and hangs up; the client asks for 3 again.
    asked = []

    def server_before_protocol_5(conn):
        request = conn.recv(5)
        asked.append(request)
        conn.sendall((3).to_bytes(4, 'big'))
        if request == b'V\0\0\0\3':
            conn.recv(100)      # the first SCRAM message; then hang up
    port = fake_server(server_before_protocol_5, connections=2)
    with pytest.raises(ShortRead):   # it hung up during the proof
        ClientStorage(port=port, user='writer', secret='pw', timeout=5)
    assert asked == [b'V\0\0\0\5', b'V\0\0\0\3']
