"""Four clients, the way an outside harness runs them: own key ranges of a
BTree, no start barrier, each client timing itself.

Each side first writes its own database (with its own durus): root['tree'],
a BTree of clients x per_client Small objects keyed 0, 1, ...  A server
serves it.  Client k is started as soon as the server listens (no barrier
between clients) and:

1. connects and cold-loads keys [k*per_client, (k+1)*per_client) one by
   one through the tree (tree[key].n), timing that;
2. makes `commits` commits, each changing one of its own objects, timing
   that.

So phases overlap as they happen to: the first client to finish loading
commits while others still load.  Params: clients, per_client, commits.
Metrics: commits_per_s (all commits / span from the first commit to the
last), client_commits_per_s (the sum of each client's own rate),
loads_per_s (all loads / span of the load phases), commit_span_s.
"""

import json
import os
import re
import sys
import tempfile

from _bench import clock, emit, params, run_client_processes
from _server import HOST, running_server


def make_database(path, total):
    from durus.btree import BTree
    from durus.connection import Connection
    from durus.file_storage import FileStorage
    from bench_models import Small
    storage = FileStorage(path)
    connection = Connection(storage)
    tree = connection.get_root()['tree'] = BTree()
    for key in range(total):
        tree[key] = Small(key)
        if key % 5000 == 4999:
            connection.commit()
    connection.commit()
    storage.close()


def client(port, index, per_client, commits):
    started = clock()
    from durus.client_storage import ClientStorage
    from durus.connection import Connection
    storage = ClientStorage(host=HOST, port=port)
    connection = Connection(storage, cache_size=100000)
    connected = clock()
    tree = connection.get_root()['tree']
    keys = range(index * per_client, (index + 1) * per_client)
    load_start = clock()
    total = 0
    for key in keys:
        total += tree[key].n
    load_end = clock()
    loads = connection.get_load_count()
    objects = [tree[key] for key in keys]
    commit_start = clock()
    for i in range(commits):
        objects[i % len(objects)].n = -i
        connection.commit()
    commit_end = clock()
    storage.close()
    print(json.dumps({'started': started, 'connected': connected,
                      'load_start': load_start, 'load_end': load_end,
                      'commit_start': commit_start, 'commit_end': commit_end,
                      'loads': loads}), flush=True)


def main():
    p = params()
    clients = p.get('clients', 4)
    per_client = p.get('per_client', 10000)
    commits = p.get('commits', 200)
    here = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'keyed.durus')
        make_database(path, clients * per_client)
        with running_server(path, os.path.join(tmp, 'server.log')) as port:
            # No start barrier: as the outside harness (the docstring).
            launched = clock()
            reports = run_client_processes(
                ([here, 'client', str(port), str(k), str(per_client),
                  str(commits)] for k in range(clients)), barrier=False)
        server_counts = read_server_counts(os.path.join(tmp, 'server.log'))
    load_span = (max(r['load_end'] for r in reports) -
                 min(r['load_start'] for r in reports))
    commit_span = (max(r['commit_end'] for r in reports) -
                   min(r['commit_start'] for r in reports))
    emit(commits_per_s=clients * commits / commit_span,
         client_commits_per_s=sum(commits / (r['commit_end'] - r['commit_start'])
                                  for r in reports),
         loads_per_s=sum(r['loads'] for r in reports) / load_span,
         commit_span_s=commit_span,
         overlap=overlap([(r['commit_start'], r['commit_end'])
                          for r in reports]),
         **server_counts)
    if p.get('timeline'):
        # For bench/keyed_timeline.py: each client's phase edges.
        with open(p['timeline'], 'w') as out:
            json.dump({'launched': launched, 'clients': reports}, out)


def overlap(phases):
    """The share of the commit span during which two or more clients were
    committing (0: one after the other; 1: always together)."""
    events = sorted([(start, 1) for start, _ in phases] +
                    [(end, -1) for _, end in phases])
    together = 0.0
    running = 0
    last = events[0][0]
    for time, step in events:
        if running >= 2:
            together += time - last
        running += step
        last = time
    span = events[-1][0] - events[0][0]
    return together / span if span > 0 else 0.0


def read_server_counts(log_path):
    """Ours logs its commit and fsync counts at shutdown; 4.3 does not."""
    with open(log_path) as log:
        found = re.findall(r'Served (\d+) commits in (\d+) durable batches; '
                           r'one-step commits: (\d+) taken, (\d+) answered '
                           r'retry', log.read())
    if not found:
        return {}
    commits, batches, one_step, retried = map(int, found[-1])
    return {'commits_per_fsync': commits / max(batches, 1),
            'one_step_share': one_step / max(commits, 1),
            'one_step_retries': retried}


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == 'client':
        client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
               int(sys.argv[5]))
    else:
        main()
