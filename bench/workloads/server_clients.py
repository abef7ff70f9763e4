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

import os
import shutil
import sys
import tempfile

from _bench import client_of_clients_row, emit, params, run_client_processes
from _server import HOST, running_server


def client(port, index, commits):
    from durus.client_storage import ClientStorage
    client_of_clients_row(ClientStorage(host=HOST, port=port), index, commits)


def main():
    p = params()
    clients, commits = p.get('clients', 4), p.get('commits', 200)
    here = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'clients.durus')
        shutil.copyfile(p['path'], path)
        with running_server(path, os.path.join(tmp, 'server.log')) as port:
            reports = run_client_processes(
                [here, 'client', str(port), str(k), str(commits)]
                for k in range(clients))
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
