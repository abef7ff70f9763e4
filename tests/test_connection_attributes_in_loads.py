"""The connection attributes read on every load (``load_snapshots``,
``transaction_serial``, ``_unhooked``): the compiled load path reads them
from the instance dict once it knows the class has no descriptor of that
name (csrc/common.h, instance_attr).  What Python says the attribute is
must still be what the load uses: a property, a class changed later, a
value replaced on the instance.  Runs on both paths."""

import pytest

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent import Persistent


class Item(Persistent):
    def __init__(self, n):
        self.n = n
        self.tags = [n]


@pytest.fixture
def path(tmp_path):
    name = str(tmp_path / 'items.durus')
    connection = Connection(FileStorage(name))
    connection.root['items'] = [Item(n) for n in range(30)]
    connection.commit()
    connection.storage.close()
    return name


def open_connection(path, cls=Connection):
    return cls(FileStorage(path, readonly=True), load_snapshots=True)


def load(items, start, stop):
    for item in items[start:stop]:
        item.n


def test_a_snapshot_store_replaced_on_the_instance_is_the_one_used(path):
    connection = open_connection(path)
    items = connection.root['items']
    load(items, 0, 5)
    first = connection.load_snapshots
    assert len(first) >= 5
    connection.load_snapshots = None
    load(items, 5, 10)
    assert connection.load_snapshots is None
    del connection.load_snapshots          # the class's None again
    load(items, 10, 12)
    assert all(first.snapshot(item._p_oid) is None for item in items[5:12])
    assert all(first.snapshot(item._p_oid) is not None for item in items[:5])


def test_a_class_that_makes_it_a_property_later_is_asked(path):
    class Counting(Connection):
        pass

    connection = open_connection(path, Counting)
    items = connection.root['items']
    store = connection.load_snapshots
    load(items, 0, 5)           # the class without a descriptor: cached
    asked = []

    def snapshots(self):
        asked.append(1)
        return None

    Counting.load_snapshots = property(snapshots)   # shadows the dict now
    load(items, 5, 10)
    assert len(asked) >= 5
    assert all(store.snapshot(item._p_oid) is None for item in items[5:10])
    del Counting.load_snapshots
    load(items, 10, 15)
    assert all(store.snapshot(item._p_oid) is not None
               for item in items[10:15])


def test_a_transaction_serial_property_is_asked_on_reads(path):
    class Serial(Connection):
        @property
        def transaction_serial(self):
            self.asked += 1
            return self.__dict__['serial']

        @transaction_serial.setter
        def transaction_serial(self, value):
            self.__dict__['serial'] = value

    Serial.asked = 0
    connection = open_connection(path, Serial)
    items = connection.root['items']
    before = connection.asked
    load(items, 0, 10)
    assert connection.asked - before >= 10
    assert [item.n for item in items[:10]] == list(range(10))
    assert all(item._p_serial == connection.transaction_serial
               for item in items[:10])
