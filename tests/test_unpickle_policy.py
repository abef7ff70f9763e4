"""The unpickling policy (issue 13 §2): loading never runs code a record
names, unless the trusted policy (Durus 4.3's behaviour) is asked for.

Run also with DURUS_NO_SPEEDUPS=1 (the pure-Python load path).
"""

import collections
import copyreg
import datetime
import decimal
import enum
import fractions
import glob
import os
import pickle
import subprocess
import sys
import uuid

import pytest

from durus.connection import Connection
from durus.error import DurusError, RefusedGlobalError, RefusedValueError
from durus.file_storage import FileStorage
from durus.format import open_storage
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.serialize import ObjectWriter, pack_record
from durus import unpickle_policy
from durus.unpickle_policy import UnpicklePolicy, is_refused

from hostile_records import write_hostile_database
from server_process import durus_server  # noqa: F401

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
FIXTURE_DIRS = [os.path.join(TESTS_DIR, 'data', 'durus43'),
                '/work/shared/fixtures/durus43']


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


class Point(object):
    """A plain application class (not persistent): refused unless allowed."""

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return type(other) is Point and vars(self) == vars(other)


@pytest.fixture
def hostile(tmp_path):
    path = str(tmp_path / 'hostile.durus')
    marker = str(tmp_path / 'MARKER')
    oids = write_hostile_database(path, marker)
    assert not os.path.exists(marker)
    return path, marker, oids


def open_safe(path, **kw):
    policy = UnpicklePolicy.safe(use_environment=False, **kw)
    return Connection(FileStorage(path, readonly=True),
                      unpickle_policy=policy)


def test_trusted_loading_runs_the_payload(hostile):
    # The control: these records really run code under Durus 4.3's rules.
    path, marker, _ = hostile
    connection = Connection(FileStorage(path, readonly=True))
    assert connection.reader.policy.trusted
    assert connection.get_root()['harmless_looking']['payload'] == 0
    assert os.path.exists(marker)


def test_safe_refuses_with_an_error_naming_global_and_oid(hostile):
    path, marker, _ = hostile
    with pytest.raises(RefusedGlobalError) as caught:
        Connection(FileStorage(path, readonly=True), unpickle_policy='safe')
    error = caught.value
    assert isinstance(error, DurusError)
    assert isinstance(error, pickle.UnpicklingError)
    assert error.oid == b'\0' * 8
    assert 'record oid 0' in str(error)
    assert '%s.%s' % (error.module, error.name) in str(error)
    assert pickle.loads(pickle.dumps(error)).name == error.name
    assert not os.path.exists(marker)


def test_safe_with_placeholders_shows_every_refusal(hostile, capsys):
    path, marker, (class_oid, inst_oid, this_oid) = hostile
    had_this = 'this' in sys.modules
    connection = open_safe(path, placeholders=True)
    root = connection.get_root()
    assert repr(root['system']) == '<refused posix.system in oid 0>'
    assert repr(root['popen']) == '<refused subprocess.Popen in oid 0>'
    assert repr(root['getattr']) == '<refused builtins.getattr in oid 0>'
    holder = root['harmless_looking']
    assert repr(holder['payload']) == '<refused posix.system in oid 1>'
    assert holder['name'] == 'ok' and holder['count'] == 3
    assert is_refused(root['inst'].x)
    assert repr(root['inst'].x) == '<refused os.system in oid 3>'
    assert repr(root['this'].x) == '<refused this.s in oid 4>'
    root['hostile_class']._p_load_state()
    refusals = connection.reader.refusals
    assert refusals[class_oid] == {'posix.system'}
    assert refusals[inst_oid] == {'os.system'}
    assert refusals[b'\0' * 8] >= {'posix.system', 'subprocess.Popen',
                                    'builtins.getattr'}
    # A standard module outside the allowed list is not even imported.
    assert had_this or 'this' not in sys.modules
    assert 'Zen of Python' not in capsys.readouterr().out
    assert not os.path.exists(marker)


def test_hostile_record_class_is_refused(hostile):
    path, marker, (class_oid, _, _) = hostile
    connection = open_safe(path, placeholders=True)
    # The root's reference made a ghost of the class it names; loading the
    # record refuses the class pickle, and the object cannot change.
    obj = connection.get(class_oid)
    obj._p_load_state()
    assert connection.reader.refusals[class_oid] == {'posix.system'}
    with pytest.raises(RefusedValueError, match='posix.system'):
        obj.anything = 1
    # Met first, the record's class is a read-only stand-in.
    data = connection.get_stored_pickle(class_oid)
    cls = connection.reader.get_class(data)
    assert issubclass(cls, unpickle_policy.RefusedObject)
    stand_in = connection.reader.get_ghost(data)
    stand_in._p_oid = class_oid
    assert repr(stand_in) == '<refused class posix.system: oid 2>'
    with pytest.raises(RefusedValueError):
        stand_in.anything = 1
    with pytest.raises(RefusedGlobalError, match='posix.system'):
        open_safe(path).get(class_oid)._p_load_state()
    assert not os.path.exists(marker)


def test_objects_holding_refused_values_cannot_change(hostile):
    path, marker, _ = hostile
    storage = FileStorage(path)
    connection = Connection(storage, unpickle_policy=UnpicklePolicy.safe(
        placeholders=True, use_environment=False))
    holder = connection.get_root()['harmless_looking']
    with pytest.raises(RefusedValueError, match='posix.system'):
        holder['count'] = 4
    assert holder['count'] == 3 and not connection.changed
    # A stand-in moved into another object cannot be stored either.
    other = PersistentDict()
    other['copy'] = holder['payload']
    with pytest.raises(RefusedValueError, match='cannot store'):
        ObjectWriter(connection).get_state(other)
    storage.close()
    assert not os.path.exists(marker)


def _store(connection, value):
    connection.get_root()['value'] = value
    connection.commit()


def test_plain_value_types_load_under_safe(tmp_path):
    values = {
        'set': {1, 2}, 'frozenset': frozenset('ab'), 'bytes': b'\x00\xff',
        'bytearray': bytearray(b'xy'), 'decimal': decimal.Decimal('1.5'),
        'datetime': datetime.datetime(2020, 1, 2, 3, 4, 5,
                                      tzinfo=datetime.timezone.utc),
        'date': datetime.date(2020, 1, 2), 'time': datetime.time(1, 2),
        'delta': datetime.timedelta(3), 'uuid': uuid.UUID(int=7),
        'fraction': fractions.Fraction(1, 3), 'complex': 1j,
        'ordered': collections.OrderedDict(a=1), 'deque': collections.deque([1]),
        'default': collections.defaultdict(list, a=[1]),
        'counter': collections.Counter('aab'), 'enum': Colour.BLUE,
        'range': range(3), 'slice': slice(1, 2), 'ellipsis': Ellipsis,
        'nested': [(1, 'x'), {'k': None}],
    }
    path = str(tmp_path / 'values.durus')
    connection = Connection(FileStorage(path))
    _store(connection, values)
    connection.storage.close()
    safe = open_safe(path)
    assert safe.get_root()['value'] == values
    assert not safe.reader.refusals


def test_plain_class_needs_allowing(tmp_path, monkeypatch):
    path = str(tmp_path / 'point.durus')
    connection = Connection(FileStorage(path))
    _store(connection, Point(1, 2))
    connection.storage.close()
    name = '%s:Point' % __name__
    with pytest.raises(RefusedGlobalError, match=r'--allow %s' % name):
        open_safe(path)
    assert open_safe(path, allow=[name]).get_root()['value'] == Point(1, 2)
    monkeypatch.setenv('DURUS_ALLOW', 'x.y:z, ' + name)
    assert Connection(FileStorage(path, readonly=True),
                      unpickle_policy='safe').get_root()['value'] == Point(1, 2)
    monkeypatch.delenv('DURUS_ALLOW')
    monkeypatch.setattr(unpickle_policy, '_extra_allowed', set())
    unpickle_policy.allow(name)
    assert Connection(FileStorage(path, readonly=True),
                      unpickle_policy='safe').get_root()['value'] == Point(1, 2)


def test_bad_allowed_names_are_reported():
    for text in ('nodots', ':x', 'a b:c'):
        with pytest.raises(ValueError, match='module:name'):
            unpickle_policy.parse_allowed_name(text)
    assert unpickle_policy.parse_allowed_name('a.b.C') == ('a.b', 'C')


def _raw_root_state(tmp_path, value_opcodes, name='raw.durus'):
    """A database whose root is a Persistent with state {'x': <opcodes>}."""
    path = str(tmp_path / name)
    storage = FileStorage(path)
    Connection(storage)  # writes a root
    data = (b'\x80\x02cdurus.persistent\nPersistent\nq\x00.' +
            b'\x80\x02}q\x01X\x01\x00\x00\x00x' + value_opcodes + b's.')
    storage.begin()
    storage.store(b'\0' * 8, pack_record(b'\0' * 8, data, b''))
    storage.end()
    storage.close()
    return path


def test_reconstructor_rebuilds_only_allowed_classes(tmp_path):
    point = ('%s\nPoint\n' % __name__).encode()
    # Protocol-1 form of a plain object: copyreg._reconstructor(cls, base,
    # state) then BUILD.
    opcodes = (b'ccopy_reg\n_reconstructor\n(c' + point +
               b'c__builtin__\nobject\nNtR}(X\x01\x00\x00\x00xK\x01'
               b'X\x01\x00\x00\x00yK\x02ub')
    path = _raw_root_state(tmp_path, opcodes)
    trusted = Connection(FileStorage(path, readonly=True))
    assert trusted.get_root().x == Point(1, 2)
    with pytest.raises(RefusedGlobalError, match='Point'):
        open_safe(path).get_root()
    name = '%s:Point' % __name__
    assert open_safe(path, allow=[name]).get_root().x == Point(1, 2)
    # A refused base class is refused as well.
    opcodes = (b'ccopy_reg\n_reconstructor\n(c__builtin__\ndict\n'
               b'csubprocess\nPopen\nNtR')
    path = _raw_root_state(tmp_path, opcodes, 'base.durus')
    with pytest.raises(RefusedGlobalError, match='subprocess.Popen'):
        open_safe(path).get_root()


def test_newobj_helper_is_checked(tmp_path):
    opcodes = b'ccopyreg\n__newobj__\nc' + b'subprocess\nPopen\n\x85R'
    path = _raw_root_state(tmp_path, opcodes)
    root = open_safe(path, placeholders=True).get_root()
    assert repr(root.x) == '<refused subprocess.Popen in oid 0>'


def test_record_class_must_be_persistent(tmp_path):
    path = str(tmp_path / 'dictroot.durus')
    storage = FileStorage(path)
    Connection(storage)
    data = b'\x80\x02c__builtin__\ndict\nq\x00.' + pickle.dumps({}, 2)
    storage.begin()
    storage.store(b'\0' * 8, pack_record(b'\0' * 8, data, b''))
    storage.end()
    storage.close()
    with pytest.raises(RefusedGlobalError, match='builtins.dict'):
        open_safe(path)


def test_persistent_reference_to_a_refused_class(tmp_path):
    # BINPERSID with (oid, subprocess.Popen): the class is refused, the
    # reference shows as the stand-in.
    opcodes = (b'C\x08\x00\x00\x00\x00\x00\x00\x00\x00csubprocess\nPopen\n'
               b'\x86Q')
    path = _raw_root_state(tmp_path, opcodes)
    root = open_safe(path, placeholders=True).get_root()
    assert repr(root.x) == '<refused subprocess.Popen in oid 0>'


def _fixture_paths():
    found = []
    for directory in FIXTURE_DIRS:
        found += [p for p in sorted(glob.glob(os.path.join(directory,
                                                           '*.durus')))
                  if 'torn' not in p]
    return found


@pytest.mark.parametrize('path', _fixture_paths(),
                         ids=lambda p: p.replace(TESTS_DIR, 'tests'))
def test_durus43_files_load_under_safe_without_refusals(path):
    storage = open_storage(path, readonly=True)
    try:
        connection = Connection(storage, unpickle_policy=UnpicklePolicy.safe(
            use_environment=False))
        count = 0
        for obj in connection.get_crawler():
            obj.__getstate__()
            count += 1
        assert count > 1
        assert connection.reader.refusals == {}
    finally:
        storage.close()


def test_policy_argument_is_checked(tmp_path):
    with pytest.raises(ValueError, match='unpickle_policy'):
        Connection(str(tmp_path / 'x.durus'), unpickle_policy='unsafe')


def test_stand_ins_are_equal_per_refusal_and_cannot_be_pickled():
    a = unpickle_policy.make_refused('os', 'system', b'\0' * 8)
    b = unpickle_policy.make_refused('os', 'system', b'\0' * 8)
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != unpickle_policy.make_refused('os', 'system', None)
    assert a(1, 2) is a
    with pytest.raises(RefusedValueError):
        pickle.dumps([a], 2)
    assert copyreg.dispatch_table[unpickle_policy.RefusedGlobal]


def test_pure_python_path_agrees(hostile):
    # The same checks with the compiled extension switched off.
    path, marker, _ = hostile
    code = (
        'import sys; sys.path.insert(0, %r)\n'
        'from durus.connection import Connection\n'
        'from durus.unpickle_policy import UnpicklePolicy\n'
        'import durus._accel as a; assert a.speedups is None\n'
        'c = Connection(%r, unpickle_policy=UnpicklePolicy.safe('
        'placeholders=True))\n'
        'print(repr(c.get_root()["harmless_looking"]["payload"]))\n'
        % (TESTS_DIR, path))
    env = dict(os.environ, DURUS_NO_SPEEDUPS='1')
    done = subprocess.run([sys.executable, '-c', code], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '<refused posix.system in oid 1>'
    assert not os.path.exists(marker)


def test_every_record_of_a_refused_class_is_noted(tmp_path):
    path = str(tmp_path / 'two.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    root['a'], root['b'] = Persistent(), Persistent()
    connection.commit()
    marker = str(tmp_path / 'MARKER')
    command = ('touch ' + marker).encode()
    class_pickle = (b'\x80\x02cposix\nsystem\nq\x00X' +
                    len(command).to_bytes(4, 'little') + command + b'\x85R.')
    storage.begin()
    for obj in (root['a'], root['b']):
        storage.store(obj._p_oid, pack_record(
            obj._p_oid, class_pickle + pickle.dumps({'v': 1}, 2), b''))
    storage.end()
    storage.close()
    safe = open_safe(path, placeholders=True)
    a, b = safe.get_root()['a'], safe.get_root()['b']
    assert a.v == 1 and b.v == 1
    assert safe.reader.refusals[a._p_oid] == {'posix.system'}
    assert safe.reader.refusals[b._p_oid] == {'posix.system'}
    with pytest.raises(RefusedValueError):
        b.v = 2
    assert not os.path.exists(marker)


def test_durus_pack_command_runs_nothing(hostile, durus_server):
    path, marker, _ = hostile
    done = subprocess.run(
        [sys.executable, '-m', 'durus', '-p', '--file', path],
        capture_output=True, text=True, timeout=60, cwd=TESTS_DIR)
    assert done.returncode == 0, done.stderr
    server = durus_server(file=path)
    done = subprocess.run(
        [sys.executable, '-m', 'durus', '-p', '--port', str(server.port)],
        capture_output=True, text=True, timeout=60, cwd=TESTS_DIR)
    assert done.returncode == 0, done.stderr
    assert 'Traceback' not in server.log()
    assert not os.path.exists(marker)


def test_command_line_modules_are_never_imported(tmp_path):
    # durus_shell.__main__ starts a shell when imported (before the guard
    # it now has); any package's __main__ is refused without importing.
    path = _raw_root_state(tmp_path, b'cdurus_shell.__main__\nmain\n')
    sys.modules.pop('durus_shell.__main__', None)
    root = open_safe(path, placeholders=True).get_root()
    assert repr(root.x) == '<refused durus_shell.__main__.main in oid 0>'
    assert 'durus_shell.__main__' not in sys.modules


def test_a_reference_to_a_refused_class_object_cannot_be_stored(tmp_path):
    path = str(tmp_path / 'ref.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    root['gone'] = Persistent()
    connection.commit()
    oid = root['gone']._p_oid
    del root['gone']
    connection.commit()  # (the record stays until a pack)
    storage.begin()
    storage.store(oid, pack_record(
        oid, b'\x80\x02cposix\nsystem\nq\x00.' + pickle.dumps({}, 2), b''))
    storage.end()
    storage.close()
    storage = FileStorage(path)
    safe = Connection(storage, unpickle_policy=UnpicklePolicy.safe(
        placeholders=True, use_environment=False))
    stand_in = safe.get(oid)
    assert isinstance(stand_in, unpickle_policy.RefusedObject)
    assert repr(stand_in) == '<refused class posix.system: oid %d>' % (
        int.from_bytes(oid, 'big'))
    safe.get_root()['ref'] = stand_in
    with pytest.raises(RefusedValueError, match='refused class posix.system'):
        safe.commit()
    safe.abort()
    storage.close()
