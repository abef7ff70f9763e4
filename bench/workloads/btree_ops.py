"""BTree: n inserts of shuffled integer keys, then n lookups (shuffled again).

The tree is not attached to a storage: this measures the container itself.
Params: n.  Metrics: insert_s, lookup_s, total_s.
"""

import random

from durus.btree import BTree

from _bench import clock, emit, params


def main():
    n = params().get('n', 100000)
    keys = list(range(n))
    rng = random.Random(42)
    rng.shuffle(keys)
    probes = keys[:]
    rng.shuffle(probes)
    tree = BTree()
    start = clock()
    for key in keys:
        tree[key] = key
    inserted = clock()
    total = 0
    for key in probes:
        total += tree[key]
    looked_up = clock()
    if total != n * (n - 1) // 2 or len(tree) != n:
        raise SystemExit('BTree returned wrong results')
    emit(insert_s=inserted - start, lookup_s=looked_up - inserted,
         total_s=looked_up - start)


if __name__ == '__main__':
    main()
