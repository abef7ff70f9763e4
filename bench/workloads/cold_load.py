"""Cold-load objects: open the shop file, walk its BTree, touch n Items.

Every Item (and the BNodes above it) starts as an unloaded ghost, so this is
record reading plus unpickling plus object creation.
Params: path, n.  $DURUS_BENCH_UNPICKLE_POLICY ('safe' or 'trusted') picks
the unpickling policy on our side (Durus 4.3 has none).  Metrics: load_s,
loads_per_s, loads (state loads done), gc_s (of load_s, the time inside the
cyclic garbage collector's collections, from gc.callbacks), outside_gc_s
(load_s - gc_s), full_collections (generation-2 collections in the walk).
"""

import os

from durus.connection import Connection
from durus.file_storage import FileStorage

from _bench import GcTime, clock, emit, params, side


def main():
    p = params()
    n = p.get('n', 100000)
    storage = FileStorage(p['path'], readonly=True)
    options = {}
    policy = os.environ.get('DURUS_BENCH_UNPICKLE_POLICY')
    if policy and side() == 'ours':
        options['unpickle_policy'] = policy
    connection = Connection(storage, cache_size=max(100000, 2 * n),
                            **options)
    tree = connection.get_root()['items']
    before = connection.get_load_count()
    with GcTime() as in_gc:
        start = clock()
        seen = 0
        for _key, item in tree.iteritems():
            item.name
            seen += 1
            if seen >= n:
                break
        elapsed = clock() - start
    loads = connection.get_load_count() - before
    storage.close()
    emit(load_s=elapsed, loads_per_s=loads / elapsed, loads=loads,
         gc_s=in_gc.seconds, outside_gc_s=elapsed - in_gc.seconds,
         full_collections=in_gc.full_collections)


if __name__ == '__main__':
    main()
