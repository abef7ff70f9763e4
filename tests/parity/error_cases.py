"""Misuses that Durus 4.3 answered with an assert (or another exception).

Run under an interpreter whose `durus` is either 4.3 or this package:

    python error_cases.py WORKDIR

prints, as JSON, for each case the names of the builtin exception classes
the raised error is an instance of (or "no error").  test_api_behaviour.py
runs it under both and checks that each clear error here is still an
instance of what 4.3 raised, as docs/differences.md promises.
"""

import builtins
import json
import os
import socket
import sys

from durus.btree import BTree
from durus.connection import Connection
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.serialize import split_oids
from durus.storage import MemoryStorage
from durus.utils import int8_to_str

WORKDIR = sys.argv[1] if len(sys.argv) > 1 else '.'


def path(name):
    return os.path.join(WORKDIR, name)


def garbage_file(name):
    with open(path(name), 'wb') as f:
        f.write(b'this is not a database file, just some text\n' * 4)
    return path(name)


def btree_of_a_non_node_class():
    BTree(dict)


def smallest_item_of_an_empty_btree():
    BTree().get_min_item()


def largest_item_of_an_empty_btree():
    BTree().get_max_item()


def connection_to_a_non_storage():
    Connection(42)


def root_of_another_class():
    storage = MemoryStorage()
    Connection(storage).commit()
    Connection(storage, root_class=BTree)


class FirstOidFive(MemoryStorage):
    def new_oid(self):
        return int8_to_str(5)


def storage_whose_first_oid_is_not_zero():
    Connection(FirstOidFive())


def load_state_of_a_loaded_object():
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    connection.load_state(root)


def p_load_state_of_a_new_object():
    Persistent()._p_load_state()


def references_not_a_multiple_of_8_bytes():
    split_oids(b'0123456789')


def file_storage_on_a_non_shelf_file():
    from durus.file_storage import FileStorage
    FileStorage(garbage_file('not_shelf'))


def file_storage2_on_a_non_dfs_file():
    from durus.file_storage2 import FileStorage2
    FileStorage2(garbage_file('not_dfs'))


def file_storage2_pack_of_a_temporary_file():
    from durus.file_storage2 import FileStorage2
    storage = FileStorage2()
    Connection(storage).commit()
    storage.get_packer()


def file_storage_pack_of_a_temporary_file():
    from durus.file_storage import TempFileStorage
    storage = TempFileStorage()
    connection = Connection(storage)
    connection.commit()
    connection.pack()


def store_and_end(storage, oid):
    from durus.serialize import pack_record
    storage.begin()
    storage.store(oid, pack_record(oid, b'data', b''))
    storage.end()


def file_storage_store_of_a_short_oid():
    from durus.file_storage import FileStorage
    storage = FileStorage(path('short_oid'))
    Connection(storage).commit()
    store_and_end(storage, b'abc')


def file_storage_store_of_an_oid_never_handed_out():
    from durus.file_storage import FileStorage
    storage = FileStorage(path('unknown_oid'))
    Connection(storage).commit()
    store_and_end(storage, int8_to_str(999))


def file_storage2_store_of_a_short_oid():
    from durus.file_storage2 import FileStorage2
    storage = FileStorage2(path('short_oid2'))
    Connection(storage).commit()
    store_and_end(storage, b'abc')


def sqlite_store_of_a_short_oid():
    from durus.sqlite_storage import SqliteStorage
    storage = SqliteStorage(path('short_oid.sqlite'))
    Connection(storage).commit()
    store_and_end(storage, b'abc')


def memory_storage_store_of_a_short_oid():
    storage = MemoryStorage()
    Connection(storage).commit()
    store_and_end(storage, b'abc')


def server_with_non_numeric_gcbytes():
    from durus.storage_server import StorageServer
    StorageServer(MemoryStorage(), address=path('server.sock'),
                  gcbytes='lots')


def client_with_nobody_listening():
    from durus.client_storage import ClientStorage
    ClientStorage(address=path('nobody.sock'))


def client_with_nobody_listening_on_tcp():
    from durus.client_storage import ClientStorage
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    ClientStorage(host='127.0.0.1', port=port)


def filled_file(name, storage_class):
    storage = storage_class(path(name))
    connection = Connection(storage)
    connection.get_root()['x'] = 1
    connection.commit()
    storage.close()
    return path(name)


def file_storage_pack_when_readonly():
    from durus.file_storage import FileStorage
    name = filled_file('readonly_shelf', FileStorage)
    Connection(FileStorage(name, readonly=True)).pack()


def file_storage2_pack_when_readonly():
    from durus.file_storage2 import FileStorage2
    name = filled_file('readonly_dfs', FileStorage2)
    FileStorage2(name, readonly=True).get_packer()


def file_storage2_temporary_and_readonly():
    from durus.file_storage2 import FileStorage2
    FileStorage2(None, readonly=True)


def commit_to_a_readonly_file_storage():
    from durus.file_storage import FileStorage
    name = filled_file('readonly_commit', FileStorage)
    connection = Connection(FileStorage(name, readonly=True))
    connection.get_root()['y'] = 2
    connection.commit()


def commit_to_a_readonly_file_storage2():
    from durus.file_storage2 import FileStorage2
    name = filled_file('readonly_commit2', FileStorage2)
    connection = Connection(FileStorage2(name, readonly=True))
    connection.get_root()['y'] = 2
    connection.commit()


CASES = [
    file_storage_pack_when_readonly,
    file_storage2_pack_when_readonly,
    file_storage2_temporary_and_readonly,
    commit_to_a_readonly_file_storage,
    commit_to_a_readonly_file_storage2,
    btree_of_a_non_node_class,
    smallest_item_of_an_empty_btree,
    largest_item_of_an_empty_btree,
    connection_to_a_non_storage,
    root_of_another_class,
    storage_whose_first_oid_is_not_zero,
    load_state_of_a_loaded_object,
    p_load_state_of_a_new_object,
    references_not_a_multiple_of_8_bytes,
    file_storage_on_a_non_shelf_file,
    file_storage2_on_a_non_dfs_file,
    file_storage2_pack_of_a_temporary_file,
    file_storage_pack_of_a_temporary_file,
    file_storage_store_of_a_short_oid,
    file_storage_store_of_an_oid_never_handed_out,
    file_storage2_store_of_a_short_oid,
    sqlite_store_of_a_short_oid,
    memory_storage_store_of_a_short_oid,
    server_with_non_numeric_gcbytes,
    client_with_nobody_listening,
    client_with_nobody_listening_on_tcp,
]

BUILTIN_EXCEPTIONS = [value for value in vars(builtins).values()
                      if isinstance(value, type)
                      and issubclass(value, BaseException)]


def outcome(case):
    try:
        case()
    except Exception as error:
        return sorted(set(kind.__name__ for kind in BUILTIN_EXCEPTIONS
                      if isinstance(error, kind)
                      and kind not in (BaseException, Exception)))
    return 'no error'


if __name__ == '__main__':
    json.dump({case.__name__: outcome(case) for case in CASES},
              sys.stdout, indent=1, sort_keys=True)
