"""The compiled BTree walk (csrc/btree.c) against the pure-Python methods.

durus.btree keeps its pure methods as ``_py_get``, ``_py_getitem`` and
``_py_add``; with durus._speedups built, ``BTree.get``, ``__getitem__``
and ``add`` are the compiled ones.  Each test drives one tree through the
pure methods and one through the compiled ones and expects the same nodes,
the same results and errors, the same calls of the keys' own comparisons,
the same loads and byte-identical records.
"""

import functools
import operator
import gc
import random
import sys

import pytest

from durus import btree
from durus._accel import speedups
from durus.btree import BNode, BNode4, BNode16, BTree
from durus.connection import Connection
from durus.storage import MemoryStorage

pytestmark = pytest.mark.skipif(
    speedups is None or BTree.add is btree._py_add,
    reason='durus._speedups was not built (no C compiler at install time) '
           'or DURUS_NO_SPEEDUPS is set')

PURE = {'get': btree._py_get, 'getitem': btree._py_getitem,
        'add': btree._py_add}
COMPILED = {'get': BTree.get, 'getitem': BTree.__getitem__,
            'add': BTree.add}


def shape(node):
    """The nested items of a subtree, with node classes: equal trees only."""
    nodes = node.nodes
    return (type(node).__name__, list(node.items),
            None if nodes is None else [shape(child) for child in nodes])


def run_script(methods, node_class, keys, seed):
    """Random adds, lookups and deletes; the results, as a list."""
    rnd = random.Random(seed)
    tree = BTree(node_class)
    results = []
    for step in range(1200):
        key = rnd.choice(keys)
        action = rnd.random()
        if action < 0.5:
            results.append(methods['add'](tree, key, step))
        elif action < 0.6:
            results.append(methods['add'](tree, key))
        elif action < 0.75:
            results.append(methods['get'](tree, key, 'missing'))
        elif action < 0.9:
            try:
                results.append(methods['getitem'](tree, key))
            except KeyError as error:
                results.append(('KeyError', error.args))
        else:
            try:
                del tree[key]
            except KeyError:
                results.append('not there')
        if step % 50 == 0:
            tree._check()
            results.append(shape(tree.root))
    tree._check()
    results.append(shape(tree.root))
    return results


KEY_SETS = {
    'small ints': list(range(-40, 160)),
    'big ints': [n * 2 ** 40 + k for n in (-3, 1, 5) for k in range(60)]
                + list(range(-20, 20)),
    'ints and floats': [n / 2 for n in range(-50, 150)]
                       + [float('inf'), -float('inf')],
    'strings': ['k%03d' % n for n in range(200)],
    'tuples': [(n % 7, 'x' * (n % 5)) for n in range(200)],
}


@pytest.mark.parametrize('node_class', [BNode, BNode4, BNode16])
@pytest.mark.parametrize('kind', sorted(KEY_SETS))
def test_random_steps_match_the_pure_methods(node_class, kind):
    keys = KEY_SETS[kind]
    pure = run_script(PURE, node_class, keys, seed=len(kind))
    fast = run_script(COMPILED, node_class, keys, seed=len(kind))
    assert fast == pure


@functools.total_ordering
class CountedKey:
    """A key whose comparisons are logged, to compare call sequences."""

    log = []

    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        CountedKey.log.append(('eq', self.n, getattr(other, 'n', other)))
        return isinstance(other, CountedKey) and self.n == other.n

    def __lt__(self, other):
        CountedKey.log.append(('lt', self.n, other.n))
        return self.n < other.n

    __hash__ = None


def test_user_comparisons_run_in_the_same_order():
    logs = []
    for methods in (PURE, COMPILED):
        CountedKey.log = []
        tree = BTree(BNode)
        rnd = random.Random(5)
        for n in rnd.sample(range(300), 120):
            methods['add'](tree, CountedKey(n), n)
        for n in rnd.sample(range(300), 60):
            methods['get'](tree, CountedKey(n))
        tree._check()
        logs.append(CountedKey.log)
    assert logs[0] == logs[1] and len(logs[0]) > 1000


def test_a_key_that_cannot_be_compared_raises_the_same_error():
    for methods in (PURE, COMPILED):
        tree = BTree(BNode)
        for n in range(10):
            methods['add'](tree, n, n)
        with pytest.raises(TypeError, match="'<' not supported"):
            methods['add'](tree, 'text', 1)
        with pytest.raises(TypeError, match="'<' not supported"):
            methods['get'](tree, 'text')
        with pytest.raises(TypeError, match="'<' not supported"):
            methods['getitem'](tree, None)
        tree._check()


def test_keyword_calls_reach_the_pure_methods():
    tree = BTree()
    tree.add(key=1, value='one')
    tree.add(2, value='two')
    assert tree.get(key=1) == 'one'
    assert tree.get(3, default='none') == 'none'
    assert tree.get(2) == 'two' and tree[1] == 'one'
    with pytest.raises(TypeError):
        tree.get()
    with pytest.raises(TypeError):
        tree.add(1, 2, 3)


class SplitLog(BNode):
    """A node class of its own split_child: the compiled walk must call it."""

    __slots__ = []
    splits = 0

    def split_child(self, position, child):
        SplitLog.splits += 1
        BNode.split_child(self, position, child)


def test_a_node_class_with_its_own_split_child_is_called():
    SplitLog.splits = 0
    tree = BTree(SplitLog)
    for n in range(100):
        tree[n] = n
    tree._check()
    assert SplitLog.splits > 10
    assert [tree[n] for n in range(100)] == list(range(100))


def stored_tree(methods, count):
    storage = MemoryStorage()
    connection = Connection(storage)
    tree = BTree(BNode4)
    connection.get_root()['tree'] = tree
    rnd = random.Random(3)
    for n in rnd.sample(range(count * 2), count):
        methods['add'](tree, n, str(n))
    connection.commit()
    return storage, connection, tree


def records(storage):
    return sorted(storage.gen_oid_record())


def test_stored_trees_have_byte_identical_records_and_loads():
    pure_storage, pure_conn, pure_tree = stored_tree(PURE, 400)
    fast_storage, fast_conn, fast_tree = stored_tree(COMPILED, 400)
    assert records(fast_storage) == records(pure_storage)
    # Changes of loaded nodes: note_change through the hooks, then commit.
    for storage, methods in ((pure_storage, PURE), (fast_storage, COMPILED)):
        connection = Connection(storage)
        tree = connection.get_root()['tree']
        loads = []
        for n in range(0, 800, 7):
            before = connection.get_load_count()
            methods['get'](tree, n)
            loads.append(connection.get_load_count() - before)
        for n in range(0, 800, 11):
            methods['add'](tree, n, 'changed %d' % n)
        connection.commit()
        tree._check()
        if methods is PURE:
            pure_loads = loads
        else:
            assert loads == pure_loads
    assert records(fast_storage) == records(pure_storage)


def test_ghost_nodes_are_loaded_and_noted_as_read():
    storage, connection, stored = stored_tree(COMPILED, 300)
    key = stored.get_max_item()[0]
    other = Connection(storage)
    tree = other.get_root()['tree']
    root_node = tree.root
    assert root_node._p_is_ghost()
    assert tree[key] == str(key)
    assert not root_node._p_is_ghost()
    # The read nodes are in the transaction's read set: a change by
    # another connection to one of them is a conflict on commit.
    assert root_node._p_serial == other.transaction_serial


def test_no_references_are_leaked():
    value = object()
    keys = [10 ** 12 + n for n in range(500)]

    def work():
        tree = BTree(BNode4)
        for key in keys:
            tree[key] = value
            tree.add(key, value)
        for key in keys:
            assert tree[key] is value and tree.get(key) is value
        assert tree.get(-1, value) is value
        try:
            tree[-1]
        except KeyError:
            pass
        return tree

    work()
    gc.collect()
    before = sys.getrefcount(value), [sys.getrefcount(k) for k in keys[:5]]
    for _ in range(3):
        work()
    gc.collect()
    assert (sys.getrefcount(value),
            [sys.getrefcount(k) for k in keys[:5]]) == before


# -- the borrowed walk of int and str keys, and BTree's subscript slots ----

SUBSCRIPT = {'get': BTree.get, 'getitem': operator.getitem,
             'add': lambda tree, key, value=True:
                 operator.setitem(tree, key, value)}


class Text(str):
    """A str subclass: never compared by the borrowed walk."""


MIXED_KEY_SETS = {
    # ints of one digit, of two or three 30-bit digits, negative ones
    'ints of every size': [n * 2 ** shift for n in range(-12, 13)
                           for shift in (0, 20, 40, 70, 100)],
    # 1 == 1.0 == True: the same key, whichever kind is stored
    'ints, floats, bools': list(range(-30, 60)) + [n + 0.5 for n in range(40)]
                           + [True, False, 3.0, 7.0],
    'strs of every width': ['%s%03d' % (prefix, n)
                            for prefix in ('a', '\xe9', '\u4e00',
                                           '\U0001f600', '')
                            for n in range(40)],
    'strs and str subclasses': ['k%03d' % n for n in range(120)]
                               + [Text('k%03d' % n) for n in range(0, 160, 3)],
}


def run_three_ways(node_class, keys, seed):
    results = [run_script(methods, node_class, keys, seed)
               for methods in (PURE, COMPILED, SUBSCRIPT)]
    assert results[1] == results[0]
    assert results[2] == results[0]


@pytest.mark.parametrize('node_class', [BNode, BNode16])
@pytest.mark.parametrize('kind', sorted(MIXED_KEY_SETS))
def test_mixed_keys_match_the_pure_methods_through_every_entry(node_class,
                                                                kind):
    run_three_ways(node_class, MIXED_KEY_SETS[kind], seed=len(kind))


@pytest.mark.parametrize('kind', sorted(KEY_SETS))
def test_subscripts_match_the_pure_methods(kind):
    run_three_ways(BNode4, KEY_SETS[kind], seed=7)


def test_big_nodes_match_the_pure_methods():
    # BNode512 nodes hold more items than the walk fetches at once.
    keys = list(range(3000)) + ['s%d' % n for n in range(50)]
    for methods in (PURE, COMPILED, SUBSCRIPT):
        tree = BTree(btree.BNode512)
        rnd = random.Random(11)
        ints = keys[:3000]
        rnd.shuffle(ints)
        for n in ints:
            methods['add'](tree, n, -n)
        tree._check()
        assert [methods['getitem'](tree, n) for n in range(3000)] == [
            -n for n in range(3000)]
        assert methods['get'](tree, 3000) is None
        with pytest.raises(TypeError, match="'<' not supported"):
            methods['get'](tree, 's1')


def node_with(items, nodes=None, node_class=BNode):
    node = node_class()
    node.items = items
    node.nodes = nodes
    return node


def outcome(call):
    try:
        return ('value', call())
    except Exception as error:
        return (type(error), str(error))


@pytest.mark.parametrize('items', [
    [(1, 'a'), (2,), (3, 'c')],             # an item too short for a value
    [(1, 'a'), [2, 'b'], (3, 'c')],         # a list for a tuple
    [(1, 'a'), (2.0, 'b'), (3, 'c')],       # a float among ints
    [('a', 1), ('b',), ('c', 3)],
    ((1, 'a'), (2, 'b'), (3, 'c')),         # a tuple for the items list
    [(1, 'a'), (), (3, 'c')],               # an empty item
])
def test_odd_node_contents_give_the_pure_results(items):
    tree = BTree(BNode)
    tree.root = node_with(items)
    for key in (1, 2, 3, 4, 0, 'a', 'b', 'c', 'd', 2.0, True):
        expected = outcome(lambda: PURE['get'](tree, key, 'missing'))
        assert outcome(lambda: BTree.get(tree, key, 'missing')) == expected
        expected = outcome(lambda: PURE['getitem'](tree, key))
        assert outcome(lambda: tree[key]) == expected, key


def test_odd_children_give_the_pure_results():
    leaf = node_with([(5, 'five'), (6, 'six')])
    for nodes in ([node_with([(1, 'one')]), leaf],
                  (node_with([(1, 'one')]), leaf),      # a tuple of children
                  [node_with([(1, 'one')])],            # one child short
                  [leaf, 'not a node']):
        tree = BTree(BNode)
        tree.root = node_with([(3, 'three')], nodes)
        for key in range(8):
            expected = outcome(lambda: PURE['getitem'](tree, key))
            assert outcome(lambda: tree[key]) == expected, (nodes, key)


class Touchy:
    """A key that compares with ints, raising once told to."""

    angry = False

    def __init__(self, n):
        self.n = n

    def _other(self, other):
        if Touchy.angry:
            raise LookupError('touchy %d' % self.n)
        return other.n if isinstance(other, Touchy) else other

    def __lt__(self, other):
        return self.n < self._other(other)

    def __gt__(self, other):
        return self.n > self._other(other)

    def __eq__(self, other):
        return self.n == self._other(other)

    __hash__ = None


def test_a_stored_key_whose_comparison_raises_raises_the_same_error():
    results = []
    for methods in (PURE, COMPILED, SUBSCRIPT):
        Touchy.angry = False
        tree = BTree(BNode)
        for n in range(0, 200, 2):
            methods['add'](tree, n, n)
        methods['add'](tree, Touchy(101), 'touchy')
        Touchy.angry = True
        try:
            results.append([outcome(lambda: methods['getitem'](tree, n))
                            for n in range(0, 200, 5)])
        finally:
            Touchy.angry = False
    assert results[1] == results[0] and results[2] == results[0]
    assert any(kind is LookupError for kind, _ in results[0])


class Meddler:
    """A stored key whose comparisons change the tree they are in."""

    def __init__(self, n, tree, extra):
        self.n, self.tree, self.extra = n, tree, extra

    def _meddle(self):
        while self.extra:
            key = self.extra.pop()
            self.tree.add(key, 'added %d' % key)

    def __lt__(self, other):
        self._meddle()
        return self.n < other

    def __gt__(self, other):
        self._meddle()
        return self.n > other

    def __eq__(self, other):
        self._meddle()
        return self.n == other

    __hash__ = None


def test_comparisons_that_change_the_tree_during_a_lookup():
    results = []
    for methods in (PURE, COMPILED, SUBSCRIPT):
        tree = BTree(BNode)
        for n in range(0, 120, 2):
            methods['add'](tree, n, n)
        # Adding 200 keys from inside a comparison splits the nodes the
        # lookup is walking through.
        methods['add'](tree, Meddler(61, tree, list(range(1001, 1400, 2))),
                       'meddler')
        found = [outcome(lambda: methods['getitem'](tree, n))
                 for n in (60, 62, 1001, 1399, 7)]
        results.append((found, [(k if isinstance(k, int) else 'M', v)
                                for k, v in tree.items()]))
    assert results[1] == results[0] and results[2] == results[0]


def test_adds_during_iteration_give_the_same_items():
    seen = []
    for methods in (PURE, COMPILED, SUBSCRIPT):
        tree = BTree(BNode)
        for n in range(0, 100, 3):
            methods['add'](tree, n, n)
        got = []
        for key, value in tree.items_from(10):
            got.append(key)
            if len(got) < 20:
                methods['add'](tree, key + 1, 'new')
        seen.append(got)
    assert seen[1] == seen[0] and seen[2] == seen[0]


def test_ghost_nodes_load_the_same_through_subscripts():
    storage, connection, stored = stored_tree(COMPILED, 300)
    loads = {}
    for name, methods in (('pure', PURE), ('subscript', SUBSCRIPT)):
        other = Connection(storage)
        tree = other.get_root()['tree']
        counts = []
        for n in list(range(0, 600, 13)) + [-1, 10 ** 30, 'text']:
            before = other.get_load_count()
            counts.append((outcome(lambda: methods['getitem'](tree, n)),
                           other.get_load_count() - before))
        loads[name] = counts
    assert loads['subscript'] == loads['pure']
    assert sum(count for _, count in loads['pure']) > 10


def test_the_subscript_slots_are_set_and_dropped_when_methods_change():
    assert speedups.btree_slots(BTree) == (True, True, True)
    tree = BTree()
    tree[1] = 'one'
    calls = []
    compiled_getitem = BTree.__dict__['__getitem__']
    compiled_setitem = BTree.__dict__['__setitem__']

    def logged_getitem(self, key):
        calls.append(('get', key))
        return compiled_getitem(self, key)

    def logged_setitem(self, key, value):
        calls.append(('set', key))
        compiled_setitem(self, key, value)

    try:
        BTree.__getitem__ = logged_getitem
        BTree.__setitem__ = logged_setitem
        tree[2] = 'two'
        assert tree[1] == 'one' and tree[2] == 'two'
        assert calls == [('set', 2), ('get', 1), ('get', 2)]
        assert speedups.btree_slots(BTree) == (False, False, True)
    finally:
        BTree.__getitem__ = compiled_getitem
        BTree.__setitem__ = compiled_setitem
        assert speedups.btree_slots(BTree) == (True, True, True)
    del calls[:]
    assert tree[2] == 'two' and calls == []
    with pytest.raises(TypeError):
        speedups.btree_slots(3)


class OwnSubscripts(BTree):
    __slots__ = []

    def __getitem__(self, key):
        return ('own', BTree.__getitem__(self, key))

    def __setitem__(self, key, value):
        BTree.__setitem__(self, key, ('set', value))

    def __delitem__(self, key):
        BTree.__delitem__(self, key)
        self.deleted = key      # no slot: raises AttributeError


class Plain(BTree):
    __slots__ = []


def test_subclasses_keep_their_own_subscripts():
    tree = OwnSubscripts()
    tree[1] = 'one'
    assert tree[1] == ('own', ('set', 'one'))
    assert tree.get(1) == ('set', 'one')
    with pytest.raises(AttributeError):
        del tree[1]
    assert 1 not in tree
    plain = Plain()
    plain[3] = 'three'
    del plain[3]
    plain[4] = 'four'
    assert plain[4] == 'four' and list(plain.items()) == [(4, 'four')]
    with pytest.raises(KeyError):
        plain[3]
    with pytest.raises(KeyError):
        del plain[3]


def test_items_that_can_hold_a_cycle_stay_collectable():
    # The compiled add untracks (key, value) tuples of atomic values early,
    # as the collector would; a value that may later hold a cycle (a dict,
    # empty and untracked when stored) must keep its item tracked.
    import weakref
    for methods in (PURE, COMPILED, SUBSCRIPT):
        tree = BTree(BNode)
        methods['add'](tree, 1, 'one')
        value = {}
        methods['add'](tree, 2, value)
        value['tree'] = tree            # tree -> node -> item -> dict -> tree
        gone = weakref.ref(tree)
        assert gc.is_tracked(tree.root.items[-1])
        del tree, value
        gc.collect()
        assert gone() is None
    tree = BTree(BNode)
    tree.add(1, 'one')
    tree.add(2, (3, 4))
    assert not gc.is_tracked(tree.root.items[0])


@pytest.mark.parametrize('kind', sorted(KEY_SETS) + sorted(MIXED_KEY_SETS))
def test_contains_matches_the_pure_method(kind):
    keys = dict(KEY_SETS, **MIXED_KEY_SETS)[kind]
    rnd = random.Random(3)
    tree = BTree(BNode4)
    for key in rnd.sample(keys, len(keys) // 2):
        tree.add(key, 'x')
    probes = keys + [10 ** 40, -0.25, 'zz', None, (1, 2)]
    expected = [outcome(lambda: btree._py_contains(tree, key))
                for key in probes]
    assert [outcome(lambda: key in tree) for key in probes] == expected
    assert [outcome(lambda: tree.has_key(key)) for key in probes] == expected
    assert any(result == ('value', True) for result in expected)
    assert any(result == ('value', False) for result in expected)


class OwnGet(BTree):
    __slots__ = []

    def get(self, key, default=None):
        return default if key == 13 else BTree.get(self, key, default)


def test_contains_asks_a_subclass_get():
    tree = OwnGet()
    tree[13] = 'hidden'
    tree[14] = 'seen'
    assert 14 in tree and 13 not in tree and not tree.has_key(13)
    assert BTree.__contains__(tree, 13) is False
    assert BTree.__contains__(tree, 14) is True


# -- splits done in C -------------------------------------------------------

def full_shape(node):
    """shape() with each node's _p_ slots and attribute names: what the
    sibling a compiled split makes must have, as BNode.__init__ makes it."""
    nodes = node.nodes
    return (type(node).__name__, list(node.items),
            (node._p_status, node._p_serial, node._p_connection, node._p_oid),
            sorted(node.__getstate__()),
            None if nodes is None else [full_shape(child) for child in nodes])


@pytest.mark.parametrize('node_class', [BNode, BNode4, BNode16])
@pytest.mark.parametrize('order', ['ascending', 'descending', 'shuffled'])
def test_split_trees_have_the_pure_layout(node_class, order):
    keys = list(range(3000)) + ['s%04d' % n for n in range(1500)]
    ints, strs = keys[:3000], keys[3000:]
    if order == 'descending':
        ints.reverse()
        strs.reverse()
    elif order == 'shuffled':
        random.Random(5).shuffle(ints)
        random.Random(6).shuffle(strs)
    shapes = []
    for methods in (PURE, COMPILED, SUBSCRIPT):
        int_tree, str_tree = BTree(node_class), BTree(node_class)
        for n in ints:
            methods['add'](int_tree, n, n * 2)
        for s in strs:
            methods['add'](str_tree, s, s)
        int_tree._check()
        str_tree._check()
        shapes.append((full_shape(int_tree.root), full_shape(str_tree.root)))
    assert shapes[1] == shapes[0]
    assert shapes[2] == shapes[0]


def test_the_middle_key_of_a_split_is_replaced_in_place():
    # The key being added equals the item that moves up: the item is
    # replaced in the parent, no deeper walk.
    for methods in (PURE, COMPILED, SUBSCRIPT):
        tree = BTree(BNode)
        for n in (10, 20, 30, 40, 50):
            methods['add'](tree, n, 'old')
        # root (20, 40) over (10) (30) (50); fill (50) to 3 items
        methods['add'](tree, 60, 'old')
        methods['add'](tree, 70, 'old')
        methods['add'](tree, 60, 'new')     # 60 is the middle of the split
        tree._check()
        assert tree[60] == 'new'
        assert [item[0] for item in tree.root.items] == [20, 40, 60]


class CountedInit(BNode):
    """A node class of its own __init__: a split must call it."""

    __slots__ = []
    made = 0

    def __init__(self):
        CountedInit.made += 1
        BNode.__init__(self)


class NotedChanges(BNode):
    """A node class of its own _p_note_change: a split must call it."""

    __slots__ = []
    notes = 0

    def _p_note_change(self):
        NotedChanges.notes += 1
        BNode._p_note_change(self)


class LoggedSetattr(BNode):
    """A node class of its own __setattr__: a split sets through it."""

    __slots__ = []
    log = []

    def __setattr__(self, name, value):
        LoggedSetattr.log.append((name, len(value) if value else value))
        BNode.__setattr__(self, name, value)


class OddDegree(BNode):
    """minimum_degree that is not an int: a split must fail as BNode's."""

    __slots__ = []
    max_items = 3
    minimum_degree = 2.0


def counts_under(methods, node_class, counter):
    setattr(node_class, counter, [] if counter == 'log' else 0)
    tree = BTree(node_class)
    for n in random.Random(8).sample(range(400), 400):
        methods['add'](tree, n, n)
    tree._check()
    return getattr(node_class, counter), shape(tree.root)


@pytest.mark.parametrize('node_class, counter', [
    (CountedInit, 'made'), (NotedChanges, 'notes'), (LoggedSetattr, 'log')])
def test_node_classes_of_their_own_see_the_pure_calls(node_class, counter):
    pure = counts_under(PURE, node_class, counter)
    assert pure[0]
    assert counts_under(COMPILED, node_class, counter) == pure
    assert counts_under(SUBSCRIPT, node_class, counter) == pure


def grow_then_change_init(methods):
    class Later(BNode):
        __slots__ = []

    tree = BTree(Later)
    for n in range(50):
        methods['add'](tree, n, n)
    made = []

    def counting_init(self):
        made.append(1)
        BNode.__init__(self)

    Later.__init__ = counting_init      # after the walk knows the class
    for n in range(50, 200):
        methods['add'](tree, n, n)
    tree._check()
    return len(made), shape(tree.root)


def test_a_node_class_changed_later_is_split_its_new_way():
    pure = grow_then_change_init(PURE)
    assert pure[0] > 10
    assert grow_then_change_init(COMPILED) == pure
    assert grow_then_change_init(SUBSCRIPT) == pure


def grow_then_change_metaclass_call(methods):
    class Meta(type):
        pass

    class Counted(BNode, metaclass=Meta):
        __slots__ = []

    tree = BTree(Counted)
    for n in range(50):
        methods['add'](tree, n, n)
    calls = []

    def counting_call(cls, *args):
        calls.append(cls)
        return type.__call__(cls, *args)

    Meta.__call__ = counting_call       # leaves Counted's version tag as is
    for n in range(50, 200):
        methods['add'](tree, n, n)
    tree._check()
    return len(calls), shape(tree.root)


def test_a_metaclass_call_set_later_makes_the_siblings():
    pure = grow_then_change_metaclass_call(PURE)
    assert pure[0] > 10
    assert grow_then_change_metaclass_call(COMPILED) == pure
    assert grow_then_change_metaclass_call(SUBSCRIPT) == pure


def test_a_degree_that_is_not_an_int_fails_as_the_pure_split():
    results = []
    for methods in (PURE, COMPILED, SUBSCRIPT):
        full = node_with([(1, 1), (2, 2), (3, 3)], node_class=OddDegree)
        tree = BTree(OddDegree)
        tree.root = node_with([(10, 10)], [full, node_with(
            [(11, 11)], node_class=OddDegree)], node_class=OddDegree)
        results.append((outcome(lambda: methods['add'](tree, 2, 'two')),
                        shape(tree.root)))
    assert results[0][0][0] is TypeError
    assert results[1] == results[0] and results[2] == results[0]


def test_splits_leak_no_nodes():
    def work():
        tree = BTree(BNode4)
        for n in random.Random(2).sample(range(2000), 2000):
            tree[n] = n
        for n in range(0, 2000, 3):
            tree[n] = -n        # replaces, some of them middle keys
        return tree

    work()
    gc.collect()
    before = sys.getrefcount(BNode4)
    for _ in range(3):
        work()
    gc.collect()
    assert sys.getrefcount(BNode4) == before


def test_a_collector_callback_during_splits_sees_a_sound_tree():
    # The sibling and its slices are allocated in C: a collection can run
    # Python code (gc.callbacks) in the middle of a split.
    tree = BTree(BNode4)
    seen = []

    def look(phase, info):
        if phase == 'start':
            seen.append(tree.get(7, 'none'))

    gc.callbacks.append(look)
    try:
        for n in random.Random(4).sample(range(20000), 20000):
            tree[n] = (n,) if n % 2 else n
    finally:
        gc.callbacks.remove(look)
    tree._check()
    assert seen and len(tree) == 20000
    assert tree[7] == (7,) and tree[8] == 8


def test_stored_nodes_split_to_byte_identical_records():
    # A loaded tree: its nodes are saved (watched variants), so the split
    # of one sets attributes through the hooks and notes the changes.
    def grow(methods):
        storage, connection, _ = stored_tree(PURE, 200)
        other = Connection(storage)
        tree = other.get_root()['tree']
        for n in range(1000, 1400):
            methods['add'](tree, n, 'new %d' % n)
        tree._check()
        other.commit()
        return records(storage)

    pure = grow(PURE)
    assert grow(COMPILED) == pure
    assert grow(SUBSCRIPT) == pure
