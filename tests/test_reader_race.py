"""Read-only opens while a writer appends: a transaction being written is
not damage, so a reader never suggests repairing a healthy file."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from durus.error import DamagedFileError
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.serialize import split_oids, unpack_record
from durus.storage import ROOT_OID

CLASS = b'\x80\x02capp\nItem\nq\x00.'


def state(text):
    """A state pickle holding one str (BINUNICODE)."""
    return b'\x80\x02X' + len(text).to_bytes(4, 'little') + text + b'.'


def commit_child(storage, children, payload, number=0, keep=10):
    """Commit a new child and a root listing the newest ``keep`` children
    (a pack drops the others) with ``number`` in its state."""
    from durus.serialize import pack_record
    oid = storage.new_oid()
    while oid == ROOT_OID:
        oid = storage.new_oid()
    children.append(oid)
    del children[:-keep]
    storage.begin()
    storage.store(oid, pack_record(oid, CLASS + state(payload), b''))
    storage.store(ROOT_OID, pack_record(
        ROOT_OID, CLASS + state(b'%d' % number),
        b''.join(sorted(children))))
    storage.end()


def read_all(storage):
    """The root's number, once every child it lists has loaded."""
    oid, data, refs = unpack_record(storage.load(ROOT_OID))
    for oid in split_oids(refs):
        assert unpack_record(storage.load(oid))[0] == oid
    return int(data[len(CLASS) + 7:-1])


@pytest.mark.parametrize('storage_class', [FileStorage, FileStorage2])
def test_half_written_transaction_under_a_writers_lock(tmp_path,
                                                       storage_class):
    """What a reader can meet mid-append (the length written, the rest
    missing or not yet there) opens at the last complete transaction
    while the writer holds the lock, and is damage once nobody does."""
    path = str(tmp_path / 'db.durus')
    writer = storage_class(path)
    children = []
    for number in range(3):
        commit_child(writer, children, b'child %d' % number, number)
    end = os.path.getsize(path)
    commit_child(writer, children, b'x' * 5000, 3)
    whole = open(path, 'rb').read()
    last = whole[end:]
    for partial in (last[:3], last[:len(last) // 2], last[:-1],
                    last[:12] + bytes(len(last) - 12)):
        writer.file.truncate(end)
        writer.file.pwrite(partial, end)
        reader = storage_class(path, readonly=True)
        try:
            assert read_all(reader) == 2
        finally:
            reader.close()
    writer.file.close()  # drops the lock, leaves the half transaction
    with pytest.raises(DamagedFileError) as info:
        storage_class(path, readonly=True)
    assert info.value.offset == end


WRITER = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from durus.file_storage import FileStorage
    from durus.file_storage2 import FileStorage2
    from test_reader_race import commit_child
    storage = {'FileStorage': FileStorage,
               'FileStorage2': FileStorage2}[sys.argv[2]](sys.argv[1])
    children = []
    commit_child(storage, children, b'first')
    print('ready', flush=True)
    deadline = time.monotonic() + 20
    number = 1
    while number < 20000 and time.monotonic() < deadline:
        # Large transactions: each write spans many pages.
        commit_child(storage, children, b'%6d;' % number * 10000, number)
        if number % 100 == 0:
            storage.pack()  # keeps the file small
        number += 1
    storage.close()
''')


@pytest.fixture
def memory_dir(tmp_path):
    """A directory in memory when there is one: there fsync costs
    nothing, so the writer spends its time writing and readers often
    meet a transaction half written."""
    if not (os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK)):
        yield str(tmp_path)
        return
    directory = tempfile.mkdtemp(prefix='durus-race-', dir='/dev/shm')
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize('storage_class', [FileStorage, FileStorage2])
def test_readonly_opens_beside_a_committing_writer(memory_dir,
                                                   storage_class):
    path = os.path.join(memory_dir, 'db.durus')
    writer = subprocess.Popen(
        [sys.executable, '-c', WRITER, path, storage_class.__name__,
         os.path.dirname(os.path.abspath(__file__))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert writer.stdout.readline() == b'ready\n', writer.stderr.read()
        opens = 0
        seen = 0
        deadline = time.monotonic() + 3
        while opens < 400 and time.monotonic() < deadline:
            if writer.poll() is not None:
                break
            reader = storage_class(path, readonly=True)  # never damage
            try:
                count = read_all(reader)
            finally:
                reader.close()
            assert count >= seen  # a reader never goes back in time
            seen = count
            opens += 1
        assert opens >= 20 and seen > 1
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.communicate(timeout=30)
