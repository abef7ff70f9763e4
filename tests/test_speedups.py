"""durus._speedups, the optional compiled load path, against its Python twins.

The compiled functions must behave exactly like the Python code they stand
in for (durus/_accel.py): same results, same errors, and every unusual case
handed back to Python.  These tests compare the two directly and check
that the compiled path leaks no objects.  The rest of the suite runs on
both paths in CI: .ci/run runs it once compiled, once with
DURUS_NO_SPEEDUPS=1.
"""

import gc
import os
import subprocess
import sys
import weakref

import pytest

from durus import _accel
from durus.connection import Connection
from durus.error import DamagedFileError, DurusKeyError, ReadConflictError
from durus.file_storage import FileStorage
from durus.persistent import (GHOST, Persistent, PersistentBase,
                              _getattribute, _variants)
from durus.persistent_dict import PersistentDict
from durus.serialize import ObjectReader, _PyFeed
from durus.shelf import Shelf
from durus.storage import MemoryStorage
from compiled_only import compiled

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
speedups = _accel.speedups

class Item(Persistent):
    def __init__(self, n):
        self.n = n
        self.name = 'item %d' % n
        self.tags = ['t%d' % n]


class Watchful(Persistent):
    """A class with its own __getattribute__: keeps the Python hook."""

    def __getattribute__(self, name):
        return Persistent.__getattribute__(self, name)


class Custom(Persistent):
    """A class whose __new__ is its own."""

    def __new__(cls, *args):
        obj = Persistent.__new__(cls)
        obj.made_by_new = True
        return obj


def test_speedups_are_built_where_required():
    if not os.environ.get('DURUS_REQUIRE_SPEEDUPS'):
        pytest.skip('only runs that set DURUS_REQUIRE_SPEEDUPS (CI) insist '
                    'on the compiled module')
    assert speedups is not None, (
        'durus._speedups is missing: the C extension failed to build')


def test_no_speedups_variable_forces_pure_python():
    code = ('import durus._accel, durus.persistent as p; '
            'assert durus._accel.speedups is None; '
            'assert p.refresh_hooks.__module__ == "durus.persistent"; '
            'print("pure")')
    env = dict(os.environ, DURUS_NO_SPEEDUPS='1', PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, '-c', code], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'pure'


# Feed


FEED_SCRIPTS = [
    [('peek', ()), ('read', (3,)), ('peek', ()), ('read', ())],
    [('read', (-1,)), ('read', (5,)), ('peek', ())],
    [('read', (None,)), ('read', (2,))],
    [('readline', ()), ('readline', ()), ('readline', ()), ('readline', ())],
    [('read', (2,)), ('readinto', 4), ('readinto', 100), ('read', ())],
    [('read', (1000,)), ('peek', (7,))],
]


@compiled
@pytest.mark.parametrize('script', FEED_SCRIPTS)
@pytest.mark.parametrize('data', [b'', b'ab\ncd\nef', b'\x80\x02}q\x01.'])
def test_feed_matches_the_python_feed(script, data):
    results = []
    for feed in (speedups.Feed(), _PyFeed()):
        feed.data = data
        feed.pos = 0
        seen = []
        for name, args in script:
            if name == 'readinto':
                buffer = bytearray(args)
                count = feed.readinto(buffer)
                seen.append((count, bytes(buffer[:count])))
            else:
                seen.append(getattr(feed, name)(*args))
            seen.append(feed.pos)
        results.append(seen)
    assert results[0] == results[1]


@compiled
def test_feed_gives_its_data_without_a_copy():
    feed = speedups.Feed()
    data = b'x' * 100
    feed.data = data
    feed.pos = 0
    assert feed.peek() is data
    assert feed.read() is data
    feed.data = bytearray(b'abc')  # taken as bytes
    assert feed.data == b'abc' and type(feed.data) is bytes


# Shelf reads


def make_file(path, packed=20, appended=10):
    """A SHELF-1 file whose first ``packed`` items sit in the packed part
    (reached through the offset map), the rest in appended transactions."""
    storage = FileStorage(str(path))
    connection = Connection(storage)
    root = connection.get_root()
    for n in range(packed):
        root[n] = Item(n)
    connection.commit()
    storage.pack()
    for n in range(packed, packed + appended):
        root[n] = Item(n)
        connection.commit()
    root[0].name = 'changed after pack'
    connection.commit()
    storage.close()


def mapped_shelf(path):
    storage = FileStorage(str(path), readonly=True)
    shelf = storage.shelf
    for _ in range(200):  # enough reads for the file to be mapped
        shelf.file.pread(1, 0)
    assert shelf.file._map is not None
    return storage, shelf


@compiled
def test_shelf_reads_match_the_python_method(tmp_path):
    path = tmp_path / 'db.durus'
    make_file(path)
    storage, shelf = mapped_shelf(path)
    numbers = sorted(shelf.gen_numbers())
    assert len(numbers) > 30
    for number in numbers:
        assert (speedups.shelf_load_number(shelf, number) ==
                Shelf.load_number(shelf, number))
    for missing in (max(numbers) + 1, 10 ** 6, 2 ** 64 - 1):
        for load in (speedups.shelf_load_number, Shelf.load_number):
            with pytest.raises(DurusKeyError):
                load(shelf, missing)
    storage.close()


@compiled
def test_shelf_reads_before_the_file_is_mapped(tmp_path):
    path = tmp_path / 'db.durus'
    make_file(path)
    storage = FileStorage(str(path), readonly=True)
    assert storage.shelf.file._map is None
    assert (speedups.shelf_load_number(storage.shelf, 1) ==
            Shelf.load_number(storage.shelf, 1))
    storage.close()


@compiled
def test_shelf_read_of_a_damaged_index_entry_is_reported(tmp_path):
    path = tmp_path / 'db.durus'
    make_file(path)
    storage, shelf = mapped_shelf(path)
    appended = sorted(n for n, _ in shelf.index.items())
    # Point one oid at another's record: the compiled read must not return
    # the wrong record; it hands over to Python, which names the damage.
    shelf.index.set(appended[0], shelf.index.get(appended[1]))
    for load in (speedups.shelf_load_number, Shelf.load_number):
        with pytest.raises(DamagedFileError):
            load(shelf, appended[0])
    storage.close()


# get_state and load_state


def describe(value):
    """A comparable form of a state: persistent objects by class and oid."""
    if isinstance(value, PersistentBase):
        return ('ref', value.__class__.__name__, value._p_oid)
    if isinstance(value, dict):
        return {key: describe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(describe(item) for item in value)
    return value


@compiled
def test_get_state_matches_the_python_reader(tmp_path):
    path = tmp_path / 'db.durus'
    make_file(path)
    storage = FileStorage(str(path), readonly=True)
    fast = Connection(storage)
    slow = Connection(storage)
    for number in sorted(storage.shelf.gen_numbers()):
        oid = number.to_bytes(8, 'big')
        data = fast.get_stored_pickle(oid)
        fast.reader.get_class(data)  # the class pickle is known (cached)
        compiled_state = speedups.get_state(fast.reader, data)
        python_state = ObjectReader.get_state(slow.reader, data)
        assert describe(compiled_state) == describe(python_state)
    assert fast.reader.load_count == slow.reader.load_count > 0
    storage.close()


@compiled
def test_get_state_reads_an_uncompressed_state_that_starts_like_zlib():
    connection = Connection(MemoryStorage())
    reader = connection.reader
    class_pickle = b'\x80\x02cdurus.persistent_dict\nPersistentDict\nq\x00.'
    reader.get_class(class_pickle + b'\x80\x02}q\x01.')
    # 0x78 is 'x': this state pickle is not zlib data and is read as is
    # (the Python reader does the same).
    state = b'x'
    for get_state in (speedups.get_state, ObjectReader.get_state):
        with pytest.raises(Exception) as caught:
            get_state(reader, class_pickle + state)
        assert 'pickle' in type(caught.value).__module__ or \
            isinstance(caught.value, (EOFError, ValueError))
    good = b'\x80\x02}q\x01X\x01\x00\x00\x00aq\x02K\x01s.'
    assert speedups.get_state(reader, class_pickle + good) == {'a': 1}
    # The shared unpickler survives the failed loads.
    assert speedups.get_state(reader, class_pickle + good) == {'a': 1}


@compiled
def test_load_state_reports_conflicts_and_missing_records(tmp_path):
    path = tmp_path / 'db.durus'
    make_file(path)
    storage = FileStorage(str(path))
    connection = Connection(storage)
    item = connection.get_root()[3]
    oid = item._p_oid
    assert item._p_status == GHOST
    connection.invalid_oids.add(oid)
    with pytest.raises(ReadConflictError):
        item.name
    connection.invalid_oids.clear()
    assert item.name == 'item 3'
    # A ghost whose record is gone (packed away by another process).
    ghost = connection.cache.get_instance(b'\x00' * 7 + b'\x7f', Item,
                                          connection)
    with pytest.raises(ReadConflictError):
        ghost.n
    storage.close()


@compiled
def test_load_state_through_other_storages_and_subclasses(tmp_path):
    class MyFileStorage(FileStorage):
        loads = 0

        def load(self, oid):
            MyFileStorage.loads += 1
            return FileStorage.load(self, oid)

    path = tmp_path / 'db.durus'
    make_file(path)
    storage = MyFileStorage(str(path))
    connection = Connection(storage)
    assert connection.get_root()[5].name == 'item 5'
    assert MyFileStorage.loads >= 2  # its own load() was used
    storage.close()
    memory = Connection(MemoryStorage())
    memory.get_root()['x'] = Item(1)
    memory.commit()
    memory.abort()
    memory.get_root()['x']._p_set_status_ghost()
    assert memory.get_root()['x'].tags == ['t1']


# __setstate__, hooks and ghost creation


@compiled
def test_setstate_interns_keys_and_keeps_odd_ones():
    class Key(str):
        pass

    odd = Key('odd')
    for state in ({}, {'alpha' + str(len('x')): 1, 7: 'seven', odd: 2}):
        item = Item.__new__(Item)
        Persistent.__setstate__(item, dict(state))
        assert item.__dict__ == state
        for key in item.__dict__:
            if type(key) is str:
                assert key is sys.intern(key)
        if odd in state:
            assert any(type(key) is Key for key in item.__dict__)


@compiled
def test_setstate_of_a_mapping_that_is_not_a_dict():
    class Mapping(object):
        def items(self):
            return [('a', 1)]

        def __bool__(self):
            return True

    item = Item.__new__(Item)
    Persistent.__setstate__(item, Mapping())
    assert item.__dict__ == {'a': 1}
    with pytest.raises(TypeError):
        Persistent.__setstate__(object(), {})


@compiled
def test_hooks_use_the_compiled_getattribute_only_for_standard_classes():
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    root['a'] = Item(1)
    root['w'] = Watchful()
    root['w'].x = 5
    connection.commit()
    standard = _variants[Item][1].__dict__['__getattribute__']
    own = _variants[Watchful][1].__dict__['__getattribute__']
    assert type(standard).__name__ == 'method_descriptor'
    assert type(own).__name__ == 'function'
    connection.abort()
    for key in ('a', 'w'):
        obj = root[key]
        obj._p_set_status_ghost()
        obj._p_oid  # exempt: no load
        assert obj._p_status == GHOST
        repr(obj)
        assert obj._p_status == GHOST
    assert root['a'].n == 1 and root['w'].x == 5
    with pytest.raises(AttributeError):
        root['a'].missing
    with pytest.raises(TypeError):
        object.__getattribute__(root['a'], 1)


@compiled
def test_get_instance_replaces_a_cached_object_of_another_class():
    connection = Connection(MemoryStorage())
    cache = connection.cache
    oid = b'\x00' * 7 + b'\x09'
    first = cache.get_instance(oid, Item, connection)
    assert cache.get_instance(oid, Item, connection) is first
    other = cache.get_instance(oid, PersistentDict, connection)
    assert other is not first and other.__class__ is PersistentDict
    assert other._p_status == GHOST and other._p_oid == oid
    custom = cache.get_instance(b'\x00' * 7 + b'\x0a', Custom, connection)
    assert _getattribute(custom, 'made_by_new')  # no load: it is a ghost
    assert custom._p_connection is connection
    assert type(custom) is _variants[Custom][1]
    with pytest.raises(TypeError):
        cache.get_instance(oid, 'not a class', connection)


@compiled
def test_persistent_loader_hands_unusual_ids_to_python():
    connection = Connection(MemoryStorage())
    loader = speedups.PersistentLoader(connection.reader)
    ghost = loader((b'\x00' * 7 + b'\x05', Item))
    assert ghost._p_oid == b'\x00' * 7 + b'\x05'
    # A text oid (as Durus 4.3 on Python 2 wrote) goes through Python.
    same = loader(('\x00' * 7 + '\x05', Item))
    assert same is ghost
    with pytest.raises(TypeError):
        loader()


@compiled
def test_loaded_objects_are_freed(tmp_path):
    path = tmp_path / 'db.durus'
    make_file(path, packed=300, appended=0)
    storage = FileStorage(str(path), readonly=True)
    connection = Connection(storage)
    watched = _variants[Item][1]

    def load_and_unload_all():
        root = connection.get_root()
        for n in range(300):
            item = root[n]
            assert item.n == n and item.tags == ['t%d' % n]
        # Back to ghosts (as cache shrinking does), then dropped.
        for n in range(300):
            root[n]._p_set_status_ghost()
        root._p_set_status_ghost()
        del item, root
        # The transaction's lists and the cache's recently used objects
        # hold objects strongly: let them go.
        connection.abort()
        connection.cache.recent_objects.map.clear()
        gc.collect()

    load_and_unload_all()  # fills the class caches
    before = sys.getrefcount(Item), sys.getrefcount(watched)
    for _round in range(3):
        load_and_unload_all()
    assert (sys.getrefcount(Item), sys.getrefcount(watched)) == before
    # No object is kept alive by the compiled code: the ghosts go away.
    alive = [obj for obj in gc.get_objects() if type(obj) is watched]
    assert alive == []
    storage.close()


# Writing records


class Holder(Persistent):
    pass


@compiled
def test_persistent_id_writer_matches_the_python_closure():
    results = []
    for compiled_path in (True, False):
        connection = Connection(MemoryStorage())
        root = connection.get_root()
        root['old'] = Item(1)
        connection.commit()
        writer_module = __import__('durus.serialize', fromlist=['x'])
        writer = writer_module.ObjectWriter(connection)
        closure = writer._make_persistent_id()
        persistent_id = (writer.pickler.persistent_id if compiled_path
                         else closure)
        if compiled_path:
            assert type(persistent_id).__name__ == 'PersistentIdWriter'
        new = Item(2)
        seen = [persistent_id(value) for value in
                (1, 'text', None, [1], {'a': 2}, root['old'], new, new)]
        oid_new = new._p_oid
        assert oid_new is not None and new._p_connection is connection
        assert seen[:5] == [None] * 5
        assert seen[5] == (root['old']._p_oid, Item)
        assert seen[6] == seen[7] == (oid_new, Item)
        assert writer.new_objects == [new] and writer.objects_found == [new]
        assert writer._refs == [root['old']._p_oid, oid_new, oid_new]
        # Objects another connection owns, or bound without an oid.
        other = Connection(MemoryStorage())
        other.get_root()['x'] = foreign = Item(3)
        other.commit()
        with pytest.raises(ValueError, match='another connection'):
            persistent_id(foreign)
        odd = Item(4)
        odd._p_connection = connection
        with pytest.raises(ValueError, match='no oid'):
            persistent_id(odd)
        results.append((seen[:6], writer._refs[:1]))
        writer.close()
    assert results[0] == results[1]


class _Text(str):
    pass


class _PoseAsPersistent(object):
    """Claims a persistent class through __class__ (as proxies do)."""

    @property
    def __class__(self):
        return Holder


@compiled
def test_persistent_id_writer_asks_isinstance_beyond_plain_values():
    # The compiled writer answers the common value types without
    # isinstance(); everything else must still get isinstance()'s answer.
    for compiled_path in (True, False):
        connection = Connection(MemoryStorage())
        writer_module = __import__('durus.serialize', fromlist=['x'])
        writer = writer_module.ObjectWriter(connection)
        persistent_id = (writer.pickler.persistent_id if compiled_path
                         else writer._make_persistent_id())
        for value in (True, 2.5, b'x', (1,), Holder, _Text('a'),
                      frozenset([1]), object()):
            assert persistent_id(value) is None
        # isinstance() says persistent, the object is not one: both
        # twins treat it as persistent and fail on its missing _p_oid.
        assert isinstance(_PoseAsPersistent(), PersistentBase)
        with pytest.raises(AttributeError):
            persistent_id(_PoseAsPersistent())
        writer.close()


@compiled
def test_bind_new_object_matches_the_python_method():
    outcomes = []
    for bind in (Connection._bind_new_object,
                 _accel.python_twin('bind_new_object')):
        connection = Connection(MemoryStorage())
        obj = Holder()
        obj.a = 1
        obj.b = [2]
        before = obj.__dict__
        oid = connection.new_oid()
        bind(connection, obj, oid)
        assert obj._p_oid == oid and obj._p_connection is connection
        assert obj._p_serial == connection.transaction_serial
        assert obj.__dict__ == {'a': 1, 'b': [2]}
        assert obj.__dict__ is not before  # a fresh, plain dict
        assert connection.cache.get(oid) is obj
        assert obj in connection.cache.recent_objects
        assert connection._unhooked[-1] is obj
        outcomes.append((type(obj), obj._p_status))
    assert outcomes[0] == outcomes[1]


@compiled
def test_persistent_new_sets_the_slots():
    item = Item.__new__(Item, 'ignored', key='ignored')
    assert type(item) is Item
    assert (item._p_status, item._p_serial, item._p_connection,
            item._p_oid) == (1, 0, None, None)
    with pytest.raises(TypeError):
        PersistentBase.__new__(int)
    with pytest.raises(TypeError):
        PersistentBase.__new__()
    assert Custom().made_by_new


@compiled
def test_load_state_uses_a_subclass_get_stored_pickle(tmp_path):
    class Counting(Connection):
        reads = 0

        def get_stored_pickle(self, oid):
            Counting.reads += 1
            return Connection.get_stored_pickle(self, oid)

    path = tmp_path / 'db.durus'
    make_file(path)
    storage = FileStorage(str(path), readonly=True)
    connection = Counting(storage)
    assert connection.get_root()[4].n == 4
    assert Counting.reads >= 2
    storage.close()


@compiled
def test_load_state_through_a_wrapping_storage_reads_states_in_c(tmp_path):
    # A storage wrapper (a tool's own Storage around a FileStorage):
    # records then come from the wrapper's load(), states are still read
    # by the compiled reader, and a reader subclass keeps its own
    # get_state.
    from durus.storage import Storage

    class Wrapper(Storage):
        def __init__(self, inner):
            self.inner = inner

        def load(self, oid):
            return self.inner.load(oid)

        def new_oid(self):
            return self.inner.new_oid()

        def sync(self):
            return self.inner.sync()

    class Reader(ObjectReader):
        states = 0

        def get_state(self, data, load=True):
            Reader.states += 1
            return ObjectReader.get_state(self, data, load)

    path = tmp_path / 'db.durus'
    make_file(path)
    storage = FileStorage(str(path), readonly=True)
    connection = Connection(Wrapper(storage))
    before = connection.reader.load_count
    assert connection.get_root()[6].tags == ['t6']
    assert connection.reader.load_count - before >= 1
    connection.reader = Reader(connection)
    assert connection.get_root()[7].n == 7
    assert Reader.states >= 1
    storage.close()


@compiled
def test_access_notes_match_the_python_method_and_respect_overrides(tmp_path):
    path = tmp_path / 'db.durus'
    make_file(path, packed=5, appended=0)
    storage = FileStorage(str(path), readonly=True)

    class Noting(Connection):
        noted = []

        def note_access(self, obj):
            self.noted.append(obj._p_oid)
            Connection.note_access(self, obj)

    class Listing(list):
        def add(self, obj):
            self.append(obj)

    plain = Connection(storage)
    item = plain.get_root()[2]
    assert item.name == 'item 2'
    assert item._p_serial == plain.transaction_serial
    assert item in plain.cache.recent_objects
    noting = Noting(storage)
    assert noting.get_root()[3].n == 3
    assert noting.get_root()[3]._p_oid in Noting.noted
    listing = Connection(storage)
    listing.cache.recent_objects = Listing()
    other = listing.get_root()[4]
    assert other.n == 4 and other in listing.cache.recent_objects
    storage.close()
