"""durus/_accel.py: the one list of compiled twins, and the C contract.

Every compiled function must be listed next to its Python twin, every
listed twin must be wired where durus looks for it, and every attribute
name the compiled module reads must exist on the Python side.  These
tests hold on both paths (CI runs the suite compiled and with
DURUS_NO_SPEEDUPS=1): compiled, each listed place holds the compiled
function; pure, it holds the Python twin.
"""

import glob
import io
import os
import re

import pytest

import durus.btree
import durus.connection
import durus.file_storage  # noqa: F401 (wires its twin)
import durus.inspect  # noqa: F401 (wires its twin)
from durus import _accel, record, serialize
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
speedups = _accel.speedups
compiled = pytest.mark.skipif(speedups is None,
                              reason='runs on the compiled path only')


def test_every_listed_twin_is_wired_where_durus_looks():
    installed = [twin for twin in _accel.TWINS if twin.installed]
    assert sorted(_accel._in_use) == sorted(twin.name for twin in installed)
    for twin in installed:
        found = _accel._resolve(twin.installed)
        running = _accel.in_use(twin.name)
        if twin.name == 'persistent_new':
            found = vars(durus.persistent.PersistentBase)['__new__'].__func__
        assert found is running, twin.name
        if speedups is None:
            assert running is _accel.python_twin(twin.name), twin.name
        else:
            assert running is not _accel.python_twin(twin.name), twin.name


def test_every_python_twin_can_be_found():
    for twin in _accel.TWINS:
        if twin.name == 'watched_getattribute':
            continue  # one closure per class, made by _make_variants
        python = _accel.python_twin(twin.name)
        assert callable(python), twin.name
        assert getattr(python, '__module__', '').startswith('durus.'), \
            twin.name


def test_a_swap_not_listed_is_refused():
    with pytest.raises(KeyError, match='not a compiled twin listed'):
        _accel.use('unlisted_function', len)


@compiled
def test_every_compiled_function_is_listed():
    exported = {name for name in dir(speedups)
                if not name.startswith('_') and callable(getattr(speedups,
                                                                 name))}
    listed = {twin.name for twin in _accel.TWINS if twin.made_by is None}
    assert exported == listed | set(_accel.CONFIGURE)
    made = {twin.made_by for twin in _accel.TWINS if twin.made_by}
    assert made <= set(_accel.CONFIGURE)


@compiled
def test_configure_made_twins_are_compiled_descriptors():
    for twin in _accel.TWINS:
        if twin.made_by:
            running = _accel.in_use(twin.name)
            assert type(running).__name__ == 'method_descriptor', twin.name


# The contract: names the compiled module reads.

def names_in_c():
    """Every attribute name csrc/ interns or reads with a literal name."""
    names = set()
    patterns = (r'INTERN\(\w+, "([^"]+)"\)',
                r'member_offset\(\w+, "([^"]+)"\)',
                r'GetAttrString\(\w+, "([^"]+)"\)',
                r'CallMethod\(\w+, "([^"]+)"')
    for path in glob.glob(os.path.join(REPO, 'csrc', '*.[ch]')):
        with open(path) as f:
            text = f.read()
        for pattern in patterns:
            names.update(re.findall(pattern, text))
    return names


def test_the_listed_names_are_the_names_the_c_code_reads():
    listed = set(_accel.OTHER_NAMES_IN_C) | {'encode'}  # of _codecs
    for attributes in _accel.ATTRIBUTES_READ_BY_C.values():
        listed.update(attributes)
    assert names_in_c() == listed


class Thing(Persistent):
    pass


@pytest.fixture
def live_objects(tmp_path):
    """An object of each class in ATTRIBUTES_READ_BY_C, from a real
    packed file (so the offset map exists) and a loaded object."""
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    connection.get_root()['thing'] = Thing()
    connection.get_root()['thing'].value = PersistentDict()
    connection.commit()
    storage.pack()
    storage.close()
    storage = FileStorage(path)
    connection = Connection(storage)
    thing = connection.get_root()['thing']
    thing.value  # loaded
    cache = connection.cache
    shelf = storage.shelf
    oid_ref = next(iter(cache.objects.mapping.values()))
    tree = durus.btree.BTree()
    tree[1] = 'one'
    unpickler = serialize._RecordUnpickler(io.BytesIO(b''))
    yield {
        'durus.persistent.PersistentBase': thing,
        'durus.connection.Connection': connection,
        'durus.connection.Cache': cache,
        'durus.connection.ObjectDictionary': cache.objects,
        'durus.connection.ReferenceContainer': cache.recent_objects,
        'durus.connection._OidRef': oid_ref,
        'durus.serialize.ObjectReader': connection.reader,
        'durus.serialize.ObjectWriter': serialize.ObjectWriter(connection),
        'pickle.Unpickler': unpickler,
        'durus.file_storage.FileStorage': storage,
        'durus.shelf.Shelf': shelf,
        'durus.oid_index.OidIndex': shelf.index,
        'durus.shelf.OffsetMap': shelf.map,
        'durus.file.File': shelf.file,
        'durus.btree.BTree': tree,
        'durus.btree.BNode': tree.root,
    }
    storage.close()


def test_every_name_the_c_code_reads_exists_in_python(live_objects):
    assert set(live_objects) == set(_accel.ATTRIBUTES_READ_BY_C)
    for path, attributes in _accel.ATTRIBUTES_READ_BY_C.items():
        obj = live_objects[path]
        cls = _accel._resolve(path)
        assert isinstance(obj, cls), path
        for name in attributes:
            assert hasattr(obj, name), '%s has no %s' % (path, name)


# The record twins (the others are compared in test_speedups.py).

RECORDS = [
    b'', b'\x00' * 11, b'\x00' * 12,
    b'\x00' * 8 + (3).to_bytes(4, 'big') + b'abc',
    b'\x00' * 8 + (3).to_bytes(4, 'big') + b'abc' + b'\x01' * 8,
    b'\x00' * 8 + (4).to_bytes(4, 'big') + b'abc',
    b'\x00' * 8 + (2 ** 32 - 1).to_bytes(4, 'big'),
]

DATAS = [
    b'', b'\x80\x02c\nq\x00.', b'\x80\x02cm\nN\nq\x00.',
    b'\x80\x02cm\nN\nq\x00.\x80\x02}q\x01.', b'cm\nN\np0\n.',
    b'xyz\nq\x00', b'\nq\x00.\nq\x00.', b'abc\nq\x00.',
]


@compiled
@pytest.mark.parametrize('data', RECORDS)
def test_record_data_twins_agree(data):
    outcomes = []
    for read in (speedups.record_data, record.record_data):
        try:
            outcomes.append(('value', read(data)))
        except record.RecordError as error:
            outcomes.append(('error', str(error)))
    assert outcomes[0] == outcomes[1]


@compiled
@pytest.mark.parametrize('data', DATAS)
def test_class_pickle_end_twins_agree(data):
    assert speedups.class_pickle_end(data) == record.class_pickle_end(data)
    assert (speedups.class_pickle_end(bytearray(data)) ==
            record.class_pickle_end(data))
