"""Conflicts between two connections, as with two clients of one server.

``SharedStorage`` plays the server: one set of records and, per client,
the oids other clients committed since that client last synced.
``ClientView`` is a client's storage: a load of an oid it must
invalidate first is answered with ReadConflictError (the server's "I"),
and ``end()`` hands pending invalidations to the connection before
committing, like ClientStorage does.
"""

import pytest

from durus.connection import Connection, StillConflictedError
from durus.error import ConflictError, ReadConflictError, WriteConflictError
from durus.persistent import GHOST, Persistent
from durus.storage import MemoryStorage, Storage


class Counter(Persistent):
    def __init__(self, value=0):
        self.value = value


class SharedStorage(MemoryStorage):
    def __init__(self):
        MemoryStorage.__init__(self)
        self.pending = {}

    def client(self):
        view = ClientView(self)
        self.pending[view] = set()
        return view


class ClientView(Storage):
    def __init__(self, shared):
        self.shared = shared
        self.transaction = None

    def new_oid(self):
        return self.shared.new_oid()

    def load(self, oid):
        if oid in self.shared.pending[self]:
            raise ReadConflictError([oid])
        return self.shared.load(oid)

    def begin(self):
        self.transaction = {}

    def store(self, oid, record):
        self.transaction[oid] = record

    def end(self, handle_invalidations=None):
        invalid = self.shared.pending[self]
        if invalid and handle_invalidations is not None:
            self.shared.pending[self] = set()
            handle_invalidations(sorted(invalid))
        self.shared.records.update(self.transaction)
        for view, oids in self.shared.pending.items():
            if view is not self:
                oids.update(self.transaction)
        self.transaction = None

    def sync(self):
        invalid = sorted(self.shared.pending[self])
        self.shared.pending[self] = set()
        return invalid


def _shared_memory_clients():
    shared = SharedStorage()
    return shared.client, lambda: None


def _postgresql_clients():
    """Each client a PgStorage on one fresh database of the session's
    throwaway PostgreSQL cluster."""
    import pg_cluster
    pytest.importorskip('psycopg', reason=pg_cluster.DRIVER_HINT)
    from durus.pg_storage import PgStorage
    cluster = pg_cluster.session_cluster()
    dsn = cluster.new_dsn()
    opened = []

    def client():
        opened.append(PgStorage(dsn, create=not opened))
        return opened[-1]

    def close():
        for storage in opened:
            storage.close()
    return client, close


CLIENT_KINDS = {'shared-memory': _shared_memory_clients,
                'postgresql': _postgresql_clients}


@pytest.fixture(params=sorted(CLIENT_KINDS))
def new_client(request):
    """A function returning one more client storage of one database."""
    client, close = CLIENT_KINDS[request.param]()
    request.addfinalizer(close)
    return client


@pytest.fixture
def pair(new_client):
    first = Connection(new_client())
    first.root['counter'] = Counter()
    first.root['other'] = Counter()
    first.commit()
    second = Connection(new_client())
    return first, second


def bump(connection, name='counter'):
    counter = connection.root[name]
    counter.value += 1
    connection.commit()


def test_untouched_invalidated_objects_are_silently_refreshed(pair):
    first, second = pair
    counter = second.root['counter']
    assert counter.value == 0
    second.commit()
    bump(first)
    second.commit()
    assert counter._p_status == GHOST
    assert counter.value == 1


def test_write_conflict_when_both_change_the_same_object(pair):
    first, second = pair
    second.root['counter'].value
    bump(first)
    second.root['counter'].value = 99
    with pytest.raises(WriteConflictError) as info:
        second.commit()
    oid = second.root['counter']._p_oid
    assert info.value.oids == [oid]
    assert oid in second.invalid_oids


def test_write_conflict_on_an_object_read_in_the_transaction(pair):
    first, second = pair
    value = second.root['counter'].value
    bump(first)
    second.root['other'].value = value
    with pytest.raises(WriteConflictError):
        second.commit()


def test_changed_but_unread_object_is_a_conflict_not_a_lost_edit(pair):
    first, second = pair
    counter = second.root['counter']
    counter.value
    second.commit()
    bump(first)
    # A blind write in a new transaction: Durus 4.3 could ghost it away.
    counter.value = 42
    with pytest.raises(WriteConflictError):
        second.commit()


def test_abort_and_retry_succeeds(pair):
    first, second = pair
    second.root['counter'].value
    bump(first)
    second.root['counter'].value += 10
    with pytest.raises(ConflictError):
        second.commit()
    with pytest.raises(StillConflictedError):
        second.commit()
    second.abort()
    assert not second.invalid_oids
    bump(second)
    first.abort()
    assert first.root['counter'].value == 2


def test_read_conflict_when_loading_after_an_invalidated_read(pair):
    first, second = pair
    counter = second.root['counter']
    other = second.root['other']
    counter.value
    other._p_set_status_ghost()
    bump(first, 'counter')
    bump(first, 'other')
    with pytest.raises(ReadConflictError) as info:
        other.value
    assert info.value.oids == [other._p_oid]
    assert counter._p_oid in second.invalid_oids
    second.abort()
    assert other.value == 1 and counter.value == 1


def test_load_retries_when_no_invalidated_object_was_used(pair):
    first, second = pair
    other = second.root['other']
    other._p_set_status_ghost()
    second.commit()
    bump(first, 'other')
    assert other.value == 1


def test_new_objects_are_unbound_after_a_conflict(pair):
    first, second = pair
    second.root['counter'].value
    bump(first)
    fresh = Counter(5)
    second.root['counter'].value = fresh
    with pytest.raises(ConflictError):
        second.commit()
    assert fresh._p_oid is None and fresh._p_connection is None
    second.abort()
    second.root['counter'].value = fresh
    second.commit()
    assert fresh._p_oid is not None


def test_read_only_transaction_ends_with_empty_commit(pair):
    first, second = pair
    assert second.root['counter'].value == 0
    bump(first)
    second.commit()
    assert not second.invalid_oids
    assert second.root['counter'].value == 1
