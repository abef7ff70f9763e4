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
