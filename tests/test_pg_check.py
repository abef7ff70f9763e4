"""`durus check postgresql://...`: the same checks as on a file, on a real
PostgreSQL cluster (records stored there as they are)."""

import json
import subprocess
import sys

import pytest

import damaged_files
import pg_cluster

from durus.file_storage import FileStorage

pytest.importorskip('psycopg', reason=pg_cluster.DRIVER_HINT)
from durus.pg_storage import PgStorage  # noqa: E402


def durus(*args):
    return subprocess.run(
        [sys.executable, '-m', 'durus'] + [str(a) for a in args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def copied_to_postgresql(path):
    """Every record of the file, stored as they are (`durus copy` walks
    from the root and stops at a missing reference)."""
    dsn = pg_cluster.session_cluster().new_dsn()
    source = FileStorage(str(path), readonly=True)
    target = PgStorage(dsn, create=True)
    try:
        target.begin()
        for oid, record in source.gen_oid_record():
            target.store(oid, record)
        target.end()
    finally:
        source.close()
        target.close()
    return dsn


def test_a_clean_database_exits_0(tmp_path):
    dsn = copied_to_postgresql(
        damaged_files.clean_file(tmp_path / 'clean.durus'))
    result = durus('check', dsn, '--json')
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report['ok'] is True
    assert report['btrees'] == {'checked': 1, 'problems': []}
    assert 'OK: no problems found' in durus('check', dsn).stdout


def test_a_missing_reference_is_named(tmp_path):
    path = tmp_path / 'missing.durus'
    referrer = damaged_files.with_missing_reference(path)
    dsn = copied_to_postgresql(path)
    result = durus('check', dsn, '--json')
    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads(result.stdout)['missing'] == [
        {'oid': damaged_files.MISSING_OID, 'referred_by': [referrer]}]


def test_a_database_that_does_not_exist_exits_2():
    dsn = pg_cluster.session_cluster().dsn(dbname='no_such_database')
    result = durus('check', dsn)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
