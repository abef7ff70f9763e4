"""Pack a copy of a file that is half garbage.

Params: path.  Metrics: pack_s, size_before, size_after.
"""

import os
import shutil
import tempfile

from durus.connection import Connection
from durus.file_storage import FileStorage

from _bench import clock, emit, params


def main():
    p = params()
    with tempfile.TemporaryDirectory(dir=p.get('tmpdir')) as tmp:
        path = os.path.join(tmp, 'pack.durus')
        shutil.copyfile(p['path'], path)
        storage = FileStorage(path)
        connection = Connection(storage)
        start = clock()
        connection.pack()
        elapsed = clock() - start
        storage.close()
        size_after = os.path.getsize(path)
    emit(pack_s=elapsed, size_before=os.path.getsize(p['path']),
         size_after=size_after)


if __name__ == '__main__':
    main()
