"""Raw-record scans (durus_shell.scan) against what the storage holds."""

import pytest

from durus.connection import Connection, gen_every_instance
from durus.format import open_storage
from durus.storage import MemoryStorage, get_census, get_reference_index
from durus_shell import scan
from fixture_app.models import Account, Node, User

FILES = ['shelf.durus', 'shelf-packed.durus', 'dfs20.durus', 'sqlite.durus']


@pytest.fixture(params=FILES)
def fixture_db(request, fixture_copy):
    storage = open_storage(fixture_copy(request.param))
    connection = Connection(storage)
    yield request.param, connection
    storage.close()


@pytest.mark.parametrize('cls', [User, Account, Node])
def test_find_matches_gen_every_instance(fixture_db, cls):
    name, connection = fixture_db
    expected = sorted(obj._p_oid for obj in
                      gen_every_instance(connection, cls))
    dotted = '%s.%s' % (cls.__module__, cls.__name__)
    for spec in (cls.__name__, dotted):
        result = scan.find_oids(connection.storage, spec)
        assert sorted(result.items) == expected
        assert not result.interrupted
    found = scan.find_instances(connection, dotted).items
    assert sorted(obj._p_oid for obj in found) == expected
    assert all(type(obj).__name__ == cls.__name__ for obj in found)


def test_find_limit_where_and_unknown_class(fixture_db):
    name, connection = fixture_db
    rich = scan.find_instances(connection, 'Account',
                               where=lambda a: a.balance > 200).items
    assert rich and all(a.balance > 200 for a in rich)
    assert len(rich) == sum(1 for a in gen_every_instance(connection, Account)
                            if a.balance > 200)
    assert len(scan.find_instances(connection, 'User', limit=3).items) == 3
    assert scan.find_oids(connection.storage, 'NoSuchClass').items == []
    # a module path that only shares the class name does not match
    assert scan.find_oids(connection.storage, 'other.models.User').items == []


def test_census_matches_the_storage_census(fixture_db, manifest):
    name, connection = fixture_db
    result = scan.census(connection.storage)
    short = {}
    for dotted, count in result.items.items():
        key = dotted.rpartition('.')[2].encode()
        short[key] = short.get(key, 0) + count
    assert short == get_census(connection.storage)
    if name == 'shelf-packed.durus':   # the others hold garbage too
        expected = manifest['files'][name]['census']
        assert {k.decode(): v for k, v in short.items()} == expected
    assert result.items['fixture_app.models.User'] == manifest['n_users']


def test_referrers_match_the_reference_index(fixture_db):
    name, connection = fixture_db
    index = get_reference_index(connection.storage)
    for cls in (Account, Node):
        for obj in list(gen_every_instance(connection, cls))[:5]:
            result = scan.referrers(connection.storage, obj._p_oid)
            assert sorted(result.items) == sorted(index.get(obj._p_oid, []))
            if cls is Account:    # (unreachable garbage Nodes have none)
                assert [o for o in result.items
                        if connection.get(o) is obj.owner]


def test_path_leads_from_the_root_to_the_object(fixture_db):
    name, connection = fixture_db
    root = connection.get_root()
    account = root['users'][7].account
    result = scan.oid_path(connection.storage, account._p_oid)
    assert result.items[0] == b'\0' * 8 and result.items[-1] == account._p_oid
    path = scan.describe_chain(connection, result.items)
    assert path == "root['users'][7].account"
    assert eval(path, {'root': root}) is account
    tail = root['chain']
    for _ in range(5):
        tail = tail.next
    path = scan.describe_chain(
        connection, scan.oid_path(connection.storage, tail._p_oid).items)
    assert eval(path, {'root': root}) is tail


class InterruptingStorage(MemoryStorage):
    """Raises KeyboardInterrupt (as Ctrl-C would) after ``after`` records."""

    def __init__(self, inner, after):
        self.inner = inner
        self.after = after

    def gen_oid_record(self, start_oid=None, **kw):
        for count, pair in enumerate(self.inner.gen_oid_record(), 1):
            if count > self.after:
                raise KeyboardInterrupt
            yield pair


def test_ctrl_c_stops_a_scan_with_what_was_found(fixture_db):
    name, connection = fixture_db
    all_users = scan.find_oids(connection.storage, 'User').items
    storage = InterruptingStorage(connection.storage, after=200)
    result = scan.find_oids(storage, 'User')
    assert result.interrupted
    assert result.scanned == 200
    expected = [oid for oid, record in
                list(connection.storage.gen_oid_record())[:200]
                if oid in set(all_users)]
    assert result.items == expected
    count = scan.census(storage)
    assert count.interrupted


def test_progress_reports_count_total_and_found():
    storage = MemoryStorage()
    connection = Connection(storage)
    root = connection.get_root()
    for i in range(scan.CHUNK * 2 + 10):
        user = User()
        user.uid = i
        root[i] = user
    connection.commit()
    calls = []
    result = scan.find_oids(storage, 'User',
                            progress=lambda *args: calls.append(args))
    assert len(result.items) == scan.CHUNK * 2 + 10
    assert [c[0] for c in calls] == [scan.CHUNK, 2 * scan.CHUNK,
                                     2 * scan.CHUNK + 11]
    assert calls[-1][1] == 2 * scan.CHUNK + 11      # total records
    assert calls[-1][2] == 2 * scan.CHUNK + 10      # found
