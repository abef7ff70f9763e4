"""The shell after one statement loaded many objects, and its load cost.

On a copy of the shop file (its Items hold a list each, so each could be
changed in place), a shell Session (durus_shell.session) runs a statement
that loads `n` Items, then: `:status`, `:diff`, a commit of 2 changed
objects (`:commit`, answered yes), and the quit check with nothing
pending.  The loading statement's time is reported too (it includes the
shell's look at what it touched, see docs/shell.md).  Separately, a cold
walk of `cold_n` Items through a Session's connection and through a plain
Connection on the same file, in process CPU seconds (the load path must
be the same).
Params: path, n, cold_n.  Metrics: session_load_s, plain_load_s,
statement_s, plain_walk_s (the statement's walk through a plain
Connection), status_s, diff_s, commit_s, quit_check_s, loaded.
"""

import gc
import os
import shutil
import tempfile
import time

from durus.connection import Connection
from durus.file_storage import FileStorage

from _bench import clock, emit, params

WALK = ('_n = 0\n'
        'for _item in root["items"].itervalues():\n'
        '    _item.name\n'
        '    _n += 1\n'
        '    if _n >= %d: break\n')


def cold_walk(connection, n, clock=clock):
    tree = connection.get_root()['items']
    start = clock()
    seen = 0
    for item in tree.itervalues():
        item.name
        seen += 1
        if seen >= n:
            break
    return clock() - start


def compare_cold_loads(path, n, rounds=3):
    """Best of ``rounds`` cold walks each way, alternating, every
    connection freed before the next (garbage left by one walk would
    slow the other).  Process CPU time: the two load paths are compared,
    not how busy the machine was meanwhile."""
    from durus_shell.session import Session
    plain = session = None
    for _ in range(rounds):
        storage = FileStorage(path, readonly=True)
        shell = Session(storage, cache_size=max(100000, 2 * n))
        elapsed = cold_walk(shell.connection, n, time.process_time)
        shell.close()
        del shell, storage
        gc.collect()
        session = elapsed if session is None else min(session, elapsed)
        storage = FileStorage(path, readonly=True)
        connection = Connection(storage, cache_size=max(100000, 2 * n))
        elapsed = cold_walk(connection, n, time.process_time)
        storage.close()
        del connection, storage
        gc.collect()
        plain = elapsed if plain is None else min(plain, elapsed)
    return session, plain


def timed(session, line, ui):
    from durus_shell.commands import run_input
    start = clock()
    result = run_input(session, line, ui)
    elapsed = clock() - start
    if result.failed:
        raise SystemExit('%s failed: %s' % (line, result.traceback))
    return elapsed


def main():
    from durus_shell.session import Session
    from durus_shell.ui import RecordingUI
    p = params()
    n = p.get('n', 100000)
    cold_n = p.get('cold_n', 100000)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'shop.durus')
        shutil.copyfile(p['path'], path)
        session_load_s, plain_s = compare_cold_loads(path, cold_n)
        # The loading statement's walk without the shell, for scale.
        storage = FileStorage(path, readonly=True)
        connection = Connection(storage, cache_size=max(100000, 2 * n))
        plain_walk_s = cold_walk(connection, n)
        storage.close()
        del connection, storage
        gc.collect()
        session = Session(FileStorage(path), cache_size=max(100000, 2 * n))
        try:
            ui = RecordingUI(answers=['y'])
            statement_s = timed(session, WALK % n, ui)
            loaded = session.connection.get_cache_count()
            status_s = timed(session, ':status', ui)
            diff_s = timed(session, ':diff', ui)
            timed(session, 'root["items"][1].price = 1.5; '
                           'root["items"][2].price = 2.5', ui)
            commit_s = timed(session, ':commit', ui)
            if 'Committed 2 objects.' not in ui.text:
                raise SystemExit('the commit did not write 2 objects:\n'
                                 + ui.text[-2000:])
            start = clock()
            pending = session.has_unsaved_work()
            quit_check_s = clock() - start
            if pending:
                raise SystemExit('work pending after the commit')
        finally:
            session.close()
    emit(session_load_s=session_load_s, plain_load_s=plain_s,
         statement_s=statement_s, plain_walk_s=plain_walk_s, status_s=status_s, diff_s=diff_s,
         commit_s=commit_s, quit_check_s=quit_check_s, loaded=loaded)


if __name__ == '__main__':
    main()
