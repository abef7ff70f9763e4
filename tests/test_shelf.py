"""SHELF-1 internals: offset map bytes and hole walk, transaction scan
and its damage verdicts, the compact oid index, on-disk arrays."""

import pytest

from durus.disk_arrays import MemoryBuffer
from durus.error import DamagedFileError
from durus.file import File
from durus.oid_index import OidIndex
from durus.shelf import (
    EMPTY_FILE, OffsetMap, build_offset_map, read_transaction_offsets,
    scan_transactions)
from durus.utils import int8_to_str
from test_storage_conformance import record

SPEC_MAP_START = 586
SPEC_OFFSETS = {0: 0x10, 1: 0x11a, 3: 0x166, 5: 0x1b2, 6: 0x1fe}
SPEC_WORDS = '0010 011a 0251 0166 024c 01b2 01fe 024e'


def test_offset_map_bytes_match_the_spec_example():
    built = build_offset_map(SPEC_MAP_START, SPEC_OFFSETS)
    assert built[:24] == int8_to_str(16 + 2 * 8) + int8_to_str(2) + \
        int8_to_str(8)
    assert built[24:] == bytes.fromhex(SPEC_WORDS.replace(' ', ''))


def test_offset_map_lookup_and_hole_walk():
    buffer = MemoryBuffer()
    buffer.pwrite(build_offset_map(SPEC_MAP_START, SPEC_OFFSETS),
                  SPEC_MAP_START)
    offset_map = OffsetMap.at(buffer, SPEC_MAP_START)
    assert [offset_map.get(n, 0) for n in range(9)] == [
        0x10, 0x11a, 0, 0x166, 0, 0x1b2, 0x1fe, 0, 0]
    assert list(offset_map.gen_holes()) == [4, 2, 7]
    assert list(offset_map.gen_numbers()) == [0, 1, 3, 5, 6]


def test_empty_offset_map_is_the_one_of_a_new_file():
    assert EMPTY_FILE[16:] == build_offset_map(16, {})
    assert len(EMPTY_FILE) == 40


def _write(tmp_path, data):
    path = str(tmp_path / 'raw.durus')
    with open(path, 'wb') as f:
        f.write(data)
    return File(path, readonly=True)


def transaction(*records):
    body = b''.join(int8_to_str(8 + len(r)) + r[:8] + r for r in records)
    return int8_to_str(len(body)) + body


def scan(tmp_path, data):
    opened = _write(tmp_path, EMPTY_FILE + data)
    index = OidIndex()
    try:
        return scan_transactions(opened, 40, opened.get_size(), index,
                                 'raw'), index
    finally:
        opened.close()


A, B = int8_to_str(1), int8_to_str(2)


def test_scan_indexes_newest_records(tmp_path):
    (end, count, damage), index = scan(
        tmp_path, transaction(record(A), record(B)) + transaction(record(A)))
    assert damage is None and count == 3
    assert index.get(1) > index.get(2)


@pytest.mark.parametrize('tail, reason', [
    (b'\x00\x00\x00', 'partial transaction length'),
    (transaction(record(B))[:-1], 'cut short'),
    (transaction(record(B))[:20], 'cut short'),
    (bytes(64), 'zero bytes'),
    (bytes(8) + transaction(record(B))[:30], 'cut short'),
])
def test_scan_reports_a_damaged_tail(tmp_path, tail, reason):
    good = transaction(record(A))
    (end, count, damage), index = scan(tmp_path, good + tail)
    assert damage is not None and reason in damage.reason
    assert damage.offset == 40 + len(good) and damage.repairable
    assert damage.nbytes == len(tail)
    assert index.get(1) and not index.get(2)  # torn txn not indexed


def test_scan_rejects_a_malformed_record_and_refuses_mid_file_damage(
        tmp_path):
    bad = bytearray(transaction(record(B)))
    bad[16 + 8] ^= 0xff  # embedded oid != key
    (_, _, damage), _ = scan(tmp_path, transaction(record(A)) + bytes(bad))
    assert damage.repairable and 'malformed' in damage.reason
    (_, _, damage), _ = scan(tmp_path, bytes(bad) + transaction(record(A)))
    assert not damage.repairable
    assert 'restore it from a backup' in damage.message()
    error = damage.error()
    assert isinstance(error, DamagedFileError) and error.offset == 40


def test_a_single_empty_transaction_is_valid(tmp_path):
    (end, count, damage), _ = scan(tmp_path, transaction(record(A)) +
                                   bytes(8))
    assert damage is None


def test_read_transaction_offsets(tmp_path):
    opened = _write(tmp_path, EMPTY_FILE + transaction(record(A)))
    opened.seek(len(EMPTY_FILE))
    assert read_transaction_offsets(opened) == {A: 48}
    assert read_transaction_offsets(opened) is None  # the end of the file
    opened.close()


def test_oid_index_dense_and_overflow_round_trip():
    index = OidIndex()
    for number in range(5000):
        index.set(number, 100 + number)
    index.set(10 ** 15, 7)
    index.set(3, 42)
    index.discard(4)
    assert len(index) == 5000
    assert index.get(3) == 42 and 4 not in index and index.get(10 ** 15) == 7
    assert len(index.dense) < 20000  # the huge oid did not grow the array
    copy = OidIndex.from_bytes(index.dense_bytes(), index.overflow_bytes())
    assert list(copy.items()) == list(index.items())
    assert copy.max_number == 10 ** 15


def test_oid_index_set_many_is_set_for_each_pair():
    pairs = ([(n, 100 + n) for n in range(0, 3000, 3)] + [(10 ** 15, 7)] +
             [(3, 42), (2999, 5), (1500, 9), (5000, 11), (4, 1)])
    one_by_one, at_once = OidIndex(), OidIndex()
    for index in (one_by_one, at_once):
        index.set(1, 8)  # already there: not counted twice
    for number, offset in pairs:
        one_by_one.set(number, offset)
    at_once.set_many(pairs)
    assert list(at_once.items()) == list(one_by_one.items())
    assert len(at_once) == len(one_by_one) == 1005
    assert at_once.max_number == one_by_one.max_number == 10 ** 15
    assert at_once.get(3) == 42 and at_once.get(5000) == 11


def test_a_few_trailing_empty_transactions_are_valid_more_are_zero_damage(
        tmp_path):
    good = transaction(record(A))
    (_, _, damage), _ = scan(tmp_path, good + bytes(4 * 8))
    assert damage is None  # Durus may write empty transactions
    (_, _, damage), _ = scan(tmp_path, good + bytes(5 * 8))
    assert damage.offset == 40 + len(good) and 'zero bytes' in damage.reason
