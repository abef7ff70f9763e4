"""Every public name of Durus 4.3 exists here and accepts the same calls.

The real Durus 4.3 (the venv of durus43_env) and this package each
describe themselves with tests/parity/api_dump.py; api_compare.py lists
what 4.3 has that is missing here or accepts fewer call forms: every
module-level name, class, base class, collections.abc interface, member
(method, property, attribute, constant) and signature (positional names
and order, optional arguments and their literal defaults, *args and
**kwargs).  A difference is either fixed or listed below with the reason
docs/differences.md gives.
"""

import json
import os
import subprocess
import sys

import pytest

from durus43_env import run_durus43

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
PARITY = os.path.join(TESTS, 'parity')
sys.path.insert(0, PARITY)
from api_compare import compare  # noqa: E402

# Every module of the durus 4.3 package (checked against the installed
# package below); one test each, so a failure names its module.
DURUS43_MODULES = [
    'durus', 'durus.__main__', 'durus.btree', 'durus.client_storage',
    'durus.connection', 'durus.error', 'durus.file', 'durus.file_storage',
    'durus.file_storage2', 'durus.logger', 'durus.persistent',
    'durus.persistent_dict', 'durus.persistent_list', 'durus.persistent_set',
    'durus.serialize', 'durus.shelf', 'durus.sqlite_storage',
    'durus.storage', 'durus.storage_server', 'durus.systemd_socket',
    'durus.utils',
]

LIST_MODULES = '''
import durus, pkgutil
print(' '.join(sorted(m.name for m in pkgutil.iter_modules(durus.__path__))))
'''

# Standard-library names that 4.3's modules import for their own use
# (os.getpid, heapq.heappush, struct.pack...) are not durus API: import
# them from the standard library.  This reason is in docs/differences.md.
FOREIGN_REASON = ('names Durus 4.3 modules import from the standard library '
                  'for their own use are not re-exported')

SERVER_REASON = ('the storage server is event-driven: the commands are '
                 'carried out by `durus.server_core.ServerCore`, fed parsed '
                 'requests; there are no per-command socket handlers')

# (where, message) -> the reason docs/differences.md gives for it; `where`
# names the module that defines the name in 4.3.
ALLOWED = {
    ('durus.logger.INFO', 'missing'): FOREIGN_REASON,
    ('durus.persistent.stderr', 'missing'): FOREIGN_REASON,
    ('durus.storage_server.StorageServer.handle', 'missing'): SERVER_REASON,
}
for _command in 'BCLMNPQSV':
    ALLOWED['durus.storage_server.StorageServer.handle_' + _command,
            'missing'] = SERVER_REASON


def dump_api(python, cwd, env=None):
    result = subprocess.run(
        [python, os.path.join(PARITY, 'api_dump.py')] + DURUS43_MODULES,
        capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope='module')
def comparison(durus43_python):
    theirs = dump_api(durus43_python, TESTS)
    ours = dump_api(sys.executable, REPO,
                    env=dict(os.environ, PYTHONPATH=REPO))
    return compare(theirs, ours), theirs


def owner_of(where):
    """The module a difference belongs to: for a name re-exported from
    another module of 4.3's (durus.file_storage.Shelf), that module."""
    for module in sorted(DURUS43_MODULES, key=len, reverse=True):
        if where == module or where.startswith(module + '.'):
            return module
    raise AssertionError(where)


def test_the_module_list_is_durus43s(durus43_python):
    listed = run_durus43(durus43_python, LIST_MODULES).stdout.split()
    expected = sorted(name.split('.', 1)[1] for name in DURUS43_MODULES
                      if name != 'durus')
    assert [n for n in listed if not n.startswith('_') or n == '__main__'] \
        == expected


def is_allowed(where, message, theirs):
    return (origin_where(where, theirs), message) in ALLOWED


def unexplained(result, theirs, module):
    lines = []
    for where, message in result.differences:
        if owner_of(origin_where(where, theirs)) != module:
            continue
        if is_allowed(where, message, theirs):
            continue
        lines.append('%s: %s' % (where, message))
    return lines


def origin_where(where, theirs):
    """`where` renamed to the module that defines the name in 4.3."""
    module = owner_of(where)
    rest = where[len(module) + 1:]
    name = rest.split('.')[0].rstrip('()')
    entry = theirs.get(module, {}).get('names', {}).get(name, {})
    origin = entry.get('origin')
    if origin and origin in DURUS43_MODULES and origin != module:
        return origin + '.' + rest
    return where


@pytest.mark.parametrize('module', DURUS43_MODULES)
def test_api_matches_durus43(comparison, module):
    result, theirs = comparison
    lines = unexplained(result, theirs, module)
    assert not lines, ('%d differences from Durus 4.3 (fix them, or list '
                       'them in ALLOWED with the reason docs/differences.md '
                       'gives):\n' % len(lines)) + '\n'.join(lines)


def test_allowed_differences_still_exist_and_are_documented(comparison):
    result, theirs = comparison
    with open(os.path.join(REPO, 'docs', 'differences.md')) as f:
        docs = ' '.join(f.read().lower().split())
    found = {(origin_where(where, theirs), message)
             for where, message in result.differences}
    stale = [key for key in ALLOWED if key not in found]
    assert not stale, 'fixed, remove from ALLOWED: %s' % stale
    for reason in set(ALLOWED.values()) | {FOREIGN_REASON}:
        assert reason.lower() in docs, \
            'docs/differences.md does not say: ' + reason


def test_names_present(comparison):
    """All but the standard-library re-exports are present."""
    result, theirs = comparison
    missing = [where for where, message in result.differences
               if message == 'missing'
               and not is_allowed(where, message, theirs)]
    print('Durus 4.3 public names present here: %d of %d (%.1f%%); not '
          're-exported from the standard library: %d'
          % (result.present, result.total,
             100.0 * result.present / result.total,
             len(result.foreign_missing)))
    assert not missing, '\n'.join(missing)
