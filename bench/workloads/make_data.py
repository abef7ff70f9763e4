"""Create the big benchmark data files (run once, normally under Durus 4.3).

    make_data.py '{"kind": "shop", "n": 1000000, "out": "bench/data/shop-1000000"}'

kind "shop": <out>-unpacked.durus, committed every 10,000 items and never
  packed, and <out>-packed.durus, the same database after pack().  The root
  holds 'items' (a BTree int -> Item of n items) and 'accounts' (a
  PersistentList with one Account per 1000 items).
kind "garbage": <out>.durus with about 2n records of which half are
  garbage (n/2 superseded versions, n/2 unreachable objects).
kind "clients": <out>.durus, packed, with root['c0'..'c<k-1>'] each a
  PersistentList of n Small objects.
Each file is written under a temporary name and renamed when complete.
"""

import os
import shutil

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_list import PersistentList

from _bench import params
from bench_models import Account, Item, Small

BATCH = 10000


def make_shop(n, out):
    unpacked = out + '-unpacked.durus'
    packed = out + '-packed.durus'
    tmp = unpacked + '.tmp'
    for leftover in (tmp, tmp + '.prepack'):
        if os.path.exists(leftover):
            os.remove(leftover)
    storage = FileStorage(tmp)
    connection = Connection(storage)
    root = connection.get_root()
    root['items'] = tree = BTree()
    root['accounts'] = accounts = PersistentList()
    connection.commit()
    for number in range(n):
        tree[number] = Item(number)
        if number % 1000 == 0:
            accounts.append(Account(number))
        if number % BATCH == BATCH - 1:
            connection.commit()
    connection.commit()
    storage.close()
    shutil.copyfile(tmp, packed + '.tmp')
    os.rename(tmp, unpacked)
    storage = FileStorage(packed + '.tmp')
    Connection(storage).pack()
    storage.close()
    os.remove(packed + '.tmp.prepack')
    os.rename(packed + '.tmp', packed)


def make_garbage(n, out):
    path = out + '.durus'
    tmp = path + '.tmp'
    if os.path.exists(tmp):
        os.remove(tmp)
    storage = FileStorage(tmp)
    connection = Connection(storage)
    root = connection.get_root()
    root['live'] = live = BTree()
    for i in range(n):
        live[i] = Small(i)
        if i % BATCH == BATCH - 1:
            connection.commit()
    connection.commit()
    for i in range(0, n, 2):          # n/2 superseded versions
        live[i].n = -i
        if i % BATCH == BATCH - 2:
            connection.commit()
    connection.commit()
    root['doomed'] = doomed = BTree()
    for i in range(n // 2):           # n/2 objects that become unreachable
        doomed[i] = Small(i)
        if i % BATCH == BATCH - 1:
            connection.commit()
    connection.commit()
    del root['doomed']
    connection.commit()
    storage.close()
    os.rename(tmp, path)


def make_clients(n, clients, out):
    path = out + '.durus'
    tmp = path + '.tmp'
    if os.path.exists(tmp):
        os.remove(tmp)
    storage = FileStorage(tmp)
    connection = Connection(storage)
    root = connection.get_root()
    for c in range(clients):
        root['c%d' % c] = PersistentList(Small(i) for i in range(n))
        connection.commit()
    connection.pack()
    storage.close()
    os.remove(tmp + '.prepack')
    os.rename(tmp, path)


def main():
    p = params()
    if p['kind'] == 'shop':
        make_shop(p['n'], p['out'])
    elif p['kind'] == 'garbage':
        make_garbage(p['n'], p['out'])
    elif p['kind'] == 'clients':
        make_clients(p['n'], p['clients'], p['out'])
    else:
        raise SystemExit('unknown kind %r' % p['kind'])


if __name__ == '__main__':
    main()
