"""Cursors for ``:page``: a large collection a screenful at a time.

``cursor_for(value)`` picks how to walk a value; ``cursor.next_page(n)``
gives the next ``n`` entries from where the last page stopped, as
``(label, value)`` pairs (label: the key or index; None for an iterator's
items), and ``cursor.done`` says when nothing is left.

A BTree is walked by key (durus.inspect's range walk through
durus_shell.peek): each page starts after the last key shown, so only the
nodes of that page are read, and keys added or removed meanwhile do not
shift the place.  Mappings and sequences go by position, iterators and
generators are simply drawn from.
"""

import itertools

from durus_shell import peek

_NOTHING = object()


class Cursor(object):
    kind = 'items'
    done = False
    shown = 0          # entries shown so far
    total = None       # entries in all, when known cheaply

    def next_page(self, count):
        raise NotImplementedError


class BTreeCursor(Cursor):
    kind = 'keys'

    def __init__(self, tree):
        self.tree = tree
        self.last_key = _NOTHING
        size, exact = peek.btree_size(tree)
        self.total = size if exact else None

    def next_page(self, count):
        start = None if self.last_key is _NOTHING else self.last_key
        items = []
        # From the last key shown (included, so skipped), one more than a
        # page to know whether anything is left: one walk down the tree.
        for key, value in peek.btree_items(self.tree, start, count + 2):
            if self.last_key is not _NOTHING and key == self.last_key:
                continue
            items.append((key, value))
            if len(items) > count:
                break
        self.done = len(items) <= count
        items = items[:count]
        if items:
            self.last_key = items[-1][0]
        self.shown += len(items)
        return items


class SequenceCursor(Cursor):
    def __init__(self, sequence):
        self.sequence = sequence
        self.total = len(sequence)

    def next_page(self, count):
        stop = min(self.shown + count, len(self.sequence))
        items = [(index, self.sequence[index])
                 for index in range(self.shown, stop)]
        self.shown = stop
        self.done = stop >= len(self.sequence)
        return items


class MappingCursor(SequenceCursor):
    kind = 'keys'

    def __init__(self, mapping):
        # The keys as they are now: a page later still lists the rest.
        self.mapping = mapping
        SequenceCursor.__init__(self, list(mapping.keys()))

    def next_page(self, count):
        keys = SequenceCursor.next_page(self, count)
        return [(key, self.mapping.get(key)) for _, key in keys]


class IteratorCursor(Cursor):
    def __init__(self, iterable):
        self.iterator = iter(iterable)

    def next_page(self, count):
        items = [(None, item) for item in itertools.islice(
            self.iterator, count + 1)]
        if len(items) > count:
            # One drawn ahead to know whether anything is left.
            self.iterator = itertools.chain([items.pop()[1]], self.iterator)
        else:
            self.done = True
        self.shown += len(items)
        return items


def cursor_for(value):
    """The cursor walking ``value``; TypeError if it cannot be walked."""
    kind = peek.container_kind(value) if peek.is_persistent(value) else None
    if kind == 'btree':
        return BTreeCursor(value)
    if kind == 'dict':
        return MappingCursor(peek.container_data(value, kind))
    if kind == 'list':
        return SequenceCursor(peek.container_data(value, kind))
    if kind == 'set':
        return SequenceCursor(_sorted(peek.container_data(value, kind)))
    if isinstance(value, dict):
        return MappingCursor(value)
    if isinstance(value, (list, tuple, str, bytes, range)):
        return SequenceCursor(value)
    if isinstance(value, (set, frozenset)):
        return SequenceCursor(_sorted(value))
    try:
        return IteratorCursor(value)
    except TypeError:
        raise TypeError('%s cannot be paged (a BTree, mapping, sequence, '
                        'iterable or generator can)' % type(value).__name__)


def _sorted(values):
    try:
        return sorted(values)
    except TypeError:
        return list(values)
