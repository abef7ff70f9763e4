"""Commit n small new objects to a fresh FileStorage, per_txn per commit.

Each transaction adds a PersistentList of per_txn Small objects under a new
root key, so every commit writes per_txn + 2 records.  Whatever durability
the storage gives (ours fsyncs each commit, 4.3 only flushes) is included.
Params: n, per_txn.  Metrics: commit_s, objects_per_s.
"""

import os
import tempfile

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_list import PersistentList

from _bench import clock, emit, params
from bench_models import Small


def main():
    p = params()
    n, per_txn = p.get('n', 100000), p.get('per_txn', 1000)
    with tempfile.TemporaryDirectory(dir=p.get('tmpdir')) as tmp:
        storage = FileStorage(os.path.join(tmp, 'commit.durus'))
        connection = Connection(storage)
        root = connection.get_root()
        start = clock()
        for txn in range(n // per_txn):
            root[txn] = PersistentList(Small(i) for i in range(per_txn))
            connection.commit()
        elapsed = clock() - start
        storage.close()
    emit(commit_s=elapsed, objects_per_s=n / elapsed)


if __name__ == '__main__':
    main()
