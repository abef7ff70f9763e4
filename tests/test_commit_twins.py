"""The compiled FileStorage.new_oid, FileStorage.store and
durus.connection._rehook (csrc/commit.c) against their Python twins.

Each compiled one does the usual case of a commit and hands the rest to
the Python twin; here both run on the same situations, the usual and the
odd ones, and must leave the same oids, staged records, errors and hook
variants.
"""

import os
import re

import pytest

from durus import _accel
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent import Persistent
from durus.storage import MemoryStorage
from compiled_only import compiled


class Thing(Persistent):
    def __init__(self, value=None):
        self.value = value


def twins(name):
    return [_accel.in_use(name), _accel.python_twin(name)]


def outcome(call):
    try:
        return call()
    except Exception as error:
        return (type(error), str(error))


def new_storage(tmp_path, name):
    storage = FileStorage(str(tmp_path / name))
    Connection(storage)     # the root, so that oids come from the counter
    return storage


@compiled
def test_new_oid_twins_hand_out_the_same_oids(tmp_path):
    results = []
    for number, new_oid in enumerate(twins('storage_new_oid')):
        storage = new_storage(tmp_path, 'n%d' % number)
        first = [new_oid(storage) for _ in range(3)]
        # numbers already taken are skipped, whichever set holds them
        base = storage._next_number
        storage.invalid.update({base, base + 2})
        storage.allocated.add(base + 1)
        later = [new_oid(storage) for _ in range(3)]
        results.append((first, later, storage._next_number,
                        sorted(storage.allocated)))
        storage.close()
    assert results[0] == results[1]
    first, later, _, _ = results[0]
    assert len(set(first + later)) == 6


@compiled
def test_new_oid_twins_agree_with_holes_and_odd_counters(tmp_path):
    results = []
    for number, new_oid in enumerate(twins('storage_new_oid')):
        path = str(tmp_path / ('h%d' % number))
        storage = FileStorage(path)
        connection = Connection(storage)
        root = connection.get_root()
        for n in range(5):
            root[n] = Thing(n)
        connection.commit()
        for n in (1, 3):
            del root[n]
        connection.commit()
        connection.pack()       # leaves holes in the offset map
        storage.close()
        storage = FileStorage(path)
        got = [new_oid(storage) for _ in range(6)]
        storage._holes = None
        storage._next_number = 2 ** 64   # past 8 bytes: the Python error
        got.append(outcome(lambda: new_oid(storage)))
        storage._next_number = 'seven'
        got.append(outcome(lambda: new_oid(storage)))
        results.append(got)
        storage.close()
    assert results[0] == results[1]
    assert results[0][-2][0] is not bytes


def record_of(oid, refs=b''):
    import pickle
    data = pickle.dumps(Thing, 2) + b'\x80\x02}q\x01.'
    return oid + len(data).to_bytes(4, 'big') + data + refs


@compiled
@pytest.mark.parametrize('case', [
    'usual', 'refs', 'root', 'known', 'surprise', 'no commit', 'readonly',
    'short', 'other oid', 'torn refs', 'str oid', 'bytearray record',
    'long oid',
])
def test_store_twins_stage_or_refuse_alike(tmp_path, case):
    results = []
    for number, store in enumerate(twins('storage_store')):
        path = str(tmp_path / ('s%d' % number))
        storage = new_storage(tmp_path, 's%d' % number)
        known = storage.new_oid()
        storage.begin()
        storage.store(known, record_of(known))
        storage.end()
        if case == 'readonly':
            storage.close()
            storage = FileStorage(path, readonly=True)
        oid = storage.new_oid() if case != 'readonly' else known
        record = record_of(oid)
        if case == 'refs':
            record = record_of(oid, refs=known + oid)
        elif case == 'root':
            oid = b'\0' * 8
            record = record_of(oid)
        elif case == 'known':
            oid, record = known, record_of(known)
        elif case == 'surprise':
            oid = (999).to_bytes(8, 'big')
            record = record_of(oid)
        elif case == 'short':
            record = oid + b'\0\0'
        elif case == 'other oid':
            record = record_of(known)
        elif case == 'torn refs':
            record = record_of(oid, refs=b'\1\2\3')
        elif case == 'str oid':
            oid = 'abcdefgh'
        elif case == 'bytearray record':
            record = bytearray(record)
        elif case == 'long oid':
            oid = oid + b'\0'
            record = record_of(oid)
        if case not in ('no commit', 'readonly'):
            storage.begin()
        got = outcome(lambda: store(storage, oid, record))
        if type(got) is tuple:
            got = (got[0], got[1].replace(path, 'PATH'))
        pending = storage.pending
        results.append((got, dict(pending) if pending else pending))
        storage.close()
    assert results[0] == results[1]
    if case in ('usual', 'refs', 'root', 'known', 'no commit',
                'bytearray record'):
        assert results[0][0] is None and len(results[0][1]) == 1
    else:
        assert type(results[0][0]) is tuple   # an error, the same one


def commit_and_look(rehook, monkeypatch):
    """Commit new and changed objects (and odd entries of ``_unhooked``)
    with ``rehook`` in use: the types they end up with."""
    import durus.connection as connection_module
    monkeypatch.setattr(connection_module, '_rehook', rehook)
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    things = [Thing(n) for n in range(4)]
    root['things'] = things[:3]
    root['other'] = Thing()
    connection.commit()
    things[0].value = 'changed'          # changed: listed again
    things[1].value                      # only read
    stranger = Connection(MemoryStorage()).get_root()
    connection._unhooked.extend([stranger, things[3]])
    root._p_note_change()
    connection.commit()
    view = [type(obj).__name__ + ':' + type(obj).__mro__[0].__qualname__
            for obj in things + [root, stranger]]
    view.append([type(obj) is Thing for obj in things])
    return view


@compiled
def test_rehook_twins_leave_the_same_hook_variants(monkeypatch):
    fast, slow = twins('rehook')
    got = commit_and_look(fast, monkeypatch)
    monkeypatch.undo()
    expected = commit_and_look(slow, monkeypatch)
    assert got == expected


@compiled
def test_rehook_takes_any_iterable_and_reports_errors():
    fast, slow = twins('rehook')
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    for rehook in (fast, slow):
        rehook(connection, (root,))          # a tuple is fine
        assert outcome(lambda: rehook(connection, None))[0] is TypeError
    assert outcome(lambda: fast(connection, ['text'])) == outcome(
        lambda: slow(connection, ['text']))


def test_a_commit_through_the_compiled_steps_reads_back(tmp_path):
    path = str(tmp_path / 'db')
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    root['things'] = [Thing(n) for n in range(2000)]
    connection.commit()
    root['things'][5].value = 'five'
    connection.commit()
    storage.close()
    connection = Connection(FileStorage(path, readonly=True))
    things = connection.get_root()['things']
    assert [thing.value for thing in things[:6]] == [0, 1, 2, 3, 4, 'five']
    assert len({thing._p_oid for thing in things}) == 2000
    assert os.path.getsize(path) > 0


class CountingConnection(Connection):
    """Counts the objects the commit loop notes as accessed."""

    def __init__(self, *args, **kwargs):
        self.noted = []
        Connection.__init__(self, *args, **kwargs)

    def note_access(self, obj):
        self.noted.append(obj._p_oid)
        Connection.note_access(self, obj)


def commit_with(write_found, monkeypatch, bad=False):
    """A commit of new, changed and stale objects through ``write_found``:
    what was stored, noted, and what the objects look like after."""
    import durus.connection as connection_module
    monkeypatch.setattr(connection_module, '_write_found', write_found)
    storage = MemoryStorage()
    connection = CountingConnection(storage)
    root = connection.get_root()
    root['a'] = Thing([Thing(n) for n in range(50)])
    connection.commit()
    old = root['a'].value[7]
    old.value = 'changed'
    connection.abort()
    old.value = 'changed again'       # changed in this transaction
    root['a'].value.append(Thing({'new': Thing()}))
    root['a']._p_note_change()
    if bad:
        root['a'].value.append(Thing(lambda: 0))
    try:
        connection.commit()
        error = None
    except Exception as caught:
        error = (type(caught), re.sub(r'0x[0-9a-f]+', '?', str(caught)))
    last = root['a'].value[-1]
    return (error, storage.records, connection.noted,
            [type(obj).__name__ for obj in root['a'].value],
            last._p_oid, last._p_status, len(connection.changed))


@compiled
@pytest.mark.parametrize('bad', [False, True])
def test_write_found_twins_store_and_fail_alike(monkeypatch, bad):
    fast, slow = twins('write_found')
    got = commit_with(fast, monkeypatch, bad)
    monkeypatch.undo()
    expected = commit_with(slow, monkeypatch, bad)
    assert got == expected
    if bad:
        assert got[0] is not None and got[4] is None   # unbound again
    else:
        assert got[0] is None and len(got[1]) == 54   # root, a, 50, 2 new


@compiled
def test_write_found_hands_other_writers_to_python():
    from durus.serialize import ObjectWriter

    class Writer(ObjectWriter):
        def get_record(self, obj):
            self.seen.append(obj)
            return ObjectWriter.get_record(self, obj)

    fast, _ = twins('write_found')
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    root['t'] = Thing(Thing())
    writer = Writer(connection)
    writer.seen = []
    stored, written = [], []
    fast(connection, writer, [root], lambda oid, record: stored.append(oid),
         written)
    assert writer.seen == written and len(written) == 3
    assert stored == [obj._p_oid for obj in written]
