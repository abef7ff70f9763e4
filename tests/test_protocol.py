"""The sans-IO wire protocol: bytes in, events out, on both ends.

No sockets here: each test feeds bytes (often one at a time, to prove
partial frames are handled) and checks the events or the bytes produced.
Byte layouts are those of the Durus 4.3 trace (spec protocol.md §12).
"""

import pytest

from durus.error import FrameTooLargeError, ProtocolError
from durus.protocol import (
    CLOSED, COMMITTING, IDLE, MAX_BULK_OIDS, NEED_DATA, STATUS_INVALID, STATUS_KEYERROR,
    STATUS_OKAY, STATUS_RETRY, BulkLoad, CommitAll, CommitAllReply, BulkLoadReply, ClientConnection, CommitBackOut,
    CommitData, CommitStart, ConnectionClosed, Goodbye, Invalidations, Load,
    LoadReply, NewOid, NewOids, Oids, OutOfTurnError, Pack, Quit,
    ServerConnection, Status, Sync, TRANSITIONS, Version, VersionReply,
    ErrorReply, encode_request)
from durus.serialize import pack_record


def oid(n):
    return n.to_bytes(8, 'big')


ROOT = oid(0)
RECORD = pack_record(ROOT, b'class-and-state', b'')


def events(conn, data, one_byte_at_a_time=True):
    """Feed ``data`` and collect every complete event."""
    found = []
    chunks = ([data[i:i + 1] for i in range(len(data))]
              if one_byte_at_a_time else [data])
    for chunk in chunks:
        conn.receive_data(chunk)
        for _ in range(len(data) + 1):  # an event takes a byte at least
            event = conn.next_event()
            if event is NEED_DATA:
                break
            found.append(event)
            if conn.state == CLOSED or (isinstance(conn, ServerConnection)
                                        and conn.pending is not None):
                return found
        else:
            raise AssertionError('next_event() never asked for more data')
    return found


# Server end: requests ---------------------------------------------------

@pytest.mark.parametrize('wire, request_event', [
    (b'V\x00\x00\x00\x01', Version(1)),
    (b'L' + oid(7), Load(oid(7))),
    (b'B\x00\x00\x00\x02' + oid(1) + oid(2), BulkLoad([oid(1), oid(2)])),
    (b'B\x00\x00\x00\x00', BulkLoad([])),
    (b'N', NewOid()),
    (b'M\x20', NewOids(32)),
    (b'C', CommitStart()),
    (b'S', Sync()),
    (b'P', Pack()),
])
def test_server_parses_each_request_even_byte_by_byte(wire, request_event):
    server = ServerConnection()
    assert events(server, wire) == [request_event]
    assert server.pending == request_event
    # and the client encodes it to exactly these bytes
    assert encode_request(request_event) == wire


def test_quit_and_goodbye_close_without_a_reply():
    for wire, event in ((b'Q', Quit()), (b'.', Goodbye())):
        server = ServerConnection()
        assert events(server, wire) == [event]
        assert server.state == CLOSED and server.pending is None


def test_end_of_stream_between_requests_is_a_clean_close():
    server = ServerConnection()
    server.receive_data(b'')
    assert server.next_event() == ConnectionClosed()
    assert server.state == CLOSED


def test_end_of_stream_inside_a_request_is_an_error():
    server = ServerConnection()
    server.receive_data(b'L\x00\x00')
    assert server.next_event() is NEED_DATA
    server.receive_data(b'')
    with pytest.raises(ProtocolError, match='middle of a request'):
        server.next_event()


def test_unknown_command_byte_is_rejected_with_its_name():
    server = ServerConnection()
    server.receive_data(b'X')
    with pytest.raises(ProtocolError, match="No such command code: 'X'"):
        server.next_event()


def test_replies_encode_as_in_the_durus_trace():
    server = ServerConnection()
    events(server, b'V\x00\x00\x00\x01')
    assert server.send(VersionReply(1)) == b'\x00\x00\x00\x01'
    events(server, b'L' + ROOT)
    assert server.send(LoadReply(STATUS_OKAY, RECORD)) == (
        b'O' + len(RECORD).to_bytes(4, 'big') + RECORD)
    events(server, b'L' + ROOT)
    assert server.send(LoadReply(STATUS_KEYERROR)) == b'K'
    events(server, b'B\x00\x00\x00\x02' + ROOT + oid(1))
    assert server.send(BulkLoadReply([LoadReply(STATUS_INVALID),
                                      LoadReply(STATUS_KEYERROR)])) == b'IK'
    events(server, b'M\x02')
    assert server.send(Oids([oid(0), oid(1)])) == oid(0) + oid(1)
    events(server, b'S')
    assert server.send(Invalidations([oid(5)])) == (
        b'\x00\x00\x00\x01' + oid(5))
    events(server, b'P')
    assert server.send(Status(STATUS_OKAY)) == b'O'
    assert server.state == IDLE


def test_commit_exchange_on_the_server():
    server = ServerConnection()
    assert events(server, b'C') == [CommitStart()]
    assert server.send(Invalidations([])) == b'\x00\x00\x00\x00'
    assert server.state == COMMITTING
    # the payload of the 4.3 trace: T, then item r, oid, record
    item = (8 + len(RECORD)).to_bytes(4, 'big') + ROOT + RECORD
    payload = len(item).to_bytes(4, 'big') + item
    assert events(server, payload) == [CommitData([(ROOT, RECORD)])]
    assert server.send(Status(STATUS_OKAY)) == b'O'
    assert server.state == IDLE


def test_commit_back_out_has_no_reply():
    server = ServerConnection()
    events(server, b'C')
    server.send(Invalidations([ROOT]))
    assert events(server, b'\x00\x00\x00\x00') == [CommitBackOut()]
    assert server.state == IDLE and server.pending is None
    assert events(server, b'S') == [Sync()]


def test_next_request_waits_for_the_reply():
    server = ServerConnection()
    server.receive_data(b'SS')
    assert server.next_event() == Sync()
    with pytest.raises(OutOfTurnError):
        server.next_event()
    server.send(Invalidations([]))
    assert server.next_event() == Sync()


def test_wrong_reply_type_or_count_is_our_own_error():
    server = ServerConnection()
    events(server, b'M\x02')
    with pytest.raises(OutOfTurnError):
        server.send(Oids([oid(1)]))
    with pytest.raises(OutOfTurnError):
        server.send(Status(STATUS_OKAY))
    with pytest.raises(OutOfTurnError):
        ServerConnection().send(Status(STATUS_OKAY))


def test_version_mismatch_closes_after_the_reply():
    server = ServerConnection()
    events(server, b'V\x00\x00\x00\x02')
    assert server.send(VersionReply(1)) == b'\x00\x00\x00\x01'
    assert server.state == CLOSED


def _committing_server(max_frame=1024):
    server = ServerConnection(max_frame=max_frame)
    events(server, b'C')
    server.send(Invalidations([]))
    return server


def test_absurd_commit_length_is_rejected_before_buffering():
    server = _committing_server()
    server.receive_data(b'\xff\xff\xff\xf0')
    with pytest.raises(FrameTooLargeError, match='frame limit of 1024'):
        server.next_event()
    assert server.buffered() == 4


def test_absurd_bulk_load_count_is_rejected():
    server = ServerConnection(max_frame=1024)
    server.receive_data(b'B\xff\xff\xff\xff')
    with pytest.raises(FrameTooLargeError):
        server.next_event()
    # replies are built in memory: the oid count has its own limit
    server = ServerConnection()
    server.receive_data(b'B' + (MAX_BULK_OIDS + 1).to_bytes(4, 'big'))
    with pytest.raises(FrameTooLargeError, match='65536 oids'):
        server.next_event()


@pytest.mark.parametrize('item, message', [
    # record length 0 (r = 8)
    (b'\x00\x00\x00\x08' + ROOT, 'empty record'),
    # r smaller than the oid
    (b'\x00\x00\x00\x04' + ROOT, 'overruns'),
    # r larger than what is left of the payload
    (b'\x00\x00\x01\x00' + ROOT + RECORD, 'overruns'),
    # record that starts with another oid
    ((8 + len(RECORD)).to_bytes(4, 'big') + oid(3) + RECORD, 'another oid'),
    # record whose data length field is wrong
    ((8 + 14).to_bytes(4, 'big') + ROOT + ROOT + b'\x00\x00\x00\x09ab',
     'bad data length'),
    # payload that ends inside an item header
    (b'\x00\x00', 'inside an item header'),
    # record shorter than its header (oid and part of the length field)
    ((8 + 10).to_bytes(4, 'big') + ROOT + ROOT + b'\x00\x00',
     'shorter than its 12-byte header'),
    # refs trailer that is not a whole number of oids
    ((8 + 15).to_bytes(4, 'big') + ROOT + ROOT + b'\x00\x00\x00\x00abc',
     'bad data length 0'),
])
def test_malformed_commit_payloads_are_rejected(item, message):
    server = _committing_server()
    server.receive_data(len(item).to_bytes(4, 'big') + item)
    with pytest.raises(ProtocolError, match=message):
        server.next_event()


def test_well_formed_commit_items_are_taken_whole():
    # data and a refs trailer of whole oids: taken as sent, in order
    with_refs = pack_record(oid(5), b'state', oid(1) + oid(2))
    items = [(ROOT, RECORD), (oid(5), with_refs)]
    payload = b''.join((8 + len(record)).to_bytes(4, 'big') + name + record
                       for name, record in items)
    server = _committing_server()
    server.receive_data(len(payload).to_bytes(4, 'big') + payload)
    request = server.next_event()
    assert type(request) is CommitData
    assert request.items == items


def test_the_state_machine_is_data():
    # every request has one row per state where it is legal
    assert TRANSITIONS[IDLE, CommitStart] == (Invalidations, COMMITTING)
    assert TRANSITIONS[COMMITTING, CommitBackOut] == (None, IDLE)
    assert (IDLE, CommitData) not in TRANSITIONS
    assert (COMMITTING, Load) not in TRANSITIONS


# Client end: replies ----------------------------------------------------

def client_after(*requests):
    client = ClientConnection()
    sent = b''.join(client.send(r) for r in requests)
    return client, sent


def test_client_parses_each_reply_byte_by_byte():
    client, sent = client_after(
        Version(), Load(ROOT), Load(oid(1)), Load(oid(2)),
        BulkLoad([ROOT, oid(1)]), NewOid(), NewOids(2), Sync(), Pack())
    assert sent == (b'V\x00\x00\x00\x01L' + ROOT + b'L' + oid(1) + b'L' +
                    oid(2) + b'B\x00\x00\x00\x02' + ROOT + oid(1) +
                    b'NM\x02SP')
    wire = (b'\x00\x00\x00\x01' +
            b'O' + len(RECORD).to_bytes(4, 'big') + RECORD + b'K' + b'I' +
            b'O' + len(RECORD).to_bytes(4, 'big') + RECORD + b'K' +
            oid(9) + oid(10) + oid(11) +
            b'\x00\x00\x00\x01' + oid(4) + b'O')
    assert events(client, wire) == [
        VersionReply(1), LoadReply(STATUS_OKAY, RECORD),
        LoadReply(STATUS_KEYERROR), LoadReply(STATUS_INVALID),
        BulkLoadReply([LoadReply(STATUS_OKAY, RECORD),
                       LoadReply(STATUS_KEYERROR)]),
        Oids([oid(9)]), Oids([oid(10), oid(11)]),
        Invalidations([oid(4)]), Status(STATUS_OKAY)]
    assert client.awaiting() == []


def test_client_commit_exchange():
    client = ClientConnection()
    assert client.send(CommitStart()) == b'C'
    assert client.state == COMMITTING
    assert events(client, b'\x00\x00\x00\x00') == [Invalidations([])]
    wire = client.send(CommitData([(ROOT, RECORD)]))
    assert wire == ((12 + len(RECORD)).to_bytes(4, 'big') +
                    (8 + len(RECORD)).to_bytes(4, 'big') + ROOT + RECORD)
    assert events(client, b'O') == [Status(STATUS_OKAY)]
    assert client.state == IDLE


def test_client_back_out_and_empty_commit_send_zero_and_expect_nothing():
    for request in (CommitBackOut(), CommitData([])):
        client = ClientConnection()
        client.send(CommitStart())
        events(client, b'\x00\x00\x00\x00')
        assert client.send(request) == b'\x00\x00\x00\x00'
        assert client.awaiting() == [] and client.state == IDLE


def test_client_refuses_requests_out_of_turn():
    client = ClientConnection()
    with pytest.raises(OutOfTurnError):
        client.send(CommitData([(ROOT, RECORD)]))
    client.send(CommitStart())
    with pytest.raises(OutOfTurnError):
        client.send(Load(ROOT))
    with pytest.raises(OutOfTurnError):
        ClientConnection().send(Load(b'short'))


def test_client_rejects_unexpected_or_unasked_bytes():
    client, _ = client_after(Load(ROOT))
    client.receive_data(b'Z')
    with pytest.raises(ProtocolError, match='unexpected status'):
        client.next_event()
    idle = ClientConnection()
    idle.receive_data(b'O')
    with pytest.raises(ProtocolError, match='nobody asked for'):
        idle.next_event()


def test_client_rejects_absurd_record_length():
    client = ClientConnection(max_frame=100)
    client.send(Load(ROOT))
    client.receive_data(b'O\xff\xff\xff\xff')
    with pytest.raises(FrameTooLargeError):
        client.next_event()


def test_client_sees_server_closing_before_the_reply():
    client, _ = client_after(Sync())
    client.receive_data(b'\x00\x00')
    assert client.next_event() is NEED_DATA
    client.receive_data(b'')
    with pytest.raises(ProtocolError, match='closed the connection'):
        client.next_event()


def test_client_version_mismatch_closes():
    client, _ = client_after(Version(1))
    assert events(client, b'\x00\x00\x00\x02') == [VersionReply(2)]
    assert client.state == CLOSED
    with pytest.raises(OutOfTurnError):
        client.send(Sync())


def test_both_ends_agree_on_a_whole_session():
    """Client bytes fed to a server end, server bytes back to the client."""
    client = ClientConnection()
    server = ServerConnection()
    answers = {
        Version: VersionReply(1), Load: LoadReply(STATUS_OKAY, RECORD),
        NewOids: Oids([oid(1), oid(2), oid(3)]),
        CommitStart: Invalidations([oid(8)]), CommitData: Status(b'O'),
        Sync: Invalidations([])}
    script = [Version(), Load(ROOT), NewOids(3), CommitStart(),
              CommitData([(ROOT, RECORD), (oid(1), pack_record(
                  oid(1), b'x', ROOT))]), Sync()]
    for request in script:
        server.receive_data(client.send(request))
        got = server.next_event()
        assert got == request
        client.receive_data(server.send(answers[type(request)]))
        assert client.next_event() == answers[type(request)]
    server.receive_data(client.send(Goodbye()))
    assert server.next_event() == Goodbye()


# Protocol 2: this project's one-step commit ----------------------------

def _item_payload(items):
    body = b''.join((8 + len(rec)).to_bytes(4, 'big') + o + rec
                    for o, rec in items)
    return len(body).to_bytes(4, 'big') + body


def test_commit_all_is_an_unknown_command_under_protocol_1():
    server = ServerConnection()
    with pytest.raises(ProtocolError, match="No such command code: 'A'"):
        events(server, b'A' + _item_payload([(ROOT, RECORD)]))
    client = ClientConnection()
    with pytest.raises(OutOfTurnError, match='protocol 2'):
        client.send(CommitAll([(ROOT, RECORD)]))


def _agreed_on_2(conn):
    if isinstance(conn, ServerConnection):
        assert events(conn, b'V\x00\x00\x00\x02') == [Version(2)]
        assert conn.send(VersionReply(2)) == b'\x00\x00\x00\x02'
    else:
        assert conn.send(Version(2)) == b'V\x00\x00\x00\x02'
        assert events(conn, b'\x00\x00\x00\x02') == [VersionReply(2)]
    assert conn.version == 2 and conn.state == IDLE
    return conn


def test_commit_all_exchange_on_both_ends_byte_by_byte():
    other = pack_record(oid(7), b'seven', b'')
    items = [(ROOT, RECORD), (oid(7), other)]
    client = _agreed_on_2(ClientConnection())
    server = _agreed_on_2(ServerConnection())
    wire = client.send(CommitAll(items))
    assert wire == b'A' + _item_payload(items)
    assert events(server, wire) == [CommitAll(items)]
    for reply, raw in [
            (CommitAllReply([], STATUS_OKAY), b'\x00\x00\x00\x00O'),
            (CommitAllReply([oid(3)], STATUS_RETRY),
             b'\x00\x00\x00\x01' + oid(3) + b'R')]:
        assert server.send(reply) == raw
        assert server.state == IDLE
        assert events(client, raw) == [reply]
        if reply.status == STATUS_OKAY:
            wire = client.send(CommitAll(items))
            assert events(server, wire) == [CommitAll(items)]


def test_commit_all_bad_frames():
    server = _agreed_on_2(ServerConnection(max_frame=1024))
    with pytest.raises(FrameTooLargeError):
        events(server, b'A\x00\x01\x00\x00')    # announced, not buffered
    server = _agreed_on_2(ServerConnection())
    with pytest.raises(ProtocolError, match='no records'):
        events(server, b'A\x00\x00\x00\x00')
    server = _agreed_on_2(ServerConnection())
    with pytest.raises(ProtocolError, match='overruns'):
        events(server, b'A\x00\x00\x00\x0e\x00\x00\x10\x00' + ROOT + b'xx')
    client = _agreed_on_2(ClientConnection())
    client.send(CommitAll([(ROOT, RECORD)]))
    with pytest.raises(ProtocolError, match="status byte b'Z'"):
        events(client, b'\x00\x00\x00\x00Z')
    with pytest.raises(OutOfTurnError, match='at least one'):
        _agreed_on_2(ClientConnection()).send(CommitAll([]))


# The one-step commit's short path (ClientConnection.send_commit_all and
# receive_commit_all_reply): the same bytes and replies as send/next_event.

@pytest.mark.parametrize('count', [1, 2, 3])
def test_send_commit_all_writes_what_send_writes(count):
    items = [(oid(n), pack_record(oid(n), b'state %d' % n, b''))
             for n in range(count)]
    short = _agreed_on_2(ClientConnection())
    general = _agreed_on_2(ClientConnection())
    assert short.send_commit_all(list(items)) == general.send(CommitAll(items))
    assert short.awaiting() == [CommitAll(items)]
    assert short.state == IDLE
    server = _agreed_on_2(ServerConnection())
    assert events(server, short.send_commit_all(list(items))) == [
        CommitAll(items)]


def test_send_commit_all_refuses_what_send_refuses():
    with pytest.raises(OutOfTurnError, match='protocol 2'):
        ClientConnection().send_commit_all([(ROOT, RECORD)])
    for bad_oid in [b'short', 'a str oid']:
        client = _agreed_on_2(ClientConnection())
        with pytest.raises(OutOfTurnError, match='8 bytes'):
            client.send_commit_all([(bad_oid, RECORD)])
        assert client.awaiting() == []
    client = _agreed_on_2(ClientConnection())
    client.send(CommitStart())
    with pytest.raises(OutOfTurnError, match='not allowed'):
        client.send_commit_all([(ROOT, RECORD)])


@pytest.mark.parametrize('status', [STATUS_OKAY, STATUS_INVALID, STATUS_RETRY])
def test_a_lone_commit_all_reply_is_parsed_at_once(status):
    client = _agreed_on_2(ClientConnection())
    client.send_commit_all([(ROOT, RECORD)])
    assert client.receive_commit_all_reply(
        memoryview(b'\x00\x00\x00\x00' + status)) == CommitAllReply([], status)
    assert client.awaiting() == [] and client.buffered() == 0
    assert client.next_event() is NEED_DATA


@pytest.mark.parametrize('data', [
    b'\x00\x00\x00\x01' + oid(3) + b'R',   # invalidations: the general parser
    b'\x00\x00\x00',                        # a part of the reply
])
def test_other_commit_all_replies_go_to_the_general_parser(data):
    client = _agreed_on_2(ClientConnection())
    client.send_commit_all([(ROOT, RECORD)])
    assert client.receive_commit_all_reply(data) is None
    assert client.buffered() == len(data)
    if len(data) == 3:
        assert client.next_event() is NEED_DATA
        client.receive_data(b'\x00O')
        assert client.next_event() == CommitAllReply([], STATUS_OKAY)
    else:
        assert client.next_event() == CommitAllReply([oid(3)], STATUS_RETRY)


def test_a_bad_status_or_an_authenticated_session_is_left_to_next_event():
    client = _agreed_on_2(ClientConnection())
    client.send_commit_all([(ROOT, RECORD)])
    assert client.receive_commit_all_reply(b'\x00\x00\x00\x00Z') is None
    with pytest.raises(ProtocolError, match="status byte b'Z'"):
        client.next_event()
    # Protocol 5 may answer with a denial first: never the short path.
    client = _agreed_on_2(ClientConnection())
    client.version = 5
    client.send(CommitAll([(ROOT, RECORD)]))
    assert client.receive_commit_all_reply(b'\x00\x00\x00\x00O') is None
    assert client.next_event() == CommitAllReply([], STATUS_OKAY)
    # A reply with nothing awaited is not taken either.
    client = _agreed_on_2(ClientConnection())
    assert client.receive_commit_all_reply(b'\x00\x00\x00\x00O') is None
    with pytest.raises(ProtocolError, match='nobody asked for'):
        client.next_event()


# Error replies: a refusal with the server's reason ---------------------

def _protocol(version, conn):
    return _agreed_on_2(conn) if version == 2 else conn


REFUSABLE = [
    (Load(ROOT), b''),
    (BulkLoad([ROOT, oid(1)]), b''),
    (Pack(), b''),
]


@pytest.mark.parametrize('request_event, prefix', REFUSABLE)
@pytest.mark.parametrize('version', [1, 2])
def test_refusal_of_a_request_reaches_the_client(request_event, prefix,
                                                 version):
    server = _protocol(version, ServerConnection())
    client = _protocol(version, ClientConnection())
    assert events(server, client.send(request_event)) == [request_event]
    wire = server.refuse('disk on fire')
    assert server.state == CLOSED
    if version == 2:
        assert wire == prefix + b'E\x00\x00\x00\x0cdisk on fire'
        expected = ErrorReply('disk on fire')
    else:       # what a Durus 4.3 client can read as a bad status byte
        assert wire == prefix + b'E'
        expected = ErrorReply(None)
    assert events(client, wire) == [expected]
    assert client.state == CLOSED and client.refused == request_event
    assert client.awaiting() == []


@pytest.mark.parametrize('version', [1, 2])
def test_refusal_of_a_commit_payload(version):
    server = _protocol(version, ServerConnection())
    client = _protocol(version, ClientConnection())
    events(server, client.send(CommitStart()))
    events(client, server.send(Invalidations([])))
    data = CommitData([(ROOT, RECORD)])
    assert events(server, client.send(data)) == [data]
    wire = server.refuse('no space left on device')
    assert wire[:1] == b'E'
    reply = events(client, wire)[0]
    assert type(reply) is ErrorReply and client.refused == data
    assert reply.reason == ('no space left on device' if version == 2
                            else None)


def test_refusal_of_a_one_step_commit_follows_an_empty_oid_list():
    server = _agreed_on_2(ServerConnection())
    client = _agreed_on_2(ClientConnection())
    request = CommitAll([(ROOT, RECORD)])
    events(server, client.send(request))
    wire = server.refuse('read-only file system')
    assert wire == b'\0\0\0\0E\x00\x00\x00\x15read-only file system'
    assert events(client, wire) == [ErrorReply('read-only file system')]


def test_a_frame_over_the_limit_is_refused_in_the_reply_it_announced():
    server = _agreed_on_2(ServerConnection(max_frame=1024))
    with pytest.raises(FrameTooLargeError) as caught:
        events(server, b'A\x00\x01\x00\x00')
    assert server.refuse(str(caught.value)).startswith(b'\0\0\0\0E')
    server = ServerConnection(max_frame=1024)
    events(server, b'C')
    server.send(Invalidations([]))
    with pytest.raises(FrameTooLargeError):
        events(server, b'\x00\x01\x00\x00')
    assert server.refuse('too big') == b'E'         # protocol 1


@pytest.mark.parametrize('request_event', [
    NewOids(2), Sync(), CommitStart(), Version(1)])
def test_replies_without_a_status_byte_cannot_carry_a_refusal(request_event):
    server = ServerConnection()
    events(server, encode_request(request_event))
    assert server.refuse('no') == b''
    assert server.state == CLOSED


def test_unknown_commands_and_back_outs_get_no_refusal_bytes():
    server = ServerConnection()
    with pytest.raises(ProtocolError):
        events(server, b'X')
    assert server.refuse('no') == b''
    server = ServerConnection()
    events(server, b'C')
    server.send(Invalidations([]))
    assert events(server, b'\0\0\0\0') == [CommitBackOut()]
    assert server.refuse('no') == b''     # a back-out has no reply


def test_client_limits_the_reason_it_reads():
    client = _agreed_on_2(ClientConnection())
    client.send(Load(ROOT))
    with pytest.raises(ProtocolError, match='error reply of'):
        events(client, b'E\x7f\x00\x00\x00')
