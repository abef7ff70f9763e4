"""PersistentList: a persistent sequence whose state is ``{'data': list}``."""

from collections.abc import MutableSequence

from durus.persistent import PersistentObject


def _plain(other):
    """The list to compare or combine with: a PersistentList's data or ``other``."""
    if isinstance(other, PersistentList):
        return other.data
    return other


class PersistentList(PersistentObject, MutableSequence):
    """A list that is one persistent record.

    Mutators mark the object changed before mutating.  Slicing returns a
    plain list; ``+`` and ``*`` return new PersistentLists.
    """

    __slots__ = ['data']

    data_is = list  # attribute type, for QP-style spec checkers (as in 4.3)

    def __init__(self, *args, **kwargs):
        self.data = list(*args, **kwargs)

    def __lt__(self, other):
        return self.data < _plain(other)

    def __le__(self, other):
        return self.data <= _plain(other)

    def __eq__(self, other):
        return self.data == _plain(other)

    def __ne__(self, other):
        return self.data != _plain(other)

    def __gt__(self, other):
        return self.data > _plain(other)

    def __ge__(self, other):
        return self.data >= _plain(other)

    __hash__ = None

    def __contains__(self, item):
        return item in self.data

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        return iter(self.data)

    def __reversed__(self):
        return reversed(self.data)

    def __getitem__(self, i):
        return self.data[i]

    def __setitem__(self, i, item):
        self._p_note_change()
        self.data[i] = item

    def __delitem__(self, i):
        self._p_note_change()
        del self.data[i]

    # Python 2's slice methods, which 4.3 still defines; Python 3 slices
    # through __getitem__ (a plain list), these are only called by name.
    def __getslice__(self, i, j):
        return self.__class__(self.data[i:j])

    def __setslice__(self, i, j, other):
        self[i:j] = list(_plain(other))

    def __delslice__(self, i, j):
        del self[i:j]

    def __add__(self, other):
        return self.__class__(self.data + list(_plain(other)))

    def __radd__(self, other):
        return self.__class__(list(_plain(other)) + self.data)

    def __iadd__(self, other):
        self._p_note_change()
        self.data += _plain(other)
        return self

    def __mul__(self, n):
        return self.__class__(self.data * n)

    __rmul__ = __mul__

    def __imul__(self, n):
        self._p_note_change()
        self.data *= n
        return self

    def append(self, item):
        self._p_note_change()
        self.data.append(item)

    def insert(self, i, item):
        self._p_note_change()
        self.data.insert(i, item)

    def pop(self, i=-1):
        self._p_note_change()
        return self.data.pop(i)

    def remove(self, item):
        self._p_note_change()
        self.data.remove(item)

    def clear(self):
        self._p_note_change()
        del self.data[:]

    def count(self, item):
        return self.data.count(item)

    def index(self, item, *args):
        return self.data.index(item, *args)

    def reverse(self):
        self._p_note_change()
        self.data.reverse()

    def sort(self, *args, **kwargs):
        self._p_note_change()
        self.data.sort(*args, **kwargs)

    def extend(self, other):
        self._p_note_change()
        self.data.extend(_plain(other))
