"""The client of the failover test (run as a process).

    python pg_failover_worker.py DSN SECONDS

Increments root['counter']['n'] in a loop for SECONDS.  A commit that
raises PgConnectionError was not made (so says PgStorage): it is not
counted, and the loop goes on.  Prints JSON: acknowledged commits, those
before and after the storage first reconnected, and how many raised.
"""

import json
import sys
import time

from durus.connection import Connection
from durus.error import ConflictError
from durus.pg_storage import PgConnectionError, PgStorage


def main(dsn, seconds):
    storage = PgStorage(dsn, reconnect_timeout=20)
    connection = Connection(storage)
    acknowledged = before = lost = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection.get_root()['counter']['n'] += 1
            connection.commit()
        except (PgConnectionError, ConflictError) as error:
            sys.stderr.write('%.2f %s\n' % (time.monotonic(), error))
            lost += 1
            connection.abort()
            continue
        acknowledged += 1
        if not storage.reconnects:
            before += 1
    storage.close()
    print(json.dumps({'acknowledged': acknowledged, 'before': before,
                      'after': acknowledged - before, 'lost': lost}))


if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]))
