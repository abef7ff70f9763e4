"""Behaviour behind the API parity with Durus 4.3 (issue 11).

Two kinds of tests: the same snippets and misuses run under the real
Durus 4.3 and here must give the same results (tests/parity/), and
in-process tests of each fix on its own.
"""

import os
import subprocess
import sys
import textwrap
from collections.abc import MutableMapping

import pytest

from durus.btree import BNode16, BTree, NodeClassError
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import DurusError, ProtocolError
from durus.file_storage import FileStorage, TempFileStorage
from durus.persistent import ConnectionBase, Persistent
from durus.socket_address import SocketAddress
from durus.storage import MemoryStorage
from durus.utils import int8_to_str

from durus43_env import run_durus43

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
PARITY = os.path.join(TESTS, 'parity')

# Misuses where this package deliberately no longer raises what 4.3 did;
# each reason is also in docs/differences.md.
ERROR_DIFFERENCES = {
    'file_storage2_pack_of_a_temporary_file':
        'a temporary FileStorage2 can be packed, as a temporary FileStorage '
        'could in 4.3',
}


def run_here(script, *args):
    result = subprocess.run(
        [sys.executable, os.path.join(PARITY, script)] + list(args),
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_in_durus43(python, script, *args):
    with open(os.path.join(PARITY, script)) as f:
        return run_durus43(python, f.read(), *args).stdout


# -- the same calls, the same results ---------------------------------------

def test_api_snippets_give_durus43s_results(durus43_python):
    theirs = run_in_durus43(durus43_python, 'behaviour_snippets.py')
    ours = run_here('behaviour_snippets.py')
    assert len(theirs.splitlines()) > 40
    assert ours.splitlines() == theirs.splitlines()


def test_errors_replacing_asserts_are_still_what_durus43_raised(
        durus43_python, tmp_path):
    import json
    (tmp_path / 'theirs').mkdir()
    (tmp_path / 'ours').mkdir()
    theirs = json.loads(run_in_durus43(durus43_python, 'error_cases.py',
                                       tmp_path / 'theirs'))
    ours = json.loads(run_here('error_cases.py', str(tmp_path / 'ours')))
    assert sum(1 for kinds in theirs.values()
               if 'AssertionError' in kinds) >= 15
    wrong = []
    for case, their_kinds in sorted(theirs.items()):
        if their_kinds == 'no error' or case in ERROR_DIFFERENCES:
            continue
        our_kinds = ours[case]
        if our_kinds == 'no error' or not set(their_kinds) <= set(our_kinds):
            wrong.append('%s: 4.3 raised %s, this package %s'
                         % (case, their_kinds, our_kinds))
    assert not wrong, '\n'.join(wrong)
    for case in ERROR_DIFFERENCES:
        assert ours[case] == 'no error' != theirs[case]


def test_error_differences_are_documented():
    with open(os.path.join(REPO, 'docs', 'differences.md')) as f:
        docs = ' '.join(f.read().lower().split())
    for reason in ERROR_DIFFERENCES.values():
        assert reason.lower() in docs


# -- BTree is a MutableMapping ------------------------------------------------

def test_btree_is_a_mutable_mapping_with_pop_and_popitem():
    tree = BTree()
    tree.update({'b': 2, 'a': 1, 'c': 3})
    assert isinstance(tree, MutableMapping)
    assert tree.pop('b') == 2 and 'b' not in tree
    assert tree.pop('zz', None) is None
    with pytest.raises(KeyError):
        tree.pop('zz')
    assert tree.popitem() == ('a', 1)       # the smallest key goes first
    assert list(tree.items()) == [('c', 3)]
    tree.popitem()
    with pytest.raises(KeyError):
        tree.popitem()
    assert not tree.__nonzero__()


def test_btree_pop_marks_the_tree_changed_and_commits():
    connection = Connection(MemoryStorage())
    tree = connection.get_root()['tree'] = BTree()
    for key in range(100):
        tree[key] = key
    connection.commit()
    assert tree.pop(50) == 50 and tree.popitem() == (0, 0)
    connection.commit()
    reopened = Connection(connection.storage).get_root()['tree']
    assert len(reopened) == 98 and 50 not in reopened and 0 not in reopened


def test_btree_of_something_that_is_not_a_node_class():
    for bad in (dict, BNode16(), 'BNode16'):
        with pytest.raises(NodeClassError) as info:
            BTree(bad)
        assert isinstance(info.value, AssertionError)   # 4.3 asserted
        assert 'BNode' in str(info.value)


# -- persistent objects and the connection -------------------------------------

@pytest.mark.parametrize('oid, text', [
    (None, 'None'), (b'', "b''"), (int8_to_str(0), '0'),
    (int8_to_str(123456789), '123456789'),
    ('\x00' * 7 + '\x2a', '42'),       # a str oid, read as latin-1 bytes
])
def test_p_format_oid(oid, text):
    obj = Persistent()
    obj._p_oid = oid
    assert obj._p_format_oid() == text


def test_p_format_oid_of_an_oid_that_is_not_8_bytes_raises():
    obj = Persistent()
    obj._p_oid = b'\x01\x02'
    with pytest.raises(Exception):
        obj._p_format_oid()


def test_transaction_serial_is_a_class_attribute_and_per_connection():
    assert ConnectionBase.transaction_serial == 1
    first, second = Connection(MemoryStorage()), Connection(MemoryStorage())
    first.commit()
    assert first.transaction_serial == second.transaction_serial + 1


def test_object_dictionary_clear_dead_and_callback():
    connection = Connection(MemoryStorage())
    objects = connection.cache.objects
    obj = Persistent()
    objects[b'x' * 8] = obj
    assert callable(objects.callback)
    del obj
    import gc
    gc.collect()
    assert b'x' * 8 in objects.mapping
    objects.clear_dead()
    assert b'x' * 8 not in objects.mapping


# -- storages --------------------------------------------------------------------

def test_memory_storage_lists_only_records_reachable_from_the_root():
    storage = MemoryStorage()
    assert list(storage.gen_oid_record()) == []     # no root yet
    connection = Connection(storage)
    root = connection.get_root()
    root['a'], root['b'] = Persistent(), Persistent()
    connection.commit()
    garbage = root['b']._p_oid
    del root['b']
    connection.commit()
    listed = [oid for oid, _ in storage.gen_oid_record()]
    assert garbage in storage.records and garbage not in listed
    assert listed == [int8_to_str(0), root['a']._p_oid]
    assert [oid for oid, _ in storage.gen_oid_record(garbage)] == [garbage]


def test_temp_file_storage_opens_read_only_by_name_and_refuses_a_writer():
    storage = TempFileStorage()
    try:
        connection = Connection(storage)
        connection.get_root()['x'] = 1
        connection.commit()
        name = storage.get_filename()
        reader = FileStorage(name, readonly=True)
        try:
            assert Connection(reader).get_root()['x'] == 1
        finally:
            reader.close()
        with pytest.raises(IOError):
            FileStorage(name)
    finally:
        storage.close()
    assert not os.path.exists(name)


# -- client and systemd -------------------------------------------------------------

class SocketWithoutClose(object):
    """A socket double that answers garbage and has no close()."""

    def __init__(self):
        self.sent = []

    def settimeout(self, timeout):
        pass

    def setsockopt(self, *args):
        pass

    def sendall(self, data):
        self.sent.append(data)

    def recv(self, size):
        return b'\xff' * 4


class DoubleAddress(SocketAddress):
    def get_connected_socket(self, timeout=None):
        return SocketWithoutClose()

    def __str__(self):
        return 'double'


def test_client_gives_up_on_a_protocol_error_with_a_socket_without_close():
    with pytest.raises(DurusError) as info:
        ClientStorage(address=DoubleAddress())
    assert isinstance(info.value, ProtocolError)
    assert 'double' in str(info.value)


def test_sd_listen_fds_counts_this_processs_sockets_and_hides_them():
    script = textwrap.dedent('''
        import os, socket
        from durus.systemd_socket import sd_listen_fds
        listener = socket.socket()
        os.dup2(listener.fileno(), 3, inheritable=True)
        os.environ['LISTEN_PID'] = str(os.getpid())
        os.environ['LISTEN_FDS'] = '1'
        print(sd_listen_fds(), os.get_inheritable(3))
    ''')
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True, text=True, timeout=60,
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['1', 'False']


# -- durus.__main__ and the logger ----------------------------------------------

def test_interactive_client_opens_durus_shell_with_4_3s_arguments(
        monkeypatch, tmp_path):
    import durus.__main__ as command
    import durus_shell.cli
    calls = []
    monkeypatch.setattr(durus_shell.cli, 'main',
                        lambda argv: calls.append(argv) or 0)
    path = str(tmp_path / 'new.durus')
    command.interactive_client(path, None, 500, False, True, None)
    command.interactive_client(None, ('127.0.0.1', 2999), 100, True, False,
                               'startup.py')
    command.interactive_client('', '@abstract', 100, False, False, None)
    assert calls == [
        [path, '--create', '--repair', '--cache-size', '500'],
        ['--client', '127.0.0.1:2999', '--readonly', '--cache-size', '100',
         '--startup', 'startup.py'],
        ['--client', '@abstract', '--cache-size', '100'],
    ]


def test_durus_main_offers_4_3s_names(capsys):
    import durus.__main__ as command
    from durus.__main__ import ClientStorage as lazy_client
    assert lazy_client is ClientStorage
    assert command.StorageServer.__name__ == 'StorageServer'
    assert 'wait_for_server' in dir(command)
    with pytest.raises(AttributeError):
        command.no_such_name
    command.usage()
    assert '-s' in capsys.readouterr().out


def test_configure_readline_keeps_history(tmp_path):
    readline = pytest.importorskip('readline')
    import durus.__main__ as command
    history = tmp_path / 'history'
    history.write_text('root.keys()\n')
    command.configure_readline({'root': {}}, str(history))
    assert readline.get_history_item(readline.get_current_history_length()) \
        == 'root.keys()'


def test_log_passes_logging_keywords(monkeypatch):
    from durus import logger
    seen = []
    monkeypatch.setattr(logger.logger, 'log',
                        lambda *args, **kwargs: seen.append((args, kwargs)))
    logger.log(20, 'oid %s', 7, exc_info=False)
    assert seen == [((20, 'oid %s', 7), {'exc_info': False})]
