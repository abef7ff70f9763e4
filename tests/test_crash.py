"""Crash safety: a writer killed with SIGKILL at random moments never loses
a commit it reported, and a last transaction cut at any byte is either
refused clearly or, with repair, dropped exactly (and kept aside)."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from durus.error import DamagedFileError
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.serialize import pack_record
from durus.storage import ROOT_OID
from server_process import stop_process
from test_storage_conformance import commit, record

CLASS = b'\x80\x02capp\nItem\nq\x00.'
WRITER = textwrap.dedent('''
    import sys, time
    from durus.file_storage import FileStorage
    from durus.serialize import pack_record, unpack_record, split_oids
    ROOT = b'\\0' * 8
    CLASS = b'\\x80\\x02capp\\nItem\\nq\\x00.'

    def state(text):  # a state pickle of one str (BINUNICODE)
        return (b'\\x80\\x02X' + len(text).to_bytes(4, 'little') + text
                + b'.')

    storage = FileStorage(sys.argv[1])
    try:
        children = split_oids(unpack_record(storage.load(ROOT))[2])
    except KeyError:
        children = []
    number = len(children)
    deadline = time.monotonic() + 60  # the test kills it long before
    while time.monotonic() < deadline:
        oid = storage.new_oid()
        if oid == ROOT:
            continue
        children.append(oid)
        payload = (b'txn-%d;' % number) * 4000
        storage.begin()
        storage.store(oid, pack_record(oid, CLASS + state(payload), b''))
        storage.store(ROOT, pack_record(ROOT, CLASS + state(b'root'),
                                        b''.join(sorted(children))))
        storage.end()
        print(number, flush=True)
        number += 1
        if number % 9 == 0:
            storage.pack()
''')


def committed_numbers(path):
    """Open (repairing a torn tail if needed); the payload numbers found."""
    try:
        storage = FileStorage(path, readonly=True)
    except DamagedFileError:
        FileStorage(path, repair=True).close()
        storage = FileStorage(path, readonly=True)
    found = set()
    try:
        for oid, rec in storage.gen_oid_record(start_oid=ROOT_OID):
            if oid == ROOT_OID:
                continue
            payload = rec[12 + len(CLASS) + 7:-1]  # the str in the state
            head = payload.split(b';', 1)[0]
            number = int(head[4:])
            assert payload == (b'txn-%d;' % number) * 4000, 'damaged record'
            found.add(number)
    finally:
        storage.close()
    return found


@pytest.mark.slow
def test_sigkilled_writer_never_loses_a_reported_commit(tmp_path):
    path = str(tmp_path / 'crash.durus')
    rng = random.Random(1234)
    reported = set()
    deadline = time.monotonic() + 15
    rounds = 0
    while rounds < 40 and time.monotonic() < deadline:
        rounds += 1
        writer = subprocess.Popen(
            [sys.executable, '-c', WRITER, path], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        try:
            # Wait for the first commit, then kill at a random moment.
            first = writer.stdout.readline()
            if first:
                reported.add(int(first))
            time.sleep(rng.uniform(0, 0.08))
            writer.send_signal(signal.SIGKILL)
            out, err = writer.communicate(timeout=30)
        finally:
            stop_process(writer, kill=True)
        assert writer.returncode == -signal.SIGKILL, err.decode()
        reported.update(int(line) for line in out.split())
        found = committed_numbers(path)
        missing = reported - found
        assert not missing, 'lost commits %s' % sorted(missing)[:10]
    assert rounds >= 5 and len(reported) >= rounds


def _numbers(storage):
    return sorted(oid for oid, _ in storage.gen_oid_record())


@pytest.mark.parametrize('storage_class', [FileStorage, FileStorage2])
def test_truncation_at_every_byte_of_the_last_transaction(tmp_path,
                                                          storage_class):
    path = str(tmp_path / 'small.durus')
    storage = storage_class(path)
    oids = [storage.new_oid() for _ in range(4)]
    commit(storage, record(oids[0], b'Root', oids[1:3]), record(oids[1]))
    commit(storage, record(oids[2], b'Second'))
    intact = os.path.getsize(path)
    commit(storage, record(oids[3], b'Last'), record(oids[1], b'Changed'))
    storage.close()
    with open(path, 'rb') as f:
        full = f.read()
    assert len(full) - intact > 60
    for cut in range(intact + 1, len(full)):
        for name in os.listdir(str(tmp_path)):
            if name != 'small.durus':
                os.unlink(str(tmp_path / name))
        with open(path, 'wb') as f:
            f.write(full[:cut])
        with pytest.raises(DamagedFileError) as info:
            storage_class(path)
        assert (info.value.offset, info.value.nbytes) == (intact,
                                                          cut - intact)
        assert '--repair' in str(info.value)
        with open(path, 'rb') as f:
            assert f.read() == full[:cut]  # refusing changed nothing
        storage = storage_class(path, repair=True)
        try:
            assert storage.load(oids[1]) == record(oids[1])
            assert storage.load(oids[2]) == record(oids[2], b'Second')
            with pytest.raises(KeyError):
                storage.load(oids[3])
        finally:
            storage.close()
        assert os.path.getsize(path) == intact
        with open(path + '.torn-%d' % intact, 'rb') as f:
            assert f.read() == full[intact:cut]
