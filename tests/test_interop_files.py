"""Files cross between this project and the real Durus 4.3 in both
directions, for all three formats, before and after a pack."""

import json

import pytest

import durus.file_storage
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.format import open_storage
from durus.sqlite_storage import SqliteStorage
from durus43_env import run_durus43

pytestmark = pytest.mark.slow

# Runs both here and under Durus 4.3: the comparable contents of a root.
DUMP = '''
def dump(root):
    tree = root['tree']
    return {
        'text': root['text'],
        'list': list(root['list']),
        'set': sorted(root['set']),
        'tree': [[k, v] for k, v in tree.items()],
        'child': sorted(root['child'].items()),
        'user': [root['user'].name, root['user'].uid],
        'round': root['round'],
    }
'''
# Also shared: the graph both sides write (same module paths in both).
POPULATE = '''
from durus.btree import BTree
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from fixture_app.models import User
def populate(root, text):
    root['text'] = text
    root['list'] = PersistentList(['a', 'b'])
    root['set'] = PersistentSet(['x', 'y'])
    tree = BTree()
    for n in range(300):
        tree['k%04d' % n] = n
    root['tree'] = tree
    root['child'] = PersistentDict({'n': 1})
    user = User()
    user.name, user.uid = 'ann', 7
    root['user'] = user
    root['round'] = 1
'''
namespace = {}
exec(DUMP + POPULATE, namespace)
dump, populate = namespace['dump'], namespace['populate']

OPEN_43 = '''
import json, sys
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.sqlite_storage import SqliteStorage
KINDS = {'shelf': FileStorage, 'dfs20': FileStorage2, 'sqlite': SqliteStorage}
def open_43(kind, path, readonly):
    if kind == 'sqlite':
        return SqliteStorage(path)  # 4.3 has no read-only SQLite
    return KINDS[kind](path, readonly=readonly)
'''

READ_43 = OPEN_43 + DUMP + '''
out = {}
for arg in sys.argv[1:]:
    kind, path = arg.split('=', 1)
    storage = open_43(kind, path, True)
    out[path] = dump(Connection(storage).get_root())
    storage.close()
print(json.dumps(out))
'''

WRITE_43 = OPEN_43 + POPULATE + '''
for arg in sys.argv[1:]:
    kind, path, mode = arg.split('=', 2)
    connection = Connection(open_43(kind, path, False))
    root = connection.get_root()
    if mode == 'new':
        populate(root, 'from durus 4.3')
        connection.commit()
        root['list'].append('c')
        root['round'] = 2
        connection.commit()
    elif mode == 'pack':
        populate(root, 'from durus 4.3, packed')
        connection.commit()
        root['round'] = 3
        connection.commit()
        connection.pack()
    else:  # append to a file written by this project
        root['round'] += 100
        root['tree']['added-by-43'] = -1
        connection.commit()
    connection.get_storage().close()
'''

KINDS = {'shelf': FileStorage, 'dfs20': FileStorage2, 'sqlite': SqliteStorage}


def write_here(kind, path, pack):
    storage = KINDS[kind](path)
    connection = Connection(storage)
    root = connection.get_root()
    populate(root, 'from this project')
    connection.commit()
    root['list'].append('c')
    root['child']['n'] = 2  # leaves garbage behind
    root['round'] = 2
    connection.commit()
    if pack:
        connection.pack()
    expected = dump(root)
    storage.close()
    return expected


def read_here(path):
    storage = open_storage(path, readonly=True)
    try:
        return dump(Connection(storage).get_root())
    finally:
        storage.close()


def normalise(contents):
    return json.loads(json.dumps(contents))


def test_files_written_here_open_in_durus43(durus43_python, tmp_path,
                                            monkeypatch):
    monkeypatch.setattr(durus.file_storage, 'SAVE_INDEX_MIN_RECORDS', 5)
    expected, args = {}, []
    for kind in KINDS:
        for pack in (False, True):
            path = str(tmp_path / ('%s-%s.durus' % (kind, pack)))
            expected[path] = normalise(write_here(kind, path, pack))
            args.append('%s=%s' % (kind, path))
    result = run_durus43(durus43_python, READ_43, *args)
    assert json.loads(result.stdout) == expected
    # Durus 4.3 appends to our files; we read its changes (SHELF-1 files
    # have a saved .index here that is now stale).
    run_durus43(durus43_python, WRITE_43,
                *[arg + '=append' for arg in args])
    for path, contents in expected.items():
        again = read_here(path)
        assert again['round'] == contents['round'] + 100
        assert ['added-by-43', -1] in again['tree']


def test_files_written_by_durus43_open_here(durus43_python, tmp_path):
    args, paths = [], {}
    for kind in KINDS:
        for mode in ('new', 'pack'):
            path = str(tmp_path / ('%s-%s.durus' % (kind, mode)))
            paths[path] = mode
            args.append('%s=%s=%s' % (kind, path, mode))
    run_durus43(durus43_python, WRITE_43, *args)
    for path, mode in paths.items():
        contents = read_here(path)
        assert contents['text'].startswith('from durus 4.3')
        assert contents['tree'] == [['k%04d' % n, n] for n in range(300)]
        assert contents['user'] == ['ann', 7]
        assert contents['round'] == (2 if mode == 'new' else 3)
        if mode == 'new':
            assert contents['list'] == ['a', 'b', 'c']
        # Pack here, then Durus 4.3 still reads it.
        storage = open_storage(path)
        storage.pack()
        storage.close()
        assert read_here(path) == contents
    result = run_durus43(durus43_python, READ_43,
                         *['%s=%s' % (arg.split('=')[0], arg.split('=')[1])
                           for arg in args])
    assert json.loads(result.stdout) == dict(
        (path, normalise(read_here(path))) for path in paths)
