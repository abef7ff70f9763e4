"""SqliteStorage specifics: Durus 4.3's schema, the two 4.3 defects fixed
(oids after reopen, listing every record), read-only and locking."""

import os
import sqlite3

import pytest

from conftest import FIXTURES_DIR
from durus.error import DatabaseInUseError, ReadOnlyError
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
