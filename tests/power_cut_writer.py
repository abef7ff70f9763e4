"""Child process of the power-cut tests: commits in a loop, reporting each.

    python power_cut_writer.py KIND TARGET SEED

KIND is ``shelf``, ``dfs20``, ``sqlite`` or ``sqlite-full`` (SQLite's
default synchronous level, a canary; TARGET: a file path, created here) or ``client`` (TARGET: ``host:port`` of a storage server).  Commit
number ``i`` stores ``root['item-i']``, a PersistentDict holding
``payload(i)``, and sets ``root['last'] = i``; every few commits a file
storage is packed.  After ``commit()`` (or ``pack()``) returns, a line
``ack i`` (``packed i``) is written to stdout and flushed: the parent
counts only commits reported that way.  Short random pauses between
commits stand for an application's own work.  The loop is bounded.
"""

import random
import sys
import time

from durus.connection import Connection
from durus.persistent_dict import PersistentDict

MAX_COMMITS = 2000
MAX_SECONDS = 30
PACK_EVERY = 7


def payload(number):
    """The bytes commit ``number`` stores (size varies: 50 B to 20 KB)."""
    size = random.Random(number).randint(50, 20000)
    return (b'commit %d;' % number) * (size // 10 + 1)


def open_storage(kind, target):
    if kind == 'shelf':
        from durus.file_storage import FileStorage
        return FileStorage(target)
    if kind == 'dfs20':
        from durus.file_storage2 import FileStorage2
        return FileStorage2(target)
    if kind == 'sqlite':
        from durus.sqlite_storage import SqliteStorage
        return SqliteStorage(target)
    if kind == 'sqlite-full':
        # The canary: SQLite's default level, known to lose commits.
        from durus.sqlite_storage import SqliteStorage
        storage = SqliteStorage(target)
        storage.connection.commit()  # leave the read transaction
        storage.connection.execute('pragma synchronous = full')
        return storage
    if kind == 'client':
        from durus.client_storage import ClientStorage
        host, port = target.rsplit(':', 1)
        return ClientStorage(host=host, port=int(port))
    raise SystemExit('unknown kind %r' % kind)


def main():
    kind, target, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pause = random.Random(seed)
    connection = Connection(open_storage(kind, target))
    root = connection.get_root()
    deadline = time.monotonic() + MAX_SECONDS
    for number in range(MAX_COMMITS):
        if time.monotonic() > deadline:
            break
        root['item-%d' % number] = PersistentDict(payload=payload(number),
                                                  number=number)
        root['last'] = number
        connection.commit()
        sys.stdout.write('ack %d\n' % number)
        sys.stdout.flush()
        if kind != 'client' and number % PACK_EVERY == PACK_EVERY - 1:
            connection.pack()
            sys.stdout.write('packed %d\n' % number)
            sys.stdout.flush()
        time.sleep(pause.uniform(0, 0.02))


if __name__ == '__main__':
    main()
