"""Open a database file in-process and get the root.

Params: path, copy (bool), repeats.  With copy, the file is first copied
into a fresh temporary directory, so nothing saved beside the original (an
index file, for instance) can help the first open; the first open and the
best of the later opens are reported separately.
Metrics: first_open_s, later_open_s (best of repeats - 1, or of repeats
when copy is false, in which case first_open_s is the first of them);
first_close_s and first_session_s (open + root + close) show work a
storage defers from opening to closing, such as saving an index.
"""

import os
import shutil
import tempfile

from durus.connection import Connection
from durus.file_storage import FileStorage

from _bench import clock, emit, params


def open_once(path):
    """(seconds to open and get the root, seconds to close)."""
    start = clock()
    storage = FileStorage(path)
    root = Connection(storage).get_root()
    len(root)
    opened = clock()
    storage.close()
    return opened - start, clock() - opened


def main():
    p = params()
    repeats = p.get('repeats', 3)
    with tempfile.TemporaryDirectory(dir=p.get('tmpdir')) as tmp:
        path = p['path']
        if p.get('copy'):
            path = os.path.join(tmp, os.path.basename(path))
            shutil.copyfile(p['path'], path)
        times = [open_once(path) for _ in range(repeats)]
    opens = [t[0] for t in times]
    emit(first_open_s=opens[0], later_open_s=min(opens[1:] or opens),
         first_close_s=times[0][1], first_session_s=sum(times[0]))


if __name__ == '__main__':
    main()
