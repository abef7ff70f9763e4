"""Group commit: with a storage that can defer its fsync, commits of
several clients share one fsync, and no reply that could show a commit
(its 'O', a load of its records) leaves the server before it is durable.
"""

import socket
import threading
import time

import pytest

from durus.client_storage import ClientStorage
from durus.serialize import pack_record
from durus.storage import MemoryStorage
from durus.storage_server import StorageServer

from server_process import wait_for


def oid(n):
    return n.to_bytes(8, 'big')


class DeferringStorage(MemoryStorage):
    """MemoryStorage that tells durable records from written ones."""

    def __init__(self):
        MemoryStorage.__init__(self)
        self.durable = {}
        self.fsyncs = 0
        self.plain_ends = 0

    def end(self, handle_invalidations=None):
        self.plain_ends += 1
        MemoryStorage.end(self, handle_invalidations)
        self.durable.update(self.records)

    def end_deferred(self, handle_invalidations=None):
        MemoryStorage.end(self, handle_invalidations)

    def make_durable(self):
        self.fsyncs += 1
        self.durable.update(self.records)


@pytest.fixture
def serve():
    running = []

    def start(storage, **options):
        server = StorageServer(storage, port=0, **options)
        server.listen()
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.stop()
        thread.join(10)


def commit(storage, number, data):
    storage.begin()
    storage.store(number, pack_record(number, data, b''))
    storage.end()


def test_a_commit_is_acknowledged_only_once_durable(serve):
    storage = DeferringStorage()
    server = serve(storage)
    client = ClientStorage(port=server.address.port)
    new = client.new_oid()
    commit(client, new, b'one')
    assert storage.durable[new] == pack_record(new, b'one', b'')
    assert storage.plain_ends == 0 and storage.fsyncs == 1


def test_concurrent_commits_share_fsyncs(serve):
    storage = DeferringStorage()
    server = serve(storage, group_commit_window=0.05)
    rounds, clients = 15, 4
    errors = []

    def work():
        try:
            client = ClientStorage(port=server.address.port)
            mine = client.new_oid()
            for i in range(rounds):
                commit(client, mine, b'%d' % i)
                # acknowledged means durable
                assert storage.durable[mine] == pack_record(
                    mine, b'%d' % i, b'')
        except Exception as error:    # reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert storage.fsyncs < rounds * clients


def test_loads_of_undurable_commits_wait_for_the_fsync(serve):
    storage = DeferringStorage()
    server = serve(storage, group_commit_window=5)
    port = server.address.port
    ClientStorage(port=port)
    writer = ClientStorage(port=port)
    target = writer.new_oid()
    commit(writer, target, b'v1')
    x = socket.create_connection(('127.0.0.1', port), 5)
    y = socket.create_connection(('127.0.0.1', port), 5)
    for sock in (x, y):
        sock.settimeout(5)
    x.sendall(b'C')                           # x holds the commit lock
    assert x.recv(4) == b'\x00\x00\x00\x00'
    y.sendall(b'C')                           # y waits for it
    assert wait_for(lambda: server.core.commit_waiters)
    record = pack_record(target, b'v2', b'')
    item = (8 + len(record)).to_bytes(4, 'big') + target + record
    x.sendall(len(item).to_bytes(4, 'big') + item)
    # y gets its list at once (the lock passed on), naming x's commit ...
    assert y.recv(12) == b'\x00\x00\x00\x01' + target
    # ... but x's 'O' and a load of the new record wait for the fsync
    z = socket.create_connection(('127.0.0.1', port), 5)
    z.sendall(b'L' + target)
    z.settimeout(0.3)
    x.settimeout(0.3)
    with pytest.raises(socket.timeout):
        z.recv(1)
    with pytest.raises(socket.timeout):
        x.recv(1)
    assert storage.durable[target] != record
    y.sendall(b'\x00\x00\x00\x00')            # y backs out: batch closes
    x.settimeout(5)
    z.settimeout(5)
    assert x.recv(1) == b'O'
    assert storage.durable[target] == record
    reply = z.recv(5 + len(record))
    while len(reply) < 5 + len(record):
        chunk = z.recv(100)
        assert chunk, 'the server closed the connection mid-reply'
        reply += chunk
    assert reply[5:] == record
    for sock in (x, y, z):
        sock.close()


def test_storages_without_the_hook_fsync_in_end(serve):
    storage = MemoryStorage()
    server = serve(storage)
    client = ClientStorage(port=server.address.port)
    new = client.new_oid()
    started = time.monotonic()
    commit(client, new, b'x')
    assert time.monotonic() - started < 1
    assert storage.records[new] == pack_record(new, b'x', b'')


@pytest.mark.parametrize('kind', ['SHELF-1', 'DFS20'])
def test_file_storages_defer_fsync_until_make_durable(tmp_path, monkeypatch,
                                                       kind):
    """end_deferred() writes without fsync; make_durable() (or close) syncs."""
    import os
    from durus.format import open_storage
    path = str(tmp_path / 'db')
    storage = open_storage(path, create=True, kind=kind)
    synced = []
    sync_name = 'fdatasync' if hasattr(os, 'fdatasync') else 'fsync'
    real_fsync = getattr(os, sync_name)
    monkeypatch.setattr(os, sync_name, lambda fd: (synced.append(fd),
                                                 real_fsync(fd)))
    root = pack_record(oid(0), b'\x80\x02cdurus.persistent\nPersistent\n'
                       b'q\x00.\x80\x02}q\x01.', b'')
    storage.begin()
    storage.store(oid(0), root)
    storage.end_deferred()
    assert synced == []
    assert storage.load(oid(0)) == root
    storage.make_durable()
    assert len(synced) == 1
    storage.begin()
    storage.store(oid(0), root)
    storage.end_deferred()
    storage.close()  # closing must not leave a deferred commit unsynced
    assert len(synced) == 2
    monkeypatch.undo()
    reopened = open_storage(path)
    assert reopened.load(oid(0)) == root
    reopened.close()


class BlockingFsyncStorage(DeferringStorage):
    """Its make_durable waits for ``release`` while ``block`` is set."""

    def __init__(self):
        DeferringStorage.__init__(self)
        self.block = False
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads = []

    def make_durable(self):
        self.threads.append(threading.current_thread().name)
        if self.block:
            self.started.set()
            assert self.release.wait(10)
        DeferringStorage.make_durable(self)


def test_with_several_clients_the_loop_serves_loads_while_an_fsync_runs(
        serve):
    storage = BlockingFsyncStorage()
    server = serve(storage)
    port = server.address.port
    writer, reader = ClientStorage(port=port), ClientStorage(port=port)
    x, y = writer.new_oid(), writer.new_oid()
    commit(writer, y, b'y1')
    reader.sync()
    storage.block = True
    done = []
    committing = threading.Thread(
        target=lambda: done.append(commit(writer, x, b'x1')), daemon=True)
    try:
        committing.start()
        assert storage.started.wait(5)
        # The fsync of x's batch runs: a load of y is answered meanwhile
        # (this hangs, and fails, if the fsync blocks the loop) ...
        loaded = []
        loading = threading.Thread(
            target=lambda: loaded.append(reader.load(y)), daemon=True)
        loading.start()
        loading.join(5)
        assert loaded == [pack_record(y, b'y1', b'')]
        # ... while x's commit is not acknowledged before it is durable.
        committing.join(0.3)
        assert done == [] and x not in storage.durable
    finally:
        storage.release.set()
    committing.join(5)
    assert done == [None]
    assert storage.durable[x] == pack_record(x, b'x1', b'')
    assert storage.threads[-1] == 'durus-fsync'


def test_a_single_client_s_fsync_runs_in_the_loop(serve):
    storage = DeferringStorage()
    names = []
    original = storage.make_durable

    def make_durable():
        names.append(threading.current_thread())
        original()

    storage.make_durable = make_durable
    server = serve(storage)
    client = ClientStorage(port=server.address.port)
    new = client.new_oid()
    commit(client, new, b'one')
    assert len(names) == 1 and names[0].name != 'durus-fsync'
    assert server._fsync_thread is None


def test_a_write_during_a_running_sync_still_needs_one(tmp_path, monkeypatch):
    """The server syncs in a helper thread while the loop writes the next
    batch: that write must leave the file marked unsynced (so closing
    syncs it), even though the sync running meanwhile finishes after it."""
    import os
    from durus.file import File
    handle = File(str(tmp_path / 'f'))
    handle.append_durably(b'first', 0, durable=False)
    sync_name = 'fdatasync' if hasattr(os, 'fdatasync') else 'fsync'
    real_sync = getattr(os, sync_name)

    def sync_while_the_loop_writes(fd):
        handle.append_durably(b'second', 5, durable=False)
        real_sync(fd)

    monkeypatch.setattr(os, sync_name, sync_while_the_loop_writes)
    handle.fsync()
    monkeypatch.setattr(os, sync_name, real_sync)
    assert handle.unsynced
    handle.close()
