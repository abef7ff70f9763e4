"""Durus 4.3's public API of durus.file, durus.shelf and durus.utils:
File's stream calls, Shelf by name and position, the offset map, the
arrays and the socket-or-file I/O helpers.  Bytes that either side
writes are checked against the real Durus 4.3 where it matters."""

import errno
import io
import json
import os
import tempfile

import pytest

import durus.file
import durus.utils
from durus.disk_arrays import ArrayLayoutError
from durus.error import DamagedFileError, ReadOnlyError, ShortRead
from durus.file import File
from durus.serialize import pack_record
from durus.shelf import (
    OffsetMap, OffsetMapError, RecordMismatchError, Shelf, ShelfRecordError,
    ShelfUsageError, read_transaction_offsets)
from durus.utils import (
    BitArray, Byte, ByteArray, IntArray, IntSet, WordArray, all_bytes,
    as_bytes, int8_to_str, iteritems, read, read_int4_str, write, write_all,
    write_int4_str)
from durus43_env import run_durus43


def name(n):
    return int8_to_str(n)


def record_data(text):
    """Record data as the reader accepts it, a class pickle then a state
    pickle: here ``None`` (2 bytes) and ``text`` as SHORT_BINBYTES (its
    length + 3): 5 bytes more than ``text``."""
    return b'N.C' + bytes([len(text)]) + text + b'.'


def value(n, text=b'state'):
    """A record of oid ``n`` (what FileStorage stores under that name)."""
    return pack_record(name(n), record_data(text), b'')


def items_for(*numbers):
    return [(name(n), value(n, b'v%d' % n)) for n in numbers]


def file_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


# durus.file.File: the stream interface

def test_file_stream_reads_and_writes_at_its_own_position(tmp_path):
    f = File(str(tmp_path / 'data'))
    f.write(b'abcdef')
    assert f.tell() == 6 and len(f) == 6 and f.stat().st_size == 6
    f.seek(2)
    assert f.read(2) == b'cd' and f.tell() == 4
    assert f.read() == b'ef' and f.read(5) == b'' and f.read(-1) == b''
    f.seek(-3, 2)
    assert f.read(1) == b'd'
    f.seek(-2, 1)
    assert f.tell() == 2
    f.seek(10)
    f.write(b'Z')  # past the end: the gap reads as zeros
    f.seek(0)
    assert f.read() == b'abcdef\0\0\0\0Z'
    f.seek(4)
    f.truncate()  # at the position, as in 4.3
    assert len(f) == 4 and f.get_name() == str(tmp_path / 'data')
    f.seek_end()
    assert f.tell() == 4
    f.flush()
    f.close()


def test_file_positional_calls_leave_the_stream_position_alone(tmp_path):
    f = File(str(tmp_path / 'data'))
    f.write(b'0123456789')
    f.seek(3)
    assert f.pread(2, 7) == b'78'
    f.pwrite(b'xy', 0)
    assert f.tell() == 3 and f.read(1) == b'3'
    f.close()


def test_file_seek_errors_are_those_of_a_python_file(tmp_path):
    f = File(str(tmp_path / 'data'))
    with pytest.raises(OSError) as caught:
        f.seek(-1)
    assert caught.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        f.seek(-5, 2)
    with pytest.raises(ValueError):
        f.seek(0, 7)
    f.close()
    for call in (f.flush, f.tell, f.seek_end, f.read, lambda: f.seek(0),
                 lambda: f.write(b'x')):
        with pytest.raises(ValueError):  # as for a closed Python file
            call()
    assert len(f) == 0 and f.stat().st_size == 0  # by name, as in 4.3


def test_read_only_file_refuses_writes_as_an_assertion(tmp_path):
    path = str(tmp_path / 'data')
    File(path).close()
    f = File(path, readonly=True)
    for attempt in (lambda: f.write(b'x'), f.truncate,
                    lambda: f.pwrite(b'x', 0)):
        with pytest.raises(ReadOnlyError) as caught:
            attempt()
        assert isinstance(caught.value, AssertionError)
        assert 'read-only' in str(caught.value)
    with pytest.raises(AssertionError):
        f.obtain_lock()  # a reader never takes the writer's lock
    assert not f.has_lock and len(f) == 0
    f.close()


def test_temporary_file_takes_named_temporary_file_keywords(tmp_path):
    temporary = File(suffix='.tmpdb', dir=str(tmp_path), mode='w+b')
    assert temporary.is_temporary() and temporary.has_lock
    assert temporary.get_name().endswith('.tmpdb')
    # Named while open (as Durus 4.3's NamedTemporaryFile), gone once closed.
    assert os.path.exists(temporary.get_name())
    temporary.write(b'abc')
    temporary.seek(0)
    assert temporary.read() == b'abc'
    temporary.close()
    assert not os.path.exists(temporary.get_name())
    kept = File(prefix='kept-', dir=str(tmp_path), delete=False)
    assert os.path.exists(kept.get_name())
    assert os.path.basename(kept.get_name()).startswith('kept-')
    kept.close()
    with pytest.raises(TypeError):
        File(colour='blue')
    with pytest.raises(AssertionError):
        File(readonly=True)


def test_file_module_names_of_durus43():
    assert durus.file.exists is os.path.exists
    assert durus.file.NamedTemporaryFile is tempfile.NamedTemporaryFile
    assert 'NamedTemporaryFile' in dir(durus.file)


# durus.utils: read and write on sockets and files

class RecvOnly(object):
    """A socket stand-in with nothing but recv (two bytes at a time)."""

    def __init__(self, data):
        self.data = data

    def recv(self, n):
        piece, self.data = self.data[:min(n, 2)], self.data[min(n, 2):]
        return piece


class SendOnly(object):
    """A socket stand-in with nothing but send (three bytes at a time,
    or none at all once ``stuck``)."""

    def __init__(self, stuck=False):
        self.sent = []
        self.stuck = stuck

    def send(self, data):
        if self.stuck:
            return 0
        self.sent.append(bytes(data[:3]))
        return min(3, len(data))


def test_read_gathers_recv_pieces_and_reports_a_short_read():
    source = RecvOnly(b'abcdefg')
    assert read(source, 5) == b'abcde'
    with pytest.raises(ShortRead):
        read(source, 5)
    with pytest.raises(ShortRead):
        read(io.BytesIO(b'ab'), 3)


def test_write_sends_everything_through_send_alone():
    sink = SendOnly()
    write(sink, 'hello')  # str goes out as latin-1, as in 4.3
    assert b''.join(sink.sent) == b'hello' and len(sink.sent) == 2
    with pytest.raises(OSError):
        write(SendOnly(stuck=True), b'x')


def test_write_helpers_accept_str_and_mixed_parts():
    out = io.BytesIO()
    write_all(out, 'a', b'b', bytearray(b'c'))
    write_int4_str(out, 'de')
    assert out.getvalue() == b'abc\0\0\0\x02de'
    out.seek(3)
    assert read_int4_str(out) == b'de'


def test_small_helpers_behave_as_in_durus43(capsys, monkeypatch):
    text = bytearray(b'x')
    assert as_bytes(text) is text and as_bytes('\xe9') == b'\xe9'
    assert iteritems({1: 2}) == {1: 2}.items()
    assert len(all_bytes) == 256 and all_bytes[65] == b'A'
    assert durus.utils.unpack('>H', durus.utils.pack('>H', 7)) == (7,)
    monkeypatch.setattr(durus.utils, 'TRACE', True)
    write(io.BytesIO(), b'zz')
    read(io.BytesIO(b'q'), 1)
    shown = capsys.readouterr().out
    assert "b'zz'" in shown and "b'q'" in shown


# durus.utils: arrays in a file

def test_byte_array_items_are_single_bytes():
    array = ByteArray(5)
    array[1] = b'x'
    assert list(array) == [b'\0', b'x', b'\0', b'\0', b'\0']
    assert array[1:3] == b'x\0' and len(array) == 5
    with pytest.raises(IndexError):
        array[-1]
    with pytest.raises(ValueError):
        array[0] = b'xy'
    assert list(ByteArray().gen_set_size(20000)) == [11804, 3608, 0]
    with pytest.raises(ArrayLayoutError) as caught:
        array.set_size(2)
    assert isinstance(caught.value, AssertionError)


def test_array_grows_only_at_the_end_of_its_file():
    stream = io.BytesIO(b'abc')
    stream.seek(1)
    with pytest.raises(AssertionError):
        ByteArray(4, file=stream)
    stream.seek(1)
    assert ByteArray(2, file=stream)[1] == b'c'  # fits: nothing written


def test_byte_and_bit_array():
    byte = Byte(b'\x05')
    assert [byte[j] for j in range(8)] == [0, 0, 0, 0, 0, 1, 0, 1]
    byte[0] = 1
    assert byte.byte() == b'\x85' and int(byte) == 0x85 and byte[-1] == 1
    with pytest.raises(TypeError):
        Byte(256)
    bits = BitArray(10)
    bits[9] = 1
    bits[0] = 5
    bits[-2] = True
    assert str(bits) == '1000000011' and bits[-1] == 1 and len(bits) == 10
    with pytest.raises(IndexError):
        bits[10]


def test_word_and_int_arrays_write_a_header_and_blank_words():
    stream = io.BytesIO()
    WordArray(stream, 2, 3)
    assert stream.getvalue() == (int8_to_str(22) + int8_to_str(2)
                                 + int8_to_str(3) + bytes(6))
    stream.seek(0)
    reopened = WordArray(stream)
    reopened[-1] = b'ab'
    assert list(reopened) == [b'\0\0', b'\0\0', b'ab']
    with pytest.raises(ValueError):
        reopened[0] = b'abc'
    ints = IntArray(number_of_ints=3, maximum_int=300)
    ints[0] = 299
    assert ints.file.getvalue()[8:24] == int8_to_str(2) + int8_to_str(3)
    assert list(ints) == [299, 0xffff, 0xffff]
    assert ints.get(1) is None and ints.get(1, 'none') == 'none'
    assert ints.get(7, 'out') == 'out' and ints.get_blank_value() == 0xffff
    assert list(ints.items()) == [(0, 299)]
    with pytest.raises(ValueError):
        ints[1] = 70000
    with pytest.raises(TypeError):
        WordArray()  # a new one needs its dimensions


def test_arrays_live_in_a_durus_file_and_reopen(tmp_path):
    path = str(tmp_path / 'ints')
    f = File(path)
    ints = IntArray(file=f, number_of_ints=4)
    ints[2] = 12345
    f.close()
    f = File(path, readonly=True)
    reopened = IntArray(file=f)  # the array at the file's position
    assert reopened.get(2) == 12345 and reopened.get(1) is None
    f.close()
    with open(path, 'r+b') as raw:
        raw.truncate(30)  # the words end early
    f = File(path, readonly=True)
    with pytest.raises(ArrayLayoutError):
        IntArray(file=f)
    f.close()
    with open(path, 'r+b') as raw:
        raw.truncate(10)  # inside the header
    f = File(path, readonly=True)
    with pytest.raises(ShortRead):
        IntArray(file=f)
    f.close()


def test_int_set_grows_to_hold_any_number():
    numbers = IntSet(0)
    numbers.add(0)
    numbers.add(5000)
    numbers.discard(0)
    assert 5000 in numbers and 0 not in numbers and -1 not in numbers
    assert list(numbers) == [5000]


ARRAYS_43 = '''
import io, json
from durus.utils import IntArray, WordArray
out = []
for count, maximum in ((0, None), (5, 300), (3, 70000), (2, -1)):
    out.append(IntArray(number_of_ints=count, maximum_int=maximum)
               .file.getvalue().hex())
stream = io.BytesIO()
WordArray(stream, 3, 2)
out.append(stream.getvalue().hex())
print(json.dumps(out))
'''


@pytest.mark.slow
def test_array_bytes_equal_durus43s(durus43_python):
    theirs = json.loads(run_durus43(durus43_python, ARRAYS_43).stdout)
    ours = [IntArray(number_of_ints=count, maximum_int=maximum)
            .file.getvalue().hex()
            for count, maximum in ((0, None), (5, 300), (3, 70000), (2, -1))]
    stream = io.BytesIO()
    WordArray(stream, 3, 2)
    ours.append(stream.getvalue().hex())
    assert ours == theirs


# durus.shelf: Shelf by name and position

def new_shelf(tmp_path, numbers=(0, 1, 3, 7), filename='shelf'):
    path = str(tmp_path / filename)
    f = File(path)
    steps = list(Shelf.generate_shelf(f, items_for(*numbers)))
    f.close()
    return path, steps


def test_generate_shelf_reports_progress_and_is_read_by_name(tmp_path):
    path, steps = new_shelf(tmp_path)
    # records written, map words written, offsets set, holes linked
    assert steps == [1, 2, 3, 4, 0, 3, 2, 1, 0] + list(range(9))
    shelf = Shelf(path)
    assert [shelf.get_position(name(n)) for n in (0, 1, 2, 3, 7, 8)] == [
        16, 51, None, 86, 121, None]
    assert shelf.get_value(name(3)) == value(3, b'v3')
    assert shelf.get_value(name(2)) is None
    # the value is all the record after the name field: the record itself
    assert shelf.get_item_at_position(51) == (name(1), value(1, b'v1'))
    assert name(3) in shelf and name(4) not in shelf
    assert Shelf.has_format(shelf.get_file()) and Shelf.prefix == b'SHELF-1\n'
    shelf.close()


def test_generate_shelf_wants_an_empty_file_and_distinct_names(tmp_path):
    path, _ = new_shelf(tmp_path)
    f = File(path)
    with pytest.raises(ValueError):
        list(Shelf.generate_shelf(f, items_for(1)))
    f.close()
    g = File(str(tmp_path / 'other'))
    with pytest.raises(AssertionError):
        list(Shelf.generate_shelf(g, items_for(1) + items_for(1)))
    g.close()


def test_store_appends_a_transaction_and_reports_positions(tmp_path):
    path, _ = new_shelf(tmp_path)
    shelf = Shelf(path)
    result = shelf.store([(name(3), value(3, b'new')), (name(20), value(20)),
                          (name(2), value(2))])
    assert result == [(name(3), 86, 197), (name(20), None, 233),
                      (name(2), None, 271)]
    assert shelf.get_value(name(3)) == value(3, b'new')
    assert sorted(shelf.iterindex()) == [
        (name(0), 16), (name(1), 51), (name(2), 271), (name(3), 197),
        (name(7), 121), (name(20), 233)]
    assert sorted(shelf) == [name(n) for n in (0, 1, 2, 3, 7, 20)]
    assert dict(shelf.items())[name(20)] == value(20)
    assert shelf.memory_index == {name(3): 197, name(20): 233,
                                  name(2): 271}
    shelf.close()
    reopened = Shelf(path, readonly=True)
    assert reopened.get_position(name(20)) == 233
    with pytest.raises(AssertionError):
        reopened.store(items_for(5))
    reopened.close()


def test_store_refuses_values_that_are_not_records_of_their_name(tmp_path):
    path, _ = new_shelf(tmp_path)
    shelf = Shelf(path)
    size = len(shelf.get_file())
    # not laid out as a record, another oid's record, data that is not a
    # class pickle and a state pickle (the reader would call it damage)
    for bad in ((name(5), b'not a record'), (name(5), value(6)),
                (name(5), pack_record(name(5), b'not pickles', b''))):
        with pytest.raises(ShelfRecordError) as caught:
            shelf.store([bad])
        assert isinstance(caught.value, ValueError)
    with pytest.raises(ValueError):
        shelf.store([(b'short', value(1))])
    assert len(shelf.get_file()) == size  # nothing was written
    shelf.close()


def test_next_name_uses_the_holes_then_names_past_the_map(tmp_path):
    path, _ = new_shelf(tmp_path)
    shelf = Shelf(path)
    shelf.store(items_for(5, 9))
    names = [shelf.next_name() for _ in range(5)]
    assert names == [name(6), name(4), name(2), name(8), name(10)]
    shelf.close()


def test_shelf_constructor_arguments_of_durus43(tmp_path):
    temporary = Shelf()
    assert temporary.get_file().is_temporary()
    assert len(temporary.get_file()) == 40
    temporary.close()
    with pytest.raises(ShelfUsageError) as caught:
        Shelf(readonly=True)
    assert isinstance(caught.value, AssertionError)
    path = str(tmp_path / 'new')
    shelf = Shelf(path, items=items_for(2, 4))
    assert sorted(shelf.iterindex()) == [(name(2), 16), (name(4), 51)]
    shelf.close()
    with pytest.raises(AssertionError):
        Shelf(path, items=[])  # items are for a new file only
    assert Shelf(path, readonly=True).get_file().is_readonly()
    with open(path, 'ab') as raw:
        raw.write(b'torn')
    with pytest.raises(DamagedFileError):
        Shelf(path)
    # The failed open let go of the file it opened, lock included.
    Shelf(path, repair=True).close()


def test_get_value_notices_a_record_of_another_name(tmp_path):
    path, _ = new_shelf(tmp_path)
    f = File(path)
    offset_map = Shelf(f).get_offset_map()
    # Point slot 1 at the record of oid 0.
    f.pwrite((16).to_bytes(offset_map.word_size, 'big'),
             offset_map.get_start() + 24 + offset_map.word_size)
    shelf = Shelf(f)
    with pytest.raises(RecordMismatchError) as caught:
        shelf.get_value(name(1))
    assert isinstance(caught.value, AssertionError)
    with pytest.raises(ShortRead):
        shelf.get_item_at_position(len(f) - 4)
    f.close()


def test_has_format_is_false_for_other_and_short_files(tmp_path):
    for data in (b'', b'SHELF', b'DFS20\n\0\0\0\0'):
        path = str(tmp_path / 'other')
        with open(path, 'wb') as raw:
            raw.write(data)
        f = File(path, readonly=True)
        assert not Shelf.has_format(f)
        f.close()


# durus.shelf: the offset map

def test_offset_map_by_durus43s_calls(tmp_path):
    path, _ = new_shelf(tmp_path)
    shelf = Shelf(path)
    offset_map = shelf.get_offset_map()
    assert offset_map.get_start() == 156 and offset_map.get_array_size() == 9
    assert list(offset_map) == [0, 1, 3, 7]
    assert list(offset_map.items()) == [(0, 16), (1, 51), (3, 86), (7, 121)]
    assert offset_map.get(2) is None and offset_map.get(2, 'd') == 'd'
    assert offset_map.get(-2) == 121 and offset_map[1] == 51
    assert list(offset_map.gen_holes()) == [6, 5, 4, 2, 8]
    with pytest.raises(IndexError):
        offset_map[2]
    with pytest.raises(OffsetMapError) as caught:
        offset_map[1] = 16
    assert isinstance(caught.value, AssertionError)
    shelf.close()


def test_offset_map_built_slot_by_slot_matches_a_generated_one(tmp_path):
    path, _ = new_shelf(tmp_path, numbers=(0, 2))
    stream = io.BytesIO(file_bytes(path)[:86])  # prefix + records only
    stream.seek(86)
    offset_map = OffsetMap(stream, max_oid=2, max_offset=51)
    assert stream.tell() == len(stream.getvalue())  # after the map
    assert offset_map.get_array_size() == 4 and offset_map.get(0) is None
    offset_map[0] = 16
    offset_map[2] = 51
    assert list(offset_map.gen_stitch()) == [0, 1, 2, 3]
    assert stream.getvalue() == file_bytes(path)


def test_read_transaction_offsets_reads_one_transaction_at_a_time(tmp_path):
    path, _ = new_shelf(tmp_path)
    shelf = Shelf(path)
    shelf.store(items_for(2))
    shelf.store(items_for(4, 5))
    shelf.close()
    f = File(path)
    f.seek(156)
    OffsetMap(f)  # leaves the stream after the map
    assert read_transaction_offsets(f) == {name(2): 197}
    assert set(read_transaction_offsets(f)) == {name(4), name(5)}
    assert read_transaction_offsets(f) is None
    end = f.tell()
    f.seek_end()
    f.write(int8_to_str(48) + b'cut')  # a transaction torn by a crash
    f.seek(end)
    with pytest.raises(DamagedFileError) as caught:
        read_transaction_offsets(f)
    assert isinstance(caught.value, ShortRead)
    f.seek(0)
    with pytest.raises(AssertionError):  # never cuts the packed part
        read_transaction_offsets(f, repair=True)
    f.seek(end)
    assert read_transaction_offsets(f, repair=True) is None
    assert len(f) == end and f.tell() == end
    assert file_bytes(path + '.torn-%d' % end) == int8_to_str(48) + b'cut'
    f.close()


# Interoperability with the real Durus 4.3

SHELF_43 = '''
import json, sys
from durus.file import File
from durus.serialize import pack_record
from durus.shelf import Shelf
from durus.utils import int8_to_str
def items_for(*numbers):
    return [(int8_to_str(n), pack_record(
        int8_to_str(n), b'N.C%sv%d.' % (bytes([len(b'v%d' % n)]), n), b''))
            for n in numbers]
path = sys.argv[1]
f = File(path)
steps = list(Shelf.generate_shelf(f, items_for(*range(0, 40, 3))))
f.close()
shelf = Shelf(path)
stored = shelf.store(items_for(4, 6, 100))
names = [shelf.next_name().hex() for _ in range(4)]
shelf.close()
print(json.dumps({'steps': steps, 'names': names,
                  'stored': [[n.hex(), old, new] for n, old, new in stored]}))
'''

READ_43 = '''
import json, sys
from durus.shelf import Shelf
shelf = Shelf(sys.argv[1], readonly=True)
print(json.dumps(sorted([n.hex(), v.hex()] for n, v in shelf.items())))
'''


@pytest.mark.slow
def test_shelf_bytes_and_answers_equal_durus43s(tmp_path, durus43_python):
    theirs_path = str(tmp_path / 'theirs')
    theirs = json.loads(run_durus43(durus43_python, SHELF_43,
                                    theirs_path).stdout)
    ours_path = str(tmp_path / 'ours')
    f = File(ours_path)
    steps = list(Shelf.generate_shelf(f, items_for(*range(0, 40, 3))))
    f.close()
    shelf = Shelf(ours_path)
    stored = shelf.store(items_for(4, 6, 100))
    names = [shelf.next_name().hex() for _ in range(4)]
    shelf.close()
    assert steps == theirs['steps']
    assert names == theirs['names']
    assert [[n.hex(), old, new] for n, old, new in stored] == \
        theirs['stored']
    assert file_bytes(ours_path) == file_bytes(theirs_path)


@pytest.mark.slow
def test_each_side_reads_what_the_other_stored(tmp_path, durus43_python):
    # Durus 4.3 generates and stores; this project stores more; 4.3 reads.
    path = str(tmp_path / 'shared')
    run_durus43(durus43_python, SHELF_43, path)
    shelf = Shelf(path)
    assert shelf.get_value(name(100)) == value(100, b'v100')
    assert shelf.get_value(name(3)) == value(3, b'v3')
    shelf.store([(name(3), value(3, b'changed here'))] + items_for(7))
    expected = sorted([n.hex(), v.hex()] for n, v in shelf.items())
    shelf.close()
    assert json.loads(run_durus43(durus43_python, READ_43,
                                  path).stdout) == expected
    assert [name(3).hex(), value(3, b'changed here').hex()] in expected


LOCATE_43 = '''
import sys, durus.file_storage, durus.file_storage2
print(getattr(durus, sys.argv[1]).__file__)
'''


@pytest.mark.slow
@pytest.mark.parametrize('module, class_name', [
    ('file_storage', 'FileStorage'), ('file_storage2', 'FileStorage2')])
def test_durus43s_own_storages_run_on_these_modules(
        tmp_path, durus43_python, module, class_name):
    # Durus 4.3's file storages are built on File, Shelf and durus.utils:
    # load their module from the 4.3 install and run it here, pack
    # included; then both implementations read the result.
    import importlib
    import importlib.util
    from durus.connection import Connection
    from durus.persistent_dict import PersistentDict
    ours = getattr(importlib.import_module('durus.' + module), class_name)
    source = run_durus43(durus43_python, LOCATE_43, module).stdout.strip()
    spec = importlib.util.spec_from_file_location('durus43_' + module,
                                                  source)
    theirs_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(theirs_module)
    theirs = getattr(theirs_module, class_name)
    path = str(tmp_path / 'hybrid.durus')
    storage = theirs(path)
    connection = Connection(storage)
    root = connection.get_root()
    for n in range(40):
        root[n] = PersistentDict({'n': n})
    connection.commit()
    for n in range(0, 40, 2):
        del root[n]
    connection.commit()
    connection.pack()
    root['after pack'] = PersistentDict({'n': -1})
    connection.commit()
    storage.close()
    for opened in (theirs(path, readonly=True), ours(path, readonly=True)):
        root = Connection(opened).get_root()
        assert sorted(k for k in root if k != 'after pack') == \
            list(range(1, 40, 2))
        assert root[39]['n'] == 39 and root['after pack']['n'] == -1
        opened.close()
