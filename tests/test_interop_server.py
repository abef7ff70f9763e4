"""Wire interoperability with the real Durus 4.3, both directions:
its ClientStorage against our server, ours against its server, and both
kinds of client committing to one server at once."""

import subprocess
import sys

import pytest

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ConflictError, WriteConflictError
from durus.persistent_dict import PersistentDict
from durus43_env import run_durus43

from server_process import (durus_server,  # noqa: F401
                            stop_process, wait_for)

pytestmark = pytest.mark.slow

WRITE_AND_CHECK = '''
import sys
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
port = int(sys.argv[1])
c = Connection(ClientStorage(port=port))
root = c.get_root()
assert root['from_ours']['items'] == [1, 2, 3], root['from_ours']
root['from_43'] = PersistentDict(text='written by 4.3',
                                 kids=PersistentList([PersistentDict(i=i)
                                                      for i in range(50)]))
c.commit()
root['from_ours']['seen_by_43'] = True
c.commit()
c.get_storage().close()
print('ok')
'''


def test_durus43_client_against_our_server(durus_server, durus43_python):
    server = durus_server()
    ours = Connection(ClientStorage(port=server.port))
    assert ours.get_storage().version == 4    # 4.3's client will ask for 1
    ours.get_root()['from_ours'] = PersistentDict(items=[1, 2, 3])
    ours.commit()
    result = run_durus43(durus43_python, WRITE_AND_CHECK, server.port)
    assert result.stdout.strip() == 'ok'
    ours.abort()
    root = ours.get_root()
    assert root['from_43']['text'] == 'written by 4.3'
    assert [kid['i'] for kid in root['from_43']['kids']] == list(range(50))
    assert root['from_ours']['seen_by_43'] is True
    # 4.3 closes its session with '.', logged, not an error
    assert 'Traceback' not in server.log()


CONFLICT_43 = '''
import sys
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import WriteConflictError
port = int(sys.argv[1])
c = Connection(ClientStorage(port=port))
root = c.get_root()
root['n'] += 100            # read and change n; then let the other side go
sys.stdout.write('changed\\n'); sys.stdout.flush()
sys.stdin.readline()
try:
    c.commit()
    print('committed')
except WriteConflictError:
    c.abort()
    root['n'] += 100
    c.commit()
    print('retried')
'''


def test_conflict_between_43_client_and_ours(durus_server, durus43_python):
    server = durus_server()
    ours = Connection(ClientStorage(port=server.port))
    ours.get_root()['n'] = 0
    ours.commit()
    other = subprocess.Popen(
        [durus43_python, '-c', CONFLICT_43, str(server.port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == 'changed'
        ours.get_root()['n'] += 1
        ours.commit()
        other.stdin.write('go\n')
        other.stdin.flush()
        assert other.stdout.readline().strip() == 'retried'
        assert other.wait(30) == 0
    finally:
        stop_process(other, kill=True)
    ours.abort()
    assert ours.get_root()['n'] == 101


def test_durus43_stop_command_stops_our_server(durus_server, durus43_python):
    server = durus_server()
    result = subprocess.run(
        [durus43_python, '-m', 'durus', '-s', '--stop', '--port',
         str(server.port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert server.wait(10) == 0


def test_our_client_against_durus43_server(durus_server, durus43_python,
                                           tmp_path):
    server = durus_server(python=durus43_python)
    a = Connection(ClientStorage(port=server.port))
    b = Connection(ClientStorage(port=server.port))
    # Asked for protocol 2, told 1 (and hung up on), connected again.
    assert a.get_storage().version == b.get_storage().version == 1
    root = a.get_root()
    root['kids'] = PersistentDict((i, PersistentDict(i=i)) for i in range(100))
    a.commit()
    b.abort()
    kids = b.get_root()['kids']
    assert sum(kids[i]['i'] for i in range(100)) == sum(range(100))
    # a write conflict detected through 4.3's invalidation list
    kids[5]['i'] = 'b'
    root['kids'][5]['i'] = 'a'
    a.commit()
    with pytest.raises(WriteConflictError):
        b.commit()
    b.abort()
    assert b.get_root()['kids'][5]['i'] == 'a'
    # bulk loads, pack and sync through 4.3's server
    records = list(b.get_storage().bulk_load([a.get_root()._p_oid]))
    assert len(records) == 1
    del root['kids']
    a.commit()
    a.get_storage().pack()
    assert wait_for(lambda: len(a.get_storage().sync()) > 0 or
                    'pack' in server.log().lower(), 10)
    for connection in (a, b):
        connection.get_storage().close()
    # our `durus -s --stop` stops the 4.3 server
    stop = subprocess.run([sys.executable, '-m', 'durus', '-s', '--stop',
                           '--port', str(server.port)],
                          capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0
    assert server.wait(15) == 0


INCREMENT_43 = '''
import sys
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ConflictError
port, rounds = int(sys.argv[1]), int(sys.argv[2])
c = Connection(ClientStorage(port=port))
done = tries = 0
while done < rounds and tries < rounds * 100:  # conflicts retry, bounded
    tries += 1
    try:
        c.get_root()['counter']['n'] += 1
        c.commit()
        done += 1
    except ConflictError:
        c.abort()
print(done)
'''


def test_mixed_clients_increment_without_losing_updates(durus_server,
                                                        durus43_python):
    server = durus_server()
    ours = Connection(ClientStorage(port=server.port))
    ours.get_root()['counter'] = PersistentDict(n=0)
    ours.commit()
    rounds = 40
    others = [subprocess.Popen([durus43_python, '-c', INCREMENT_43,
                                str(server.port), str(rounds)],
                               stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
    try:
        done = tries = 0
        while done < rounds and tries < rounds * 100:
            tries += 1
            try:
                ours.get_root()['counter']['n'] += 1
                ours.commit()
                done += 1
            except ConflictError:
                ours.abort()
        assert [int(p.communicate(timeout=60)[0]) for p in others] == [
            rounds, rounds]
    finally:
        for p in others:
            stop_process(p, kill=True)
    assert done == rounds
    ours.abort()
    assert ours.get_root()['counter']['n'] == 3 * rounds
