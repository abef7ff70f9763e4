"""Lost updates: four processes move money between accounts through
PgStorage at the same time, retrying on conflicts.  The total must not
change, and every commit that returned must be in the database (and no
other)."""

import json
import os
import subprocess
import sys

import pytest

import pg_cluster
from server_process import stop_process

psycopg = pytest.importorskip('psycopg', reason=pg_cluster.DRIVER_HINT)
from durus.connection import Connection  # noqa: E402
from durus.persistent_dict import PersistentDict  # noqa: E402
from durus.pg_storage import PgStorage  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))
ACCOUNTS = 8
SECONDS = 4


@pytest.mark.timeout(60)
def test_no_lost_updates_between_four_processes():
    sys.path.insert(0, TESTS)
    from pg_stress_worker import Account
    cluster = pg_cluster.session_cluster()
    dsn = cluster.dsn(cluster.new_database())  # its own commit lock
    storage = PgStorage(dsn, create=True)
    connection = Connection(storage)
    connection.get_root()['accounts'] = PersistentDict(
        ('a%d' % i, Account(1000)) for i in range(ACCOUNTS))
    connection.commit()
    workers = [subprocess.Popen(
        [sys.executable, 'pg_stress_worker.py', dsn, str(SECONDS), str(i)],
        cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for i in range(4)]
    try:
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=SECONDS + 40)
            assert worker.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for worker in workers:
            stop_process(worker, kill=True)
    try:
        connection.abort()
        accounts = connection.get_root()['accounts']
        assert sum(a.balance for a in accounts.values()) == 1000 * ACCOUNTS
        acknowledged = [name for r in results for name in r['acknowledged']]
        recorded = [name for a in accounts.values() for name in a.transfers]
        # Each transfer is recorded in its two accounts.
        assert sorted(recorded) == sorted(acknowledged * 2)
        assert len(acknowledged) > 20
        assert sum(r['conflicts'] for r in results) > 0   # they did clash
    finally:
        storage.close()
