"""The shell's :history on a never-packed file: the first call of a session
(one pass over every transaction, durus.file_history.RecordHistory), the
same again (only what was appended since is read: nothing here, so the
listing is reused), and another object (its own states read and diffed).

Ours only: Durus 4.3 has no history.  Params: path (a never-packed file).
Metrics: first_history_s, later_history_s, other_object_s, states (of
the first object: root['accounts'], a list rewritten by every commit).
"""

from durus.file_storage import FileStorage

from _bench import clock, emit, params


def main():
    from durus_shell.commands import run_command
    from durus_shell.history_commands import session_history
    from durus_shell.session import GATE_READONLY, Session
    from durus_shell.ui import RecordingUI
    p = params()
    session = Session(FileStorage(p['path'], readonly=True),
                      mode=GATE_READONLY)
    try:
        line = ":history root['accounts']"
        start = clock()
        result = run_command(session, line, RecordingUI())
        first = clock() - start
        if result.kind != 'command':
            raise SystemExit(result.traceback)
        start = clock()
        run_command(session, line, RecordingUI())
        later = clock() - start
        start = clock()
        result = run_command(session, ":history root['items']",
                             RecordingUI())
        other = clock() - start
        if result.kind != 'command':
            raise SystemExit(result.traceback)
        states = len(session_history(session).versions(
            session.root['accounts']._p_oid))
        emit(first_history_s=first, later_history_s=later,
             other_object_s=other, states=states)
    finally:
        session.close()


if __name__ == '__main__':
    main()
