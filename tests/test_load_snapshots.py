"""Load snapshots (durus.load_snapshots): a matching snapshot proves an
object still holds its record's state, and every in-place edit breaks the
match.  Runs on both paths (compiled and DURUS_NO_SPEEDUPS=1); the twin
comparisons run where the compiled module is present."""

import datetime
import gc

import pytest

from durus import _accel, inspect, load_snapshots
from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from fixture_app.models import Account, User

compiled = pytest.mark.skipif(_accel.speedups is None,
                              reason='compares with the compiled twin')


class Box(object):
    """A plain (non-persistent) object inside a state."""

    def __init__(self, value):
        self.value = value


class OwnState(Persistent):
    def __getstate__(self):
        return dict(self.__dict__)


def fill(root):
    """Objects with every kind of state a snapshot handles (or refuses)."""
    user = User()
    user.name = 'ann'
    user.tags = ['t1', 't2']
    user.prefs = {'colours': ['red'], 'n': 1, 'when': datetime.date(2020, 1, 2)}
    user.seen = {1, 2, 3}
    user.pair = ([1], 'x')
    user.frozen = frozenset(['a'])
    user.blob = b'\x00\x01'
    user.flags = (True, None, 1.5, 2 ** 70)
    user.friend = None
    root['user'] = user
    other = User()
    other.name = 'bob'
    user.friend = other
    root['other'] = other
    account = Account()
    account.balance = 10
    account.history = [1, [2, {'x': 3}]]
    root['account'] = account
    root['pdict'] = PersistentDict({'k': ['v']})
    root['plist'] = PersistentList([1, [2]])
    root['pset'] = PersistentSet([1, 2])
    tree = root['tree'] = BTree()
    for i in range(100):
        tree[i] = User()
        tree[i].name = 'u%d' % i
    boxed = User()
    boxed.box = Box(1)
    root['boxed'] = boxed
    own = OwnState()
    own.tags = ['x']
    root['own'] = own
    deep = User()
    value = []
    for _ in range(load_snapshots.MAX_DEPTH + 2):
        value = [value]
    deep.value = value
    root['deep'] = deep


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    fill(connection.get_root())
    connection.commit()
    storage.close()
    return path


@pytest.fixture
def opened(path):
    storage = FileStorage(path)
    connection = Connection(storage, load_snapshots=True)
    yield connection
    storage.close()


def loaded(connection, *keys):
    root = connection.get_root()
    objects = []
    for key in keys:
        obj = root[key]
        inspect.load_quietly(obj)
        objects.append(obj)
    return objects


def suspects(connection, objects):
    return inspect.in_place_suspects(connection, objects)[0]


def same_tokens(a, b):
    return load_snapshots._same_tokens(a, b)


ALL = ('user', 'other', 'account', 'pdict', 'plist', 'pset', 'tree',
       'boxed', 'own', 'deep')


def test_a_plain_connection_keeps_no_snapshots(path):
    storage = FileStorage(path, readonly=True)
    connection = Connection(storage)
    user, = loaded(connection, 'user')
    assert connection.load_snapshots is None
    # Without snapshots every SAVED object is a suspect.
    assert inspect.in_place_suspects(connection, [user]) == ([user], [])
    storage.close()


UNSUPPORTED = ('boxed', 'own', 'deep')   # a plain object, an own
                                         # __getstate__, too deep


def test_fresh_objects_match_and_unsupported_states_are_suspects(opened):
    objects = loaded(opened, *ALL)
    store = opened.load_snapshots
    root = opened.get_root()
    assert store.snapshot(root._p_oid) is not None   # loaded at open
    for key, obj in zip(ALL, objects):
        assert (store.snapshot(obj._p_oid) is None) == (
            key in UNSUPPORTED), key
    assert suspects(opened, objects + [root]) == [
        root[key] for key in UNSUPPORTED]


EDITS = [
    ('user', 'obj.tags.append("t3")'),
    ('user', 'obj.tags.pop(); obj.tags.append("t" + str(2))'),
    ('user', 'obj.tags[0] = "T1"'),
    ('user', 'obj.tags.reverse()'),
    ('user', 'obj.prefs["n"] = 2'),
    ('user', 'del obj.prefs["n"]'),
    ('user', 'obj.prefs["colours"].append("blue")'),
    ('user', 'obj.prefs["colours"][0] = "green"'),
    ('user', 'obj.seen.add(4)'),
    ('user', 'obj.seen.discard(3); obj.seen.add(5)'),
    ('user', 'obj.pair[0].append(2)'),
    ('user', 'obj.__dict__["name"] = "eve"'),
    ('user', 'obj.__dict__["tags"] = list(obj.tags)'),
    ('user', 'obj.__dict__["extra"] = 1'),
    ('user', 'obj.__dict__["friend"] = User()'),
    ('account', 'obj.history.append(3)'),
    ('account', 'obj.history[1][1]["x"] = 4'),
    ('pdict', 'obj.data["k"].append("w")'),
    ('plist', 'obj.data[1].append(3)'),
    ('pset', 'obj.s.add(3)'),
]


# Edits that leave the same data (the writer would write the same bytes).
SAME_DATA = {'obj.tags.pop(); obj.tags.append("t" + str(2))',
             'obj.__dict__["tags"] = list(obj.tags)'}


@pytest.mark.parametrize('key, code', EDITS)
def test_every_in_place_edit_breaks_the_match(opened, key, code):
    obj, = loaded(opened, key)
    assert suspects(opened, [obj]) == []
    exec(code, {'obj': obj, 'User': User})
    assert suspects(opened, [obj]) == [obj]
    # The record comparison decides; a state found equal to its record
    # gets a fresh snapshot.
    if code in SAME_DATA:
        assert inspect.differing_from_records(opened, [obj]) == []
        assert suspects(opened, [obj]) == []
    else:
        assert inspect.differing_from_records(opened, [obj]) == [obj]
        assert suspects(opened, [obj]) == [obj]


def test_a_value_replaced_by_an_equal_new_one_is_seen(opened):
    """The snapshot holds the values it saw: a popped value stays alive,
    so the new value cannot take its address and pass for it."""
    user, = loaded(opened, 'user')
    kept = user.tags[-1]
    for attempt in range(200):
        user.tags.pop()
        gc.collect()
        user.tags.append(''.join(['t', '2']))   # equal, not the same
        assert suspects(opened, [user]) == [user]
    user.tags[-1] = kept                          # the very same value
    assert suspects(opened, [user]) == []


def test_a_tree_node_edit_breaks_the_match(opened):
    tree, = loaded(opened, 'tree')
    nodes = list(inspect.btree_nodes(tree, load=True))
    assert len(nodes) > 1 and suspects(opened, nodes) == []
    nodes[-1].items.append((1000, None))
    assert suspects(opened, nodes) == [nodes[-1]]


def test_exposed_objects_share_a_container_with_outside_code(opened):
    user, account = loaded(opened, 'user', 'account')
    assert inspect.in_place_suspects(opened, [user, account]) == ([], [])
    held = user.tags
    assert inspect.in_place_suspects(opened, [user, account]) == (
        [], [user])
    del held
    held = user.prefs['colours']            # nested
    assert inspect.in_place_suspects(opened, [user]) == ([], [user])
    del held
    held = user.pair                        # a tuple holding a list
    assert inspect.in_place_suspects(opened, [user]) == ([], [user])
    del held
    held = vars(user)                       # the instance dict itself
    assert inspect.in_place_suspects(opened, [user]) == ([], [user])
    del held
    held = account.history[1]               # a slot's nested list
    assert inspect.in_place_suspects(opened, [user, account]) == (
        [], [account])
    del held
    assert inspect.in_place_suspects(opened, [user, account]) == ([], [])


def test_a_commit_replaces_the_snapshots_of_what_it_wrote(opened):
    user, = loaded(opened, 'user')
    user.tags.append('t3')
    user._p_note_change()
    assert suspects(opened, [user]) == []      # UNSAVED: not considered
    opened.commit()
    assert suspects(opened, [user]) == []      # the new record
    user.tags.pop()                            # back to the old state
    assert suspects(opened, [user]) == [user]
    assert inspect.differing_from_records(opened, [user]) == [user]


def test_new_objects_get_snapshots_when_committed(opened):
    root = opened.get_root()
    fresh = root['fresh'] = User()
    fresh.tags = ['a']
    opened.commit()
    assert opened.load_snapshots.snapshot(fresh._p_oid) is not None
    fresh.tags.append('b')
    assert suspects(opened, [fresh]) == [fresh]


def test_abort_and_reload_take_a_fresh_snapshot(opened):
    user, = loaded(opened, 'user')
    user.tags.append('t3')
    user.name = 'noted'                        # noted: abort ghosts it
    opened.abort()
    assert user._p_is_ghost()
    user.tags                                  # loads the record again
    assert user.tags == ['t1', 't2'] and suspects(opened, [user]) == []
    user.tags.append('t3')
    assert suspects(opened, [user]) == [user]


def test_evicted_objects_lose_their_snapshots_and_reload_fresh(path):
    storage = FileStorage(path)
    connection = Connection(storage, cache_size=5, load_snapshots=True)
    values = list(connection.get_root()['tree'].values())
    for value in values:
        value.name                             # loaded and accessed
    store = connection.load_snapshots
    assert all(store.snapshot(value._p_oid) is not None for value in values)
    connection.abort()
    connection.abort()      # not accessed in the last one: shrunk now
    ghosts = [value for value in values if value._p_is_ghost()]
    assert len(ghosts) > 50
    assert all(store.snapshot(value._p_oid) is None for value in ghosts)
    assert len(store) < 50
    ghost = ghosts[0]
    ghost.__dict__['x'] = 1                    # reloads, then a raw edit
    assert store.snapshot(ghost._p_oid) is not None
    assert suspects(connection, [ghost]) == [ghost]
    storage.close()


def test_prune_drops_ghosts_and_the_dead_and_keeps_the_loaded(opened):
    user, other, pdict = loaded(opened, 'user', 'other', 'pdict')
    store = opened.load_snapshots
    pdict_oid = pdict._p_oid
    del pdict                                  # held by the root's state
    user._p_set_status_ghost()
    opened.get_root()._p_set_status_ghost()
    gc.collect()
    assert opened.cache.objects.get(pdict_oid) is None   # gone
    assert store.snapshot(pdict_oid) is not None
    kept = store.prune()
    assert kept == len(store)
    assert store.snapshot(other._p_oid) is not None
    assert store.snapshot(user._p_oid) is None
    assert store.snapshot(pdict_oid) is None


def test_the_store_prunes_itself_when_it_reaches_prune_at(opened):
    store = opened.load_snapshots
    values = list(opened.get_root()['tree'].values())
    before = len(store)
    store.prune_at = before + 20
    for value in values[:20]:
        inspect.load_quietly(value)
        value._p_set_status_ghost()
    assert len(store) == before + 20           # not yet
    inspect.load_quietly(values[20])            # the 21st: prunes first
    assert len(store) == before + 1
    assert store.prune_at >= load_snapshots.PRUNE_MINIMUM


def test_the_store_waits_for_twice_the_cache_size_before_pruning(path):
    # A cache may hold cache_size loaded objects between shrinks: the
    # store does not prune itself (reading every object) before it holds
    # twice as many snapshots, nor drop below that after a prune.
    storage = FileStorage(path)
    try:
        connection = Connection(storage, cache_size=100000,
                                load_snapshots=True)
        store = connection.load_snapshots
        assert store.prune_at == store.prune_floor == 200000
        store.prune()
        assert store.prune_at == 200000
        connection.set_cache_size(150000)
        assert store.prune_floor == 300000
        assert store.prune_at == 300000
        connection.set_cache_size(10)
        assert store.prune_floor == load_snapshots.PRUNE_MINIMUM
        store.prune()
        assert store.prune_at == load_snapshots.PRUNE_MINIMUM
    finally:
        storage.close()


def test_records_found_equal_get_a_fresh_snapshot(opened):
    user, = loaded(opened, 'user')
    user.__dict__['tags'] = ['t1', 't2']       # equal, another list
    assert suspects(opened, [user]) == [user]
    assert inspect.differing_from_records(opened, [user]) == []
    assert suspects(opened, [user]) == []


# -- the twins ------------------------------------------------------------------

def twin_stores(connection):
    return (load_snapshots.LoadSnapshots(connection.cache.objects),
            load_snapshots._PyLoadSnapshots(connection.cache.objects))


@compiled
def test_both_twins_take_the_same_tokens(path):
    storage = FileStorage(path, readonly=True)
    connection = Connection(storage)
    objects = loaded(connection, *ALL) + [connection.get_root()]
    tree = connection.get_root()['tree']
    objects.extend(inspect.btree_nodes(tree, load=True))
    c_store, py_store = twin_stores(connection)
    assert type(c_store) is not type(py_store)
    for obj in objects:
        c_store.take(obj)
        py_store.take(obj)
        a, b = c_store.snapshot(obj._p_oid), py_store.snapshot(obj._p_oid)
        assert (a is None) == (b is None), obj
        if a is not None:
            assert same_tokens(a, b), obj
    storage.close()


@compiled
@pytest.mark.parametrize('key, code', EDITS + [('user', 'held = obj.tags'),
                                               ('user', 'held = obj.pair'),
                                               ('user', 'held = vars(obj)'),
                                               ('account',
                                                'held = obj.history')])
def test_both_twins_sort_out_alike(path, key, code):
    # Each twin on its own connection: a snapshot holds the tuples it saw,
    # which counts when exposure is measured.
    results = []
    for make in (load_snapshots.LoadSnapshots,
                 load_snapshots._PyLoadSnapshots):
        storage = FileStorage(path, readonly=True)
        connection = Connection(storage)
        objects = loaded(connection, *ALL)
        store = make(connection.cache.objects)
        for obj in objects:
            store.take(obj)
        namespace = {'obj': connection.get_root()[key], 'User': User}
        exec(code, namespace)
        found = store.sort_out(objects)
        results.append([[obj._p_oid for obj in part] for part in found])
        edited = namespace['obj']._p_oid
        del namespace
        storage.close()
    assert results[0] == results[1]
    assert edited in results[0][0 if 'held' not in code else 1]


@compiled
def test_the_compiled_load_path_takes_snapshots(path):
    storage = FileStorage(path, readonly=True)
    connection = Connection(storage, load_snapshots=True)
    assert type(connection.load_snapshots) is _accel.speedups.LoadSnapshots
    user = connection.get_root()['user']
    user.name                                  # the compiled load_state
    assert connection.load_snapshots.snapshot(user._p_oid) is not None
    storage.close()


# -- what the snapshots cost the garbage collector -----------------------------

@compiled
def test_compiled_snapshots_are_not_allocations_the_collector_counts(path):
    # A snapshot of atoms and plain containers is no container for the
    # collector: taking thousands of them must not bring a collection
    # nearer (each tuple of tokens used to count, then was untracked).
    storage = FileStorage(path, readonly=True)
    connection = Connection(storage)
    users = [connection.get_root()['tree'][i] for i in range(100)]
    for user in users:
        inspect.load_quietly(user)
    store = load_snapshots.LoadSnapshots(connection.cache.objects)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for _ in range(20):
            for user in users:
                store.take(user)
        counted = gc.get_count()[0] - before
    finally:
        if was_enabled:
            gc.enable()
    assert counted < 100, counted       # 2,000 snapshots taken
    # A collection that reaches the store walks none of them.
    assert gc.get_referents(store) == [connection.cache.objects]
    assert all(store.snapshot(user._p_oid) is not None for user in users)
    storage.close()


@pytest.mark.parametrize('make', ['LoadSnapshots', '_PyLoadSnapshots'])
def test_a_cycle_through_a_snapshot_is_collected(path, make):
    # A snapshot holding an object that leads back to the store (here a
    # new persistent object, held by identity) is part of a reference
    # cycle, which the collector must be able to see and free.
    import weakref
    storage = FileStorage(path, readonly=True)
    connection = Connection(storage)
    user, = loaded(connection, 'user')
    store = getattr(load_snapshots, make)(connection.cache.objects)
    fresh = User()
    fresh.store = store
    user.__dict__['friend'] = fresh
    store.take(user)
    assert store.snapshot(user._p_oid) is not None
    user.__dict__['friend'] = None
    gone = weakref.ref(fresh)
    del fresh, store
    gc.collect()
    assert gone() is None
    storage.close()


# -- the store's table ------------------------------------------------------------

@pytest.mark.parametrize('make', ['LoadSnapshots', '_PyLoadSnapshots'])
def test_snapshots_stay_findable_through_many_takes_and_forgets(make):
    # Thousands of oids, forgotten and taken again in a shuffled order:
    # the compiled store keeps them in a table of its own (a forgotten
    # entry moves later ones back), which must find exactly what a dict
    # would.
    import random
    from durus.utils import int8_to_str
    store = getattr(load_snapshots, make)({})
    objects = []
    for number in range(3000):
        obj = User()
        obj.name = 'u%d' % number
        obj.tags = [number]
        obj._p_oid = int8_to_str(number * 7919 % 100003)
        objects.append(obj)
    for obj in objects:
        store.take(obj)
    order = random.Random(12).sample(range(len(objects)), len(objects))
    gone = set(order[:1800])
    for index in order[:1800]:
        store.forget(objects[index])
    assert len(store) == len(objects) - len(gone)
    for index, obj in enumerate(objects):
        found = store.snapshot(obj._p_oid)
        assert (found is None) == (index in gone), index
    for index in order[:900]:                 # back, with a changed state
        objects[index].tags.append('again')
        store.take(objects[index])
    for index in order[:900]:
        assert 'again' in store.snapshot(objects[index]._p_oid)
    assert len(store) == len(objects) - 900


@compiled
def test_both_twins_walk_every_kind_of_dict_alike(path):
    # Dicts with deleted items, with keys that are not str, grown ones,
    # and an instance dict after deletions: the compiled walks
    # (csrc/snapshot.c) give the twin's tokens and answers.
    storage = FileStorage(path)
    connection = Connection(storage)
    user = User()
    for name in 'abcdefghij':
        setattr(user, name, name)
    user.holes = {'k%d' % i: [i] for i in range(20)}
    for i in range(0, 20, 3):
        del user.holes['k%d' % i]
    user.mixed = {1: 'a', 'b': [2], (3,): {4: 5}, None: 1.5}
    user.many = {i: [i] for i in range(200)}
    del user.c, user.f
    connection.get_root()['kinds'] = user
    connection.commit()
    c_store, py_store = twin_stores(connection)
    for store in (c_store, py_store):
        store.take(user)
    a, b = c_store.snapshot(user._p_oid), py_store.snapshot(user._p_oid)
    assert a is not None and same_tokens(a, b)
    assert c_store.sort_out([user]) == py_store.sort_out([user]) == ([], [])
    user.holes['k4'].append('x')               # in place, behind a hole
    assert c_store.sort_out([user]) == py_store.sort_out([user]) == (
        [user], [])
    user.holes['k4'].pop()
    del user.many[7]                            # a hole in a nested dict
    assert c_store.sort_out([user])[0] == py_store.sort_out([user])[0] == [
        user]
    storage.close()


@compiled
def test_a_snapshot_moves_between_plain_and_held_as_its_state_changes():
    # A snapshot holding an object the collector tracks (a tuple of
    # lists here) is kept where a collection walks it; taken again
    # without one, it leaves that place: one snapshot per oid, and the
    # collector sees exactly the snapshots that can lead back.
    from durus.utils import int8_to_str
    objects = {}
    store = load_snapshots.LoadSnapshots(objects)
    user = User()
    user._p_oid = int8_to_str(7)
    user.pair = ([1], 'x')
    store.take(user)
    held = [r for r in gc.get_referents(store) if r is not objects]
    assert [type(r).__name__ for r in held] == ['TrackedSnapshot']
    assert len(store) == 1
    user.pair = 'flat'
    store.take(user)
    assert len(store) == 1
    assert gc.get_referents(store) == [objects]
    assert 'flat' in store.snapshot(user._p_oid)
    user.pair = ([2], 'y')
    store.take(user)
    assert len(store) == 1
    assert len(gc.get_referents(store)) == 2
    store.forget(user)
    assert len(store) == 0 and gc.get_referents(store) == [objects]
