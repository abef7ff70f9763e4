"""The floor under the cold-load row: the same objects, made with no durus.

A bare Python loop leaves alive what a BTree walk loading n Items leaves
(bench/workloads/cold_load.py): per leaf node of 15 items the node and
its items list; per Item a ghost with the four persistent slots, its
8-byte oid, a weak reference filed by oid with a callback (the cache), an
(int key, item) tuple in the node's list; then its state dict made the
way unpickling makes one (fresh int, str, float, list of fresh strs) as
its __dict__, and a strong reference in a map by id (recently used
objects).  No records are read, nothing is decompressed or decoded.

Imports nothing from durus, so both interpreters run the same loop; the
row shows it beside 4.3's cold-load time: even a loader that did nothing
but make these objects pays this, most of it in the cyclic garbage
collector (gc_s), which traverses everything the walk leaves alive.

Param ``state`` (a diagnostic, bench/floor_state_kinds.py; the row uses
the default) says how each Item holds its state: ``dict`` (the default:
a dict object made first and set as ``__dict__``, as 4.3's loader and
ours leave it), ``inline`` (the same values set attribute by attribute,
so CPython keeps them in the instance without a dict object), or
``inline_switch`` (inline, then the item's class switched to a sibling
class, as a loader that marks loaded objects by class would do: CPython
makes the dict object at the switch).
Params: n, state.  Metrics: make_s, gc_s (time inside collections during the
loop), full_collections, tracked (GC-tracked objects after the loop).
"""

import gc
import weakref

from _bench import GcTime, clock, emit, params

ITEMS_PER_NODE = 15


class Base(object):
    __slots__ = ['_p_status', '_p_serial', '_p_connection', '_p_oid',
                 '__weakref__']


class Item(Base):
    pass


class LoadedItem(Item):
    """A sibling class to switch loaded items to (state=inline_switch)."""


class Node(Base):
    __slots__ = ['items', 'nodes']


class Ref(weakref.ref):
    __slots__ = ('key',)


class Cache(object):
    def __init__(self):
        self.mapping = {}
        self.dead = []
        self.recent = {}

    def died(self, ref):
        self.dead.append(ref.key)


def make(n, connection, cache, state_kind='dict'):
    callback = cache.died
    mapping = cache.mapping
    recent = cache.recent
    nodes = []
    for first in range(0, n, ITEMS_PER_NODE):
        node = Node()
        node.items = []
        node.nodes = None
        node._p_status = 0
        node._p_serial = 1
        node._p_connection = connection
        node._p_oid = (first + 10 ** 7).to_bytes(8, 'big')
        nodes.append(node)
        # The node's state names its items: ghosts, filed in the cache.
        for number in range(first, min(first + ITEMS_PER_NODE, n)):
            item = Item()
            oid = number.to_bytes(8, 'big')
            item._p_status = -1
            item._p_serial = 0
            item._p_connection = connection
            item._p_oid = oid
            ref = Ref(item, callback)
            ref.key = oid
            mapping[oid] = ref
            node.items.append((int.from_bytes(oid, 'big'), item))
        # Then each item's state, with fresh objects as unpickling makes.
        for key, item in node.items:
            number = int.from_bytes(item._p_oid, 'big')
            name = ('item %d' % key).encode().decode()
            price = (key % 1000) / 10.0
            tags = []
            if key % 2:
                tags.append(b'red'.decode())
                tags.append(b'blue'.decode())
            else:
                tags.append(b'green'.decode())
            if state_kind == 'dict':    # filled as unpickling fills it
                state = {}
                state['number'] = number
                state['name'] = name
                state['price'] = price
                state['tags'] = tags
                item.__dict__ = state
            else:
                item.number = number
                item.name = name
                item.price = price
                item.tags = tags
                if state_kind == 'inline_switch':
                    item.__class__ = LoadedItem
            item._p_status = 0
            item._p_serial = 1
            recent[id(item)] = item
    return nodes


def main():
    p = params()
    n = p.get('n', 100000)
    state_kind = p.get('state', 'dict')
    if state_kind not in ('dict', 'inline', 'inline_switch'):
        raise SystemExit('state: dict, inline or inline_switch')
    connection = object()
    cache = Cache()
    with GcTime() as in_gc:
        start = clock()
        nodes = make(n, connection, cache, state_kind)
        elapsed = clock() - start
    tracked = len(gc.get_objects())
    emit(make_s=elapsed, gc_s=in_gc.seconds,
         full_collections=in_gc.full_collections,
         tracked=tracked, nodes=len(nodes))


if __name__ == '__main__':
    main()
