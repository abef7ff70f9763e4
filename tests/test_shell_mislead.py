"""Issue 14, section 0: the shell never misleads the operator.

In-process tests of each item (the pty ones are in
tests/test_shell_mislead_pty.py).
"""

import io
import subprocess
import sys
import os

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus_shell.script import run_script, split_script
from durus_shell.session import Session

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def make_file(path, **items):
    storage = FileStorage(str(path))
    connection = Connection(storage)
    root = connection.get_root()
    for key, value in items.items():
        root[key] = value
    connection.commit()
    storage.close()
    return str(path)


def value_in(path, key):
    storage = FileStorage(path, readonly=True)
    try:
        return Connection(storage).get_root()[key]
    finally:
        storage.close()


# -- script mode runs each statement of a line once --------------------------

def test_statements_sharing_a_line_are_separate_units():
    units = split_script("a = 1; a\nb = [1,\n 2]; b\n")
    assert [u.source.strip() for u in units] == [
        'a = 1', 'a', 'b = [1,\n 2]', 'b']
    assert [u.lineno for u in units] == [1, 1, 2, 3]


def test_augmented_assignment_on_a_shared_line_runs_once(tmp_path, capsys):
    path = make_file(tmp_path / 'n.durus', n=42)
    session = Session(FileStorage(path), mode='script')
    out, err = io.StringIO(), io.StringIO()
    status = run_script(session, "root['n'] += 1; print(root['n'])",
                        '<c>', out=out, err=err, commit=True)
    session.close()
    assert status == 0, err.getvalue()
    assert capsys.readouterr().out == '43\n'
    assert out.getvalue() == 'Committed 1 object.\n'
    assert value_in(path, 'n') == 43


def test_c_prints_a_shared_line_value_once(tmp_path):
    path = make_file(tmp_path / 'n.durus', n=42)
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', path, '-c', 'a = 1; a; "é"'],
        capture_output=True, text=True, timeout=60, cwd=TESTS_DIR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['1', "'é'"]
