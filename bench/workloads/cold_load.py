"""Cold-load objects: open the shop file, walk its BTree, touch n Items.

Every Item (and the BNodes above it) starts as an unloaded ghost, so this is
record reading plus unpickling plus object creation.
Params: path, n.  $DURUS_BENCH_UNPICKLE_POLICY ('safe' or 'trusted') picks
the unpickling policy on our side (Durus 4.3 has none).  Metrics: load_s,
loads_per_s, loads (state loads done), gc_s (of load_s, the time inside the
cyclic garbage collector's collections, from gc.callbacks), outside_gc_s
(load_s - gc_s), full_collections (generation-2 collections in the walk).
"""

import gc
import os

from durus.connection import Connection
from durus.file_storage import FileStorage

from _bench import clock, emit, params, side


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
    spent = [0.0, 0.0]
    full = [0]

    def timing(phase, info):
        if phase == 'start':
            spent[1] = clock()
        else:
            spent[0] += clock() - spent[1]
            if info['generation'] == 2:
                full[0] += 1

    gc.callbacks.append(timing)
    start = clock()
    seen = 0
    for _key, item in tree.iteritems():
        item.name
        seen += 1
        if seen >= n:
            break
    elapsed = clock() - start
    gc.callbacks.remove(timing)
    loads = connection.get_load_count() - before
    storage.close()
    emit(load_s=elapsed, loads_per_s=loads / elapsed, loads=loads,
         gc_s=spent[0], outside_gc_s=elapsed - spent[0],
         full_collections=full[0])


if __name__ == '__main__':
    main()
