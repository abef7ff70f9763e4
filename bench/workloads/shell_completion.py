"""One tab completion after `[` on the 1M-key BTree, through the shell's
completion API (durus_shell.completion.suggest), in-process.

The file is opened fresh, so the first completion finds every BTree node
still a ghost: that first (cold) completion is the reported number.
Params: path, repeats.  Metrics: complete_s (the cold one),
warm_complete_s (best of the later ones), suggestions.
"""

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus_shell.completion import suggest

from _bench import clock, emit, params

TEXT = "root['items']["


def main():
    p = params()
    storage = FileStorage(p['path'], readonly=True)
    connection = Connection(storage)
    namespace = {'root': connection.get_root()}
    times = []
    for _ in range(max(2, p.get('repeats', 5))):
        start = clock()
        suggestions = suggest(TEXT, namespace)
        times.append(clock() - start)
        if not suggestions:
            raise SystemExit('no completion offered for %r' % TEXT)
    storage.close()
    emit(complete_s=times[0], warm_complete_s=min(times[1:]),
         suggestions=len(suggestions))


if __name__ == '__main__':
    main()
