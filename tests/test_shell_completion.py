"""Completion from plain text: suggestions, and that nothing was touched.

The tests call ``complete``, the engine, which lets errors through: a
crash fails the test instead of passing as "no suggestions" (``suggest``,
the prompt's wrapper, turns every error into no suggestions).
"""

import pytest

from durus.persistent import Persistent, _getattribute
from durus.storage import MemoryStorage
from durus_shell import completion
from durus_shell.registry import Command
from durus_shell.completion import Unsafe, complete, safe_eval, suggest
from durus_shell.opening import open_file
from durus_shell.session import Session


@pytest.fixture
def session(fixture_copy):
    target = open_file(fixture_copy('shelf.durus'))
    session = Session(target.storage, target)
    yield session
    session.close()


def texts(suggestions):
    return [s.text for s in suggestions]


def access_marks(connection):
    """(oid, _p_serial, _p_status) of every cached object."""
    marks = {}
    for obj in list(connection.cache):
        marks[_getattribute(obj, '_p_oid')] = (
            _getattribute(obj, '_p_serial'), type(obj).__name__)
    return marks


def assert_untouched(session, before):
    """Nothing cached got an access mark or a change."""
    after = access_marks(session.connection)
    serial = session.connection.transaction_serial
    for oid, (mark, _) in after.items():
        if oid in before:
            assert mark == before[oid][0], oid
        assert mark != serial or oid in before, oid
    assert not session.connection.changed


def test_attribute_of_a_user_through_a_btree(session):
    before = access_marks(session.connection)
    found = complete("root['users'][3].na", session.namespace)
    assert texts(found) == ['name']
    assert found[0].replace == 2
    assert_untouched(session, before)
    # The objects on the way were loaded (ghosts filled) but not accessed.
    user = completion.safe_eval("root['users'][3]", session.namespace)
    assert _getattribute(user, '_p_serial') != \
        session.connection.transaction_serial
    assert 'name' in _getattribute(user, '__dict__')


def test_slot_attributes_and_hidden_private_names(session):
    found = texts(complete("root['users'][3].account.", session.namespace))
    assert found[:3] == ['balance', 'history', 'owner']
    assert not any(name.startswith('_') for name in found)
    private = texts(complete("root['users'][3].account._p_", session.namespace))
    assert '_p_oid' in private


def test_keys_of_the_root_dict(session):
    found = complete('root[', session.namespace)
    assert texts(found) == ["'big']", "'cached']", "'chain']", "'config']",
                            "'log']", "'tags']", "'users']"]
    assert texts(complete("root['us", session.namespace)) == ["'users']"]
    assert complete("root['us", session.namespace)[0].replace == 3
    assert texts(complete('root["co', session.namespace)) == ['"config"]']


def test_btree_keys_by_prefix_are_bounded_and_cheap(session):
    connection = session.connection
    before = access_marks(connection)
    loads = connection.get_load_count()
    found = texts(complete("root['big']['k0025", session.namespace))
    assert found[0] == "'k002500']"
    assert len(found) == completion.MAX_KEYS
    assert all(text.startswith("'k0025") for text in found)
    assert found == sorted(found)
    # An ordered search: a few nodes, not the 335 of the tree.
    assert connection.get_load_count() - loads < 12
    assert_untouched(session, before)


def test_int_keys_of_a_btree(session):
    found = texts(complete("root['users'][1", session.namespace))
    assert found[:3] == ['1]', '10]', '11]']
    assert all(text.startswith('1') for text in found)
    assert '2]' not in found


def test_names_and_commands(session):
    assert texts(complete('ro', session.namespace))[0] == 'root'
    assert 'conn' in texts(complete('con', session.namespace))
    assert texts(complete(':com', session.namespace)) == [':commit']
    assert texts(complete(':help st', session.namespace)) == ['status']


class Tricky(object):
    calls = []

    @property
    def prop(self):
        Tricky.calls.append('prop')
        return self

    def __getattr__(self, name):
        Tricky.calls.append('getattr ' + name)
        return self


class Watched(Persistent):
    @property
    def computed(self):
        Tricky.calls.append('computed')
        return 1

    def __getattr__(self, name):
        Tricky.calls.append('persistent getattr ' + name)
        raise AttributeError(name)


def test_completion_calls_no_code():
    session = Session(MemoryStorage())
    namespace = session.namespace
    namespace['tricky'] = Tricky()
    namespace['watched'] = Watched()
    namespace['func'] = lambda: Tricky.calls.append('called')
    Tricky.calls[:] = []
    assert complete('tricky.prop.', namespace) == []
    assert complete('tricky.missing.', namespace) == []
    assert complete('func().', namespace) == []
    assert complete('watched.computed.', namespace) == []
    assert complete('watched.nothing.', namespace) == []
    assert complete("tricky['a'].", namespace) == []
    assert 'prop' in texts(complete('tricky.p', namespace))
    assert Tricky.calls == []
    for bad in ('func()', 'a + b', 'x[y]', '(lambda: 1)()'):
        with pytest.raises(Unsafe):
            safe_eval(bad, namespace)


def test_plain_containers_and_modules():
    session = Session(MemoryStorage())
    namespace = session.namespace
    namespace['data'] = {'alpha': {'beta': 1}, 2: [10, 20]}
    assert texts(complete("data['al", namespace)) == ["'alpha']"]
    assert texts(complete("data['alpha'][", namespace)) == ["'beta']"]
    assert texts(complete('data[2][', namespace)) == ['0]', '1]']
    assert 'path' in texts(complete('os.pa', namespace))


def test_odd_text_is_no_error():
    session = Session(MemoryStorage())
    for text in ('', '[', '.', 'root[[', "root['x'", ')', '"', ':', '1.',
                 'root.__class__.__mro__[0].'):
        assert isinstance(complete(text, session.namespace), list)


def test_a_crash_reaches_the_tests_and_not_the_prompt():
    def broken_completer(session, args):
        raise RuntimeError('completer bug')

    def broken_command(session, args):
        """A command whose completer fails."""

    broken = Command('broken', broken_command, ':broken', None, (),
                     broken_completer, False)
    namespace = Session(MemoryStorage()).namespace
    with pytest.raises(RuntimeError, match='completer bug'):
        complete(':broken x', namespace, commands=[broken])
    assert suggest(':broken x', namespace, commands=[broken]) == []
    assert texts(suggest(':bro', namespace, commands=[broken])) == [':broken']


def test_keys_come_back_in_the_quote_typed_and_stay_valid_python():
    session = Session(MemoryStorage())
    namespace = session.namespace
    data = namespace['data'] = {"it's": 1, 'say "hi"': 2, 'a\\b': 3}
    assert texts(complete("data['it", namespace)) == ["'it\\'s']"]
    assert texts(complete('data["it', namespace)) == ['"it\'s"]']
    assert texts(complete('data["say', namespace)) == ['"say \\"hi\\""]']
    for text in ('data[', 'data["', "data['a"):
        for found in complete(text, namespace):
            key = eval(found.text[:-1])  # without the closing bracket
            assert key in data
