"""PersistentDict, PersistentList, PersistentSet: the same cases as the builtins.

Each behaviour case runs against the builtin type and the persistent one;
change tracking cases check that mutators mark a saved container changed
(before mutating, so even a failing mutation counts) and that the
changes survive a commit.
"""

import pickle

import pytest

from durus.connection import Connection
from durus.persistent import SAVED, UNSAVED
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from durus.storage import MemoryStorage


@pytest.fixture(params=[dict, PersistentDict])
def mapping(request):
    return request.param


@pytest.fixture(params=[list, PersistentList])
def sequence(request):
    return request.param


@pytest.fixture(params=[set, PersistentSet])
def settype(request):
    return request.param


def as_list(x):
    return sorted(x) if isinstance(x, (set, PersistentSet)) else list(x)


# -- mappings ---------------------------------------------------------------

def test_mapping_construction_and_lookup(mapping):
    d = mapping([('a', 1)], b=2)
    assert len(d) == 2 and d['a'] == 1 and d.get('c') is None
    assert 'b' in d and 'c' not in d
    assert sorted(d) == ['a', 'b']
    assert sorted(d.keys()) == ['a', 'b']
    assert sorted(d.values()) == [1, 2]
    assert sorted(d.items()) == [('a', 1), ('b', 2)]
    with pytest.raises(KeyError):
        d['missing']


def test_mapping_mutators(mapping):
    d = mapping(a=1)
    d['b'] = 2
    assert d.setdefault('b', 5) == 2 and d.setdefault('c', 3) == 3
    assert d.pop('c') == 3 and d.pop('zz', 'dflt') == 'dflt'
    with pytest.raises(KeyError):
        d.pop('zz')
    del d['b']
    d.update({'x': 1}, y=2)
    d.update([('z', 3)])
    assert sorted(d.items()) == [('a', 1), ('x', 1), ('y', 2), ('z', 3)]
    key, value = d.popitem()
    assert key not in d
    d.clear()
    assert len(d) == 0
    with pytest.raises(TypeError):
        d.update({}, {})


def test_mapping_copy_and_fromkeys(mapping):
    d = mapping(a=[1])
    c = d.copy()
    assert type(c) is mapping and c['a'] is d['a']
    c['b'] = 2
    assert 'b' not in d
    f = mapping.fromkeys('xy', 0)
    assert type(f) is mapping and sorted(f.items()) == [('x', 0), ('y', 0)]


def test_persistent_dict_specifics():
    d = PersistentDict(a=1)
    assert isinstance(d.keys(), list) and isinstance(d.items(), list)
    assert d.has_key('a') and sorted(d.iterkeys()) == ['a']
    assert list(d.iteritems()) == [('a', 1)] and list(d.itervalues()) == [1]
    assert d == PersistentDict(a=1) and d != {'a': 1}
    with pytest.raises(TypeError):
        hash(d)
    other = PersistentDict()
    other.update(d)
    assert other == d
    assert d.__getstate__() == {'data': {'a': 1}}


# -- sequences --------------------------------------------------------------

def test_sequence_behaviour(sequence):
    s = sequence([3, 1, 2])
    assert len(s) == 3 and s[0] == 3 and s[-1] == 2 and 1 in s
    assert s[0:2] == [3, 1] and type(s[0:2]) is list
    s.append(4)
    s.insert(0, 0)
    s.extend([5])
    s += [6]
    assert list(s) == [0, 3, 1, 2, 4, 5, 6]
    assert s.pop() == 6 and s.pop(0) == 0
    s.remove(3)
    s.reverse()
    assert list(s) == [5, 4, 2, 1]
    s.sort()
    assert list(s) == [1, 2, 4, 5]
    s[0] = 9
    s[1:3] = [7]
    del s[-1]
    assert list(s) == [9, 7]
    del s[:]
    assert list(s) == []
    s *= 2
    assert list(s) == []
    with pytest.raises(ValueError):
        s.remove(1)
    assert sequence([1, 1, 2]).count(1) == 2
    assert sequence([1, 2, 3]).index(3) == 2


def test_sequence_combination(sequence):
    s = sequence([1, 2])
    for result in (s + [3], [0] + s, s * 2, 2 * s):
        assert type(result) is sequence
    assert list(s + [3]) == [1, 2, 3] and list([0] + s) == [0, 1, 2]
    assert list(s * 2) == [1, 2, 1, 2]


def test_persistent_list_comparisons():
    p = PersistentList([1, 2])
    assert p == [1, 2] and p == PersistentList([1, 2])
    assert p < [1, 3] and p <= [1, 2] and p > [1] and p >= PersistentList([1])
    assert p != [2]
    with pytest.raises(TypeError):
        hash(p)
    assert list(reversed(p)) == [2, 1]
    assert p.__getstate__() == {'data': [1, 2]}


# -- sets -------------------------------------------------------------------

def test_set_behaviour(settype):
    s = settype([1, 2, 3])
    other = settype([3, 4])
    assert as_list(s & other) == [3] and as_list(s | other) == [1, 2, 3, 4]
    assert as_list(s - other) == [1, 2] and as_list(s ^ other) == [1, 2, 4]
    assert type(s & other) is settype
    assert as_list(s.union([9])) == [1, 2, 3, 9]
    assert as_list(s.intersection([1, 9])) == [1]
    assert as_list(s.difference([1])) == [2, 3]
    assert as_list(s.symmetric_difference([1, 9])) == [2, 3, 9]
    assert s.issubset([1, 2, 3, 4]) and s.issuperset([1])
    s.add(5)
    s.discard(99)
    s.remove(5)
    with pytest.raises(KeyError):
        s.remove(5)
    s.update([7])
    s.difference_update([7])
    s.intersection_update([1, 2, 3, 8])
    s.symmetric_difference_update([3, 4])
    assert as_list(s) == [1, 2, 4]
    s |= settype([6])
    s &= settype([1, 6])
    s -= settype([1])
    s ^= settype([8])
    assert as_list(s) == [6, 8]
    assert s.pop() in (6, 8)
    c = s.copy()
    assert type(c) is settype and as_list(c) == as_list(s)
    s.clear()
    assert len(s) == 0 and len(c) == 1


def test_persistent_set_accepts_plain_sets_and_reflected_ops():
    p = PersistentSet([1, 2])
    for result in (p & {1}, {1} & p, p | {3}, {3} | p, p - {1}, {1, 5} - p,
                   p ^ {1}, {1} ^ p):
        assert type(result) is PersistentSet
    assert ({1, 5} - p).s == {5}
    assert p == PersistentSet([2, 1]) and p != {1, 2}
    assert PersistentSet([1]) < p and p >= PersistentSet([2])
    with pytest.raises(TypeError):
        p < {1, 2, 3}
    with pytest.raises(TypeError):
        hash(p)
    assert repr(PersistentSet([7])) == '<PersistentSet None [7]>'
    assert p.__getstate__() == {'s': {1, 2}}


# -- change tracking --------------------------------------------------------

def saved(container):
    connection = Connection(MemoryStorage())
    connection.root['c'] = container
    connection.commit()
    assert container._p_status == SAVED
    return connection


DICT_MUTATIONS = [
    lambda d: d.__setitem__('k', 1), lambda d: d.__delitem__('a'),
    lambda d: d.pop('a'), lambda d: d.popitem(), lambda d: d.clear(),
    lambda d: d.update(k=1), lambda d: d.setdefault('new', 1),
]
LIST_MUTATIONS = [
    lambda s: s.append(1), lambda s: s.insert(0, 1), lambda s: s.pop(),
    lambda s: s.remove(1), lambda s: s.reverse(), lambda s: s.sort(),
    lambda s: s.extend([1]), lambda s: s.__setitem__(0, 5),
    lambda s: s.__delitem__(0), lambda s: s.__iadd__([1]),
    lambda s: s.__imul__(2), lambda s: s.clear(),
]
SET_MUTATIONS = [
    lambda s: s.add(9), lambda s: s.discard(1), lambda s: s.remove(1),
    lambda s: s.pop(), lambda s: s.clear(), lambda s: s.update([9]),
    lambda s: s.difference_update([1]), lambda s: s.intersection_update([]),
    lambda s: s.symmetric_difference_update([1]), lambda s: s.__ior__({9}),
    lambda s: s.__iand__(set()), lambda s: s.__isub__({1}),
    lambda s: s.__ixor__({1}),
]


@pytest.mark.parametrize('make, mutate', (
    [(lambda: PersistentDict(a=1), m) for m in DICT_MUTATIONS] +
    [(lambda: PersistentList([1, 2]), m) for m in LIST_MUTATIONS] +
    [(lambda: PersistentSet([1, 2]), m) for m in SET_MUTATIONS]))
def test_mutators_mark_changed_and_changes_persist(make, mutate):
    container = make()
    connection = saved(container)
    expected = make()
    mutate(expected)
    mutate(container)
    assert container._p_status == UNSAVED
    assert container._p_oid in connection.changed
    connection.commit()
    fresh = Connection(connection.storage).root['c']
    assert fresh.__getstate__() == expected.__getstate__()


def test_failing_mutation_still_marks_changed():
    d = PersistentDict()
    connection = saved(d)
    with pytest.raises(KeyError):
        d.pop('missing')
    assert d._p_oid in connection.changed


def test_setdefault_of_existing_key_does_not_mark_changed():
    d = PersistentDict(a=1)
    connection = saved(d)
    assert d.setdefault('a', 2) == 1
    assert connection.changed == {}


def test_reads_do_not_mark_changed():
    containers = [PersistentDict(a=1), PersistentList([1]), PersistentSet([1])]
    connection = Connection(MemoryStorage())
    connection.root['all'] = containers
    connection.commit()
    for c in containers:
        len(c), list(c), 1 in c, c.copy() if hasattr(c, 'copy') else c[0:1]
    assert connection.changed == {}


def test_plain_pickle_of_containers():
    for container in (PersistentDict(a=1), PersistentList([1]),
                      PersistentSet([1])):
        copy = pickle.loads(pickle.dumps(container, 2))
        assert copy.__getstate__() == container.__getstate__()
        assert copy._p_status == UNSAVED
