"""PgStorage beyond the shared storage suites: the schema check, the
driver being optional, exact record round trips, the server's conflict
semantics between clients, oids, read-only, the commit lock."""

import os
import subprocess
import sys

import pytest

import pg_cluster
from durus.connection import Connection
from durus.error import (
    ConflictError, DurusKeyError, ReadConflictError, ReadOnlyError,
    UnknownFormatError)
from durus.persistent_dict import PersistentDict
from durus.serialize import RecordError, pack_record
from durus.storage import ROOT_OID
from durus.utils import int8_to_str

psycopg = pytest.importorskip('psycopg', reason=pg_cluster.DRIVER_HINT)
from durus.pg_storage import (  # noqa: E402
    CommitLockTimeout, PgStorage, oid_to_int)

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def dsn():
    return pg_cluster.session_cluster().new_dsn()


@pytest.fixture
def opened(dsn):
    """``opened(**kw)``: one more PgStorage on the test's database."""
    storages = []

    def open_one(**kw):
        storages.append(PgStorage(dsn, create=not storages, **kw))
        return storages[-1]
    yield open_one
    for storage in storages:
        storage.close()


def thing(oid, refs=(), size=10):
    return pack_record(oid, b'\x80\x02capp\nThing\nq\x00.' + b'x' * size,
                       b''.join(refs))


def commit(storage, *records):
    storage.begin()
    for record in records:
        storage.store(record[:8], record)
    storage.end()


def test_a_database_without_the_schema_is_refused(dsn):
    with pytest.raises(UnknownFormatError, match='create=True'):
        PgStorage(dsn)


def test_a_database_of_another_schema_version_is_refused(dsn, opened):
    opened().conn.execute(
        "UPDATE durus_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(UnknownFormatError, match="version '99'"):
        PgStorage(dsn)
    with pytest.raises(UnknownFormatError, match="version '99'"):
        PgStorage(dsn, create=True)     # create never overwrites


def test_tables_not_made_by_pgstorage_are_refused(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('CREATE TABLE durus_meta (key text, value text)')
        conn.execute("INSERT INTO durus_meta VALUES ('x', 'y')")
    with pytest.raises(UnknownFormatError, match='not made by PgStorage'):
        PgStorage(dsn)


def test_the_durus_package_does_not_import_psycopg():
    code = ('import sys, durus.pg_storage, durus.connection, '
            'durus.__main__; print("psycopg" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], cwd=PROJECT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'


def test_a_missing_driver_is_a_one_line_error_naming_the_extra():
    code = ('import sys; sys.modules["psycopg"] = None\n'
            'from durus.pg_storage import PgStorage\n'
            'try:\n    PgStorage("postgresql:///x")\n'
            'except ImportError as e:\n    print(e)')
    out = subprocess.run([sys.executable, '-c', code], cwd=PROJECT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "PgStorage needs psycopg 3: pip install 'durus-shell[postgresql]'")


def test_records_round_trip_byte_for_byte(opened):
    storage = opened()
    high = b'\xff' * 8      # oid numbers >= 2**63 are negative bigints
    refs = [int8_to_str(n) for n in (5, 3, 3, 2 ** 40)] + [high]
    records = [thing(ROOT_OID, refs, 0), thing(high, (), 100000),
               pack_record(int8_to_str(7), b'', b'')]
    commit(storage, *records)
    assert list(storage.bulk_load([r[:8] for r in records])) == records
    assert opened().load(high) == records[1]


def test_a_damaged_row_is_a_clear_error(opened):
    storage = opened()
    commit(storage, thing(ROOT_OID))
    storage.conn.execute('UPDATE durus_object SET refs = ARRAY[1, NULL]')
    with pytest.raises(RecordError, match='bad refs array'):
        storage.load(ROOT_OID)


def test_a_record_under_another_oid_is_refused(opened):
    storage = opened()
    storage.begin()
    with pytest.raises(ValueError, match='starts with oid'):
        storage.store(int8_to_str(1), thing(int8_to_str(2)))


def test_server_semantics_between_two_clients(opened):
    first, second = opened(), opened()
    a, b = first.new_oid(), first.new_oid()
    commit(first, thing(a), thing(b))
    assert second.sync() == [a, b]
    commit(first, thing(a, size=20))
    # Changed since second's last sync: refused until it syncs.
    with pytest.raises(ReadConflictError) as info:
        second.load(a)
    assert info.value.oids == [a]
    assert second.load(b) == thing(b)
    assert second.sync() == [a]
    assert second.load(a) == thing(a, size=20)
    # A client's own commits are not news to it.
    commit(second, thing(b, size=30))
    assert second.sync() == []
    assert first.sync() == [b]


def test_a_commit_hands_the_news_to_the_connection_first(opened):
    first, second = opened(), opened()
    a = first.new_oid()
    commit(first, thing(a))
    second.sync()
    commit(first, thing(a, size=5))
    told = []

    def refuse(oids):
        told.append(oids)
        raise ConflictError(oids)
    second.begin()
    second.store(a, thing(a, size=99))
    with pytest.raises(ConflictError):
        second.end(refuse)
    assert told == [[a]]
    assert first.load(a) == thing(a, size=5)     # nothing was written


def test_pack_removals_reach_other_clients_and_a_second_pack_purges(
        opened):
    first, second = opened(), opened()
    connection = Connection(first)
    connection.root['keep'] = PersistentDict()
    connection.root['drop'] = PersistentDict()
    connection.commit()
    dropped = connection.root['drop']._p_oid
    del connection.root['drop']
    connection.commit()
    second.sync()
    connection.pack()
    assert dropped in second.sync()
    with pytest.raises(DurusKeyError):
        second.load(dropped)
    rows = first.conn.execute('SELECT count(*) FROM durus_object WHERE '
                              'data IS NULL').fetchone()[0]
    assert rows == 1            # a tombstone, for clients still to sync
    connection.pack()
    assert first.conn.execute('SELECT count(*) FROM durus_object WHERE '
                              'zoid = %s', (oid_to_int(dropped),)
                              ).fetchone()[0] == 0


def test_oids_stored_without_new_oid_are_never_handed_out(opened):
    storage = opened()
    commit(storage, thing(int8_to_str(500)))
    fresh = [storage.new_oid() for _ in range(40)]
    other = opened()
    fresh += [other.new_oid() for _ in range(40)]
    assert all(oid_to_int(oid) > 500 for oid in fresh)
    assert len(set(fresh)) == 80


def test_readonly_refuses_writes(opened):
    writer = opened()
    commit(writer, thing(ROOT_OID))
    reader = opened(readonly=True)
    assert reader.load(ROOT_OID) == thing(ROOT_OID)
    reader.begin()
    with pytest.raises(ReadOnlyError):
        reader.store(ROOT_OID, thing(ROOT_OID))
    with pytest.raises(ReadOnlyError):
        reader.pack()


def test_a_held_commit_lock_times_out_cleanly(dsn, opened):
    storage = opened(lock_timeout=0.2)
    commit(storage, thing(ROOT_OID))
    with psycopg.connect(dsn) as holder:
        holder.execute('SELECT pg_advisory_xact_lock(17493, 1)')
        storage.begin()
        storage.store(ROOT_OID, thing(ROOT_OID, size=1))
        with pytest.raises(CommitLockTimeout, match='nothing was written'):
            storage.end()
    commit(storage, thing(ROOT_OID, size=2))  # usable afterwards
    assert storage.load(ROOT_OID) == thing(ROOT_OID, size=2)


def test_no_transaction_stays_open_between_requests(dsn, opened):
    storage = opened()
    connection = Connection(storage)
    connection.root['x'] = 1
    connection.commit()
    connection.abort()
    list(storage.gen_oid_record())
    with psycopg.connect(dsn, autocommit=True) as conn:
        states = conn.execute(
            "SELECT state FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid() AND "
            "backend_type = 'client backend'").fetchall()
    assert ('idle in transaction',) not in states


def test_pack_rescues_garbage_reattached_between_mark_and_sweep(
        opened, monkeypatch):
    import durus.pg_storage
    monkeypatch.setattr(durus.pg_storage, 'PACK_BATCH', 1)
    storage = opened()
    connection = Connection(storage)
    root = connection.get_root()
    held = PersistentDict(child=PersistentDict(leaf=1))
    root['held'] = held
    root['junk'] = [PersistentDict(i=i) for i in range(3)]
    connection.commit()
    del root['held']
    del root['junk']
    connection.commit()
    packer = storage.get_packer()
    next(packer)                    # marked: held, its child, junk garbage
    root['again'] = held            # re-attached while the pack runs
    connection.commit()
    steps = sum(1 for _ in packer)
    assert steps >= 2               # swept in several batches
    other = opened()
    again = Connection(other).get_root()['again']
    assert again['child']['leaf'] == 1
    assert other.conn.execute('SELECT count(*) FROM durus_object WHERE '
                              'data IS NULL').fetchone()[0] == 3


def test_an_unreachable_replica_is_skipped_and_not_retried_at_once(
        tmp_path, opened):
    writer = opened()
    commit(writer, thing(ROOT_OID))
    reader = opened(replica_dsn='postgresql:///x?host=%s&port=1'
                    % tmp_path, connect_timeout=2)
    assert reader.load(ROOT_OID) == thing(ROOT_OID)
    replica = reader.replicas[0]
    assert replica.conn is None and replica.down_until > 0
    assert list(reader.bulk_load([ROOT_OID])) == [thing(ROOT_OID)]
    assert reader.reads == {'primary': 2, 'replica': 0}


def test_a_connection_lost_before_commit_is_a_clear_not_made_error(
        dsn, opened):
    import threading
    from durus.pg_storage import PgConnectionError
    storage = opened(reconnect_timeout=10)
    commit(storage, thing(ROOT_OID))
    pid = storage.conn.info.backend_pid
    outcome = []
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute('BEGIN')
        holder.execute('SELECT pg_advisory_xact_lock(17493, 1)')

        def committer():
            storage.begin()
            storage.store(ROOT_OID, thing(ROOT_OID, size=7))
            try:
                storage.end()
                outcome.append('returned')
            except Exception as error:
                outcome.append(error)
        thread = threading.Thread(target=committer)
        thread.start()
        try:
            assert pg_cluster.wait_until(lambda: holder.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT "
                "granted", (pid,)).fetchone()[0] == 1, 10)
            holder.execute('SELECT pg_terminate_backend(%s)', (pid,))
        finally:
            holder.execute('ROLLBACK')
            thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], PgConnectionError)
    assert 'was not made' in str(outcome[0])
    assert storage.load(ROOT_OID) == thing(ROOT_OID)   # reconnected
    commit(storage, thing(ROOT_OID, size=8))
    assert opened().load(ROOT_OID) == thing(ROOT_OID, size=8)


def test_after_a_lost_connection_a_commit_is_found_or_reported_not_made(
        opened):
    from durus.pg_storage import PgConnectionError
    storage = opened()
    commit(storage, thing(ROOT_OID))
    made = storage.last_tid
    lost = psycopg.OperationalError('server closed the connection')
    storage._commit_lost(lost, True, made)      # found: returns
    with pytest.raises(PgConnectionError, match='not made'):
        storage._commit_lost(lost, True, made + 1)
    with pytest.raises(PgConnectionError, match='not made'):
        storage._commit_lost(lost, False, None)
    assert storage.reconnects == 3


def test_messages_never_show_a_password():
    from durus.pg_storage import safe_dsn
    from durus.storage_names import shown_name
    for dsn in ('postgresql://app:s3cret@db1/app',
                'host=db1 password=s3cret dbname=app'):
        assert 's3cret' not in safe_dsn(dsn) and 'db1' in safe_dsn(dsn)
    assert 's3cret' not in shown_name('postgresql://app:s3cret@db1/app')
    with pytest.raises(Exception) as info:
        PgStorage('postgresql://app:s3cret@/app?host=/nonexistent&port=1',
                  connect_timeout=2)
    assert 's3cret' not in str(info.value)


def test_commits_work_after_repeated_lock_timeouts(dsn, opened):
    # Each timeout aborts a commit's pipeline midway (past psycopg's
    # prepare_threshold): the storage stays usable.
    storage = opened(lock_timeout=0.05)
    commit(storage, thing(ROOT_OID))
    with psycopg.connect(dsn) as holder:
        holder.execute('SELECT pg_advisory_xact_lock(17493, 1)')
        for size in range(8):
            storage.begin()
            storage.store(ROOT_OID, thing(ROOT_OID, size=size))
            with pytest.raises(CommitLockTimeout):
                storage.end()
    for size in range(8):
        commit(storage, thing(ROOT_OID, size=100 + size))
    assert opened().load(ROOT_OID) == thing(ROOT_OID, size=107)


def test_pending_changes_counts_others_commits_without_taking_them(opened):
    mine, other = opened(), opened()
    a, b = other.new_oid(), other.new_oid()
    commit(other, thing(a), thing(b))
    commit(other, thing(b, size=20))
    pending = mine.pending_changes()
    assert (pending.count, pending.commits) == (2, 2)
    assert pending.oids == [b, a]          # the newest first
    assert mine.pending_changes(limit=1).oids == [b]
    assert mine.pending_changes().count == 2   # nothing was taken
    assert sorted(mine.sync()) == [a, b]
    assert mine.pending_changes().count == 0
    commit(mine, thing(a, size=30))
    assert other.pending_changes().commits == 1   # mine, seen by other
    assert mine.pending_changes().count == 0      # not its own
