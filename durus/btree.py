"""BTree: a sorted persistent mapping made of one record per node.

Invariants of a tree of minimum degree t (checked by ``BTree._check``):

* ``node.items`` is a list of ``(key, value)`` tuples sorted by key,
  keys unique across the tree;
* a leaf has ``nodes is None``; an internal node has
  ``len(nodes) == len(items) + 1`` and subtree i holds the keys between
  ``items[i-1]`` and ``items[i]``;
* every node holds at most 2t - 1 items, and every node but the root at
  least t - 1;
* all leaves are at the same depth.

Insertion splits full nodes on the way down and deletion makes sure each
node it descends into has at least t items (CLRS, chapter "B-Trees"), so
both are single passes from the root.  Each in-place change of a node's
lists marks that node changed.  Attribute names (``items``, ``nodes``,
``root``) and class names are part of the file format.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, MutableMapping
from operator import itemgetter

from durus._accel import speedups as _speedups, use as _use_compiled
from durus.error import DurusError
from durus.persistent import UNSAVED, PersistentObject, peek

_first = itemgetter(0)


class EmptyBTreeError(DurusError, AssertionError):
    """The smallest or largest item of an empty BTree was asked for."""


class NodeClassError(TypeError, AssertionError):
    """BTree() was given something other than a BNode class (an assert in
    4.3, hence also an AssertionError)."""


class BNode(PersistentObject):
    """A node of a BTree (minimum degree 2); subclasses set other degrees."""

    __slots__ = ['items', 'nodes']

    minimum_degree = 2
    max_items = 3

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.max_items = 2 * cls.minimum_degree - 1

    def __init__(self):
        self.items = []
        self.nodes = None

    def is_leaf(self):
        return self.nodes is None

    def is_full(self):
        return len(self.items) == self.max_items

    def get_position(self, key):
        """Index of the first item whose key is >= ``key``."""
        return bisect_left(self.items, key, key=_first)

    def search(self, key):
        """The ``(key, value)`` item of ``key`` in this subtree, or None."""
        node = self
        while True:
            items = node.items
            i = bisect_left(items, key, key=_first)
            if i < len(items) and items[i][0] == key:
                return items[i]
            nodes = node.nodes
            if nodes is None:
                return None
            node = nodes[i]

    def insert_item(self, item):
        """Insert or replace ``item`` in this (non-full) subtree."""
        key = item[0]
        node = self
        while True:
            items = node.items
            i = bisect_left(items, key, key=_first)
            if i < len(items) and items[i][0] == key:
                if node._p_status != UNSAVED:
                    node._p_note_change()
                items[i] = item
                return
            nodes = node.nodes
            if nodes is None:
                if node._p_status != UNSAVED:
                    node._p_note_change()
                items.insert(i, item)
                return
            child = nodes[i]
            if len(child.items) == child.max_items:
                node.split_child(i, child)
                middle = items[i][0]
                if key == middle:
                    items[i] = item
                    return
                if middle < key:
                    child = nodes[i + 1]
            node = child

    def split_child(self, position, child):
        """Split the full ``child`` (``self.nodes[position]``) in two."""
        t = child.minimum_degree
        sibling = child.__class__()
        sibling.items = child.items[t:]
        middle = child.items[t - 1]
        if child.nodes is not None:
            sibling.nodes = child.nodes[t:]
            child.nodes = child.nodes[:t]
        child.items = child.items[:t - 1]
        self._p_note_change()
        self.items.insert(position, middle)
        self.nodes.insert(position + 1, sibling)

    def get_min_item(self):
        node = self
        while node.nodes is not None:
            node = node.nodes[0]
        return node.items[0]

    def get_max_item(self):
        node = self
        while node.nodes is not None:
            node = node.nodes[-1]
        return node.items[-1]

    def delete(self, key):
        """Remove the item of ``key`` from this subtree; KeyError if absent."""
        node = self
        t = self.minimum_degree
        while True:
            items = node.items
            nodes = node.nodes
            i = bisect_left(items, key, key=_first)
            found = i < len(items) and items[i][0] == key
            if nodes is None:
                if not found:
                    raise KeyError(key)
                node._p_note_change()
                del items[i]
                return
            if found:
                left = nodes[i]
                right = nodes[i + 1]
                if len(left.items) >= t:
                    item = left.get_max_item()
                    node._p_note_change()
                    items[i] = item
                    node, key = left, item[0]
                elif len(right.items) >= t:
                    item = right.get_min_item()
                    node._p_note_change()
                    items[i] = item
                    node, key = right, item[0]
                else:
                    node = _merge_children(node, i)
                continue
            child = nodes[i]
            if len(child.items) < t:
                left = nodes[i - 1] if i > 0 else None
                right = nodes[i + 1] if i < len(items) else None
                if left is not None and len(left.items) >= t:
                    _rotate_from_left(node, i)
                elif right is not None and len(right.items) >= t:
                    _rotate_from_right(node, i)
                elif right is not None:
                    child = _merge_children(node, i)
                else:
                    child = _merge_children(node, i - 1)
            node = child

    def get_count(self):
        """Number of items in this subtree."""
        count = len(self.items)
        if self.nodes is not None:
            for node in self.nodes:
                count += node.get_count()
        return count

    def get_node_count(self):
        """Number of nodes in this subtree."""
        count = 1
        if self.nodes is not None:
            for node in self.nodes:
                count += node.get_node_count()
        return count

    def get_level(self):
        """Height of this subtree: 0 for a leaf."""
        level = 0
        node = self
        while node.nodes is not None:
            node = node.nodes[0]
            level += 1
        return level

    def __iter__(self):
        return _iter_forward(self, _MISSING, False, getattr)

    def __reversed__(self):
        return _iter_backward(self, _MISSING, False, getattr)

    def iter_from(self, key, closed=True):
        """Items with keys >= ``key`` (> if not closed), ascending."""
        return _iter_forward(self, key, not closed, getattr)

    def iter_backward_from(self, key, closed=False):
        """Items with keys < ``key`` (<= if closed), descending."""
        return _iter_backward(self, key, closed, getattr)


def _merge_children(node, i):
    """Merge ``nodes[i]``, ``items[i]`` and ``nodes[i+1]`` into ``nodes[i]``."""
    left = node.nodes[i]
    right = node.nodes[i + 1]
    node._p_note_change()
    left._p_note_change()
    left.items.append(node.items.pop(i))
    left.items.extend(right.items)
    if left.nodes is not None:
        left.nodes.extend(right.nodes)
    del node.nodes[i + 1]
    return left


def _rotate_from_left(node, i):
    """Move an item from ``nodes[i-1]`` through the parent into ``nodes[i]``."""
    child = node.nodes[i]
    left = node.nodes[i - 1]
    node._p_note_change()
    child._p_note_change()
    left._p_note_change()
    child.items.insert(0, node.items[i - 1])
    node.items[i - 1] = left.items.pop()
    if child.nodes is not None:
        child.nodes.insert(0, left.nodes.pop())


def _rotate_from_right(node, i):
    """Move an item from ``nodes[i+1]`` through the parent into ``nodes[i]``."""
    child = node.nodes[i]
    right = node.nodes[i + 1]
    node._p_note_change()
    child._p_note_change()
    right._p_note_change()
    child.items.append(node.items[i])
    node.items[i] = right.items.pop(0)
    if child.nodes is not None:
        child.nodes.append(right.nodes.pop(0))


_MISSING = object()


def _iter_forward(node, key, strict, read):
    """Items of the subtree in ascending order, from ``key`` if given.

    ``read(node, name)`` reads node attributes (``getattr`` normally,
    ``peek`` to look without counting as an access).
    """
    stack = []
    while True:
        items = read(node, 'items')
        if key is _MISSING:
            i = 0
        elif strict:
            i = bisect_right(items, key, key=_first)
        else:
            i = bisect_left(items, key, key=_first)
        nodes = read(node, 'nodes')
        if nodes is None:
            yield from items[i:]
            break
        stack.append((items, nodes, i))
        node = nodes[i]
    while stack:
        items, nodes, i = stack.pop()
        if i < len(items):
            yield items[i]
            stack.append((items, nodes, i + 1))
            node = nodes[i + 1]
            while True:
                child_nodes = read(node, 'nodes')
                if child_nodes is None:
                    yield from read(node, 'items')
                    break
                stack.append((read(node, 'items'), child_nodes, 0))
                node = child_nodes[0]


def _iter_backward(node, key, closed, read):
    """Items of the subtree in descending order, below ``key`` if given."""
    stack = []
    while True:
        items = read(node, 'items')
        if key is _MISSING:
            i = len(items)
        elif closed:
            i = bisect_right(items, key, key=_first)
        else:
            i = bisect_left(items, key, key=_first)
        nodes = read(node, 'nodes')
        if nodes is None:
            yield from reversed(items[:i])
            break
        stack.append((items, nodes, i))
        node = nodes[i]
    while stack:
        items, nodes, i = stack.pop()
        if i > 0:
            yield items[i - 1]
            stack.append((items, nodes, i - 1))
            node = nodes[i - 1]
            while True:
                child_nodes = read(node, 'nodes')
                child_items = read(node, 'items')
                if child_nodes is None:
                    yield from reversed(child_items)
                    break
                stack.append((child_items, child_nodes, len(child_items)))
                node = child_nodes[-1]


def peek_items_from(tree, key):
    """Items of ``tree`` with keys >= ``key``, ascending, read with ``peek``.

    Loads only the nodes it walks through and does not count them as
    accessed by the current transaction (see ``durus.persistent.peek``):
    for tools such as completion that browse a database from the side.
    Stop iterating early to read as few nodes as possible.
    """
    return _iter_forward(peek(tree, 'root'), key, False, peek)


class BNode4(BNode):
    __slots__ = []
    minimum_degree = 4


class BNode8(BNode):
    __slots__ = []
    minimum_degree = 8


class BNode16(BNode):
    __slots__ = []
    minimum_degree = 16


class BNode32(BNode):
    __slots__ = []
    minimum_degree = 32


class BNode64(BNode):
    __slots__ = []
    minimum_degree = 64


class BNode128(BNode):
    __slots__ = []
    minimum_degree = 128


class BNode256(BNode):
    __slots__ = []
    minimum_degree = 256


class BNode512(BNode):
    __slots__ = []
    minimum_degree = 512


# Attribute types, for QP-style spec checkers (as 4.3 sets them).
for _node_class in [BNode] + BNode.__subclasses__():
    _node_class.items_is = [tuple]
    _node_class.nodes_is = (None, [_node_class])
del _node_class

_node_classes = {2: BNode, 4: BNode4, 8: BNode8, 16: BNode16, 32: BNode32,
                 64: BNode64, 128: BNode128, 256: BNode256, 512: BNode512}


class BTree(PersistentObject, MutableMapping):
    """A sorted mapping; keys must be mutually orderable.

    The state is ``{'root': node}``; nodes are separate records, so only
    the nodes on the path of a lookup are loaded.  ``pop`` and ``popitem``
    (the smallest key first) come from ``MutableMapping``, as in 4.3.
    """

    __slots__ = ['root']

    root_is = BNode     # attribute type, for QP-style spec checkers (4.3)

    def __init__(self, node_constructor=BNode16):
        if not (isinstance(node_constructor, type)
                and issubclass(node_constructor, BNode)):
            raise NodeClassError(
                'BTree(node_constructor) takes a BNode class such as BNode16,'
                ' not %r' % (node_constructor,))
        self.root = node_constructor()

    # -- lookups -----------------------------------------------------------

    # The hot methods take their globals as keyword-only defaults (read
    # as fast locals); callers never pass them.

    def get(self, key, default=None, *, _bisect=bisect_left, _first=_first,
            _len=len):
        node = self.root
        while True:
            items = node.items
            i = _bisect(items, key, key=_first)
            if i < _len(items):
                item = items[i]
                if item[0] == key:
                    return item[1]
            nodes = node.nodes
            if nodes is None:
                return default
            node = nodes[i]

    def __getitem__(self, key, *, _bisect=bisect_left, _first=_first,
                    _len=len):
        # The loop of get(), repeated: lookups are the hot path.
        node = self.root
        while True:
            items = node.items
            i = _bisect(items, key, key=_first)
            if i < _len(items):
                item = items[i]
                if item[0] == key:
                    return item[1]
            nodes = node.nodes
            if nodes is None:
                raise KeyError(key)
            node = nodes[i]

    def __contains__(self, key):
        return self.get(key, _MISSING) is not _MISSING

    has_key = __contains__

    def __len__(self):
        return self.root.get_count()

    def __bool__(self):
        return bool(self.root.items)

    __nonzero__ = __bool__      # the Python 2 name, still defined by 4.3

    # -- changes -----------------------------------------------------------

    def add(self, key, value=True, *, _bisect=bisect_left, _first=_first,
            _len=len, _unsaved=UNSAVED):
        node = self.root
        if _len(node.items) == node.max_items:
            node = self._grow_root(node)
        # BNode.insert_item, inlined: inserts are a hot path.
        while True:
            items = node.items
            i = _bisect(items, key, key=_first)
            if i < _len(items) and items[i][0] == key:
                if node._p_status != _unsaved:
                    node._p_note_change()
                items[i] = (key, value)
                return
            nodes = node.nodes
            if nodes is None:
                if node._p_status != _unsaved:
                    node._p_note_change()
                items.insert(i, (key, value))
                return
            child = nodes[i]
            if _len(child.items) == child.max_items:
                node.split_child(i, child)
                middle = items[i][0]
                if key == middle:
                    items[i] = (key, value)
                    return
                if middle < key:
                    child = nodes[i + 1]
            node = child

    __setitem__ = add

    def _grow_root(self, root):
        """Split the full ``root`` under a new root, which it returns."""
        new_root = root.__class__()
        new_root.nodes = [root]
        new_root.split_child(0, root)
        self.root = new_root
        return new_root

    def __delitem__(self, key):
        root = self.root
        try:
            root.delete(key)
        finally:
            # A merge may have emptied the root even if the key is missing.
            if not root.items and root.nodes is not None:
                child = root.nodes[0]
                root.items = child.items
                root.nodes = child.nodes

    def setdefault(self, key, value):
        found = self.get(key, _MISSING)
        if found is not _MISSING:
            return found
        self.add(key, value)
        return value

    def update(self, *args, **kwargs):
        if len(args) > 1:
            raise TypeError('update expected at most 1 positional argument, '
                            'got %d' % len(args))
        if args:
            other = args[0]
            if hasattr(other, 'iteritems'):
                pairs = other.iteritems()
            elif hasattr(other, 'items'):
                pairs = other.items()
            else:
                pairs = other
            for key, value in pairs:
                self.add(key, value)
        for key, value in kwargs.items():
            self.add(key, value)

    def clear(self):
        self.root = self.root.__class__()

    def note_change_of_bnode_containing_key(self, key):
        self[key] = self[key]

    # -- iteration ---------------------------------------------------------

    def __iter__(self):
        for item in self.root:
            yield item[0]

    iterkeys = __iter__

    def __reversed__(self):
        for item in reversed(self.root):
            yield item[0]

    def keys(self):
        return [item[0] for item in self.root]

    def values(self):
        return [item[1] for item in self.root]

    def items(self):
        return list(self.root)

    def itervalues(self):
        for item in self.root:
            yield item[1]

    def iteritems(self):
        return iter(self.root)

    def items_backward(self):
        return reversed(self.root)

    def items_from(self, key, closed=True):
        return self.root.iter_from(key, closed)

    def items_backward_from(self, key, closed=False):
        return self.root.iter_backward_from(key, closed)

    def items_range(self, start, end, closed_start=True, closed_end=False):
        """Items from ``start`` to ``end``; descending if ``start > end``."""
        if end < start:
            for item in self.root.iter_backward_from(start, closed_start):
                if item[0] < end or (item[0] == end and not closed_end):
                    return
                yield item
        else:
            for item in self.root.iter_from(start, closed_start):
                if end < item[0] or (item[0] == end and not closed_end):
                    return
                yield item

    def get_min_item(self):
        if not self.root.items:
            raise EmptyBTreeError('empty BTree has no smallest item')
        return self.root.get_min_item()

    def get_max_item(self):
        if not self.root.items:
            raise EmptyBTreeError('empty BTree has no largest item')
        return self.root.get_max_item()

    # -- shape -------------------------------------------------------------

    def get_depth(self):
        return self.root.get_level() + 1

    def get_node_count(self):
        return self.root.get_node_count()

    def set_bnode_minimum_degree(self, degree):
        """Rebuild with nodes of minimum degree ``degree``; True if changed."""
        node_class = _node_classes.get(degree)
        if node_class is None:
            raise ValueError('no BNode class of minimum degree %r; choose '
                             'one of %s' % (degree, sorted(_node_classes)))
        if self.root.__class__ is node_class:
            return False
        items = list(self.root)
        self.root = node_class()
        for key, value in items:
            self.add(key, value)
        return True

    # -- comparison --------------------------------------------------------

    __hash__ = None

    def __eq__(self, other):
        if not isinstance(other, (BTree, Mapping)):
            return NotImplemented
        if len(self) != len(other):
            return False
        missing = _MISSING
        for key, value in self.iteritems():
            found = other.get(key, missing)
            if found is missing or found != value:
                return False
        return True

    def __ne__(self, other):
        result = self.__eq__(other)
        if result is NotImplemented:
            return result
        return not result

    def _check(self):
        """Raise AssertionError if the tree breaks one of its invariants."""
        root = self.root
        leaf_depths = set()
        t = root.minimum_degree
        keys = []

        def visit(node, depth, low, high):
            if node.minimum_degree != t:
                raise AssertionError('mixed node classes')
            items = node.items
            if len(items) > 2 * t - 1:
                raise AssertionError('node with %d items' % len(items))
            if node is not root and len(items) < t - 1:
                raise AssertionError('node with %d items' % len(items))
            for item in items:
                if not isinstance(item, tuple) or len(item) != 2:
                    raise AssertionError('bad item %r' % (item,))
            node_keys = [item[0] for item in items]
            for a, b in zip(node_keys, node_keys[1:]):
                if not a < b:
                    raise AssertionError('keys out of order: %r %r' % (a, b))
            for key in node_keys:
                if (low is not _MISSING and not low < key) or (
                        high is not _MISSING and not key < high):
                    raise AssertionError('key %r outside its subtree' % key)
            if node.nodes is None:
                leaf_depths.add(depth)
                keys.extend(node_keys)
                return
            if len(node.nodes) != len(items) + 1:
                raise AssertionError('%d items but %d children'
                                     % (len(items), len(node.nodes)))
            bounds = [low] + node_keys + [high]
            for i, child in enumerate(node.nodes):
                visit(child, depth + 1, bounds[i], bounds[i + 1])
                if i < len(node_keys):
                    keys.append(node_keys[i])

        visit(root, 0, _MISSING, _MISSING)
        if len(leaf_depths) > 1:
            raise AssertionError('leaves at depths %s' % sorted(leaf_depths))
        if not root.items and root.nodes is not None:
            raise AssertionError('empty root with children')
        for a, b in zip(keys, keys[1:]):
            if not a < b:
                raise AssertionError('in-order keys out of order')


# The pure-Python walks stay the reference (and the fallback the compiled
# ones hand keyword calls to); tests compare the two.
_py_get = BTree.get
_py_getitem = BTree.__getitem__
_py_add = BTree.add
_py_contains = BTree.__contains__

_compiled = (None, None, None, None)
if _speedups is not None:
    _compiled = _speedups.btree_methods(
        BTree, BNode, _py_get, _py_getitem, _py_add, BNode.split_child,
        _py_contains)
BTree.get = _use_compiled('btree_get', _py_get, _compiled[0])
BTree.__getitem__ = _use_compiled('btree_getitem', _py_getitem, _compiled[1])
BTree.add = BTree.__setitem__ = _use_compiled('btree_add', _py_add,
                                              _compiled[2])
BTree.__contains__ = BTree.has_key = _use_compiled(
    'btree_contains', _py_contains, _compiled[3])
del _compiled
if _speedups is not None:
    # tree[key], tree[key] = value and key in tree straight into the
    # compiled walk, without CPython's per-call lookup of the method (only
    # while BTree's own methods are the compiled ones).
    _speedups.btree_slots(BTree)
