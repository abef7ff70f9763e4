"""A server that refuses a request tells the client why, then hangs up.

Real `durus -s` processes: a commit over ``--max-frame``, a commit to a
full disk and to a file system that went read-only (a small ext4 image
loop-mounted; needs root).  Each time the committing client gets
``ServerRefusedError`` with the server's reason, and the server goes on
serving the others.  The Durus 4.3 client reads the refusal as an
unexpected status (its ProtocolError).
"""

import os
import subprocess
import uuid

import pytest

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ServerRefusedError
from durus.persistent_dict import PersistentDict
from durus43_env import run_durus43

from server_process import durus_server  # noqa: F401


def connect(server, protocol=2):
    return Connection(ClientStorage(port=server.port, protocol=protocol))


def bystander_still_served(server):
    """A fresh client loads, commits and sees its commit."""
    connection = connect(server)
    root = connection.get_root()
    root['after'] = root.get('after', 0) + 1
    connection.commit()
    value = root['after']
    connection.get_storage().close()
    check = connect(server)
    assert check.get_root()['after'] == value
    check.get_storage().close()


@pytest.mark.parametrize('protocol', [1, 2])
def test_commit_over_the_frame_limit_is_refused_with_the_reason(
        durus_server, protocol):
    server = durus_server('--max-frame', str(64 * 1024))
    watcher = connect(server)
    watcher.get_root()
    connection = connect(server, protocol)
    connection.get_root()['big'] = os.urandom(256 * 1024)
    if protocol == 2:
        expected = ('refused the commit: commit of [0-9]+ bytes exceeds the '
                    'frame limit of 65536 bytes')
    else:       # protocol 1 carries no reason; the error says so
        expected = 'refused the commit: it gave no reason'
    with pytest.raises(ServerRefusedError, match=expected):
        connection.commit()
    assert 'exceeds the frame limit' in server.log()
    bystander_still_served(server)
    watcher.abort()                           # an open client is unharmed
    assert 'big' not in watcher.get_root()


DURUS43_BIG_COMMIT = '''
import sys
from durus.client_storage import ClientStorage
from durus.connection import Connection
c = Connection(ClientStorage(port=int(sys.argv[1])))
import os
c.get_root()['big'] = os.urandom(256 * 1024)
try:
    c.commit()
except Exception as error:
    print(type(error).__name__, error)
try:
    c.abort()
    c.get_root()._p_load_state()
    print('still usable')
except Exception as error:
    print('then', type(error).__module__, type(error).__name__)
'''


def test_durus43_client_reads_a_refusal_as_a_protocol_error(
        durus_server, durus43_python):
    server = durus_server('--max-frame', str(64 * 1024))
    connect(server).commit()                    # the root exists
    lines = run_durus43(durus43_python, DURUS43_BIG_COMMIT,
                        server.port).stdout.splitlines()
    assert lines[0] == "ProtocolError server returned invalid status b'E'"
    # the server has hung up; its next request finds the socket closed
    assert lines[1].startswith('then ')
    assert 'still usable' not in lines
    bystander_still_served(server)


# A small file system of our own -------------------------------------------

def _run(*command):
    return subprocess.run(command, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def small_filesystem(tmp_path):
    """An 8 MiB ext4 mounted at a fresh directory; unmounted at the end.
    ``remount_readonly()`` makes it read-only under open files (by
    reporting a file system error, as a failing disk would: a plain
    remount is refused while files are open for writing)."""
    if os.geteuid() != 0:
        pytest.skip('mounting a file system image needs root')
    image = tmp_path / 'fs.img'
    mount_point = tmp_path / 'mnt'
    mount_point.mkdir()
    with open(image, 'wb') as f:
        f.truncate(8 << 20)
    try:
        _run('mkfs.ext4', '-q', '-F', str(image))
        device = _run('losetup', '-f', '--show', str(image))
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip('cannot set up a loop device here: %s' % error)
    try:
        _run('mount', '-o', 'errors=remount-ro', device, str(mount_point))
    except (OSError, subprocess.CalledProcessError) as error:
        _run('losetup', '-d', device)
        pytest.skip('cannot mount a loop device here: %s' % error)

    class Mounted(object):
        path = mount_point

        def remount_readonly(self):
            trigger = '/sys/fs/ext4/%s/trigger_fs_error' % (
                os.path.basename(device))
            if not os.path.exists(trigger):
                pytest.skip('this kernel cannot be told to fail %s (no %s)'
                            % (device, trigger))
            with open(trigger, 'w') as f:
                f.write('test: make the file system read-only')

    try:
        yield Mounted()
    finally:
        subprocess.run(['umount', '-l', str(mount_point)],
                       capture_output=True)
        subprocess.run(['losetup', '-d', device], capture_output=True)


def fill(directory):
    """Write a file until the file system has no space left."""
    path = os.path.join(str(directory), 'filler-%s' % uuid.uuid4().hex)
    chunk = b'\0' * (64 * 1024)
    with open(path, 'wb', buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        chunk = b'\0' * 512
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            os.fsync(f.fileno())
        except OSError:
            pass


def test_commit_to_a_full_disk_is_refused_with_the_reason(
        durus_server, small_filesystem):
    server = durus_server(file=small_filesystem.path / 'db.durus')
    setup = connect(server)
    setup.get_root()['data'] = PersistentDict(n=1)
    setup.commit()
    reader = connect(server)
    assert reader.get_root()['data']['n'] == 1
    fill(small_filesystem.path)
    setup.get_root()['data']['blob'] = os.urandom(256 * 1024)
    with pytest.raises(ServerRefusedError,
                       match='refused the commit: .*No space left on device'):
        setup.commit()
    assert 'No space left on device' in server.log()
    reader.abort()                              # others are still served
    assert reader.get_root()['data']['n'] == 1
    assert 'blob' not in reader.get_root()['data']
    assert connect(server).get_root()['data']['n'] == 1


def test_commit_to_a_read_only_file_system_is_refused_with_the_reason(
        durus_server, small_filesystem):
    server = durus_server(file=small_filesystem.path / 'db.durus')
    setup = connect(server)
    setup.get_root()['data'] = PersistentDict(n=1)
    setup.commit()
    reader = connect(server)
    assert reader.get_root()['data']['n'] == 1
    small_filesystem.remount_readonly()
    setup.get_root()['data']['n'] = 2
    with pytest.raises(ServerRefusedError,
                       match='refused the commit: .*Read-only file system'):
        setup.commit()
    reader.abort()
    assert reader.get_root()['data']['n'] == 1
    assert connect(server).get_root()['data']['n'] == 1


def test_a_client_still_sending_reads_the_refusal_after_its_send_fails(
        monkeypatch):
    """With no linger the server closes while the client is still
    sending a 32 MB commit: its send fails, and it looks for the reason
    the server sent before (Linux keeps received bytes readable after a
    reset)."""
    import threading
    import durus.storage_server
    from durus.serialize import pack_record
    from durus.storage import MemoryStorage
    monkeypatch.setattr(durus.storage_server, 'LINGER', 0)
    looked = []
    look = ClientStorage._refusal_after_failed_send
    monkeypatch.setattr(ClientStorage, '_refusal_after_failed_send',
                        lambda self: looked.append(1) or look(self))
    server = durus.storage_server.StorageServer(
        MemoryStorage(), port=0, max_frame=64 * 1024)
    server.listen()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        client = ClientStorage(port=server.address.port)
        oid = client.new_oid()
        client.begin()
        client.store(oid, pack_record(oid, os.urandom(32 << 20), b''))
        with pytest.raises(ServerRefusedError, match='exceeds the frame limit'):
            client.end()
        assert looked                    # it was found after a failed send
    finally:
        server.stop()
        thread.join(10)
    assert not thread.is_alive()
