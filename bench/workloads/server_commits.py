"""One ClientStorage client making many small commits through a server.

The server runs on a fresh file (ours fsyncs every commit, 4.3 does not).
Each commit changes one attribute of one Small object.
Params: commits.  Metrics: commit_s, commits_per_s.
"""

import os
import tempfile

from durus.client_storage import ClientStorage
from durus.connection import Connection

from _bench import clock, emit, params
from _server import HOST, running_server
from bench_models import Small


def main():
    commits = params().get('commits', 2000)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'server.durus')
        with running_server(path, os.path.join(tmp, 'server.log')) as port:
            storage = ClientStorage(host=HOST, port=port)
            connection = Connection(storage)
            root = connection.get_root()
            root['counter'] = counter = Small(0)
            connection.commit()
            start = clock()
            for i in range(commits):
                counter.n = i
                connection.commit()
            elapsed = clock() - start
            storage.close()
    emit(commit_s=elapsed, commits_per_s=commits / elapsed)


if __name__ == '__main__':
    main()
