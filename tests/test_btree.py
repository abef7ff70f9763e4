"""durus.btree: random changes against a dict with the invariant check."""

import random

import pytest

from durus.btree import (BNode, BNode4, BNode8, BNode16, BNode512, BTree,
                         EmptyBTreeError, peek_items_from)
from durus.connection import Connection
from durus.persistent import GHOST
from durus.storage import MemoryStorage


@pytest.mark.parametrize('node_class', [BNode, BNode4, BNode16])
def test_random_inserts_and_deletes_match_a_dict(node_class):
    rnd = random.Random(node_class.minimum_degree)
    tree = BTree(node_class)
    expected = {}
    for step in range(1500):
        key = rnd.randrange(300)
        if rnd.random() < 0.55:
            tree[key] = step
            expected[key] = step
        elif key in expected:
            del tree[key]
            del expected[key]
        else:
            with pytest.raises(KeyError):
                del tree[key]
        tree._check()
    assert tree.items() == sorted(expected.items())
    assert len(tree) == len(expected)
    for key in list(expected):
        del tree[key]
        tree._check()
    assert not tree and len(tree) == 0


def test_check_detects_broken_invariants():
    tree = BTree(BNode)
    for key in range(20):
        tree[key] = key
    tree._check()
    node = tree.root
    for _ in range(20):  # down to the leftmost leaf; 20 keys, 20 levels at most
        if node.nodes is None:
            break
        node = node.nodes[0]
    original = list(node.items)
    node.items[0] = (1000, 0)
    with pytest.raises(AssertionError):
        tree._check()
    node.items[:] = original + [(original[-1][0] + 0.5, 0)] * 3
    with pytest.raises(AssertionError):
        tree._check()
    node.items[:] = original
    tree._check()
    tree.root.nodes.pop()
    with pytest.raises(AssertionError):
        tree._check()


def test_mapping_api():
    tree = BTree()
    assert not tree and len(tree) == 0 and tree.get(1) is None
    tree.add(2)
    tree[1] = 'one'
    tree.update({3: 'three'})
    tree.update([(5, 'five')])
    words = BTree()
    words.update({'a': 1}, b=2)
    assert words.items() == [('a', 1), ('b', 2)]
    assert tree[2] is True and 1 in tree and tree.has_key(3)
    assert 99 not in tree and tree.get(99, 'd') == 'd'
    with pytest.raises(KeyError):
        tree[99]
    assert tree.setdefault(1, 'x') == 'one' and tree.setdefault(0, 'z') == 'z'
    with pytest.raises(TypeError):
        tree.update({}, {})


def test_iteration_orders_and_ranges():
    tree = BTree(BNode)
    keys = list(range(0, 60, 2))
    for key in reversed(keys):
        tree[key] = -key
    assert list(tree) == keys == tree.keys() == list(tree.iterkeys())
    assert tree.values() == [-k for k in keys] == list(tree.itervalues())
    assert tree.items() == list(tree.iteritems())
    assert list(reversed(tree)) == keys[::-1]
    assert [k for k, v in tree.items_backward()] == keys[::-1]
    for probe in (-1, 0, 7, 10, 58, 59, 100):
        assert [k for k, _ in tree.items_from(probe)] == [
            k for k in keys if k >= probe]
        assert [k for k, _ in tree.items_from(probe, closed=False)] == [
            k for k in keys if k > probe]
        assert [k for k, _ in tree.items_backward_from(probe)] == [
            k for k in reversed(keys) if k < probe]
        assert [k for k, _ in tree.items_backward_from(probe, closed=True)] \
            == [k for k in reversed(keys) if k <= probe]
    assert [k for k, _ in tree.items_range(10, 20)] == [10, 12, 14, 16, 18]
    assert [k for k, _ in tree.items_range(10, 20, closed_start=False,
                                           closed_end=True)] == [
        12, 14, 16, 18, 20]
    assert [k for k, _ in tree.items_range(20, 10)] == [20, 18, 16, 14, 12]
    assert [k for k, _ in tree.items_range(20, 10, closed_end=True)] == [
        20, 18, 16, 14, 12, 10]


def test_min_max_depth_and_node_counts():
    tree = BTree(BNode)
    with pytest.raises(EmptyBTreeError) as info:
        tree.get_min_item()
    assert isinstance(info.value, AssertionError)
    with pytest.raises(AssertionError):
        tree.get_max_item()
    assert tree.get_depth() == 1 and tree.get_node_count() == 1
    for key in range(20):
        tree[key] = str(key)
    assert tree.get_min_item() == (0, '0') and tree.get_max_item() == (19, '19')
    assert tree.get_depth() == tree.root.get_level() + 1 > 2
    assert tree.get_node_count() == tree.root.get_node_count() > 5
    assert tree.root.search(5) == (5, '5') and tree.root.search(50) is None
    assert not tree.root.is_leaf()


def test_clear_and_minimum_degree_rebuild():
    tree = BTree(BNode4)
    for key in range(100):
        tree[key] = key
    assert tree.set_bnode_minimum_degree(8) is True
    assert tree.root.__class__ is BNode8
    assert tree.set_bnode_minimum_degree(8) is False
    tree._check()
    assert tree.items() == [(k, k) for k in range(100)]
    with pytest.raises(ValueError):
        tree.set_bnode_minimum_degree(3)
    tree.clear()
    assert len(tree) == 0 and tree.root.__class__ is BNode8


def test_equality_as_a_mapping():
    tree = BTree()
    tree.update({1: 'a', 2: 'b'})
    assert tree == {1: 'a', 2: 'b'} and tree != {1: 'a'}
    other = BTree(BNode512)
    other.update({2: 'b', 1: 'a'})
    assert tree == other
    with pytest.raises(TypeError):
        hash(tree)


def test_state_layout_names():
    tree = BTree(BNode)
    for key in range(5):
        tree[key] = key
    assert set(tree.__getstate__()) == {'root'}
    assert set(tree.root.__getstate__()) == {'items', 'nodes'}
    assert tree.root.nodes is not None
    leaf = tree.root.nodes[0]
    assert leaf.__getstate__()['nodes'] is None


def stored_tree(count):
    connection = Connection(MemoryStorage())
    tree = BTree(BNode4)
    for key in range(count):
        tree['k%04d' % key] = key
    connection.root['tree'] = tree
    connection.commit()
    return connection


def test_tree_survives_commit_and_changes_are_tracked_per_node():
    connection = stored_tree(300)
    fresh = Connection(connection.storage)
    tree = fresh.root['tree']
    assert tree['k0150'] == 150
    tree['k0150'] = 'changed'
    assert len(fresh.changed) == 1
    del tree['k0001']
    tree.note_change_of_bnode_containing_key('k0299')
    fresh.commit()
    tree._check()
    again = Connection(connection.storage).root['tree']
    assert again['k0150'] == 'changed' and 'k0001' not in again
    assert len(again) == 299


def test_lookup_loads_only_the_nodes_on_its_path():
    connection = stored_tree(2000)
    fresh = Connection(connection.storage)
    tree = fresh.root['tree']
    before = fresh.get_load_count()
    assert tree['k1234'] == 1234
    assert fresh.get_load_count() - before <= tree.get_depth() + 1


def test_peek_items_from_reads_without_accessing():
    connection = stored_tree(2000)
    fresh = Connection(connection.storage)
    tree = fresh.root['tree']
    fresh.commit()
    before = fresh.get_load_count()
    found = []
    for key, value in peek_items_from(tree, 'k15'):
        if not key.startswith('k15'):
            break
        found.append(key)
    assert found == ['k15%02d' % i for i in range(100)]
    loaded = fresh.get_load_count() - before
    assert 0 < loaded < 60
    serial = fresh.transaction_serial
    accessed = [obj for obj in fresh.cache
                if obj._p_status != GHOST and obj._p_serial == serial]
    assert accessed == []
