"""Attribute read and set on a loaded persistent object, and on a plain one.

Params: n (operations per timed loop), repeats.  Metrics, in nanoseconds per
operation (best of repeats): persistent_read_ns, plain_read_ns,
persistent_set_ns, plain_set_ns.  The loops are unrolled ten times so the
loop overhead is small next to the attribute access.
"""

import os
import tempfile

from durus.connection import Connection
from durus.file_storage import FileStorage

from _bench import best_of, emit, params
from bench_models import Item


class PlainItem:
    def __init__(self, number):
        self.number = number
        self.name = 'item %d' % number
        self.price = 1.5


def read_loop(obj, n):
    def run():
        for _ in range(n // 10):
            obj.name; obj.name; obj.name; obj.name; obj.name
            obj.name; obj.name; obj.name; obj.name; obj.name
    return run


def set_loop(obj, n):
    def run():
        for i in range(n // 10):
            obj.price = i; obj.price = i; obj.price = i; obj.price = i; obj.price = i
            obj.price = i; obj.price = i; obj.price = i; obj.price = i; obj.price = i
    return run


def loaded_item(path):
    """An Item committed to a file, then loaded back by a fresh connection."""
    storage = FileStorage(path)
    connection = Connection(storage)
    connection.get_root()['item'] = Item(7)
    connection.commit()
    storage.close()
    storage = FileStorage(path)
    connection = Connection(storage)
    item = connection.get_root()['item']
    item.name  # load the ghost; later reads in this transaction are the hot path
    return storage, connection, item


def main():
    p = params()
    n, repeats = p.get('n', 1000000), p.get('repeats', 5)
    with tempfile.TemporaryDirectory() as tmp:
        storage, connection, item = loaded_item(os.path.join(tmp, 'attr.durus'))
        plain = PlainItem(7)
        metrics = {
            'persistent_read_ns': best_of(repeats, read_loop(item, n)) / n * 1e9,
            'plain_read_ns': best_of(repeats, read_loop(plain, n)) / n * 1e9,
        }
        metrics['persistent_set_ns'] = best_of(repeats, set_loop(item, n)) / n * 1e9
        metrics['plain_set_ns'] = best_of(repeats, set_loop(plain, n)) / n * 1e9
        connection.abort()
        storage.close()
    emit(**metrics)


if __name__ == '__main__':
    main()
