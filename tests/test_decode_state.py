"""The compiled state decoder (csrc/decode.c) against its Python twin.

``_speedups.decode_state(reader, state, memo)`` stands in for
``ObjectReader._load_state_pickle``: it walks the common protocol-2
opcodes itself and hands every other pickle to the Python method.  The
two must give equal states, the same ghosts for references, and the
same errors; the unpickling policy must refuse the same globals.
"""

import os
import datetime
import io
import pickle
import sys
from fractions import Fraction

import pytest

from durus import _accel
from durus.connection import Connection
from durus.error import RefusedGlobalError
from durus.file_storage import FileStorage
from durus.persistent import Persistent, PersistentBase
from durus.record import pack_record
from durus.storage import MemoryStorage
from compiled_only import compiled

speedups = _accel.speedups

CLASS_PICKLE = b'\x80\x02cdurus.persistent_dict\nPersistentDict\nq\x00.'


class Thing(Persistent):
    pass


class Plain(object):
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return type(other) is Plain and other.x == self.x


def oid(n):
    return n.to_bytes(8, 'big')


class _StatePickler(pickle.Pickler):
    """Writes a state as a commit does: protocol 2, memo after the class
    (so the first BINPUT is 1), persistent objects as (oid, class)."""

    def persistent_id(self, obj):
        if isinstance(obj, PersistentBase):
            return obj._p_oid, obj.__class__
        return None


_CLASS_SLOT = object()  # stands for the record's class, memo entry 0


def state_pickle(value):
    out = io.BytesIO()
    pickler = _StatePickler(out, 2)
    pickler.memo = {id(_CLASS_SLOT): (0, _CLASS_SLOT)}
    pickler.dump(value)
    return out.getvalue()


def readers(policy=None):
    """Two readers of one storage: compiled and Python."""
    storage = MemoryStorage()
    first = Connection(storage, unpickle_policy=policy)
    second = Connection(storage, unpickle_policy=policy)
    return first.reader, second.reader


def decode_both(state, policy=None):
    """(compiled result, Python result, compiled reader, Python reader);
    an exception stands in for a result."""
    fast, slow = readers(policy)
    memo = fast.get_class(CLASS_PICKLE) and fast._class_entry(CLASS_PICKLE)[2]
    slow_memo = slow._class_entry(CLASS_PICKLE)[2]
    python = _accel.python_twin('decode_state')
    fast.loading_oid = slow.loading_oid = oid(3)  # named in refusals
    results = []
    for call in (lambda: speedups.decode_state(fast, state, memo),
                 lambda: python(slow, state, slow_memo)):
        try:
            results.append(call())
        except Exception as error:
            results.append(error)
    return results[0], results[1], fast, slow


def describe(value):
    """A comparable form: persistent objects by class and oid."""
    if isinstance(value, PersistentBase):
        return ('ref', value.__class__.__name__, value._p_oid)
    if isinstance(value, dict):
        return {key: describe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(describe(item) for item in value)
    if isinstance(value, Exception):
        return ('error', type(value))
    return value


def ghost(n):
    thing = Thing()
    thing._p_oid = oid(n)
    return thing


shared = [1, 2]
WALKED = [
    {},
    {'n': 0, 'small': 255, 'two': 256, 'big2': 65535, 'four': 70000,
     'negative': -1, 'minimum': -2 ** 31, 'long': 2 ** 40, 'huge': -2 ** 70,
     'zero_long': 2 ** 31},
    {'f': 1.5, 'negative zero': -0.0, 'inf': float('inf'), 'minus one': -1.0},
    {'none': None, 'yes': True, 'no': False},
    {'text': 'item 1', 'accents': '\xe9\u20ac\U0001f600', 'lone': '\ud800',
     'empty': ''},
    {'bytes': b'\x00\xff' * 4},
    {'tuples': [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)]},
    {'nested': [1, [2, [3, {'x': {'y': [4]}}]]], 'dict keys': {1: 'a', (2, 3): 'b'}},
    {'shared': [shared, shared], 'again': shared},
    {'many': ['v%d' % i for i in range(400)]},  # LONG_BINPUT, APPENDS
    # many names (the kept names collide), names that are also values
    dict([('k%d' % i, 'k%d' % (i + 1)) for i in range(600)] +
         [('n' * 40, 1), ('n' * 41, 2), ('\xe9t\xe9', 3), ('', 4)]),
    {'ref': ghost(7), 'refs': [ghost(8), ghost(7), (ghost(9), 'x')]},
    # oids whose latin-1 str has characters of one and two UTF-8 bytes
    {'oids': [ghost(n) for n in (0x7f, 0x80, 0xbf, 0xc0, 0xff, 0xc3c2,
                                 2 ** 64 - 1, 0x8000000000000041)]},
    ['a list state', 1],
    ('a tuple state',),
    None,
]
HANDED_OVER = [  # opcodes the walk leaves to the Python method
    {'empty bytes': b''},  # (a REDUCE of builtins.bytes)
    {'set': {1, 2}, 'frozen': frozenset([3])},
    {'date': datetime.date(2026, 12, 3), 'fraction': Fraction(1, 3)},
    {'object': Plain(3)},
    {'ref': ghost(5), 'object': Plain(1)},
]
STATES = WALKED + HANDED_OVER


@compiled
@pytest.mark.parametrize('value', STATES, ids=range(len(STATES)))
def test_decode_matches_the_python_method(value):
    fast, slow, fast_reader, slow_reader = decode_both(state_pickle(value))
    assert describe(fast) == describe(slow)
    assert not isinstance(fast, Exception)
    # References are the reader's connection's ghosts, one per oid.
    for reader, result in ((fast_reader, fast), (slow_reader, slow)):
        if isinstance(result, dict) and 'refs' in result:
            cache = reader.connection.cache
            assert result['refs'][1] is result['ref'] is cache.get(oid(7))
    # The walk read it all: the Python method never made its unpickler.
    assert (fast_reader._shared is None) == any(value is v for v in WALKED)
    if isinstance(value, dict) and 'shared' in value:
        assert fast['shared'][0] is fast['shared'][1] is fast['again']


@compiled
@compiled
def test_known_names_are_answered_with_the_same_str():
    data = state_pickle({'number': 1, 'name': 'number'})
    first, _, _, _ = decode_both(data)
    second, _, _, _ = decode_both(data)
    assert first == second == {'number': 1, 'name': 'number'}
    (key, _one), (key2, _name) = second.items()
    assert key is list(first)[0] and key2 is list(first)[1]


@compiled
def test_state_keys_are_interned_but_not_those_of_inner_dicts():
    key = ''.join(['not', 'interned', 'yet', str(id(object()))])
    inner = ''.join(['inner', str(id(object()))])
    fast, slow, _, _ = decode_both(state_pickle({key: {inner: 1}}))
    assert fast == slow
    (fast_key, value), = fast.items()
    assert sys.intern(fast_key) is fast_key
    (inner_key, _value), = value.items()
    assert sys.intern(''.join(['inner', inner_key[5:]])) is not inner_key


ODD_PICKLES = [
    b'\x80\x02}q\x01.extra',           # bytes after STOP
    b'\x80\x02}q\x01X\x05\x00\x00\x00ab',  # truncated
    b'\x80\x02h\x00.',                  # the class, from the class memo
    # a reference naming the record's class by memo (as BTree nodes do)
    b'\x80\x02}q\x01X\x01\x00\x00\x00rq\x02c_codecs\nencode\n'
    b'X\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07'
    b'X\x06\x00\x00\x00latin1\x86Rh\x00\x86Qs.',
    b'\x80\x02h\x05.',                  # an unset memo slot
    b'(dp0\nS\'a\'\np1\nI1\ns.',        # protocol 0
    b'',
    b'\x80\x02N',                      # no STOP
    b'\x80\x02}(K\x01u.',              # SETITEMS with an odd count
    b'\x80\x02](]K\x01s.',             # SETITEM on a list
    b'\x80\x02}(]K\x01u.',             # an unhashable key
    b'\x80\x02K\x01K\x02.',            # two values left
    b'\x80\x02(K\x01.',                # a mark left
    b'\x80\x02X\x02\x00\x00\x00\xff\xfe.',  # not UTF-8
    b'\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00\xe9\x85R.',  # bad tuple
    b'\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc4\x80'
    b'X\x06\x00\x00\x00latin1\x86R.',  # not latin-1
    # encode to another codec; with a mark between the function and its
    # arguments; 'latin1' read back from a slot holding something else
    b'\x80\x02c_codecs\nencode\nq\x01X\x02\x00\x00\x00\xc3\xa9q\x02'
    b'X\x05\x00\x00\x00utf-8q\x03\x86R.',
    b'\x80\x02c_codecs\nencode\n(X\x01\x00\x00\x00a'
    b'X\x06\x00\x00\x00latin1\x86R.',
    b'\x80\x02X\x06\x00\x00\x00latin2q\x01c_codecs\nencode\n'
    b'X\x01\x00\x00\x00ah\x01\x86R.',
    b'\x80\x02cno_such_module_here\nname\n.',
    b'\x80\x02\x8a\x09' + b'\xff' * 9 + b'.',
    b'\x80\x02Q.',                     # BINPERSID of nothing
    b'\x80\x02X\x01\x00\x00\x00aQ.',   # a pid that is not a tuple
]


@compiled
@pytest.mark.parametrize('data', ODD_PICKLES, ids=range(len(ODD_PICKLES)))
def test_odd_pickles_get_the_python_methods_answer(data):
    fast, slow, _, _ = decode_both(data)
    if isinstance(slow, Exception):
        assert type(fast) is type(slow), (fast, slow)
        assert str(fast) == str(slow)
    else:
        assert describe(fast) == describe(slow)


def _reference_read_back(slot):
    """{'r': a reference, 's': memo slot `slot` read back}: slot 4 is the
    oid's str, 5 'latin1', 6 the (str, 'latin1') arguments of
    _codecs.encode, 7 the oid's bytes, 9 the persistent id; Python's
    pickler never reads back 4, 6 or 9 (it makes them fresh for every
    reference)."""
    return (b'\x80\x02}q\x01(X\x01\x00\x00\x00rq\x02'
            b'c_codecs\nencode\nq\x03'
            b'X\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc2\x87q\x04'
            b'X\x06\x00\x00\x00latin1q\x05\x86q\x06Rq\x07'
            b'h\x00\x86q\x09Qq\x0a'
            b'X\x01\x00\x00\x00sh' + bytes([slot]) + b'u.')


@compiled
@pytest.mark.parametrize('slot', [4, 5, 6, 7, 9])
def test_reading_back_what_a_reference_consumed(slot):
    # The walk frees a reference's str, argument tuple and persistent id
    # once consumed (so that the ghosts made next lie in creation order);
    # a pickle that reads one back goes to the Python method, and both
    # answer alike.  The oid's bytes stay: the ghost keeps them anyway.
    fast, slow, fast_reader, _ = decode_both(_reference_read_back(slot))
    assert not isinstance(slow, Exception)
    assert describe(fast) == describe(slow)
    assert fast['r']._p_oid == oid(0x87) and fast['r'] is not slow['r']
    assert (fast_reader._shared is None) == (slot in (5, 7))
    if slot == 7:
        assert fast['s'] is fast['r']._p_oid
    if slot == 5:
        assert fast['s'] == 'latin1'

@compiled
def test_safe_policy_refuses_the_same_globals():
    payload = state_pickle({'run': os.getcwd})
    hostile = (b'\x80\x02}q\x01X\x01\x00\x00\x00aq\x02cos\nsystem\n'
               b'X\x04\x00\x00\x00trueq\x03\x85Rs.')
    for data in (payload, hostile):
        fast, slow, fast_reader, slow_reader = decode_both(data, 'safe')
        assert isinstance(slow, RefusedGlobalError)
        assert type(fast) is type(slow) and str(fast) == str(slow)
        assert fast_reader.refusals == slow_reader.refusals
    # Allowed values still load under the safe policy.
    value = {'bytes': b'\x01', 'ref': ghost(4), 'n': [1.5, None]}
    fast, slow, _, _ = decode_both(state_pickle(value), 'safe')
    assert describe(fast) == describe(slow) == describe(value)


@compiled
def test_placeholders_and_refused_references_match(tmp_path):
    policy = 'safe'
    from durus.unpickle_policy import UnpicklePolicy
    policy = UnpicklePolicy.safe(placeholders=True, use_environment=False)
    data = (b'\x80\x02}q\x01X\x01\x00\x00\x00aq\x02cos\nsystem\n'
            b'X\x04\x00\x00\x00trueq\x03\x85R'
            b'X\x01\x00\x00\x00bc_codecs\nencode\nX\x01\x00\x00\x00\x01'
            b'X\x06\x00\x00\x00latin1\x86Rcos\nsystem\n\x86Qu.')
    fast, slow, fast_reader, slow_reader = decode_both(data, policy)
    assert repr(fast) == repr(slow)
    assert fast_reader.refusals == slow_reader.refusals


def _file_with_record(path, data):
    """A file whose object 1 has record data ``data`` (the root refers
    to it)."""
    storage = FileStorage(str(path))
    connection = Connection(storage)
    connection.get_root()['thing'] = Thing()
    connection.commit()
    thing_oid = connection.get_root()['thing']._p_oid
    storage.begin()
    storage.store(thing_oid, pack_record(thing_oid, data, b''))
    storage.end()
    storage.close()
    return thing_oid


def test_loaded_state_dict_becomes_the_instance_dict_only_when_unshared(
        tmp_path):
    class_pickle = b'\x80\x02ctest_decode_state\nThing\nq\x00.'
    # {'me': <the state dict itself>, 'n': 1}: the copy Python's
    # __setstate__ makes refers to the state dict, not to itself.
    selfish = (b'\x80\x02}q\x01(X\x02\x00\x00\x00meq\x02h\x01'
               b'X\x01\x00\x00\x00nq\x03K\x01u.')
    path = tmp_path / 'db.durus'
    thing_oid = _file_with_record(path, class_pickle + selfish)
    storage = FileStorage(str(path), readonly=True)
    connection = Connection(storage)
    thing = connection.get(thing_oid)
    assert thing.n == 1
    assert thing.me is not thing.__dict__ and thing.me['me'] is thing.me
    assert set(thing.__dict__) == {'me', 'n'}
    storage.close()


def test_bench_like_states_load_the_same_compiled_and_pure(tmp_path):
    path = tmp_path / 'db.durus'
    storage = FileStorage(str(path))
    connection = Connection(storage)
    things = []
    for n in range(50):
        thing = Thing()
        thing.number = n
        thing.name = 'item %d' % n
        thing.price = n / 10.0
        thing.tags = ['red', 'blue'] if n % 2 else ['green']
        thing.peer = things[-1] if things else None
        things.append(thing)
    connection.get_root()['things'] = things
    connection.commit()
    storage.close()
    storage = FileStorage(str(path), readonly=True)
    connection = Connection(storage)
    loaded = connection.get_root()['things']
    for n, thing in enumerate(loaded):
        assert thing.name == 'item %d' % n and thing.number == n
        assert thing.price == n / 10.0
        assert thing.peer is (loaded[n - 1] if n else None)
        for key in thing.__dict__:
            assert sys.intern(key) is key
    storage.close()
