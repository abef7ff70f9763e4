"""A read-only FileStorage (SHELF-1 and DFS20) catches up with a writer on
``sync()``: transactions appended since are read and their oids returned
as invalidations, so a Connection sees the new states after ``abort()``,
and durus-shell's ``:abort`` counts what others changed."""

import os
import subprocess
import sys
import textwrap

import pytest

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.persistent_dict import PersistentDict
from durus_shell.commands import run_input
from durus_shell.session import GATE_READONLY, Session
from durus_shell.ui import RecordingUI

KINDS = {'shelf': FileStorage, 'dfs20': FileStorage2}


@pytest.fixture(params=sorted(KINDS))
def storage_class(request):
    return KINDS[request.param]


def writer_and_reader(storage_class, path):
    writer = Connection(storage_class(path))
    writer.get_root()['item'] = PersistentDict(value=1)
    writer.commit()
    reader = Connection(storage_class(path, readonly=True))
    assert reader.get_root()['item']['value'] == 1
    return writer, reader


def test_sync_reads_appended_transactions(storage_class, tmp_path):
    path = str(tmp_path / 'db')
    writer, reader = writer_and_reader(storage_class, path)
    raw = storage_class(path, readonly=True)
    item = writer.get_root()['item']
    item['value'] = 2
    writer.get_root()['added'] = 'new'
    writer.commit()
    # Until the reader syncs, it keeps the state it had (one snapshot).
    assert reader.get_root()['item']['value'] == 1
    assert 'added' not in reader.get_root()
    invalid = raw.sync()
    assert sorted(invalid) == sorted([writer.get_root()._p_oid, item._p_oid])
    assert raw.sync() == []  # each reported once
    assert raw.load(item._p_oid) == writer.get_storage().load(item._p_oid)
    # Through a Connection: abort() syncs and drops the stale states.
    reader.abort()
    assert reader.get_root()['item']['value'] == 2
    assert reader.get_root()['added'] == 'new'
    for storage in (writer.get_storage(), reader.get_storage(), raw):
        storage.close()


def test_a_transaction_being_written_waits_for_the_next_sync(
        storage_class, tmp_path):
    path = str(tmp_path / 'db')
    writer, reader = writer_and_reader(storage_class, path)
    writer.get_root()['item']['value'] = 2
    writer.commit()
    complete = os.path.getsize(path)
    writer.get_root()['item']['value'] = 3
    writer.commit()
    with open(path, 'rb') as f:
        last = f.read()[complete:]
    # Cut the newest transaction in half, as a reader may see it while
    # the writer's write is under way.
    writer.get_storage().close()
    os.truncate(path, complete + len(last) // 2)
    reader.abort()
    assert reader.get_root()['item']['value'] == 2
    with open(path, 'ab') as f:
        f.write(last[len(last) // 2:])
    reader.abort()
    assert reader.get_root()['item']['value'] == 3
    reader.get_storage().close()


def test_sync_follows_a_pack_by_the_writer(storage_class, tmp_path):
    path = str(tmp_path / 'db')
    writer, reader = writer_and_reader(storage_class, path)
    root = writer.get_root()
    root['doomed'] = PersistentDict()
    writer.commit()
    raw = storage_class(path, readonly=True)
    reader.abort()
    doomed = reader.get_root()['doomed']._p_oid
    del root['doomed']
    root['item']['value'] = 2
    writer.commit()
    writer.pack()
    root['item']['value'] = 3  # committed to the packed file
    writer.commit()
    invalid = raw.sync()
    assert doomed in invalid and root._p_oid in invalid
    with pytest.raises(KeyError):
        raw.load(doomed)
    reader.abort()
    assert reader.get_root()['item']['value'] == 3
    assert 'doomed' not in reader.get_root()
    for storage in (writer.get_storage(), reader.get_storage(), raw):
        storage.close()


WRITER = textwrap.dedent('''
    import sys
    from durus.connection import Connection
    from durus.persistent_dict import PersistentDict
    from durus.format import open_storage
    connection = Connection(open_storage(sys.argv[1]))
    root = connection.get_root()
    for number in range(int(sys.argv[2])):
        root['n%d' % number] = PersistentDict(number=number)
        root['last'] = number
        connection.commit()
''')


def write_in_another_process(path, commits):
    subprocess.run([sys.executable, '-c', WRITER, path, str(commits)],
                   check=True, timeout=60)


def test_a_real_writer_process_is_followed(storage_class, tmp_path):
    path = str(tmp_path / 'db')
    Connection(storage_class(path)).get_storage().close()  # a root only
    reader = Connection(storage_class(path, readonly=True))
    assert 'last' not in reader.get_root()
    write_in_another_process(path, 40)
    reader.abort()
    root = reader.get_root()
    assert root['last'] == 39
    assert [root['n%d' % n]['number'] for n in range(40)] == list(range(40))
    reader.get_storage().close()


def test_shell_abort_counts_what_the_writer_changed(storage_class, tmp_path):
    path = str(tmp_path / 'db')
    Connection(storage_class(path)).get_storage().close()  # a root only
    session = Session(storage_class(path, readonly=True),
                      mode=GATE_READONLY)
    assert 'last' not in session.root
    write_in_another_process(path, 25)
    ui = RecordingUI()
    run_input(session, ':abort', ui)
    # 25 new objects, and the root (rewritten by every commit).
    assert '26 objects changed by other clients' in ui.text, ui.text
    assert session.root['last'] == 24
    session.close()


def test_a_read_only_server_passes_the_writer_on_to_its_clients(tmp_path):
    from durus.client_storage import ClientStorage
    from server_process import ServerProcess, free_port
    path = str(tmp_path / 'db.durus')
    Connection(FileStorage(path)).get_storage().close()  # a root only
    port = free_port()
    server = ServerProcess(['--file', path, '--readonly', '--port',
                            str(port)], tmp_path / 'server.log')
    try:
        client = Connection(ClientStorage(port=port))
        assert 'last' not in client.get_root()
        write_in_another_process(path, 5)
        client.abort()
        assert client.get_root()['last'] == 4
        assert client.get_root()['n3']['number'] == 3
        client.get_storage().close()
    finally:
        server.stop()
