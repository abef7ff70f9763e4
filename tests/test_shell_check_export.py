"""The shell's :check and :export (durus_shell/check_export_commands.py,
durus_shell/export.py): in-process, round trips of the JSON, and in a
real pseudo-terminal."""

import datetime
import decimal
import json
import os
import sys
import uuid

import pexpect
import pytest

import damaged_files
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.format import open_storage
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus_shell import export
from durus_shell.check_export_commands import split_export_args
from durus_shell.commands import run_command, run_input
from durus_shell.registry import CommandError
from durus_shell.session import Session
from durus_shell.ui import RecordingUI
from server_process import default_signals

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS_DIR = os.path.join(ROOT_DIR, 'tests')


def command(session, line):
    ui = RecordingUI()
    result = run_command(session, line, ui)
    assert result.kind == 'command', result.traceback
    return ui.text


def failing(session, line):
    ui = RecordingUI()
    result = run_command(session, line, ui)
    assert result.kind == 'error', ui.text
    return result.error if hasattr(result, 'error') else ui.text


@pytest.fixture
def session(fixture_copy):
    path = fixture_copy('shelf-packed.durus')
    session = Session(open_storage(path))
    yield session
    session.close()


# -- :check ----------------------------------------------------------------------

def test_check_of_a_clean_file(session):
    text = command(session, ':check')
    assert 'OK: no problems found' in text
    assert session.namespace['_']['ok'] is True
    assert session.namespace['_']['btrees']['checked'] >= 1


def test_check_names_a_missing_record_and_keeps_pending_edits(tmp_path):
    path = tmp_path / 'missing.durus'
    referrer = damaged_files.with_missing_reference(path)
    session = Session(FileStorage(str(path)))
    try:
        run_input(session, "root['new'] = 1")
        text = command(session, ':check')
        assert 'oid %d, referred to by %d' % (damaged_files.MISSING_OID,
                                              referrer) in text
        assert 'PROBLEMS FOUND' in text
        # The check reads records only: the edit is still pending.
        assert session.change_count() == 1
        assert session.root['new'] == 1
    finally:
        session.close()


def test_check_reads_committed_btrees_not_the_sessions_edits(tmp_path):
    path = tmp_path / 'btree.durus'
    damaged_files.with_broken_btree(path)
    session = Session(FileStorage(str(path)))
    try:
        assert 'keys out of order' in command(session, ':check')
    finally:
        session.close()


# -- :export -----------------------------------------------------------------------

def test_export_arguments_keep_the_expression_as_typed():
    assert split_export_args("root['users'][3] out.json --depth 2") == (
        "root['users'][3]", 'out.json', {'depth': '2'}, False)
    assert split_export_args(
        'root["a b"] "my file.json" --format jsonl --force') == (
        'root["a b"]', 'my file.json', {'format': 'jsonl'}, True)
    with pytest.raises(CommandError):
        split_export_args('only_one_word')


def test_export_one_object_and_what_it_reaches(session, tmp_path):
    out = tmp_path / 'u3.json'
    text = command(session, ":export root['users'][3] %s --depth 1" % out)
    assert 'wrote 2 objects' in text
    document = json.loads(out.read_text())
    assert document['format'] == export.FORMAT
    user, account = document['objects']
    user3 = session.root['users'][3]
    assert user['oid'] == int.from_bytes(user3._p_oid, 'big')
    assert user['class'] == 'fixture_app.models.User'
    assert user['attributes']['name'] == user3.name
    assert user['attributes']['account'] == {
        '$ref': int.from_bytes(user3.account._p_oid, 'big')}
    assert account['oid'] == user['attributes']['account']['$ref']
    assert account['depth'] == 1
    # Only the object by default; an existing file is refused.
    assert 'exists' in str(failing(session, ":export root['users'][3] %s"
                                   % out))
    command(session, ":export root['users'][3] %s --force" % out)
    assert len(json.loads(out.read_text())['objects']) == 1


def test_export_find_results_as_json_lines(session, tmp_path):
    command(session, ':find User --limit 4')
    found = session.namespace['_']
    out = tmp_path / 'users.jsonl'
    assert 'wrote 4 objects' in command(session, ':export _ %s --format jsonl'
                                        % out)
    lines = out.read_text().splitlines()
    assert [json.loads(line)['oid'] for line in lines] == [
        int.from_bytes(user._p_oid, 'big') for user in found]
    assert not (tmp_path / 'users.jsonl.partial').exists()


def test_export_refuses_what_is_not_persistent(session, tmp_path):
    assert 'nothing to export' in str(failing(
        session, ':export 42 %s' % (tmp_path / 'x.json')))
    assert not (tmp_path / 'x.json').exists()


class Tagged(Persistent):
    pass


def test_round_trip_of_every_tagged_type(tmp_path):
    connection = Connection(FileStorage(str(tmp_path / 'types.durus')))
    root = connection.get_root()
    other = PersistentDict(x=1)
    values = {
        'bytes': b'\x00\xffraw', 'bytearray': bytearray(b'ab'),
        'when': datetime.datetime(2026, 12, 3, 9, 30, 1, 5),
        'day': datetime.date(2026, 1, 2), 'at': datetime.time(4, 5, 6),
        'span': datetime.timedelta(days=2, seconds=3, microseconds=4),
        'money': decimal.Decimal('12.30'), 'id': uuid.UUID(int=7),
        'pair': (1, 'two'), 'set': {1, 2, 3}, 'frozen': frozenset(['a']),
        'numbers': {1: 'one', (2, 3): 'pair'}, 'dollar': {'$ref': 'text'},
        'nan': float('inf'), 'complex': 1 + 2j, 'nested': [[1, {'a': None}]],
        'ref': other, 'text': 'héllo', 'big': 2 ** 70, 'flag': True,
    }
    obj = Tagged()
    obj.__dict__.update(values)
    root['obj'] = obj
    connection.commit()
    out = tmp_path / 'types.json'
    assert export.write_export(out, [obj], depth=1) == 2
    entries = export.read_export(out)
    decoded = export.decode_value(entries[0]['attributes'])
    expected = dict(values, ref=export.Ref(int.from_bytes(other._p_oid,
                                                          'big')))
    assert decoded == expected
    assert entries[1]['attributes'] == {'data': {'x': 1}}
    connection.storage.close()


def test_export_runs_no_code_from_the_database(tmp_path, monkeypatch):
    # A record names os.system as a value: the safe policy refuses it and
    # the export says so instead of calling anything.
    path = tmp_path / 'planted.durus'
    oid = damaged_files.with_class(path, 'durus.persistent_dict',
                                   'PersistentDict')
    storage = FileStorage(str(path))
    planted = (b'\x80\x02cdurus.persistent_dict\nPersistentDict\nq\x00.'
               b'\x80\x02}q\x01X\x04\x00\x00\x00dataq\x02}q\x03X\x01\x00\x00'
               b'\x00kq\x04cos\nsystem\nq\x05ss.')
    from durus.record import pack_record
    storage.begin()
    storage.store(oid.to_bytes(8, 'big'),
                  pack_record(oid.to_bytes(8, 'big'), planted, b''))
    storage.end()
    storage.close()
    calls = []
    monkeypatch.setattr(os, 'system', lambda *a: calls.append(a))
    session = Session(FileStorage(str(path)))
    try:
        out = tmp_path / 'planted.json'
        command(session, ':export root.get("holder") %s --depth 1' % out)
        entries = export.read_export(out)
        assert entries[1]['attributes'] == {
            'data': {'k': {'$refused': 'os.system'}}}
        assert not calls
    finally:
        session.close()


# -- in a real terminal -------------------------------------------------------------

def test_check_and_export_in_a_real_terminal(fixture_copy, tmp_path):
    path = fixture_copy('shelf-packed.durus')
    out = tmp_path / 'u3.json'
    env = dict(os.environ, PYTHONPATH=ROOT_DIR, TERM='xterm',
               HOME=str(tmp_path), PROMPT_TOOLKIT_NO_CPR='1')
    child = pexpect.spawn(
        sys.executable, ['-m', 'durus_shell', path, '--path', TESTS_DIR,
                         '--no-color'], cwd=ROOT_DIR, env=env,
        encoding='utf-8', timeout=20, dimensions=(40, 160),
        preexec_fn=default_signals())
    try:
        child.expect('durus>')
        child.sendline(':check')
        child.expect('OK: no problems found')
        child.expect('durus>')
        child.sendline(":export root['users'][3] %s --depth 1" % out)
        child.expect('wrote 2 objects')
        child.expect('durus>')
        child.sendline(':q')
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    objects = json.loads(out.read_text())['objects']
    assert objects[0]['class'] == 'fixture_app.models.User'
    assert objects[0]['attributes']['name'] == 'user3'
