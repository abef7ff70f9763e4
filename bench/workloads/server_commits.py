"""One ClientStorage client making many small commits through a server,
and the floor of such a commit measured in the same run.

The server runs on a fresh file (ours fsyncs every commit, 4.3 does not).
Each commit changes one attribute of one Small object.  The commits go
in chunks; after each chunk the floors of floors.py (durable 150-byte
appends in the same directory, loopback round trips between two
processes) are measured for as many repetitions, so that the floor
sees the same machine load as the commits.
Params: commits, chunk.  Metrics: commit_s, commits_per_s,
floor_commits_per_s (1 / (round trip + durable append)), of_floor
(commits_per_s / floor_commits_per_s).
"""

import os
import tempfile

from durus.client_storage import ClientStorage
from durus.connection import Connection

from _bench import clock, emit, params
from _server import HOST, running_server
from bench_models import Small
from floors import durable_append_seconds, round_trip_seconds


def main():
    p = params()
    commits = p.get('commits', 2000)
    chunk = p.get('chunk', 250)
    elapsed = append_total = trip_total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'server.durus')
        with running_server(path, os.path.join(tmp, 'server.log')) as port:
            storage = ClientStorage(host=HOST, port=port)
            connection = Connection(storage)
            root = connection.get_root()
            root['counter'] = counter = Small(0)
            connection.commit()
            done = 0
            while done < commits:
                count = min(chunk, commits - done)
                start = clock()
                for i in range(done, done + count):
                    counter.n = i
                    connection.commit()
                elapsed += clock() - start
                append_total += durable_append_seconds(count, tmp) * count
                trip_total += round_trip_seconds(count) * count
                done += count
            storage.close()
    rate = commits / elapsed
    floor = commits / (append_total + trip_total)
    emit(commit_s=elapsed, commits_per_s=rate, floor_commits_per_s=floor,
         of_floor=rate / floor)


if __name__ == '__main__':
    main()
