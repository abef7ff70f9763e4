"""Change tracking: :diff, undo/redo, unnoted changes (durus_shell.changes)."""

import pytest

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from durus.storage import MemoryStorage
from durus_shell.changes import MISSING, ChangeTracker, format_diffs
from fixture_app.models import Account, User


def stored_root(path):
    storage = FileStorage(path, readonly=True)
    try:
        connection = Connection(storage)
        root = connection.get_root()
        return {key: _plain(root[key]) for key in root.keys()}
    finally:
        storage.close()


def _plain(value):
    if isinstance(value, PersistentList):
        return list(value)
    if isinstance(value, PersistentSet):
        return set(value)
    if isinstance(value, User):
        return ('User', value.name)
    return value


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    root['count'] = 1
    root['log'] = PersistentList(['a'])
    root['tags'] = PersistentSet(['x'])
    user = User()
    user.name = 'ann'
    user.tags = ['t1']
    root['user'] = user
    connection.commit()
    tracker = ChangeTracker(connection)
    yield path, connection, tracker
    storage.close()


def run(tracker, root, code):
    tracker.begin_statement()
    try:
        exec(code, {'root': root, 'User': User})
    finally:
        tracker.end_statement()


def by_where(diffs):
    return {d.where: d for d in diffs}


def test_diff_lists_attribute_item_and_new_object_changes(db):
    path, connection, tracker = db
    root = connection.get_root()
    run(tracker, root, "root['count'] = 2")
    run(tracker, root, "root['user'].name = 'bob'")
    run(tracker, root, "root['log'].append('b'); root['tags'].add('y')")
    run(tracker, root, "root['new'] = User(); root['new'].name = 'neo'")
    diffs = by_where(tracker.diff())
    assert set(diffs) == {'root', "root['user']", "root['log']",
                          "root['tags']", "root['new']"}
    assert ("['count']", 1, 2) in diffs['root'].items
    assert diffs["root['user']"].items == [('.name', 'ann', 'bob')]
    assert diffs["root['user']"].class_path == 'fixture_app.models.User'
    assert diffs["root['log']"].items == [('[1]', MISSING, 'b')]
    assert diffs["root['tags']"].items == [("{'y'}", MISSING, 'y')]
    assert diffs["root['new']"].kind == 'new'
    assert diffs["root['new']"].items == [('.name', MISSING, 'neo')]
    text = '\n'.join(format_diffs(tracker.diff()))
    assert "root['user'] <fixture_app.models.User" in text
    assert ".name: 'ann' -> 'bob'" in text


def test_diff_is_empty_after_commit_and_after_abort(db):
    path, connection, tracker = db
    root = connection.get_root()
    run(tracker, root, "root['count'] = 5")
    assert tracker.diff()
    connection.commit()
    assert tracker.diff() == []
    run(tracker, root, "root['count'] = 6")
    connection.abort()
    assert tracker.diff() == []
    assert root['count'] == 5
    assert tracker.undo(1) == 0     # committed work is never undone


def test_undo_redo_mixed_edits_then_commit_writes_what_remains(db):
    path, connection, tracker = db
    root = connection.get_root()
    run(tracker, root, "root['count'] = 2")                    # 1
    run(tracker, root, "root['user'].name = 'bob'")            # 2
    run(tracker, root, "root['log'].append('b')")              # 3
    run(tracker, root, "root['new'] = User(); root['new'].name = 'n1'")  # 4
    run(tracker, root, "root['new'].name = 'n2'; del root['user'].tags")  # 5
    assert tracker.undo(2) == 2
    diffs = by_where(tracker.diff())
    assert set(diffs) == {'root', "root['user']", "root['log']"}
    assert 'new' not in root
    assert root['user'].tags == ['t1']
    assert tracker.redo(1) == 1           # statement 4 again
    assert root['new'].name == 'n1'
    assert by_where(tracker.diff())["root['new']"].items == [
        ('.name', MISSING, 'n1')]
    assert tracker.undo(3) == 3           # 4, 3, 2 undone: only count left
    diffs = tracker.diff()
    assert [(d.where, d.items) for d in diffs] == [
        ('root', [("['count']", 1, 2)])]
    assert list(connection.changed) == [root._p_oid]
    assert not root['user']._p_is_unsaved()
    run(tracker, root, "root['log'].append('c')")   # a new edit ...
    assert tracker.redo(1) == 0                     # ... drops redo
    connection.commit()
    stored = stored_root(path)
    assert stored['count'] == 2
    assert stored['log'] == ['a', 'c']
    assert stored['user'] == ('User', 'ann')
    assert 'new' not in stored


def test_undo_everything_leaves_nothing_to_commit(db):
    path, connection, tracker = db
    root = connection.get_root()
    run(tracker, root, "root['user'].name = 'x'")
    run(tracker, root, "root['user'].name = 'y'")
    assert tracker.undo(10) == 2
    assert connection.changed == {}
    assert tracker.diff() == []
    assert root['user'].name == 'ann'
    assert tracker.redo(10) == 2
    assert root['user'].name == 'y'
    connection.commit()
    assert stored_root(path)['user'] == ('User', 'y')


def test_unnoted_change_is_flagged_touchable_and_dropped_by_abort(db):
    path, connection, tracker = db
    root = connection.get_root()
    root['user'].tags.append('t2')      # in place, nobody noted it
    diffs = tracker.diff()
    assert [(d.kind, d.where) for d in diffs] == [('unnoted', "root['user']")]
    assert diffs[0].items == [('.tags', ['t1'], ['t1', 't2'])]
    assert 'UNNOTED' in '\n'.join(format_diffs(diffs))
    connection.abort()                  # back to the stored state
    assert root['user'].tags == ['t1']
    assert tracker.diff() == []
    root['user'].tags.append('t3')
    from durus_shell.changes import touch
    tracker.begin_statement()
    touch(connection, root['user'])
    tracker.end_statement()
    assert [d.kind for d in tracker.diff()] == ['changed']
    connection.commit()
    storage = FileStorage(path, readonly=True)
    try:
        user = Connection(storage).get_root()['user']
        assert user.tags == ['t1', 't3']
    finally:
        storage.close()


def test_unnoted_change_in_a_dict_value_of_a_persistent_dict():
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    root['settings'] = {'a': 1}
    connection.commit()
    tracker = ChangeTracker(connection)
    root['settings']['a'] = 2
    diffs = tracker.diff()
    assert diffs[0].kind == 'unnoted'
    assert diffs[0].items == [("['settings']", {'a': 1}, {'a': 2})]


def test_slotted_objects_and_deletes_are_undone():
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    account = Account()
    account.balance = 10
    account.history = [1]
    root['acct'] = account
    connection.commit()
    tracker = ChangeTracker(connection)
    run(tracker, root, "root['acct'].balance = 20")
    run(tracker, root, "del root['acct'].history")
    assert by_where(tracker.diff())["root['acct']"].items == [
        ('.balance', 10, 20), ('.history', [1], MISSING)]
    tracker.undo(2)
    assert account.balance == 10 and account.history == [1]
    assert connection.changed == {}


def test_tracking_does_not_mark_objects_accessed(db):
    path, connection, tracker = db
    root = connection.get_root()
    user = root['user']
    connection.abort()                # new transaction: nothing accessed
    serial = connection.transaction_serial
    tracker.diff()
    tracker.begin_statement()
    tracker.end_statement()
    assert user._p_serial != serial


def test_btree_changes_are_shown_as_key_changes():
    from durus.btree import BTree
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    tree = root['tree'] = BTree()
    for i in range(200):
        tree[i] = i
    connection.commit()
    tracker = ChangeTracker(connection)
    run(tracker, root, "t = root['tree']; t[5] = 'five'; del t[7]; "
                       "[t.add(k, k) for k in range(1000, 1040)]")
    diffs = tracker.diff()
    tree_diffs = [d for d in diffs if d.obj is tree]
    assert len(diffs) == 1 and len(tree_diffs) == 1
    items = tree_diffs[0].items
    assert ('[5]', 5, 'five') in items
    assert ('[7]', 7, MISSING) in items
    assert ('[1000]', MISSING, 1000) in items
    assert len(items) == 42
    tracker.undo(1)
    assert tracker.diff() == []
    assert tree[5] == 5 and 7 in tree and 1000 not in tree
    assert len(tree) == 200


def test_in_place_edit_through_a_reference_kept_from_an_earlier_statement():
    """Only objects a statement read are compared, plus those whose
    mutable parts are referenced from elsewhere (here: a variable)."""
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    user = User()
    user.name = 'ann'
    user.tags = ['t1']
    user.prefs = {'colours': ['red']}
    root['user'] = user
    account = Account()
    account.balance = 1
    account.history = [1]
    root['acct'] = account
    connection.commit()
    tracker = ChangeTracker(connection)
    namespace = {'root': root}

    def statement(code):
        tracker.begin_statement()
        try:
            exec(code, namespace)
        finally:
            tracker.end_statement()

    statement("t = root['user'].tags; c = root['user'].prefs['colours'];"
              " h = root['acct'].history")
    assert tracker.pending().unnoted == []
    statement("t.append('t2')")          # reads no persistent object
    assert tracker.pending().unnoted == [user]
    statement("t.remove('t2'); c.append('blue')")   # nested, held too
    assert tracker.pending().unnoted == [user]
    statement("h.append(2)")              # a slotted object's list
    assert set(map(id, tracker.pending().unnoted)) == {id(user), id(account)}
    assert tracker.undo(2) == 2
    assert tracker.pending().unnoted == [user]
    assert user.tags == ['t1', 't2'] and user.prefs == {'colours': ['red']}
    assert account.history == [1]
    statement("del t, c, h")
    assert tracker._exposed == {}       # nothing held outside any more
    assert tracker.undo(1) == 1          # "t.append('t2')"
    assert tracker.pending().unnoted == [] and user.tags == ['t1']


def test_objects_not_read_are_not_compared(monkeypatch):
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    for i in range(50):
        root[i] = User()
        root[i].tags = [i]
    connection.commit()
    tracker = ChangeTracker(connection)
    tracker.begin_statement()
    [root[i].tags for i in range(50)]     # everything read once
    tracker.end_statement()
    compared = []
    from durus import inspect
    real = inspect.differing_from_records

    def counting(connection, objects, same=None):
        compared.extend(objects)
        return real(connection, objects, same)
    monkeypatch.setattr(inspect, 'differing_from_records', counting)
    tracker.begin_statement()
    root[7].tags.append('x')
    tracker.end_statement()
    assert root[7] in compared and len(compared) <= 2   # root[7] (+ root)
    assert tracker.pending().unnoted == [root[7]]


def test_an_in_place_edit_left_out_of_a_commit_stays_pending(db):
    path, connection, tracker = db
    root = connection.get_root()
    tracker.begin_statement()
    root['user'].tags.append('t2')
    root['count'] = 2
    tracker.end_statement()
    pending = tracker.pending()
    assert pending.unnoted == [root['user']] and pending.written == 1
    connection.commit()                 # writes the root only
    assert tracker.pending().unnoted == [root['user']]
    assert stored_root(path)['count'] == 2
    assert [d.kind for d in tracker.diff()] == ['unnoted']
