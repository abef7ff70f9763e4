"""A client of the lost-update stress test (run as a process).

    python pg_stress_worker.py DSN SECONDS SEED

Moves random amounts between random accounts (read, modify, write) for
SECONDS, retrying on conflicts; each transfer gets an id, recorded in
both accounts.  Prints JSON: the ids whose commit returned (acknowledged)
and the conflicts seen.
"""

import json
import random
import sys
import time

from durus.connection import Connection
from durus.error import ConflictError
from durus.persistent import Persistent
from durus.pg_storage import PgStorage


class Account(Persistent):
    def __init__(self, balance):
        self.balance = balance
        self.transfers = []


def transfer(connection, rng, name):
    accounts = connection.get_root()['accounts']
    source, target = rng.sample(sorted(accounts), 2)
    amount = rng.randint(1, 50)
    accounts[source].balance -= amount
    accounts[target].balance += amount
    accounts[source].transfers.append(name)
    accounts[target].transfers.append(name)
    accounts[source]._p_note_change()
    accounts[target]._p_note_change()
    connection.commit()


def main(dsn, seconds, seed):
    rng = random.Random(seed)
    connection = Connection(PgStorage(dsn))
    acknowledged, conflicts, number = [], 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        number += 1
        name = '%s-%d' % (seed, number)
        try:
            transfer(connection, rng, name)
        except ConflictError:
            conflicts += 1
            connection.abort()
            continue
        acknowledged.append(name)
    connection.get_storage().close()
    print(json.dumps({'acknowledged': acknowledged, 'conflicts': conflicts}))


if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3])
