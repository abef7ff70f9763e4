"""What this machine allows at best, whatever Durus does on top.

Two floors of a durable commit through a server, each a cost that no
storage server could avoid:

* durable append: write 150 bytes at the end of a file in the temporary
  directory the server workloads use, then fdatasync, as a commit must.
* loopback round trip: one 100-byte message to a second process over TCP
  on 127.0.0.1 and back (both blocking, TCP_NODELAY), as a commit's
  request and reply travel.  best_commits_per_s = 1 / (round trip +
  durable append): a one-client commit with one round trip and no CPU
  time at all could not go faster.

Params: appends, trips.  Metrics: append_s, rtt_s, best_commits_per_s.
"""

import os
import socket
import tempfile

from _bench import clock, emit, params


def durable_append_seconds(appends, directory=None):
    """Seconds per durable append, in a new file of ``directory`` (a
    temporary directory if None)."""
    if directory is None:
        with tempfile.TemporaryDirectory() as tmp:
            return durable_append_seconds(appends, tmp)
    path = os.path.join(directory, 'floor-appends')
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        data = b'x' * 150
        start = clock()
        for number in range(appends):
            os.pwrite(fd, data, number * len(data))
            os.fdatasync(fd)
        return (clock() - start) / appends
    finally:
        os.close(fd)
        os.remove(path)


def round_trip_seconds(trips):
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    pid = os.fork()
    if pid == 0:  # the echoing peer
        try:
            peer, _ = listener.accept()
            peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                data = peer.recv(4096)
                if not data:
                    break
                peer.sendall(data)
        finally:
            os._exit(0)
    try:
        sock = socket.create_connection(listener.getsockname(), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = b'm' * 100
        start = clock()
        for _ in range(trips):
            sock.sendall(message)
            got = 0
            while got < len(message):
                got += len(sock.recv(4096))
        elapsed = (clock() - start) / trips
        sock.close()
        return elapsed
    finally:
        listener.close()
        os.waitpid(pid, 0)


def main():
    p = params()
    append_s = durable_append_seconds(p.get('appends', 2000))
    rtt_s = round_trip_seconds(p.get('trips', 5000))
    emit(append_s=append_s, rtt_s=rtt_s,
         best_commits_per_s=1.0 / (append_s + rtt_s))


if __name__ == '__main__':
    main()
