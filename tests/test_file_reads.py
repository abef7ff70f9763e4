"""durus.file.File reads: the memory-mapped part and the pread fallback.

Reads inside the mapped part of the file skip the system call (the file is
mapped once a few reads have been made); these tests
check that what is read is always what is on disk, however the file grew or
was cut, and that the map never outlives the file's lock.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from durus import file as file_module
from durus.error import DatabaseInUseError
from durus.file import File


def read_until_mapped(f):
    """Make enough reads for ``f`` to map the file (the first few don't)."""
    for _ in range(file_module._REMAP_AFTER + 1):
        f.pread(1, 0)
    assert f._map is not None  # the tests below need the mapped path


def test_reads_follow_appends_past_the_mapped_part(tmp_path):
    f = File(str(tmp_path / 'grow.bin'))
    f.pwrite(b'a' * 5000, 0)
    read_until_mapped(f)
    assert f.pread(10, 4995) == b'aaaaa'
    assert f.pread(3, 0) == b'aaa'
    # Appended after the map was made: read through pread, then (after
    # enough such reads) through a new, longer map; the bytes must match
    # either way.
    for round_number in range(3 * file_module._REMAP_AFTER):
        offset = 5000 + 7 * round_number
        piece = ('%07d' % round_number).encode()
        f.pwrite(piece, offset)
        assert f.pread(7, offset) == piece
        assert f.pread(7, 5000) == b'0000000'
        assert f.pread(5, 0) == b'aaaaa'
    size = 5000 + 7 * 3 * file_module._REMAP_AFTER
    assert f.pread(100, size - 7) == ('%07d' % (3 * file_module._REMAP_AFTER
                                                 - 1)).encode()
    assert f.pread(10, size + 1000) == b''
    f.close()


def test_bytes_changed_in_place_are_read_back(tmp_path):
    # A repair rewrites nothing in place, but pwrite may: the map must
    # show the page cache, never a stale copy.
    f = File(str(tmp_path / 'same.bin'))
    f.pwrite(b'x' * 8192, 0)
    read_until_mapped(f)
    assert f.pread(4, 100) == b'xxxx'
    f.pwrite(b'yyyy', 100)
    assert f.pread(6, 99) == b'xyyyyx'
    f.close()


def test_read_past_a_truncation_gives_nothing_and_does_not_crash(tmp_path):
    # Pages wholly past the end of a mapped file raise SIGBUS when
    # touched, which would kill the process: run it in a child.
    path = str(tmp_path / 'cut.bin')
    script = textwrap.dedent('''
        import sys
        from durus import file as file_module
        from durus.file import File
        f = File(sys.argv[1])
        f.pwrite(b'z' * 3 * 65536, 0)
        for _ in range(file_module._REMAP_AFTER + 1):
            f.pread(1, 0)
        assert f._mapped == 3 * 65536  # all of it mapped
        assert f.pread(4, 3 * 65536 - 4) == b'zzzz'
        f.truncate(1000)
        print(repr(f.pread(4, 2 * 65536)), repr(f.pread(8, 996)))
        f.pwrite(b'new', 1000)
        print(repr(f.pread(8, 996)))
        f.close()
    ''')
    result = subprocess.run([sys.executable, '-c', script, path],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split('\n')[:2] == ["b'' b'zzzz'", "b'zzzznew'"]


def test_closing_releases_the_lock_although_the_file_was_mapped(tmp_path):
    # The map holds its own duplicate of the descriptor, which would keep
    # the lock of the shared open file description alive.
    path = str(tmp_path / 'locked.bin')
    first = File(path)
    first.pwrite(b'q' * 10000, 0)
    read_until_mapped(first)
    with pytest.raises(DatabaseInUseError):
        File(path)
    first.close()
    second = File(path)
    assert second.pread(4, 9996) == b'qqqq'
    second.close()


def test_readonly_file_is_mapped_and_reads_a_writers_appends(tmp_path):
    path = str(tmp_path / 'shared.bin')
    writer = File(path)
    writer.pwrite(b'w' * 4096, 0)
    reader = File(path, readonly=True)
    read_until_mapped(reader)
    assert reader.pread(4, 0) == b'wwww'
    writer.pwrite(b'more', 4096)
    assert reader.pread(8, 4092) == b'wwwwmore'
    reader.close()
    writer.close()


def test_empty_file_is_read_without_a_map(tmp_path):
    path = str(tmp_path / 'empty.bin')
    f = File(path)
    for _ in range(file_module._REMAP_AFTER + 1):
        assert f.pread(16, 0) == b''  # an empty file cannot be mapped
    assert f._map is None
    f.pwrite(b'now', 0)
    assert f.pread(16, 0) == b'now'
    f.close()
    assert os.path.getsize(path) == 3


def test_pwrite_finishes_a_write_the_system_cut_short(tmp_path, monkeypatch):
    # os.pwrite may write less than it was given: File.pwrite writes the
    # rest, at the right offsets, however the first call went.
    path = str(tmp_path / 'short_writes')
    written = File(path)
    real_pwrite = os.pwrite
    calls = []

    def three_bytes_at_most(fd, data, offset):
        calls.append(offset)
        return real_pwrite(fd, bytes(data[:3]), offset)

    monkeypatch.setattr(os, 'pwrite', three_bytes_at_most)
    written.pwrite(b'0123456789', 0)
    monkeypatch.setattr(os, 'pwrite', real_pwrite)
    written.pwrite(b'abcdefgh', 10)
    written.close()
    with open(path, 'rb') as f:
        assert f.read() == b'0123456789abcdefgh'
    assert calls == [0, 3, 6, 9]


def test_a_storage_dropped_unclosed_lets_its_file_go(tmp_path):
    # The compiled loads keep what they learnt of a packed file's offset
    # map between loads; that must not keep a dropped storage's file (its
    # descriptor and map) alive.
    import gc
    import weakref
    from durus.connection import Connection
    from durus.file_storage import FileStorage
    from durus.persistent_dict import PersistentDict

    path = str(tmp_path / 'packed.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    for n in range(30):
        connection.get_root()[n] = PersistentDict(n=n)
    connection.commit()
    storage.pack()
    storage.close()

    def load_some():
        storage = FileStorage(path, readonly=True)
        read_until_mapped(storage.shelf.file)  # (the compiled loads' case)
        root = Connection(storage).get_root()
        assert [root[n]['n'] for n in range(30)] == list(range(30))
        return weakref.ref(storage.shelf.file), weakref.ref(storage)

    file_ref, storage_ref = load_some()
    gc.collect()
    assert storage_ref() is None
    assert file_ref() is None
