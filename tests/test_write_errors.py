"""Failed writes say which file and what to do: a full disk (ENOSPC) and
a file system turned read-only (EROFS), on a small loop-mounted ext4, for
every file storage; nothing of the failed commit stays."""

import errno
import os

import pytest

from durus.connection import Connection
from durus.error import DatabaseWriteError
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.sqlite_storage import SqliteStorage
from loop_fs import LoopFs, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=str(unavailable_reason()))

KINDS = {'shelf': FileStorage, 'dfs20': FileStorage2,
         'sqlite': SqliteStorage}


@pytest.fixture
def small_fs(tmp_path):
    fs = LoopFs(tmp_path, size_mb=4,
                options='data=ordered,errors=remount-ro')
    try:
        yield fs
    finally:
        fs.close()


def fill(directory):
    """Write a filler file until the file system is full."""
    block = b'\xff' * 65536
    with open(os.path.join(directory, 'filler'), 'wb', buffering=0) as f:
        for _ in range(10000):  # bounded: 4 MB fill in far fewer
            try:
                f.write(block)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
        else:
            raise AssertionError('the disk never filled')
        while True:  # the last few blocks, smaller
            try:
                f.write(b'\xff' * 1024)
            except OSError:
                break


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_a_full_disk_names_the_file_and_keeps_the_database(small_fs, kind):
    path = os.path.join(small_fs.path, 'db.' + kind)
    connection = Connection(KINDS[kind](path))
    connection.get_root()['kept'] = 'before'
    connection.commit()
    fill(small_fs.path)
    connection.get_root()['big'] = os.urandom(1 << 20)
    with pytest.raises(DatabaseWriteError) as caught:
        connection.commit()
    error = caught.value
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert error.filename == path
    assert path in str(error)
    assert 'nothing was committed' in str(error)
    assert 'free space' in str(error)
    connection.abort()
    os.unlink(os.path.join(small_fs.path, 'filler'))
    connection.get_root()['after'] = 'space freed'
    connection.commit()
    connection.get_storage().close()
    connection = Connection(KINDS[kind](path))
    assert dict(connection.get_root().items()) == {
        'kept': 'before', 'after': 'space freed'}
    connection.get_storage().close()


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_a_file_system_turned_read_only_names_the_file(small_fs, kind):
    path = os.path.join(small_fs.path, 'db.' + kind)
    connection = Connection(KINDS[kind](path))
    connection.get_root()['kept'] = 'before'
    connection.commit()
    small_fs.turn_read_only()
    connection.get_root()['lost'] = 'after'
    with pytest.raises(DatabaseWriteError) as caught:
        connection.commit()
    error = caught.value
    assert error.errno == errno.EROFS and error.filename == path
    assert path in str(error) and 'read-only' in str(error)
    connection.abort()
    connection.get_storage().close()
    # A writable open refuses clearly; a read-only open still works.
    with pytest.raises(DatabaseWriteError) as caught:
        KINDS[kind](path)
    assert caught.value.errno == errno.EROFS and path in str(caught.value)
    assert 'open it read-only' in str(caught.value)
    storage = KINDS[kind](path, readonly=True)
    assert Connection(storage).get_root()['kept'] == 'before'
    storage.close()
