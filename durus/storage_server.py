"""The storage server: one storage shared by many clients over sockets.

A thin single-threaded, non-blocking ``selectors`` loop around
``durus.server_core.ServerCore``, which holds all the server's logic
(commit lock, group commit, invalidations, oid reservations, pack
scheduling, limits) without sockets or a clock.  This module owns the
sockets and the clock: it turns accepts, received bytes, written bytes,
socket errors and the passing of time into core events, and carries out
the core's actions (send, close, make durable, stop).

Making commits durable (``MakeDurable``): while only one client is
connected, in the loop (nothing else could run meanwhile, and a thread
would add two wake-ups to each commit); with more, in a helper thread,
so that the loop goes on serving loads (of records the running batch did
not write) and taking the next commits into the next batch while the
disk works.  The thread only calls ``make_durable()``; the loop hears of
the result through its wake-up socket and reports it to the core.

Per connection it keeps only what the kernel has not taken yet: the
bytes to write, and how the connection is closing (flushing its last
replies; then, after a refusal, shut down for writing and discarding
what the client still sends for ``LINGER`` seconds, so that closing does
not reset the connection before the client has read why).

TLS (``ssl_context``): each accepted socket is wrapped and its handshake
runs non-blocking inside the loop (one slow handshake holds up nobody);
the session opens once it has finished, and a handshake that fails or
takes longer than ``timeout`` closes the socket with one log line.  On a
Unix socket, ``peer_roles`` (``{uid: role}``) gives a connection of such
a user its role at once (``SO_PEERCRED``), without a secret.
"""

import ctypes
import ctypes.util
import errno
import logging
import selectors
import socket
import ssl
import struct
import threading
import time
from collections import deque

from durus.admission import ConnectionLimits, RefusalLog
from durus.logger import log
from durus.protocol import (
    DEFAULT_MAX_FRAME, PROTOCOL_VERSION, STATUS_INVALID, STATUS_KEYERROR,
    STATUS_OKAY)
from durus.server_core import (
    COMMIT_LOCK_GRACE, GROUP_COMMIT_WINDOW, MAX_BUFFERED, MIN_RATE,
    OUTPUT_LIMIT, TIMEOUT, ClientError, Close, MakeDurable, Send, ServerCore,
    Stop)
from durus.socket_address import (
    DEFAULT_HOST, DEFAULT_PORT, HostPortAddress, InheritedSocket,
    SocketAddress, UnixAbstractAddress, UnixDomainSocketAddress)
from durus.utils import int4_to_str

__all__ = [
    'StorageServer', 'SocketAddress', 'HostPortAddress',
    'UnixDomainSocketAddress', 'UnixAbstractAddress', 'InheritedSocket',
    'wait_for_server', 'ClientError', 'STATUS_OKAY', 'STATUS_KEYERROR',
    'STATUS_INVALID', 'TIMEOUT', 'DEFAULT_HOST', 'DEFAULT_PORT',
    'DEFAULT_GCBYTES',
]

DEFAULT_GCBYTES = 0
RECV_SIZE = 256 * 1024
TLS_RECORD_SIZE = 16 * 1024   # the most plaintext one TLS record holds
# After refusing a request, how long the server reads and discards what
# the client still sends (so closing does not reset the connection and
# destroy the refusal before the client has read it).
LINGER = 2.0

_WAKEUP = object()
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                ssl.SSLWantWriteError)
# accept() failing for want of descriptors or memory: stop accepting for
# this long (the listener stays readable, so retrying at once would spin).
ACCEPT_PAUSE = 0.5
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                     errno.ENOMEM)
# A closed connection that had buffered this much input: hand freed
# memory back to the system (glibc keeps it otherwise).
TRIM_AFTER = 1024 * 1024


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or None)
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_trim = _malloc_trim()


class _Connection(object):
    """One client socket: its unwritten bytes and how it is closing."""

    __slots__ = ('sock', 'session', 'output', 'mask', 'closing', 'linger',
                 'deadline', 'closed', 'handshaking', 'peer', 'name', 'role',
                 'admitted')

    def __init__(self, sock, session, admitted):
        self.sock = sock
        self.session = session
        self.admitted = admitted   # the peer ConnectionLimits counted
        self.handshaking = False   # TLS handshake in progress
        self.peer = self.name = self.role = None
        self.output = bytearray()
        self.mask = 0
        self.closing = False   # the session is over; flushing, lingering
        self.linger = False
        self.deadline = None   # when a closing connection is closed anyway
        self.closed = False


class GcBytesError(TypeError, AssertionError):
    """StorageServer(gcbytes=...) is not a number (an assert in 4.3)."""


class StorageServer(object):
    """Serve ``storage`` at ``address`` (or ``(host, port)``) until ``Q``
    or ``stop()``; ``serve()`` closes the storage when it returns."""

    protocol = int4_to_str(PROTOCOL_VERSION)

    def __init__(self, storage, host=DEFAULT_HOST, port=DEFAULT_PORT,
                 address=None, gcbytes=DEFAULT_GCBYTES,
                 max_frame=DEFAULT_MAX_FRAME, timeout=TIMEOUT,
                 commit_lock_grace=COMMIT_LOCK_GRACE,
                 group_commit_window=GROUP_COMMIT_WINDOW, users=None,
                 readonly=False, ssl_context=None, tls_binding=None,
                 peer_roles=None, max_buffered=MAX_BUFFERED,
                 min_rate=MIN_RATE, max_connections=None, max_per_peer=None):
        self.storage = storage
        # (checked before anything is opened: a bad value is a clear error)
        self.limits = ConnectionLimits(max_connections, max_per_peer)
        self._refusals = RefusalLog()
        self._accept_failures = RefusalLog()
        self._accept_resume = None   # when accepting starts again
        self.address = SocketAddress.new(address or (host, port))
        if gcbytes is not None and (not isinstance(gcbytes, (int, float))
                                    or isinstance(gcbytes, bool)):
            raise GcBytesError('gcbytes is the number of bytes written '
                               'between automatic packs (0: never), not %r'
                               % (gcbytes,))
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.tls_binding = tls_binding or getattr(
            ssl_context, 'durus_channel_binding', None)
        if ssl_context is not None and self.tls_binding is None:
            raise ValueError('a TLS server needs tls_binding=durus.tls.'
                             'file_binding(certificate file) (or a context '
                             'made by durus.tls.server_context)')
        self.peer_roles = dict(peer_roles or {})
        self.core = ServerCore(
            storage, gcbytes=gcbytes, max_frame=max_frame, timeout=timeout,
            commit_lock_grace=commit_lock_grace,
            group_commit_window=group_commit_window, users=users,
            readonly=readonly, max_buffered=max_buffered, min_rate=min_rate)
        self._connections = {}     # session -> _Connection, while open
        self._handshaking = set()  # _Connections in a TLS handshake
        self._closing = set()      # _Connections flushing or lingering
        self._stopping = False
        self._selector = None
        self._listener = None
        self._wakeup = None
        self._client_count = 0
        self._recv_buffer = bytearray(RECV_SIZE)
        self._recv_view = memoryview(self._recv_buffer)
        # The helper thread for MakeDurable (started when first needed):
        # batches to make durable, and (batch, error) results.
        self._fsync_thread = None
        self._fsync_jobs = deque()
        self._fsync_done = deque()
        self._fsync_wanted = threading.Condition(threading.Lock())

    def __str__(self):
        return 'StorageServer(%s, %s)' % (self.storage, self.address)

    @property
    def clients(self):
        """The connections of the sessions being served."""
        return list(self._connections.values())

    @property
    def commit_holder(self):
        holder = self.core.commit_holder
        return None if holder is None else self._connections.get(holder)

    # The loop --------------------------------------------------------

    def listen(self):
        """Bind and listen now (``serve()`` does it otherwise).  With
        port 0 the address then names the port the system chose."""
        if self._listener is None:
            listener = self.address.get_listening_socket()
            listener.setblocking(False)
            if isinstance(self.address, HostPortAddress):
                self.address.port = listener.getsockname()[1]
            self._listener = listener
        return self._listener

    def serve(self):
        listener = self.listen()
        selector = self._selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, None)
        wake_reader, wake_writer = socket.socketpair()
        wake_reader.setblocking(False)
        wake_writer.setblocking(False)
        self._wakeup = wake_writer
        selector.register(wake_reader, selectors.EVENT_READ, _WAKEUP)
        log(logging.INFO, 'Ready on %s', self.address)
        core = self.core
        try:
            while not self._stopping:
                if (self._accept_resume is not None and
                        time.monotonic() >= self._accept_resume):
                    self._accept_resume = None
                    selector.register(listener, selectors.EVENT_READ, None)
                for key, mask in selector.select(self._select_timeout()):
                    connection = key.data
                    if connection is None:
                        self._accept(listener)
                    elif connection is _WAKEUP:
                        _drain(wake_reader)
                    elif connection.handshaking:
                        self._handshake(connection)
                    else:
                        if mask & selectors.EVENT_WRITE:
                            self._write(connection)
                        if (mask & selectors.EVENT_READ and
                                not connection.closed):
                            self._read(connection)
                if self._fsync_done:
                    self._report_durable()
                now = time.monotonic()
                core.advance(now)
                self._carry_out()
                if self._closing:
                    self._sweep_closing(now)
                if self._handshaking:
                    self._sweep_handshakes(now)
        finally:
            self._shutdown(listener, wake_reader)

    def stop(self):
        """Ask ``serve()`` to return (safe from signal handlers/threads)."""
        self._stopping = True
        wakeup = self._wakeup
        if wakeup is not None:
            try:
                wakeup.send(b'x')
            except OSError:
                pass

    def _select_timeout(self):
        core = self.core
        if core.busy():
            return 0
        deadline = core.next_deadline()
        if self._closing or self._handshaking:
            for connection in self._closing | self._handshaking:
                if deadline is None or connection.deadline < deadline:
                    deadline = connection.deadline
        resume = self._accept_resume
        if resume is not None and (deadline is None or resume < deadline):
            deadline = resume
        if deadline is None:
            return None
        return max(0.0, deadline - time.monotonic())

    def _shutdown(self, listener, wake_reader):
        """Release everything; the storage is closed even if a step fails."""
        self._stopping = True     # a last MakeDurable runs in the loop
        try:
            self._stop_fsync_thread()
            self.core.shutdown(time.monotonic())
            self._carry_out()
            for connection in list(self._closing | self._handshaking):
                self._close_socket(connection)
        finally:
            self._selector.close()
            self.address.close(listener)
            self._listener = None
            wake_reader.close()
            self._wakeup.close()
            self._wakeup = None
            self.storage.close()
        log(logging.INFO, 'Stopped serving %s', self.address)

    def _accept(self, listener):
        # Bounded: each turn takes one waiting connection off the backlog.
        while True:
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except (ConnectionAbortedError, PermissionError):
                continue    # that one is gone (or a firewall refused it)
            except OSError as error:
                self._pause_accepting(listener, error)
                return
            role = None
            if sock.family == getattr(socket, 'AF_UNIX', None):
                uid = _peer_uid(sock)
                peer_host = 'unix uid %s' % uid
                role = self.peer_roles.get(uid)
            else:
                peer_host = peer[0] if isinstance(peer, tuple) else str(peer)
            why = self.limits.admit(peer_host)
            if why is not None:
                sock.close()
                self._log_rate_limited(self._refusals, why)
                continue
            sock.setblocking(False)
            self.address.set_connection_options(sock)
            self._client_count += 1
            name = '#%d %s' % (self._client_count, _peer_name(peer))
            if self.ssl_context is None:
                self._open_session(sock, name, peer_host, role, None,
                                   peer_host)
                continue
            try:
                sock = self.ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError) as error:
                log(logging.WARNING, 'Client %s: TLS setup failed: %s',
                    name, error)
                sock.close()
                self.limits.release(peer_host)
                continue
            connection = _Connection(sock, None, peer_host)
            connection.handshaking = True
            connection.name, connection.peer = name, peer_host
            connection.role = role
            connection.deadline = time.monotonic() + self.timeout
            self._handshaking.add(connection)
            self._handshake(connection)

    def _pause_accepting(self, listener, error):
        """accept() failed for a reason that lasts (out of descriptors or
        memory): stop watching the listener for ACCEPT_PAUSE instead of
        spinning on it; waiting connections stay in the backlog."""
        if error.errno in _OUT_OF_RESOURCES:
            why = ('cannot accept connections: %s; pausing for %s s (lower '
                   '--max-connections, or raise the limit on open files: '
                   'ulimit -n)' % (error.strerror or error, ACCEPT_PAUSE))
        else:
            why = 'accept failed: %s; pausing for %s s' % (error, ACCEPT_PAUSE)
        self._log_rate_limited(self._accept_failures, why)
        if self._accept_resume is None:
            self._selector.unregister(listener)
        self._accept_resume = time.monotonic() + ACCEPT_PAUSE

    @staticmethod
    def _log_rate_limited(refusal_log, why):
        line = refusal_log.refused(why, time.monotonic())
        if line is not None:
            log(*line)

    def _open_session(self, sock, name, peer_host, role, binding, admitted):
        session = self.core.open(name, time.monotonic(), peer=peer_host,
                                 role=role, binding=binding)
        connection = _Connection(sock, session, admitted)
        self._connections[session] = connection
        self._update_interest(connection)
        return connection

    def _handshake(self, connection):
        sock = connection.sock
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._set_mask(connection, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._set_mask(connection, selectors.EVENT_WRITE)
            return
        except (OSError, ValueError) as error:
            hint = ''
            if getattr(error, 'reason', None) in ('WRONG_VERSION_NUMBER',
                                                  'HTTP_REQUEST'):
                hint = ' (a client without TLS?)'
            log(logging.WARNING, 'Client %s: TLS handshake failed: %s%s',
                connection.name, _one_line(error), hint)
            self._close_socket(connection)
            return
        self._handshaking.discard(connection)
        self._set_mask(connection, 0)
        connection.closed = True    # this _Connection is done with
        self._open_session(sock, connection.name, connection.peer,
                           connection.role, self.tls_binding,
                           connection.admitted)

    def _sweep_handshakes(self, now):
        for connection in list(self._handshaking):
            if now >= connection.deadline:
                log(logging.WARNING, 'Client %s: TLS handshake not finished '
                    'within %s s', connection.name, self.timeout)
                self._close_socket(connection)

    def _set_mask(self, connection, mask):
        if mask == connection.mask:
            return
        if connection.mask == 0:
            self._selector.register(connection.sock, mask, connection)
        elif mask == 0:
            self._selector.unregister(connection.sock)
        else:
            self._selector.modify(connection.sock, mask, connection)
        connection.mask = mask

    def _read(self, connection):
        sock = connection.sock
        try:
            if isinstance(sock, ssl.SSLSocket):
                data = self._read_tls(sock)
            else:
                # Into one buffer for all: a fresh 256 KiB bytes object per
                # read costs an mmap, mremap and munmap (the protocol copies).
                data = self._recv_view[:sock.recv_into(self._recv_buffer)]
        except _WOULD_BLOCK:
            return
        except OSError as error:
            if connection.closing:
                self._close_socket(connection)
                return
            self.core.lost(connection.session, 'socket error: %s' % error,
                           time.monotonic())
            self._carry_out()
            return
        if connection.closing:
            # The session is over: what still arrives is discarded.
            if not data:
                self._close_socket(connection)
            return
        self.core.receive(connection.session, data, time.monotonic())
        self._carry_out()
        if not connection.closed:
            self._update_interest(connection)

    def _write(self, connection):
        output = connection.output
        written = 0
        while output:
            try:
                sent = connection.sock.send(output)
            except _WOULD_BLOCK:
                break
            except OSError as error:
                if connection.closing:
                    self._close_socket(connection)
                    return
                self.core.lost(connection.session,
                               'socket error: %s' % error, time.monotonic())
                self._carry_out()
                return
            del output[:sent]
            written += sent
        if connection.closing:
            if not output:
                self._finish_closing(connection)
            return
        if written:
            self.core.flushed(connection.session, written, time.monotonic())
        self._update_interest(connection)

    def _carry_out(self):
        """Carry out the core's actions (which may bring more)."""
        core = self.core
        actions = core.take_actions()
        while actions:
            for action in actions:
                kind = type(action)
                if kind is Send:
                    # (None if a socket error closed it meanwhile)
                    connection = self._connections.get(action.session)
                    if connection is not None:
                        if connection.output:
                            connection.output += action.data
                        else:   # the core hands the buffer over
                            connection.output = action.data
                        self._write(connection)
                elif kind is Close:
                    self._close(action)
                elif kind is MakeDurable:
                    self._make_durable(action.batch)
                elif kind is Stop:
                    self.stop()
            actions = core.take_actions()

    def _make_durable(self, batch):
        if len(self.core.sessions) > 1 and not self._stopping:
            self._start_fsync(batch)
            return
        try:
            self.storage.make_durable()
        except Exception as error:
            self.core.durable(batch, time.monotonic(), error)
        else:
            self.core.durable(batch, time.monotonic())

    def _start_fsync(self, batch):
        """Hand the batch to the helper thread (the core starts no
        other MakeDurable before this one is reported)."""
        if self._fsync_thread is None:
            self._fsync_thread = threading.Thread(
                target=self._fsync_worker, name='durus-fsync', daemon=True)
            self._fsync_thread.start()
        with self._fsync_wanted:
            self._fsync_jobs.append(batch)
            self._fsync_wanted.notify()

    def _fsync_worker(self):
        jobs = self._fsync_jobs
        while True:
            with self._fsync_wanted:
                while not jobs:
                    self._fsync_wanted.wait()
                batch = jobs.popleft()
            if batch is None:
                return
            error = None
            try:
                self.storage.make_durable()
            except BaseException as failure:   # reported to the core
                error = failure
            self._fsync_done.append((batch, error))
            try:
                self._wakeup.send(b'd')
            except (OSError, AttributeError):
                pass    # the loop is stopping; it collects the result

    def _report_durable(self):
        done = self._fsync_done
        while done:
            batch, error = done.popleft()
            self.core.durable(batch, time.monotonic(), error)
        self._carry_out()

    def _stop_fsync_thread(self):
        """Wait for a running MakeDurable and report it; end the thread."""
        thread = self._fsync_thread
        if thread is None:
            return
        with self._fsync_wanted:
            self._fsync_jobs.append(None)
            self._fsync_wanted.notify()
        thread.join()
        self._fsync_thread = None
        self._report_durable()

    def _close(self, action):
        connection = self._connections.pop(action.session, None)
        if connection is None or connection.closed:
            return
        if not action.flush:
            connection.output = bytearray()
            self._close_socket(connection)
            return
        connection.closing = True
        connection.linger = action.linger
        connection.deadline = time.monotonic() + self.timeout
        self._closing.add(connection)
        if connection.output:
            self._update_interest(connection)
        else:
            self._finish_closing(connection)

    def _finish_closing(self, connection):
        """Its last bytes are written: close, or linger first."""
        if not connection.linger:
            self._close_socket(connection)
            return
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close_socket(connection)
            return
        connection.linger = False
        connection.deadline = time.monotonic() + LINGER
        self._update_interest(connection)

    @staticmethod
    def _read_tls(sock):
        """TLS gives at most one record (16 KiB) per recv (asking for
        more only makes it allocate more).  A shorter record is all of a
        small request: return it (the ssl module reads no further ahead
        than the record, so the selector sees anything else).  Full
        records are part of a large request: take those that are ready,
        up to RECV_SIZE."""
        data = sock.recv(TLS_RECORD_SIZE)
        if len(data) < TLS_RECORD_SIZE:
            return data
        parts = [data]
        total = len(data)
        while total < RECV_SIZE:
            try:
                more = sock.recv(TLS_RECORD_SIZE)
            except _WOULD_BLOCK:
                break
            if not more:
                break
            parts.append(more)
            total += len(more)
        return b''.join(parts)

    def _close_socket(self, connection):
        if connection.closed:
            return
        connection.closed = True
        self._handshaking.discard(connection)
        session = connection.session
        if (_trim is not None and session is not None and
                session.buffer_size_peak >= TRIM_AFTER):
            _trim(0)
        self._closing.discard(connection)
        self._connections.pop(connection.session, None)
        if connection.mask:
            self._selector.unregister(connection.sock)
        connection.mask = 0
        connection.sock.close()
        if connection.admitted is not None:
            self.limits.release(connection.admitted)

    def _sweep_closing(self, now):
        for connection in list(self._closing):
            if now >= connection.deadline:
                self._close_socket(connection)

    def _update_interest(self, connection):
        if connection.closed:
            return
        mask = 0
        if connection.closing:
            if not connection.output:
                mask = selectors.EVENT_READ    # lingering: discard
        elif self.core.wants_input(connection.session):
            mask = selectors.EVENT_READ
        if connection.output:
            mask |= selectors.EVENT_WRITE
        if mask == connection.mask:
            return
        if connection.mask == 0:
            self._selector.register(connection.sock, mask, connection)
        elif mask == 0:
            self._selector.unregister(connection.sock)
        else:
            self._selector.modify(connection.sock, mask, connection)
        connection.mask = mask


def _drain(sock):
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _one_line(error):
    return ' '.join(str(error).split()) or type(error).__name__


def _peer_uid(sock):
    """The uid of the process at the other end of a Unix socket."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                              struct.calcsize('3i'))
    except (OSError, AttributeError):
        return None
    return struct.unpack('3i', raw)[1]


def _peer_name(peer):
    if isinstance(peer, tuple) and len(peer) >= 2:
        return '%s:%s' % peer[:2]
    return 'unix'


def wait_for_server(host=DEFAULT_HOST, port=DEFAULT_PORT, maxtries=300,
                    sleeptime=2, address=None):
    """Return once a server accepts connections at the address;
    ``SystemExit`` after ``maxtries`` attempts."""
    address = SocketAddress.new(address or (host, port))
    for attempt in range(maxtries):
        try:
            sock = address.get_connected_socket(timeout=sleeptime or None)
        except OSError:
            sock = None
        if sock is not None:
            sock.close()
            return
        if attempt + 1 < maxtries:
            time.sleep(sleeptime)
    raise SystemExit('No storage server answered at %s after %d attempts'
                     % (address, maxtries))


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
from durus.error import ConflictError, ReadConflictError  # noqa: E402,F401
from durus.logger import is_logging  # noqa: E402,F401
from durus.serialize import extract_class_name, split_oids  # noqa: E402,F401
from durus.systemd_socket import get_systemd_socket  # noqa: E402,F401
from durus.utils import (  # noqa: E402,F401
    as_bytes, join_bytes, read, read_int4, read_int4_str, str_to_int4,
    str_to_int8, write, write_all, write_int4_str)
