"""The server's logic without sockets: ServerCore fed events and a fake
clock, its actions carried out by a small harness.

Each client is a ``durus.protocol.ClientConnection``: requests are
encoded by it and fed to the core as bytes, and what the core sends is
parsed back into replies, so the tests read as conversations.
"""

import logging

import pytest

from durus.error import ConflictError
from durus.protocol import (
    NEED_DATA, STATUS_INVALID, STATUS_KEYERROR, STATUS_OKAY, STATUS_RETRY,
    BulkLoad, BulkLoadReply, ClientConnection, CommitAll, CommitAllReply, CommitBackOut,
    CommitData, CommitStart, ErrorReply, Goodbye, Invalidations, Load,
    LoadReply, NewOid, NewOids, Pack, Quit, Status, Sync, Version,
    VersionReply)
from durus.serialize import pack_record
from durus.server_core import (
    SWEEP_INTERVAL, Close, MakeDurable, Send, ServerCore, Stop)
from durus.storage import MemoryStorage


def oid(n):
    return n.to_bytes(8, 'big')


def record(n, data=b'x'):
    return pack_record(oid(n), data, b'')


class DeferringStorage(MemoryStorage):
    """A MemoryStorage with the group commit hooks: ``durable`` holds
    what a make_durable() has made durable."""

    def __init__(self):
        MemoryStorage.__init__(self)
        self.durable = {}
        self.fsyncs = 0

    def end_deferred(self, handle_invalidations=None):
        MemoryStorage.end(self, handle_invalidations)

    def make_durable(self):
        self.fsyncs += 1
        self.durable.update(self.records)


def deferring_harness():
    """A harness over a DeferringStorage whose fsyncs end only when the
    test calls ``harness.finish_fsync()``: ``(storage, harness)``."""
    storage = DeferringStorage()
    harness = Harness(storage)
    harness.auto_durable = False
    return storage, harness


class PackingStorage(MemoryStorage):
    """Its pack takes ``steps`` steps; ``stepped`` counts them."""

    def __init__(self, steps=3):
        MemoryStorage.__init__(self)
        self.steps = steps
        self.stepped = 0
        self.packs = 0

    def get_packer(self):
        self.packs += 1

        def packer():
            for _ in range(self.steps):
                self.stepped += 1
                yield
        return packer()


class Client(object):
    """One connection as the harness sees it."""

    def __init__(self, harness, name):
        self.harness = harness
        self.session = harness.core.open(name, harness.now)
        self.protocol = ClientConnection()
        self.received = bytearray()
        self.unread = 0         # bytes sent to it and not yet "written"
        self.closed = None      # the Close action, once closed

    def send(self, *requests):
        """Send requests (one chunk of bytes) and carry out the actions."""
        data = b''.join(self.protocol.send(r) for r in requests)
        self.send_bytes(data)

    def send_bytes(self, data):
        self.harness.core.receive(self.session, data, self.harness.now)
        self.harness.carry_out()

    def replies(self):
        """Every reply received and not yet read."""
        protocol = self.protocol
        if self.received:
            protocol.receive_data(bytes(self.received))
            self.received.clear()
        found = []
        while protocol.awaiting():
            reply = protocol.next_event()
            if reply is NEED_DATA:
                break
            found.append(reply)
        return found

    def read_all(self):
        """The socket takes everything it was given (with flush_writes
        off)."""
        unread, self.unread = self.unread, 0
        self.harness.core.flushed(self.session, unread, self.harness.now)
        self.harness.advance()

    def reply(self):
        replies = self.replies()
        assert len(replies) == 1, replies
        return replies[0]


class Harness(object):
    """Carries out the core's actions the way the selector loop does,
    except that written bytes are kept, and make_durable runs only when
    ``auto_durable`` (else ``finish_fsync()`` runs it)."""

    def __init__(self, storage=None, **options):
        self.storage = storage if storage is not None else MemoryStorage()
        self.core = ServerCore(self.storage, **options)
        self.now = 100.0
        self.auto_durable = True
        self.fsyncs = []            # MakeDurable batches not yet finished
        self.stopped = False
        self.flush_writes = True    # the client reads what it is sent
        self.clients = {}
        self.log = []

    def connect(self, name='c'):
        client = Client(self, name)
        self.clients[client.session] = client
        return client

    def carry_out(self):
        actions = self.core.take_actions()
        while actions:
            for action in actions:
                self.log.append(action)
                kind = type(action)
                if kind is Send:
                    client = self.clients[action.session]
                    client.received += action.data
                    if self.flush_writes:
                        self.core.flushed(action.session, len(action.data),
                                          self.now)
                    else:
                        client.unread += len(action.data)
                elif kind is Close:
                    self.clients[action.session].closed = action
                elif kind is MakeDurable:
                    self.fsyncs.append(action.batch)
                    if self.auto_durable:
                        self.finish_fsync()
                elif kind is Stop:
                    self.stopped = True
            actions = self.core.take_actions()

    def finish_fsync(self, error=None):
        batch = self.fsyncs.pop(0)
        if error is None:
            self.storage.make_durable()
        self.core.durable(batch, self.now, error)
        self.carry_out()

    def advance(self, seconds=0.0):
        """A round of I/O is over; ``seconds`` have passed."""
        self.now += seconds
        self.core.advance(self.now)
        self.carry_out()


@pytest.fixture
def log_messages():
    messages = []

    class Handler(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Handler(logging.DEBUG)
    logger = logging.getLogger('durus')
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def commit_one_step(client, items):
    client.send(Version(2))
    assert client.reply() == VersionReply(2)
    client.send(CommitAll(items))


def commit_two_step(client, items):
    client.send(CommitStart())
    assert type(client.reply()) is Invalidations
    client.send(CommitData(items))


def reserve(client, count=1):
    client.send(NewOids(count))
    return client.reply().oids


# The commit lock ------------------------------------------------------

def test_commit_lock_is_granted_in_arrival_order():
    harness = Harness()
    a, b, c = (harness.connect(name) for name in 'abc')
    [mine] = reserve(a)
    a.send(CommitStart())
    assert a.reply() == Invalidations([])
    b.send(CommitStart())
    c.send(CommitStart())
    assert b.replies() == [] and c.replies() == []
    assert not harness.core.wants_input(b.session)   # not read meanwhile
    a.send(CommitData([(mine, pack_record(mine, b'a', b''))]))
    assert a.reply() == Status(STATUS_OKAY)
    # b is next and hears of a's commit; c still waits
    assert b.reply() == Invalidations([mine])
    assert c.replies() == []
    assert harness.core.commit_holder is b.session
    b.send(CommitBackOut())
    assert c.reply() == Invalidations([mine])
    assert harness.core.commit_holder is c.session


def test_a_waiting_client_runs_its_pipelined_requests_once_it_has_the_lock():
    harness = Harness()
    a, b = harness.connect('a'), harness.connect('b')
    a.send(CommitStart())
    a.replies()
    # b sends its payload right behind its C, without waiting for the list
    b.send(CommitStart(), CommitData([(oid(0), record(0, b'b'))]))
    assert b.replies() == [] and harness.storage.records == {}
    a.send(CommitBackOut())
    assert b.replies() == [Invalidations([])]
    assert harness.storage.records == {}      # its next request waits ...
    harness.advance()                         # ... for the end of the round
    assert b.reply() == Status(STATUS_OKAY)
    assert harness.storage.records[oid(0)] == record(0, b'b')
    assert harness.core.commit_holder is None


def test_one_step_commit_waits_for_a_lock_holder_then_commits():
    harness = Harness()
    a, b = harness.connect('a'), harness.connect('b')
    [mine] = reserve(a)
    b.send(CommitStart())
    b.replies()
    commit_one_step(a, [(mine, pack_record(mine, b'a', b''))])
    assert a.replies() == []                      # waits, as a C would
    assert harness.storage.records.get(mine) is None
    b.send(CommitBackOut())
    assert a.reply() == CommitAllReply([], STATUS_OKAY)
    assert harness.storage.load(mine) == pack_record(mine, b'a', b'')
    assert harness.core.commit_holder is None


def test_a_waiting_one_step_commit_sees_the_holders_commit():
    harness = Harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(b)
    commit_one_step(b, [(x, pack_record(x, b'1', b''))])
    assert b.reply() == CommitAllReply([], STATUS_OKAY)
    a.send(Sync(), Load(x))
    assert a.replies() == [Invalidations([x]),
                           LoadReply(STATUS_OKAY, pack_record(x, b'1', b''))]
    b.send(CommitStart())
    b.replies()
    commit_one_step(a, [(x, pack_record(x, b'a', b''))])
    assert a.replies() == []
    b.send(CommitData([(x, pack_record(x, b'2', b''))]))
    assert b.reply() == Status(STATUS_OKAY)
    # a loaded x, which b changed meanwhile: only a's client can tell
    # whether that is a conflict.
    assert a.reply() == CommitAllReply([x], STATUS_RETRY)
    assert harness.storage.load(x) == pack_record(x, b'2', b'')


def test_one_step_commit_goes_ahead_past_invalidations_of_oids_never_loaded():
    harness = Harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x, y] = reserve(b, 2)
    [mine] = reserve(a)
    commit_one_step(b, [(x, pack_record(x, b'1', b'')),
                        (y, pack_record(y, b'1', b''))])
    assert b.reply() == CommitAllReply([], STATUS_OKAY)
    # a never asked for x or y: they cannot be in its transaction.
    commit_one_step(a, [(mine, pack_record(mine, b'a', b''))])
    reply = a.reply()
    assert reply.status == STATUS_OKAY and sorted(reply.oids) == [x, y]
    assert harness.storage.load(mine) == pack_record(mine, b'a', b'')
    a.send(Sync())
    assert a.reply() == Invalidations([])          # delivered with it


def test_one_step_commit_retries_when_an_invalidated_oid_was_loaded():
    harness = Harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x, y] = reserve(b, 2)
    commit_one_step(b, [(x, pack_record(x, b'1', b'')),
                        (y, pack_record(y, b'1', b''))])
    assert b.reply() == CommitAllReply([], STATUS_OKAY)
    a.send(BulkLoad([y]))
    a.replies()
    b.send(CommitAll([(x, pack_record(x, b'2', b'')),
                      (y, pack_record(y, b'2', b''))]))
    assert b.reply() == CommitAllReply([], STATUS_OKAY)
    [mine] = reserve(a)
    commit_one_step(a, [(mine, pack_record(mine, b'a', b''))])
    reply = a.reply()
    assert reply.status == STATUS_RETRY and sorted(reply.oids) == [x, y]
    assert harness.storage.records.get(mine) is None


def test_one_step_commit_retries_past_the_known_limit(monkeypatch):
    monkeypatch.setattr('durus.server_core.KNOWN_LIMIT', 3)
    harness = Harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(b)
    commit_one_step(b, [(x, pack_record(x, b'1', b''))])
    assert b.reply() == CommitAllReply([], STATUS_OKAY)
    a.send(BulkLoad([oid(n) for n in range(100, 104)]))  # 4 > the limit
    a.replies()
    assert a.session.known is None
    [mine] = reserve(a)
    commit_one_step(a, [(mine, pack_record(mine, b'a', b''))])
    assert a.reply() == CommitAllReply([x], STATUS_RETRY)


def test_oids_a_client_committed_count_as_loaded():
    harness = Harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'a', b''))])
    assert a.reply() == CommitAllReply([], STATUS_OKAY)
    b.send(Sync())
    assert b.reply() == Invalidations([x])
    commit_one_step(b, [(x, pack_record(x, b'b', b''))])
    assert b.reply() == CommitAllReply([], STATUS_OKAY)
    [mine] = reserve(a)
    a.send(CommitAll([(mine, pack_record(mine, b'a', b''))]))
    assert a.reply() == CommitAllReply([x], STATUS_RETRY)


def test_an_overdue_lock_is_revoked_only_when_others_wait(log_messages):
    harness = Harness(commit_lock_grace=1.0)
    slow, other = harness.connect('slow'), harness.connect('other')
    [mine] = reserve(other)
    slow.send(CommitStart())
    slow.replies()
    harness.advance(0.5)
    other.send(CommitStart())
    harness.advance(0.4)               # within the grace: others wait
    assert other.replies() == []
    harness.advance(0.2)               # 1.1 s since it took the lock
    assert other.reply() == Invalidations([])
    assert harness.core.commit_holder is other.session
    assert any('letting others commit' in m for m in log_messages)
    other.send(CommitData([(mine, pack_record(mine, b'new', b''))]))
    assert other.reply() == Status(STATUS_OKAY)
    # the late payload of the revoked holder is a conflict, not stored
    slow.send(CommitData([(mine, pack_record(mine, b'late', b''))]))
    assert slow.reply() == Status(STATUS_INVALID)
    assert harness.storage.load(mine) == pack_record(mine, b'new', b'')


def test_a_closed_holder_frees_the_lock():
    harness = Harness()
    a, b = harness.connect('a'), harness.connect('b')
    a.send(CommitStart())
    a.replies()
    b.send(CommitStart())
    a.send_bytes(b'')                  # end of stream inside the exchange
    assert a.closed is not None
    assert b.reply() == Invalidations([])


def test_nobody_waiting_means_no_grace_limit():
    harness = Harness(commit_lock_grace=1.0)
    slow = harness.connect('slow')
    slow.send(CommitStart())
    slow.replies()
    harness.advance(5.0)
    assert harness.core.commit_holder is slow.session
    slow.send(CommitData([(oid(0), record(0))]))
    assert slow.reply() == Status(STATUS_OKAY)


# Invalidations ----------------------------------------------------------

def test_invalidations_reach_every_other_client_once():
    harness = Harness()
    writer, b, c = (harness.connect(name) for name in ('w', 'b', 'c'))
    [x] = reserve(writer)
    commit_one_step(writer, [(x, pack_record(x, b'1', b''))])
    assert writer.reply() == CommitAllReply([], STATUS_OKAY)
    b.send(Load(x))
    assert b.reply() == LoadReply(STATUS_INVALID)    # until it syncs
    b.send(Sync())
    assert b.reply() == Invalidations([x])
    b.send(Load(x))
    assert b.reply() == LoadReply(STATUS_OKAY, pack_record(x, b'1', b''))
    c.send(CommitStart())
    assert c.reply() == Invalidations([x])           # the C list delivers
    c.send(CommitBackOut())
    c.send(Sync())
    assert c.reply() == Invalidations([])
    writer.send(Sync())
    assert writer.reply() == Invalidations([])        # not its own


def test_oids_reserved_by_one_client_cannot_be_committed_by_another():
    harness = Harness()
    owner, thief = harness.connect('owner'), harness.connect('thief')
    [x] = reserve(owner)
    commit_one_step(thief, [(x, pack_record(x, b'mine', b''))])
    reply = thief.reply()
    assert type(reply) is ErrorReply and 'handed to client owner' in (
        reply.reason)
    assert thief.closed.linger
    commit_one_step(owner, [(x, pack_record(x, b'ok', b''))])
    assert owner.reply() == CommitAllReply([], STATUS_OKAY)


def test_shutdown_logs_commits_batches_and_one_step_counts(log_messages):
    storage, harness = deferring_harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(a)
    [y] = reserve(b)
    for client in (a, b):
        client.send(Version(2))
        assert client.reply() == VersionReply(2)
    a.send(CommitAll([(x, pack_record(x, b'a', b''))]))
    b.send(CommitAll([(y, pack_record(y, b'b', b''))]))
    harness.advance()
    harness.finish_fsync()           # both in one batch
    a.send(Load(y))
    a.replies()
    b.send(CommitAll([(y, pack_record(y, b'c', b''))]))
    harness.advance()
    harness.finish_fsync()
    a.send(CommitAll([(x, pack_record(x, b'd', b''))]))   # y loaded: 'R'
    assert a.reply().status == STATUS_RETRY
    harness.core.shutdown(harness.now)
    assert ('Served 3 commits in 2 durable batches; one-step commits: '
            '3 taken, 1 answered retry') in log_messages


# Group commit -------------------------------------------------------------

def test_commits_in_one_round_share_one_fsync_and_replies_wait_for_it():
    storage, harness = deferring_harness()
    a, b, reader = (harness.connect(name) for name in ('a', 'b', 'r'))
    [x] = reserve(a)
    [y] = reserve(b)
    a.send(CommitStart())
    a.replies()
    b.send(CommitStart())
    a.send(CommitData([(x, pack_record(x, b'a', b''))]))
    assert b.reply() == Invalidations([x])   # no data: not held
    b.send(CommitData([(y, pack_record(y, b'b', b''))]))
    reader.send(Load(x))                  # shows the batch: waits
    assert harness.fsyncs == []           # the round is not over
    assert a.replies() == [] and b.replies() == [] and reader.replies() == []
    harness.advance()
    assert harness.fsyncs == [1]          # one fsync for both
    assert a.replies() == [] and reader.replies() == []
    assert x not in storage.durable
    harness.finish_fsync()
    assert storage.durable[x] and storage.durable[y]
    assert a.reply() == Status(STATUS_OKAY)
    assert b.reply() == Status(STATUS_OKAY)
    assert reader.reply() == LoadReply(STATUS_INVALID)
    assert storage.fsyncs == 1


def test_a_lone_clients_commit_is_made_durable_within_its_request():
    # Nobody else could share the fsync: the MakeDurable comes with the
    # commit's own request, not a round of the loop later.
    storage, harness = deferring_harness()
    alone = harness.connect('alone')
    [x] = reserve(alone)
    commit_one_step(alone, [(x, pack_record(x, b'x1', b''))])
    assert harness.fsyncs == [1]
    assert alone.replies() == []          # held until it is durable
    harness.finish_fsync()
    assert alone.reply() == CommitAllReply([], STATUS_OKAY)
    commit_two_step(alone, [(x, pack_record(x, b'x2', b''))])
    assert harness.fsyncs == [2]
    harness.finish_fsync()
    assert alone.reply() == Status(STATUS_OKAY)
    assert storage.fsyncs == 2


def test_with_two_clients_the_batch_closes_at_the_end_of_the_round():
    storage, harness = deferring_harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'x1', b''))])
    assert harness.fsyncs == []           # b may still join it
    harness.advance()
    assert harness.fsyncs == [1]
    harness.finish_fsync()
    assert a.reply() == CommitAllReply([], STATUS_OKAY)


def test_loads_of_records_no_open_batch_wrote_go_out_during_its_fsync():
    storage, harness = deferring_harness()
    writer, reader = harness.connect('w'), harness.connect('r')
    [x, y] = reserve(writer, 2)
    commit_two_step(writer, [(x, pack_record(x, b'x1', b'')),
                             (y, pack_record(y, b'y1', b''))])
    harness.advance()
    harness.finish_fsync()
    assert writer.reply() == Status(STATUS_OKAY)
    reader.send(Sync())
    assert sorted(reader.reply().oids) == [x, y]
    commit_two_step(writer, [(x, pack_record(x, b'x2', b''))])
    harness.advance()
    assert harness.fsyncs == [2]          # its fsync is running
    reader.send(Load(y))                  # y: durable, not in the batch
    assert reader.reply() == LoadReply(STATUS_OKAY,
                                       pack_record(y, b'y1', b''))
    reader.send(BulkLoad([y, oid(70)]))
    assert reader.reply() == BulkLoadReply([
        LoadReply(STATUS_OKAY, pack_record(y, b'y1', b'')),
        LoadReply(STATUS_KEYERROR)])
    reader.send(BulkLoad([y, x]))         # x is in the batch: waits
    reader.send(Load(y))                  # and what follows it too
    assert reader.replies() == [] and writer.replies() == []
    harness.finish_fsync()
    assert writer.reply() == Status(STATUS_OKAY)
    assert reader.replies() == [
        BulkLoadReply([LoadReply(STATUS_OKAY, pack_record(y, b'y1', b'')),
                       LoadReply(STATUS_INVALID)]),
        LoadReply(STATUS_OKAY, pack_record(y, b'y1', b''))]


def test_no_pack_step_runs_while_a_make_durable_does():
    storage = DeferringStorage()
    steps = []

    def packer():
        while True:
            steps.append(harness.fsyncs[:])
            yield

    storage.get_packer = packer
    harness = Harness(storage)
    harness.auto_durable = False
    writer = harness.connect('w')
    [x] = reserve(writer)
    commit_two_step(writer, [(x, pack_record(x, b'x1', b''))])
    harness.advance()
    assert harness.fsyncs == [1]
    writer.send(Pack())
    harness.advance()
    harness.advance()
    assert not harness.core.busy()        # nothing to do until it ends
    assert steps == []
    harness.finish_fsync()
    harness.advance()
    assert steps == [[]]


def test_a_batch_stays_open_while_the_lock_passes_on_until_the_window_ends():
    storage = DeferringStorage()
    harness = Harness(storage, group_commit_window=0.01)
    harness.auto_durable = False
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(a)
    a.send(CommitStart())
    a.replies()
    b.send(CommitStart())                 # waits
    a.send(CommitData([(x, pack_record(x, b'a', b''))]))
    # b holds the lock now and its list (no data) went out at once ...
    assert b.reply() == Invalidations([x])
    harness.advance(0.005)
    assert harness.fsyncs == []           # ... so the batch waits for it
    assert a.replies() == []
    harness.advance(0.006)                # the window is over
    assert harness.fsyncs == [1]
    harness.finish_fsync()
    assert a.reply() == Status(STATUS_OKAY)


def test_a_commit_start_gets_its_list_while_a_batch_waits_for_its_fsync():
    # b's 'C' comes while a's commit is not durable: its invalidation
    # list (oids, no data) goes out at once, and its payload joins the
    # open batch instead of waiting for the fsync with the lock held.
    storage, harness = deferring_harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(a)
    [y] = reserve(b)
    commit_one_step(a, [(x, pack_record(x, b'a', b''))])
    b.send(CommitStart())
    assert b.reply() == Invalidations([x])
    b.send(CommitData([(y, pack_record(y, b'b', b''))]))
    harness.advance()
    assert harness.fsyncs == [1]          # one fsync for both commits
    assert a.replies() == [] and b.replies() == []
    harness.finish_fsync()
    assert a.reply() == CommitAllReply([], STATUS_OKAY)
    assert b.reply() == Status(STATUS_OKAY)
    assert storage.durable[x] and storage.durable[y]


def test_a_one_step_retry_is_not_held_behind_a_running_fsync():
    storage, harness = deferring_harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(b)
    commit_one_step(b, [(x, pack_record(x, b'1', b''))])
    harness.advance()
    harness.finish_fsync()
    assert b.reply() == CommitAllReply([], STATUS_OKAY)
    a.send(Version(2), Load(x))
    a.replies()
    [mine] = reserve(a)
    b.send(CommitAll([(x, pack_record(x, b'2', b''))]))
    harness.advance()
    assert harness.fsyncs == [2]          # b's commit is being synced
    a.send(CommitAll([(mine, pack_record(mine, b'a', b''))]))
    # Nothing stored, nothing to sync: only a's client can tell whether
    # x is a conflict, and it need not wait for b's fsync to do so.
    assert a.reply() == CommitAllReply([x], STATUS_RETRY)
    assert b.replies() == []
    a.send(CommitAll([(mine, pack_record(mine, b'a', b''))]))
    assert a.replies() == []              # stored: waits for its batch
    harness.finish_fsync()
    assert b.reply() == CommitAllReply([], STATUS_OKAY)
    harness.advance()
    harness.finish_fsync()
    assert a.reply() == CommitAllReply([], STATUS_OKAY)


def test_new_oids_and_the_version_are_not_held_behind_a_running_fsync():
    # Oids and the protocol version show nothing of a commit that is
    # not durable yet: a client about to commit new objects gets its oids
    # while another client's batch is synced, and can join the next one.
    storage, harness = deferring_harness()
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'a', b''))])
    harness.advance()
    assert harness.fsyncs == [1]
    b.send(Version(2))
    assert b.reply() == VersionReply(2)
    b.send(NewOids(3))
    oids = b.reply().oids
    assert len(oids) == 3 and x not in oids
    b.send(NewOid())
    assert len(b.reply().oids) == 1
    assert a.replies() == []              # a's commit still waits
    harness.finish_fsync()
    assert a.reply() == CommitAllReply([], STATUS_OKAY)


def test_reply_order_is_kept_behind_held_replies():
    storage, harness = deferring_harness()
    a = harness.connect('a')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'a', b''))])
    harness.advance()
    assert harness.fsyncs == [1]
    a.send(Load(oid(99)))                 # asked after: answered after
    assert a.replies() == []
    harness.finish_fsync()
    assert a.replies() == [CommitAllReply([], STATUS_OKAY),
                           LoadReply(STATUS_KEYERROR)]


def test_commits_during_an_fsync_wait_for_the_next_one():
    storage, harness = deferring_harness()
    a = harness.connect('a')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'1', b''))])
    harness.advance()
    assert harness.fsyncs == [1]
    a.send(CommitAll([(x, pack_record(x, b'2', b''))]))    # pipelined
    harness.advance()
    assert harness.fsyncs == [1]          # one at a time
    harness.finish_fsync()
    assert a.reply() == CommitAllReply([], STATUS_OKAY)   # the first only
    assert storage.durable[x] == pack_record(x, b'2', b'')  # (it wrote both)
    harness.advance()
    assert harness.fsyncs == [2]
    harness.finish_fsync()
    assert a.reply() == CommitAllReply([], STATUS_OKAY)


def test_a_failed_fsync_refuses_the_replies_waiting_for_it(log_messages):
    storage, harness = deferring_harness()
    a, bystander = harness.connect('a'), harness.connect('bystander')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'a', b''))])
    harness.advance()
    harness.finish_fsync(OSError(5, 'Input/output error'))
    assert a.reply() == ErrorReply('commits could not be made durable: '
                                   'OSError: [Errno 5] Input/output error')
    assert a.closed.linger
    assert any('Making commits durable failed' in m for m in log_messages)
    bystander.send(Load(oid(99)))         # later replies are not held
    assert bystander.reply() == LoadReply(STATUS_KEYERROR)


def test_storages_without_the_hooks_commit_in_end():
    harness = Harness(MemoryStorage())
    a = harness.connect('a')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'a', b''))])
    assert a.reply() == CommitAllReply([], STATUS_OKAY)
    harness.advance()
    assert not any(type(action) is MakeDurable for action in harness.log)


# Packing ---------------------------------------------------------------

def test_pack_request_runs_one_step_per_round(log_messages):
    storage = PackingStorage(steps=3)
    harness = Harness(storage)
    a = harness.connect('a')
    a.send(Pack())
    assert a.reply() == Status(STATUS_OKAY)
    assert storage.stepped == 0 and harness.core.busy()
    a.send(Pack())                        # a second one only logs
    assert a.reply() == Status(STATUS_OKAY)
    assert storage.packs == 1
    assert any('already in progress' in m for m in log_messages)
    for expected in (1, 2, 3):
        harness.advance()
        assert storage.stepped == expected
    harness.advance()
    assert harness.core.packer is None and not harness.core.busy()
    assert 'Pack finished' in log_messages


def test_gcbytes_starts_a_pack_and_its_end_resets_the_count():
    storage = PackingStorage(steps=1)
    harness = Harness(storage, gcbytes=200)
    a = harness.connect('a')
    oids = reserve(a, 4)
    client_version = a.send(Version(2)) or a.reply()
    assert client_version == VersionReply(2)
    a.send(CommitAll([(oids[0], pack_record(oids[0], b'x' * 50, b''))]))
    a.reply()
    assert storage.packs == 0
    a.send(CommitAll([(oids[1], pack_record(oids[1], b'x' * 150, b''))]))
    a.reply()
    assert storage.packs == 1
    harness.advance()
    harness.advance()
    assert harness.core.packer is None
    assert harness.core.bytes_since_pack == 0


# Limits and protocol errors ----------------------------------------------

def test_a_frame_over_the_limit_is_refused_with_its_reason():
    harness = Harness(max_frame=1000)
    a = harness.connect('a')
    a.send(Version(2))
    a.reply()
    a.protocol.send(CommitAll([(oid(1), record(1))]))
    a.send_bytes(b'A' + (5000).to_bytes(4, 'big'))   # announced, not sent
    reply = a.reply()
    assert type(reply) is ErrorReply
    assert 'exceeds the frame limit of 1000 bytes' in reply.reason
    assert a.closed.flush and a.closed.linger
    assert a.session not in harness.core.sessions


def test_unknown_commands_close_without_a_reply():
    harness = Harness()
    a = harness.connect('a')
    a.send_bytes(b'X')
    assert a.received == b''
    assert a.closed.linger


def test_a_commit_the_storage_refuses_is_answered_with_the_reason():
    class FullDisk(MemoryStorage):
        def end(self, handle_invalidations=None):
            self.transaction = None
            raise OSError(28, 'No space left on device')

    storage = FullDisk()
    harness = Harness(storage)
    a, b = harness.connect('a'), harness.connect('b')
    a.send(Version(2))
    a.reply()
    [x] = reserve(a)
    a.send(CommitStart())
    a.replies()
    b.send(CommitStart())
    a.send(CommitData([(x, pack_record(x, b'a', b''))]))
    assert a.reply() == ErrorReply(
        'OSError: [Errno 28] No space left on device')
    assert b.reply() == Invalidations([])      # the lock went on


def test_a_conflict_from_the_storage_is_answered_I():
    class Refusing(MemoryStorage):
        def end(self, handle_invalidations=None):
            self.transaction = None
            raise ConflictError([oid(1)])

    harness = Harness(Refusing())
    a = harness.connect('a')
    [x] = reserve(a)
    a.send(CommitStart())
    a.replies()
    a.send(CommitData([(x, pack_record(x, b'a', b''))]))
    assert a.reply() == Status(STATUS_INVALID)
    assert a.closed is None


def test_a_client_that_does_not_read_is_not_served_until_it_does():
    harness = Harness(output_limit=1000)
    harness.flush_writes = False
    a = harness.connect('a')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'z' * 600, b''))])
    a.replies()
    a.send(*[Load(x) for _ in range(5)])
    assert len(a.replies()) == 2              # then it stopped
    assert not harness.core.wants_input(a.session)
    harness.advance()
    assert a.replies() == []
    a.read_all()
    assert len(a.replies()) == 2
    a.read_all()
    assert len(a.replies()) == 1
    assert harness.core.wants_input(a.session)


def test_a_client_stalled_mid_request_is_dropped(log_messages):
    harness = Harness(timeout=10)
    staller, idle = harness.connect('staller'), harness.connect('idle')
    staller.send_bytes(b'L\0\0')
    harness.advance(SWEEP_INTERVAL)
    assert staller.closed is None
    harness.advance(10.5)
    assert staller.closed is not None and not staller.closed.flush
    assert idle.closed is None                 # idle between requests: fine
    assert any('stalled for 10 s' in m for m in log_messages)


def test_version_mismatch_is_answered_then_closed():
    harness = Harness()
    a = harness.connect('a')
    a.protocol.send(Version(7))     # (3 asks for authentication)
    a.send_bytes(b'V\0\0\0\x07')
    assert bytes(a.received) == b'\0\0\0\x01'
    assert a.closed.flush and not a.closed.linger


def test_goodbye_closes_after_the_pending_replies():
    harness = Harness()
    a = harness.connect('a')
    a.send(Load(oid(5)), Goodbye())
    assert a.reply() == LoadReply(STATUS_KEYERROR)
    assert a.closed.flush
    sends = [i for i, act in enumerate(harness.log) if type(act) is Send]
    closes = [i for i, act in enumerate(harness.log) if type(act) is Close]
    assert sends[-1] < closes[0]


def test_quit_stops_the_server():
    harness = Harness()
    a = harness.connect('a')
    a.send(Quit())
    assert harness.stopped


def test_shutdown_makes_pending_commits_durable_and_closes_everyone():
    storage = DeferringStorage()
    harness = Harness(storage)
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'a', b''))])
    harness.core.shutdown(harness.now)
    harness.carry_out()
    assert storage.durable[x]
    assert a.closed is not None and b.closed is not None
    assert harness.core.sessions == set()


def test_next_deadline_follows_the_work_to_do():
    storage = DeferringStorage()
    harness = Harness(storage, group_commit_window=0.002,
                      commit_lock_grace=1.0)
    core = harness.core
    assert core.next_deadline() is None           # nobody connected
    a, b = harness.connect('a'), harness.connect('b')
    harness.advance()
    assert core.next_deadline() == harness.now + SWEEP_INTERVAL
    a.send(CommitStart())
    a.replies()
    b.send(CommitStart())
    assert core.next_deadline() == harness.now + 1.0    # the lock grace
    a.send(CommitData([(oid(0), record(0))]))
    assert core.next_deadline() == harness.now + 0.002  # the batch window
    harness.auto_durable = False
    harness.advance(0.001)
    assert harness.fsyncs == []           # b holds the lock: batch open
    harness.advance(0.0015)
    assert harness.fsyncs == [1]


def test_bulk_loads_answer_each_oid():
    harness = Harness()
    a = harness.connect('a')
    [x] = reserve(a)
    commit_one_step(a, [(x, pack_record(x, b'a', b''))])
    a.replies()
    a.send(BulkLoad([x, oid(77)]))
    reply = a.reply()
    assert reply.replies == [LoadReply(STATUS_OKAY, pack_record(x, b'a', b'')),
                             LoadReply(STATUS_KEYERROR)]


def test_the_open_batch_waits_briefly_for_the_committers_of_the_last():
    storage = DeferringStorage()
    harness = Harness(storage, group_commit_window=0.002)
    harness.auto_durable = False
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(a)
    [y] = reserve(b)
    for client in (a, b):
        client.send(Version(2))
        assert client.reply() == VersionReply(2)
    a.send(CommitAll([(x, pack_record(x, b'a1', b''))]))
    harness.advance()
    assert harness.fsyncs == [1]
    b.send(CommitAll([(y, pack_record(y, b'b1', b''))]))  # batch 2
    harness.advance(0.001)                # the fsync takes 1 ms
    harness.finish_fsync()
    assert a.reply().status == STATUS_OKAY
    harness.advance(0.0002)
    assert harness.fsyncs == []           # b's batch waits for a ...
    a.send(CommitAll([(x, pack_record(x, b'a2', b''))]))
    harness.advance()
    assert harness.fsyncs == [2]          # ... which joins it
    harness.finish_fsync()
    assert a.reply().status == STATUS_OKAY
    assert b.reply().status == STATUS_OKAY
    assert storage.fsyncs == 2


def test_the_wait_for_the_last_committers_is_bounded_by_the_fsync_time():
    storage = DeferringStorage()
    harness = Harness(storage, group_commit_window=0.002)
    harness.auto_durable = False
    a, b = harness.connect('a'), harness.connect('b')
    [x] = reserve(a)
    [y] = reserve(b)
    for client in (a, b):
        client.send(Version(2))
        assert client.reply() == VersionReply(2)
    a.send(CommitAll([(x, pack_record(x, b'a1', b''))]))
    harness.advance()
    b.send(CommitAll([(y, pack_record(y, b'b1', b''))]))
    harness.advance(0.0005)               # the fsync takes 0.5 ms
    harness.finish_fsync()
    assert a.reply().status == STATUS_OKAY
    assert harness.core.next_deadline() == pytest.approx(harness.now + 0.0005)
    harness.advance(0.0004)
    assert harness.fsyncs == []
    harness.advance(0.0002)               # a did not come back in time
    assert harness.fsyncs == [2]
    harness.finish_fsync()
    assert b.reply().status == STATUS_OKAY
    # A committer that disconnects is not waited for at all.
    b.send(CommitAll([(y, pack_record(y, b'b2', b''))]))
    harness.advance()
    a.send(CommitAll([(x, pack_record(x, b'a2', b''))]))
    harness.advance(0.001)
    harness.finish_fsync()
    b.send(Goodbye())
    harness.advance()
    assert harness.fsyncs == [4]
