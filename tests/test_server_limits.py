"""The server's limits on open connections (durus/admission.py): a peer
that opens connections and stays silent cannot take every descriptor,
running out of descriptors does not make the loop spin, and the server
keeps serving the clients it has."""

import logging
import resource
import socket
import subprocess
import sys
import time

import pytest

from durus.admission import (
    RESERVED_DESCRIPTORS, ConnectionLimits, RefusalLog, check_limit,
    default_max_connections)
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ShortRead
from durus.protocol import PROTOCOL_VERSION
from durus.utils import int4_to_str, str_to_int4
from server_process import durus_server, wait_for  # noqa: F401


# In-process: the counting and the log ------------------------------------

def test_total_limit_counts_and_releases():
    limits = ConnectionLimits(max_connections=2)
    assert limits.admit('10.0.0.1') is None
    assert limits.admit('10.0.0.2') is None
    why = limits.admit('10.0.0.3')
    assert 'has 2 connections open' in why and '--max-connections' in why
    assert limits.open == 2           # the refused one is not counted
    limits.release('10.0.0.1')
    assert limits.admit('10.0.0.3') is None


def test_per_peer_limit_leaves_other_peers_in():
    limits = ConnectionLimits(max_connections=10, max_per_peer=2)
    assert limits.admit('a') is None
    assert limits.admit('a') is None
    why = limits.admit('a')
    assert why.startswith('a has 2 connections open') and 'per peer' in why
    assert limits.admit('b') is None
    limits.release('a')
    assert limits.admit('a') is None
    assert limits.open == 3


def test_default_leaves_room_below_the_descriptor_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        pytest.skip('no descriptor limit in this process')
    assert default_max_connections() == max(1, soft - RESERVED_DESCRIPTORS)
    assert ConnectionLimits().max_connections == default_max_connections()


@pytest.mark.parametrize('value', [0, -1, 2.5, '10', True])
def test_bad_limits_are_clear_errors(value):
    with pytest.raises(ValueError, match='at least 1'):
        check_limit('--max-connections', value)
    with pytest.raises(ValueError, match='max_per_peer'):
        ConnectionLimits(max_per_peer=value)


def test_refusals_are_logged_once_per_interval_with_a_count():
    refusals = RefusalLog(interval=10)
    level, first = refusals.refused('full', now=100.0)
    assert level == logging.WARNING and first == 'refused a connection: full'
    assert all(refusals.refused('full', now=100.0 + i) is None
               for i in range(1, 6))
    level, later = refusals.refused('full', now=111.0)
    assert later.endswith('(and 5 more refused since the last such line)')
    assert refusals.refused('full', now=112.0) is None


# A real server process ----------------------------------------------------

def _client(server):
    return ClientStorage(port=server.port, connect_timeout=5)


def _raw_connection(port, source='127.0.0.1'):
    """A connection that asks for the protocol version: the 4-byte answer
    shows it was served; b'' that it was closed at once."""
    sock = socket.create_connection(('127.0.0.1', port), timeout=5,
                                    source_address=(source, 0))
    sock.sendall(b'V' + int4_to_str(PROTOCOL_VERSION))
    return sock


def _answer(sock):
    try:
        return sock.recv(4)
    except ConnectionResetError:
        return b''


def test_connections_over_the_limit_are_refused_and_others_still_served(
        durus_server):
    server = durus_server('--max-connections', '3')
    clients = [_client(server) for _ in range(3)]
    try:
        with pytest.raises(ShortRead, match='connection limit'):
            _client(server)
        # a flood of refusals: a few log lines, and the three are served
        for _ in range(30):
            sock = _raw_connection(server.port)
            assert _answer(sock) == b''
            sock.close()
        for storage in clients:
            Connection(storage).get_root()
        log = server.log()
        assert 'refused a connection: the server has 3 connections open' in log
        assert log.count('refused a connection') <= 2
        clients.pop().close()
        # the closed one's place is free again (its close is seen soon)
        assert wait_for(lambda: _served(server), timeout=5)
    finally:
        for storage in clients:
            storage.close()


def _served(server):
    sock = _raw_connection(server.port)
    try:
        return str_to_int4(_answer(sock) or b'\0\0\0\0') == PROTOCOL_VERSION
    finally:
        sock.close()


def test_one_peer_cannot_take_the_places_of_others(durus_server):
    server = durus_server('--max-per-peer', '2')
    held = [_raw_connection(server.port) for _ in range(2)]
    try:
        assert all(len(_answer(sock)) == 4 for sock in held)
        third = _raw_connection(server.port)
        assert _answer(third) == b''
        third.close()
        other = _raw_connection(server.port, source='127.0.0.2')
        assert str_to_int4(_answer(other)) == PROTOCOL_VERSION
        other.close()
        assert '127.0.0.1 has 2 connections open' in server.log()
    finally:
        for sock in held:
            sock.close()


def _cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(
        __import__('os').sysconf('SC_CLK_TCK'))


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='sets a running process\'s limit with prlimit')
def test_out_of_descriptors_pauses_accepting_instead_of_spinning(
        durus_server):
    server = durus_server('--max-connections', '1000')
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (40, 40))
    flood = []
    try:
        for _ in range(60):
            flood.append(socket.create_connection(
                ('127.0.0.1', server.port), timeout=5))
        assert wait_for(lambda: 'cannot accept connections' in server.log(),
                        timeout=5), server.log()
        before = _cpu_seconds(server.pid)
        time.sleep(1.5)
        spent = _cpu_seconds(server.pid) - before
        assert spent < 0.5, 'the loop spun: %.2f s of CPU in 1.5 s' % spent
        log = server.log()
        assert 'Too many open files' in log and 'ulimit -n' in log
        assert log.count('cannot accept connections') <= 2
    finally:
        for sock in flood:
            sock.close()
    # the descriptors come back and new clients are served again
    assert wait_for(lambda: _served(server), timeout=10)
    storage = _client(server)
    try:
        Connection(storage).get_root()
    finally:
        storage.close()


@pytest.mark.parametrize('option', ['--max-connections', '--max-per-peer'])
def test_bad_limit_on_the_command_line(tmp_path, option):
    result = subprocess.run(
        [sys.executable, '-m', 'durus', '-s', '--file',
         str(tmp_path / 'x.durus'), option, '0'],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert ('durus: %s must be a whole number of connections, at least 1'
            % option) in result.stderr
