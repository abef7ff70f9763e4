"""PersistentSet: a persistent set whose state is ``{'s': set}``."""

from collections.abc import MutableSet

from durus.persistent import PersistentObject


def _plain(other):
    if isinstance(other, PersistentSet):
        return other.s
    return other


class PersistentSet(PersistentObject, MutableSet):
    """A set that is one persistent record.

    Binary operators accept a PersistentSet or a plain set and return a
    new PersistentSet; the in-place forms mutate.  Ordering comparisons
    work only between PersistentSets.
    """

    __slots__ = ['s']

    s_is = set      # attribute type, for QP-style spec checkers (as in 4.3)

    def __init__(self, *args):
        self.s = set(*args)

    def __repr__(self):
        return '<%s %s %r>' % (self.__class__.__name__, self._p_format_oid(),
                               list(self.s))

    __hash__ = None

    def __eq__(self, other):
        return isinstance(other, PersistentSet) and self.s == other.s

    def __ne__(self, other):
        return not self == other

    def _ordered(self, other):
        if not isinstance(other, PersistentSet):
            raise TypeError('ordering comparisons need two PersistentSets, '
                            'got %s' % type(other).__name__)
        return other.s

    def __lt__(self, other):
        return self.s < self._ordered(other)

    def __le__(self, other):
        return self.s <= self._ordered(other)

    def __gt__(self, other):
        return self.s > self._ordered(other)

    def __ge__(self, other):
        return self.s >= self._ordered(other)

    def __contains__(self, item):
        return item in self.s

    def __iter__(self):
        return iter(self.s)

    def __len__(self):
        return len(self.s)

    def _new(self, s):
        result = self.__class__()
        result.s = s
        return result

    def __and__(self, other):
        return self._new(self.s & _plain(other))

    __rand__ = __and__

    def __or__(self, other):
        return self._new(self.s | _plain(other))

    __ror__ = __or__

    def __sub__(self, other):
        return self._new(self.s - _plain(other))

    def __rsub__(self, other):
        return self._new(_plain(other) - self.s)

    def __xor__(self, other):
        return self._new(self.s ^ _plain(other))

    __rxor__ = __xor__

    def __iand__(self, other):
        self._p_note_change()
        self.s &= _plain(other)
        return self

    def __ior__(self, other):
        self._p_note_change()
        self.s |= _plain(other)
        return self

    def __isub__(self, other):
        self._p_note_change()
        self.s -= _plain(other)
        return self

    def __ixor__(self, other):
        self._p_note_change()
        self.s ^= _plain(other)
        return self

    def add(self, item):
        self._p_note_change()
        self.s.add(item)

    def clear(self):
        self._p_note_change()
        self.s.clear()

    def copy(self):
        return self._new(set(self.s))

    def discard(self, item):
        self._p_note_change()
        self.s.discard(item)

    def pop(self):
        self._p_note_change()
        return self.s.pop()

    def remove(self, item):
        self._p_note_change()
        self.s.remove(item)

    def difference(self, other, *others):
        return self._new(self.s.difference(_plain(other),
                                           *map(_plain, others)))

    def difference_update(self, other, *others):
        self._p_note_change()
        self.s.difference_update(_plain(other), *map(_plain, others))

    def intersection(self, other, *others):
        return self._new(self.s.intersection(_plain(other),
                                             *map(_plain, others)))

    def intersection_update(self, other, *others):
        self._p_note_change()
        self.s.intersection_update(_plain(other), *map(_plain, others))

    def issubset(self, other):
        return self.s.issubset(_plain(other))

    def issuperset(self, other):
        return self.s.issuperset(_plain(other))

    def symmetric_difference(self, other):
        return self._new(self.s.symmetric_difference(_plain(other)))

    def symmetric_difference_update(self, other):
        self._p_note_change()
        self.s.symmetric_difference_update(_plain(other))

    def union(self, other, *others):
        return self._new(self.s.union(_plain(other), *map(_plain, others)))

    def update(self, other, *others):
        self._p_note_change()
        self.s.update(_plain(other), *map(_plain, others))
