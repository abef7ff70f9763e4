"""The storage server: one storage shared by many clients over sockets.

The server is a single-threaded, non-blocking ``selectors`` loop.  Each
connection has an input buffer parsed by ``durus.protocol`` and an
output buffer; the loop executes one complete request at a time, so a
commit is atomic with respect to every other client, and no client can
make the others wait by sending half a request.

Per-client state (docs/protocol.md):

* ``invalid``: oids this client must hear about (other clients' commits,
  oids a pack removed); answered ``I`` on load, delivered and cleared by
  ``S`` and by the first step of ``C``.
* ``unused_oids``: oids handed out by ``N``/``M`` and not yet committed;
  another client committing one of them is disconnected.

The commit exchange (``C``, invalidation list, then payload or back-out)
spans two round trips.  So that no other commit slips in between the
list a client checked and the payload it sends, the client holds the
*commit lock* meanwhile; other clients' ``C`` wait for it.  A holder
that takes longer than ``COMMIT_LOCK_GRACE`` seconds while others wait
loses the lock: the others go ahead, and its payload is then answered
``I`` (a conflict: the client aborts and retries) if any commit landed
after its list.

A client that breaks the protocol (unknown command, absurd length,
malformed commit, commit of an oid reserved by another client, commit
refused by the storage, stalled mid-request for ``TIMEOUT`` seconds) is
disconnected with a logged reason; the server carries on.
"""

import logging
import selectors
import socket
import time
from collections import deque

from durus.error import ConflictError, ProtocolError, ReadConflictError
from durus.logger import log
from durus.protocol import (
    CLOSED, DEFAULT_MAX_FRAME, NEED_DATA, PROTOCOL_VERSION, STATUS_INVALID,
    STATUS_KEYERROR, STATUS_OKAY, STATUS_RETRY, SUPPORTED_VERSIONS, BulkLoad,
    BulkLoadReply, CommitAll, CommitAllReply, CommitBackOut, CommitData,
    CommitStart, ConnectionClosed, Goodbye, Invalidations, Load, LoadReply,
    NewOid, NewOids, Oids, Pack, Quit, ServerConnection, Status, Sync,
    Version, VersionReply)
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

TIMEOUT = 10
DEFAULT_GCBYTES = 0
COMMIT_LOCK_GRACE = 1.0
GROUP_COMMIT_WINDOW = 0.002
RECV_SIZE = 256 * 1024
OUTPUT_LIMIT = 8 * 1024 * 1024   # stop reading a client that doesn't read
SWEEP_INTERVAL = 1.0
# After refusing a request, how long the server reads and discards what
# the client still sends (so closing does not reset the connection and
# destroy the refusal before the client has read it).
LINGER = 2.0

_WAKEUP = object()


class ClientError(ProtocolError):
    """A client broke the rules, or its request cannot be carried out;
    the server refuses it and disconnects.  ``reason``, if given, is
    what the client is told (the message is what the log says)."""

    def __init__(self, message, reason=None):
        ProtocolError.__init__(self, message)
        self.reason = reason or message


class _Client(object):
    """What the server knows about one connection."""

    def __init__(self, sock, name, max_frame, now):
        self.sock = sock
        self.name = name
        self.protocol = ServerConnection(max_frame)
        self.invalid = set()
        self.unused_oids = set()
        self.output = bytearray()
        self.last_activity = now
        self.mask = 0
        self.closed = False
        self.waiting = None        # a CommitStart waiting for the lock
        self.throttled = False     # requests held back: output too large
        self.held_from = None      # output from here waits for the fsync
        self.closing = None        # (reason, level): close once flushed
        self.linger_until = None   # refused: discarding input until then
        self.lock_since = None
        self.lock_revoked = False
        self.commit_seq = 0        # server.commit_seq when its list went out


class StorageServer(object):
    """Serve ``storage`` at ``address`` (or ``(host, port)``) until ``Q``
    or ``stop()``; ``serve()`` closes the storage when it returns."""

    protocol = int4_to_str(PROTOCOL_VERSION)

    def __init__(self, storage, host=DEFAULT_HOST, port=DEFAULT_PORT,
                 address=None, gcbytes=DEFAULT_GCBYTES,
                 max_frame=DEFAULT_MAX_FRAME, timeout=TIMEOUT,
                 commit_lock_grace=COMMIT_LOCK_GRACE,
                 group_commit_window=GROUP_COMMIT_WINDOW):
        self.storage = storage
        self.address = SocketAddress.new(address or (host, port))
        self.gcbytes = gcbytes or 0
        self.max_frame = max_frame
        self.timeout = timeout
        self.commit_lock_grace = commit_lock_grace
        self.group_commit_window = group_commit_window
        # Group commit needs a storage that can defer its fsync.
        self._end_deferred = getattr(storage, 'end_deferred', None)
        self._make_durable = getattr(storage, 'make_durable', None)
        if self._make_durable is None or not group_commit_window:
            self._end_deferred = None
        self._dirty_since = None   # when the oldest un-fsynced commit ended
        self.clients = set()
        self._lingering = set()   # refused clients, closing
        self.packer = None
        self.bytes_since_pack = 0
        self.commit_seq = 0
        self.commit_holder = None
        self.commit_waiters = deque()
        self._runnable = deque()
        self._stopping = False
        self._selector = None
        self._listener = None
        self._wakeup = None
        self._next_sweep = 0
        self._client_count = 0
        self._handlers = {
            Version: self.handle_V, Load: self.handle_L,
            BulkLoad: self.handle_B, NewOid: self.handle_N,
            NewOids: self.handle_M, CommitStart: self.handle_C,
            CommitData: self.handle_commit_data, CommitAll: self.handle_A,
            CommitBackOut: self.handle_back_out, Sync: self.handle_S,
            Pack: self.handle_P, Quit: self.handle_Q,
            Goodbye: self.handle_goodbye, ConnectionClosed: self.handle_goodbye,
        }

    def __str__(self):
        return 'StorageServer(%s, %s)' % (self.storage, self.address)

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
        try:
            while not self._stopping:
                for key, mask in selector.select(self._select_timeout()):
                    client = key.data
                    if client is None:
                        self._accept(listener)
                    elif client is _WAKEUP:
                        _drain(wake_reader)
                    else:
                        if mask & selectors.EVENT_WRITE:
                            self._flush(client)
                        if mask & selectors.EVENT_READ and not client.closed:
                            self._receive(client)
                self._run_runnable()
                if self._dirty_since is not None:
                    self._group_fsync_if_due()
                if self.packer is not None:
                    self._step_packer()
                self._sweep(time.monotonic())
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
        if self._runnable or self.packer is not None:
            return 0
        if self._dirty_since is not None:
            return max(0.0, self._dirty_since + self.group_commit_window -
                       time.monotonic())
        if not self.clients and not self._lingering:
            return None
        timeout = SWEEP_INTERVAL
        holder = self.commit_holder
        if holder is not None and self.commit_waiters:
            timeout = min(timeout, max(0.0, holder.lock_since +
                                       self.commit_lock_grace -
                                       time.monotonic()))
        return timeout

    def _group_fsync_if_due(self):
        """Make the batch of commits durable, then release held replies.

        The batch grows while the commit lock passes from client to
        client; it is closed when nobody holds the lock or the window is
        over.
        """
        if (self.commit_holder is not None and time.monotonic() -
                self._dirty_since < self.group_commit_window):
            return
        self._dirty_since = None
        try:
            self._make_durable()
        except Exception as error:
            log(logging.CRITICAL, 'Making commits durable failed: %s: %s',
                type(error).__name__, error)
            for client in list(self.clients | self._lingering):
                if client.held_from is not None:
                    self._drop(client, 'its commit may not be durable',
                               logging.ERROR)
            return
        for client in list(self.clients | self._lingering):
            if client.held_from is not None:
                client.held_from = None
                self._flush(client)

    def _shutdown(self, listener, wake_reader):
        """Release everything; the storage is closed even if a step fails."""
        try:
            if self._dirty_since is not None:
                self._dirty_since = None
                self._make_durable()
            for client in list(self.clients) + list(self._lingering):
                self._drop(client, 'server is stopping', logging.DEBUG)
            if self.packer is not None:
                self.packer.close()
                self.packer = None
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
        while True:
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log(logging.ERROR, 'accept failed: %s', error)
                return
            sock.setblocking(False)
            self.address.set_connection_options(sock)
            self._client_count += 1
            name = '#%d %s' % (self._client_count, _peer_name(peer))
            client = _Client(sock, name, self.max_frame, time.monotonic())
            self.clients.add(client)
            self._update_interest(client)
            log(logging.DEBUG, 'Client %s connected', name)

    def _receive(self, client):
        try:
            data = client.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._drop(client, 'socket error: %s' % error, logging.INFO)
            return
        if client.linger_until is not None:
            if not data:
                self._drop(client, 'it was refused', logging.DEBUG)
            return
        client.last_activity = time.monotonic()
        client.protocol.receive_data(data)
        self._serve_client(client)

    def _serve_client(self, client):
        """Execute the client's complete requests, one at a time."""
        protocol = client.protocol
        handlers = self._handlers
        try:
            while (not client.closed and client.waiting is None and
                   client.linger_until is None):
                if len(client.output) >= OUTPUT_LIMIT:
                    client.throttled = True
                    break
                request = protocol.next_event()
                if request is NEED_DATA:
                    break
                reply = handlers[type(request)](client, request)
                if reply is not None:
                    self._queue(client, protocol.send(reply))
                if protocol.state == CLOSED:
                    if not client.closed:
                        self._close_when_flushed(client)
                    break
        except ProtocolError as error:
            self._refuse(client, str(error), getattr(error, 'reason', None),
                         logging.WARNING)
        except Exception as error:
            log(logging.ERROR, 'Client %s: unexpected %s', client.name,
                type(error).__name__, exc_info=True)
            self._refuse(client, '%s: %s' % (type(error).__name__, error),
                         None, logging.ERROR)
        if not client.closed:
            self._flush(client)

    def _queue(self, client, data, urgent=False):
        """Append a reply; while commits await their group fsync, replies
        (which may show their data) are held until it is done."""
        if (self._dirty_since is not None and not urgent and
                client.held_from is None):
            client.held_from = len(client.output)
        client.output += data

    def _flush(self, client):
        output = client.output
        while output and client.held_from != 0:
            try:
                if client.held_from is None:
                    sent = client.sock.send(output)
                else:
                    sent = client.sock.send(
                        memoryview(output)[:client.held_from])
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                self._drop(client, 'socket error: %s' % error, logging.INFO)
                return
            del output[:sent]
            if client.held_from is not None:
                client.held_from -= sent
            client.last_activity = time.monotonic()
        if not output and client.closing is not None:
            if client.linger_until is None:
                self._drop(client, *client.closing)
                return
            try:
                client.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._drop(client, 'it was refused', logging.DEBUG)
                return
            client.closing = None
        self._update_interest(client)
        if client.throttled and len(output) < OUTPUT_LIMIT:
            client.throttled = False
            self._runnable.append(client)

    def _update_interest(self, client):
        if client.closed:
            return
        mask = 0
        if (client.waiting is None and client.closing is None and
                len(client.output) < OUTPUT_LIMIT):
            mask = selectors.EVENT_READ
        if client.output and client.held_from != 0:
            mask |= selectors.EVENT_WRITE
        if mask == client.mask:
            return
        if client.mask == 0:
            self._selector.register(client.sock, mask, client)
        elif mask == 0:
            self._selector.unregister(client.sock)
        else:
            self._selector.modify(client.sock, mask, client)
        client.mask = mask

    def _close_when_flushed(self, client):
        if client.closing is None:
            client.closing = ('closed the connection', logging.DEBUG)
        self._flush(client)

    def _run_runnable(self):
        while self._runnable:
            client = self._runnable.popleft()
            if not client.closed:
                self._serve_client(client)

    def _refuse(self, client, reason, client_reason, level):
        """Tell the client why it is dropped (where its reply can say
        so), then close once that is sent; meanwhile it is no longer
        served, holds no lock and is read only to discard."""
        if client.closed or client.linger_until is not None:
            return
        log(level, 'Client %s disconnected: %s', client.name, reason)
        self._queue(client, client.protocol.refuse(client_reason or reason))
        client.linger_until = time.monotonic() + LINGER
        client.closing = (reason, logging.DEBUG)
        self.clients.discard(client)
        self._lingering.add(client)
        if self.commit_holder is client:
            self._release_commit_lock(client)
        client.waiting = None
        self._flush(client)

    def _drop(self, client, reason, level):
        if client.closed:
            return
        if client.linger_until is None:
            log(level, 'Client %s disconnected: %s', client.name, reason)
        self._lingering.discard(client)
        client.closed = True
        self.clients.discard(client)
        if self.commit_holder is client:
            self._release_commit_lock(client)
        if client.mask:
            self._selector.unregister(client.sock)
        client.mask = 0
        client.output = bytearray()
        client.sock.close()

    def _sweep(self, now):
        """Revoke an overdue commit lock; drop clients stalled mid-request."""
        holder = self.commit_holder
        if (holder is not None and self.commit_waiters and
                now - holder.lock_since >= self.commit_lock_grace):
            log(logging.INFO, 'Client %s held the commit lock for %.1f s; '
                'letting others commit', holder.name, now - holder.lock_since)
            holder.lock_revoked = True
            self._release_commit_lock(holder)
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        for client in list(self._lingering):
            if now >= client.linger_until:
                self._drop(client, 'it was refused', logging.DEBUG)
        for client in list(self.clients):
            if ((client.protocol.in_frame() or client.output) and
                    now - client.last_activity > self.timeout):
                self._drop(client, 'stalled for %d s in the middle of a '
                           'request' % self.timeout, logging.WARNING)

    # Invalidations, oids and the commit lock ---------------------------

    def _invalidate(self, oids, except_client=None):
        for client in self.clients:
            if client is not except_client:
                client.invalid.update(oids)

    def _take_invalidations(self, client):
        self._invalidate(self.storage.sync())
        oids = list(client.invalid)
        client.invalid.clear()
        return Invalidations(oids)

    def _new_oids(self, client, count):
        oids = []
        clients = self.clients
        while len(oids) < count:
            oid = self.storage.new_oid()
            # A pack-freed oid is reissued only once everyone heard of it.
            if not any(oid in other.invalid for other in clients):
                oids.append(oid)
        client.unused_oids.update(oids)
        return oids

    def _acquire_commit_lock(self, client):
        self.commit_holder = client
        client.lock_since = time.monotonic()
        client.lock_revoked = False
        client.commit_seq = self.commit_seq

    def _release_commit_lock(self, client):
        if self.commit_holder is client:
            self.commit_holder = None
        client.lock_since = None
        while self.commit_holder is None and self.commit_waiters:
            waiter = self.commit_waiters.popleft()
            if waiter.closed or waiter.linger_until is not None:
                continue
            self._acquire_commit_lock(waiter)
            waiter.waiting = None
            # An invalidation list holds no data, so it may go out before
            # a pending group fsync: that is what lets commits batch.
            self._queue(waiter, waiter.protocol.send(
                self._take_invalidations(waiter)), urgent=True)
            self._runnable.append(waiter)
            self._flush(waiter)

    # Request handlers: each returns the reply, or None -----------------

    def handle_V(self, client, request):
        if request.protocol in SUPPORTED_VERSIONS:
            return VersionReply(request.protocol)
        # As Durus 4.3 does: our version, then the protocol hangs up.
        # (A client of this project that asked for protocol 2 from a
        # server that does not know it reconnects asking for 1.)
        client.closing = ('it speaks protocol version %d, not %s'
                          % (request.protocol, ' or '.join(
                              str(v) for v in SUPPORTED_VERSIONS)),
                          logging.WARNING)
        return VersionReply(PROTOCOL_VERSION)

    def _load(self, client, oid):
        if oid in client.invalid:
            return LoadReply(STATUS_INVALID)
        try:
            return LoadReply(STATUS_OKAY, self.storage.load(oid))
        except ReadConflictError:
            return LoadReply(STATUS_INVALID)
        except KeyError:
            return LoadReply(STATUS_KEYERROR)

    def handle_L(self, client, request):
        return self._load(client, request.oid)

    def handle_B(self, client, request):
        load = self._load
        return BulkLoadReply([load(client, oid) for oid in request.oids])

    def handle_N(self, client, request):
        return Oids(self._new_oids(client, 1))

    def handle_M(self, client, request):
        return Oids(self._new_oids(client, request.count))

    def handle_C(self, client, request):
        if self.commit_holder is not None:
            client.waiting = request
            self.commit_waiters.append(client)
            self._update_interest(client)
            return None
        self._acquire_commit_lock(client)
        return self._take_invalidations(client)

    def handle_A(self, client, request):
        """Protocol 2: commit at once if nothing stands in the way."""
        if self.commit_holder is not None:
            # Another client is between its 'C' and its payload: let this
            # one take the protocol-1 way, which waits for the lock.
            return CommitAllReply([], STATUS_RETRY)
        invalidations = self._take_invalidations(client).oids
        if invalidations:
            # It has not seen these yet; they may be conflicts, which only
            # the client can tell.
            return CommitAllReply(invalidations, STATUS_RETRY)
        self._acquire_commit_lock(client)
        try:
            status = self._commit(client, request.items).status
        finally:
            self._release_commit_lock(client)
        return CommitAllReply([], status)

    def handle_back_out(self, client, request):
        self._release_commit_lock(client)
        return None

    def handle_commit_data(self, client, request):
        try:
            return self._commit(client, request.items)
        finally:
            # Only now may a waiting client get its invalidation list:
            # it must include the oids just committed.
            self._release_commit_lock(client)

    def _commit(self, client, items):
        if client.lock_revoked and client.commit_seq != self.commit_seq:
            log(logging.INFO, 'Client %s: commit refused as a conflict (it '
                'lost the commit lock and others committed)', client.name)
            return Status(STATUS_INVALID)
        oids = [oid for oid, _ in items]
        self._check_reservations(client, oids)
        storage = self.storage
        try:
            storage.begin()
            for oid, record in items:
                storage.store(oid, record)
            if self._end_deferred is not None:
                self._end_deferred(self._invalidate)
                if self._dirty_since is None:
                    self._dirty_since = time.monotonic()
            else:
                storage.end(self._invalidate)
        except ConflictError:
            return Status(STATUS_INVALID)
        except Exception as error:
            reason = '%s: %s' % (type(error).__name__, error)
            raise ClientError('the storage refused its commit: ' + reason,
                              reason) from None
        self.commit_seq += 1
        client.unused_oids.difference_update(oids)
        self._invalidate(oids, except_client=client)
        self.bytes_since_pack += 8 + sum(12 + len(record)
                                         for _, record in items)
        if (self.gcbytes > 0 and self.packer is None and
                self.bytes_since_pack >= self.gcbytes):
            self._start_pack('%d bytes committed since the last pack'
                             % self.bytes_since_pack)
        return Status(STATUS_OKAY)

    def _check_reservations(self, client, oids):
        wanted = set(oids)
        for other in self.clients:
            if other is not client and not other.unused_oids.isdisjoint(
                    wanted):
                oid = min(other.unused_oids & wanted)
                raise ClientError('its commit includes oid %d, which was '
                                  'handed to client %s'
                                  % (int.from_bytes(oid, 'big'), other.name))

    def handle_S(self, client, request):
        return self._take_invalidations(client)

    def handle_P(self, client, request):
        self._start_pack('requested by client %s' % client.name)
        return Status(STATUS_OKAY)

    def handle_Q(self, client, request):
        log(logging.INFO, 'Client %s asked the server to quit', client.name)
        self._drop(client, 'asked the server to quit', logging.DEBUG)
        self.stop()
        return None

    def handle_goodbye(self, client, request):
        # Replies to earlier pipelined requests still go out first.
        return None

    # Packing -----------------------------------------------------------

    def _start_pack(self, why):
        if self.packer is not None:
            log(logging.INFO, 'Pack already in progress (%s)', why)
            return
        log(logging.INFO, 'Pack started (%s)', why)
        try:
            packer = self.storage.get_packer()
            if packer is None:
                self.storage.pack()
                self._pack_finished()
            else:
                self.packer = packer
        except Exception as error:
            log(logging.ERROR, 'Pack failed: %s: %s', type(error).__name__,
                error)

    def _step_packer(self):
        try:
            next(self.packer)
        except StopIteration:
            self.packer = None
            self._pack_finished()
        except Exception as error:
            self.packer = None
            log(logging.ERROR, 'Pack failed: %s: %s', type(error).__name__,
                error)

    def _pack_finished(self):
        self.bytes_since_pack = 0
        log(logging.INFO, 'Pack finished')


def _drain(sock):
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


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
