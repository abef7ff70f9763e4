"""How soon :find shows its first screenful when it matches many records.

A file of `matches` Accounts (made in a temporary directory) opened
read-only in a shell Session; `:find Account` runs as typed at the prompt,
through the terminal UI (its output to a dummy terminal of 40 x 120), so
the screenful cut applies.  Then `:more`'s text is built, as the pager
would get it.
Params: matches.  Metrics: first_screen_s (the command's start to its first
printed line), find_s (the whole command), more_s (building :more's text),
found.
"""

import os
import tempfile

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage

from _bench import clock, emit, params
from bench_models import Account


def make_file(path, n):
    storage = FileStorage(path)
    connection = Connection(storage)
    connection.get_root()['accounts'] = tree = BTree()
    for i in range(n):
        tree[i] = Account(i)
        if i % 20000 == 19999:
            connection.commit()
    connection.commit()
    storage.close()


def main():
    from prompt_toolkit.output import DummyOutput
    from durus_shell import app
    from durus_shell.commands import run_command
    from durus_shell.opening import open_file
    from durus_shell.session import Session
    n = params().get('matches', 100000)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'find.durus')
        make_file(path, n)
        target = open_file(path, readonly=True)
        session = Session(target.storage, target, mode='readonly')
        try:
            ui = app.TerminalUI(session, color=False, output=DummyOutput())
            ui.size = lambda: (40, 120)
            printed = []
            ui._print = lambda text: printed.append(clock())
            began = clock()
            with ui.one_screenful():
                run_command(session, ':find Account', ui)
            find_s = clock() - began
            found = len(session.namespace['_'])
            if found != n or not printed:
                raise SystemExit(':find found %d of %d' % (found, n))
            start = clock()
            text = session.last_output
            text = text() if callable(text) else text
            more_s = clock() - start
            if text.count('\n') < n:
                raise SystemExit(':more has %d lines' % text.count('\n'))
            emit(first_screen_s=printed[0] - began,
                 find_s=find_s, more_s=more_s, found=found)
        finally:
            session.close()


if __name__ == '__main__':
    main()
