"""One suite for the Storage contract, run against every storage.

To add a storage, register a factory in ``STORAGE_KINDS``: ``make(path)``
opens the storage at ``path`` (a file path in a fresh temporary
directory; the same path reopens it), ``persistent`` says whether
closing and reopening keeps the data, ``reports_pack`` whether
``sync()`` reports the oids a pack removed, ``lists_unreachable``
whether ``gen_oid_record()`` without a start lists records no root
reaches, and ``finish_pack(storage)`` waits for a pack that ``pack()``
only started.  Other test modules may also add kinds with
``register_storage_kind``.

The ``client`` kind is a ClientStorage talking over a real socket to a
StorageServer (in a thread of this process) that serves a FileStorage
at ``path``; reopening connects a new client to the same server.  Like
Durus 4.3's, its ``pack()`` only starts the server's incremental pack,
and its ``gen_oid_record()`` walks from the root.
"""

import os
import re
import threading
import time

import pytest

from durus.client_storage import ClientStorage
from durus.error import DurusKeyError
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.serialize import pack_record, unpack_record
from durus.sqlite_storage import SqliteStorage
from durus.storage_server import StorageServer
from durus.storage import (
    ROOT_OID, MemoryStorage, gen_oid_class, gen_referring_oid_record,
    get_census, get_reference_index)
from durus.utils import int8_to_str


class StorageKind(object):
    def __init__(self, name, make, persistent=True, reports_pack=True,
                 lists_unreachable=True, finish_pack=None):
        self.name = name
        self.make = make
        self.persistent = persistent
        self.reports_pack = reports_pack
        self.lists_unreachable = lists_unreachable
        self.finish_pack = finish_pack or (lambda storage: None)


STORAGE_KINDS = {}


def register_storage_kind(kind):
    STORAGE_KINDS[kind.name] = kind


_memory_storages = {}


def _memory(path):
    return _memory_storages.setdefault(path, MemoryStorage())


register_storage_kind(StorageKind('memory', _memory, persistent=False,
                                  reports_pack=False, lists_unreachable=False))
register_storage_kind(StorageKind('file', FileStorage))
register_storage_kind(StorageKind('file2', FileStorage2))
register_storage_kind(StorageKind('sqlite', SqliteStorage))

_servers = {}   # path -> (StorageServer, its thread), until the test ends


def _client(path):
    if path not in _servers:
        server = StorageServer(FileStorage(path), port=0)
        server.listen()
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        _servers[path] = (server, thread)
    return ClientStorage(port=_servers[path][0].address.port)


def _finish_server_pack(storage):
    for server, _ in _servers.values():
        if server.address.port == storage.address.port:
            deadline = time.monotonic() + 10
            while (server.core.packer is not None and
                   time.monotonic() < deadline):
                time.sleep(0.005)
            assert server.core.packer is None, 'the pack did not finish'


register_storage_kind(StorageKind('client', _client,
                                  lists_unreachable=False,
                                  finish_pack=_finish_server_pack))


@pytest.fixture(autouse=True)
def stop_servers():
    yield
    while _servers:
        server, thread = _servers.popitem()[1]
        server.stop()
        thread.join(10)
        assert not thread.is_alive()


_pg_databases = {}


def _postgresql(path):
    """PgStorage in a database of the session's throwaway cluster, one
    database per path (skips where PostgreSQL is not installed)."""
    import pg_cluster
    pytest.importorskip('psycopg', reason=pg_cluster.DRIVER_HINT)
    from durus.pg_storage import PgStorage
    cluster = pg_cluster.session_cluster()
    if path not in _pg_databases:
        _pg_databases[path] = cluster.new_dsn()
        return PgStorage(_pg_databases[path], create=True)
    return PgStorage(_pg_databases[path])


register_storage_kind(StorageKind('postgresql', _postgresql))


@pytest.fixture(params=sorted(STORAGE_KINDS))
def kind(request):
    return STORAGE_KINDS[request.param]


@pytest.fixture(params=sorted(name for name, kind in STORAGE_KINDS.items()
                              if kind.persistent))
def persistent_kind(request):
    return STORAGE_KINDS[request.param]


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'db.durus')


@pytest.fixture
def storage(kind, path):
    opened = kind.make(path)
    yield opened
    opened.close()


def data_of(class_name):
    """A minimal data field: a GLOBAL class pickle and an empty state."""
    return (b'\x80\x02capp\n' + class_name + b'\nq\x00.'
            + b'\x80\x02}q\x01.')


def sized_data(size):
    """A data field ``size`` bytes longer than ``data_of(b'Sized')``
    whose state is still one whole pickle (opening a file checks the
    pickles of its last transaction)."""
    base = data_of(b'Sized')
    if size == 0:
        return base
    class_pickle = base[:-6]  # the state of data_of is 6 bytes
    if size == 1:
        return class_pickle + b'\x80\x02K\x01q\x01.'  # an int: 7 bytes
    text = b'x' * (size - 2)  # a str: 8 bytes more than the text
    return (class_pickle + b'\x80\x02X' + len(text).to_bytes(4, 'little')
            + text + b'.')


def record(oid, class_name=b'Thing', refs=()):
    return pack_record(oid, data_of(class_name), b''.join(sorted(refs)))


def commit(storage, *records):
    storage.begin()
    for rec in records:
        storage.store(rec[:8], rec)
    storage.end()


def build_graph(storage):
    """root -> a -> b, root -> c; d unreachable.  Returns the oids."""
    root = storage.new_oid()
    a, b, c, d = [storage.new_oid() for _ in range(4)]
    commit(storage,
           record(root, b'Root', [a, c]), record(a, b'A', [b]),
           record(b, b'B'), record(c, b'C'), record(d, b'Garbage'))
    return root, a, b, c, d


def test_first_new_oid_of_an_empty_storage_is_the_root(storage):
    assert storage.new_oid() == ROOT_OID


def test_load_of_a_missing_oid_raises_key_error(storage):
    with pytest.raises(KeyError):
        storage.load(int8_to_str(12345))


@pytest.mark.parametrize('bad, error', [
    ('00000000', TypeError), (7, TypeError), (None, TypeError),
    (b'\0' * 7, ValueError), (b'\0' * 9, ValueError)])
def test_a_bad_oid_is_a_type_or_value_error_naming_it(storage, bad, error):
    with pytest.raises(error, match=re.escape(repr(bad))):
        storage.load(bad)
    storage.begin()
    with pytest.raises(error, match=re.escape(repr(bad))):
        storage.store(bad, record(ROOT_OID))


def test_stored_records_are_invisible_until_end(storage):
    oid = storage.new_oid()
    storage.begin()
    storage.store(oid, record(oid))
    with pytest.raises(KeyError):
        storage.load(oid)
    storage.end()
    assert storage.load(oid) == record(oid)


def test_newest_record_wins(storage):
    oid = storage.new_oid()
    commit(storage, record(oid, b'Old'))
    commit(storage, record(oid, b'New'))
    assert storage.load(oid) == record(oid, b'New')


def test_new_oids_are_unique_and_never_existing(storage):
    root, a, b, c, d = build_graph(storage)
    fresh = [storage.new_oid() for _ in range(50)]
    assert len(set(fresh)) == 50
    assert not set(fresh) & {root, a, b, c, d}


def test_bulk_load_returns_records_in_order(storage):
    root, a, b, c, d = build_graph(storage)
    assert list(storage.bulk_load([c, root, b])) == [
        storage.load(c), storage.load(root), storage.load(b)]


def test_gen_oid_record_without_start_lists_every_current_record(kind,
                                                               storage):
    root, a, b, c, d = build_graph(storage)
    commit(storage, record(b, b'B2'))
    found = dict(storage.gen_oid_record())
    expected = {root, a, b, c, d} if kind.lists_unreachable else {
        root, a, b, c}
    assert set(found) == expected
    assert found[b] == record(b, b'B2')


def test_gen_oid_record_from_a_start_follows_references(storage):
    root, a, b, c, d = build_graph(storage)
    oids = [oid for oid, _ in storage.gen_oid_record(start_oid=ROOT_OID)]
    assert oids[0] == root and sorted(oids) == [root, a, b, c]
    assert [oid for oid, _ in storage.gen_oid_record(start_oid=a)] == [a, b]


def test_census_and_reference_helpers(kind, storage):
    root, a, b, c, d = build_graph(storage)
    census = {b'Root': 1, b'A': 1, b'B': 1, b'C': 1, b'Garbage': 1}
    if not kind.lists_unreachable:
        del census[b'Garbage']
    assert get_census(storage) == census
    assert dict(gen_oid_class(storage, b'A', b'C')) == {a: b'A', c: b'C'}
    assert [oid for oid, _ in gen_referring_oid_record(storage, b)] == [a]
    index = get_reference_index(storage)
    assert index[a] == [root] and index[b] == [a]


def test_pack_removes_only_unreachable_records(kind, storage):
    root, a, b, c, d = build_graph(storage)
    storage.sync()
    storage.pack()
    kind.finish_pack(storage)
    for oid in (root, a, b, c):
        assert unpack_record(storage.load(oid))[0] == oid
    with pytest.raises(KeyError):
        storage.load(d)
    if kind.reports_pack:
        assert d in storage.sync()
    assert sorted(dict(storage.gen_oid_record())) == [root, a, b, c]


def test_records_survive_close_and_reopen(persistent_kind, path):
    kind = persistent_kind
    storage = kind.make(path)
    root, a, b, c, d = build_graph(storage)
    storage.close()
    storage = kind.make(path)
    try:
        assert storage.load(b) == record(b, b'B')
        fresh = storage.new_oid()
        assert fresh not in (root, a, b, c, d)
        commit(storage, record(fresh, b'Fresh'))
        assert storage.load(d) == record(d, b'Garbage')
    finally:
        storage.close()


def test_packed_records_survive_reopen(persistent_kind, path):
    kind = persistent_kind
    storage = kind.make(path)
    root, a, b, c, d = build_graph(storage)
    storage.pack()
    kind.finish_pack(storage)
    storage.close()
    storage = kind.make(path)
    try:
        assert sorted(dict(storage.gen_oid_record())) == [root, a, b, c]
        assert storage.load(c) == record(c, b'C')
    finally:
        storage.close()


def test_connection_round_trip(kind, path):
    from durus.connection import Connection
    from durus.persistent_dict import PersistentDict
    storage = kind.make(path)
    connection = Connection(storage)
    root = connection.get_root()
    root['child'] = PersistentDict({'n': 1})
    root['text'] = 'grüß'
    connection.commit()
    if kind.persistent:
        storage.close()
        storage = kind.make(path)
        connection = Connection(storage)
    try:
        root = connection.get_root()
        assert root['text'] == 'grüß'
        assert root['child']['n'] == 1
    finally:
        storage.close()


def test_commits_between_incremental_pack_steps_are_kept(kind, storage,
                                                         monkeypatch):
    import durus.file_storage
    import durus.file_storage2
    for module in (durus.file_storage, durus.file_storage2):
        monkeypatch.setattr(module, 'PACK_STEP', 1)  # yield after each record
    root, a, b, c, d = build_graph(storage)
    packer = storage.get_packer()
    if packer is None:
        storage.pack()
        packer = iter(())
    steps = iter(packer)
    next(steps, None)
    late = storage.new_oid()
    commit(storage, record(root, b'Root', [a, c, late]),
           record(late, b'Late'))
    for _ in steps:
        pass
    kind.finish_pack(storage)
    assert storage.load(late) == record(late, b'Late')
    assert storage.load(root) == record(root, b'Root', [a, c, late])
    with pytest.raises(KeyError):
        storage.load(d)


def test_sync_reports_pack_removals_once(kind, storage):
    root, a, b, c, d = build_graph(storage)
    storage.sync()
    storage.pack()
    kind.finish_pack(storage)
    first = storage.sync()
    assert storage.sync() == []
    if kind.reports_pack:
        assert first == [d]


def test_records_of_every_size_read_back_before_and_after_reopen(
        persistent_kind, path):
    # File storages read a guessed length first and the rest of a longer
    # record second, and read through a memory map once a file has been
    # read often enough: every size around those edges must come back
    # whole, from the pread path and from the mapped one.
    kind = persistent_kind
    sizes = [0, 1, 200, 480, 490, 495, 500, 511, 512, 513, 1000, 2047, 2048,
             2049, 5000, 70000]
    storage = kind.make(path)
    oids = [storage.new_oid() for _ in sizes]
    records = [pack_record(oid, sized_data(size), b'')
               for oid, size in zip(oids, sizes)]
    commit(storage, *records)
    for _ in range(3):  # enough reads to map the file, then mapped ones
        for oid, rec in zip(oids, records):
            assert storage.load(oid) == rec
        for _ in range(30):
            storage.load(oids[0])
    storage.close()
    storage = kind.make(path)
    try:
        for _ in range(3):
            for oid, rec in zip(oids, records):
                assert storage.load(oid) == rec
            for _ in range(30):
                storage.load(oids[0])
    finally:
        storage.close()
