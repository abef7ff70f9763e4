"""durus.file_history: every transaction and every past state a one-file
storage still holds, read by position without unpickling."""

import pytest

from durus.connection import Connection
from durus.file_history import (
    HistoryReadError, HistoryUnavailable, RecordHistory, gen_transactions,
    history_available, read_record, storage_end)
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.persistent_dict import PersistentDict
from durus.inspect import state_of_record
from durus.sqlite_storage import SqliteStorage
from durus.storage import MemoryStorage

FORMATS = [FileStorage, FileStorage2]


def _versions_of_counter(storage_class, path, values):
    connection = Connection(storage_class(str(path)))
    root = connection.get_root()
    root['counter'] = PersistentDict()
    connection.commit()
    for value in values:
        root['counter']['n'] = value
        root['counter']._p_note_change()
        connection.commit()
    return connection


def _state(connection, record):
    return state_of_record(connection, record)


@pytest.mark.parametrize('storage_class', FORMATS)
def test_every_state_of_an_object_oldest_first(storage_class, tmp_path):
    connection = _versions_of_counter(storage_class, tmp_path / 'db',
                                      [1, 2, 3])
    storage = connection.get_storage()
    oid = connection.get_root()['counter']._p_oid
    history = RecordHistory(storage)
    versions = history.versions(oid)
    assert [_state(connection, read_record(storage, v))['data'] for v in
            versions] == [{}, {'n': 1}, {'n': 2}, {'n': 3}]
    positions = [v.transaction for v in versions]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert all(v.size == len(read_record(storage, v)) for v in versions)


@pytest.mark.parametrize('storage_class', FORMATS)
def test_transactions_list_their_records(storage_class, tmp_path):
    connection = _versions_of_counter(storage_class, tmp_path / 'db', [1])
    transactions = list(gen_transactions(connection.get_storage()))
    # the root, the root with the new dict, the dict again
    assert [len(t.records) for t in transactions] == [1, 2, 1]
    for before, after in zip(transactions, transactions[1:]):
        assert before.position + before.size == after.position
    last = transactions[-1]
    assert last.position + last.size == storage_end(connection.get_storage())


@pytest.mark.parametrize('storage_class', FORMATS)
def test_update_reads_only_what_was_appended(storage_class, tmp_path):
    connection = _versions_of_counter(storage_class, tmp_path / 'db', [1])
    history = RecordHistory(connection.get_storage())
    oid = connection.get_root()['counter']._p_oid
    assert len(history.versions(oid)) == 2
    assert history.update() == 0
    connection.get_root()['counter']['n'] = 5
    connection.commit()
    assert history.update() == 1
    assert len(history.versions(oid)) == 3


@pytest.mark.parametrize('storage_class', FORMATS)
def test_a_pack_leaves_one_state_and_marks_the_history_stale(
        storage_class, tmp_path):
    connection = _versions_of_counter(storage_class, tmp_path / 'db',
                                      [1, 2])
    storage = connection.get_storage()
    history = RecordHistory(storage)
    connection.pack()
    oid = connection.get_root()['counter']._p_oid
    assert history.is_stale()
    with pytest.raises(HistoryReadError):
        history.update()
    assert len(RecordHistory(storage).versions(oid)) == 1


def test_a_reopened_file_holds_the_same_history(tmp_path):
    path = tmp_path / 'db'
    connection = _versions_of_counter(FileStorage, path, [1, 2])
    oid = connection.get_root()['counter']._p_oid
    connection.get_storage().close()
    storage = FileStorage(str(path), readonly=True)
    try:
        assert len(RecordHistory(storage).versions(oid)) == 3
    finally:
        storage.close()


def test_oid_search_is_aligned_to_whole_words(tmp_path):
    # an oid whose bytes appear across two neighbouring words is no match
    connection = _versions_of_counter(FileStorage, tmp_path / 'db', [1])
    history = RecordHistory(connection.get_storage())
    assert history.versions(1 << 40) == []
    assert history.versions(0)  # the root


def test_a_wrong_location_is_refused(tmp_path):
    connection = _versions_of_counter(FileStorage, tmp_path / 'db', [1])
    storage = connection.get_storage()
    oid = connection.get_root()['counter']._p_oid
    location = RecordHistory(storage).versions(oid)[0]
    with pytest.raises(HistoryReadError) as caught:
        read_record(storage, location._replace(offset=location.offset + 1))
    assert 'oid 1 ' in str(caught.value)


def test_storages_without_old_states_say_so(tmp_path):
    for storage in (MemoryStorage(), SqliteStorage(str(tmp_path / 's.db'))):
        assert not history_available(storage)
        with pytest.raises(HistoryUnavailable) as caught:
            RecordHistory(storage)
        assert 'opened directly' in str(caught.value)
        assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize('storage_class', FORMATS)
def test_bytes_changed_under_the_storage_are_refused(storage_class,
                                                     tmp_path):
    path = tmp_path / 'db'
    connection = _versions_of_counter(storage_class, path, [1])
    storage = connection.get_storage()
    history = RecordHistory(storage)
    known = len(history)
    connection.get_root()['counter']['n'] = 2
    connection.commit()
    last = list(gen_transactions(storage))[-1]
    # the length field of the new transaction's record: far too big
    field = (last.records[0].offset - 16 if storage_class is FileStorage
             else last.records[0].offset - 4)
    width = 8 if storage_class is FileStorage else 4
    with open(str(path), 'r+b') as f:
        f.seek(field)
        f.write(b'\x7f' * width)
    with pytest.raises(HistoryReadError) as caught:
        history.update()
    assert 'malformed record at offset %d' % field in str(caught.value)
    assert len(history) == known  # nothing half-read kept
