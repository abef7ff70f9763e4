"""What durus offers tools publicly: observers, per-connection class
resolution, touched objects, quiet reads, the writer's dry run, describe()."""

import pytest

from durus.record import pack_record, unpack_record

from durus import inspect
from durus.btree import BTree
from durus.connection import Connection, ConnectionObserver
from durus.error import (ClassImportError, CommitVetoedError,
                         ReadConflictError)
from durus.file_storage import FileStorage
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.serialize import ObjectReader, pack_record
from durus.storage import MemoryStorage


class Thing(Persistent):
    def __init__(self, name=''):
        self.name = name
        self.tags = []


class Box(object):
    """A plain (not persistent) holder."""

    def __init__(self, content):
        self.content = content


class Recorder(ConnectionObserver):
    def __init__(self, veto=None):
        self.events = []
        self.veto = veto

    def before_change(self, connection, obj):
        self.events.append(('change', obj, dict(inspect.peek_state(obj))))

    def before_commit(self, connection):
        self.events.append(('before_commit', len(connection.changed)))
        return self.veto

    def after_commit(self, connection, written):
        self.events.append(('after_commit', len(written)))

    def after_abort(self, connection, invalidated):
        self.events.append(('after_abort', list(invalidated)))


def test_observer_sees_changes_before_they_happen_and_transactions():
    connection = Connection(MemoryStorage())
    connection.root['thing'] = Thing('a')
    connection.commit()
    recorder = connection.add_observer(Recorder())
    thing = connection.root['thing']
    thing.name = 'b'
    thing.name = 'c'   # noted once per transaction
    kind, obj, before = recorder.events[0]
    assert (kind, obj, before['name']) == ('change', thing, 'a')
    assert len([e for e in recorder.events if e[0] == 'change']) == 1
    connection.commit()
    assert recorder.events[-2:] == [('before_commit', 1), ('after_commit', 1)]
    thing.name = 'd'
    connection.abort()
    assert recorder.events[-1] == ('after_abort', [])
    connection.remove_observer(recorder)
    thing.name = 'e'
    assert recorder.events[-1] == ('after_abort', [])


def test_a_veto_stops_the_commit_before_anything_is_stored():
    storage = MemoryStorage()
    connection = Connection(storage)
    connection.add_observer(Recorder(veto='read-only here'))
    connection.root['new'] = Thing('x')
    before = dict(storage.records)
    with pytest.raises(CommitVetoedError, match='read-only here'):
        connection.commit()
    assert storage.records == before
    assert connection.root['new']._p_oid is None
    assert list(connection.changed.values()) == [connection.root]
    # An empty commit is not asked about (nothing to refuse).
    connection.abort()
    connection.commit()


def test_observer_that_raises_vetoes_with_its_own_error():
    class Refuser(ConnectionObserver):
        def before_commit(self, connection):
            raise PermissionError('no')
    connection = Connection(MemoryStorage())
    connection.add_observer(Refuser())
    connection.root['x'] = 1
    with pytest.raises(PermissionError):
        connection.commit()
    assert connection.changed


class SharedMemoryStorage(MemoryStorage):
    """A MemoryStorage whose sync() reports oids queued by the test."""

    def __init__(self):
        MemoryStorage.__init__(self)
        self.invalidations = []

    def sync(self):
        oids, self.invalidations = self.invalidations, []
        return oids


def test_abort_tells_observers_what_other_clients_changed():
    storage = SharedMemoryStorage()
    connection = Connection(storage)
    connection.root['thing'] = Thing('a')
    connection.commit()
    recorder = connection.add_observer(Recorder())
    thing = connection.root['thing']
    storage.invalidations.append(thing._p_oid)
    connection.abort()
    assert recorder.events[-1] == ('after_abort', [thing._p_oid])
    assert inspect.status(thing) == inspect.GHOST


def test_class_factory_is_per_connection_and_used_for_the_root():
    storage = MemoryStorage()
    connection = Connection(storage)
    connection.root['x'] = Thing('a')
    connection.commit()
    # Rewrite the root's record to name a class that does not exist.
    oid, data, refs = unpack_record(storage.records[b'\0' * 8])
    storage.records[b'\0' * 8] = pack_record(oid, data.replace(
        b'durus.persistent_dict\nPersistentDict',
        b'gone.module\nPersistentDict'), refs)
    made = []

    def factory(module, name, persistent):
        made.append((module, name, persistent))
        return PersistentDict

    class_attributes = dict(vars(ObjectReader))
    with_factory = Connection(storage, class_factory=factory)
    assert ('gone.module', 'PersistentDict', True) in made
    assert with_factory.root['x'].name == 'a'
    assert dict(vars(ObjectReader)) == class_attributes
    with pytest.raises(ClassImportError):
        Connection(storage)


def test_touched_since_last_call_sees_each_statement_again():
    connection = Connection(MemoryStorage())
    root = connection.root
    root['a'] = Thing('a')
    root['b'] = Thing('b')
    connection.commit()
    b = root['b']
    connection.touched_since_last_call()
    a = root['a']
    a.tags.append('x')          # in place: no hook but the read of .tags
    touched = connection.touched_since_last_call()
    assert a in touched and root in touched and b not in touched
    assert connection.touched_since_last_call() == []
    a.tags.append('y')          # already read in this transaction
    assert connection.touched_since_last_call() == [a]
    inspect.peek_state(b, load=True)   # quiet: not a touch
    inspect.peek_state(a)
    assert connection.touched_since_last_call() == []


def test_peek_state_and_load_quietly_leave_no_access_mark():
    connection = Connection(MemoryStorage())
    connection.root['a'] = Thing('a')
    connection.commit()
    connection.abort()
    connection.cache.get(connection.root['a']._p_oid)
    a = connection.root['a']
    a._p_set_status_ghost()
    serial = a._p_serial
    assert inspect.peek_state(a) is None
    assert inspect.peek_state(a, load=True)['name'] == 'a'
    assert inspect.status(a) == inspect.SAVED
    assert a._p_serial == serial
    assert inspect.class_path(type(a)) == '%s.Thing' % __name__
    assert inspect.real_class(a) is Thing


@pytest.mark.parametrize('make', [
    lambda t: Box(t),
    lambda t: [[t]],
    lambda t: {'k': {'j': t}},
    lambda t: {t},
    lambda t: (1, (2, t)),
    lambda t: Box(Box([(t,)])),
])
def test_pending_writes_finds_new_objects_wherever_a_commit_does(make):
    connection = Connection(MemoryStorage())
    inner = Thing('inner')
    outer = Thing('outer')
    outer.child = inner
    connection.root['box'] = make(outer)
    pending = inspect.pending_writes(connection)
    assert pending.changed == [connection.root]
    assert pending.new == [outer, inner]
    assert outer._p_oid is None and inner._p_oid is None
    connection.commit()
    assert outer._p_oid is not None and inner._p_oid is not None


def test_pending_writes_reports_unpicklable_states():
    connection = Connection(MemoryStorage())
    connection.root['bad'] = Box(lambda: None)
    pending = inspect.pending_writes(connection)
    assert pending.changed == [connection.root]
    assert pending.errors and pending.errors[0][0] is connection.root


def test_differing_from_records_finds_in_place_edits_only():
    connection = Connection(MemoryStorage())
    for name in 'abc':
        connection.root[name] = Thing(name)
    connection.commit()
    things = [connection.root[name] for name in 'abc']
    things[1].tags.append('in place')
    things[2].name = 'noted'
    assert inspect.differing_from_records(connection, things) == [things[1]]


def test_stored_states_read_quietly_and_name_conflicts(tmp_path):
    path = str(tmp_path / 's.durus')
    connection = Connection(FileStorage(path))
    connection.root['a'] = Thing('a')
    connection.commit()
    a = connection.root['a']
    a.name = 'changed'
    states = inspect.stored_states(connection, [a])
    assert states[id(a)][0]['name'] == 'a' and states[id(a)][1] is None
    connection.invalid_oids.add(a._p_oid)
    state, error = inspect.stored_states(connection, [a])[id(a)]
    assert state is None and isinstance(error, ReadConflictError)
    connection.invalid_oids.clear()


def test_btree_items_by_range_and_prefix_quietly():
    connection = Connection(MemoryStorage())
    tree = connection.root['tree'] = BTree()
    for i in range(300):
        tree['k%03d' % i] = i
    tree['l'] = 'after the k keys'
    connection.commit()
    connection.abort()
    serial = tree._p_serial
    assert [k for k, _ in inspect.btree_items(
        tree, start='k010', stop='k013')] == ['k010', 'k011', 'k012']
    assert [v for _, v in inspect.btree_items(tree, prefix='k29')] == \
        list(range(290, 300))
    assert inspect.btree_get(tree, 'k150') == 150
    with pytest.raises(KeyError):
        inspect.btree_get(tree, 'nope')
    assert inspect.btree_size(tree, max_nodes=10 ** 6) == (301, True)
    assert tree._p_serial == serial
    nodes = list(inspect.btree_nodes(tree))
    assert nodes and all(inspect.is_bnode(node) for node in nodes)


def test_describe_storages(tmp_path):
    memory = MemoryStorage()
    Connection(memory)
    assert memory.describe() == {'format': 'memory', 'objects': 1,
                                 'exact': True, 'size': None,
                                 'readonly': False}
    path = str(tmp_path / 'd.durus')
    connection = Connection(FileStorage(path))
    connection.root['l'] = PersistentList([1])
    connection.commit()
    facts = connection.storage.describe()
    assert facts['format'] == 'shelf' and facts['objects'] >= 2
    assert facts['size'] > 0 and facts['readonly'] is False


def test_no_observer_means_no_call(monkeypatch):
    # note_change without observers is the plain dict store.
    connection = Connection(MemoryStorage())
    assert connection._observers == ()
    connection.root['x'] = 1
    assert list(connection.changed.values()) == [connection.root]


def test_record_bytes_stay_the_same_for_a_dry_run():
    connection = Connection(MemoryStorage())
    connection.root['a'] = Thing('a')
    connection.commit()
    a = connection.root['a']
    stored = connection.storage.load(a._p_oid)
    pending = inspect.pending_writes(connection, extra=[a])
    assert pending.changed == [a] and pending.new == []
    assert connection.storage.load(a._p_oid) == stored
    assert pack_record  # the record format is unchanged by dry runs


class ConflictingStorage(MemoryStorage):
    """bulk_load raises ReadConflictError at the oids in ``stale`` (after
    yielding the records before it), as ClientStorage does; counts calls."""

    def __init__(self):
        MemoryStorage.__init__(self)
        self.stale = set()
        self.bulk_calls = 0

    def bulk_load(self, oids):
        self.bulk_calls += 1
        for oid in oids:
            if oid in self.stale:
                raise ReadConflictError([oid])
            yield self.load(oid)


def test_stored_states_around_conflicts_in_one_bulk_load_each():
    storage = ConflictingStorage()
    connection = Connection(storage)
    things = [Thing(str(i)) for i in range(10)]
    connection.root['things'] = PersistentList(things)
    connection.commit()
    storage.stale = {things[3]._p_oid, things[7]._p_oid}
    storage.bulk_calls = 0
    states = inspect.stored_states(connection, things)
    assert storage.bulk_calls == 3
    for index, thing in enumerate(things):
        state, error = states[id(thing)]
        if index in (3, 7):
            assert state is None and isinstance(error, ReadConflictError)
        else:
            assert state['name'] == str(index) and error is None
