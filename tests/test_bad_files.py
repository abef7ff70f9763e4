"""Every kind of file that is not an intact database gives one clear error
and is left exactly as it was (bytes and modification time)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

from durus.error import (
    DamagedFileError, DatabaseNotFoundError, DatabasePermissionError,
    DurusError, UnknownFormatError)
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.format import (
    detect_format, get_storage_class, inspect_damage, open_storage)
from durus.sqlite_storage import SqliteStorage
from test_storage_conformance import commit, record


def snapshot(path):
    with open(path, 'rb') as f:
        return f.read(), os.stat(path).st_mtime_ns


def make_file(tmp_path, name, data):
    path = str(tmp_path / name)
    with open(path, 'wb') as f:
        f.write(data)
    os.utime(path, ns=(10 ** 18, 10 ** 18))  # an mtime a write would change
    return path


def good_shelf(tmp_path, name='good.durus'):
    path = str(tmp_path / name)
    storage = FileStorage(path)
    oids = [storage.new_oid() for _ in range(3)]
    commit(storage, record(oids[0], b'Root', oids[1:]), record(oids[1]))
    commit(storage, record(oids[2]))
    storage.close()
    return path


@pytest.mark.parametrize('readonly', [False, True])
def test_empty_file_is_named_empty_and_created_only_on_request(tmp_path,
                                                               readonly):
    path = make_file(tmp_path, 'empty.durus', b'')
    before = snapshot(path)
    with pytest.raises(UnknownFormatError, match='empty'):
        open_storage(path, readonly=readonly)
    assert snapshot(path) == before
    if not readonly:
        storage = open_storage(path, create=True)
        assert isinstance(storage, FileStorage)
        storage.close()
        assert detect_format(path) == 'SHELF-1'


def test_directory_is_refused(tmp_path):
    with pytest.raises(UnknownFormatError, match='directory'):
        open_storage(str(tmp_path))
    for storage_class in (FileStorage, FileStorage2, SqliteStorage):
        with pytest.raises(UnknownFormatError, match='directory'):
            storage_class(str(tmp_path))


@pytest.mark.parametrize('storage_class', [None, FileStorage, FileStorage2,
                                           SqliteStorage])
def test_file_of_another_kind_is_refused_unchanged(tmp_path, storage_class):
    path = make_file(tmp_path, 'notes.txt', b'just some text\n' * 10)
    before = snapshot(path)
    for readonly in (False, True):
        with pytest.raises(UnknownFormatError) as info:
            if storage_class is None:
                open_storage(path, readonly=readonly)
            else:
                storage_class(path, readonly=readonly)
        assert path in str(info.value)
        # 4.3 asserted the format: still an AssertionError (differences.md)
        assert isinstance(info.value, AssertionError)
    assert snapshot(path) == before


def test_missing_path_is_created_only_when_asked(tmp_path):
    path = str(tmp_path / 'missing.durus')
    with pytest.raises(DatabaseNotFoundError, match='create'):
        open_storage(path)
    with pytest.raises(DatabaseNotFoundError):
        open_storage(path, readonly=True)
    with pytest.raises(DatabaseNotFoundError):
        FileStorage(path, readonly=True)
    assert not os.path.exists(path)
    storage = open_storage(path, create=True, kind='DFS20')
    assert isinstance(storage, FileStorage2)
    storage.close()
    assert get_storage_class(path) is FileStorage2


PERMISSION_PROBE = textwrap.dedent('''
    import os, sys
    from durus.format import open_storage
    from durus.file_storage import FileStorage
    from durus.sqlite_storage import SqliteStorage
    if os.getuid() == 0:  # root ignores file modes: become nobody
        os.setgid(65534)
        os.setuid(65534)
    for path, storage_class in ((sys.argv[1], FileStorage),
                                (sys.argv[2], SqliteStorage)):
        for opener in (open_storage, storage_class):
            for readonly in (True, False):
                try:
                    opener(path, readonly=readonly)
                except Exception as error:
                    print(type(error).__name__,
                          isinstance(error, PermissionError), error,
                          sep='|')
''')


def test_file_without_permission_is_refused_unchanged(tmp_path):
    directory = tempfile.mkdtemp()
    try:
        os.chmod(directory, 0o777)
        path = good_shelf_in(directory)
        sqlite_path = os.path.join(directory, 'locked.sqlite')
        SqliteStorage(sqlite_path).close()
        befores = []
        for locked in (path, sqlite_path):
            os.chmod(locked, 0)
            befores.append((os.stat(locked).st_mtime_ns,
                            os.path.getsize(locked)))
        result = subprocess.run(
            [sys.executable, '-c', PERMISSION_PROBE, path, sqlite_path],
            capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        lines = [line.split('|') for line in result.stdout.split('\n')[:8]]
        assert [line[:2] for line in lines] == \
            [['DatabasePermissionError', 'True']] * 8, result.stderr
        # One wording for every refusal: what, which file, the way out.
        for (_, _, message), (file, readonly) in zip(lines, [
                (file, readonly) for file in (path, sqlite_path)
                for _ in range(2) for readonly in (True, False)]):
            assert re.match(
                'no permission to (%s) %s; check the mode and owner of the '
                'file and its directory' % ('read' if readonly
                                            else 'read|write',
                                            re.escape(file)), message), \
                message
        assert [(os.stat(locked).st_mtime_ns, os.path.getsize(locked))
                for locked in (path, sqlite_path)] == befores
    finally:
        shutil.rmtree(directory)


def good_shelf_in(directory):
    path = os.path.join(directory, 'locked.durus')
    storage = FileStorage(path)
    commit(storage, record(storage.new_oid()))
    storage.close()
    return path


@pytest.mark.parametrize('data, kind', [
    (b'SHELF-1\n\x00\x00', 'header'),
    (b'SHELF-1\n' + bytes(8) + b'\x00\x00\x00\x00\x00\x00\x00\x99'
     + bytes(16), 'map'),
    (b'DFS20\x00' + b'\x00\x00\x00\x00\x00\x00\x00\x0e' + b'\x00' * 8
     + b'garbage!', 'index'),
])
def test_damaged_headers_are_refused_even_with_repair(tmp_path, data, kind):
    path = make_file(tmp_path, 'bad.durus', data)
    before = snapshot(path)
    for repair in (False, True):
        with pytest.raises(DamagedFileError, match='backup'):
            open_storage(path, repair=repair)
    assert snapshot(path) == before


def test_garbage_sqlite_file_is_refused_unchanged(tmp_path):
    path = make_file(tmp_path, 'bad.sqlite',
                     b'SQLite format 3\x00' + b'\xee' * 2000)
    before = snapshot(path)
    with pytest.raises(UnknownFormatError, match='SQLite'):
        open_storage(path)
    assert snapshot(path) == before


def test_zero_bytes_after_the_last_transaction_are_damage(tmp_path):
    path = good_shelf(tmp_path)
    size = os.path.getsize(path)
    with open(path, 'ab') as f:
        f.write(bytes(4096))
    with pytest.raises(DamagedFileError, match='zero bytes'):
        FileStorage(path)
    assert inspect_damage(path).offset == size
    FileStorage(path, repair=True).close()
    assert os.path.getsize(path) == size


def test_damage_before_the_last_transaction_is_never_repaired(tmp_path):
    path = good_shelf(tmp_path)
    data = bytearray(open(path, 'rb').read())
    # Corrupt the embedded oid of the first record of the first
    # transaction after the empty map (at 40: L, then R, key, oid).
    data[40 + 8 + 8 + 8] ^= 0x55
    path = make_file(tmp_path, 'middle.durus', bytes(data))
    before = snapshot(path)
    damage = inspect_damage(path)
    assert damage.offset == 40 and not damage.repairable
    for repair in (False, True):
        with pytest.raises(DamagedFileError, match='backup') as info:
            FileStorage(path, repair=repair)
        assert isinstance(info.value, DurusError)
    assert snapshot(path) == before
    assert not [name for name in os.listdir(str(tmp_path))
                if '.torn-' in name]


def test_inspecting_an_intact_file_finds_nothing(tmp_path):
    path = good_shelf(tmp_path)
    before = snapshot(path)
    assert inspect_damage(path) is None
    assert snapshot(path) == before


def test_garbage_after_the_last_transaction_is_damage(tmp_path):
    path = good_shelf(tmp_path)
    size = os.path.getsize(path)
    garbage = bytes(range(256)) * 3
    with open(path, 'ab') as f:
        f.write(garbage)
    with pytest.raises(DamagedFileError) as info:
        FileStorage(path)
    assert (info.value.offset, info.value.nbytes) == (size, len(garbage))
    FileStorage(path, repair=True).close()
    assert os.path.getsize(path) == size
    with open(path + '.torn-%d' % size, 'rb') as f:
        assert f.read() == garbage


def test_storage_classes_by_dotted_name(tmp_path):
    # The one place where a storage class is found by its name: the
    # formats' own classes and `durus -s --storage-class`.
    from durus.format import import_storage_class
    assert import_storage_class('durus.file_storage2.FileStorage2') is \
        FileStorage2
    with pytest.raises(ValueError, match='module.Class'):
        import_storage_class('FileStorage')
    with pytest.raises(ImportError, match='has no class NoSuchStorage'):
        import_storage_class('durus.file_storage.NoSuchStorage')
    with pytest.raises(ImportError):
        import_storage_class('no_such_module_here.Storage')
