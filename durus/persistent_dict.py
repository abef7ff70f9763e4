"""PersistentDict: a persistent mapping whose state is ``{'data': dict}``."""

from collections.abc import MutableMapping

from durus.persistent import PersistentObject

_MISSING = object()


class PersistentDict(PersistentObject, MutableMapping):
    """A dict that is one persistent record.

    Mutators mark the object changed before mutating.  Values that are
    not persistent are stored inside this record: after changing such a
    value in place, call ``_p_note_change()``.
    """

    __slots__ = ['data']

    data_is = dict  # attribute type, for QP-style spec checkers (as in 4.3)

    def __init__(self, *args, **kwargs):
        self.data = dict(*args, **kwargs)

    def __eq__(self, other):
        return (isinstance(other, PersistentDict) and
                self.data == other.data)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __len__(self):
        return len(self.data)

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, item):
        self._p_note_change()
        self.data[key] = item

    def __delitem__(self, key):
        self._p_note_change()
        del self.data[key]

    def __contains__(self, key):
        return key in self.data

    def __iter__(self):
        return iter(self.data)

    def has_key(self, key):
        return key in self.data

    def get(self, key, failobj=None):
        return self.data.get(key, failobj)

    def setdefault(self, key, failobj=None):
        data = self.data
        if key in data:
            return data[key]
        self._p_note_change()
        data[key] = failobj
        return failobj

    def pop(self, key, *default):
        self._p_note_change()
        return self.data.pop(key, *default)

    def popitem(self):
        self._p_note_change()
        return self.data.popitem()

    def clear(self):
        self._p_note_change()
        self.data.clear()

    def update(self, *args, **kwargs):
        if len(args) > 1:
            raise TypeError('update expected at most 1 positional argument, '
                            'got %d' % len(args))
        self._p_note_change()
        data = self.data
        if args:
            other = args[0]
            if isinstance(other, PersistentDict):
                data.update(other.data)
            elif isinstance(other, dict) or hasattr(other, 'keys'):
                for key in other.keys():
                    data[key] = other[key]
            else:
                for key, value in other:
                    data[key] = value
        if kwargs:
            data.update(kwargs)

    def copy(self):
        copy = self.__class__()
        copy.data = self.data.copy()
        return copy

    @classmethod
    def fromkeys(cls, iterable, value=None):
        result = cls()
        result.data = dict.fromkeys(iterable, value)
        return result

    def keys(self):
        return list(self.data.keys())

    def items(self):
        return list(self.data.items())

    def values(self):
        return list(self.data.values())

    def iterkeys(self):
        return iter(self.data)

    def iteritems(self):
        return iter(self.data.items())

    def itervalues(self):
        return iter(self.data.values())


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
from durus.utils import iteritems  # noqa: E402,F401
