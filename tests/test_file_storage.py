"""FileStorage specifics: exact bytes, locking, read-only, validation,
fsync, packing (incremental, invalidations, damaged references), the
saved index, and what opening reads."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from durus import shelf_index
from durus.error import (
    DamagedFileError, DatabaseInUseError, DurusError, DurusKeyError,
    ReadOnlyError, UnexpectedOidError)
from durus.file import File
from durus.file_storage import FileStorage, TempFileStorage
from durus.serialize import RecordError, pack_record
from durus.storage import ROOT_OID
from durus.utils import int8_to_str
from test_storage_conformance import commit, record

def spec_fresh_file():
    """The 262 bytes of spec §6.1, rebuilt from its hex dump."""
    dump = """
    5348 454c 462d 310a 0000 0000 0000 0000 0000 0000 0000 0010 0000 0000 0000 0001
    0000 0000 0000 0000 0000 0000 0000 0062 0000 0000 0000 005a 0000 0000 0000 0000
    0000 0000 0000 0000 0000 0046 8002 6364 7572 7573 2e70 6572 7369 7374 656e 745f
    6469 6374 0a50 6572 7369 7374 656e 7444 6963 740a 7100 2e78 9c6b 60aa 2d64 8c60
    6160 6048 492c 492c 04f2 988b f500 396a 056d 0000 0000 0000 006c 0000 0000 0000
    0064 0000 0000 0000 0000 0000 0000 0000 0000 0000 0050 8002 6364 7572 7573 2e70
    6572 7369 7374 656e 745f 6469 6374 0a50 6572 7369 7374 656e 7444 6963 740a 7100
    2e78 9c6b 60aa 2d64 8c60 6160 6048 492c 492c 04f2 9823 1881 bcc4 4216 6fc6 e262
    3d00 7bbd 075b
    """
    return bytes.fromhex(''.join(dump.split()))


def test_spec_example_bytes_fresh_and_packed(tmp_path):
    spec = spec_fresh_file()
    assert len(spec) == 262
    path = str(tmp_path / 'spec.durus')
    storage = FileStorage(path)
    with open(path, 'rb') as f:
        assert f.read() == spec[:40]  # prefix, empty txn, empty map
    first, second = spec[0x40:0x92], spec[0xaa:0x106]
    assert storage.new_oid() == ROOT_OID
    commit(storage, first)
    commit(storage, second)
    with open(path, 'rb') as f:
        assert f.read() == spec
    storage.pack()
    with open(path, 'rb') as f:
        packed = f.read()
    expected = (spec[:8] + int8_to_str(0x6c) + int8_to_str(100) + ROOT_OID
                + second + bytes.fromhex(
                    '0000000000000012' '0000000000000001' '0000000000000002'
                    '107d'))
    assert packed == expected and len(packed) == 150
    with open(path + '.prepack', 'rb') as f:
        assert f.read() == spec
    assert not os.path.exists(path + '.pack')
    assert storage.load(ROOT_OID) == second
    storage.close()


def test_second_writer_gets_database_in_use(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    try:
        with pytest.raises(DatabaseInUseError) as info:
            FileStorage(path)
        assert isinstance(info.value, BlockingIOError)
        assert 'in use' in str(info.value) and path in str(info.value)
        script = textwrap.dedent('''
            import sys
            from durus.error import DatabaseInUseError
            from durus.file_storage import FileStorage
            try:
                FileStorage(sys.argv[1])
            except DatabaseInUseError as error:
                print('IN USE:', error)
        ''')
        result = subprocess.run([sys.executable, '-c', script, path],
                                capture_output=True, text=True, timeout=60)
        assert result.stdout.startswith('IN USE:') and not result.stderr
        reader = FileStorage(path, readonly=True)  # no lock needed
        reader.close()
    finally:
        storage.close()
    FileStorage(path).close()  # the lock went away with close()


def test_readonly_refuses_commit_and_pack_clearly(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    oid = storage.new_oid()
    commit(storage, record(oid))
    storage.close()
    before = open(path, 'rb').read()
    reader = FileStorage(path, readonly=True)
    assert reader.load(oid) == record(oid)
    reader.begin()
    with pytest.raises(ReadOnlyError, match='read-only'):
        reader.store(oid, record(oid, b'Other'))
    with pytest.raises(ReadOnlyError):
        reader.pack()
    reader.close()
    assert open(path, 'rb').read() == before


def test_store_refuses_surprise_oids(tmp_path):
    storage = FileStorage(str(tmp_path / 'db.durus'))
    storage.begin()
    surprise = int8_to_str(77)
    with pytest.raises(UnexpectedOidError) as info:
        storage.store(surprise, record(surprise))
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, DurusError)
    assert 'oid 77' in str(info.value)
    commit(storage, record(ROOT_OID))  # the root is always fine
    fresh = storage.new_oid()
    assert fresh != ROOT_OID
    storage.begin()
    storage.store(fresh, record(fresh))
    with pytest.raises(RecordError):
        storage.store(fresh, record(ROOT_OID))  # record of another oid
    with pytest.raises(RecordError):
        storage.store(fresh, record(fresh) + b'\x01')  # refs not 8*k
    with pytest.raises(RecordError):
        storage.store(fresh, fresh + b'\x00\x00')  # shorter than 12
    with pytest.raises(RecordError):  # data length beyond the record
        storage.store(fresh, fresh + b'\x00\x00\x00\x09' + b'abc')
    storage.begin()
    storage.store(fresh, bytearray(record(fresh)))  # bytes-like is fine
    storage.close()


def test_commit_returns_only_after_fsync(tmp_path, monkeypatch):
    storage = FileStorage(str(tmp_path / 'db.durus'))
    calls = []
    sync_name = 'fdatasync' if hasattr(os, 'fdatasync') else 'fsync'
    real_fsync = getattr(os, sync_name)
    monkeypatch.setattr(os, sync_name,
                        lambda fd: (calls.append(fd), real_fsync(fd)))
    oid = storage.new_oid()
    commit(storage, record(oid))
    assert calls == [storage.file.fd]
    storage.close()


def test_new_file_creation_syncs_the_directory(tmp_path, monkeypatch):
    synced = []
    import durus.file
    real = durus.file.fsync_directory
    monkeypatch.setattr(durus.file, 'fsync_directory',
                        lambda path: (synced.append(path), real(path)))
    path = str(tmp_path / 'new.durus')
    FileStorage(path).close()
    assert synced == [path]


def test_incremental_pack_keeps_commits_made_meanwhile(tmp_path,
                                                       monkeypatch):
    import durus.file_storage
    monkeypatch.setattr(durus.file_storage, 'PACK_STEP', 5)
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    root = storage.new_oid()
    children = [storage.new_oid() for _ in range(40)]
    commit(storage, record(root, b'Root', children),
           *[record(child, b'Child') for child in children])
    garbage = storage.new_oid()
    commit(storage, record(garbage, b'Garbage'))
    packer = storage.get_packer()
    next(packer)
    assert storage.get_packer() is not packer
    assert list(storage.get_packer()) == []  # one pack at a time
    # Between steps: change a child, add a new object hanging off a child.
    late = storage.new_oid()
    commit(storage, record(children[0], b'Changed', [late]),
           record(late, b'Late'))
    commit(storage, record(children[-1], b'ChangedLast'))
    for _ in packer:
        pass
    assert storage.load(children[0]) == record(children[0], b'Changed',
                                               [late])
    assert storage.load(late) == record(late, b'Late')
    assert storage.load(children[-1]) == record(children[-1],
                                                b'ChangedLast')
    with pytest.raises(DurusKeyError):
        storage.load(garbage)
    assert garbage in storage.sync()
    assert os.path.exists(path + '.prepack')
    assert not os.path.exists(path + '.pack')
    storage.close()
    reopened = FileStorage(path, readonly=True)
    assert reopened.load(late) == record(late, b'Late')
    reopened.close()


def test_pack_skips_dangling_references_and_cycles(tmp_path):
    storage = FileStorage(str(tmp_path / 'db.durus'))
    root, a = storage.new_oid(), storage.new_oid()
    missing, huge = int8_to_str(9999), int8_to_str(2 ** 63 + 5)
    commit(storage, record(root, b'Root', [a, missing, huge]),
           record(a, b'A', [root]))
    storage.pack()
    assert storage.load(a) == record(a, b'A', [root])
    storage.close()


def test_pack_stops_without_change_on_an_unreadable_record(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    root, a = storage.new_oid(), storage.new_oid()
    commit(storage, record(root, b'Root', [a]), record(a, b'A'))
    before = open(path, 'rb').read()
    real_load = storage.shelf.load_number

    def load_with_bad_refs(number):
        loaded = real_load(number)
        return loaded + b'\x01\x02\x03' if number == 0 else loaded
    storage.shelf.load_number = load_with_bad_refs
    with pytest.raises(DamagedFileError, match='changed nothing'):
        storage.pack()
    assert open(path, 'rb').read() == before
    assert not os.path.exists(path + '.pack')
    assert not os.path.exists(path + '.prepack')
    assert storage.load(a) == record(a, b'A')
    storage.close()


def test_new_oid_reuses_holes_after_pack_but_not_before_sync(tmp_path):
    storage = FileStorage(str(tmp_path / 'db.durus'))
    root, a, b = storage.new_oid(), storage.new_oid(), storage.new_oid()
    commit(storage, record(root, b'Root', [b]), record(a, b'Garbage'),
           record(b, b'B'))
    storage.pack()
    assert storage.new_oid() not in (root, a, b)  # a is pending in sync()
    assert storage.sync() == [a]
    storage.close()
    storage = FileStorage(storage.get_filename())
    assert storage.new_oid() == a  # the hole, as Durus does
    storage.close()


def test_gen_oid_record_lists_current_records_including_unreachable(
        tmp_path):
    storage = FileStorage(str(tmp_path / 'db.durus'))
    root, a = storage.new_oid(), storage.new_oid()
    commit(storage, record(root, b'Root'), record(a, b'Old'))
    commit(storage, record(a, b'New'))
    assert dict(storage.gen_oid_record()) == {root: record(root, b'Root'),
                                              a: record(a, b'New')}
    seen = set()
    assert [oid for oid, _ in storage.gen_oid_record(ROOT_OID, seen)] == \
        [root]
    assert seen == {root}
    storage.close()


def _make_packed(path, count):
    storage = FileStorage(path)
    root = storage.new_oid()
    oids = [storage.new_oid() for _ in range(count)]
    commit(storage, record(root, b'Root', oids),
           *[record(oid) for oid in oids])
    storage.pack()
    storage.close()
    return root, oids


def test_opening_a_packed_file_reads_only_its_header_and_map_head(
        tmp_path, monkeypatch):
    reads = []
    real = File.pread
    monkeypatch.setattr(File, 'pread', lambda self, n, offset: (
        reads.append(n), real(self, n, offset))[1])
    for count in (10, 3000):
        path = str(tmp_path / ('packed%d.durus' % count))
        _make_packed(path, count)
        del reads[:]
        storage = FileStorage(path, readonly=True)
        opened = sum(len(real(storage.file, n, 0)) for n in reads)
        assert opened < 200, 'opening read %d bytes' % opened
        assert len(reads) <= 4
        storage.close()


def test_saved_index_is_used_checked_and_rebuilt(tmp_path, monkeypatch):
    import durus.file_storage
    monkeypatch.setattr(durus.file_storage, 'SAVE_INDEX_MIN_RECORDS', 10)
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    oids = [storage.new_oid() for _ in range(50)]
    commit(storage, *[record(oid) for oid in oids])
    covered = os.path.getsize(path)
    storage.close()
    assert os.path.exists(path + '.index')
    storage = FileStorage(path)
    assert storage.shelf.scan_start == covered  # nothing scanned again
    assert storage.shelf.scanned_records == 0
    # Append more: the index is now stale and covers only a prefix.
    commit(storage, record(oids[3], b'Newer'))
    storage.file.close()  # leave without saving the index
    storage = FileStorage(path)
    assert storage.shelf.scan_start == covered
    assert storage.load(oids[3]) == record(oids[3], b'Newer')
    storage.close()
    # A damaged index is ignored (checksum) and rebuilt from the file.
    with open(path + '.index', 'r+b') as f:
        f.seek(40)
        f.write(b'\xff')
    storage = FileStorage(path)
    assert storage.shelf.scan_start == storage.shelf.map.end
    assert storage.load(oids[3]) == record(oids[3], b'Newer')
    storage.close()
    assert shelf_index.load(File(path, readonly=True)) is not None


def test_saved_index_of_another_file_is_ignored(tmp_path, monkeypatch):
    import durus.file_storage
    monkeypatch.setattr(durus.file_storage, 'SAVE_INDEX_MIN_RECORDS', 10)
    first, second = str(tmp_path / 'a.durus'), str(tmp_path / 'b.durus')
    for path, name in ((first, b'First'), (second, b'Secnd')):
        storage = FileStorage(path)
        oids = [storage.new_oid() for _ in range(20)]
        commit(storage, *[record(oid, name) for oid in oids])
        storage.close()
    assert os.path.getsize(first) == os.path.getsize(second)
    shutil.copyfile(first + '.index', second + '.index')
    storage = FileStorage(second, readonly=True)
    assert storage.shelf.scan_start == storage.shelf.map.end  # rescanned
    assert storage.load(oids[0]) == record(oids[0], b'Secnd')
    storage.close()


def test_index_memory_is_compact(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    oids = [storage.new_oid() for _ in range(20000)]
    commit(storage, *[record(oid) for oid in oids])
    assert len(storage.shelf.index) == 20000
    assert storage.shelf.index.memory_bytes() < 20 * 20000
    storage.close()


def test_temp_file_storage_works_and_never_packs():
    storage = TempFileStorage()
    assert storage.is_temporary()
    oid = storage.new_oid()
    commit(storage, record(oid))
    assert storage.load(oid) == record(oid)
    assert list(storage.get_packer()) == []
    storage.close()


def test_names_and_format_check(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    assert str(storage) == 'FileStorage(%r)' % path
    assert storage.get_filename() == path
    with open(path, 'rb') as f:
        assert FileStorage.has_format(f)
    storage.close()


def test_gen_oid_record_after_pack_yields_each_oid_once_newest(tmp_path):
    storage = FileStorage(str(tmp_path / 'db.durus'))
    root, a, b = storage.new_oid(), storage.new_oid(), storage.new_oid()
    commit(storage, record(root, b'Root', [a, b]), record(a), record(b))
    storage.pack()
    commit(storage, record(b, b'Newer'))
    found = list(storage.gen_oid_record())
    assert sorted(found) == sorted([(root, record(root, b'Root', [a, b])),
                                    (a, record(a)), (b, record(b, b'Newer'))])
    storage.close()


def _file_of_several_transactions(path):
    storage = FileStorage(path)
    oids = [storage.new_oid() for _ in range(10)]
    commit(storage, record(oids[0], b'Root', oids[1:]),
           *[record(oid) for oid in oids[1:]])
    commit(storage, record(oids[3], b'Three'))
    commit(storage, record(oids[5], b'Five'))
    storage.close()
    return oids


def test_a_large_unindexed_tail_is_indexed_lazily_newest_first(
        tmp_path, monkeypatch):
    import durus.shelf
    monkeypatch.setattr(durus.shelf, 'LAZY_MIN_BYTES', 1)
    path = str(tmp_path / 'db.durus')
    oids = _file_of_several_transactions(path)
    monkeypatch.setattr(durus.shelf, 'SEARCH_LIMIT', 16)
    storage = FileStorage(path)
    shelf = storage.shelf
    assert not shelf.is_complete()
    assert storage.load(oids[5]) == record(oids[5], b'Five')  # newest txn
    # Older records are found by searching, without indexing everything.
    assert storage.load(oids[3]) == record(oids[3], b'Three')
    assert storage.load(oids[1]) == record(oids[1])
    with pytest.raises(DurusKeyError):
        storage.load(int8_to_str(99))
    assert not shelf.is_complete() and shelf._searches == 3
    commit(storage, record(oids[1], b'Newest'))
    assert storage.load(oids[1]) == record(oids[1], b'Newest')
    assert storage.new_oid() not in oids  # needs every oid: indexes all
    assert shelf.is_complete()
    assert storage.load(oids[3]) == record(oids[3], b'Three')
    assert len(dict(storage.gen_oid_record())) == 10
    storage.close()


def test_lazy_lookups_index_everything_after_the_search_limit(
        tmp_path, monkeypatch):
    import durus.shelf
    monkeypatch.setattr(durus.shelf, 'LAZY_MIN_BYTES', 1)
    monkeypatch.setattr(durus.shelf, 'SEARCH_LIMIT', 2)
    path = str(tmp_path / 'db.durus')
    oids = _file_of_several_transactions(path)
    storage = FileStorage(path, readonly=True)
    for oid in oids[1:3]:
        storage.load(oid)
    assert not storage.shelf.is_complete()
    assert storage.load(oids[4]) == record(oids[4])
    assert storage.shelf.is_complete()
    storage.close()


def test_lazy_open_reports_older_damage_when_met(tmp_path, monkeypatch):
    import durus.shelf
    monkeypatch.setattr(durus.shelf, 'LAZY_MIN_BYTES', 1)
    path = str(tmp_path / 'db.durus')
    oids = _file_of_several_transactions(path)
    data = bytearray(open(path, 'rb').read())
    data[40 + 8 + 8 + 8] ^= 0x55  # first record's embedded oid
    with open(path, 'wb') as f:
        f.write(bytes(data))
    storage = FileStorage(path, readonly=True)
    assert storage.load(oids[5]) == record(oids[5], b'Five')
    with pytest.raises(DamagedFileError, match='backup'):
        storage.load(oids[1])
    storage.close()
    with pytest.raises(DamagedFileError, match='backup'):
        FileStorage(path, repair=True)  # repair always checks everything
    assert open(path, 'rb').read() == bytes(data)


def test_lazy_open_then_close_saves_a_complete_index(tmp_path,
                                                    monkeypatch):
    import durus.file_storage
    import durus.shelf
    monkeypatch.setattr(durus.shelf, 'LAZY_MIN_BYTES', 1)
    monkeypatch.setattr(durus.file_storage, 'SAVE_INDEX_MIN_RECORDS', 1)
    path = str(tmp_path / 'db.durus')
    oids = _file_of_several_transactions(path)
    os.unlink(path + '.index')
    reader = FileStorage(path, readonly=True)
    reader.load(oids[5])
    reader.close()
    assert not os.path.exists(path + '.index')  # readers never write
    storage = FileStorage(path)
    assert not storage.shelf.is_complete()
    storage.close()
    assert os.path.exists(path + '.index')
    storage = FileStorage(path)
    assert storage.shelf.is_complete()  # from the saved index
    assert storage.load(oids[3]) == record(oids[3], b'Three')
    storage.close()
