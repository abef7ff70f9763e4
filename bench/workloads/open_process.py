"""A whole fresh process that opens a database file and gets the root.

Spawns this same interpreter (same environment) `repeats` times; each child
imports durus, opens the file, reads len(root) and exits.
Params: path, repeats.  Metrics: process_s (best), process_median_s.
"""

import os
import statistics
import subprocess
import sys

from _bench import clock, emit, params

CHILD = ('import sys\n'
         'from durus.connection import Connection\n'
         'from durus.file_storage import FileStorage\n'
         'storage = FileStorage(sys.argv[1])\n'
         'len(Connection(storage).get_root())\n'
         'storage.close()\n')


def main():
    p = params()
    times = []
    for _ in range(p.get('repeats', 5)):
        start = clock()
        # cwd: python -c puts the working directory first on sys.path.
        subprocess.run([sys.executable, '-c', CHILD, os.path.abspath(p['path'])],
                       check=True, cwd=os.path.dirname(os.path.abspath(__file__)))
        times.append(clock() - start)
    emit(process_s=min(times), process_median_s=statistics.median(times))


if __name__ == '__main__':
    main()
