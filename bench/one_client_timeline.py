"""Where one client's commit spends its wall time: a timeline.

A diagnostic (not a row).  A client makes COMMITS one-attribute commits
through a server on a fresh file, as bench's server_commits row does;
both processes stamp time.perf_counter_ns() (CLOCK_MONOTONIC, one clock
for both) at the edges of each step, by wrapping a few internal methods:
the client's ClientStorage._send_bytes and _read_more, the server's
StorageServer._read and _write, os.pwrite and os.fdatasync.  Each line
is the median (and mean) of one interval over the commits, in the order
the commit crosses them; the floor (floors.py's append and round trip)
is measured right after.  A negative median means the two processes ran
at once (e.g. the woken client preempted the server inside its send).

    python bench/one_client_timeline.py [COMMITS]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, 'workloads')
sys.path.insert(0, WORKLOADS)

stamp = time.perf_counter_ns

# The server process: our server on argv[1], port argv[2]; its stamps go
# to argv[3] as JSON when it stops (SIGTERM).
SERVER = r'''
import json, os, signal, sys, time
from durus.file_storage import FileStorage
from durus.storage_server import StorageServer
stamp = time.perf_counter_ns
marks = []
mark = marks.append
real_fdatasync, real_pwrite = os.fdatasync, os.pwrite
read, write = StorageServer._read, StorageServer._write

def fdatasync(fd):
    mark(('S3', stamp())); real_fdatasync(fd); mark(('S4', stamp()))

def pwrite(fd, data, offset):
    mark(('S1', stamp()))
    done = real_pwrite(fd, data, offset)
    mark(('S2', stamp()))
    return done

def stamped_read(self, connection):
    mark(('S0', stamp())); read(self, connection)

def stamped_write(self, connection):
    mark(('S5', stamp())); write(self, connection); mark(('S6', stamp()))

os.fdatasync, os.pwrite = fdatasync, pwrite
StorageServer._read, StorageServer._write = stamped_read, stamped_write
server = StorageServer(FileStorage(sys.argv[1]), host='127.0.0.1',
                       port=int(sys.argv[2]))
signal.signal(signal.SIGTERM, lambda *args: server.stop())
try:
    server.serve()
finally:
    with open(sys.argv[3], 'w') as out:
        json.dump(marks, out)
'''

# The intervals, in the order a commit crosses them.
STEPS = [('C0', 'C1', 'client before send'), ('C1', 'C2', 'client send'),
         ('C2', 'S0', 'wire + server wake-up'),
         ('S0', 'S1', 'server CPU to pwrite'), ('S1', 'S2', 'pwrite'),
         ('S2', 'S3', 'server CPU pwrite -> fdatasync'),
         ('S3', 'S4', 'fdatasync (database)'),
         ('S4', 'S5', 'server CPU durable -> send'),
         ('S5', 'S6', 'server send (its _write)'),
         ('S6', 'C3', 'wire + client wake-up'),
         ('C3', 'C4', 'client after reply')]


def group(marks, first):
    """[{tag: time}] of each commit, one starting at each ``first``
    mark (a tag's first time within a commit)."""
    groups = []
    for tag, when in marks:
        if tag == first:
            groups.append({})
        if groups:
            groups[-1].setdefault(tag, when)
    return groups


def client_commits(port, count):
    """Make ``count`` stamped commits; their client-side marks."""
    from durus.client_storage import ClientStorage
    from durus.connection import Connection
    from bench_models import Small
    marks = []
    mark = marks.append
    send_bytes, read_more = (ClientStorage._send_bytes,
                             ClientStorage._read_more)

    def stamped_send(self, data):
        mark(('C1', stamp())); send_bytes(self, data); mark(('C2', stamp()))

    def stamped_read(self, deadline=None):
        data = read_more(self, deadline)
        mark(('C3', stamp()))
        return data

    ClientStorage._send_bytes = stamped_send
    ClientStorage._read_more = stamped_read
    connection = Connection(ClientStorage(host='127.0.0.1', port=port))
    root = connection.get_root()
    root['counter'] = counter = Small(0)
    connection.commit()
    del marks[:]
    for number in range(count):
        mark(('C0', stamp()))
        counter.n = number
        connection.commit()
        mark(('C4', stamp()))
    connection.storage.close()
    return marks


def main():
    from _server import free_port, wait_until_listening
    from floors import durable_append_seconds, round_trip_seconds
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        marks_path = os.path.join(tmp, 'marks.json')
        server = subprocess.Popen(
            [sys.executable, '-c', SERVER, os.path.join(tmp, 'db.durus'),
             str(port), marks_path], cwd=WORKLOADS)
        try:
            wait_until_listening(port, server, os.devnull)
            client_marks = client_commits(port, count)
        finally:
            server.terminate()
            server.wait()
        with open(marks_path) as marks_file:
            server_marks = json.load(marks_file)
        append = durable_append_seconds(count, tmp)
        trip = round_trip_seconds(count)
    clients = group(client_marks, 'C0')
    servers = [g for g in group(server_marks, 'S0')
               if 'S3' in g and 'S6' in g][-count:]
    if len(clients) != count or len(servers) != count:
        raise SystemExit('expected %d commits on each side, found %d and %d'
                         % (count, len(clients), len(servers)))
    for start, end, name in STEPS:
        took = [dict(c, **s)[end] - dict(c, **s)[start]
                for c, s in zip(clients, servers)]
        print('%-32s median %8.1f us  mean %8.1f us'
              % (name, statistics.median(took) / 1e3,
                 statistics.mean(took) / 1e3))
    per_commit = (clients[-1]['C4'] - clients[0]['C0']) / count / 1e3
    floor = (append + trip) * 1e6
    print('%-32s %8.1f us' % ('per commit (wall)', per_commit))
    print('floor right after: append %.1f us + round trip %.1f us = %.1f us;'
          ' share %.3f' % (append * 1e6, trip * 1e6, floor,
                           floor / per_commit))


if __name__ == '__main__':
    main()
