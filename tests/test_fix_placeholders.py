"""A database whose application classes cannot be imported still opens,
browses and commits; its placeholders refuse changes (subprocess without
tests/ on sys.path, so fixture_app is not importable)."""

import json
import os
import subprocess
import sys

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r'''
import json, sys
assert 'fixture_app' not in sys.modules
from durus.error import PlaceholderChangeError
from durus.format import open_storage
from durus_shell.session import Session
from durus_shell.ui import RecordingUI
from durus_shell import fix_commands
from durus_shell.commands import run_input, run_command

out = {}
session = Session(open_storage(sys.argv[1]))
user = run_input(session, "root['users'][3]").value
out['repr'] = repr(user)
out['name'] = run_input(session, "root['users'][3].name").value
out['balance'] = run_input(session, "root['users'][3].account.balance").value
out['cached'] = repr(run_input(session, "root['cached']").value)
result = run_input(session, "root['users'][3].name = 'x'")
out['set_error'] = type(result.error).__name__
out['set_message'] = str(result.error)
ui = RecordingUI()
run_command(session, ":touch root['users'][3]", ui)
out['touch'] = run_command(session, ":touch root['users'][3]", ui).traceback
result = run_input(session, "type(root['users'][3])()")
out['create_error'] = type(result.error).__name__
run_command(session, ':ls root["users"][3]', ui)
run_command(session, ':find User --limit 2', ui)
out['found'] = len(session.namespace['_'])
out['browse'] = ui.text
# Everything else stays editable, including references to placeholders.
run_input(session, "root['log'].append('fixed'); root['keep'] = root['users'][4]")
session.commit()
# A placeholder that got into the changed set is refused at commit.
ph = root = run_input(session, "root['users'][5]").value
ph._p_status = 1
session.connection.changed[ph._p_oid] = ph
try:
    session.commit()
except PlaceholderChangeError as error:
    out['commit_error'] = str(error)
session.close()
print(json.dumps(out))
'''


def test_unimportable_classes_open_as_placeholders(fixture_copy, tmp_path,
                                                   manifest):
    path = fixture_copy('shelf.durus')
    env = dict(os.environ, PYTHONPATH=ROOT_DIR)
    child = subprocess.run([sys.executable, '-c', CHILD, path], cwd=str(
        tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout.strip().splitlines()[-1])
    assert out['repr'].startswith('<fixture_app.models.User ')
    assert 'placeholder' in out['repr']
    assert out['name'] == 'user3'
    assert out['balance'] == manifest['users']['3']['balance']
    assert 'fixture_app.models.Cached' in out['cached']
    assert out['set_error'] == 'PlaceholderChangeError'
    assert 'fixture_app.models.User' in out['set_message']
    assert '--path' in out['set_message']
    assert 'PlaceholderChangeError' in out['touch']
    assert out['create_error'] == 'PlaceholderChangeError'
    assert '.email' in out['browse'] and 'user3' in out['browse']
    assert out['found'] == 2
    assert 'cannot commit' in out['commit_error']
    assert '--path' in out['commit_error']
    # The commit of the other edits is readable with the real classes.
    from durus.connection import Connection
    from durus.format import open_storage
    from fixture_app.models import User
    storage = open_storage(path)
    try:
        root = Connection(storage).get_root()
        assert root['log'][-1] == 'fixed'
        assert isinstance(root['keep'], User) and root['keep'].name == 'user4'
        assert root['users'][5].name == 'user5'
    finally:
        storage.close()
