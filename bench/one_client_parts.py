"""Where a one-client server commit's time goes, against its floor.

A diagnostic for the "share of the floor" row (not a row itself).  In
one run, in alternating chunks so that every part sees the same machine
load, it measures per commit:

* floor: a durable 150-byte append (pwrite + fdatasync, bench's floors.py)
  plus a loopback round trip between two Python processes;
* bare pair: a Python server and client with no Durus at all: the client
  sends a 71-byte request (the size of a one-attribute commit) and waits
  for a 5-byte reply; the server does recv, pwrite of 78 bytes at the
  end of its file, fdatasync, send (the system calls of our server's
  commit, but epoll_wait);
* bare pair in C (when a C compiler is found): the same, compiled;
* bare client + our server: the bytes of a real one-step commit sent over
  the real client's socket, the reply read, nothing else (the server's
  whole cost, the client's none);
* our client + our server: ``counter.n = i; connection.commit()``, the
  row itself.

Each line gives microseconds per commit and the share of the floor
(floor / that time; the row's target is 0.9).

    python bench/one_client_parts.py [COMMITS] [CHUNK]
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from statistics import median

clock = time.perf_counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'workloads'))

from _server import HOST, running_server              # noqa: E402

# Loaded into our server's process (a sitecustomize on its PYTHONPATH):
# times each fdatasync of the database file, written out at exit, so
# that it can be set beside the floor's own append measured meanwhile.
TIME_FSYNCS = '''import atexit, os, time
_took = []
_fdatasync = os.fdatasync
def _timed_fdatasync(fd):
    start = time.perf_counter()
    _fdatasync(fd)
    _took.append(time.perf_counter() - start)
os.fdatasync = _timed_fdatasync
@atexit.register
def _write_times():
    with open(os.environ['BENCH_FSYNC_TIMES'], 'w') as out:
        out.write('\\n'.join(map(repr, _took)))
'''
REQUEST = 71
REPLY = b'\0\0\0\0O'
RECORD = 78

C_PAIR = r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
/* bare_pair PATH COUNT: fork a server (recv, pwrite, fdatasync, send);
   print the client's seconds of each round, one a line. */
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
    int count = atoi(argv[2]), one = 1, listener, peer;
    struct sockaddr_in a; socklen_t len = sizeof a;
    char buf[4096], record[78], request[71];
    memset(record, 'r', sizeof record); memset(request, 'q', sizeof request);
    listener = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a); a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 1)
        || getsockname(listener, (struct sockaddr *)&a, &len)) return 2;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
        off_t end = 0;
        peer = accept(listener, NULL, NULL);
        setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (;;) {
            ssize_t got = recv(peer, buf, sizeof buf, 0);
            if (got <= 0) break;
            if (pwrite(fd, record, sizeof record, end) != sizeof record) return 3;
            end += sizeof record;
            if (fdatasync(fd)) return 4;
            if (send(peer, "\0\0\0\0O", 5, 0) != 5) return 5;
        }
        close(fd); unlink(argv[1]); _exit(0);
    }
    close(listener);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) return 6;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double *took = calloc(count, sizeof *took);
    for (int i = 0; i < count; i++) {
        double t0 = now();
        if (send(s, request, sizeof request, 0) != sizeof request) return 7;
        int got = 0;
        while (got < 5) { ssize_t n = recv(s, buf, sizeof buf, 0); if (n <= 0) return 8; got += n; }
        took[i] = now() - t0;
    }
    close(s); waitpid(pid, NULL, 0);
    for (int i = 0; i < count; i++) printf("%.9f\n", took[i]);
    return 0;
}
'''


def append_times(count, directory):
    """floors.py's durable append, each one timed."""
    path = os.path.join(directory, 'floor-appends')
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        data = b'x' * 150
        took = []
        for number in range(count):
            start = clock()
            os.pwrite(fd, data, number * len(data))
            os.fdatasync(fd)
            took.append(clock() - start)
        return took
    finally:
        os.close(fd)
        os.remove(path)


def _serve_forked(listener, serve):
    """Run serve(peer) in a child process on the next connection."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            peer, _ = listener.accept()
            peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            serve(peer)
            code = 0
        finally:
            os._exit(code)
    return pid


def _client_times(serve, request, count, reply_size=len(REPLY)):
    """Send ``request`` ``count`` times to a forked serve(peer), each
    time waiting for its ``reply_size`` bytes of reply; each round
    timed."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(1)
    pid = _serve_forked(listener, serve)
    try:
        sock = socket.create_connection(listener.getsockname(), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray(4096)
        took = []
        for _ in range(count):
            start = clock()
            sock.sendall(request)
            got = 0
            while got < reply_size:
                got += sock.recv_into(buffer)
            took.append(clock() - start)
        sock.close()
        return took
    finally:
        listener.close()
        os.waitpid(pid, 0)


def trip_times(count):
    """floors.py's loopback round trip (a 100-byte echo), each timed."""
    def echo(peer):
        while True:
            data = peer.recv(4096)
            if not data:
                return
            peer.sendall(data)
    return _client_times(echo, b'm' * 100, count, reply_size=100)


def bare_pair_times(count, directory):
    """A Python server/client pair without Durus, each commit timed."""
    def serve(peer):
        path = os.path.join(directory, 'bare-server')
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        buffer = bytearray(4096)
        record = b'r' * RECORD
        end = 0
        while peer.recv_into(buffer):
            os.pwrite(fd, record, end)
            end += RECORD
            os.fdatasync(fd)
            peer.send(REPLY)
        os.close(fd)
        os.remove(path)
    return _client_times(serve, b'q' * REQUEST, count)


def build_c_pair(directory):
    compiler = shutil.which('cc') or shutil.which('gcc')
    if compiler is None:
        return None
    source = os.path.join(directory, 'bare_pair.c')
    binary = os.path.join(directory, 'bare_pair')
    with open(source, 'w') as out:
        out.write(C_PAIR)
    subprocess.run([compiler, '-O2', '-o', binary, source], check=True)
    return binary


def c_pair_times(binary, count, directory):
    out = subprocess.run([binary, os.path.join(directory, 'c-server'),
                          str(count)], check=True, capture_output=True,
                         text=True, timeout=300)
    return [float(line) for line in out.stdout.split()]


class DurusParts:
    """One real client connected to one real server (a second client
    would move the server's fsync into its helper thread)."""

    def __init__(self, port):
        from durus.client_storage import ClientStorage
        from durus.connection import Connection
        from bench_models import Small
        self.storage = ClientStorage(host=HOST, port=port)
        self.connection = Connection(self.storage)
        root = self.connection.get_root()
        root['counter'] = self.counter = Small(0)
        self.connection.commit()
        self.n = 0
        # The bytes of one one-step commit, as this client sends them.
        sent = []
        send_bytes = self.storage._send_bytes
        self.storage._send_bytes = lambda data: (sent.append(bytes(data)),
                                                 send_bytes(data))
        self.commits(1)
        del self.storage._send_bytes
        self.frame = sent[-1]
        if self.frame[:1] != b'A':
            raise SystemExit('expected a one-step commit, got %r'
                             % self.frame[:1])

    def commits(self, count):
        counter, commit = self.counter, self.connection.commit
        took = []
        for _ in range(count):
            start = clock()
            self.n += 1
            counter.n = self.n
            commit()
            took.append(clock() - start)
        return took

    def bare_client_commits(self, count):
        """The same commit's bytes again and again over the client's own
        socket (the server stores the same record each time)."""
        sock, frame = self.storage.s, self.frame
        buffer = bytearray(4096)
        took = []
        for _ in range(count):
            start = clock()
            sock.sendall(frame)
            got = sock.recv_into(buffer)
            took.append(clock() - start)
            if buffer[:got] != REPLY:
                raise SystemExit('unexpected reply %r' % bytes(buffer[:got]))
        return took

    def close(self):
        self.storage.close()


def main():
    commits = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    times = {name: [] for name in ('append', 'trip', 'bare', 'c', 'server',
                                   'row')}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_c_pair(tmp)
        path = os.path.join(tmp, 'server.durus')
        hook = os.path.join(tmp, 'hook')
        os.mkdir(hook)
        with open(os.path.join(hook, 'sitecustomize.py'), 'w') as out:
            out.write(TIME_FSYNCS)
        fsync_times = os.path.join(tmp, 'fsync-times')
        os.environ['BENCH_FSYNC_TIMES'] = fsync_times
        os.environ['PYTHONPATH'] = os.pathsep.join(
            [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
             if p] + [hook])
        with running_server(path, os.path.join(tmp, 'server.log')) as port:
            durus_parts = DurusParts(port)
            try:
                for _ in range(max(1, commits // chunk)):
                    times['append'] += append_times(chunk, tmp)
                    times['trip'] += trip_times(chunk)
                    times['bare'] += bare_pair_times(chunk, tmp)
                    if binary is not None:
                        times['c'] += c_pair_times(binary, chunk, tmp)
                    times['server'] += durus_parts.bare_client_commits(chunk)
                    times['row'] += durus_parts.commits(chunk)
            finally:
                durus_parts.close()
        with open(fsync_times) as times_file:
            server_fsyncs = [float(line) for line in times_file]
    # Medians of single operations: a burst of another process's disk
    # writes moves a mean a lot and a median little.
    append, trip = median(times['append']), median(times['trip'])
    floor = append + trip
    print('%d commits per part in chunks of %d; load average %.1f at '
          'start, %.1f at end' % (commits, chunk, load_before,
                                  os.getloadavg()[0]))
    print('medians of single operations, microseconds')
    print('%-40s %8.1f' % ('floor: durable append (fdatasync)', 1e6 * append))
    print('%-40s %8.1f' % ('floor: loopback round trip', 1e6 * trip))
    print('%-40s %8.1f' % ('floor: the sum', 1e6 * floor))
    print('%-40s %8.1f  (%d, both parts that use it)'
          % ("our server's fdatasync of the database", 1e6 * median(
              server_fsyncs), len(server_fsyncs)))
    for key, label in (('bare', 'bare pair, Python, no Durus'),
                       ('c', 'bare pair, C'),
                       ('server', 'bare client + our server'),
                       ('row', 'our client + our server (the row)')):
        if times[key]:
            part = median(times[key])
            print('%-40s %8.1f  share of floor %.3f'
                  % (label, 1e6 * part, floor / part))


if __name__ == '__main__':
    main()
