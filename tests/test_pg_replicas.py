"""Loads from hot standbys, and failover to a promoted standby, with a
primary and a streaming standby this module starts (pg_basebackup -R)."""

import json
import os
import subprocess
import sys
import time

import pytest

import pg_cluster
from server_process import stop_process

psycopg = pytest.importorskip('psycopg', reason=pg_cluster.DRIVER_HINT)
from durus.connection import Connection  # noqa: E402
from durus.error import ReadConflictError  # noqa: E402
from durus.persistent_dict import PersistentDict  # noqa: E402
from durus.pg_storage import PgStorage  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))


def start_pair(primary_settings=None):
    primary = pg_cluster.PgCluster(pg_cluster.require_binaries(), port=5432,
                                   settings=primary_settings)
    try:
        standby = pg_cluster.PgCluster(primary.bindir, port=5433,
                                       root=primary.root, data_from=primary)
    except BaseException:
        primary.stop()
        raise
    return primary, standby


def stop_pair(primary, standby):
    try:
        standby.stop()
    finally:
        primary.stop()


@pytest.fixture(scope='module')
def pair():
    primary, standby = start_pair({'fsync': 'off'})
    try:
        yield primary, standby
    finally:
        stop_pair(primary, standby)


def replayed(primary, standby, dbname='postgres'):
    """Wait until the standby has replayed everything the primary wrote."""
    target = primary.sql('SELECT pg_current_wal_insert_lsn()')[0][0]
    assert pg_cluster.wait_until(lambda: standby.sql(
        "SELECT pg_last_wal_replay_lsn() >= '%s'" % target)[0][0], 10)


def test_loads_go_to_a_standby_that_has_caught_up_and_never_stale(pair):
    primary, standby = pair
    dbname = primary.new_database()
    writer = PgStorage(primary.dsn(dbname), create=True)
    connection = Connection(writer)
    connection.get_root()['box'] = PersistentDict(n=0)
    connection.commit()
    replayed(primary, standby)
    reader = PgStorage(primary.dsn(dbname), replica_dsn=standby.dsn(dbname),
                       replica_wait=0.01)
    try:
        view = Connection(reader)
        assert view.get_root()['box']['n'] == 0
        assert reader.reads['replica'] > 0 and reader.reads['primary'] == 0
        standby.sql('SELECT pg_wal_replay_pause()')
        try:
            for n in range(1, 4):
                connection.get_root()['box']['n'] = n
                connection.commit()
                view.abort()        # syncs: the box changed
                # The standby still has n - 1: the primary answers.
                assert view.get_root()['box']['n'] == n
            assert reader.reads['primary'] > 0
            # The reader's own commit is not read back stale either.
            view.get_root()['box']['n'] = 10
            view.commit()
            view.get_root()['box']._p_set_status_ghost()
            assert view.get_root()['box']['n'] == 10
        finally:
            standby.sql('SELECT pg_wal_replay_resume()')
        replayed(primary, standby)
        before = reader.reads['replica']
        view.get_root()['box']._p_set_status_ghost()
        assert view.get_root()['box']['n'] == 10
        assert reader.reads['replica'] == before + 1
    finally:
        reader.close()
        writer.close()


def test_a_lagging_standby_never_hides_a_conflict(pair):
    primary, standby = pair
    dbname = primary.new_database()
    writer = PgStorage(primary.dsn(dbname), create=True)
    connection = Connection(writer)
    connection.get_root()['box'] = PersistentDict(n=0)
    connection.commit()
    box = connection.get_root()['box']._p_oid
    replayed(primary, standby)
    reader = PgStorage(primary.dsn(dbname), replica_dsn=standby.dsn(dbname),
                       replica_wait=0)
    try:
        reader.load(box)
        standby.sql('SELECT pg_wal_replay_pause()')
        try:
            connection.get_root()['box']['n'] = 1
            connection.commit()
            reader.sync()
            # The standby would answer n=0 with a tid the reader accepts:
            # it lags behind the reader's snapshot, so the primary answers.
            assert reader.load(box) == writer.load(box)
        finally:
            standby.sql('SELECT pg_wal_replay_resume()')
        connection.get_root()['box']['n'] = 2
        connection.commit()
        replayed(primary, standby)
        # Newer than the reader's snapshot, on the standby too: a conflict.
        with pytest.raises(ReadConflictError):
            reader.load(box)
    finally:
        reader.close()
        writer.close()


@pytest.mark.timeout(90)
def test_failover_to_a_promoted_standby_loses_no_acknowledged_commit():
    primary, standby = start_pair({'synchronous_standby_names': "'*'",
                                   'synchronous_commit': 'on'})
    worker = None
    try:
        dsn = ('postgresql:///postgres?host=%s,%s&port=%d,%d&user=postgres'
               '&target_session_attrs=read-write' % (
                   primary.root, standby.root, primary.port, standby.port))
        storage = PgStorage(dsn, create=True)
        setup = Connection(storage)
        setup.get_root()['counter'] = PersistentDict(n=0)
        setup.commit()
        storage.close()
        worker = subprocess.Popen(
            [sys.executable, 'pg_failover_worker.py', dsn, '6'], cwd=TESTS,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        primary.stop_server('immediate')
        time.sleep(0.5)
        standby.promote()
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        result = json.loads(out)
        # Commits went on after the primary went away under the client
        # (it reconnected); a commit in flight then either went through
        # or raised "not made" (counted as lost, not acknowledged).
        assert result['before'] > 0 and result['after'] > 0, (result, err)
        storage = PgStorage(standby.dsn())
        try:
            final = Connection(storage).get_root()['counter']['n']
        finally:
            storage.close()
        assert final == result['acknowledged']
    finally:
        if worker is not None:
            stop_process(worker, kill=True)
        stop_pair(primary, standby)
