"""The compiled ObjectWriter.get_record (csrc/record_writer.c) against its
Python twin.

The compiled one writes the state's pickle itself for the usual value
types and hands everything else back to the Python method; either way the
record must be byte for byte the one the Python twin writes (its pickler
is the reference: Durus 4.3 reads what it writes), with the same new
objects bound in the same order, the same errors, and no state fetched
twice.  Each case below is written by both twins into its own fresh
connection and the results compared.
"""

import copyreg
import math
import re
import sys
from collections import OrderedDict
from enum import IntEnum

import pytest

from durus import _accel, serialize
from durus.connection import Connection
from durus.persistent import GHOST, Persistent, PersistentObject
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.serialize import ObjectWriter
from durus.storage import MemoryStorage
from compiled_only import compiled


class Thing(Persistent):
    def __init__(self, value=None):
        self.value = value


class Slotted(PersistentObject):
    __slots__ = ['a', 'b']


class OddState(Persistent):
    """__getstate__ answers whatever the test put in ``made``."""

    calls = 0

    def __init__(self, made):
        self.made = made

    def __getstate__(self):
        OddState.calls += 1
        made = self.__dict__['made']
        return made() if callable(made) else made


class Failing(Persistent):
    def __getstate__(self):
        raise LookupError('no state for you')


class Meta(type):
    pass


class WithMeta(Persistent, metaclass=Meta):
    pass


class Number(IntEnum):
    ONE = 1


class BigInt(int):
    pass


def both_twins():
    return [('compiled', _accel.in_use('get_record')),
            ('python', _accel.python_twin('get_record'))]


def write_all(get_record, make, writer_class=ObjectWriter):
    """Bind ``make(connection)`` under a fresh root and write the root and
    everything new found from it, as a commit does: the records (or the
    error) and the oids of the new objects in the order they were bound."""
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    root['obj'] = make(connection)
    writer = writer_class(connection)
    records = []
    try:
        for obj in writer.gen_new_objects(root):
            records.append(get_record(writer, obj))
    except Exception as error:
        message = re.sub(r'@[0-9a-f]+', '@?', str(error))
        records.append((type(error), message))
    return records, [obj._p_oid for obj in writer.new_objects]


def assert_twins_agree(make, writer_class=ObjectWriter):
    (_, fast), (_, slow) = both_twins()
    got = write_all(fast, make, writer_class)
    expected = write_all(slow, make, writer_class)
    assert got == expected
    return got


def state_of(value):
    return lambda connection: Thing(value)


def fresh(factory):
    """A Thing whose state ``factory`` makes anew for each twin (objects
    bound by one twin's connection must not reach the other's)."""
    return lambda connection: Thing(factory())


shared_list = [1, 2]
shared_text = 'shared %d' % 3   # not interned
recursive_list = []
recursive_list.append(recursive_list)
recursive_dict = {}
recursive_dict['me'] = recursive_dict
inner = []
recursive_tuple = (inner, 1)
inner.append(recursive_tuple)
inner_long = []
recursive_long_tuple = (inner_long, 1, 2, 3, 4)
inner_long.append(recursive_long_tuple)

VALUES = [
    None, True, False, 0, 1, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31,
    -1, -128, -129, -255, -256, -257, -32768, -32769, -2 ** 31,
    -2 ** 31 - 1, 2 ** 40, -2 ** 40, 2 ** 63 - 1, -2 ** 63, 2 ** 64,
    -2 ** 64 - 1, 10 ** 40, 0.0, -0.0, 1.5, 1e300, math.inf, -math.inf,
    math.nan, '', 'a', 'é€😀', 'x' * 300, 'lone \ud800 surrogate',
    b'', b'\x00', b'abc', b'\x80\xff' * 200, bytes(range(256)),
    (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((),), [], [1], [[]],
    {}, {'k': 1}, {1: 2, 3: 4}, {(1, 2): [3]},
    [shared_list, shared_list, (shared_list,)], [shared_text, shared_text],
    recursive_list, recursive_dict, recursive_tuple, recursive_long_tuple,
    list(range(999)), list(range(1000)), list(range(1001)),
    list(range(2500)), {n: n for n in range(1000)},
    {n: n for n in range(1001)}, {n: n for n in range(2000)},
    ['s%d' % n for n in range(300)] + ['s%d' % 0],   # LONG_BINPUT/GET
    'latin1', {'enc': 'latin1', 'data': b'\xffdata'},
    [b'same', b'same'], {'a': b'x', 'b': b'x'},
    Number.ONE, BigInt(5), OrderedDict(a=1), {1, 2}, frozenset([3]),
    bytearray(b'ab'), complex(1, 2), Thing, len,
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['deep']]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]


def nested(depth):
    value = 'bottom'
    for _ in range(depth):
        value = [value]
    return value


@compiled
@pytest.mark.parametrize('value', VALUES, ids=lambda v: repr(v)[:40])
def test_states_of_plain_values_give_the_same_records(value):
    records, _ = assert_twins_agree(state_of(value))
    assert all(type(record) is bytes for record in records)


@compiled
@pytest.mark.parametrize('depth', [50, 99, 100, 101, 150, 400])
def test_deep_states_give_the_same_records(depth):
    assert_twins_agree(state_of(nested(depth)))


@compiled
def test_unpicklable_values_raise_the_same_error():
    records, _ = assert_twins_agree(state_of({'f': lambda: 1}))
    assert records[-1][0].__name__ in ('PicklingError', 'AttributeError')
    records, new = assert_twins_agree(
        fresh(lambda: [Thing(), Thing(), {'bad': lambda: 2}, Thing()]))
    assert len(new) == 3
    assert isinstance(records[-1], tuple)


@compiled
def test_references_new_objects_and_ghosts():
    def make(connection):
        a, b = Thing('a'), Thing('b')
        a.value = [b, b, Thing(a)]   # shared and cyclic references
        return PersistentList([a, b, PersistentDict({'b': b}), Slotted()])
    records, new = assert_twins_agree(make)
    assert len(new) == 6 and len(set(new)) == 6

    def with_ghost(connection):
        root = connection.get_root()
        root['old'] = Thing('stored')
        connection.commit()
        old = root['old']
        old._p_set_status_ghost()
        return Thing([old, old])
    records, _ = assert_twins_agree(with_ghost)
    assert len(records) == 2   # the root and the new Thing (old is stored)


@compiled
def test_a_referenced_ghost_stays_a_ghost():
    for _, get_record in both_twins():
        connection = Connection(MemoryStorage())
        root = connection.get_root()
        root['old'] = Thing('stored')
        connection.commit()
        old = root['old']
        old._p_set_status_ghost()
        holder = Thing([old])
        root['holder'] = holder
        writer = ObjectWriter(connection)
        records = [get_record(writer, obj)
                   for obj in writer.gen_new_objects(root)]
        assert old._p_status == GHOST
        assert records[-1][:8] == holder._p_oid
        assert records[-1].endswith(old._p_oid)


@compiled
def test_hooked_variants_and_metaclasses_name_their_real_class():
    def make(connection):
        root = connection.get_root()
        root['t'] = Thing(1)
        root['m'] = WithMeta()
        connection.commit()
        hooked = root['t']
        hooked.value           # accessed: its type is a hook variant now
        return Thing([hooked, root['m'], WithMeta(), WithMeta()])
    assert_twins_agree(make)


@compiled
def test_objects_of_another_connection_are_refused_the_same_way():
    other = Connection(MemoryStorage())
    stranger = other.get_root()
    records, new = assert_twins_agree(
        lambda connection: Thing([Thing('bound first'), stranger]))
    error_type, message = records[-1]
    assert error_type is ValueError and 'another connection' in message
    assert len(new) == 2   # the Thing inside was bound before the refusal


@compiled
def test_an_object_with_a_connection_but_no_oid_is_refused():
    def make(connection):
        broken = Thing()
        broken._p_connection = connection
        return Thing([broken])
    records, _ = assert_twins_agree(make)
    assert records[-1][0] is ValueError


@compiled
@pytest.mark.parametrize('made', [
    [1, 2], (1, 2), 7, None, 'text', {1, 2}, OrderedDict(b=2),
    lambda: [Thing()], lambda: {'self-ish': Thing()},
], ids=repr)
def test_odd_getstate_results_give_the_same_records(made):
    assert_twins_agree(lambda connection: OddState(made))


@compiled
def test_a_getstate_returning_the_object_itself():
    def make(connection):
        obj = OddState(None)
        obj.__dict__['made'] = lambda: obj
        return obj
    assert_twins_agree(make)


@compiled
def test_the_state_is_fetched_once_even_when_handed_back():
    for _, get_record in both_twins():
        OddState.calls = 0
        records, _ = write_all(get_record,
                               lambda connection: OddState({1, 2}))
        assert OddState.calls == 1


@compiled
def test_a_failing_getstate_raises_its_own_error():
    records, _ = assert_twins_agree(lambda connection: Failing())
    assert records[-1] == (LookupError, 'no state for you')


@compiled
def test_compression_settings_are_read_at_each_call(monkeypatch):
    big = state_of(['word %d' % n for n in range(200)])
    small = state_of([1, 2, 3])
    default = assert_twins_agree(big)
    monkeypatch.setattr(serialize, 'COMPRESS_MIN_SIZE', 0)
    monkeypatch.setattr(serialize, 'COMPRESSION_LEVEL', 6)
    level6 = assert_twins_agree(big)
    assert level6 != default
    assert_twins_agree(small)
    monkeypatch.setattr(serialize, 'WRITE_COMPRESSED_STATE_PICKLES', False)
    assert_twins_agree(big)


@compiled
def test_a_class_with_an_extension_code_gives_the_same_records():
    copyreg.add_extension(__name__, 'Thing', 240)
    try:
        serialize._class_entries.pop(Thing, None)
        assert_twins_agree(fresh(lambda: [Thing(), Thing()]))
    finally:
        copyreg.remove_extension(__name__, 'Thing', 240)
        serialize._class_entries.pop(Thing, None)


@compiled
def test_dry_runs_and_writer_subclasses_take_the_python_way():
    class Writer(ObjectWriter):
        pass
    assert_twins_agree(fresh(lambda: [Thing(), {'x': 1}]), Writer)

    class DryRun(ObjectWriter):
        def __init__(self, connection):
            ObjectWriter.__init__(self, connection, dry_run=True)
    records, new = assert_twins_agree(fresh(lambda: [Thing(), Thing()]),
                                      DryRun)
    assert new and all(oid is None for oid in new)  # nothing bound


@compiled
def test_a_commit_stores_the_same_records_on_both_paths(monkeypatch):
    def commit_graph():
        storage = MemoryStorage()
        connection = Connection(storage)
        root = connection.get_root()
        root['list'] = PersistentList(Thing(n) for n in range(1500))
        root['dict'] = PersistentDict(
            (str(n), Thing({'n': n, 'b': b'\x01' * n})) for n in range(300))
        connection.commit()
        root['list'][3].value = ('changed', root['dict'])
        connection.commit()
        return storage.records
    fast = commit_graph()
    monkeypatch.setattr(ObjectWriter, 'get_record',
                        _accel.python_twin('get_record'))
    assert commit_graph() == fast


def test_the_python_record_of_a_state_matches_a_plain_pickle():
    # Both paths: the record's data is the class pickle and the state
    # pickle written by one pickler (the layout Durus 4.3 reads).
    import pickle
    connection = Connection(MemoryStorage())
    thing = Thing({'k': [1, 2]})
    connection.get_root()['t'] = thing
    connection.commit()
    record = ObjectWriter(connection).get_record(thing)
    head = pickle.dumps(Thing, 2)
    data = record[12:12 + int.from_bytes(record[8:12], 'big')]
    assert record[:8] == thing._p_oid
    assert data.startswith(head)
    assert pickle.loads(data[len(head):]) == {'value': {'k': [1, 2]}}
    assert sys.getrefcount(thing) > 1


@compiled
def test_the_compiled_writer_keeps_no_references():
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    text = 'kept %d' % 1
    data = b'\xff' + b'bytes %d' % 2
    inner = [text, data, (text, 1.5)]
    thing = Thing({'inner': inner, 'same': inner, 'ref': Thing()})
    odd = OddState({3, 4})                       # handed back to Python
    root['thing'], root['odd'] = thing, odd
    connection.commit()
    writer = ObjectWriter(connection)
    watched = [text, data, inner, thing, thing._p_oid, Thing, odd]
    get_record = _accel.in_use('get_record')
    for _ in range(2):
        # (the first calls fill the class caches: the first one also
        # moves each object to the variant it is read through)
        get_record(writer, thing)
        get_record(writer, odd)
    writer.ready_again()
    before = [sys.getrefcount(value) for value in watched]
    for _ in range(100):
        get_record(writer, thing)
        get_record(writer, odd)
    writer.ready_again()
    assert [sys.getrefcount(value) for value in watched] == before
