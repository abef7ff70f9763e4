"""Database files with one kind of damage each, made on purpose, for the
integrity check's tests (durus check, :check)."""

import io
import pickle

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.record import pack_record
from durus.utils import int8_to_str, str_to_int8

MISSING_OID = 99999
DICT_CLASS = b'\x80\x02cdurus.persistent_dict\nPersistentDict\nq\x00.'


def clean_file(path, items=200):
    """root: 'tree' a BTree of ``items`` PersistentDicts, 'd' one more."""
    connection = Connection(FileStorage(str(path)))
    root = connection.get_root()
    tree = BTree()
    for number in range(items):
        tree[number] = PersistentDict(n=number)
    root['tree'] = tree
    root['d'] = PersistentDict(a=1)
    connection.commit()
    connection.storage.close()
    return path


def _store_alone(storage, oid, data, refs=b''):
    """One transaction holding one hand-made record."""
    storage.begin()
    storage.store(oid, pack_record(oid, data, refs))
    storage.end()


class _RefPickler(pickle.Pickler):
    """A protocol-2 pickler whose persistent ids come from ``ids`` (a
    subclass: Python 3.13 made an instance's persistent_id read-only)."""

    def __init__(self, buffer, ids):
        pickle.Pickler.__init__(self, buffer, 2)
        self.ids = ids

    def persistent_id(self, value):
        return self.ids(value)


def _state_referring_to(oid_number):
    buffer = io.BytesIO()
    pickler = _RefPickler(buffer, lambda value: (
        (int8_to_str(oid_number), PersistentDict) if value == 'REF' else None))
    pickler.dump({'data': {'k': 'REF'}})
    return buffer.getvalue()


def with_missing_reference(path):
    """root['hand'] is a record whose state refers to MISSING_OID, which
    has no record.  Returns the referring oid (a number)."""
    clean_file(path)
    storage = FileStorage(str(path))
    oid = storage.new_oid()
    _store_alone(storage, oid, DICT_CLASS + _state_referring_to(MISSING_OID),
                 int8_to_str(MISSING_OID))
    _attach(storage, oid)
    return str_to_int8(oid)


class _Ref(object):
    """Stands for a reference to oid ``number`` while pickling."""

    def __init__(self, number):
        self.number = number


def with_many_missing(path, count):
    """root['hand'] refers to ``count`` oids (from MISSING_OID on) that
    have no record.  Returns the referring oid (a number)."""
    clean_file(path)
    storage = FileStorage(str(path))
    oid = storage.new_oid()
    numbers = [MISSING_OID + n for n in range(count)]
    buffer = io.BytesIO()
    pickler = _RefPickler(buffer, lambda value: (
        (int8_to_str(value.number), PersistentDict)
        if isinstance(value, _Ref) else None))
    pickler.dump({'data': {n: _Ref(n) for n in numbers}})
    _store_alone(storage, oid, DICT_CLASS + buffer.getvalue(),
                 b''.join(int8_to_str(n) for n in numbers))
    _attach(storage, oid)
    return str_to_int8(oid)


def _attach(storage, oid):
    """Refer to ``oid`` from the root (a record-level edit: no load)."""
    connection = Connection(storage)
    root = connection.get_root()
    holder = PersistentDict()
    root['holder'] = holder
    connection.commit()
    holder_oid = holder._p_oid
    state = _state_referring_to(str_to_int8(oid))
    _store_alone(storage, holder_oid, DICT_CLASS + state, oid)
    storage.close()


def with_unreachable(path):
    """root['d'] dropped, never packed: one unreachable record.  Returns
    (oid number, record size)."""
    clean_file(path)
    connection = Connection(FileStorage(str(path)))
    root = connection.get_root()
    oid = root['d']._p_oid
    size = len(connection.storage.load(oid))
    del root['d']
    connection.commit()
    connection.storage.close()
    return str_to_int8(oid), size


def with_unparsable(path):
    """A record whose state pickle stops in the middle, followed by a
    sound transaction (so the file still opens).  Returns its oid."""
    clean_file(path)
    storage = FileStorage(str(path))
    oid = storage.new_oid()
    _store_alone(storage, oid, DICT_CLASS + b'\x80\x02}garbage')
    _attach(storage, oid)
    return str_to_int8(oid)


def with_class(path, module, name):
    """A record of class ``module.name`` (which need not exist), reachable
    from the root.  Returns its oid."""
    clean_file(path)
    storage = FileStorage(str(path))
    oid = storage.new_oid()
    header = b'\x80\x02c%s\n%s\nq\x00.' % (module.encode(), name.encode())
    _store_alone(storage, oid, header + pickle.dumps({'x': 1}, 2))
    _attach(storage, oid)
    return str_to_int8(oid)


def with_broken_btree(path):
    """root['tree']'s first leaf has its items in reverse order.  Returns
    the tree's oid."""
    clean_file(path)
    connection = Connection(FileStorage(str(path)))
    tree = connection.get_root()['tree']
    node = tree.root
    while node.nodes is not None:
        node = node.nodes[0]
    node.items = list(reversed(node.items))
    node._p_note_change()
    connection.commit()
    connection.storage.close()
    return str_to_int8(tree._p_oid)
