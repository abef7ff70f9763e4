"""How an Item holds its loaded state, and what the collector then pays:
a diagnostic, not a row.

Runs bench/workloads/cold_load_floor.py (the same objects a 100k cold
load leaves, made with no durus) with each ``state`` kind in turn, in
fresh processes, alternating, and prints the medians:

* ``dict``: a dict object set as ``__dict__`` (what 4.3 and ours leave);
* ``inline``: the same values set attribute by attribute, which CPython
  (3.11-3.13) keeps inside the instance, no dict object;
* ``inline_switch``: inline, then the object's class switched, as a
  loader that marks loaded objects by class does (ours: the hook
  variants): CPython makes the dict object at the switch.

    python bench/floor_state_kinds.py [REPS]
"""

import json
import os
import subprocess
import sys
from statistics import median

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, 'workloads', 'cold_load_floor.py')
KINDS = ('dict', 'inline', 'inline_switch')


def one_run(kind):
    result = subprocess.run(
        [sys.executable, WORKLOAD, json.dumps({'state': kind})],
        capture_output=True, text=True, cwd=os.path.dirname(WORKLOAD),
        timeout=300, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])['metrics']


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    runs = {kind: [] for kind in KINDS}
    for _ in range(reps):
        for kind in KINDS:
            runs[kind].append(one_run(kind))
    print('%-14s %9s %9s %9s %6s %9s' % ('state', 'make_s', 'gc_s',
                                         'outside', 'fulls', 'tracked'))
    for kind in KINDS:
        got = runs[kind]
        make = median(r['make_s'] for r in got)
        in_gc = median(r['gc_s'] for r in got)
        outside = median(r['make_s'] - r['gc_s'] for r in got)
        print('%-14s %9.3f %9.3f %9.3f %6d %9d' % (
            kind, make, in_gc, outside,
            median(r['full_collections'] for r in got),
            median(r['tracked'] for r in got)))


if __name__ == '__main__':
    main()
