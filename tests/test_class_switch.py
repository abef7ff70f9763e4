"""Switching an object between the hook variants of its class
(durus.persistent).  The compiled path remembers pairs of classes that
CPython's __class__ setter accepted and switches those without the
setter's layout checks (csrc/common.h, set_type): a pair the setter
refuses must stay refused, and every switch must still raise the audit
event the setter raises.  Runs on both paths (compiled and
DURUS_NO_SPEEDUPS=1)."""

import os
import subprocess
import sys
import textwrap

import pytest

from durus import inspect
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent import Persistent, PersistentObject, _variants
from fixture_app.models import User


class Roomy(PersistentObject):
    """Slots of its own: no variant of User has this layout."""

    __slots__ = ('first', 'second', 'third')


@pytest.fixture
def connection(tmp_path):
    path = str(tmp_path / 'db.durus')
    storage = FileStorage(path)
    connection = Connection(storage)
    for number in range(3):
        user = User()
        user.name = 'u%d' % number
        connection.get_root()[number] = user
    connection.commit()
    storage.close()
    storage = FileStorage(path)
    yield Connection(storage)
    storage.close()


def test_a_switch_the_setter_refuses_stays_refused(connection):
    users = [connection.get_root()[number] for number in range(3)]
    for user in users:
        inspect.load_quietly(user)
    connection.touched_since_last_call()
    triple = _variants[type(users[0])]
    watched = triple[1]
    for user in users:
        user.name                       # now the saved variant, listed
        assert type(user) is not watched
    # Doctored: the "watched variant" has another layout.
    triple[1] = Roomy
    try:
        for _ in range(2):              # refused, and not remembered
            with pytest.raises(TypeError, match='layout'):
                connection.touched_since_last_call()
            for user in users:
                assert type(user) is triple[2]
                connection._unhooked.append(user)
    finally:
        triple[1] = watched
    touched = connection.touched_since_last_call()
    assert all(type(user) is watched for user in users)
    assert set(map(id, touched)) == set(map(id, users))


def test_repeated_switches_keep_state_and_hooks(connection):
    # Pairs switched many times (the remembered path on the compiled
    # side) leave the objects what the setter would leave them.
    users = [connection.get_root()[number] for number in range(3)]
    for _ in range(5):
        for user in users:
            assert user.name.startswith('u')
        connection.touched_since_last_call()
        for user in users:
            assert type(user) is _variants[type(user)][1]
            assert user.__class__ is User
    users[0].name = 'changed'
    assert connection.changed[users[0]._p_oid] is users[0]
    assert vars(users[1]) == {'name': 'u1'}


AUDITED = textwrap.dedent('''
    import sys
    events = []
    def hook(event, args):
        if event == 'object.__setattr__' and args[1] == '__class__':
            events.append(args[0])
    sys.addaudithook(hook)
    from durus import inspect
    from durus.connection import Connection
    from durus.file_storage import FileStorage
    connection = Connection(FileStorage(sys.argv[1], readonly=True))
    users = [connection.get_root()[number] for number in range(3)]
    for _ in range(3):
        for user in users:
            user.name
        connection.touched_since_last_call()
    print(sum(1 for obj in events if any(obj is u for u in users)))
''')


def test_every_switch_raises_the_audit_event(connection, tmp_path):
    # Three rounds of: a read (ghost or watched -> saved variant) and the
    # hand-over (saved -> watched): six switches per object.
    path = str(tmp_path / 'db.durus')
    connection.storage.close()
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         os.path.dirname(os.path.abspath(__file__))])
    done = subprocess.run([sys.executable, '-c', AUDITED, path], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 3 * 6
