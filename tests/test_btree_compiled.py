"""The compiled BTree walk (csrc/btree.c) against the pure-Python methods.

durus.btree keeps its pure methods as ``_py_get``, ``_py_getitem`` and
``_py_add``; with durus._speedups built, ``BTree.get``, ``__getitem__``
and ``add`` are the compiled ones.  Each test drives one tree through the
pure methods and one through the compiled ones and expects the same nodes,
the same results and errors, the same calls of the keys' own comparisons,
the same loads and byte-identical records.
"""

import functools
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
