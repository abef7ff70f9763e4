"""SqliteStorage specifics: Durus 4.3's schema, the two 4.3 defects fixed
(oids after reopen, listing every record), read-only and locking."""

import os
import sqlite3

import pytest

from conftest import FIXTURES_DIR
from durus.error import (
    ConcurrentWriterError, DatabaseInUseError, ReadOnlyError)
from durus.sqlite_storage import SqliteStorage
from durus.storage import ROOT_OID
from durus.utils import int8_to_str
from test_storage_conformance import commit, record


def test_schema_and_rows_are_durus43s(tmp_path):
    path = str(tmp_path / 'db.sqlite')
    storage = SqliteStorage(path)
    one = int8_to_str(1)
    commit(storage, record(ROOT_OID, b'Root', [one]), record(one))
    storage.close()
    connection = sqlite3.connect(path)
    fixture = sqlite3.connect(os.path.join(FIXTURES_DIR, 'sqlite.durus'))
    columns = 'pragma table_info(objects)'
    assert list(connection.execute(columns)) == \
        list(fixture.execute(columns))
    fixture.close()
    rows = connection.execute('select id, refs from objects order by id')
    assert list(rows) == [(0, one), (1, b'')]
    connection.close()


def test_new_oids_after_reopen_never_collide(tmp_path):
    path = str(tmp_path / 'db.sqlite')
    storage = SqliteStorage(path)
    oids = [storage.new_oid() for _ in range(3)]
    commit(storage, *[record(oid) for oid in oids])
    storage.close()
    storage = SqliteStorage(path)
    fresh = storage.new_oid()
    assert fresh == int8_to_str(3)  # Durus 4.3 handed out 2 again
    commit(storage, record(fresh, b'Fresh'))
    assert storage.load(oids[2]) == record(oids[2])
    assert len(list(storage.gen_oid_record())) == 4
    storage.close()


def test_read_only_works_beside_a_writer(tmp_path):
    path = str(tmp_path / 'db.sqlite')
    writer = SqliteStorage(path)
    commit(writer, record(ROOT_OID))
    with pytest.raises(DatabaseInUseError):
        SqliteStorage(path)
    reader = SqliteStorage(path, readonly=True)
    assert reader.is_readonly()
    assert reader.load(ROOT_OID) == record(ROOT_OID)
    reader.begin()
    with pytest.raises(ReadOnlyError):
        reader.store(ROOT_OID, record(ROOT_OID, b'Other'))
    with pytest.raises(ReadOnlyError):
        reader.pack()
    reader.close()
    writer.close()


def test_commits_sync_the_directory_too(tmp_path):
    # FULL (SQLite's default) leaves the journal's deletion unsynced, and
    # a power cut then rolls the acknowledged commit back (see
    # test_power_cut.py); EXTRA syncs it.
    storage = SqliteStorage(str(tmp_path / 'db.sqlite'))
    assert storage.connection.execute('pragma synchronous').fetchone() == (3,)
    storage.close()


def test_a_commit_by_another_program_is_detected(tmp_path):
    path = str(tmp_path / 'db.sqlite')
    storage = SqliteStorage(path)
    commit(storage, record(ROOT_OID))
    other = sqlite3.connect(path, timeout=0.1)
    # Between our commits we hold a read lock: the other writer waits
    # and fails (Durus 4.3 then reports "database is locked").
    with pytest.raises(sqlite3.OperationalError, match='locked'):
        with other:
            other.execute("insert into objects values (5, x'00', x'')")
    # Should one slip in anyway (here: with our lock dropped by hand), the
    # next commit refuses instead of reusing the other writer's oids.
    storage.connection.commit()
    with other:
        other.execute("insert into objects values (6, x'00', x'')")
    other.close()
    for _ in range(2):
        with pytest.raises(ConcurrentWriterError, match='another program'):
            commit(storage, record(ROOT_OID, b'Mine'))
    assert storage.load(ROOT_OID) == record(ROOT_OID)
    storage.close()
    storage = SqliteStorage(path)  # reopening accepts the file as it is
    commit(storage, record(ROOT_OID, b'Mine'))
    assert storage.new_oid() == int8_to_str(7)
    storage.close()


WRITE_WITH_DURUS43 = '''
import sqlite3, sys
connect = sqlite3.connect
sqlite3.connect = lambda *args, **kw: connect(*args, timeout=0.2)
from durus.connection import Connection
from durus.sqlite_storage import SqliteStorage
connection = Connection(SqliteStorage(sys.argv[1]))
root = connection.get_root()
print(sorted(root.keys()))
root['from 4.3'] = True
try:
    connection.commit()
except sqlite3.OperationalError as error:
    print('refused:', error)
else:
    print('committed')
'''


@pytest.mark.slow
def test_a_durus43_writer_beside_ours_cannot_commit(tmp_path, durus43_python):
    from durus.connection import Connection
    from durus43_env import run_durus43
    path = str(tmp_path / 'db.sqlite')
    connection = Connection(SqliteStorage(path))
    connection.get_root()['ours'] = 1
    connection.commit()
    result = run_durus43(durus43_python, WRITE_WITH_DURUS43, path)
    assert result.stdout.splitlines() == [
        "['ours']", 'refused: database is locked'], result.stderr
    connection.get_root()['ours'] = 2
    connection.commit()
    connection.get_storage().close()
    # Once we are closed, Durus 4.3 writes the file as before.
    result = run_durus43(durus43_python, WRITE_WITH_DURUS43, path)
    assert result.stdout.splitlines() == ["['ours']", 'committed']
    connection = Connection(SqliteStorage(path, readonly=True))
    assert sorted(connection.get_root().items()) == [
        ('from 4.3', True), ('ours', 2)]
    connection.get_storage().close()


def test_read_only_sync_reports_the_loaded_objects_others_changed(tmp_path):
    from durus.connection import Connection
    from durus.persistent_dict import PersistentDict
    path = str(tmp_path / 'db.sqlite')
    writer = Connection(SqliteStorage(path))
    root = writer.get_root()
    root['a'], root['b'] = PersistentDict(n=1), PersistentDict(n=1)
    writer.commit()
    reader = Connection(SqliteStorage(path, readonly=True))
    assert reader.get_root()['a']['n'] == 1  # loads root and a, not b
    assert reader.get_storage().sync() == []
    root['a']['n'] = 2
    root['b']['n'] = 2
    writer.commit()
    invalid = reader.get_storage().sync()
    assert invalid == [root['a']._p_oid]  # b was never loaded here
    reader.get_root()['a']._p_set_status_ghost()
    assert reader.get_root()['a']['n'] == 2
    root['c'] = 3
    writer.commit()
    reader.abort()
    assert reader.get_root()['c'] == 3
    writer.get_storage().close()
    reader.get_storage().close()


def test_a_commit_blocked_by_another_lock_is_refused_clearly(tmp_path):
    path = str(tmp_path / 'db.sqlite')
    storage = SqliteStorage(path)
    commit(storage, record(ROOT_OID))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute('begin immediate')  # another writer is under way
    with pytest.raises(DatabaseInUseError) as caught:
        commit(storage, record(ROOT_OID, b'Mine'))
    assert not isinstance(caught.value, ConcurrentWriterError)
    assert path in str(caught.value) and 'nothing was committed' in str(
        caught.value)
    other.rollback()  # it wrote nothing: our next commit goes through
    other.close()
    commit(storage, record(ROOT_OID, b'Mine'))
    assert storage.load(ROOT_OID) == record(ROOT_OID, b'Mine')
    storage.close()
