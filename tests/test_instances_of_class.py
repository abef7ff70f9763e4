"""durus.inspect.instances_of_class: the objects of a sequence whose type
is a subclass of a class, compiled and Python twins compared.

The shell picks the BTrees out of every object a statement touched with
it (durus_shell/changes.py), so it must agree with ``issubclass`` exactly,
also for abstract base classes and virtual subclasses, and survive a
``__subclasscheck__`` that runs Python code.
"""

from abc import ABCMeta
from collections.abc import MutableMapping

import pytest

from durus import _accel, inspect  # noqa: F401 (wires the twin)
from durus.btree import BTree
from durus.connection import Connection
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.storage import MemoryStorage

speedups = _accel.speedups
TWINS = [_accel.python_twin('instances_of_class')]
if speedups is not None:
    TWINS.append(speedups.instances_of_class)


class Thing(Persistent):
    pass


class Registered(object):
    pass


class Base(metaclass=ABCMeta):
    pass


Base.register(Registered)


def loaded_objects():
    """Objects of a real connection: their types are hook variants."""
    connection = Connection(MemoryStorage())
    root = connection.root
    root['tree'] = BTree()
    root['tree'][1] = Thing()
    root['things'] = [Thing() for _ in range(5)]
    root['dict'] = PersistentDict()
    connection.commit()
    connection.abort()
    objects = [root, root['tree'], root['dict']] + list(root['things'])
    return connection, objects


@pytest.mark.parametrize('find', TWINS)
def test_picks_instances_in_order_exactly_as_issubclass_says(find):
    connection, objects = loaded_objects()
    tree = objects[1]
    mixed = objects + [1, 'x', tree, {}, Registered(), 2.5, tree]
    assert find(mixed, BTree) == [tree, tree, tree]
    assert find(mixed, MutableMapping) == [
        obj for obj in mixed if issubclass(type(obj), MutableMapping)]
    assert [type(obj) for obj in find(mixed, Base)] == [Registered]
    assert find(mixed, int) == [1]
    assert find(tuple(mixed), Thing) == objects[3:]
    assert find([], BTree) == []


def test_the_twins_agree_on_many_objects():
    _, objects = loaded_objects()
    objects = objects * 50 + [3, 'y', None] * 20
    if speedups is None:
        pytest.skip('runs on the compiled path only')
    for cls in (BTree, MutableMapping, Persistent, object, int, Base):
        assert (speedups.instances_of_class(objects, cls) ==
                _accel.python_twin('instances_of_class')(objects, cls))


@pytest.mark.parametrize('find', TWINS)
def test_a_subclass_check_that_raises_or_empties_the_list(find):
    class Loud(metaclass=ABCMeta):
        @classmethod
        def __subclasshook__(cls, other):
            if other is float:
                raise RuntimeError('no floats')
            if other is str:
                objects.clear()
            return other is int

    objects = [1, 2, 'a', 3]
    # The list emptied half-way: no crash, nothing but ints (which of
    # them depends on the order the types are asked in).
    result = find(objects, Loud)
    assert set(result) <= {1, 2, 3} and objects == []
    with pytest.raises(RuntimeError, match='no floats'):
        find([1, 2.5], Loud)
    with pytest.raises(TypeError):
        find(5, BTree)


def test_the_shell_tracker_finds_the_btree_a_statement_read():
    from durus_shell.changes import ChangeTracker
    connection, _ = loaded_objects()
    tracker = ChangeTracker(connection)
    tracker.begin_statement()
    connection.root['tree'][1]
    tracker.end_statement()
    assert list(tracker._trees.values()) == [connection.root['tree']]
