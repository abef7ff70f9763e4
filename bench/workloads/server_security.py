"""What TLS and authentication cost: the one-client commit and four-client
load workloads against the same server configured four ways.

Modes: plain (as Durus 4.3), tls (--tls-cert/--tls-key, certificates
made by trustme), auth (--users, SCRAM-SHA-256 with the default PBKDF2
rounds), tls_auth (both).  Each mode runs on its own copy of the data.
The four servers run side by side and the phases alternate between
them, round after round (the order rotating), so that the load of a
shared machine falls on every mode alike; each metric is the best of the
rounds.
Params: path (the clients data file), clients, commits, rounds.
Metrics per mode M: commit_s_M (the 1-client commits), load_s_M (span of
the 4-client cold-load phase), connect_s_M (one connection, including
the TLS handshake and the SCRAM exchange); load_cpu_s_M and commit_cpu_s_M
are the CPU seconds the clients and the server spent in those phases
(less disturbed than wall times by other load on the machine).
"""

import contextlib

import json
import os
import time
import shutil
import sys
import tempfile

from _bench import clock, emit, params, run_client_processes
from _server import HOST, running_server

MODES = ('plain', 'tls', 'auth', 'tls_auth')
SECRET = 'bench-secret'


def client_options(setup, mode):
    options = {}
    if 'tls' in mode:
        from durus.tls import client_context
        options['ssl_context'] = client_context(setup['ca'])
    if 'auth' in mode:
        options['user'] = 'bench'
        options['secret'] = SECRET
    return options


def server_args(setup, mode):
    args = []
    if 'tls' in mode:
        args += ['--tls-cert', setup['cert'], '--tls-key', setup['key']]
    if 'auth' in mode:
        args += ['--users', setup['users']]
    return args


def loader(port, index, setup, mode):
    from durus.client_storage import ClientStorage
    from durus.connection import Connection
    storage = ClientStorage(host=HOST, port=port,
                            **client_options(setup, mode))
    connection = Connection(storage, cache_size=100000)
    print('ready', flush=True)
    sys.stdin.readline()
    start = clock()
    cpu = time.process_time()
    total = 0
    for obj in connection.get_root()['c%d' % index]:
        total += obj.n
    end = clock()
    cpu = time.process_time() - cpu
    storage.close()
    print(json.dumps({'start': start, 'end': end, 'cpu': cpu}), flush=True)


def load_phase(port, clients, setup, mode):
    here = os.path.abspath(__file__)
    reports = run_client_processes(
        [here, 'load', str(port), str(k), json.dumps(setup), mode]
        for k in range(clients))
    return (max(r['end'] for r in reports) - min(r['start'] for r in reports),
            sum(r['cpu'] for r in reports))


def commit_phase(port, commits, setup, mode):
    from durus.client_storage import ClientStorage
    from durus.connection import Connection
    from bench_models import Small
    start = clock()
    storage = ClientStorage(host=HOST, port=port,
                            **client_options(setup, mode))
    connected = clock() - start
    connection = Connection(storage)
    root = connection.get_root()
    root['counter'] = counter = Small(0)
    connection.commit()
    start = clock()
    cpu = time.process_time()
    for i in range(commits):
        counter.n = i
        connection.commit()
    elapsed = clock() - start
    cpu = time.process_time() - cpu
    storage.close()
    return elapsed, connected, cpu


def process_cpu(pid):
    """CPU seconds (user + system) the process has used so far."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rpartition(')')[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def make_setup(tmp):
    import trustme
    from durus.auth import set_user
    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    setup = {name: os.path.join(tmp, name) for name in
             ('ca', 'cert', 'key', 'users')}
    ca.cert_pem.write_to_path(setup['ca'])
    cert.cert_chain_pems[0].write_to_path(setup['cert'])
    cert.private_key_pem.write_to_path(setup['key'])
    set_user(setup['users'], 'bench', 'admin', SECRET)
    return setup


def main():
    p = params()
    clients, commits = p.get('clients', 4), p.get('commits', 300)
    rounds = p.get('rounds', 3)
    best = {}
    with tempfile.TemporaryDirectory() as tmp, \
            contextlib.ExitStack() as servers:
        setup = make_setup(tmp)
        ports, pids = {}, {}
        for mode in MODES:
            path = os.path.join(tmp, mode + '.durus')
            shutil.copyfile(p['path'], path)
            started = []
            ports[mode] = servers.enter_context(running_server(
                path, os.path.join(tmp, mode + '.log'),
                server_args(setup, mode), started))
            pids[mode] = started[0].pid
        for round_ in range(rounds):
            order = MODES[round_ % len(MODES):] + MODES[:round_ % len(MODES)]
            for mode in order:
                port, pid = ports[mode], pids[mode]
                found = {}
                server_cpu = process_cpu(pid)
                found['load_s_'], clients_cpu = load_phase(
                    port, clients, setup, mode)
                found['load_cpu_s_'] = (clients_cpu + process_cpu(pid) -
                                        server_cpu)
                server_cpu = process_cpu(pid)
                (found['commit_s_'], found['connect_s_'],
                 client_cpu) = commit_phase(port, commits, setup, mode)
                found['commit_cpu_s_'] = (client_cpu + process_cpu(pid) -
                                          server_cpu)
                for prefix, value in found.items():
                    name = prefix + mode
                    best[name] = min(value, best.get(name, value))
    emit(**best)


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == 'load':
        loader(int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]),
               sys.argv[5])
    else:
        main()
