"""API calls whose printed results must be the same here and in Durus 4.3.

Run under an interpreter whose `durus` is either 4.3 or this package;
test_api_behaviour.py compares the two outputs line by line.  Each line
is `label: result`; an exception prints as its builtin class names.
"""

import builtins
import gc
import os
from collections.abc import MutableMapping

from durus.btree import BNode4, BTree
from durus.connection import Connection, ObjectDictionary
from durus.persistent import ConnectionBase, Persistent
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from durus.storage import MemoryStorage
from durus.utils import int8_to_str

BUILTIN_EXCEPTIONS = [value for value in vars(builtins).values()
                      if isinstance(value, type)
                      and issubclass(value, BaseException)]


def show(label, call):
    try:
        result = call()
    except Exception as error:
        result = 'raises ' + ' '.join(sorted(set(
            kind.__name__ for kind in BUILTIN_EXCEPTIONS
            if isinstance(error, kind)
            and kind not in (BaseException, Exception))))
    print('%s: %r' % (label, result))


def number(oid):
    return int.from_bytes(oid, 'big')


def btree_as_a_mutable_mapping():
    tree = BTree(BNode4)
    for key in (5, 3, 9, 1, 7, 2, 8):
        tree[key] = str(key)
    show('isinstance MutableMapping', lambda: isinstance(tree, MutableMapping))
    show('pop 7', lambda: tree.pop(7))
    show('pop missing with default', lambda: tree.pop(70, 'none'))
    show('pop missing', lambda: tree.pop(70))
    show('popitem', lambda: tree.popitem())
    show('popitem again', lambda: tree.popitem())
    show('items left', lambda: list(tree.items()))
    show('len', lambda: len(tree))
    show('__nonzero__', lambda: tree.__nonzero__())
    show('setdefault existing', lambda: tree.setdefault(5, 'x'))
    show('equal to a dict', lambda: tree == dict(tree.items()))
    while tree:
        tree.popitem()
    show('popitem of empty', lambda: tree.popitem())
    show('empty __nonzero__', lambda: tree.__nonzero__())
    show('root_is', lambda: BTree.root_is.__name__)
    show('nodes_is', lambda: [c.__name__ for c in BNode4.nodes_is[1]])


def format_oid():
    for oid in (None, b'', int8_to_str(0), int8_to_str(7),
                int8_to_str(2 ** 64 - 1), '\x00' * 7 + '\x09', b'\x01\x02'):
        obj = Persistent()
        obj._p_oid = oid
        show('_p_format_oid %r' % (oid,), obj._p_format_oid)


def memory_storage_lists_reachable_records():
    storage = MemoryStorage()
    connection = Connection(storage)
    root = connection.get_root()
    root['kept'] = Persistent()
    root['dropped'] = Persistent()
    root['kept'].child = Persistent()
    connection.commit()
    del root['dropped']
    connection.commit()
    show('gen_oid_record()',
         lambda: [number(oid) for oid, _ in storage.gen_oid_record()])
    show('gen_oid_record(batch_size=1)',
         lambda: [number(oid) for oid, _ in
                  storage.gen_oid_record(batch_size=1)])
    show('gen_oid_record from the dropped object', lambda: [
        number(oid) for oid, _ in storage.gen_oid_record(int8_to_str(2))])


def transaction_serial():
    show('ConnectionBase has transaction_serial',
         lambda: hasattr(ConnectionBase, 'transaction_serial'))
    connection = Connection(MemoryStorage())
    show('new connection serial', lambda: connection.transaction_serial)
    connection.commit()
    show('serial after a commit', lambda: connection.transaction_serial)


def object_dictionary():
    objects = ObjectDictionary()
    kept, dropped = Persistent(), Persistent()
    objects[b'k'] = kept
    objects[b'd'] = dropped
    show('callable callback', lambda: callable(objects.callback))
    del dropped
    gc.collect()
    objects.clear_dead()
    show('keys after clear_dead', lambda: sorted(objects))
    show('len after clear_dead', lambda: len(objects))
    show('get by keyword', lambda: objects.get(key=b'k') is kept)


def containers_by_keyword():
    mapping = PersistentDict(a=1)
    show('dict get failobj', lambda: mapping.get('b', failobj=2))
    show('dict setdefault failobj',
         lambda: mapping.setdefault('c', failobj=3))
    show('dict __setitem__ item', lambda: mapping.__setitem__('d', item=4))
    show('dict data', lambda: sorted(mapping.items()))
    sequence = PersistentList([1, 2, 3])
    show('list insert i', lambda: sequence.insert(i=0, item=0))
    show('list pop i', lambda: sequence.pop(i=1))
    show('list __getslice__', lambda: list(sequence.__getslice__(0, 2)))
    show('list __getslice__ class',
         lambda: type(sequence.__getslice__(0, 2)).__name__)
    show('list __setslice__', lambda: sequence.__setslice__(0, 1, [9, 9]))
    show('list __delslice__', lambda: sequence.__delslice__(2, 3))
    show('list data', lambda: list(sequence))
    show('list with a keyword', lambda: PersistentList(x=1))
    persistent_set = PersistentSet([1, 2])
    show('set union other', lambda: sorted(persistent_set.union(other={3})))
    show('set update other', lambda: persistent_set.update(other=[4]))
    show('set data', lambda: sorted(persistent_set))
    show('spec attributes', lambda: (PersistentDict.data_is.__name__,
                                     PersistentList.data_is.__name__,
                                     PersistentSet.s_is.__name__))


def systemd_listen_fds():
    from durus.systemd_socket import SD_LISTEN_FDS_START, sd_listen_fds
    show('SD_LISTEN_FDS_START', lambda: SD_LISTEN_FDS_START)
    saved = {name: os.environ.pop(name, None)
             for name in ('LISTEN_PID', 'LISTEN_FDS')}
    try:
        show('no LISTEN_PID', sd_listen_fds)
        os.environ['LISTEN_PID'] = str(os.getpid() + 1)
        os.environ['LISTEN_FDS'] = '1'
        show('another process', sd_listen_fds)
        os.environ['LISTEN_PID'] = str(os.getpid())
        os.environ['LISTEN_FDS'] = '0'
        show('this process, none', sd_listen_fds)
        os.environ['LISTEN_FDS'] = 'many'
        show('this process, not a count', sd_listen_fds)
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


if __name__ == '__main__':
    btree_as_a_mutable_mapping()
    format_oid()
    memory_storage_lists_reachable_records()
    transaction_serial()
    object_dictionary()
    containers_by_keyword()
    systemd_listen_fds()
