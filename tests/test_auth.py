"""Users, roles and SCRAM authentication without sockets: durus.auth on
its own, then ServerCore sessions driven through the test_server_core
harness (a fake clock, bytes in, actions out)."""

import os

import pytest

from durus.auth import (
    AuthFailure, ScramClient, ScramServer, User, Verifier, load_users,
    parse_users, set_user)
from durus.error import AuthenticationError, UsersFileError
from durus.protocol import (
    STATUS_OKAY, Auth, AuthReply, CommitAll, CommitStart, DeniedReply,
    ErrorReply, Invalidations, Load, NewOids, Oids, Pack, Quit, Status, Sync,
    Version, VersionReply)
from durus.server_core import AUTH_DELAY, Send
from durus.storage import MemoryStorage

from test_server_core import Harness, log_messages, oid, record  # noqa: F401

ITERATIONS = 4096   # the minimum: keeps the tests fast


def users(**roles):
    return {name: User(name, role, Verifier.from_secret(
        'pw-' + name, ITERATIONS)) for name, role in roles.items()}


def exchange(server, client):
    """Run a whole exchange; the role the client was told."""
    server_first = server.first(client.first())
    server_final = server.final(client.final(server_first))
    return client.verify(server_final)


# durus.auth ----------------------------------------------------------------

def test_right_secret_authenticates_both_ways():
    known = users(alice='write')
    server = ScramServer(known, b'k' * 32)
    assert exchange(server, ScramClient('alice', 'pw-alice')) == 'write'
    assert server.role == 'write' and server.user == 'alice'


def test_wrong_secret_and_unknown_user_fail_the_same_way():
    known = users(alice='write')
    answers = []
    for name, secret in (('alice', 'nope'), ('mallory', 'pw-alice')):
        server = ScramServer(known, b'k' * 32)
        client = ScramClient(name, secret)
        server_first = server.first(client.first())
        answers.append(server_first)
        with pytest.raises(AuthFailure):
            server.final(client.final(server_first))
        assert server.role is None
    # The unknown user's challenge looks like a real one (salt, rounds).
    salts = [dict(p.split('=', 1) for p in a.decode().split(','))
             for a in answers]
    assert salts[0]['i'] == str(ITERATIONS)
    assert len(salts[1]['s']) == len(salts[0]['s'])
    # ... and is the same each time, so it cannot be told from a real one.
    again = ScramServer(known, b'k' * 32).first(
        ScramClient('mallory', 'x').first())
    assert again.split(b',')[1:2] == answers[1].split(b',')[1:2]


def test_a_recorded_exchange_cannot_be_replayed():
    known = users(alice='admin')
    server = ScramServer(known, b'k' * 32)
    client = ScramClient('alice', 'pw-alice')
    first = client.first()
    final = client.final(server.first(first))
    server.final(final)
    # An eavesdropper replays both client messages to a new exchange: the
    # server's fresh nonce makes the old proof worthless.
    replay = ScramServer(known, b'k' * 32)
    replay.first(first)
    with pytest.raises(AuthFailure, match='nonce'):
        replay.final(final)


def test_the_client_refuses_a_server_that_does_not_know_the_verifier():
    client = ScramClient('alice', 'pw-alice')
    # A server holding another verifier for alice (an impostor that
    # learned the name): it cannot accept the proof nor sign the exchange.
    impostor = ScramServer(users(alice='admin'), b'k' * 32)
    impostor.users['alice'].verifier = Verifier.from_secret('guess',
                                                            ITERATIONS)
    final = client.final(impostor.first(client.first()))
    with pytest.raises(AuthFailure, match='wrong secret'):
        impostor.final(final)
    with pytest.raises(AuthenticationError, match='impostor'):
        client.verify(b'v=' + b'A' * 43 + b'=,R=admin')


def test_client_refuses_absurd_iteration_counts_and_foreign_nonces():
    client = ScramClient('alice', 'x')
    client.first()
    with pytest.raises(AuthenticationError, match='iterations'):
        client.final(('r=%sabc,s=c2FsdA==,i=999999999' % client.nonce)
                     .encode())
    with pytest.raises(AuthenticationError, match='nonce'):
        client.final(b'r=someoneelse,s=c2FsdA==,i=4096')


def test_channel_binding_must_match_the_tls_certificate():
    known = users(alice='read')
    assert exchange(ScramServer(known, b'k' * 32, binding=b'B' * 32),
                    ScramClient('alice', 'pw-alice', binding=b'B' * 32))
    server = ScramServer(known, b'k' * 32, binding=b'B' * 32)
    client = ScramClient('alice', 'pw-alice', binding=b'C' * 32)
    with pytest.raises(AuthFailure, match='channel binding'):
        server.final(client.final(server.first(client.first())))
    # A client on TLS relayed to a server without it:
    with pytest.raises(AuthFailure, match='without TLS'):
        ScramServer(known, b'k' * 32).first(
            ScramClient('alice', 'x', binding=b'B' * 32).first())


def test_users_file_round_trip_and_secret_never_stored(tmp_path):
    path = str(tmp_path / 'users')
    assert set_user(path, 'alice', 'admin', 'correct horse', ITERATIONS)
    assert set_user(path, 'bob', 'read', 'battery', ITERATIONS)
    assert not set_user(path, 'bob', 'write', 'staple', ITERATIONS)
    text = open(path).read()
    assert 'horse' not in text and 'staple' not in text
    assert oct(os.stat(path).st_mode & 0o777) == '0o600'
    loaded = load_users(path)
    assert {n: u.role for n, u in loaded.items()} == {'alice': 'admin',
                                                      'bob': 'write'}
    server = ScramServer(loaded, b'k' * 32)
    assert exchange(server, ScramClient('bob', 'staple')) == 'write'


@pytest.mark.parametrize('line, problem', [
    ('alice', 'expected name:role:verifier'),
    ('alice:root:SCRAM-SHA-256$4096:c2FsdA==$%s:%s', 'unknown role'),
    ('al ice:read:x', 'user name'),
    ('alice:read:md5$abc', 'verifier is not'),
    ('alice:read:SCRAM-SHA-256$10:c2FsdA==$%s:%s', 'iterations'),
    ('alice:read:SCRAM-SHA-256$4096:c2FsdA==$!!!:%s', 'base64'),
])
def test_bad_users_file_lines_are_named(tmp_path, line, problem):
    key = 'A' * 43 + '='
    if line.count('%s') == 2:
        line = line % (key, key)
    elif '%s' in line:
        line = line % key
    path = tmp_path / 'users'
    path.write_text('# comment\n\n' + line + '\n')
    with pytest.raises(UsersFileError) as info:
        load_users(str(path))
    assert 'line 3' in str(info.value) and problem in str(info.value)


def test_duplicate_and_empty_users_files_are_refused(tmp_path):
    path = tmp_path / 'users'
    set_user(str(path), 'alice', 'read', 'x', ITERATIONS)
    path.write_text(path.read_text() * 2)
    with pytest.raises(UsersFileError, match='twice'):
        load_users(str(path))
    path.write_text('# nobody\n')
    with pytest.raises(UsersFileError, match='no users'):
        load_users(str(path))
    assert parse_users('') == {}


# The core ------------------------------------------------------------------

def authenticate(client, name, secret):
    client.send(Version(3))
    assert client.reply() == VersionReply(3)
    scram = ScramClient(name, secret)
    client.send(Auth(scram.first()))
    reply = client.reply()
    client.send(Auth(scram.final(reply.message)))
    return client.replies()


def secured(**options):
    storage = MemoryStorage()
    storage.begin()
    storage.store(oid(0), record(0))
    storage.end()
    return Harness(storage, users=users(reader='read', writer='write',
                                        boss='admin'), **options)


def test_a_session_authenticates_and_gets_its_role(log_messages):
    harness = secured()
    client = harness.connect('a')
    [reply] = authenticate(client, 'writer', 'pw-writer')
    assert type(reply) is AuthReply
    assert client.session.role == 'write'
    client.send(Load(oid(0)))
    assert client.reply().status == STATUS_OKAY
    assert any('authenticated as writer' in m for m in log_messages)


def test_nothing_but_authentication_before_it():
    for request in (Load(oid(0)), Sync(), NewOids(1), Pack(), Quit()):
        harness = secured()
        client = harness.connect('a')
        client.send(Version(3))
        client.reply()
        client.send(request)
        assert client.closed is not None, request
        assert not harness.stopped
    # A Durus 4.3 client asks for protocol 1: answered 3, then closed.
    harness = secured()
    client = harness.connect('old')
    client.send_bytes(b'V\0\0\0\x01')
    assert bytes(client.received) == b'\0\0\0\x03'
    assert client.closed is not None


def test_a_failed_proof_is_answered_later_each_time(log_messages):
    harness = secured()
    delays = []
    for attempt in range(3):
        client = harness.connect('try%d' % attempt)
        client.session.peer = '10.0.0.9'
        client.send(Version(3))
        client.reply()
        scram = ScramClient('writer', 'wrong')
        client.send(Auth(scram.first()))
        client.send(Auth(scram.final(client.reply().message)))
        assert client.replies() == [] and client.closed is None
        waited = 0.0
        while client.closed is None:
            harness.advance(0.05)
            waited += 0.05
        delays.append(waited)
        [refusal] = client.replies()
        assert type(refusal) is ErrorReply
        assert 'wrong user name or secret' in refusal.reason
    assert delays[0] >= AUTH_DELAY - 0.01
    assert delays[1] > 1.8 * delays[0] and delays[2] > 1.8 * delays[1]
    assert sum('authentication failed' in m and '10.0.0.9' in m
               for m in log_messages) == 3


ROLE_CASES = [
    # (request, roles that may send it)
    (Load(oid(0)), {'read', 'write', 'admin'}),
    (Sync(), {'read', 'write', 'admin'}),
    (NewOids(2), {'write', 'admin'}),
    (CommitStart(), {'write', 'admin'}),
    (CommitAll([(oid(0), record(0, b'y'))]), {'write', 'admin'}),
    (Pack(), {'admin'}),
    (Quit(), {'admin'}),
]


@pytest.mark.parametrize('request_, allowed', ROLE_CASES,
                         ids=[type(r).__name__ for r, _ in ROLE_CASES])
@pytest.mark.parametrize('name', ['reader', 'writer', 'boss'])
def test_each_role_against_each_command(name, request_, allowed):
    harness = secured()
    client = harness.connect('a')
    authenticate(client, name, 'pw-' + name)
    role = client.session.role
    client.send(request_)
    replies = client.replies()
    if role in allowed:
        assert client.closed is None or type(request_) is Quit
        assert not any(type(r) in (ErrorReply, DeniedReply) for r in replies)
        assert harness.stopped == (type(request_) is Quit)
    else:
        # Refused with a reason; the connection and the server go on.
        assert not harness.stopped and client.closed is None
        if type(request_) is Quit:   # (a reply the client did not expect)
            assert any(type(action) is Send and
                       b'permission denied' in bytes(action.data)
                       for action in harness.log)
        else:
            [denied] = replies
            assert type(denied) is DeniedReply
            assert 'permission denied' in denied.reason
            assert role in denied.reason
            client.send(Load(oid(0)))
            assert client.reply().status == STATUS_OKAY
    # Everyone else is still served.
    other = harness.connect('b')
    if not harness.stopped:
        authenticate(other, 'reader', 'pw-reader')
        other.send(Load(oid(0)))
        assert other.reply().status == STATUS_OKAY


def test_readonly_refuses_every_write_even_to_admins():
    harness = secured(readonly=True)
    client = harness.connect('a')
    authenticate(client, 'boss', 'pw-boss')
    client.send(NewOids(1))
    [denied] = client.replies()
    assert 'read-only' in denied.reason and client.closed is None
    # Without users too (the Durus 4.3 configuration):
    harness = Harness(readonly=True)
    client = harness.connect('a')
    client.send(Version(2))
    client.reply()
    client.send(CommitAll([(oid(0), record(0))]))
    [refusal] = client.replies()
    assert 'read-only' in refusal.reason


def test_without_users_nothing_changes_and_v3_is_declined():
    harness = Harness()
    client = harness.connect('a')
    client.send(NewOids(1), Pack(), Sync())
    replies = client.replies()
    assert [type(r) for r in replies] == [Oids, Status, Invalidations]
    client = harness.connect('b')
    client.send_bytes(b'V\0\0\0\x03')
    assert bytes(client.received) == b'\0\0\0\x02'
    assert client.closed is not None


def test_a_peer_credential_role_needs_no_secret():
    harness = secured()
    client = harness.connect('local')
    client.session.role = 'read'      # as open(role=) from SO_PEERCRED
    client.send(Version(2))
    assert client.reply() == VersionReply(2)
    client.send(Load(oid(0)))
    assert client.reply().status == STATUS_OKAY
    client.send(NewOids(1))
    assert client.closed is not None


# Memory bounds ---------------------------------------------------------------

def test_total_buffered_input_is_bounded_and_released():
    harness = Harness(max_buffered=3000, max_frame=1 << 20)
    a, b, c = (harness.connect(n) for n in 'abc')
    for client in (a, b):
        client.send(Version(2))
        client.reply()
        # A one-step commit announcing 1 MiB, of which 1400 bytes arrive.
        client.send_bytes(b'A' + (1 << 20).to_bytes(4, 'big') + b'x' * 1400)
    assert a.closed is None and b.closed is None
    assert harness.core.buffered >= 2800
    c.send(Version(2))
    c.reply()
    c.send_bytes(b'A' + (1 << 20).to_bytes(4, 'big') + b'y' * 400)
    # The one that passed the limit is refused, with the reason.
    assert c.closed is not None and a.closed is None
    assert bytes(c.received).startswith(b'\0\0\0\0E')
    assert b'buffer space' in bytes(c.received)
    a.send_bytes(b'')     # a hangs up: its buffer is given back
    assert harness.core.buffered < 1500
    d = harness.connect('d')
    d.send(Load(oid(0)))
    assert d.reply().status == b'K'


def test_a_request_trickling_in_too_slowly_is_dropped(log_messages):
    harness = Harness(timeout=10, min_rate=100)
    slow, idle = harness.connect('slow'), harness.connect('idle')
    slow.send(Version(2))
    slow.reply()
    slow.send_bytes(b'A' + (5000).to_bytes(4, 'big'))
    for _ in range(40):          # one byte each half second: 20 s
        harness.advance(0.5)
        if slow.closed is not None:
            break
        slow.send_bytes(b'z')
    assert slow.closed is not None
    assert any('too slow' in m for m in log_messages)
    assert idle.closed is None        # idle between requests is fine


def test_a_large_commit_buffer_is_given_back_once_parsed():
    harness = Harness(max_frame=1 << 22)
    client = harness.connect('a')
    client.send(NewOids(1))
    [new] = client.reply().oids
    client.send(Version(2))
    client.reply()
    client.send(CommitAll([(new, record(int.from_bytes(new, 'big'),
                                        b'x' * (2 << 20)))]))
    assert client.reply().status == STATUS_OKAY
    assert client.session.protocol.buffer_size() == 0
    assert harness.core.buffered == 0


def test_a_session_that_never_authenticates_is_dropped(log_messages):
    harness = secured(timeout=10)
    idle, done = harness.connect('idle'), harness.connect('done')
    authenticate(done, 'reader', 'pw-reader')
    for _ in range(12):
        harness.advance(1.0)
    assert idle.closed is not None and done.closed is None
    assert any('did not authenticate within 10 s' in m for m in log_messages)
