"""durus_shell.render: readable, bounded views of values and objects."""

import pytest

from durus.btree import BTree
from durus.persistent import Persistent
from durus.persistent_list import PersistentList
from durus.storage import MemoryStorage
from durus_shell import render
from durus_shell.opening import open_file, root_table
from durus_shell.session import Session
from durus_shell.commands import run_input


@pytest.fixture
def session(fixture_copy):
    target = open_file(fixture_copy('shelf.durus'))
    session = Session(target.storage, target)
    yield session
    session.close()


def show(value, **limits):
    return render.plain(render.Renderer(**limits).render(value))


def test_persistent_object_view(session):
    user = run_input(session, "root['users'][3]").value
    text = show(user)
    first = text.splitlines()[0]
    assert first.startswith('<User ')
    assert 'fixture_app.models.User' in first and 'ghost' in first
    assert "name     'user3'" in text
    assert "email    'user3@example.org'" in text
    assert 'account  <Account ' in text and 'ghost>' in text
    # Shown again it is a saved object; the account is still not loaded.
    assert show(user).splitlines()[0].endswith('saved')


def test_changed_and_new_states(session):
    user = run_input(session, "root['users'][3]").value
    run_input(session, "root['users'][3].name = 'renamed'")
    assert show(user).splitlines()[0].endswith('changed')
    new = PersistentList([1])
    assert '<PersistentList>' in show(new) and 'new' in show(new)
    assert '<PersistentList new>' in show({'x': new})


def test_btree_shows_size_and_first_items_only(session):
    connection = session.connection
    loads = connection.get_load_count()
    text = show(run_input(session, "root['big']").value, max_items=5)
    assert 'about' in text or '5000 items' in text
    assert "'k000000': 0" in text and "'k000004': 8" in text
    assert "'k000005'" not in text
    assert 'first 5 shown' in text
    assert connection.get_load_count() - loads < 15


def test_small_btree_is_counted_exactly():
    session = Session(MemoryStorage())
    tree = BTree()
    for n in range(100):
        tree[n] = str(n)
    text = show(tree, max_items=3)
    assert '100 items' in text and "0: '0'" in text and "3: '3'" not in text


def test_containers_limits_depth_and_cycles():
    assert show(list(range(1000))).endswith('19, ... 980 more]')
    words = ['word%04d' % n for n in range(1000)]
    text = show(words)
    assert text.splitlines()[:2] == ['list of 1000 items', "  'word0000'"]
    assert text.splitlines()[-1] == '  ... 980 more'
    nested = {'a': {'b': {'c': {'d': 1}}}}
    assert show(nested) == "{'a': {'b': {'c': {...1 item}}}}"
    cyclic = [1]
    cyclic.append(cyclic)
    assert show(cyclic) == '[1, [...cycle]]'
    assert show({1, 2}) == '{1, 2}' and show(set()) == 'set()'
    long_text = 'x' * 1000
    assert '(1000 in all)' in show(long_text)


class Selfish(Persistent):
    pass


def test_persistent_cycle_is_marked():
    session = Session(MemoryStorage())
    obj = Selfish()
    obj.me = obj
    session.root['obj'] = obj
    session.connection.commit()
    assert 'me  <Selfish 1> (cycle: this object)' in show(obj)


def test_a_failing_repr_does_not_break_rendering():
    class Bad(object):
        def __repr__(self):
            raise RuntimeError('no')
    assert 'repr failed' in show([Bad()])


def test_cut_lines_adds_a_note():
    fragments = [(render.T_TEXT, '\n'.join(str(n) for n in range(100)))]
    cut = render.plain(render.cut_lines(fragments, 10, '%d more'))
    assert cut.splitlines()[:10] == [str(n) for n in range(10)]
    assert cut.splitlines()[-1] == '90 more'


def test_root_table(session):
    text = render.plain(root_table(session))
    lines = text.splitlines()
    assert lines[0] == 'root <PersistentDict 0>, 7 entries'
    assert lines[1].split() == ['key', 'class', 'oid', 'size']
    users = [line for line in lines if line.startswith("'users'")][0]
    assert users.split()[1:3] == ['BTree', '1']
    assert session.connection.get_load_count() <= 1


def test_placeholders_are_marked(fixture_copy):
    # Without fixture_app importable, its objects open as placeholders.
    import subprocess
    import sys
    done = subprocess.run(
        [sys.executable, '-m', 'durus_shell', fixture_copy('shelf.durus'),
         '-c', "root['users'][3]\nroot['users'][3].account.owner"],
        capture_output=True, text=True, timeout=60, cwd='/')
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith('<User 6>') and 'placeholder' in lines[0]
    assert 'placeholder>' in done.stdout  # a reference to one
