"""Application classes named by the pickles in tests/data/durus43/.

The Durus 4.3 fixture files were written by an application whose module
was ``fixture_app.models``; these classes have the same names and bases.
"""

from durus.persistent import ComputedAttribute, Persistent, PersistentObject


class User(Persistent):
    pass


class Account(PersistentObject):
    __slots__ = ['balance', 'owner', 'history']


class Node(Persistent):
    pass


class Cached(ComputedAttribute):
    __slots__ = []
