"""MemoryStorage and the graph helpers of durus.storage."""

import pytest

from durus.connection import Connection
from durus.error import DurusKeyError
from durus.persistent import Persistent
from durus.persistent_list import PersistentList
from durus.serialize import pack_record
from durus.storage import (ROOT_OID, MemoryStorage, Storage, gen_oid_class,
                           gen_referring_oid_record, get_census,
                           get_reference_index)
from durus.utils import int8_to_str


class Leaf(Persistent):
    pass


def oid(n):
    return int8_to_str(n)


def test_storage_base_is_abstract():
    with pytest.raises(RuntimeError):
        Storage()


def test_oids_count_up_from_root():
    storage = MemoryStorage()
    assert [storage.new_oid() for _ in range(3)] == [ROOT_OID, oid(1), oid(2)]


def test_records_are_invisible_until_end():
    storage = MemoryStorage()
    record = pack_record(oid(0), b'data', b'')
    storage.begin()
    storage.store(oid(0), record)
    with pytest.raises(KeyError):
        storage.load(oid(0))
    storage.end()
    assert storage.load(oid(0)) == record
    assert list(storage.bulk_load([oid(0)])) == [record]
    assert storage.sync() == []


def test_missing_record_raises_durus_key_error():
    with pytest.raises(DurusKeyError) as info:
        MemoryStorage().load(oid(7))
    assert 'oid 7' in str(info.value)


@pytest.fixture
def graph():
    storage = MemoryStorage()
    connection = Connection(storage)
    shared = Leaf()
    connection.root['list'] = PersistentList([shared, Leaf()])
    connection.root['shared'] = shared
    connection.commit()
    return storage, connection


def test_traversal_from_root_follows_refs(graph):
    storage, connection = graph
    reached = [o for o, _ in Storage.gen_oid_record(storage, ROOT_OID,
                                                     batch_size=1)]
    assert reached == sorted(reached) and len(reached) == 4
    assert len(list(storage.gen_oid_record())) == 4


def test_census_and_class_listing(graph):
    storage, connection = graph
    assert get_census(storage) == {b'PersistentDict': 1,
                                   b'PersistentList': 1, b'Leaf': 2}
    assert sorted(name for _, name in gen_oid_class(storage, b'Leaf')) == [
        b'Leaf', b'Leaf']


def test_reference_index_and_referrers(graph):
    storage, connection = graph
    shared_oid = connection.root['shared']._p_oid
    list_oid = connection.root['list']._p_oid
    index = get_reference_index(storage)
    assert sorted(index[shared_oid]) == sorted([ROOT_OID, list_oid])
    referrers = sorted(o for o, _ in gen_referring_oid_record(storage,
                                                              shared_oid))
    assert referrers == sorted([ROOT_OID, list_oid])


def test_pack_drops_unreachable_records(graph):
    storage, connection = graph
    connection.root['list'].pop()
    del connection.root['list']
    connection.commit()
    storage.pack()
    assert get_census(storage) == {b'PersistentDict': 1, b'Leaf': 1}
