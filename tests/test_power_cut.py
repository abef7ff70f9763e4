"""Power cuts: every commit a storage acknowledged survives one.

A writer process commits in a loop on a file of a loop-mounted ext4 and
reports each commit after ``commit()`` returned.  At a random moment the
writer (and the server, if any) is frozen with SIGSTOP and the loop
device's backing image is copied: the copy holds what the disk had
received, without the dirty page cache of the ext4 on top, which is what
a power cut loses.  The copy is checked with ``e2fsck -fy``, mounted (its
journal replays), and the database opened on it must hold every commit
reported before the freeze, every object reading back intact.  See
tests/loop_fs.py for the file system set-up.

Without ``PRAGMA synchronous=EXTRA`` SqliteStorage lost the last
acknowledged commit in most trials here (its deleted rollback journal
came back as a hot journal and was rolled back).
"""

import os
import random
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from loop_fs import LoopFs, unavailable_reason
from power_cut_writer import payload
from server_process import ServerProcess, free_port

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
WRITER = os.path.join(TESTS_DIR, 'power_cut_writer.py')
TRIALS = 4
# Seconds the writer runs after its first acknowledged commit before the
# cut (drawn per trial).
CUT_AFTER = (0.05, 0.6)
FILE_NAMES = {'shelf': 'db.durus', 'dfs20': 'db.dfs20',
              'sqlite': 'db.sqlite', 'sqlite-full': 'db.sqlite',
              'client': 'db.durus', 'client-threaded': 'db.durus'}
CANARY_TRIALS = 8

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None,
                       reason=str(unavailable_reason())),
]


@pytest.fixture(scope='module')
def loop_fs(tmp_path_factory):
    fs = LoopFs(tmp_path_factory.mktemp('power-cut'))
    try:
        yield fs
    finally:
        fs.close()


@pytest.fixture(scope='module')
def ext2_fs(tmp_path_factory):
    """No journal: an fsync of a file does not make its directory entry
    durable, so creating and renaming files must sync the directory."""
    fs = LoopFs(tmp_path_factory.mktemp('power-cut-ext2'),
                options='defaults', fstype='ext2')
    try:
        yield fs
    finally:
        fs.close()


class Writer(object):
    """The writer process and the acknowledgements read from it."""

    def __init__(self, kind, target, seed):
        self.process = subprocess.Popen(
            [sys.executable, WRITER, kind, target, str(seed)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=TESTS_DIR)
        self.acked = []
        self.packs = 0
        self._partial = b''

    def read(self, timeout, until_first_ack=False):
        """Read the reports that arrive within ``timeout`` seconds (or
        until the first commit is acknowledged)."""
        deadline = time.monotonic() + timeout
        stdout = self.process.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (until_first_ack and self.acked):
                return
            ready, _, _ = select.select([stdout], [], [], left)
            if not ready:
                return
            data = os.read(stdout, 65536)
            if not data:
                return
            lines = (self._partial + data).split(b'\n')
            self._partial = lines.pop()  # an unfinished line: not counted
            for line in lines:
                word, number = line.split()
                if word == b'ack':
                    self.acked.append(int(number))
                else:
                    self.packs += 1

    def drain(self):
        """The reports already written (the writer is stopped)."""
        self.read(0.05)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.process.stdout.close()
        error = self.process.stderr.read().decode(errors='replace')
        self.process.stderr.close()
        return error


def open_after_cut(kind, path):
    """Open what survived; an incomplete unacknowledged last transaction
    of a file storage is repaired (cut off), as an operator would."""
    if kind in ('shelf', 'client', 'client-threaded'):
        from durus.file_storage import FileStorage
        return FileStorage(path, repair=True)
    if kind == 'dfs20':
        from durus.file_storage2 import FileStorage2
        return FileStorage2(path, repair=True)
    from durus.sqlite_storage import SqliteStorage
    return SqliteStorage(path)  # SQLite rolls back a hot journal itself


def lost_commits(kind, path, acked):
    """The acknowledged commit numbers missing (or damaged) in ``path``."""
    from durus.connection import Connection
    storage = open_after_cut(kind, path)
    try:
        connection = Connection(storage)
        for oid, record in storage.gen_oid_record():
            obj = connection.get(oid)  # every object reads back
            if obj._p_is_ghost():
                obj._p_load_state()
        root = connection.get_root()
        lost = []
        for number in acked:
            item = root.get('item-%d' % number)
            if item is None or item['payload'] != payload(number):
                lost.append(number)
        if not lost and acked:
            assert root['last'] >= max(acked), root['last']
        return lost
    finally:
        storage.close()


def run_trial(fs, kind, trial, tmp_path):
    """One power cut; returns the acknowledged commit numbers, the lost
    ones, and the number of packs done."""
    rng = random.Random('%s-%d-%d' % (kind, trial, time.time_ns()))
    directory = os.path.join(fs.path, '%s-%d' % (kind, trial))
    os.mkdir(directory)
    os.sync()  # the directory itself is not under test
    path = os.path.join(directory, FILE_NAMES[kind])
    server = idle = None
    target = path
    if kind in ('client', 'client-threaded'):
        port = free_port()
        server = ServerProcess(['--file', path, '--port', str(port)],
                               tmp_path / ('server-%d.log' % trial))
        target = '127.0.0.1:%d' % port
        if kind == 'client-threaded':
            # A second client connected: the server makes commits
            # durable in its helper thread while the loop goes on.
            idle = socket.create_connection(('127.0.0.1', port), 10)
    writer = Writer('client' if idle else kind, target,
                    rng.randrange(1 << 30))
    frozen = [p for p in (writer.process, server and server.process) if p]
    try:
        writer.read(15, until_first_ack=True)
        if not writer.acked:
            raise AssertionError('the writer acknowledged nothing:\n'
                                 + writer.kill())
        writer.read(rng.uniform(*CUT_AFTER))
        for process in frozen:
            process.send_signal(signal.SIGSTOP)
        writer.drain()
        copy = fs.snapshot()
    finally:
        for process in frozen:
            if process.poll() is None:
                process.kill()
        error = writer.kill()
        if idle is not None:
            idle.close()
        if server is not None:
            server.stop()
    mount, fsck = fs.mount_copy(copy)
    try:
        lost = lost_commits(kind, os.path.join(
            mount.mountpoint, os.path.basename(directory), FILE_NAMES[kind]),
            writer.acked)
    finally:
        fs.release(mount)
    assert 'Traceback' not in error, error
    return writer.acked, lost, writer.packs


@pytest.mark.parametrize('kind', ['shelf', 'dfs20', 'sqlite', 'client',
                                  'client-threaded'])
def test_acknowledged_commits_survive_a_power_cut(loop_fs, kind, tmp_path):
    results = [run_trial(loop_fs, kind, trial, tmp_path)
               for trial in range(TRIALS)]
    summary = ', '.join('%d acked/%d lost/%d packs'
                        % (len(acked), len(lost), packs)
                        for acked, lost, packs in results)
    print('%s power cuts: %s' % (kind, summary))
    losses = [(trial, lost) for trial, (_, lost, _) in enumerate(results)
              if lost]
    assert not losses, ('%s lost acknowledged commits (trial, numbers): %r'
                        % (kind, losses))


def test_the_emulated_power_cut_catches_a_known_loss(loop_fs, tmp_path):
    """The canary: SQLite at its default level (FULL) loses the last
    acknowledged commit in most cuts here (15 of 20 when measured), so a
    run that never loses one means the emulation no longer shows the
    risk and the test above proves nothing."""
    for trial in range(CANARY_TRIALS):
        acked, lost, _ = run_trial(loop_fs, 'sqlite-full', trial, tmp_path)
        if lost:
            assert lost == [max(acked)]  # the last one, as seen before
            return
    raise AssertionError('%d power cuts lost nothing with SQLite\'s FULL '
                         'level: the emulation no longer catches a known '
                         'loss' % CANARY_TRIALS)


@pytest.mark.parametrize('kind', ['shelf', 'dfs20', 'sqlite'])
def test_new_files_and_packs_survive_a_power_cut_without_a_journal(
        ext2_fs, kind, tmp_path):
    results = [run_trial(ext2_fs, kind, trial, tmp_path)
               for trial in range(3)]
    print('%s power cuts on ext2: %s' % (kind, ', '.join(
        '%d acked/%d lost/%d packs' % (len(acked), len(lost), packs)
        for acked, lost, packs in results)))
    assert not [lost for _, lost, _ in results if lost]
