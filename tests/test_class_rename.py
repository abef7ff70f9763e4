"""Renaming a class on record bytes (durus.pickle_rename, durus.class_rename):
headers, references inside states, one commit, nothing imported."""

import pickle
import sys
import types
import zlib

import pytest

from durus.class_rename import (
    RenameRefused, plan_rename, rename_class, rename_record)
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.inspect import real_class
from durus.persistent import Persistent
from durus.pickle_rename import parse_class_name, rename_in_pickle
from durus.record import class_path, pack_record, unpack_record
from durus43_env import run_durus43
from server_process import durus_server  # noqa: F401 (fixture)


def _module(name, source):
    module = types.ModuleType(name)
    exec(source, module.__dict__)
    sys.modules[name] = module
    return module


@pytest.fixture(scope='module')
def classes():
    """Classes in two throwaway modules: old_h17.Thing/Note and
    new_h17.Thing/Note, removed again afterwards (made once: the
    reader keeps the classes it resolved by name)."""
    source = ('from durus.persistent import Persistent\n'
              'class Thing(Persistent):\n    pass\n'
              'class Note(object):\n    pass\n')
    old = _module('old_h17', source)
    new = _module('new_h17', source)
    yield old, new
    del sys.modules['old_h17'], sys.modules['new_h17']


def test_class_names_in_both_forms():
    assert parse_class_name('a.b:C') == ('a.b', 'C')
    assert parse_class_name('a.b.C') == ('a.b', 'C')
    assert parse_class_name('a:Outer.Inner') == ('a', 'Outer.Inner')
    for bad in ('Thing', 'a.b:', 'a b.C', ':C'):
        with pytest.raises(ValueError):
            parse_class_name(bad)


@pytest.mark.parametrize('protocol', [0, 1, 2, 3, 4, 5])
def test_every_protocol_is_rewritten_and_other_classes_kept(classes,
                                                            protocol):
    old, new = classes
    value = [old.Note, old.Note(), {'again': old.Note}, old.Thing]
    data = pickle.dumps(value, protocol)
    rewritten, count = rename_in_pickle(data, ('old_h17', 'Note'),
                                        ('new_h17', 'Note'))
    assert count >= 1
    loaded = pickle.loads(rewritten)
    assert loaded[0] is new.Note and type(loaded[1]) is new.Note
    assert loaded[2]['again'] is new.Note
    assert loaded[3] is old.Thing  # same module, other class: untouched


def test_no_reference_gives_the_same_bytes(classes):
    data = pickle.dumps({'a': 1}, 2)
    assert rename_in_pickle(data, ('old_h17', 'Note'),
                            ('new_h17', 'Note')) == (data, 0)


def test_rewriting_imports_nothing():
    # neither module exists: the rename works on the opcodes alone
    data = (b'\x80\x02cnowhere_h17\nGone\nq\x00)\x81q\x01}q\x02b.')
    rewritten, count = rename_in_pickle(data, ('nowhere_h17', 'Gone'),
                                        ('elsewhere_h17', 'Here'))
    assert count == 1
    assert b'celsewhere_h17\nHere\n' in rewritten
    assert 'nowhere_h17' not in sys.modules


def test_garbage_is_not_a_pickle():
    with pytest.raises(ValueError):
        rename_in_pickle(b'\x80\x02\xff', ('a', 'B'), ('c', 'D'))


def _database(storage, old):
    connection = Connection(storage)
    root = connection.get_root()
    root['thing'] = old.Thing()
    root['thing'].note = old.Note()
    root['things'] = [old.Thing() for _ in range(3)]
    root['other'] = Persistent()
    connection.commit()
    return connection


@pytest.mark.parametrize('storage_class', [FileStorage, FileStorage2])
def test_a_file_renamed_opens_with_the_new_classes(classes, tmp_path,
                                                   storage_class):
    old, new = classes
    path = str(tmp_path / 'db')
    connection = _database(storage_class(path), old)
    storage = connection.get_storage()
    dry = rename_class(storage, 'old_h17:Thing', 'new_h17.Thing',
                       dry_run=True)
    # 4 Thing records, and the root whose state refers to them
    assert dry.records == 5 and dry.headers == 4
    assert dry.bytes_after == dry.bytes_before > 0  # names of one length
    assert rename_class(storage, 'old_h17:Thing', 'new_h17.Thing',
                        dry_run=True).records == 5  # nothing was written
    rename_class(storage, 'old_h17:Thing', 'new_h17.Thing')
    rename_class(storage, 'old_h17.Note', 'new_h17:Note')
    storage.close()
    reopened = Connection(storage_class(path))
    root = reopened.get_root()
    assert real_class(root['thing']) is new.Thing
    assert type(root['thing'].note) is new.Note
    assert [real_class(t) for t in root['things']] == [new.Thing] * 3
    assert real_class(root['other']) is Persistent
    reopened.get_storage().close()


def test_compressed_states_stay_compressed(classes, tmp_path):
    old, _ = classes
    state = pickle.dumps({'note': old.Note(), 'pad': 'x' * 500}, 2)
    data = b'\x80\x02cold_h17\nThing\nq\x00.' + zlib.compress(state)
    record = pack_record(b'\0' * 7 + b'\5', data, b'')
    rewritten, header, references = rename_record(
        record, ('old_h17', 'Note'), ('new_h17', 'Note'))
    assert (header, references) == (False, 1)
    _, new_data, _ = unpack_record(rewritten)
    state_part = new_data[len(b'\x80\x02cold_h17\nThing\nq\x00.'):]
    assert b'new_h17' in zlib.decompress(state_part)
    assert class_path(rewritten) == ('old_h17', 'Thing')


def test_a_new_name_already_in_use_needs_merge(classes, tmp_path):
    old, new = classes
    connection = _database(FileStorage(str(tmp_path / 'db')), old)
    connection.get_root()['already'] = new.Thing()
    connection.commit()
    storage = connection.get_storage()
    with pytest.raises(RenameRefused) as caught:
        rename_class(storage, 'old_h17:Thing', 'new_h17:Thing')
    assert '--merge' in str(caught.value)
    assert plan_rename(storage, 'old_h17:Thing',
                       'new_h17:Thing').records == 5  # still there
    rename_class(storage, 'old_h17:Thing', 'new_h17:Thing', merge=True)
    assert plan_rename(storage, 'old_h17:Thing',
                       'new_h17:Thing').records == 0


def test_renaming_to_itself_is_refused(classes, tmp_path):
    connection = _database(FileStorage(str(tmp_path / 'db')), classes[0])
    with pytest.raises(RenameRefused):
        rename_class(connection.get_storage(), 'old_h17:Thing',
                     'old_h17.Thing')


def test_over_a_real_server(classes, durus_server):
    old, new = classes
    server = durus_server()
    writer = _database(ClientStorage(port=server.port), old)
    plan = rename_class(ClientStorage(port=server.port), 'old_h17:Thing',
                        'new_h17:Thing')
    assert plan.records == 5
    fresh = Connection(ClientStorage(port=server.port))
    assert real_class(fresh.get_root()['thing']) is new.Thing
    # the first client sees the new records after its next sync
    writer.abort()
    assert class_path(writer.get_storage().load(
        fresh.get_root()['thing']._p_oid)) == ('new_h17', 'Thing')


WRITE_43 = '''
import sys
sys.path.insert(0, sys.argv[2])
from durus.file_storage import FileStorage
from durus.connection import Connection
import old_h17
c = Connection(FileStorage(sys.argv[1]))
root = c.get_root()
root['thing'] = old_h17.Thing()
root['thing'].note = old_h17.Note()
root['things'] = [old_h17.Thing(), old_h17.Thing()]
c.commit()
'''

READ_43 = '''
import sys
sys.path.insert(0, sys.argv[2])
from durus.file_storage import FileStorage
from durus.connection import Connection
c = Connection(FileStorage(sys.argv[1], readonly=True))
root = c.get_root()
print(type(root['thing']).__module__, type(root['thing'].note).__module__,
      sorted(set(type(t).__module__ for t in root['things'])),
      'old_h17' in sys.modules)
'''

MODULE_43 = ('from durus.persistent import Persistent\n'
             'class Thing(Persistent):\n    pass\n'
             'class Note(object):\n    pass\n')


def test_a_durus43_file_renamed_opens_in_durus43(durus43_python, tmp_path):
    old_dir = tmp_path / 'old'
    new_dir = tmp_path / 'new'
    old_dir.mkdir()
    new_dir.mkdir()
    (old_dir / 'old_h17.py').write_text(MODULE_43)
    (new_dir / 'new_h17.py').write_text(MODULE_43)
    path = tmp_path / 'written_by_43.durus'
    run_durus43(durus43_python, WRITE_43, path, old_dir)
    storage = FileStorage(str(path))
    rename_class(storage, 'old_h17:Thing', 'new_h17:Thing')
    rename_class(storage, 'old_h17:Note', 'new_h17:Note')
    storage.close()
    # old_h17 is not on 4.3's path any more: only the new names can load
    result = run_durus43(durus43_python, READ_43, path, new_dir)
    assert result.stdout.split() == [
        'new_h17', 'new_h17', "['new_h17']", 'False']


def test_a_record_changed_meanwhile_refuses_the_whole_rename(
        classes, durus_server):
    from durus.class_rename import commit_rename
    from durus.error import ConflictError
    old, _ = classes
    server = durus_server()
    other = _database(ClientStorage(port=server.port), old)
    storage = ClientStorage(port=server.port)
    plan = plan_rename(storage, 'old_h17:Thing', 'new_h17:Thing')
    other.get_root()['thing'].changed = True
    other.commit()
    with pytest.raises(ConflictError):
        commit_rename(storage, plan)
    fresh = ClientStorage(port=server.port)
    assert plan_rename(fresh, 'old_h17:Thing',
                       'new_h17:Thing').records == 5  # nothing written
