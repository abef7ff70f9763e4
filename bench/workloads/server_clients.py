"""Several client processes against one server: cold loads, then commits.

The server serves a copy of a file where root['c<k>'] is a PersistentList
of Small objects for client k.  Each client process connects, waits for the
start signal, loads every object of its own list (cache cold: a new
process), then makes `commits` commits of one changed object each.  The
clients touch disjoint objects, so there are invalidations but no
conflicts.  Clients report their phase times on the shared monotonic clock.
Params: path, clients, commits.
Metrics: loads_per_s (all loads / span of the load phase over all clients),
commits_per_s (likewise), load_span_s, commit_span_s.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from _bench import clock, emit, params
from _server import HOST, running_server


def client(port, index, commits):
    from durus.client_storage import ClientStorage
    from durus.connection import Connection
    storage = ClientStorage(host=HOST, port=port)
    connection = Connection(storage, cache_size=100000)
    print('ready', flush=True)
    sys.stdin.readline()
    load_start = clock()
    objects = connection.get_root()['c%d' % index]
    total = 0
    for obj in objects:
        total += obj.n
    load_end = clock()
    loads = connection.get_load_count()
    for i in range(commits):
        objects[i % len(objects)].n = -i
        connection.commit()
    commit_end = clock()
    storage.close()
    print(json.dumps({'load_start': load_start, 'load_end': load_end,
                      'commit_end': commit_end, 'loads': loads}), flush=True)


def main():
    p = params()
    clients, commits = p.get('clients', 4), p.get('commits', 200)
    here = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'clients.durus')
        shutil.copyfile(p['path'], path)
        with running_server(path, os.path.join(tmp, 'server.log')) as port:
            procs = [subprocess.Popen(
                [sys.executable, here, 'client', str(port), str(k), str(commits)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for k in range(clients)]
            try:
                for proc in procs:
                    if proc.stdout.readline().strip() != 'ready':
                        raise SystemExit('a client failed to start')
                for proc in procs:
                    proc.stdin.write('go\n')
                    proc.stdin.flush()
                reports = []
                for proc in procs:
                    out, _ = proc.communicate(timeout=600)
                    if proc.returncode != 0:
                        raise SystemExit('a client failed')
                    reports.append(json.loads(out.strip().splitlines()[-1]))
            finally:
                for proc in procs:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
    load_span = max(r['load_end'] for r in reports) - min(r['load_start'] for r in reports)
    commit_span = max(r['commit_end'] for r in reports) - min(r['load_end'] for r in reports)
    emit(loads_per_s=sum(r['loads'] for r in reports) / load_span,
         commits_per_s=clients * commits / commit_span,
         load_span_s=load_span, commit_span_s=commit_span)


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == 'client':
        client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
