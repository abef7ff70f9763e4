"""ClientStorage: a storage that lives in a storage server.

A thin blocking-socket layer around ``durus.protocol.ClientConnection``:
each request goes out with one ``sendall`` and replies are read with
buffered ``recv`` calls.  Oids are reserved from the server 32 at a
time.  Every failure names the server's address: ServerUnreachableError
(nobody listening, or no answer in time), ShortRead (the server closed
the connection), ServerRefusedError (the server refused a request and
said why: its disk is full, a commit is over its size limit, ...),
ProtocolError (the peer is not a matching Durus server).  After such a
failure ``connected`` is False and every request raises ShortRead until
``reconnect()`` (an addition to 4.3) opens a new server session.

The client first asks for protocol 4 (this project's extensions: a
commit in one round trip, and ``pending_changes()``, see
durus.protocol); a server that does not know it answers with its own
version and hangs up, and the client connects again asking for protocol
2, then 1 (Durus 4.3).  ``protocol=2`` or ``protocol=1`` starts lower.

With ``user`` and ``secret`` the client asks for protocol 5 (then 3) and proves
who it is (SCRAM-SHA-256, durus.auth); the server proves it knows the
user too, and tells the user's role, which the client then checks before
each request (``PermissionDeniedError``).  A client given a user refuses
a server that does not authenticate, and a client given none is told
clearly when the server requires it.  ``ssl_context`` (see durus.tls)
speaks TLS; over TLS the authentication is bound to the server's
certificate.
"""

import socket
import ssl
import struct
import time

from durus.auth import ADMIN, WRITE, ScramClient, certificate_binding, role_allows
from durus.error import (
    AuthenticationError, DurusKeyError, PermissionDeniedError, ProtocolError,
    ReadConflictError, ServerRefusedError, ServerUnreachableError, ShortRead,
    WriteConflictError)
from durus.protocol import (
    AUTH_PEEK_PROTOCOL_VERSION, AUTH_PROTOCOL_VERSION,
    EXTENDED_PROTOCOL_VERSION, MAX_BULK_OIDS, MAX_PEEK_OIDS, NEED_DATA,
    PEEK_PROTOCOL_VERSION, PEEK_VERSIONS, PROTOCOL_VERSION, STATUS_INVALID,
    STATUS_KEYERROR, STATUS_OKAY, STATUS_RETRY, Auth, BulkLoad,
    ClientConnection, CommitAll, CommitBackOut, CommitData, CommitStart,
    DeniedReply, ErrorReply, Goodbye, Load, NewOids, Pack,
    PeekInvalidations, PendingInvalidations, Quit, Sync, Version)
from durus.socket_address import HostPortAddress
from durus.prefetch import Prefetcher
from durus.socket_address import DEFAULT_HOST, DEFAULT_PORT, SocketAddress
from durus.storage import PendingChanges, Storage
from durus.utils import check_oid

CONNECT_TIMEOUT = 10
# Generous: a server may be busy with a large commit or a synchronous pack.
READ_TIMEOUT = 300
RECV_SIZE = 256 * 1024
TLS_RECORD_SIZE = 16 * 1024
# After a failed send, how long to look for the server's reason.
REFUSAL_READ_TIMEOUT = 1.0

_REQUEST_NAMES = {Load: 'load', BulkLoad: 'load', CommitData: 'commit',
                  CommitAll: 'commit', Pack: 'pack', Auth: 'authentication'}
# First bytes of a TLS record (alert, handshake): a TLS server answering.
_TLS_RECORD_TYPES = (0x15, 0x16)


class ClientStorage(Storage):
    """The storage served at ``address`` (or ``(host, port)``)."""

    oid_pool_size = 32

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, address=None,
                 timeout=READ_TIMEOUT, connect_timeout=CONNECT_TIMEOUT,
                 protocol=PEEK_PROTOCOL_VERSION, user=None, secret=None,
                 ssl_context=None, server_hostname=None):
        self.address = SocketAddress.new(address or (host, port))
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        if server_hostname is None and isinstance(self.address,
                                                  HostPortAddress):
            self.server_hostname = self.address.host
        self.user = user
        self.role = None    # what the server said (None: not told)
        if user is not None and secret is None:
            raise ValueError('a user name needs its secret (secret=...)')
        self.oid_pool = []
        self.records = []
        self.transaction_oids = []
        self.prefetcher = Prefetcher()
        self.requests = 0       # round trips so far (for tests and tuning)
        self._recv_buffer = bytearray(RECV_SIZE)
        self._recv_view = memoryview(self._recv_buffer)
        # After a one-step commit came back "retry" twice in a row (or
        # with a conflict), the next commits go the protocol-1 way:
        # `_skip` of them, doubling while retries go on (up to 64).
        self._one_step_skip = 0
        self._one_step_backoff = 0
        if protocol not in _ASKED_ORDER:
            raise ValueError('protocol must be 1, 2 or 4, not %r'
                             % (protocol,))
        self._asked_protocol = protocol
        # Kept for reconnect(): a new server session authenticates again.
        self._secret = secret
        self.s = None
        self._open(connect_timeout, protocol)

    def _open(self, connect_timeout, protocol):
        user, secret = self.user, self._secret
        if user is not None:
            wanted = (AUTH_PEEK_PROTOCOL_VERSION
                      if protocol == PEEK_PROTOCOL_VERSION
                      else AUTH_PROTOCOL_VERSION)
            self._connect(connect_timeout, wanted)
            if self.s is None and self.version == AUTH_PROTOCOL_VERSION:
                # A server of this project from before protocol 5.
                self._connect(connect_timeout, AUTH_PROTOCOL_VERSION)
            if self.s is None:
                raise AuthenticationError(
                    'the server at %s does not authenticate clients (it '
                    'was started without --users); connect without a user '
                    'name' % self.address)
            self._authenticate(user, secret)
        else:
            self._connect(connect_timeout, protocol)
            while self.s is None and self.version == PROTOCOL_VERSION != \
                    protocol:
                # It does not know that version and has hung up: ask for
                # the next lower one (2 for a server of this project from
                # before protocol 4, 1 for Durus 4.3).
                protocol = _ASKED_ORDER[protocol]
                self._connect(connect_timeout, protocol)
            if self.version == AUTH_PROTOCOL_VERSION and self.s is None:
                raise AuthenticationError(
                    'the server at %s requires authentication: give a user '
                    'name and secret (ClientStorage(user=..., secret=...), '
                    'durus-shell --user NAME)' % self.address)
        if self.s is None:
            raise ProtocolError(
                'the server at %s speaks protocol version %d, this client '
                'speaks %d (is it a Durus storage server of another version?)'
                % (self.address, self.version, PROTOCOL_VERSION))
        _set_io_timeout(self.s, self.timeout)
        self._io_timeout = self.timeout

    @property
    def connected(self):
        """False once the server connection was lost or closed (every
        request then raises ShortRead until ``reconnect()``)."""
        return self.s is not None

    def reconnect(self, connect_timeout=CONNECT_TIMEOUT):
        """Open a new session with the server (after it went away).

        The new session starts with no invalidations pending: whatever
        other clients committed while this one was cut off is not
        reported, so a Connection must forget every loaded state (its
        ``forget_loaded_states()``).  Oids reserved in the old session
        and records of an unfinished commit are dropped.  Raises
        ServerUnreachableError (and stays disconnected) while nobody
        listens."""
        self._disconnect()
        self.oid_pool = []
        self.transaction_oids = []
        self.records = []
        self.prefetcher.forget_records()
        self._one_step_skip = self._one_step_backoff = 0
        self._open(connect_timeout, self._asked_protocol)

    def _connect(self, connect_timeout, version):
        """Connect and ask for protocol ``version``; ``self.version`` is
        then the server's answer (the connection is closed unless it is
        ``version``)."""
        self.protocol = ClientConnection()
        self._late_peeks = 0
        try:
            sock = self.address.get_connected_socket(timeout=connect_timeout)
        except OSError as error:
            raise ServerUnreachableError(
                'cannot reach a storage server at %s: %s'
                % (self.address, error.strerror or error)) from None
        if sock is None:
            raise ServerUnreachableError(
                'no storage server is running at %s (start one with '
                '"durus -s")' % self.address)
        # A peer that is not a Durus server may never answer: don't wait
        # the long read timeout for the handshake.
        sock.settimeout(connect_timeout)
        self._recv_size = RECV_SIZE
        if self.ssl_context is not None:
            sock = self._start_tls(sock)
            # One TLS record per recv: asking for more only allocates more.
            self._recv_size = TLS_RECORD_SIZE
        self.s = sock
        self._io_timeout = connect_timeout
        try:
            self.version = self._call(Version(version)).protocol
        except ShortRead as error:
            if self.ssl_context is None:
                raise ShortRead('%s (a server at its connection limit closes '
                                'new connections at once: see its log; if '
                                'that server uses TLS, connect with a TLS '
                                'context: ssl_context=, durus-shell '
                                '--tls-ca)' % error) from None
            raise ShortRead('%s (if that server requires client '
                            'certificates, give one this CA trusts: '
                            'durus-shell --tls-cert/--tls-key)'
                            % error) from None
        if self.version >> 24 in _TLS_RECORD_TYPES:
            self._disconnect()
            raise ProtocolError(
                'the server at %s speaks TLS: connect with a TLS context '
                '(ssl_context=, durus-shell --tls-ca)' % self.address)
        if self.version != version:
            self._disconnect()

    def _start_tls(self, sock):
        try:
            sock = self.ssl_context.wrap_socket(
                sock, server_hostname=self.server_hostname)
        except ssl.SSLCertVerificationError as error:
            sock.close()
            raise ProtocolError(
                'TLS: the server at %s has a certificate this client does '
                'not trust: %s' % (self.address, error.verify_message or
                                   error)) from None
        except (OSError, ValueError) as error:
            sock.close()
            raise ProtocolError(
                'TLS handshake with the server at %s failed: %s (does it '
                'use TLS? start it with --tls-cert and --tls-key; with '
                '--tls-client-ca it also needs a client certificate)'
                % (self.address, ' '.join(str(error).split()))) from None
        return sock

    def _authenticate(self, user, secret):
        binding = None
        if self.ssl_context is not None:
            binding = certificate_binding(self.s.getpeercert(True))
        scram = ScramClient(user, secret, binding)
        try:
            server_first = self._call(Auth(scram.first())).message
            server_final = self._call(Auth(scram.final(server_first))).message
            self.role = scram.verify(server_final)
        except ServerRefusedError as error:
            raise AuthenticationError(
                'the storage server at %s refused user %s: %s'
                % (self.address, user, str(error).rpartition(': ')[2])
            ) from None
        except AuthenticationError as error:
            self._disconnect()
            raise AuthenticationError('storage server at %s: %s'
                                      % (self.address, error)) from None

    def __str__(self):
        return 'ClientStorage(%s)' % (self.address,)

    # Talking to the server ---------------------------------------------

    def _send(self, request):
        if self.s is None:
            raise ShortRead('the connection to the storage server at %s is '
                            'closed' % self.address)
        self._send_bytes(self.protocol.send(request))

    def _send_bytes(self, data):
        try:
            self.s.sendall(data)
        except OSError as error:
            # A server refusing an oversized request says why, then
            # hangs up while we are still sending: look for its reason.
            refusal = self._refusal_after_failed_send()
            self._disconnect()
            if refusal is not None:
                raise refusal from None
            raise ShortRead('lost the connection to the storage server at '
                            '%s: %s' % (self.address, error)) from None

    def _refusal_after_failed_send(self):
        """The ServerRefusedError the server sent before it closed, if
        it can be read at once, else None."""
        try:
            self.s.settimeout(REFUSAL_READ_TIMEOUT)
            self._io_timeout = REFUSAL_READ_TIMEOUT
            self._receive()
        except ServerRefusedError as refusal:
            return refusal
        except (OSError, ProtocolError):
            pass
        return None

    def _receive(self, deadline=None):
        """The next reply.  With a ``deadline`` (``time.monotonic()``),
        raises _Late when it has not arrived by then (the connection stays
        usable: what arrives later is kept for the parser)."""
        protocol = self.protocol
        while True:
            # Nothing received yet (the usual case right after a send):
            # only reading can help, so skip parsing nothing.
            if not protocol.buffered():
                reply = NEED_DATA
            else:
                try:
                    reply = protocol.next_event()
                except ProtocolError as error:
                    self._disconnect()
                    raise type(error)('storage server at %s: %s'
                                      % (self.address, error)) from None
            if type(reply) is ErrorReply:
                self._disconnect()
                what = _REQUEST_NAMES.get(type(protocol.refused), 'request')
                raise ServerRefusedError(
                    'the storage server at %s refused the %s: %s'
                    % (self.address, what, reply.reason or
                       'it gave no reason (protocol 1)'))
            if type(reply) is DeniedReply:
                raise PermissionDeniedError(
                    'the storage server at %s: %s'
                    % (self.address, reply.reason))
            if type(reply) is PendingInvalidations and self._late_peeks:
                # The answer to a peek that gave up waiting: nobody wants
                # it now.
                self._late_peeks -= 1
                continue
            if reply is not NEED_DATA:
                return reply
            protocol.receive_data(self._read_more(deadline))  # copies it

    def _read_more(self, deadline=None):
        """What the server sent next (at least one byte); raises as
        ``_receive`` says."""
        try:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Late()
                _set_io_timeout(self.s, left)
            # Into one buffer kept for the connection: a fresh 256 KiB
            # bytes object per reply costs an mmap, mremap and munmap.
            # (A socket-like object of a SocketAddress subclass, or TLS,
            # has recv: one TLS record at a time.)
            sock = self.s
            if type(sock) is socket.socket:
                data = self._recv_view[:sock.recv_into(self._recv_buffer)]
            else:
                data = sock.recv(self._recv_size)
        except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
            if deadline is not None:
                raise _Late() from None
            waited = self._io_timeout
            self._disconnect()
            raise ServerUnreachableError(
                'the storage server at %s did not answer within %s s'
                % (self.address, waited)) from None
        except OSError as error:
            self._disconnect()
            raise ShortRead('lost the connection to the storage server '
                            'at %s: %s' % (self.address, error)) from None
        if not data:
            self._disconnect()
            raise ShortRead('the storage server at %s closed the '
                            'connection' % self.address)
        return data

    def _call(self, request):
        self.requests += 1
        self._send(request)
        return self._receive()

    def _commit_all(self, records):
        """``_call(CommitAll(records))``, the usual case (a lone reply
        with no invalidations, in one recv) without the general loop."""
        protocol = self.protocol
        if self.s is None or protocol.buffered():
            return self._call(CommitAll(records))
        self.requests += 1
        self._send_bytes(protocol.send_commit_all(records))
        reply = protocol.receive_commit_all_reply(self._read_more())
        if reply is None:
            return self._receive()
        return reply

    def _disconnect(self):
        sock, self.s = self.s, None
        # Wrapped sockets and test doubles may have no close().
        close = getattr(sock, 'close', None)
        if close is not None:
            close()

    # The Storage contract ----------------------------------------------

    def _require(self, needed, what):
        role = self.role
        if role is not None and not role_allows(role, needed):
            raise PermissionDeniedError(
                'user %s of the storage server at %s has the role %s, which '
                'does not allow %s' % (self.user, self.address, role, what))

    def new_oid(self):
        self._require(WRITE, 'commits')
        if not self.oid_pool:
            oids = self._call(NewOids(self.oid_pool_size)).oids
            self.oid_pool = sorted(oids, reverse=True)
        oid = self.oid_pool.pop()
        self.transaction_oids.append(oid)
        return oid

    def _give_back_oids(self):
        self.oid_pool.extend(self.transaction_oids)
        self.oid_pool.sort(reverse=True)
        self.transaction_oids = []

    @staticmethod
    def _record(oid, reply):
        status = reply.status
        if status == STATUS_OKAY:
            return reply.record
        if status == STATUS_KEYERROR:
            raise DurusKeyError(oid)
        if status == STATUS_INVALID:
            raise ReadConflictError([oid])
        raise ProtocolError('unexpected load status %r' % (status,))

    def load(self, oid):
        check_oid(oid)
        prefetcher = self.prefetcher
        record = prefetcher.take(oid)
        if record is None:
            siblings = prefetcher.siblings_to_fetch_with(oid)
            if siblings:
                replies = self._call(BulkLoad([oid] + siblings)).replies
                for sibling, reply in zip(siblings, replies[1:]):
                    if reply.status == STATUS_OKAY:
                        prefetcher.keep(sibling, reply.record)
                record = self._record(oid, replies[0])
            else:
                record = self._record(oid, self._call(Load(oid)))
        prefetcher.note_record(oid, record)
        return record

    def bulk_load(self, oids):
        """The records of ``oids`` in order.  All replies are read before
        the first missing or invalidated oid raises, so the connection
        stays in step."""
        oids = list(oids)
        for oid in oids:
            check_oid(oid)
        replies = []
        for start in range(0, len(oids), MAX_BULK_OIDS):
            replies += self._call(
                BulkLoad(oids[start:start + MAX_BULK_OIDS])).replies
        for oid, reply in zip(oids, replies):
            yield self._record(oid, reply)

    def begin(self):
        self.records = []
        self.transaction_oids = []

    def store(self, oid, record):
        if type(oid) is not bytes or len(oid) != 8:
            check_oid(oid)      # raises, naming the oid
        self.records.append((oid, record))

    def end(self, handle_invalidations=None):
        records = self.records
        if records and self.role is not None:
            self._require(WRITE, 'commits')
        self.records = []
        self.prefetcher.forget_records()
        if self._one_step_skip:
            self._one_step_skip -= 1
        elif records and self.version >= EXTENDED_PROTOCOL_VERSION:
            reply = self._commit_all(records)
            if reply.status == STATUS_RETRY:
                # The 'R' delivered what stood in the way: unless one of
                # those was a conflict, only a commit of the last round
                # trip can stop one step again (the protocol-1 way would
                # hold the commit lock, and so every other committer,
                # over a round trip).
                self._take_retry(reply, handle_invalidations)
                reply = self._commit_all(records)
            status = reply.status
            if status == STATUS_OKAY:
                self._one_step_backoff = 0
                self.transaction_oids = []
                return
            if status != STATUS_RETRY:
                self._one_step_backoff = 0
                self._commit_status(status, records)
                return
            # 'R' twice in a row: others keep committing what this
            # client holds.  Take the lock before sending the records
            # (the protocol-1 way), and for the next commits too.
            self._take_retry(reply, handle_invalidations)
            self._back_off_one_step()
        oids = self._call(CommitStart()).oids
        if oids and handle_invalidations is not None:
            try:
                handle_invalidations(oids)
            except BaseException:
                # Back out so the connection stays usable, then re-raise.
                self._give_back_oids()
                self._send(CommitBackOut())
                raise
        if not records:
            self._send(CommitBackOut())
            self.transaction_oids = []
            return
        self._commit_status(self._call(CommitData(records)).status, records)

    def _take_retry(self, reply, handle_invalidations):
        """Hand the invalidations of an 'R' to the connection; one that
        is a conflict raises (nothing is open on the server), and the
        next commits go the protocol-1 way."""
        if reply.oids and handle_invalidations is not None:
            try:
                handle_invalidations(reply.oids)
            except BaseException:
                self._give_back_oids()
                self._back_off_one_step()
                raise

    def _back_off_one_step(self):
        """The next 1, 2, 4, ... 64 commits (doubling while this goes
        on) skip the one-step attempt."""
        self._one_step_backoff = min(64, 2 * self._one_step_backoff or 1)
        self._one_step_skip = self._one_step_backoff

    def _commit_status(self, status, records):
        if status == STATUS_OKAY:
            self.transaction_oids = []
            return
        if status == STATUS_INVALID:
            self._give_back_oids()
            raise WriteConflictError([oid for oid, _ in records])
        self._disconnect()
        raise ProtocolError('storage server at %s answered a commit with %r'
                            % (self.address, status))

    def sync(self):
        self.prefetcher.forget_records()
        return self._call(Sync()).oids

    def pending_changes(self, limit=100, timeout=1.0):
        """What other clients committed since this client's last sync
        (or commit), without taking it: ``PendingChanges`` with the
        number of changed objects and at most ``limit`` of their oids.
        The invalidations stay pending, so conflicts are detected exactly
        as if nobody had asked.  One round trip; None when the server
        cannot tell (Durus 4.3, or a server of this project older than
        protocol 4), when disconnected, or when the answer did not come
        within ``timeout`` seconds (it is then skipped when it arrives).
        """
        if self.s is None or self.version not in PEEK_VERSIONS:
            return None
        limit = max(0, min(int(limit), MAX_PEEK_OIDS))
        self.requests += 1
        self._send(PeekInvalidations(limit))
        try:
            reply = self._receive(deadline=time.monotonic() + timeout)
        except _Late:
            self._late_peeks += 1
            return None
        finally:
            if self.s is not None:
                _set_io_timeout(self.s, self._io_timeout)
        return PendingChanges(reply.count, reply.oids)

    def pack(self):
        self._require(ADMIN, 'packing')
        status = self._call(Pack()).status
        if status != STATUS_OKAY:
            self._disconnect()
            raise ProtocolError('storage server at %s answered a pack with '
                                '%r' % (self.address, status))

    def stop_server(self):
        """Ask the server to stop ('Q'; an admin's request), then close."""
        self._require(ADMIN, 'stopping the server')
        try:
            self._send(Quit())
        finally:
            self._disconnect()

    def close(self):
        """End the session ('.') and close the socket."""
        self.prefetcher.forget_records()
        if self.s is None:
            return
        try:
            self.s.sendall(self.protocol.send(Goodbye()))
        except (OSError, ProtocolError):
            pass
        self._disconnect()


class _Late(Exception):
    """A reply did not come by its deadline (``pending_changes``)."""


# The protocol asked for next when a server does not know one.
_ASKED_ORDER = {PEEK_PROTOCOL_VERSION: EXTENDED_PROTOCOL_VERSION,
                EXTENDED_PROTOCOL_VERSION: PROTOCOL_VERSION,
                PROTOCOL_VERSION: PROTOCOL_VERSION}


def _set_io_timeout(sock, timeout):
    """Make blocking reads and writes give up after ``timeout`` seconds.

    The kernel's SO_RCVTIMEO/SO_SNDTIMEO keep the socket in plain
    blocking mode: Python's own socket timeout would add a poll() system
    call before every recv and send.  On timeout the call fails with
    EAGAIN (BlockingIOError).
    """
    if timeout is None:
        sock.settimeout(None)
        return
    seconds = int(timeout)
    value = struct.pack('ll', seconds, int((timeout - seconds) * 1e6))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    except (OSError, AttributeError):
        sock.settimeout(timeout)
        return
    sock.settimeout(None)


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
from durus.error import ConflictError  # noqa: E402,F401
from durus.serialize import split_oids  # noqa: E402,F401
from durus.utils import (  # noqa: E402,F401
    as_bytes, int4_to_str, iteritems, join_bytes, read, read_int4, write, write_all,
    write_int4, write_int4_str)


def __getattr__(name):
    # StorageServer too, imported only when asked for: clients need not
    # load the server.
    if name == 'StorageServer':
        from durus.storage_server import StorageServer
        return StorageServer
    raise AttributeError('module %r has no attribute %r' % (__name__, name))


def __dir__():
    return sorted(list(globals()) + ['StorageServer'])
