"""FileStorage2 (DFS20) specifics: exact bytes after pack, oid numbering,
create_from_records, locking and read-only, incremental pack."""

import os
import pickle
import zlib

import pytest

from durus.error import DatabaseInUseError, ReadOnlyError
from durus.file import File
from durus.file_storage2 import MAGIC, FileStorage2
from durus.storage import ROOT_OID
from durus.utils import int4_to_str, int8_to_str
from test_file_storage import spec_fresh_file
from test_storage_conformance import commit, record


def test_new_file_and_packed_file_bytes_match_the_spec(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage2(path)
    empty_index = zlib.compress(pickle.dumps({}, 4))
    with open(path, 'rb') as f:
        assert f.read() == (MAGIC + int8_to_str(14) +
                            int8_to_str(len(empty_index)) + empty_index)
    spec = spec_fresh_file()
    first, second = spec[0x40:0x92], spec[0xaa:0x106]  # root {} then {'a': 1}
    commit(storage, first)
    commit(storage, second)
    storage.pack()
    index = zlib.compress(pickle.dumps({ROOT_OID: 14}, 4))
    expected = (MAGIC + int8_to_str(0x72) + int4_to_str(92) + second +
                int4_to_str(0) + int8_to_str(len(index)) + index)
    with open(path, 'rb') as f:
        packed = f.read()
    assert len(index) == 26 and len(packed) == 148  # spec §3.4
    assert packed == expected
    assert os.path.exists(path + '.prepack')
    storage.close()


def test_oids_continue_after_the_largest_one(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage2(path)
    assert storage.new_oid() == ROOT_OID
    far = int8_to_str(41)
    commit(storage, record(ROOT_OID, b'Root', [far]), record(far))
    storage.close()
    storage = FileStorage2(path)
    assert storage.new_oid() == int8_to_str(42)
    storage.close()


def test_create_from_records_rewrites_the_file(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage2(path)
    commit(storage, record(ROOT_OID, b'Old'))
    one = int8_to_str(1)
    storage.create_from_records([(ROOT_OID, record(ROOT_OID, b'New', [one])),
                                 (one, record(one))])
    assert storage.load(ROOT_OID) == record(ROOT_OID, b'New', [one])
    storage.close()
    storage = FileStorage2(path, readonly=True)
    assert dict(storage.gen_oid_record()) == {
        ROOT_OID: record(ROOT_OID, b'New', [one]), one: record(one)}
    assert storage.index_offset > 14  # the records sit before the index
    storage.close()


def test_create_from_records_failing_midway_leaves_the_old_file(
        tmp_path, monkeypatch):
    """The new contents go to NAME.new and are renamed over NAME only once
    synced: a sync that fails (a full disk, an I/O error) loses nothing."""
    path = str(tmp_path / 'db.durus')
    storage = FileStorage2(path)
    commit(storage, record(ROOT_OID, b'Old'))
    with open(path, 'rb') as f:
        before = f.read()
    real_fsync = File.fsync

    def failing_fsync(self):
        if self.name.endswith('.new'):
            raise OSError(28, 'No space left on device')
        return real_fsync(self)

    monkeypatch.setattr(File, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='No space left'):
        storage.create_from_records([(ROOT_OID, record(ROOT_OID, b'New'))])
    monkeypatch.undo()
    with open(path, 'rb') as f:
        assert f.read() == before
    assert not os.path.exists(path + '.new')
    assert storage.load(ROOT_OID) == record(ROOT_OID, b'Old')
    # still the writer: a second try works and is what a reopen reads
    storage.create_from_records([(ROOT_OID, record(ROOT_OID, b'New'))])
    with pytest.raises(DatabaseInUseError):
        FileStorage2(path)
    storage.close()
    reopened = FileStorage2(path, readonly=True)
    assert reopened.load(ROOT_OID) == record(ROOT_OID, b'New')
    reopened.close()


def test_create_from_records_on_a_temporary_file():
    storage = FileStorage2()
    commit(storage, record(ROOT_OID, b'Old'))
    storage.create_from_records([(ROOT_OID, record(ROOT_OID, b'New'))])
    assert storage.load(ROOT_OID) == record(ROOT_OID, b'New')
    storage.close()


def test_locking_and_read_only(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage2(path)
    commit(storage, record(ROOT_OID))
    with pytest.raises(DatabaseInUseError):
        FileStorage2(path)
    reader = FileStorage2(path, readonly=True)
    assert reader.load(ROOT_OID) == record(ROOT_OID)
    with pytest.raises(ReadOnlyError):
        reader.store(ROOT_OID, record(ROOT_OID))
    with pytest.raises(ReadOnlyError):
        reader.pack()
    reader.close()
    storage.close()


def test_incremental_pack_keeps_commits_made_meanwhile(tmp_path,
                                                       monkeypatch):
    import durus.file_storage2
    monkeypatch.setattr(durus.file_storage2, 'PACK_STEP', 3)
    storage = FileStorage2(str(tmp_path / 'db.durus'))
    root = storage.new_oid()
    children = [storage.new_oid() for _ in range(20)]
    garbage = storage.new_oid()
    commit(storage, record(root, b'Root', children), record(garbage),
           *[record(child) for child in children])
    packer = storage.get_packer()
    next(packer)
    late = storage.new_oid()
    commit(storage, record(children[0], b'Changed', [late]),
           record(late, b'Late'))
    list(packer)
    assert storage.load(late) == record(late, b'Late')
    assert storage.load(children[0]) == record(children[0], b'Changed',
                                               [late])
    with pytest.raises(KeyError):
        storage.load(garbage)
    assert storage.sync() == [garbage]
    storage.close()
    storage = FileStorage2(storage.get_filename(), readonly=True)
    assert storage.load(late) == record(late, b'Late')
    storage.close()


def test_oids_issued_before_a_pack_are_not_issued_again(tmp_path):
    storage = FileStorage2(str(tmp_path / 'db.durus'))
    root = storage.new_oid()
    commit(storage, record(root, b'Root'))
    issued = [storage.new_oid() for _ in range(3)]  # not committed yet
    storage.pack()
    assert storage.new_oid() not in issued
    storage.close()


def test_damage_before_the_last_transaction_is_refused_even_with_repair(
        tmp_path):
    from durus.error import DamagedFileError
    path = str(tmp_path / 'db.durus')
    storage = FileStorage2(path)
    one = int8_to_str(1)
    commit(storage, record(ROOT_OID, b'Root', [one]))
    first_end = storage.file_end
    commit(storage, record(one))
    commit(storage, record(ROOT_OID, b'Root2', [one]))
    storage.close()
    data = bytearray(open(path, 'rb').read())
    data[first_end + 4 + 8 + 3] ^= 0x40  # the data length of oid 1's record
    with open(path, 'wb') as f:
        f.write(bytes(data))
    for repair in (False, True):
        with pytest.raises(DamagedFileError, match='backup') as info:
            FileStorage2(path, repair=repair)
        assert info.value.offset == first_end
    assert open(path, 'rb').read() == bytes(data)
