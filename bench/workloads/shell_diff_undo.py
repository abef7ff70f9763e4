"""The shell's :diff and :undo after one statement changed many objects.

A shell Session (durus_shell.session) on a file of `changed` Items (made in
a temporary directory) runs one statement that changes the price of every
Item, then the commands `:diff` and `:undo` exactly as typed at the prompt
(output to a silent UI).
Params: changed.  Metrics: diff_s, undo_s, changed.
"""

import os
import tempfile

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage

from _bench import clock, emit, params
from bench_models import Item

STATEMENT = 'for _item in root["items"].itervalues(): _item.price = _item.price + 1'


def make_file(path, n):
    storage = FileStorage(path)
    connection = Connection(storage)
    connection.get_root()['items'] = tree = BTree()
    for i in range(n):
        tree[i] = Item(i)
    connection.commit()
    storage.close()


def timed_command(session, line):
    from durus_shell.commands import run_input
    from durus_shell.ui import SilentUI
    start = clock()
    result = run_input(session, line, SilentUI())
    elapsed = clock() - start
    if result.kind != 'command':
        raise SystemExit('%s failed: %s' % (line, result.traceback))
    return elapsed


def main():
    from durus_shell.commands import run_input
    from durus_shell.session import Session
    n = params().get('changed', 10000)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'fix.durus')
        make_file(path, n)
        session = Session(FileStorage(path))
        try:
            run_input(session, 'root["items"].get_min_item()')  # load the tree a little
            result = run_input(session, STATEMENT)
            if result.kind == 'error' or session.change_count() != n:
                raise SystemExit('statement changed %d objects, not %d: %s' % (
                    session.change_count(), n, getattr(result, 'traceback', '')))
            diff_s = timed_command(session, ':diff')
            undo_s = timed_command(session, ':undo')
            if session.change_count() != 0:
                raise SystemExit(':undo left %d changed objects' % session.change_count())
        finally:
            session.close()
    emit(diff_s=diff_s, undo_s=undo_s, changed=n)


if __name__ == '__main__':
    main()
