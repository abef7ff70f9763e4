"""Methods that Durus 4.3 defines in Python take their arguments by
keyword too (tree.__getitem__(key=k), connection.load_state(obj=o)); the
compiled twins that replace some of them must accept the same call forms
and fail the same way, on both paths.  The signature comparer of
test_api_parity.py sees these only where inspect can read a compiled
method's signature (always since the text signatures; 3.13 guessed one)."""

import inspect
import os
import sys

import pytest

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import TempFileStorage
from durus.persistent import Persistent

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'parity'))
from api_compare import signature_problems  # noqa: E402


class Thing(Persistent):
    pass


def test_btree_lookups_by_keyword():
    tree = BTree()
    tree[3] = 'three'
    assert tree.__getitem__(key=3) == 'three'
    assert tree.__contains__(key=3) is True
    assert tree.has_key(key=4) is False
    with pytest.raises(KeyError):
        tree.__getitem__(key=4)
    with pytest.raises(TypeError, match='key'):
        tree.__getitem__()
    with pytest.raises(TypeError):
        tree.__getitem__(3, key=3)
    with pytest.raises(TypeError):
        tree.__contains__(kee=3)


def test_setstate_by_keyword():
    thing = Thing()
    thing.__setstate__(state={'name': 'x'})
    assert thing.name == 'x'
    with pytest.raises(TypeError):
        thing.__setstate__()


def test_load_state_by_keyword(tmp_path):
    connection = Connection(TempFileStorage())
    connection.get_root()['thing'] = Thing()
    connection.get_root()['thing'].name = 'stored'
    connection.commit()
    thing = connection.get_root()['thing']
    thing._p_set_status_ghost()
    connection.load_state(obj=thing)
    assert not thing._p_is_ghost()
    assert vars(thing)['name'] == 'stored'
    with pytest.raises(TypeError):
        connection.load_state()


@pytest.mark.parametrize('method', [
    BTree.__getitem__, BTree.__contains__, BTree.has_key,
    Connection.load_state, Thing.__setstate__])
def test_signatures_name_the_arguments_as_durus43(method):
    try:
        signature = inspect.signature(method)
    except ValueError:
        pytest.fail('no signature for %r' % method)
    positional = [p for p in signature.parameters.values()
                  if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert [p.name for p in positional][0] == 'self' and len(positional) == 2
    assert positional[1].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


def _params(*specs):
    return [(name, kind, None, False) for name, kind in specs]


def test_comparer_passes_self_but_not_other_positional_only_arguments():
    theirs = _params(('self', 'POSITIONAL_OR_KEYWORD'),
                     ('key', 'POSITIONAL_OR_KEYWORD'))
    ours_keyword = _params(('self', 'POSITIONAL_ONLY'),
                           ('key', 'POSITIONAL_OR_KEYWORD'))
    ours_positional = _params(('self', 'POSITIONAL_ONLY'),
                              ('key', 'POSITIONAL_ONLY'))
    assert signature_problems(theirs, ours_keyword) == []
    assert signature_problems(theirs, ours_positional) == [
        "no keyword argument 'key'"]
