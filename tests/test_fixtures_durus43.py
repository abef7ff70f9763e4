"""The files written by the real Durus 4.3 (tests/data/durus43) open here,
hold what manifest.json says, survive a pack done here, and the torn one
is refused and then repaired to exactly its intact size."""

import os

import pytest

from durus.connection import Connection
from durus.error import DamagedFileError
from durus.file_storage import FileStorage
from durus.format import detect_format, inspect_damage, open_storage
from durus.storage import ROOT_OID, get_census

INTACT = ['shelf.durus', 'shelf-packed.durus', 'dfs20.durus', 'sqlite.durus']
# What Durus 4.3's get_census reports beyond the reachable census.
UNREACHABLE_NODES = {'shelf.durus': 2, 'shelf-packed.durus': 0,
                     'dfs20.durus': 2, 'sqlite.durus': 2}


def reachable_census(storage):
    census = {}
    for oid, record in storage.gen_oid_record(start_oid=ROOT_OID):
        name = record[12:].split(b'\n', 2)[1].decode()
        census[name] = census.get(name, 0) + 1
    return census


def check_contents(storage, manifest, expected_log):
    """Compare the object graph with the manifest, through a Connection."""
    root = Connection(storage).get_root()
    assert sorted(root.keys()) == manifest['root_keys']
    users = root['users']
    assert len(users) == manifest['n_users']
    for uid, expected in manifest['users'].items():
        user = users[int(uid)]
        assert (user.uid, user.name, user.email, user.tags) == (
            int(uid), expected['name'], expected['email'], expected['tags'])
        assert user.account.balance == expected['balance']
        assert user.account.owner is user
    config = root['config']
    assert config['name'] == manifest['config_name']
    assert config['unicode'] == manifest['config_unicode']
    assert list(root['log']) == expected_log
    assert sorted(root['tags']) == manifest['tags']
    big = root['big']
    assert len(big) == manifest['n_big']
    for key, value in manifest['big_sample'].items():
        assert big[key] == value
    values, node = [], root['chain']
    # Bounded: a chain longer than expected (or a cycle) fails the assert.
    while node is not None and len(values) <= len(manifest['chain_values']):
        values.append(node.value)
        node = node.next
    assert values == manifest['chain_values']


@pytest.mark.parametrize('name', INTACT)
def test_fixture_opens_and_matches_the_manifest(name, manifest, fixture_copy):
    path = fixture_copy(name)
    expected = manifest['files'][name]
    assert detect_format(path) == expected['format']
    storage = open_storage(path, readonly=True)
    try:
        assert reachable_census(storage) == expected['census']
        # get_census counts every current record, unreachable ones too,
        # exactly as Durus 4.3 does (it finds 2 dropped Nodes there).
        census = dict((k.decode(), v) for k, v in get_census(storage).items())
        assert census == dict(expected['census'],
                              Node=23 + UNREACHABLE_NODES[name])
        check_contents(storage, manifest,
                       expected.get('log', manifest['log']))
    finally:
        storage.close()


@pytest.mark.parametrize('name', INTACT)
def test_fixture_survives_a_pack_done_here(name, manifest, fixture_copy):
    path = fixture_copy(name)
    expected = manifest['files'][name]
    storage = open_storage(path)
    storage.pack()
    storage.close()
    storage = open_storage(path, readonly=True)
    try:
        assert get_census(storage) == dict(
            (k.encode(), v) for k, v in expected['census'].items())
        check_contents(storage, manifest,
                       expected.get('log', manifest['log']))
    finally:
        storage.close()


def test_torn_fixture_is_refused_then_repaired(manifest, fixture_copy):
    path = fixture_copy('shelf-torn.durus')
    intact = manifest['files']['shelf-torn.durus']['intact_size']
    with open(path, 'rb') as f:
        original = f.read()
    for readonly in (True, False):
        with pytest.raises(DamagedFileError) as info:
            FileStorage(path, readonly=readonly)
        error = info.value
        assert (error.filename, error.offset, error.nbytes) == (
            path, intact, len(original) - intact)
        assert '--repair' in str(error) and str(intact) in str(error)
    damage = inspect_damage(path)
    assert (damage.offset, damage.nbytes) == (intact, len(original) - intact)
    with open(path, 'rb') as f:
        assert f.read() == original  # refusing and inspecting change nothing
    storage = FileStorage(path, repair=True)
    storage.close()
    assert os.path.getsize(path) == intact
    with open(path + '.torn-%d' % intact, 'rb') as f:
        assert f.read() == original[intact:]
    storage = FileStorage(path)
    try:
        assert reachable_census(storage) == \
            manifest['files']['shelf.durus']['census']
        check_contents(storage, manifest, manifest['log'])
        storage.pack()
        check_contents(storage, manifest, manifest['log'])
    finally:
        storage.close()
