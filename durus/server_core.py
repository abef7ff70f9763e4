"""The storage server's logic, without sockets and without a clock.

``ServerCore`` serves one storage to many sessions (client connections).
It is fed *events* and answers with *actions*; ``durus.storage_server``
is the selector loop that owns the sockets and the clock, turns what
happens on them into events and carries out the actions.  Tests drive
the core with bytes and a fake clock (tests/test_server_core.py).

Events (methods; ``now`` is a monotonic time in seconds)::

    open(name, now) -> Session      a connection was accepted
    receive(session, data, now)     bytes arrived (b'': end of stream)
    flushed(session, nbytes, now)   that many bytes of its Sends are written
    lost(session, reason, now)      the connection failed (socket error)
    durable(batch, now, error=None) the MakeDurable(batch) finished or failed
    advance(now)                    a round of I/O is over: run the sessions
                                    that became runnable, close a group
                                    commit batch, revoke an overdue commit
                                    lock, drop stalled sessions, step a pack
    shutdown(now)                   the server stops

Actions (``take_actions()`` returns them in order and clears the list)::

    Send(session, data)             write data to the session's connection
    Close(session, flush, linger)   the session is over: close after its
                                    data is written (flush) or at once; with
                                    linger, shut down writing and discard
                                    what it still sends for a while first
    MakeDurable(batch)              make every commit so far durable, then
                                    report durable(batch)
    Stop()                          serve no more (a client sent 'Q')

Between events the loop asks ``wants_input(session)`` (whether to read
from it: not while it waits for the commit lock, is closing, or has
``output_limit`` bytes of replies unwritten) and ``next_deadline()``.

Per session (docs/protocol.md):

* ``invalid``: oids it must hear about (others' commits, oids a pack
  removed); answered ``I`` on load, delivered and cleared by ``S`` and by
  the first step of ``C``.
* ``unused_oids``: oids handed out by ``N``/``M`` and not yet committed;
  another session committing one of them is refused.
* ``known``: every oid it asked to load or committed, that is every oid
  its client can hold an object of (None once more than ``KNOWN_LIMIT``:
  then it may hold any).  A one-step commit (``A``) goes ahead while its
  waiting invalidations are all of other oids: none of them can be a
  conflict, nor stale in the client's cache.

Invariants:

* Requests of one session are executed one at a time, in order, each
  completely before any other session's next one: a commit is atomic
  with respect to all sessions.
* At most one session holds the *commit lock*, from its ``C`` until its
  payload or back-out (a one-step ``A`` takes and releases it at once);
  others' ``C`` and ``A`` wait in arrival order.  A holder that keeps it longer
  than ``commit_lock_grace`` while others wait loses it; its payload is
  then answered ``I`` if any commit landed since its invalidation list.
* Group commit (storages with ``end_deferred``/``make_durable``): a
  commit that is not yet durable belongs to the open batch; the batch is
  closed (``MakeDurable``) at the end of a round in which nobody holds
  the commit lock, or once ``group_commit_window`` has passed (with
  one session open, by the commit's own request: nobody could join); at most
  one MakeDurable runs at a time (the loop may run it in a thread and
  go on serving), and no pack step runs meanwhile.  Until the batch of
  the latest commit is durable, every reply that could show data
  (statuses, syncs) is held back in order; a load waits only for the
  batches that wrote one of its oids (other records it shows are
  durable); the invalidation lists that open a commit (the reply to
  ``C``, and to an ``A`` answered ``R``) go out early, which is what
  lets the next committer join the batch, and so do new oids and the
  protocol version (they show nothing of any commit).
* A session that breaks the protocol, or whose request the storage
  cannot carry out, is refused: answered ``ErrorReply`` where its reply
  can carry one (``ServerConnection.refuse``), then closed with linger.
  So is every session whose held replies wait for a batch whose
  ``MakeDurable`` failed.  The core goes on with the others.

Authentication and roles (durus.auth; docs/security.md):

* Without ``users`` every session has the role ``admin`` (Durus 4.3's
  behaviour).  With ``users`` a session has no role until it proves
  who it is: 'V' 3, then the two SCRAM ``Auth`` exchanges; before that
  any other request is refused, and 'V' 1 or 2 is answered 3 (Durus
  4.3's client: "Protocol version mismatch").  ``open(..., role=)``
  gives a role at once (the loop's peer-credential check on a Unix
  socket).  A failed proof is answered after a delay that doubles with
  each failure from the same peer.
* ``_execute`` is the one place a request meets its handler; there a
  request the session's role does not allow (``REQUIRED_ROLE``; with
  ``readonly`` every write) is refused.

Memory: input buffered across all sessions is bounded by
``max_buffered``; the session whose bytes pass it is refused.  A session
in the middle of a request that makes less than ``min_rate`` bytes/s of
progress for longer than ``timeout`` is dropped, as is a silent one, and
one that has not authenticated ``timeout`` after it connected.
"""

import os

import logging
from collections import deque

from durus.auth import ADMIN, READ, WRITE, AuthFailure, ScramServer, role_allows
from durus.error import ConflictError, ProtocolError, ReadConflictError
from durus.logger import log
from durus.protocol import (
    AUTH_PROTOCOL_VERSION, AUTHENTICATED_VERSIONS, CLOSED, COMMITTING,
    DEFAULT_MAX_FRAME,
    EXTENDED_PROTOCOL_VERSION, NEED_DATA, PeekInvalidations,
    PendingInvalidations, PROTOCOL_VERSION, STATUS_INVALID,
    STATUS_KEYERROR, STATUS_OKAY, STATUS_RETRY, SUPPORTED_VERSIONS, Auth,
    AuthReply, BulkLoad,
    BulkLoadReply, CommitAll, CommitAllReply, CommitBackOut, CommitData,
    CommitStart, ConnectionClosed, Goodbye, Invalidations, Load, LoadReply,
    NewOid, NewOids, Oids, Pack, Quit, ServerConnection, Status, Sync,
    Version, VersionReply, encode_error_reply)

TIMEOUT = 10
COMMIT_LOCK_GRACE = 1.0
GROUP_COMMIT_WINDOW = 0.002
OUTPUT_LIMIT = 8 * 1024 * 1024   # stop reading a client that doesn't read
SWEEP_INTERVAL = 1.0
# Input bytes buffered across all sessions (partial requests): room for
# two requests of the largest size (DEFAULT_MAX_FRAME).
MAX_BUFFERED = 1024 * 1024 * 1024
# A request in progress for longer than the timeout must arrive at this
# rate (bytes/s) or its session is dropped.
MIN_RATE = 16 * 1024
# A failed authentication is answered after this delay, doubled for each
# earlier failure from the same peer (up to AUTH_DELAY_MAX).
AUTH_DELAY = 0.25
AUTH_DELAY_MAX = 8.0
MAX_TRACKED_PEERS = 10000

_OKAY = Status(STATUS_OKAY)

REQUIRED_ROLE = {
    NewOid: WRITE, NewOids: WRITE, CommitStart: WRITE, CommitData: WRITE,
    CommitAll: WRITE, Pack: ADMIN, Quit: ADMIN,
}
# What a session may send before it has a role.
_BEFORE_AUTH = (Version, Auth, Goodbye, ConnectionClosed)
_REQUEST_NAMES = {
    NewOid: 'new oids (N)', NewOids: 'new oids (M)',
    CommitStart: 'a commit (C)', CommitData: 'a commit',
    CommitAll: 'a commit (A)', Pack: 'a pack (P)',
    Quit: 'stopping the server (Q)', Load: 'a load (L)',
    BulkLoad: 'a bulk load (B)', Sync: 'a sync (S)',
}
# Oids remembered per session as loaded or committed (about 100 bytes
# each); past this a session's one-step commits wait for a clean list.
KNOWN_LIMIT = 200000


def _goes_out_early(request, reply):
    """Whether ``reply`` may overtake a pending group fsync: an
    invalidation list that opens a commit (``C``) or sends a one-step
    commit the protocol-1 way (``A`` answered ``R``) holds oids, no data
    and no status, and the commit it leads to joins the open batch.
    Held back, it would keep its client (and, after ``C``, the commit
    lock and so every other committer) waiting for an fsync that its
    own commit could have shared.  New oids (``N``, ``M``: asked for
    just before a commit that adds objects) and the protocol version
    show nothing of any commit either.  Syncs still wait (see the
    module docstring)."""
    kind = type(reply)
    return ((kind is Invalidations and type(request) is CommitStart) or
            (kind is CommitAllReply and reply.status == STATUS_RETRY) or
            kind is Oids or kind is VersionReply)


class ClientError(ProtocolError):
    """A client broke the rules, or its request cannot be carried out;
    the server refuses it and disconnects.  ``reason``, if given, is
    what the client is told (the message is what the log says)."""

    def __init__(self, message='', reason=None, *args, **kwargs):
        # Any further arguments, as Durus 4.3's ClientError (a plain
        # Exception) took them.
        ProtocolError.__init__(self, message, *args, **kwargs)
        self.reason = reason or message


# Actions ----------------------------------------------------------------

class Send(object):
    """``data`` is a bytearray the core no longer uses."""

    __slots__ = ('session', 'data')

    def __init__(self, session, data):
        self.session = session
        self.data = data

    def __repr__(self):
        return 'Send(%s, %r)' % (self.session.name, bytes(self.data))


class Close(object):
    __slots__ = ('session', 'flush', 'linger')

    def __init__(self, session, flush, linger=False):
        self.session = session
        self.flush = flush
        self.linger = linger

    def __repr__(self):
        return 'Close(%s, flush=%s, linger=%s)' % (
            self.session.name, self.flush, self.linger)


class MakeDurable(object):
    __slots__ = ('batch',)

    def __init__(self, batch):
        self.batch = batch

    def __repr__(self):
        return 'MakeDurable(%d)' % self.batch


class Stop(object):
    __slots__ = ()

    def __repr__(self):
        return 'Stop()'


# Sessions ---------------------------------------------------------------

class Session(object):
    """What the core knows about one connection.  ``open`` while it is
    served; after its Close action the core forgets it."""

    def __init__(self, name, max_frame, now, peer=None, role=None,
                 binding=None):
        self.name = name
        self.peer = peer           # who failed authentications are counted for
        self.role = role           # None: not authenticated yet
        self.binding = binding     # TLS channel binding data, if any
        self.user = None
        self.scram = None
        self.protocol = ServerConnection(max_frame)
        self.buffer_size = 0       # what it counts in core.buffered
        self.buffer_size_peak = 0
        self.frame_start = None    # when the request in progress began
        self.frame_bytes = 0       # bytes received since
        self.opened = now
        self.open = True
        self.invalid = set()
        self.unused_oids = set()
        self.known = set()
        self.last_activity = now
        self.waiting = False       # its C or A waits for the lock
        self.waiting_commit = None  # the A that waits, if it is an A
        self.lock_since = None
        self.lock_revoked = False
        self.commit_seq = 0        # core.commit_seq when its list went out
        self.unsent = bytearray()  # replies to go out in the next Send
        # Replies waiting for their batch to be durable, in chunks of
        # [batch, bytes, type of the request the first one answers].
        self.held = deque()
        self.in_flight = 0         # bytes Sent and not yet flushed
        self.held_size = 0

    def __repr__(self):
        return '<Session %s>' % self.name

    def pending_output(self):
        return self.in_flight + len(self.unsent) + self.held_size


class ServerCore(object):
    """The server's logic; see the module docstring."""

    def __init__(self, storage, gcbytes=0, max_frame=DEFAULT_MAX_FRAME,
                 timeout=TIMEOUT, commit_lock_grace=COMMIT_LOCK_GRACE,
                 group_commit_window=GROUP_COMMIT_WINDOW,
                 output_limit=OUTPUT_LIMIT, users=None, readonly=False,
                 max_buffered=MAX_BUFFERED, min_rate=MIN_RATE,
                 server_secret=None):
        self.storage = storage
        self.users = users         # {name: durus.auth.User}, or None
        self.readonly = readonly
        self.max_buffered = max_buffered
        self.min_rate = min_rate
        self.buffered = 0          # input bytes held across sessions
        self.server_secret = server_secret or os.urandom(32)
        self.auth_failures = {}    # peer -> failed attempts
        self._delayed = []         # [due, session, log reason] of refusals
        self.gcbytes = gcbytes or 0
        self.max_frame = max_frame
        self.timeout = timeout
        self.commit_lock_grace = commit_lock_grace
        self.group_commit_window = group_commit_window
        self.output_limit = output_limit
        # Group commit needs a storage that can defer its fsync.
        self._end_deferred = getattr(storage, 'end_deferred', None)
        if (getattr(storage, 'make_durable', None) is None or
                not group_commit_window):
            self._end_deferred = None
        self.sessions = set()
        self.commit_holder = None
        self.commit_waiters = deque()
        self.commit_seq = 0
        self.packer = None
        self.bytes_since_pack = 0
        # Group commit batches: the open one, the latest holding a
        # commit, the latest made durable, and the one being made so.
        self._batch = 1
        self._last_commit_batch = 0
        self._durable_batch = 0
        self._fsync_batch = None
        self._dirty_since = None   # first commit of the open batch
        # oid -> batch, for oids committed in batches not durable yet: a
        # load of any other oid shows only durable data and need not wait.
        self._fresh = {}
        # Sessions that committed in the open batch / the running one;
        # when a batch becomes durable its committers are *expected* to
        # commit again soon: the open batch waits for them (at most the
        # time the last fsync took, and group_commit_window) so that
        # they share its fsync instead of each taking the next.
        self._batch_committers = set()
        self._fsync_committers = set()
        self._expected = set()
        self._expect_until = 0.0
        self._fsync_started = 0.0
        self._runnable = deque()
        self._touched = []         # sessions with unsent replies
        self.actions = []
        self._next_sweep = 0
        self.now = 0.0             # the time of the latest event
        # Counts logged at shutdown: commits stored, MakeDurable batches,
        # one-step commits ('A') stored and answered 'R'.
        self.stats = dict.fromkeys(
            ['commits', 'batches', 'one_step', 'one_step_retry'], 0)
        self._handlers = {
            Version: self._version, Load: self._load_one,
            BulkLoad: self._bulk_load, NewOid: self._new_oid,
            NewOids: self._new_oids_request, CommitStart: self._commit_start,
            CommitData: self._commit_data, CommitAll: self._commit_all,
            CommitBackOut: self._back_out, Sync: self._sync,
            Pack: self._pack_request, Quit: self._quit,
            Goodbye: self._goodbye, ConnectionClosed: self._goodbye,
            Auth: self._auth, PeekInvalidations: self._peek,
        }

    # Events ----------------------------------------------------------

    def open(self, name, now, peer=None, role=None, binding=None):
        """A new session.  ``role``: known already (peer credentials);
        ``binding``: the TLS channel binding data of its connection."""
        self.now = now
        if self.users is None and role is None:
            role = ADMIN
        session = Session(name, self.max_frame, now, peer, role, binding)
        self.sessions.add(session)
        log(logging.DEBUG, 'Client %s connected', name)
        return session

    def receive(self, session, data, now):
        if not session.open:
            return
        self.now = now
        session.last_activity = now
        protocol = session.protocol
        if session.frame_start is None:
            session.frame_start = now
            session.frame_bytes = 0
        session.frame_bytes += len(data)
        protocol.receive_data(data)
        self._account(session)
        if self.buffered > self.max_buffered and session.open:
            self._refuse(session, 'input buffered across all clients would '
                         'pass the limit of %d bytes' % self.max_buffered,
                         'the server is out of input buffer space; retry '
                         'later', logging.WARNING)
            self._emit_sends()
            return
        self._serve(session)
        self._account(session)
        if self._touched:
            self._emit_sends()

    def _account(self, session):
        """Keep ``buffered`` (and the session's progress clock) up to
        date with what its input buffer holds."""
        if session.open:
            protocol = session.protocol
            size = protocol.compact()
            if size > session.buffer_size_peak:
                session.buffer_size_peak = size
            # (an empty buffer is out of a frame unless a commit is open)
            if session.frame_start is not None and not (
                    protocol.in_frame() if size else
                    protocol.state == COMMITTING):
                session.frame_start = None
        else:
            size = 0
        self.buffered += size - session.buffer_size
        session.buffer_size = size

    def flushed(self, session, nbytes, now):
        if not session.open or not nbytes:
            return
        self.now = now
        # (pending_output() inline: this runs after every reply)
        pending = session.in_flight + len(session.unsent) + session.held_size
        session.in_flight -= nbytes
        session.last_activity = now
        if (pending >= self.output_limit and not session.waiting and
                pending - nbytes < self.output_limit):
            self._runnable.append(session)

    def lost(self, session, reason, now):
        self.now = now
        self._close(session, reason, logging.INFO, flush=False)

    def durable(self, batch, now, error=None):
        self.now = now
        self._fsync_batch = None
        self._durable_batch = batch
        committers, self._fsync_committers = self._fsync_committers, set()
        if error is None and committers:
            self._expected = committers
            self._expect_until = now + min(self.group_commit_window,
                                           now - self._fsync_started)
        fresh = self._fresh
        if fresh:
            if self._last_commit_batch <= batch:
                fresh.clear()
            else:
                for oid in [oid for oid, made in fresh.items()
                            if made <= batch]:
                    del fresh[oid]
        if error is not None:
            detail = '%s: %s' % (type(error).__name__, error)
            log(logging.CRITICAL, 'Making commits durable failed: %s', detail)
            reason = 'commits could not be made durable: ' + detail
            for session in list(self.sessions):
                if session.held:
                    self._refuse_held(session, reason)
            return
        touched = self._touched
        for session in list(self.sessions):
            held = session.held
            while held and held[0][0] <= batch:
                data = held.popleft()[1]
                session.held_size -= len(data)
                if not session.unsent:     # (_queue_now inline)
                    touched.append(session)
                session.unsent += data
        if touched:
            self._emit_sends()

    def advance(self, now):
        self.now = now
        runnable = self._runnable
        while runnable:
            session = runnable.popleft()
            if session.open:
                self._serve(session)
        if self._dirty_since is not None and self._fsync_batch is None:
            if self._expected and now < self._expect_until:
                pass    # committers of the last batch may join this one
            elif (self.commit_holder is None or
                    now - self._dirty_since >= self.group_commit_window):
                self._close_batch()
        if self._delayed:
            self._refuse_delayed(now)
        if ((self.commit_holder is not None and self.commit_waiters) or
                now >= self._next_sweep):   # (else _sweep has nothing to do)
            self._sweep(now)
        if self.packer is not None and self._fsync_batch is None:
            # (not while a MakeDurable runs: a step may switch files)
            self._step_packer()
        if self._touched:
            self._emit_sends()

    def shutdown(self, now):
        """Close every session and a running pack; a last MakeDurable if
        commits are not durable yet."""
        self.now = now
        if self._dirty_since is not None and self._fsync_batch is None:
            self._close_batch()
        stats = self.stats
        if stats['commits']:
            log(logging.INFO, 'Served %d commits in %d durable batches; '
                'one-step commits: %d taken, %d answered retry',
                stats['commits'], stats['batches'], stats['one_step'],
                stats['one_step_retry'])
        for session in list(self.sessions):
            self._close(session, 'server is stopping', logging.DEBUG,
                        flush=False)
        if self.packer is not None:
            self.packer.close()
            self.packer = None

    # Questions from the loop -----------------------------------------

    def take_actions(self):
        actions = self.actions
        self.actions = []
        return actions

    def wants_input(self, session):
        return (session.open and not session.waiting and
                session.in_flight + len(session.unsent) + session.held_size
                < self.output_limit)

    def busy(self):
        """True if ``advance`` has work now (runnable sessions, a pack)."""
        return bool(self._runnable) or (self.packer is not None and
                                        self._fsync_batch is None)

    def next_deadline(self):
        """When ``advance`` must run next without I/O (None: no need)."""
        if self._dirty_since is not None and self._fsync_batch is None:
            if self._expected and self.now < self._expect_until:
                return self._expect_until
            return self._dirty_since + self.group_commit_window
        if not self.sessions:
            return None
        deadline = self._next_sweep
        for due, _, _ in self._delayed:
            deadline = min(deadline, due)
        holder = self.commit_holder
        if holder is not None and self.commit_waiters:
            deadline = min(deadline, holder.lock_since +
                           self.commit_lock_grace)
        return deadline

    # Executing requests ----------------------------------------------

    def _serve(self, session):
        """Execute the session's complete requests, one at a time."""
        protocol = session.protocol
        try:
            while session.open and not session.waiting:
                # (pending_output() inline)
                if (session.in_flight + len(session.unsent) +
                        session.held_size >= self.output_limit):
                    break      # resumed by flushed()
                request = protocol.next_event()
                if request is NEED_DATA:
                    break
                reply = self._execute(session, request)
                if reply is not None:
                    kind = type(reply)
                    early = False
                    if kind is LoadReply:
                        batch = self._fresh.get(request.oid, 0)
                    elif kind is BulkLoadReply:
                        batch = self._fresh_batch(request.oids)
                    else:
                        batch = None
                        early = _goes_out_early(request, reply)
                    self._queue(session, protocol.send(reply), early,
                                type(request), batch)
                if protocol.state == CLOSED and session.open:
                    self._close(session, 'closed the connection',
                                logging.DEBUG, flush=True)
        except ProtocolError as error:
            self._refuse(session, str(error), getattr(error, 'reason', None),
                         logging.WARNING)
        except Exception as error:
            log(logging.ERROR, 'Client %s: unexpected %s', session.name,
                type(error).__name__, exc_info=True)
            self._refuse(session, '%s: %s' % (type(error).__name__, error),
                         None, logging.ERROR)

    def _execute(self, session, request):
        """The reply to ``request`` (None if it has none or must wait)."""
        kind = type(request)
        role = session.role
        if role is None:
            if kind not in _BEFORE_AUTH:
                raise ClientError(
                    'sent %s before authenticating (this server requires '
                    'it: --users)' % _REQUEST_NAMES.get(kind, kind.__name__),
                    'authentication required: this server has users; '
                    'connect with a user name and secret')
        else:
            needed = REQUIRED_ROLE.get(kind)
            if needed is not None:
                why = None
                if role != ADMIN and not role_allows(role, needed):
                    why = 'the role %s does not allow %s' % (
                        role, _REQUEST_NAMES[kind])
                elif self.readonly and needed is WRITE:
                    why = ('the server is read-only (--readonly), which does '
                           'not allow %s' % _REQUEST_NAMES[kind])
                if why is not None:
                    return self._deny(session, kind, why)
        return self._handlers[kind](session, request)

    def _deny(self, session, kind, why):
        """Protocol 3: answer 'D' and go on; older protocols cannot say
        so without breaking the conversation: refuse and close."""
        who = (' (user %s)' % session.user) if session.user else ''
        if session.protocol.version in AUTHENTICATED_VERSIONS:
            log(logging.WARNING, 'Client %s denied: %s%s', session.name, why,
                who)
            self._queue(session, session.protocol.deny(
                'permission denied: ' + why), request_type=kind)
            return None
        raise ClientError('refused: %s%s' % (why, who),
                          'permission denied: %s' % why)

    def _fresh_batch(self, oids):
        """The latest batch not yet durable that wrote one of ``oids``
        (0 if none did)."""
        fresh = self._fresh
        if not fresh:
            return 0
        get = fresh.get
        return max([get(oid, 0) for oid in oids], default=0)

    def _queue(self, session, data, urgent=False, request_type=None,
               batch=None):
        """Queue a reply (to a request of ``request_type``); while
        commits it could show are not durable, it (and all after it)
        waits for their batch.  ``batch``: the latest batch the reply can
        show (default: the latest with a commit; a load shows only its
        oids)."""
        held = session.held
        if batch is None:
            batch = self._last_commit_batch
        if urgent or batch <= self._durable_batch:
            if not held:
                self._queue_now(session, data)
                return
            batch = held[-1][0]     # not before the replies ahead of it
        if held and held[-1][0] == batch:
            held[-1][1] += data
        else:
            held.append([batch, bytearray(data), request_type])
        session.held_size += len(data)

    def _queue_now(self, session, data):
        if not session.unsent:
            self._touched.append(session)
        session.unsent += data

    def _emit_sends(self):
        touched = self._touched
        if not touched:
            return
        actions = self.actions
        for session in touched:
            data = session.unsent
            if data and session.open:
                session.unsent = bytearray()
                session.in_flight += len(data)
                actions.append(Send(session, data))
        touched.clear()

    def _close(self, session, reason, level, flush, linger=False):
        if not session.open:
            return
        log(level, 'Client %s disconnected: %s', session.name, reason)
        if flush:
            self._emit_sends()   # what it was answered goes out first
        session.open = False
        session.protocol.discard_input()   # give its memory back
        self._account(session)
        self.sessions.discard(session)
        self._expected.discard(session)
        self._batch_committers.discard(session)
        self._fsync_committers.discard(session)
        if session.waiting:
            session.waiting = False
        if self.commit_holder is session:
            self._release_commit_lock(session)
        session.held.clear()
        session.unsent = bytearray()
        self.actions.append(Close(session, flush, linger))

    def _refuse(self, session, reason, client_reason, level):
        """Tell the session why (where its reply can say so), then close
        it with linger: it may still be sending the refused request."""
        if not session.open:
            return
        data = session.protocol.refuse(client_reason or reason)
        if data:
            self._queue(session, data)
        if session.held:
            # Its earlier replies wait for an fsync; the refusal cannot
            # overtake them, and a session cannot linger that long.
            self._close(session, reason, level, flush=False)
            return
        self._close(session, reason, level, flush=True, linger=True)

    def _refuse_held(self, session, reason):
        """Its replies wait for commits that failed to become durable:
        refuse the first of them instead, and close."""
        request_type = session.held[0][2]
        session.held.clear()
        session.held_size = 0
        data = encode_error_reply(request_type, reason,
                                  session.protocol.version)
        if data:
            self._queue_now(session, data)
        self._close(session, reason, logging.ERROR, flush=True, linger=True)

    # Time ------------------------------------------------------------

    def _close_batch(self):
        self.stats['batches'] += 1
        batch = self._batch
        self._batch += 1
        self._dirty_since = None
        self._fsync_batch = batch
        self._fsync_started = self.now
        self._fsync_committers = self._batch_committers
        self._batch_committers = set()
        self._expected = set()
        self.actions.append(MakeDurable(batch))

    def _sweep(self, now):
        """Revoke an overdue commit lock; drop sessions stalled
        mid-request or not reading their replies."""
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
        for session in list(self.sessions):
            if (session.role is None and not session.waiting and
                    now - session.opened > self.timeout):
                self._close(session, 'did not authenticate within %d s'
                            % self.timeout, logging.INFO, flush=False)
                continue
            if ((session.protocol.in_frame() or session.in_flight) and
                    now - session.last_activity > self.timeout):
                self._close(session, 'stalled for %d s in the middle of a '
                            'request' % self.timeout, logging.WARNING,
                            flush=False)
                continue
            start = session.frame_start
            if (start is not None and not session.waiting and
                    now - start > self.timeout and
                    session.protocol.in_frame() and
                    session.frame_bytes < self.min_rate * (now - start)):
                self._close(session, 'too slow: %d bytes of a request in '
                            '%.0f s (less than %d bytes/s)'
                            % (session.frame_bytes, now - start,
                               self.min_rate), logging.WARNING, flush=False)

    # Invalidations, oids and the commit lock ---------------------------

    def _invalidate(self, oids, except_session=None):
        for session in self.sessions:
            if session is not except_session:
                session.invalid.update(oids)

    def _take_invalidations(self, session):
        removed = self.storage.sync()
        if removed:
            self._invalidate(removed)
        invalid = session.invalid
        if not invalid:
            return Invalidations([])
        oids = list(invalid)
        invalid.clear()
        return Invalidations(oids)

    def _reserve_oids(self, session, count):
        oids = []
        sessions = self.sessions
        while len(oids) < count:
            oid = self.storage.new_oid()
            # A pack-freed oid is reissued only once everyone heard of it.
            if not any(oid in other.invalid for other in sessions):
                oids.append(oid)
        session.unused_oids.update(oids)
        return oids

    def _acquire_commit_lock(self, session):
        self.commit_holder = session
        session.lock_since = self.now
        session.lock_revoked = False
        session.commit_seq = self.commit_seq

    def _release_commit_lock(self, session):
        if self.commit_holder is session:
            self.commit_holder = None
        session.lock_since = None
        while self.commit_holder is None and self.commit_waiters:
            waiter = self.commit_waiters.popleft()
            if not waiter.open:
                continue
            waiter.waiting = False
            request = waiter.waiting_commit
            if request is not None:
                waiter.waiting_commit = None
                self._commit_all_waiter(waiter, request)
                continue
            self._acquire_commit_lock(waiter)
            # An invalidation list holds no data, so it may go out before
            # a pending group fsync: that is what lets commits batch.
            self._queue(waiter, waiter.protocol.send(
                self._take_invalidations(waiter)), urgent=True)
            self._runnable.append(waiter)

    def _commit_all_waiter(self, session, request):
        """Carry out the one-step commit ``session`` waited with, as
        ``_serve`` would have (its errors refuse that session only)."""
        try:
            reply = self._commit_all(session, request)
            self._queue(session, session.protocol.send(reply),
                        _goes_out_early(request, reply), CommitAll)
        except ProtocolError as error:
            self._refuse(session, str(error), getattr(error, 'reason', None),
                         logging.WARNING)
        except Exception as error:
            log(logging.ERROR, 'Client %s: unexpected %s', session.name,
                type(error).__name__, exc_info=True)
            self._refuse(session, '%s: %s' % (type(error).__name__, error),
                         None, logging.ERROR)
        self._runnable.append(session)

    # Request handlers: each returns the reply, or None -----------------

    def _version(self, session, request):
        wanted = request.protocol
        if self.users is not None and session.role is None:
            if wanted not in AUTHENTICATED_VERSIONS:
                log(logging.WARNING, 'Client %s refused: it asked for '
                    'protocol %d without authenticating, and this server '
                    'requires authentication (--users): a Durus 4.3 client, '
                    'or one not given a user name', session.name, wanted)
                return VersionReply(AUTH_PROTOCOL_VERSION)
            return VersionReply(wanted)
        if wanted in AUTHENTICATED_VERSIONS and self.users is None:
            log(logging.WARNING, 'Client %s wants to authenticate, but this '
                'server has no users (start it with --users)', session.name)
            return VersionReply(EXTENDED_PROTOCOL_VERSION)
        if wanted in SUPPORTED_VERSIONS or (
                wanted in AUTHENTICATED_VERSIONS and session.role is not None):
            return VersionReply(wanted)
        # As Durus 4.3 does: our version, then the protocol hangs up.
        log(logging.WARNING, 'Client %s speaks protocol version %d, not %s',
            session.name, request.protocol,
            ' or '.join(str(v) for v in SUPPORTED_VERSIONS))
        return VersionReply(PROTOCOL_VERSION)

    def _load(self, session, oid):
        if oid in session.invalid:
            return LoadReply(STATUS_INVALID)
        try:
            return LoadReply(STATUS_OKAY, self.storage.load(oid))
        except ReadConflictError:
            return LoadReply(STATUS_INVALID)
        except KeyError:
            return LoadReply(STATUS_KEYERROR)

    def _load_one(self, session, request):
        self._know(session, (request.oid,))
        return self._load(session, request.oid)

    def _bulk_load(self, session, request):
        self._know(session, request.oids)
        load = self._load
        return BulkLoadReply([load(session, oid) for oid in request.oids])

    @staticmethod
    def _know(session, oids):
        known = session.known
        if known is not None:
            known.update(oids)
            if len(known) > KNOWN_LIMIT:
                session.known = None

    def _new_oid(self, session, request):
        return Oids(self._reserve_oids(session, 1))

    def _new_oids_request(self, session, request):
        return Oids(self._reserve_oids(session, request.count))

    def _commit_start(self, session, request):
        if self.commit_holder is not None:
            session.waiting = True
            self.commit_waiters.append(session)
            return None
        self._acquire_commit_lock(session)
        return self._take_invalidations(session)

    def _commit_all(self, session, request):
        """Protocol 2: commit at once if nothing stands in the way."""
        if self.commit_holder is not None:
            # Another session is between its 'C' and its payload: wait
            # for the lock as a 'C' does (answering 'R' here would send
            # this client the protocol-1 way, holding the lock over a
            # round trip, and so make others' one-step commits wait too).
            session.waiting = True
            session.waiting_commit = request
            self.commit_waiters.append(session)
            return None
        # (_take_invalidations inline: this runs for every commit)
        removed = self.storage.sync()
        if removed:
            self._invalidate(removed)
        invalid = session.invalid
        if invalid:
            invalidations = list(invalid)
            invalid.clear()
        else:
            invalidations = []
        known = session.known
        if invalidations and (
                known is None or not known.isdisjoint(invalidations) or
                not {oid for oid, _ in request.items}.isdisjoint(
                    invalidations)):
            # It has not seen these yet and may hold one of them: they
            # may be conflicts, which only the client can tell.
            self.stats['one_step_retry'] += 1
            return CommitAllReply(invalidations, STATUS_RETRY)
        # Invalidations of oids it never loaded cannot touch this
        # transaction: they go out with the reply, as a sync would.
        self.stats['one_step'] += 1
        # (_acquire_commit_lock inline, and _release_commit_lock's usual
        # case: nobody waits for the lock)
        self.commit_holder = session
        session.lock_since = self.now
        session.lock_revoked = False
        session.commit_seq = self.commit_seq
        try:
            status = self._commit(session, request.items).status
        finally:
            if self.commit_waiters or self.commit_holder is not session:
                self._release_commit_lock(session)
            else:
                self.commit_holder = None
                session.lock_since = None
        return CommitAllReply(invalidations, status)

    def _back_out(self, session, request):
        self._release_commit_lock(session)
        return None

    def _commit_data(self, session, request):
        try:
            return self._commit(session, request.items)
        finally:
            # Only now may a waiting session get its invalidation list:
            # it must include the oids just committed.
            self._release_commit_lock(session)

    def _commit(self, session, items):
        if session.lock_revoked and session.commit_seq != self.commit_seq:
            log(logging.INFO, 'Client %s: commit refused as a conflict (it '
                'lost the commit lock and others committed)', session.name)
            return Status(STATUS_INVALID)
        oids = [oid for oid, _ in items]
        if len(self.sessions) > 1:
            self._check_reservations(session, oids)
        storage = self.storage
        written = 8     # bytes this transaction adds to the file
        try:
            storage.begin()
            store = storage.store
            for oid, record in items:
                store(oid, record)
                written += 12 + len(record)
            if self._end_deferred is not None:
                self._end_deferred(self._invalidate)
                batch = self._last_commit_batch = self._batch
                fresh = self._fresh
                for oid in oids:
                    fresh[oid] = batch
                self._batch_committers.add(session)
                self._expected.discard(session)
                if self._dirty_since is None:
                    self._dirty_since = self.now
                if len(self.sessions) == 1 and self._fsync_batch is None:
                    # Nobody else can join the batch: make it durable as
                    # soon as this request is done, not after the loop's
                    # next round (the one-client commit waits for it).
                    self._close_batch()
            else:
                storage.end(self._invalidate)
        except ConflictError:
            return Status(STATUS_INVALID)
        except Exception as error:
            reason = '%s: %s' % (type(error).__name__, error)
            raise ClientError('the storage refused its commit: ' + reason,
                              reason) from None
        self.commit_seq += 1
        self.stats['commits'] += 1
        session.unused_oids.difference_update(oids)
        known = session.known     # (_know inline)
        if known is not None:
            known.update(oids)
            if len(known) > KNOWN_LIMIT:
                session.known = None
        self._invalidate(oids, except_session=session)
        self.bytes_since_pack += written
        if (self.gcbytes > 0 and self.packer is None and
                self.bytes_since_pack >= self.gcbytes):
            self._start_pack('%d bytes committed since the last pack'
                             % self.bytes_since_pack)
        return _OKAY   # (one shared reply: nothing changes a Status)

    def _check_reservations(self, session, oids):
        if len(self.sessions) < 2:
            return
        wanted = set(oids)
        for other in self.sessions:
            if other is not session and not other.unused_oids.isdisjoint(
                    wanted):
                oid = min(other.unused_oids & wanted)
                raise ClientError('its commit includes oid %d, which was '
                                  'handed to client %s'
                                  % (int.from_bytes(oid, 'big'), other.name))

    def _sync(self, session, request):
        return self._take_invalidations(session)

    def _peek(self, session, request):
        """Protocols 4 and 5: what a sync would deliver, left in place
        (so loads still answer 'I' and commits still see conflicts)."""
        self._invalidate(self.storage.sync())
        waiting = session.invalid
        oids = []
        if request.limit:
            for oid in waiting:
                oids.append(oid)
                if len(oids) >= request.limit:
                    break
        return PendingInvalidations(len(waiting), oids)

    def _pack_request(self, session, request):
        self._start_pack('requested by client %s' % session.name)
        return Status(STATUS_OKAY)

    def _quit(self, session, request):
        log(logging.INFO, 'Client %s asked the server to quit', session.name)
        self._close(session, 'asked the server to quit', logging.DEBUG,
                    flush=False)
        self.actions.append(Stop())
        return None

    def _auth(self, session, request):
        """One SCRAM step; a failure is answered after a delay."""
        if session.scram is None:
            session.scram = ScramServer(self.users, self.server_secret,
                                        session.binding)
        scram = session.scram
        try:
            if scram.user is None:
                return AuthReply(scram.first(request.message))
            message = scram.final(request.message)
        except AuthFailure as failure:
            count = self.auth_failures.get(session.peer, 0) + 1
            if len(self.auth_failures) >= MAX_TRACKED_PEERS:
                self.auth_failures.clear()
            self.auth_failures[session.peer] = count
            delay = min(AUTH_DELAY_MAX, AUTH_DELAY * 2 ** (count - 1))
            log(logging.WARNING, 'Client %s (peer %s): authentication failed '
                '(attempt %d from this peer; answering in %.2f s): %s',
                session.name, session.peer, count, delay, failure)
            session.waiting = True      # reads nothing more meanwhile
            self._delayed.append((self.now + delay, session,
                                  'authentication failed: %s' % failure))
            return None
        self.auth_failures.pop(session.peer, None)
        session.role = scram.role
        session.user = scram.user
        session.scram = None
        log(logging.INFO, 'Client %s authenticated as %s (role %s)',
            session.name, session.user, session.role)
        return AuthReply(message)

    def _refuse_delayed(self, now):
        due = [entry for entry in self._delayed if entry[0] <= now]
        if not due:
            return
        self._delayed = [entry for entry in self._delayed if entry[0] > now]
        for _, session, reason in due:
            session.waiting = False
            self._refuse(session, reason, AuthFailure.CLIENT_REASON,
                         logging.INFO)

    def _goodbye(self, session, request):
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
