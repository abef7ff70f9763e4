""":history, :revert and :rename-class in a real pseudo-terminal."""

import pexpect

from durus.file_storage import FileStorage
from durus.record import class_path
from test_fix_terminal import PROMPT, spawn
from test_history_commands import make_versions


def test_history_show_revert_commit_in_a_terminal(tmp_path):
    path = make_versions(FileStorage, tmp_path / 'db.durus')
    child = spawn(path)
    try:
        child.expect(PROMPT)
        child.sendline(":history root['user']")
        child.expect('4 states kept')
        child.expect(r".name: 'ann' -> 'Ann'")
        child.expect(r'#4 .*\(the committed state\)')
        child.expect(PROMPT)
        child.sendline(":history root['user'] --show 1")
        child.expect("name = 'ann'")
        child.expect(PROMPT)
        child.sendline(":revert root['user'] 1")
        child.expect('uncommitted')
        child.expect(PROMPT)
        child.sendline(':diff')
        child.expect(r".name: 'Anne' -> 'ann'")
        child.expect(PROMPT)
        child.sendline(':commit')
        child.expect(r'Commit 1 object\?')
        child.sendline('y')
        child.expect(PROMPT)
        child.sendline(":history root['user']")
        child.expect('5 states kept')
        child.expect(PROMPT)
        child.sendline(':rename-class fixture_app.models:User '
                       'moved_h17.models:User')
        child.expect('2 records to rewrite')
        child.expect(r'Rewrite 2 records in one commit\?')
        child.sendline('y')
        child.expect('restart durus-shell')
        child.expect(PROMPT)
        child.sendline(':quit')
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    storage = FileStorage(path, readonly=True)
    try:
        classes = [class_path(record) for _, record in
                   storage.gen_oid_record()]
    finally:
        storage.close()
    assert ('moved_h17.models', 'User') in classes
    assert ('fixture_app.models', 'User') not in classes
