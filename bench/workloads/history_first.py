"""The shell's :history on a never-packed file: the first call of a session
(one pass over every transaction, durus.file_history.RecordHistory) and a
later one (only what was appended since: nothing here).

Ours only: Durus 4.3 has no history.  Params: path (a never-packed file).
Metrics: first_history_s, later_history_s, states (of the object shown).
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
        states = len(session_history(session).versions(
            session.root['accounts']._p_oid))
        emit(first_history_s=first, later_history_s=later, states=states)
    finally:
        session.close()


if __name__ == '__main__':
    main()
