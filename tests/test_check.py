"""durus check (durus/check.py, durus/check_command.py): files with each
kind of damage made on purpose, a clean one, exit codes, --json, over a
real server, and the progress bar on a real terminal."""

import json
import os
import subprocess
import sys

import pytest

import damaged_files
from durus.check import EXAMPLES, check_storage, class_problem
from durus.file_storage import FileStorage
from server_process import durus_server  # noqa: F401

pexpect = pytest.importorskip('pexpect')


def durus_check(*args, timeout=60):
    return subprocess.run(
        [sys.executable, '-m', 'durus', 'check'] + [str(a) for a in args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout)


def checked(path):
    storage = FileStorage(str(path), readonly=True)
    try:
        return check_storage(storage)
    finally:
        storage.close()


def test_a_clean_file_exits_0(tmp_path):
    path = damaged_files.clean_file(tmp_path / 'clean.durus')
    result = durus_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'OK: no problems found' in result.stdout
    assert '1 BTrees checked' in result.stdout
    report = json.loads(durus_check(path, '--json').stdout)
    assert report['ok'] is True
    storage = FileStorage(str(path), readonly=True)
    assert report['records'] == sum(1 for _ in storage.gen_oid_record())
    storage.close()
    assert report['btrees'] == {'checked': 1, 'problems': []}
    assert report['unreachable']['records'] == 0


def test_missing_reference_names_the_oid_and_who_refers(tmp_path):
    path = tmp_path / 'missing.durus'
    referrer = damaged_files.with_missing_reference(path)
    result = durus_check(path, '--json')
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report['missing'] == [{'oid': damaged_files.MISSING_OID,
                                  'referred_by': [referrer]}]
    text = durus_check(path).stdout
    assert 'oid %d, referred to by %d' % (damaged_files.MISSING_OID,
                                          referrer) in text


def test_unreachable_records_count_and_bytes(tmp_path):
    path = tmp_path / 'garbage.durus'
    oid, size = damaged_files.with_unreachable(path)
    report = checked(path)
    assert report.unreachable == 1
    assert report.unreachable_bytes == size
    assert report.unreachable_examples == [oid]
    # Normal in a file not packed since: reported, a problem only --strict.
    assert not report.problems
    result = durus_check(path)
    assert result.returncode == 0
    assert '1 records (%d bytes) unreachable from the root' % size \
        in result.stdout
    assert durus_check(path, '--strict').returncode == 1


def test_a_record_that_does_not_parse(tmp_path):
    path = tmp_path / 'torn.durus'
    oid = damaged_files.with_unparsable(path)
    report = checked(path)
    assert [o for o, _ in report.unparsable] == [oid]
    assert 'state pickle does not parse' in report.unparsable[0][1]
    assert report.unreachable == 0 and not report.missing


def test_a_class_whose_module_does_not_exist(tmp_path):
    path = tmp_path / 'nomod.durus'
    damaged_files.with_class(path, 'no_such_module_h18', 'Thing')
    report = checked(path)
    assert report.unimportable == {
        'no_such_module_h18.Thing': (1, 'no module named no_such_module_h18')}
    result = durus_check(path, '--json')
    assert result.returncode == 1
    assert json.loads(result.stdout)['unimportable'][0]['records'] == 1


def test_a_class_missing_from_its_module_is_found_without_importing_it(
        tmp_path, monkeypatch):
    # The module would leave a mark if it ran: the check must not run it.
    module_dir = tmp_path / 'modules'
    module_dir.mkdir()
    mark = tmp_path / 'ran'
    (module_dir / 'h18_app_models.py').write_text(
        'open(%r, "w").close()\nclass Present: pass\n' % str(mark))
    path = tmp_path / 'moved.durus'
    damaged_files.with_class(path, 'h18_app_models', 'Gone')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(module_dir)] + sys.path))
    result = subprocess.run(
        [sys.executable, '-m', 'durus', 'check', str(path)], env=env,
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert 'h18_app_models.Gone: 1 records (module h18_app_models has no ' \
           'Gone)' in result.stdout
    assert not mark.exists()
    monkeypatch.syspath_prepend(str(module_dir))
    assert class_problem('h18_app_models', 'Present') is None
    assert not mark.exists()


def test_a_broken_btree_is_named(tmp_path):
    path = tmp_path / 'btree.durus'
    tree_oid = damaged_files.with_broken_btree(path)
    report = checked(path)
    assert report.btrees == 1
    assert [oid for oid, _ in report.btree_problems] == [tree_oid]
    assert 'keys out of order' in report.btree_problems[0][1]
    assert durus_check(path).returncode == 1


def test_cannot_open_exits_2(tmp_path):
    result = durus_check(tmp_path / 'nothing.durus')
    assert result.returncode == 2
    assert 'cannot open' in result.stderr
    junk = tmp_path / 'junk.durus'
    junk.write_bytes(os.urandom(64))
    assert durus_check(junk).returncode == 2
    assert durus_check('--client', '127.0.0.1:1').returncode == 2


def test_over_a_real_server(durus_server, tmp_path):
    path = tmp_path / 'served.durus'
    referrer = damaged_files.with_missing_reference(path)
    server = durus_server(file=path)
    result = durus_check('--client', '127.0.0.1:%d' % server.port, '--json')
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report['missing'] == [{'oid': damaged_files.MISSING_OID,
                                  'referred_by': [referrer]}]
    assert report['btrees']['checked'] == 1


def test_progress_bar_on_a_terminal_only(tmp_path):
    path = damaged_files.clean_file(tmp_path / 'clean.durus', items=40000)
    child = pexpect.spawn(sys.executable, ['-m', 'durus', 'check', str(path)],
                          timeout=60, encoding='utf-8')
    try:
        child.expect('checking')
        child.expect('OK: no problems found')
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    piped = durus_check(path)
    assert 'checking' not in piped.stderr + piped.stdout.split('\n')[0]


def test_findings_fit_the_terminal_and_all_lists_them(tmp_path):
    path = tmp_path / 'many.durus'
    referrer = damaged_files.with_many_missing(path, 300)
    child = pexpect.spawn(sys.executable, ['-m', 'durus', 'check', str(path),
                                           '--no-progress'],
                          timeout=60, encoding='utf-8', dimensions=(24, 100))
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 1
    lines = child.before.replace('\r\n', '\n').strip('\n').split('\n')
    assert len(lines) <= 23, lines     # and the next prompt: 24
    text = '\n'.join(lines)
    assert '300 missing records (referred to, but not stored):' in text
    assert 'oid %d, referred to by %d' % (damaged_files.MISSING_OID,
                                          referrer) in text
    more = [line for line in lines if line.startswith('  ... ')]
    assert len(more) == 1
    shown = sum(1 for line in lines if line.startswith('  oid '))
    assert more[0] == '  ... %d more' % (300 - shown)
    assert 'PROBLEMS FOUND' in text and '--all lists every finding' in text
    # Piped, and with --all or --json, every finding is there.
    piped = durus_check(path, '--no-progress')
    assert piped.stdout.count('referred to by') == EXAMPLES   # all it kept
    assert '  ... %d more (the check keeps the first %d)' % (
        300 - EXAMPLES, EXAMPLES) in piped.stdout
    assert 'cut to fit' not in piped.stdout
    child = pexpect.spawn(sys.executable, ['-m', 'durus', 'check', str(path),
                                           '--all'],
                          timeout=60, encoding='utf-8', dimensions=(24, 100))
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.before.count('referred to by') == EXAMPLES
    assert 'cut to fit' not in child.before
    assert json.loads(durus_check(path, '--json').stdout)['missing_count'] \
        == 300


def test_a_report_cut_keeps_every_section_and_count(tmp_path):
    path = tmp_path / 'many.durus'
    damaged_files.with_many_missing(path, 50)
    report = checked(path)
    whole = report.lines()
    lines, cut = report.screenful(10)
    assert cut and len(lines) <= 10
    assert lines[0] == whole[0] and lines[-1] == whole[-1] == 'PROBLEMS FOUND'
    assert '50 missing records (referred to, but not stored):' in lines
    assert report.screenful(len(whole)) == (whole, False)
