"""durus.record_check: records judged by walking their pickles, without
unpickling them (nothing imported, no code run)."""

import random
import sys
import zlib

import pytest

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from durus.record_check import record_problem
from durus.serialize import pack_record
from durus.sqlite_storage import SqliteStorage
from durus.storage import MemoryStorage

OID = b'\0' * 7 + b'\x05'
CLASS = b'\x80\x02capp\nItem\nq\x00.'


def real_records():
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    root['dict'] = PersistentDict(a=1, b=[1.5, None, True], c={'x': (1, 2)})
    root['list'] = PersistentList([PersistentDict() for _ in range(5)])
    root['set'] = PersistentSet([1, 2, 3])
    root['tree'] = BTree()
    for number in range(500):
        root['tree'][number] = PersistentDict(v='%d' % number * 50)
    root['text'] = 'ünïcode' * 100
    root['bytes'] = bytes(range(256)) * 4
    connection.commit()
    return [record for _, record in connection.storage.gen_oid_record()]


def test_records_written_here_pass():
    records = real_records()
    assert len(records) > 500
    assert [record for record in records if record_problem(record)] == []


@pytest.mark.parametrize('name,storage_class', [
    ('shelf.durus', FileStorage), ('shelf-packed.durus', FileStorage),
    ('dfs20.durus', FileStorage2), ('sqlite.durus', SqliteStorage)])
def test_every_record_written_by_durus43_passes(fixture_copy, name,
                                                storage_class):
    storage = storage_class(fixture_copy(name), readonly=True)
    try:
        records = [record for _, record in storage.gen_oid_record()]
    finally:
        storage.close()
    assert len(records) > 10
    assert [record for record in records if record_problem(record)] == []


def test_damage_from_any_byte_on_is_found():
    rng = random.Random(7)
    for record in rng.sample(real_records(), 60):
        for offset in range(12, len(record)):
            for tail in (bytes(len(record) - offset),
                         rng.randbytes(len(record) - offset)):
                damaged = record[:offset] + tail
                if damaged != record:
                    assert record_problem(damaged), (record, offset)


def test_nothing_is_imported_or_run():
    name = 'durus_record_check_probe_module'
    state = (b'\x80\x02c' + name.encode() + b'\nboom\nq\x01)R.')
    assert record_problem(pack_record(OID, CLASS.replace(
        b'app', name.encode()) + state, b'')) is None
    assert name not in sys.modules


def state_with_refs(*oids):
    """A state pickle ``[ref, ...]`` of persistent references, written as
    Durus writes them (oid via _codecs.encode, then the class)."""
    parts = [b'\x80\x02]q\x01(']
    for oid in oids:
        parts.append(b'c_codecs\nencode\nX' + len(oid).to_bytes(4, 'little')
                     + oid + b'X\x06\x00\x00\x00latin1\x86R'
                     + b'capp\nItem\n\x86Q')
    parts.append(b'e.')
    return b''.join(parts)


def test_reference_list_must_match_the_references_in_the_state():
    one, two = b'\0' * 7 + b'\x01', b'\0' * 7 + b'\x02'
    data = CLASS + state_with_refs(two, one, OID)
    assert record_problem(pack_record(OID, data, one + two)) is None
    for refs in (one, one + one + two, b'\0' * 8 + two, one + two + OID,
                 b''):
        assert 'reference list' in record_problem(
            pack_record(OID, data, refs))
    # A state without references: the trailer is the caller's business.
    assert record_problem(pack_record(OID, CLASS + b'\x80\x02}q\x01.',
                                      one)) is None


@pytest.mark.parametrize('data,reason', [
    (b'', 'class pickle'),
    (CLASS, 'state pickle'),
    (CLASS + b'\x80\x02}q\x01.x', 'stray'),
    (CLASS + b'\x80\x02}q\x01', 'STOP'),
    (CLASS + b'\x80\x02h\x07.', 'memo'),
    (CLASS + b'\x80\x02.', 'stack'),
    (CLASS + zlib.compress(b'\x80\x02}q\x01.')[:-1], 'zlib'),
    (CLASS + zlib.compress(b'\x80\x02}q\x01.') + b'\0', 'stray bytes'),
    (CLASS + b'\x80\x02X\x10\x00\x00\x00ab.', 'cut short'),
])
def test_what_is_refused(data, reason):
    assert reason in record_problem(pack_record(OID, data, b''))


def test_compressed_and_raw_states_pass():
    state = b'\x80\x02}q\x01X\x01\x00\x00\x00aK\x01s.'
    for form in (state, zlib.compress(state), zlib.compress(state, 1)):
        assert record_problem(pack_record(OID, CLASS + form, b'')) is None


def test_opcode_table_matches_pickletools():
    import pickletools
    from durus import record_check as check
    kinds = {pickletools.UP_TO_NEWLINE: check._LINE,
             pickletools.TAKEN_FROM_ARGUMENT1: check._LEN1,
             pickletools.TAKEN_FROM_ARGUMENT4: check._LEN4,
             pickletools.TAKEN_FROM_ARGUMENT4U: check._LEN4U,
             pickletools.TAKEN_FROM_ARGUMENT8U: check._LEN8}
    expected = {}
    for op in pickletools.opcodes:
        before = op.stack_before
        to_mark = pickletools.markobject in before
        pops = before.index(pickletools.markobject) if to_mark else len(
            before)
        arg = None if op.arg is None else kinds.get(op.arg.n, op.arg.n)
        if op.name in ('GLOBAL', 'INST'):
            arg = check._PAIR
        expected[ord(op.code)] = (op.name, arg, pops, to_mark,
                                  len(op.stack_after))
    assert check._TABLE == expected
    import pickle
    assert check._HIGHEST_PROTOCOL >= pickle.HIGHEST_PROTOCOL


# The compiled twin (csrc/record_check.c) against the Python walk.

from durus import record_check  # noqa: E402
from durus._accel import speedups  # noqa: E402
from compiled_only import compiled  # noqa: E402

# (record_fine is listed in durus._accel.TWINS; tests/test_accel.py checks
# the wiring.)


def verdicts(record):
    """(compiled verdict, Python verdict) as True fine / False damaged;
    the compiled one None when it leaves the record to Python."""
    return (speedups.record_fine(record),
            record_check._python_record_problem(record) is None)


def agree(record):
    fine, python_fine = verdicts(record)
    return fine is None or fine == python_fine


def built_with_zlib():
    """Whether the compiled walk inflates states itself (setup.py links
    zlib when it finds it; without it compressed states go to Python)."""
    state = zlib.compress(b'\x80\x02}q\x01.')
    return speedups.record_fine(pack_record(OID, CLASS + state, b'')) is True


needs_zlib = pytest.mark.skipif(
    speedups is not None and not built_with_zlib(),
    reason='durus._speedups was built without zlib: records with a '
           'compressed state are left to the Python walk')


@compiled
@needs_zlib
def test_compiled_walk_settles_every_real_record_alone():
    import record_fuzz
    records = record_fuzz.written_records() + record_fuzz.fixture_records()
    assert len(records) > 500
    assert all(speedups.record_fine(record) is True for record in records)


@compiled
def test_compiled_walk_agrees_with_python_on_fuzzed_records():
    import record_fuzz
    tally, wrong = record_fuzz.run(20000, seed=5)
    assert wrong == []
    # Both verdicts are common, and the compiled walk decides nearly all.
    assert tally[True] > 500 and tally[False] > 10000
    if built_with_zlib():
        assert tally[True] > 1000
        assert tally[None] < 0.05 * sum(tally.values())


@compiled
@pytest.mark.parametrize('version', range(256))
def test_protocol_numbers(version):
    record = pack_record(OID, bytes([0x80, version]) + CLASS[2:] +
                         b'\x80\x02}q\x01.', b'')
    assert agree(record)
    assert speedups.record_fine(record) is (
        version <= record_check._HIGHEST_PROTOCOL)


@compiled
@pytest.mark.parametrize('code', range(256))
def test_every_opcode_byte_in_a_state(code):
    rng = random.Random(code)
    for tail in (b'', b'.', b'\n.', b'\x00\x00\x00\x00.', b'N.',
                 b'\x01\x00\x00\x00\x00\x00\x00\x00a.'):
        for before in (b'', b'N', b'(N', b'NN', b'(NN', b'NNN'):
            state = b'\x80\x02' + before + bytes([code]) + tail
            assert agree(pack_record(OID, CLASS + state, b'')), state
    for _ in range(50):
        state = bytes([code]) + rng.randbytes(rng.randrange(12)) + b'.'
        assert agree(pack_record(OID, CLASS + state, b''))


@compiled
def test_text_must_be_utf8_as_python_decodes_it():
    rng = random.Random(3)
    samples = [b'\xed\xa0\x80', b'\xed\xbf\xbf', b'\xed\xa0', b'\xc0\x80',
               b'\xe0\x80\x80', b'\xf4\x90\x80\x80', b'\xf0\x8f\xbf\xbf',
               b'\xf4\x8f\xbf\xbf', b'\xc3\xa9' * 8, b'\xff', b'\x80',
               'ü€𝄞'.encode()]
    samples += [rng.randbytes(rng.randrange(1, 6)) for _ in range(3000)]
    samples += [bytes(rng.choice([0x41, 0x80, 0xbf, 0xc2, 0xc3, 0xe0, 0xed,
                                  0xef, 0xf0, 0xf4, 0xf5])
                      for _ in range(rng.randrange(1, 6)))
                for _ in range(3000)]
    for raw in samples:
        try:
            raw.decode('utf-8', 'surrogatepass')
            valid = True
        except UnicodeDecodeError:
            valid = False
        state = (b'\x80\x02X' + len(raw).to_bytes(4, 'little') + raw + b'.')
        assert verdicts(pack_record(OID, CLASS + state, b'')) == (
            valid, valid), raw


@compiled
def test_oids_spelled_every_way_are_read_as_references():
    one = b'\x00\x00\x00\x00\x00\x00\xe9\xff'
    spellings = [
        b'c_codecs\nencode\nX\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00'
        b'\xc3\xa9\xc3\xbfX\x06\x00\x00\x00latin1\x86R',
        b'\x8c\x07_codecs\x8c\x06encode\x93\x8c\x0a\x00\x00\x00\x00\x00\x00'
        b'\xc3\xa9\xc3\xbf\x8c\x07latin-1\x86R',
        b'C\x08' + one, b'U\x08' + one, b'B\x08\x00\x00\x00' + one,
        b'\x8e\x08\x00\x00\x00\x00\x00\x00\x00' + one,
    ]
    for spelling in spellings:
        state = b'\x80\x02(' + spelling + b'capp\nItem\n\x86Qt.'
        for refs, fine in ((one, True), (b'', False), (one + one, False)):
            record = pack_record(OID, CLASS + state, refs)
            assert verdicts(record) == (fine, fine), (spelling, refs)
    # Not an oid: 9 latin-1 bytes, a str, a tuple: no reference read.
    for spelling in (b'C\x09' + one + b'x', b'\x8c\x08' + b'a' * 8,
                     b'N\x85'):
        state = b'\x80\x02' + spelling + b'capp\nItem\n\x86Q.'
        record = pack_record(OID, CLASS + state, b'anything')
        assert verdicts(record) == (True, True)


@compiled
def test_memo_and_stack_edge_cases():
    states = [
        b'\x80\x02Nq\x00h\x00\x86.',           # get after put
        b'\x80\x02Nh\x00.',                     # never put
        b'\x80\x02N\x94h\x00\x86.',             # memoize is len(memo)
        b'\x80\x02N(q\x05h\x05\x86.',           # put below a mark
        b'\x80\x02(\x94.',                      # memoize with no item
        b'\x80\x02Nr\xff\xff\xff\xffj\xff\xff\xff\xff\x86.',
        b'\x80\x02(o.', b'\x80\x02(No.', b'\x80\x021.', b'\x80\x02N(1.',
        b'\x80\x02N2\x86.', b'\x80\x02N20.', b'\x80\x02N(.',
        b'\x80\x02\x95\x03\x00\x00\x00\x00\x00\x00\x00N.',
        b'\x80\x02N\x97.', b'\x80\x02N\x98.',
    ]
    for state in states:
        record = pack_record(OID, CLASS + state, b'')
        fine, python_fine = verdicts(record)
        assert fine == python_fine, state
    # The memo carries over from the class pickle to the state.
    assert verdicts(pack_record(OID, CLASS + b'\x80\x02h\x00.', b'')) == (
        True, True)


@compiled
@needs_zlib
def test_compressed_states():
    state = b'\x80\x02}q\x01X\x01\x00\x00\x00aK\x01s.'
    packed = zlib.compress(state)
    dictionary = zlib.compressobj(zdict=b'abc')
    with_dictionary = dictionary.compress(state) + dictionary.flush()
    for form, fine in ((packed, True), (packed[:-1], False),
                       (packed + b'\0', False), (packed[:2], False),
                       (b'x', False), (with_dictionary, False),
                       (zlib.compress(b'\x80\x02}.x'), False),
                       (zlib.compress(b'\x80\x02}.') + packed, False)):
        record = pack_record(OID, CLASS + form, b'')
        assert verdicts(record) == (fine, fine), form


@compiled
def test_text_protocol_numbers_are_left_to_python():
    for state in (b'I12\n.', b'L1L\n.', b'F1.5\n.', b'Vab\n.', b'(I1\np0\n'
                  b'g0\nt.'):
        record = pack_record(OID, CLASS + state, b'')
        assert speedups.record_fine(record) is None
        assert record_check.record_problem(record) is None
    # Only bytes are walked in C; anything else is the twin's business.
    record = pack_record(OID, CLASS + b'\x80\x02}.', b'')
    assert speedups.record_fine(bytearray(record)) is None
    assert speedups.record_fine(record) is True


@compiled
def test_deep_and_wide_pickles_stay_in_bounds():
    # A million marks, a long tuple, many memo entries, a deep nesting of
    # pairs: bounded work, no recursion.
    for state in (b'(' * 1000000 + b'.', b'N' * 100000 + b'.',
                  b'N' + b'\x94' * 100000 + b'.',
                  b'N' + b'N\x86' * 100000 + b'.',
                  b'N' + b'r' + b'\xff' * 4 + b'.'):
        record = pack_record(OID, CLASS + state, b'')
        assert verdicts(record)[0] == verdicts(record)[1]


@pytest.mark.parametrize('storage_class', [FileStorage, FileStorage2])
def test_the_whole_last_transaction_is_checked(tmp_path, storage_class):
    """Damage far before the end of a big last transaction (well past the
    newest 8 KiB) is found when the file is opened."""
    from durus.error import DamagedFileError
    path = str(tmp_path / 'big.durus')
    storage = storage_class(path)
    connection = Connection(storage)
    root = connection.get_root()
    root['items'] = PersistentList(
        PersistentDict(n=n, text='x' * 50) for n in range(400))
    connection.commit()
    storage.close()
    with open(path, 'rb') as f:
        data = f.read()
    # The first item's state, '...text' -> '...tex\xff': it no longer
    # parses, yet every length still fits.
    at = data.index(b'text')
    assert len(data) - at > 16 << 10
    damaged = data[:at] + b'tex\xff' + data[at + 4:]
    with open(path, 'wb') as f:
        f.write(damaged)
    with pytest.raises(DamagedFileError) as error:
        storage_class(path, readonly=True)
    assert 'does not parse' in str(error.value)
