"""durus.record, the one place that knows a record's bytes (formats.md §1)."""

import pickle

import pytest

from durus import record as layout
from durus import serialize
from durus.error import ProtocolError
from durus.record import (
    RecordError, class_key, class_name, class_path, class_pickle_end,
    class_pickle_length, data_class_path, pack_record, record_data,
    record_problem, record_refs, refers_to, refs_start, split_oids,
    unpack_record)

OID = b'\x00' * 7 + b'\x05'
A = b'\x00' * 7 + b'\x01'
B = b'\x00' * 7 + b'\x02'
CLASS_PICKLE = b'\x80\x02cdurus.persistent_dict\nPersistentDict\nq\x00.'
STATE = b'\x80\x02}q\x01.'


def test_a_record_is_oid_length_data_refs():
    record = pack_record(OID, CLASS_PICKLE + STATE, A + B)
    data = CLASS_PICKLE + STATE
    assert record == OID + len(data).to_bytes(4, 'big') + data + A + B
    assert unpack_record(record) == (OID, data, A + B)
    assert record_data(record) == data
    assert refs_start(record) == 12 + len(data)
    assert record_refs(record) == [A, B]
    assert record_problem(record) is None
    assert record_problem(record, OID) is None
    assert layout.is_well_formed(record)


@pytest.mark.parametrize('record, problem', [
    (b'', 'empty record'),
    (OID + b'\x00\x00', 'shorter than its 12-byte header'),
    (OID + (5).to_bytes(4, 'big') + b'abc', 'bad data length 5'),
    (OID + (1).to_bytes(4, 'big') + b'abc', 'bad data length 1'),
])
def test_malformed_records_are_named_and_refused(record, problem):
    assert problem in record_problem(record)
    assert not layout.is_well_formed(record)
    for read in (unpack_record, refs_start, record_refs):
        with pytest.raises(RecordError, match=problem) as caught:
            read(record)
        assert isinstance(caught.value, ProtocolError)
        assert isinstance(caught.value, ValueError)


def test_record_data_checks_only_the_data_length():
    # The per-load read: refs are the storage's business, a data length
    # past the end is not.
    assert record_data(OID + (1).to_bytes(4, 'big') + b'abc') == b'a'
    with pytest.raises(RecordError, match='bad data length 5'):
        record_data(OID + (5).to_bytes(4, 'big') + b'abc')
    with pytest.raises(RecordError, match='shorter'):
        record_data(b'\x00' * 11)


def test_a_record_of_another_oid():
    record = pack_record(A, b'data', b'')
    assert record_problem(record, OID) == 'record starts with another oid'


def test_refers_to_looks_only_at_whole_oids_of_the_trailer():
    # B's bytes appear in the data and across two refs: not references.
    straddling = A[4:] + B[:4]
    record = pack_record(OID, b'xx' + B, A + straddling + A)
    assert refers_to(record, A)
    assert not refers_to(record, B)
    assert refers_to(pack_record(OID, b'', A + B), B)


def test_split_oids():
    assert split_oids(A + B) == [A, B]
    assert split_oids(b'') == []
    with pytest.raises(RecordError):
        split_oids(b'\x00' * 9)


@pytest.mark.parametrize('data, path', [
    (CLASS_PICKLE + STATE, ('durus.persistent_dict', 'PersistentDict')),
    (pickle.dumps(dict, protocol=0) + STATE, ('__builtin__', 'dict')),
    (b'\x80\x02}q\x01.', None),             # not a GLOBAL
    (b'\x80\x02cno_newline', None),
    (b'\x80\x02cmodule\nname_without_end', None),
])
def test_class_read_from_the_first_bytes(data, path):
    record = pack_record(OID, data, A)
    assert class_path(record) == path
    assert data_class_path(data) == path
    if path is None:
        assert class_key(record) is None and class_name(record) == b'?'
    else:
        assert class_key(record) == ('%s\n%s' % path).encode()
        assert class_name(record) == path[1].encode()


def test_the_class_name_does_not_run_into_the_refs_trailer():
    # The name's closing newline is only in the refs: the data field does
    # not name a class.
    record = pack_record(OID, b'\x80\x02cmodule\nname', b'\n' * 8)
    assert class_key(record) is None
    assert class_key(b'short') is None


def test_where_the_class_pickle_ends():
    data = CLASS_PICKLE + STATE
    assert class_pickle_length(data) == len(CLASS_PICKLE)
    assert class_pickle_end(data) == len(CLASS_PICKLE)
    # Not Durus's form: the strict reading says so, the candidate finder
    # has nothing to find.
    other = pickle.dumps(dict, protocol=0) + STATE
    assert class_pickle_length(other) == -1
    assert class_pickle_end(other) == -1
    assert class_pickle_end(b'\x80\x02c\nq\x00.') == -1    # 7 bytes
    assert class_pickle_end(b'') == -1
    # The candidate is the first end mark: trusted only for prefixes the
    # reader validated (a name may contain the mark).
    tricky = b'\x80\x02cmod\nq\x00.name\nq\x00.' + STATE
    assert class_pickle_end(tricky) == len(b'\x80\x02cmod\nq\x00.')


def test_durus_43_names_stay_in_serialize():
    record = pack_record(OID, CLASS_PICKLE + STATE, b'')
    assert serialize.pack_record is pack_record
    assert serialize.unpack_record is unpack_record
    assert serialize.split_oids is split_oids
    assert serialize.RecordError is RecordError
    assert serialize.extract_class_name(record) == b'PersistentDict'
