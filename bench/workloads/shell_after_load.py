"""The shell after one statement loaded many objects, and its load cost.

On a copy of the shop file (its Items hold a list each, so each could be
changed in place), a shell Session (durus_shell.session) runs a statement
that loads `n` Items, then: `:status`, `:diff`, a commit of 2 changed
objects (`:commit`, answered yes), and the quit check with nothing
pending.  The loading statement's time is reported too (it includes the
shell's look at what it touched, see docs/shell.md).  Separately, a cold
walk of `cold_n` Items typed as one statement in a Session (the shell's
per-statement look for in-place edits included: what an operator pays)
and the same statement run the same way (module-level code) through a
plain Connection on the same file, in process CPU seconds; the walk as a
function through a plain Connection is reported beside them.
Params: path, n, cold_n.  Metrics: session_load_s, plain_load_s,
statement_s, plain_walk_s (the statement's walk through a plain
Connection), plain_function_load_s (the cold walk as a function through
a plain Connection), status_s, diff_s, commit_s, quit_check_s, loaded.
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


def plain_statement_walk(connection, n, clock=clock):
    """The statement the Session runs, compiled and run the same way
    (module-level code in a namespace holding ``root``) against a plain
    Connection: the like-for-like floor of the Session's walk, whose
    names live in a dict as every statement typed at a prompt has them."""
    namespace = {'root': connection.get_root()}
    code = compile(WALK % n, '<statement>', 'exec')
    namespace['root']['items']
    start = clock()
    exec(code, namespace)
    return clock() - start


def statement_walk(session, n, clock=clock):
    """The same walk typed as one statement: what an operator pays,
    the shell's look at what the statement touched included."""
    from durus_shell.commands import run_input
    from durus_shell.ui import RecordingUI
    session.connection.get_root()['items']
    start = clock()
    result = run_input(session, WALK % n, RecordingUI())
    elapsed = clock() - start
    if result.failed:
        raise SystemExit('the walk failed: %s' % (result.traceback,))
    return elapsed


def compare_cold_loads(path, n, rounds=3):
    """Best of ``rounds`` cold walks each way, alternating, every
    connection freed before the next (garbage left by one walk would
    slow the other): the statement in a Session, the same statement run
    the same way through a plain Connection, and the walk as a function
    through a plain Connection (fast local names: for scale).  Process
    CPU time: the load paths are compared, not how busy the machine was
    meanwhile."""
    from durus_shell.session import Session
    best = {'session': None, 'plain': None, 'function': None}

    def keep(name, elapsed):
        if best[name] is None or elapsed < best[name]:
            best[name] = elapsed

    for _ in range(rounds):
        storage = FileStorage(path, readonly=True)
        shell = Session(storage, cache_size=max(100000, 2 * n))
        keep('session', statement_walk(shell, n, time.process_time))
        shell.close()
        del shell, storage
        gc.collect()
        for name, walk in (('plain', plain_statement_walk),
                           ('function', cold_walk)):
            storage = FileStorage(path, readonly=True)
            connection = Connection(storage, cache_size=max(100000, 2 * n))
            keep(name, walk(connection, n, time.process_time))
            storage.close()
            del connection, storage
            gc.collect()
    return best['session'], best['plain'], best['function']


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
        session_load_s, plain_s, plain_function_s = compare_cold_loads(
            path, cold_n)
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
         plain_function_load_s=plain_function_s,
         statement_s=statement_s, plain_walk_s=plain_walk_s, status_s=status_s, diff_s=diff_s,
         commit_s=commit_s, quit_check_s=quit_check_s, loaded=loaded)


if __name__ == '__main__':
    main()
