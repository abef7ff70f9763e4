"""PgStorage on a throwaway PostgreSQL (real fsync, synchronous_commit on)
with a streaming hot standby, both started here (tests/pg_cluster.py).

* one client, `commits` small commits (each fsynced by PostgreSQL);
* four client processes: cold loads of their own 10k objects (the
  'clients' file, copied in with durus copy), then `client_commits`
  commits each, as server_clients.py does against a Durus server; the
  same loads again with the standby serving them (replica_dsn);
* a cold load of `cold` objects in a new process, from the primary and
  from the standby.

Params: path, commits, client_commits, cold.
Metrics: commits_per_s, clients_loads_per_s, clients_commits_per_s,
replica_clients_loads_per_s, cold_load_s, replica_cold_load_s.
"""

import json
import os
import subprocess
import sys
import time

from _bench import (
    clock, client_of_clients_row, emit, params, run_client_processes)

HERE = os.path.abspath(__file__)
TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    HERE))), 'tests')


def client(dsn, replica, index, commits):
    from durus.pg_storage import PgStorage
    client_of_clients_row(PgStorage(dsn, replica_dsn=replica or None), index,
                          commits)


def cold(dsn, replica):
    from durus.connection import Connection
    from durus.pg_storage import PgStorage
    storage = PgStorage(dsn, replica_dsn=replica or None)
    connection = Connection(storage, cache_size=200000)
    start = clock()
    seen = sum(1 for obj in connection.get_root()['big'] if obj.n >= 0)
    elapsed = clock() - start
    storage.close()
    print(json.dumps({'seconds': elapsed, 'seen': seen,
                      'replica': storage.reads['replica']}), flush=True)


def run_clients(dsn, replica, clients, commits):
    reports = run_client_processes(
        [HERE, 'client', dsn, replica, str(k), str(commits)]
        for k in range(clients))
    load_span = (max(r['load_end'] for r in reports)
                 - min(r['load_start'] for r in reports))
    commit_span = (max(r['commit_end'] for r in reports)
                   - min(r['load_end'] for r in reports))
    return (sum(r['loads'] for r in reports) / load_span,
            clients * commits / commit_span if commits else None)


def run_cold(dsn, replica):
    out = subprocess.run([sys.executable, HERE, 'cold', dsn, replica],
                         capture_output=True, text=True, timeout=600,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def caught_up(primary, standby):
    target = primary.sql('SELECT pg_current_wal_insert_lsn()')[0][0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if standby.sql("SELECT pg_last_wal_replay_lsn() >= '%s'"
                       % target)[0][0]:
            return
        time.sleep(0.05)
    raise SystemExit('the standby did not catch up')


def main():
    p = params()
    sys.path.insert(0, TESTS)
    import pg_cluster
    from durus.connection import Connection
    from durus.copy import copy_storage
    from durus.file_storage import FileStorage
    from durus.persistent_list import PersistentList
    from durus.pg_storage import PgStorage
    from bench_models import Small
    primary = pg_cluster.PgCluster(port=5432, settings={
        'shared_buffers': '256MB', 'max_connections': '40'})
    standby = None
    try:
        standby = pg_cluster.PgCluster(primary.bindir, port=5433,
                                       root=primary.root, data_from=primary)
        dsn, replica = primary.dsn(), standby.dsn()
        # One client's small commits.
        storage = PgStorage(dsn, create=True)
        connection = Connection(storage)
        connection.get_root()['counter'] = counter = Small(0)
        connection.commit()
        commits = p.get('commits', 2000)
        start = clock()
        for i in range(commits):
            counter.n = i
            connection.commit()
        commits_per_s = commits / (clock() - start)
        # The clients' data, and `cold` objects for the cold loads.
        source = FileStorage(p['path'], readonly=True)
        root = connection.get_root()
        del root['counter']
        connection.commit()
        storage.close()
        storage = PgStorage(dsn)
        copy_storage(source, storage, force=True)
        source.close()
        connection = Connection(storage)
        big = PersistentList()
        connection.get_root()['big'] = big
        for i in range(p.get('cold', 100000)):
            big.append(Small(i))
            if len(big) % 20000 == 0:
                connection.commit()
        connection.commit()
        storage.close()
        primary.sql('VACUUM ANALYZE')
        caught_up(primary, standby)
        loads, client_commits = run_clients(dsn, '', 4,
                                            p.get('client_commits', 200))
        caught_up(primary, standby)
        replica_loads, _ = run_clients(dsn, replica, 4, 0)
        cold_primary = run_cold(dsn, '')
        cold_replica = run_cold(dsn, replica)
        if not cold_replica['replica']:
            raise SystemExit('the standby served no loads')
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()
    emit(commits_per_s=commits_per_s, clients_loads_per_s=loads,
         clients_commits_per_s=client_commits,
         replica_clients_loads_per_s=replica_loads,
         cold_load_s=cold_primary['seconds'],
         replica_cold_load_s=cold_replica['seconds'])


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == 'client':
        client(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == 'cold':
        cold(sys.argv[2], sys.argv[3])
    else:
        main()
