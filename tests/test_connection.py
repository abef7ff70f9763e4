"""durus.connection: loading, commit/abort, the cache, maintenance helpers."""

import weakref

import pytest

from durus.connection import (ROOT_OID, Cache, Connection, ConnectionObserver,
                              ObjectDictionary,
                              ReferenceContainer, StillConflictedError,
                              gen_every_instance, touch_every_reference)
from durus.error import DurusKeyError, ReadConflictError
from durus.persistent import GHOST, SAVED, UNSAVED, Persistent
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.serialize import unpack_record
from durus.storage import MemoryStorage


class Item(Persistent):
    def __init__(self, value=None):
        self.value = value


class OtherRoot(Persistent):
    pass


class Broken(Persistent):
    def __getstate__(self):
        raise RuntimeError('cannot serialize')


@pytest.fixture
def storage():
    return MemoryStorage()


@pytest.fixture
def connection(storage):
    return Connection(storage)


def test_new_storage_gets_a_committed_empty_root(storage):
    connection = Connection(storage)
    assert isinstance(connection.root, PersistentDict)
    assert connection.get_root() is connection.root
    assert connection.root._p_oid == ROOT_OID
    assert connection.transaction_serial == 2
    assert ROOT_OID in storage.records
    assert Connection(storage).transaction_serial == 1


def test_root_class_is_used_and_checked(storage):
    connection = Connection(storage, root_class=OtherRoot)
    assert connection.root.__class__ is OtherRoot
    with pytest.raises(AssertionError):
        Connection(storage, root_class=PersistentDict)


def test_connection_refuses_a_non_storage():
    with pytest.raises(TypeError):
        Connection(object())


def test_connection_on_a_file_name_opens_a_file_storage(tmp_path):
    pytest.importorskip('durus.file_storage')
    path = str(tmp_path / 'db.durus')
    connection = Connection(path)
    connection.root['x'] = 1
    connection.commit()
    connection.storage.close()
    other = Connection(path)
    assert other.root['x'] == 1
    other.storage.close()


def test_get_by_int_or_oid_and_missing(connection):
    assert connection.get(0) is connection.root
    assert connection[ROOT_OID] is connection.root
    assert connection.get(12345) is None


def test_commit_stores_new_objects_reachable_from_changed_ones(connection,
                                                               storage):
    item = Item(Item('inner'))
    loose = Item('never referenced')
    connection.root['item'] = item
    connection.commit()
    assert item._p_oid is not None and item.value._p_oid is not None
    assert loose._p_oid is None
    assert len(storage.records) == 3
    root_record = storage.records[ROOT_OID]
    assert unpack_record(root_record)[2] == item._p_oid
    fresh = Connection(storage)
    assert fresh.root['item'].value.value == 'inner'


def test_new_objects_are_saved_and_changes_cleared(connection):
    item = Item(1)
    connection.root['item'] = item
    assert connection.changed == {ROOT_OID: connection.root}
    connection.commit()
    assert connection.changed == {}
    assert item._p_status == SAVED
    assert item._p_connection is connection
    assert connection.cache.get(item._p_oid) is item


def test_abort_ghosts_changed_objects_and_reloads_committed_state(connection):
    item = Item(1)
    connection.root['item'] = item
    connection.commit()
    item.value = 2
    connection.root['other'] = 3
    serial = connection.transaction_serial
    connection.abort()
    assert connection.transaction_serial == serial + 1
    assert item._p_status == GHOST
    assert item.value == 1
    assert 'other' not in connection.root


def test_empty_commit_advances_the_serial(connection):
    serial = connection.transaction_serial
    connection.commit()
    assert connection.transaction_serial == serial + 1


def test_failed_serialization_unbinds_new_objects(connection):
    item = Item(Broken())
    connection.root['item'] = item
    with pytest.raises(RuntimeError):
        connection.commit()
    assert item._p_oid is None and item._p_connection is None
    assert item._p_status == UNSAVED
    assert ROOT_OID in connection.changed
    del item.value
    connection.commit()
    assert item._p_oid is not None


def test_reference_to_another_connections_object_is_refused(storage):
    first = Connection(storage)
    second = Connection(storage)
    item = Item(1)
    first.root['item'] = item
    first.commit()
    second.root['foreign'] = item
    with pytest.raises(ValueError):
        second.commit()


def test_loading_counts_and_get_stored_pickle(connection, storage):
    connection.root['item'] = Item('x')
    connection.commit()
    other = Connection(storage)
    count = other.get_load_count()
    item = other.root['item']
    assert item._p_status == GHOST
    assert item.value == 'x'
    assert other.get_load_count() == count + 1
    data = other.get_stored_pickle(item._p_oid)
    assert data.startswith(b'\x80\x02c' + Item.__module__.encode())


def test_ghost_whose_record_vanished_raises_read_conflict(connection,
                                                          storage):
    connection.root['item'] = Item(1)
    connection.commit()
    other = Connection(storage)
    ghost = other.root['item']
    del storage.records[ghost._p_oid]
    with pytest.raises(ReadConflictError) as info:
        ghost.value
    assert info.value.oids == [ghost._p_oid]
    with pytest.raises(DurusKeyError):
        other.get_stored_pickle(ghost._p_oid)


def test_still_conflicted_commit_is_refused(connection):
    connection.invalid_oids.add(ROOT_OID)
    connection.root['x'] = 1
    with pytest.raises(StillConflictedError) as info:
        connection.commit()
    assert isinstance(info.value, AssertionError)
    assert 'abort' in str(info.value)
    connection.abort()
    connection.root['x'] = 1
    connection.commit()


def test_cache_size_accessors(connection):
    assert connection.get_cache_size() == 100000
    connection.set_cache_size(10)
    assert connection.get_cache_size() == 10
    with pytest.raises(ValueError):
        connection.set_cache_size(0)


def test_shrinking_ghosts_old_objects_but_never_changed_ones(storage):
    connection = Connection(storage, cache_size=10)
    items = [Item(i) for i in range(50)]
    connection.root['items'] = PersistentList(items)
    connection.commit()
    for item in items[:20]:
        item.value
    connection.commit()
    for item in items[:5]:
        item.value = 'changed'
    connection.shrink_cache()
    assert all(item._p_status == UNSAVED for item in items[:5])
    assert all(item.value == 'changed' for item in items[:5])
    connection.commit()
    del items
    fresh = Connection(storage, cache_size=10)
    values = [item.value for item in fresh.root['items']]
    assert values[:5] == ['changed'] * 5 and values[5:] == list(range(5, 50))


def test_shrinking_ghosts_objects_not_accessed_lately(storage):
    connection = Connection(storage, cache_size=5)
    connection.root['items'] = PersistentList([Item(i) for i in range(40)])
    connection.commit()
    items = list(connection.root['items'])
    for item in items:
        item.value
    connection.commit()
    items[0].value
    connection.commit()
    ghosts = sum(item._p_status == GHOST for item in items)
    assert ghosts >= 30
    assert items[0]._p_status == SAVED


def test_cache_counts_only_live_objects(storage):
    connection = Connection(storage)
    connection.root['items'] = PersistentList([Item(i) for i in range(10)])
    connection.commit()
    other = Connection(storage)
    other.root['items']
    count = other.get_cache_count()
    other.root['items'].data
    assert other.get_cache_count() == count + 10
    other.root['items']._p_set_status_ghost()
    other.abort()
    assert other.get_cache_count() == count


def test_get_crawler_loads_every_reachable_object(connection, storage):
    connection.root['items'] = PersistentList([Item(i) for i in range(5)])
    connection.commit()
    other = Connection(storage)
    seen = list(other.get_crawler())
    assert len(seen) == 7
    assert all(obj._p_status == SAVED for obj in seen)
    assert sorted(obj.value for obj in seen if isinstance(obj, Item)) == [
        0, 1, 2, 3, 4]


def test_pack_removes_unreachable_records(connection, storage):
    connection.root['item'] = Item(1)
    connection.commit()
    del connection.root['item']
    connection.commit()
    connection.pack()
    assert list(storage.records) == [ROOT_OID]


def test_touch_every_reference_marks_matching_records(connection):
    connection.root['a'] = Item('needle')
    connection.root['b'] = Item('hay')
    connection.commit()
    touch_every_reference(connection, 'needle')
    assert list(connection.changed.values()) == [connection.root['a']]
    connection.abort()
    touch_every_reference(connection, 'Item')
    # The root's record names the class too, in its persistent ids.
    assert len(connection.changed) == 3


def test_gen_every_instance(connection):
    connection.root['a'] = Item(1)
    connection.root['b'] = PersistentList()
    connection.commit()
    found = list(gen_every_instance(connection, Item))
    assert found == [connection.root['a']]
    assert len(list(gen_every_instance(connection, PersistentDict,
                                       PersistentList))) == 2


def test_object_dictionary_holds_weak_references():
    objects = ObjectDictionary()
    item = Item()
    objects[b'1'] = item
    assert objects.get(b'1') is item and b'1' in objects
    del item
    assert objects.get(b'1') is None
    assert len(objects) == 0
    assert list(objects) == []


def test_reference_container_and_cache_basics(connection):
    refs = ReferenceContainer()
    item = Item()
    refs.add(item)
    refs.add(item)
    assert len(refs) == 1 and item in refs
    refs.discard(item)
    assert item not in refs
    cache = Cache(5)
    ghost = cache.get_instance(b'\0' * 8, Item, connection)
    assert ghost._p_status == GHOST
    assert cache.get_instance(b'\0' * 8, Item, connection) is ghost
    replaced = cache.get_instance(b'\0' * 8, PersistentDict, connection)
    assert replaced is not ghost and cache.get(b'\0' * 8) is replaced
    with pytest.raises(ValueError):
        del cache[b'\0' * 8]


# The writer a connection keeps from one commit to the next


class Plain(object):
    """A non-persistent value that a weak reference can watch."""


def test_second_commit_writes_only_its_own_references(connection, storage):
    first = Item(Item('new'))
    connection.root['first'] = first
    connection.commit()
    lone = connection.root['lone'] = Item(5)
    connection.commit()
    _, _, refs = unpack_record(storage.load(lone._p_oid))
    assert refs == b''
    _, _, root_refs = unpack_record(storage.load(ROOT_OID))
    assert sorted([root_refs[i:i + 8] for i in range(0, len(root_refs), 8)]
                  ) == sorted([first._p_oid, lone._p_oid])
    # The new object found in the first commit is not written again.
    inner_oid = first.value._p_oid
    lone.value = 6
    written = []

    class Watch(ConnectionObserver):
        def after_commit(self, connection, objects):
            written.extend(objects)

    connection.add_observer(Watch())
    connection.commit()
    assert written == [lone]
    assert storage.load(inner_oid)


def test_kept_writer_lets_go_of_the_last_commits_values(connection):
    value = Plain()
    watch = weakref.ref(value)
    item = connection.root['item'] = Item(value)
    connection.commit()
    item.__dict__['value'] = None   # behind the connection's back
    del value
    assert watch() is None


def test_commit_after_a_failed_one_uses_a_working_writer(connection,
                                                        storage):
    connection.root['bad'] = Broken()
    with pytest.raises(RuntimeError):
        connection.commit()
    del connection.root['bad']
    good = connection.root['good'] = Item(Item(7))
    connection.commit()
    _, _, refs = unpack_record(storage.load(good._p_oid))
    assert refs == good.value._p_oid


def test_commit_drops_the_cache_entries_of_dead_objects(connection):
    objects = connection.cache.objects
    ghost_oid = b'\x00' * 7 + b'\x63'
    filed = Item()
    objects[ghost_oid] = filed
    del filed  # dies: its weak reference stays until the next purge
    assert ghost_oid in objects.mapping and objects.dead == [ghost_oid]
    connection.commit()
    assert ghost_oid not in objects.mapping and objects.dead == []
