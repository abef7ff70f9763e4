"""Memo bombs: a record whose pickle names a huge memo index must be
refused with a clear error before Python's unpickler sizes its memo for
it (which would allocate and zero gigabytes; where memory is
overcommitted the process is killed with no error at all)."""

import contextlib
import pickle
import resource
import subprocess
import sys

import pytest

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus import _accel
from durus.memo_guard import MemoBombError, _python_memo_bomb, memo_bomb
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.record import pack_record
from durus.record_check import record_problem
from durus.storage import MemoryStorage
from durus.utils import int8_to_str

CLASS = b'\x80\x02cdurus.persistent_dict\nPersistentDict\nq\x00.'
BOMBS = [
    b'\x80\x02}r\xff\xff\xff\x7fK\x01.',    # LONG_BINPUT 2**31 - 1
    b'\x80\x02}rK\x01u.',                    # found by fuzzing: 779,419,979
    b'(dp1000000000\n.',                     # protocol 0 PUT
    # after an opcode the compiled decoder leaves to Python (a set)
    b'\x80\x02}q\x01X\x01\x00\x00\x00s\x8f\x85r\x00\x00\x00\x40s.',
]


class Thing(Persistent):
    pass


@pytest.mark.parametrize('data', BOMBS, ids=range(len(BOMBS)))
def test_the_guard_finds_each_bomb(data):
    assert memo_bomb(data) is not None
    assert _python_memo_bomb(data) == memo_bomb(data)


@pytest.mark.skipif(_accel.speedups is None, reason='durus._speedups was '
                    'not built or DURUS_NO_SPEEDUPS is set')
def test_the_compiled_twin_agrees_on_mutated_pickles():
    import random
    rng = random.Random(16)
    seeds = BOMBS + [pickle.dumps({'user': 'r' * 9, 'rp': list(range(300))},
                                  protocol) for protocol in (0, 2, 4)]
    for _ in range(20000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[at] = rng.choice(b'rp\n0123456789\xff\x00')
            else:
                del data[at:at + rng.randint(1, 4)]
            if not data:
                data = bytearray(b'r')
        data = bytes(data)
        assert memo_bomb(data) == _python_memo_bomb(data), data


@pytest.mark.parametrize('value', [
    {}, {'user': 'r' * 50, 'p': [1, 2, 3] * 400}, list(range(2000)),
    {'shared': [[1]] * 500}, {1.5, 2.5}, ('rp',) * 300])
@pytest.mark.parametrize('protocol', [0, 2, 4])
def test_sound_pickles_pass(value, protocol):
    data = pickle.dumps(value, protocol)
    assert memo_bomb(data) is None
    assert pickle.loads(data) == value


@contextlib.contextmanager
def address_space_capped(extra=1 << 30):
    """Should the guard ever fail, the unpickler's allocation fails with
    MemoryError instead of the kernel killing the test run."""
    with open('/proc/self/status') as f:
        size = next(int(line.split()[1]) * 1024 for line in f
                    if line.startswith('VmSize:'))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _bomb_record(oid, state):
    return pack_record(oid, CLASS + state, b'')


@pytest.mark.parametrize('state', BOMBS, ids=range(len(BOMBS)))
def test_loading_a_bomb_raises_a_clear_error_without_allocating(state):
    storage = MemoryStorage()
    connection = Connection(storage)
    root = connection.get_root()
    root['x'] = Thing()
    connection.commit()
    oid = root['x']._p_oid
    storage.records[oid] = _bomb_record(oid, state)
    fresh = Connection(storage)
    thing = fresh.get_root()['x']
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with address_space_capped(), pytest.raises(
            MemoBombError, match=r'record of oid %d names memo index \d+, '
            r'far beyond its \d+ bytes' % int.from_bytes(
                oid, 'big')):
        thing._p_load_state()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100 * 1024


@pytest.mark.parametrize('state', BOMBS, ids=range(len(BOMBS)))
def test_the_deep_record_check_names_it(state):
    problem = record_problem(_bomb_record(int8_to_str(5), state))
    assert problem is not None
    if state.startswith(b'\x80') and b'r' in state[3:]:
        assert 'far beyond' in problem


def test_a_bomb_in_a_file_in_a_fresh_process(tmp_path):
    """The whole way, as an application would meet it: no kill, a clear
    error, the rest of the database still readable."""
    path = str(tmp_path / 'bomb.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    root['x'] = PersistentDict()
    root['ok'] = PersistentDict(n=1)
    connection.commit()
    oid = root['x']._p_oid
    storage.begin()
    storage.store(oid, _bomb_record(oid, BOMBS[1]))
    storage.end()
    # a sound last transaction after it (the open checks the last one)
    root['ok']['n'] = 2
    connection.commit()
    storage.close()
    script = (
        'import sys; sys.path.insert(0, %r)\n'
        'from durus.connection import Connection\n'
        'from durus.file_storage import FileStorage\n'
        'root = Connection(FileStorage(%r, readonly=True)).get_root()\n'
        'print(root["ok"]["n"])\n'
        'try:\n'
        '    root["x"]._p_load_state()\n'
        'except Exception as error:\n'
        '    print(type(error).__name__, error)\n' % (
            str(tmp_path), path))
    result = subprocess.run([sys.executable, '-c', script],
                            preexec_fn=lambda: resource.setrlimit(
                                resource.RLIMIT_AS, (2 << 30, 2 << 30)),
                            capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '2'
    assert lines[1].startswith('MemoBombError') and 'hostile' in lines[1]
