"""Records: byte layout against formats.md §6, and Durus 4.3 records decoded.

The Durus 4.3 fixture records are read by a tiny SHELF-1 walker written
here (formats.md §2.1), independent of durus.file_storage, then put into
a MemoryStorage and opened with a Connection.
"""

import datetime
import os
import pickle
import struct
import zlib
from decimal import Decimal

import pytest

from durus import serialize
from durus.btree import BNode16, BTree
from durus.connection import Connection
from durus.error import ClassImportError
from durus.persistent import Persistent, PersistentBase
from durus.persistent_dict import PersistentDict
from durus.serialize import (ObjectReader, extract_class_name,
                             extract_class_path, pack_record, split_oids,
                             unpack_record)
from durus.storage import MemoryStorage, get_census

FIXTURES = os.path.join(os.path.dirname(__file__), 'data', 'durus43')

CLASS_PICKLE = (b'\x80\x02cdurus.persistent_dict\nPersistentDict\nq\x00.')
# formats.md §6.1: the record of root {'a': 1}, oid 0, N = 80.
ROOT_A1_RECORD = bytes.fromhex(
    '0000000000000000' '00000050') + CLASS_PICKLE + bytes.fromhex(
    '789c6b60aa2d648c606160604849 2c492c04f298231881bcc442166fc6e262'
    '3d007bbd075b'.replace(' ', ''))
ROOT_A1_STATE = bytes.fromhex(
    '80027d7101580400000064617461 71027d7103580100000061 71044b0173732e'
    .replace(' ', ''))
# formats.md §6.3: root {'p': Persistent()}; state and the child record.
ROOT_P_STATE = (
    b'\x80\x02}q\x01X\x04\x00\x00\x00dataq\x02}q\x03X\x01\x00\x00\x00pq\x04'
    b'c_codecs\nencode\nq\x05X\x08\x00\x00\x00' + b'\x00' * 7 + b'\x01q\x06'
    b'X\x06\x00\x00\x00latin1q\x07\x86q\x08Rq\x09'
    b'cdurus.persistent\nPersistent\nq\n\x86q\x0bQss.')
CHILD_RECORD = (b'\x00' * 7 + b'\x01' + b'\x00\x00\x00\x30' +
                b'\x80\x02cdurus.persistent\nPersistent\nq\x00.' +
                zlib.compress(b'\x80\x02}q\x01.'))


@pytest.fixture
def byte_identical(monkeypatch):
    monkeypatch.setattr(serialize, 'COMPRESS_MIN_SIZE', 0)
    monkeypatch.setattr(serialize, 'COMPRESSION_LEVEL', 6)


def read_shelf_records(path):
    """{oid: record} of the newest record of each oid in a SHELF-1 file."""
    with open(path, 'rb') as f:
        content = f.read()
    assert content[:8] == b'SHELF-1\n'
    position = 8
    records = {}

    def int8_at(offset):
        return struct.unpack('>Q', content[offset:offset + 8])[0]

    def read_disk_records(start, end):
        while start < end:
            size = int8_at(start)
            key = content[start + 8:start + 16]
            record = content[start + 16:start + 8 + size]
            assert record[:8] == key
            records[key] = record
            start += 8 + size

    initial = int8_at(position)
    read_disk_records(position + 8, position + 8 + initial)
    position += 8 + initial
    position += 8 + int8_at(position)
    while position < len(content):
        length = int8_at(position)
        read_disk_records(position + 8, position + 8 + length)
        position += 8 + length
    return records


@pytest.fixture(scope='module')
def fixture_records():
    return read_shelf_records(os.path.join(FIXTURES, 'shelf.durus'))


@pytest.fixture
def fixture_connection(fixture_records):
    storage = MemoryStorage()
    storage.records.update(fixture_records)
    storage.next_oid = max(int.from_bytes(oid, 'big')
                           for oid in fixture_records) + 1
    return Connection(storage)


# -- writing: byte checks against formats.md §6 -------------------------------

def test_record_of_root_dict_is_byte_identical(byte_identical):
    storage = MemoryStorage()
    connection = Connection(storage)
    connection.root['a'] = 1
    connection.commit()
    record = storage.records[b'\0' * 8]
    assert record == ROOT_A1_RECORD
    oid, data, refs = unpack_record(record)
    assert data[:len(CLASS_PICKLE)] == CLASS_PICKLE
    assert zlib.decompress(data[len(CLASS_PICKLE):]) == ROOT_A1_STATE
    assert refs == b''


def test_record_with_reference_is_byte_identical(byte_identical):
    storage = MemoryStorage()
    connection = Connection(storage)
    connection.root['p'] = Persistent()
    connection.commit()
    oid, data, refs = unpack_record(storage.records[b'\0' * 8])
    assert len(data) == 0x8f
    assert refs == b'\0' * 7 + b'\x01'
    assert zlib.decompress(data[len(CLASS_PICKLE):]) == ROOT_P_STATE
    assert storage.records[b'\0' * 7 + b'\x01'] == CHILD_RECORD


def test_small_states_are_uncompressed_by_default_and_still_read():
    storage = MemoryStorage()
    connection = Connection(storage)
    connection.root['a'] = 1
    connection.commit()
    data = unpack_record(storage.records[b'\0' * 8])[1]
    assert data == CLASS_PICKLE + ROOT_A1_STATE
    connection.root['big'] = 'x' * 1000
    connection.commit()
    data = unpack_record(storage.records[b'\0' * 8])[1]
    assert data[len(CLASS_PICKLE)] == 0x78
    fresh = Connection(storage)
    assert fresh.root['a'] == 1 and fresh.root['big'] == 'x' * 1000


def test_refs_are_sorted_unique_and_exclude_own_oid():
    storage = MemoryStorage()
    connection = Connection(storage)
    children = [Persistent() for _ in range(3)]
    connection.root['x'] = [children[2], children[0], children[2],
                            children[1]]
    connection.root['self'] = connection.root
    connection.commit()
    refs = split_oids(unpack_record(storage.records[b'\0' * 8])[2])
    assert refs == sorted(set(refs)) and len(refs) == 3
    assert b'\0' * 8 not in refs


def test_same_class_reference_uses_the_class_memo_entry(byte_identical):
    storage = MemoryStorage()
    connection = Connection(storage)
    tree = BTree(BNode16)
    for key in range(40):
        tree[key] = key
    connection.root['tree'] = tree
    connection.commit()
    root_node = tree.root
    data = unpack_record(storage.records[root_node._p_oid])[1]
    state = ObjectReader(connection).get_state_pickle(data)
    assert b'h\x00' in state
    assert b'BNode16' not in state


def test_record_helpers():
    record = pack_record(b'\0' * 8, CLASS_PICKLE + b'rest', b'\0' * 7 + b'\1')
    assert unpack_record(record) == (b'\0' * 8, CLASS_PICKLE + b'rest',
                                     b'\0' * 7 + b'\1')
    assert extract_class_name(record) == b'PersistentDict'
    assert extract_class_path(CLASS_PICKLE) == ('durus.persistent_dict',
                                                'PersistentDict')
    assert split_oids(b'') == []


# -- reading ------------------------------------------------------------------

def test_reader_accepts_other_protocols_and_uncompressed_states():
    storage = MemoryStorage()
    connection = Connection(storage)
    state4 = pickle.dumps({'data': {'k': 'v'}}, 4)
    storage.records[b'\0' * 7 + b'\x09'] = pack_record(
        b'\0' * 7 + b'\x09', pickle.dumps(PersistentDict, 4) + state4, b'')
    obj = connection.get(9)
    assert isinstance(obj, PersistentDict) and obj['k'] == 'v'
    reader = connection.reader
    data = CLASS_PICKLE + zlib.compress(state4)
    assert reader.get_state_pickle(data) == state4
    assert reader.get_state(data) == {'data': {'k': 'v'}}
    assert reader.get_state(data, load=False) == state4


def test_unknown_class_raises_class_import_error():
    connection = Connection(MemoryStorage())
    data = b'\x80\x02cno_such_module\nThing\nq\x00.' + pickle.dumps({}, 2)
    with pytest.raises(ClassImportError) as info:
        connection.reader.get_ghost(data)
    assert (info.value.module, info.value.classname) == ('no_such_module',
                                                         'Thing')
    assert isinstance(info.value, ImportError)


def test_missing_class_factory_gets_persistent_flag_right():
    storage = MemoryStorage()
    connection = Connection(storage)
    calls = []

    def factory(module, name, persistent):
        calls.append((module, name, persistent))
        if persistent:
            return type('Placeholder_' + name, (Persistent,), {})
        return type('Plain_' + name, (object,), {})

    connection.reader.missing_class_factory = factory
    # A root whose state holds a reference to a gone.Gadget record and a
    # plain gone.Value global.
    state = (b'\x80\x02}q\x01X\x01\x00\x00\x00rq\x02'
             b'c_codecs\nencode\nq\x03X\x08\x00\x00\x00' + b'\0' * 7 +
             b'\x05q\x04X\x06\x00\x00\x00latin1q\x05\x86q\x06Rq\x07'
             b'cgone\nGadget\nq\x08\x86q\tQsX\x01\x00\x00\x00vq\n'
             b'cgone\nValue\nq\x0bs.')
    storage.records[b'\0' * 7 + b'\x04'] = pack_record(
        b'\0' * 7 + b'\x04', b'\x80\x02cgone\nHolder\nq\x00.' + state,
        b'\0' * 7 + b'\x05')
    holder = connection.get(4)
    assert type(holder).__name__ == 'Placeholder_Holder'
    gadget = holder.__dict__['r']
    assert isinstance(gadget, PersistentBase)
    assert holder.__dict__['v'].__name__ == 'Plain_Value'
    assert ('gone', 'Holder', True) in calls
    assert ('gone', 'Gadget', True) in calls
    assert ('gone', 'Value', False) in calls


def test_reader_survives_bad_state_pickles_between_good_ones():
    # The reader reuses one unpickler: a pickle with bytes after its STOP,
    # a truncated one or a failing one must not leak into the next load.
    reader = Connection(MemoryStorage()).reader
    good = CLASS_PICKLE + pickle.dumps({'data': {'k': 1}}, 2)
    assert reader.get_state(good) == {'data': {'k': 1}}
    trailing = CLASS_PICKLE + pickle.dumps({'data': {}}, 2) + b'K\x05.'
    assert reader.get_state(trailing) == {'data': {}}
    assert reader.get_state(good) == {'data': {'k': 1}}
    truncated = good[:-6]
    with pytest.raises(Exception):
        reader.get_state(truncated)
    assert reader.get_state(good) == {'data': {'k': 1}}
    unknown = CLASS_PICKLE + b'\x80\x02cno_such_module\nX\nq\x01.'
    with pytest.raises(ClassImportError):
        reader.get_state(unknown)
    assert reader.get_state(good) == {'data': {'k': 1}}


def test_reader_loads_a_state_while_loading_another():
    # A class factory that itself reads a record (nested use of the reader).
    reader = Connection(MemoryStorage()).reader
    inner = CLASS_PICKLE + pickle.dumps({'data': {'inner': 2}}, 2)
    seen = []

    def factory(module, name, persistent):
        seen.append(reader.get_state(inner))
        return dict

    reader.missing_class_factory = factory
    outer = (CLASS_PICKLE + b'\x80\x02}q\x01X\x01\x00\x00\x00aq\x02'
             b'cgone\nThing\nq\x03s.')
    assert reader.get_state(outer) == {'a': dict}
    assert seen == [{'data': {'inner': 2}}]
    assert reader.get_state(inner) == {'data': {'inner': 2}}


# -- Durus 4.3 fixture records --------------------------------------------------

def test_fixture_walker_finds_the_census(fixture_records, manifest):
    storage = MemoryStorage()
    storage.records.update(fixture_records)
    storage.pack()
    census = {name.decode(): count
              for name, count in get_census(storage).items()}
    assert census == manifest['files']['shelf.durus']['census']


def test_fixture_objects_decode_with_the_right_values(fixture_connection,
                                                      manifest):
    root = fixture_connection.root
    assert sorted(root.keys()) == manifest['root_keys']
    users = root['users']
    assert isinstance(users, BTree) and len(users) == manifest['n_users']
    for uid, expected in manifest['users'].items():
        user = users[int(uid)]
        assert type(user).__module__ == 'fixture_app.models'
        assert user.name == expected['name']
        assert user.email == expected['email']
        assert user.tags == expected['tags']
        assert user.account.balance == expected['balance']
        assert user.account.owner is user
    config = root['config']
    assert config['name'] == manifest['config_name']
    assert config['unicode'] == manifest['config_unicode']
    assert config['blob'] == b'\x00\x01\xffbytes'
    assert config['limit'] == 1 << 40 and config['ratio'] == 0.25
    assert config['set'] == {1, 2, 3}
    assert config['frozen'] == frozenset('ab')
    assert config['price'] == Decimal('12.50')
    assert config['when'] == datetime.datetime(2024, 10, 1, 10, 37, 21)
    assert config['nested'] == {'a': [1, 2, {'b': 'c'}]}
    assert config['pair'] == (1, 'two') and config['nothing'] is None
    assert list(root['log']) == manifest['log']
    assert sorted(root['tags']) == manifest['tags']
    big = root['big']
    assert len(big) == manifest['n_big']
    for key, value in manifest['big_sample'].items():
        assert big[key] == value
    big._check()
    assert isinstance(big.root, BNode16)
    values = []
    node = root['chain']
    # Bounded: a chain longer than expected (or a cycle) fails the assert.
    while node is not None and len(values) <= len(manifest['chain_values']):
        values.append(node.value)
        node = node.next
    assert values == manifest['chain_values']
    assert root['cached'].__class__.__name__ == 'Cached'


def test_fixture_records_round_trip_through_our_writer(fixture_connection):
    root = fixture_connection.root
    root['log'].append('by-us')
    root['users'][0].name = 'renamed'
    fixture_connection.commit()
    fresh = Connection(fixture_connection.storage)
    assert fresh.root['log'][-1] == 'by-us'
    assert fresh.root['users'][0].name == 'renamed'
    assert fresh.root['users'][0].account.owner is fresh.root['users'][0]


DURUS43_READER = r'''
import pickle, sys
sys.path.insert(0, sys.argv[2])
from durus.connection import Connection
from durus.storage import MemoryStorage
storage = MemoryStorage()
with open(sys.argv[1], 'rb') as f:
    storage.records.update(pickle.load(f))
storage.next_oid = len(storage.records) + 1
root = Connection(storage).get_root()
users = root['users']
print(len(users), users[7].name, users[7].account.balance,
      users[7].account.owner is users[7], sorted(root['tags']),
      len(root['text']), list(root['log']))
'''


@pytest.mark.slow
def test_records_written_here_are_read_by_durus43(durus43_python, tmp_path):
    import subprocess
    import sys
    from fixture_app.models import Account, User
    from durus.persistent_list import PersistentList
    from durus.persistent_set import PersistentSet
    storage = MemoryStorage()
    connection = Connection(storage)
    users = BTree()
    for uid in range(100):
        user = User()
        user.name = 'user%d' % uid
        user.account = Account()
        user.account.balance = uid * 2
        user.account.owner = user
        users[uid] = user
    connection.root.update(users=users, tags=PersistentSet(['b', 'a']),
                           text='long ' * 300, log=PersistentList(['x']))
    connection.commit()
    dump = tmp_path / 'records.pickle'
    dump.write_bytes(pickle.dumps(dict(storage.records)))
    script = tmp_path / 'read43.py'
    script.write_text(DURUS43_READER)
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run(
        [durus43_python, str(script), str(dump), tests_dir],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split('\n')[0] == (
        "100 user7 14 True ['a', 'b'] 1500 ['x']")


def test_bytes_in_states_read_back_without_the_codec_registry(tmp_path):
    # Protocol-2 pickles spell bytes as _codecs.encode(text, 'latin1'):
    # the reader answers that itself, so opening a Durus 4.3 file (every
    # reference holds an oid) does not import encodings.latin_1 first.
    import subprocess
    import sys
    import textwrap
    fixture = os.path.join(os.path.dirname(__file__), 'data', 'durus43',
                           'shelf.durus')
    script = textwrap.dedent('''
        import sys
        from durus.connection import Connection
        from durus.file_storage import FileStorage
        storage = FileStorage(sys.argv[1], readonly=True)
        connection = Connection(storage)
        root = connection.get_root()
        for value in root.values():
            getattr(value, '_p_oid', None)
        print('encodings.latin_1' in sys.modules)
    ''')
    env = dict(os.environ, PYTHONPATH=os.path.dirname(__file__))
    result = subprocess.run([sys.executable, '-c', script, fixture],
                            capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'False'
    # And the values are the same bytes the codec would have made.
    state = pickle.dumps({'raw': b'\x00\xff abc', 'text': 'x'}, protocol=2)
    assert b'_codecs' in state
    data = pickle.dumps(PersistentDict, protocol=2)
    reader = ObjectReader(None)
    assert reader.get_state(data + state) == {'raw': b'\x00\xff abc',
                                              'text': 'x'}
