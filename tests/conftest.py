import json
import os
import shutil
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(TESTS_DIR, 'data')
FIXTURES_DIR = os.path.join(DATA_DIR, 'durus43')

# fixture_app.models lives beside the tests; the fixture files name it.
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)


def pytest_report_header(config):
    # Which implementation this run tests (.ci/run runs the suite on both).
    from durus._accel import speedups
    return 'durus path: %s' % ('compiled (durus._speedups)' if speedups
                               else 'pure Python')


@pytest.fixture(scope='session')
def manifest():
    with open(os.path.join(FIXTURES_DIR, 'manifest.json')) as f:
        return json.load(f)


@pytest.fixture
def fixture_copy(tmp_path):
    """Return a function that copies a Durus 4.3 fixture into tmp_path."""
    def copy(name):
        target = tmp_path / name
        shutil.copyfile(os.path.join(FIXTURES_DIR, name), target)
        return str(target)
    return copy


@pytest.fixture
def shelf_server(fixture_copy, tmp_path):
    """A `durus -s` process serving a copy of the 4.3 fixture shelf.durus
    on a free loopback port; yields 'host:port' and stops it after the
    test, even a failed one."""
    from server_process import ServerProcess, free_port
    path = fixture_copy('shelf.durus')
    port = free_port()
    process = ServerProcess(['--file', path, '--port', str(port)],
                            tmp_path / 'server.log')
    try:
        yield '127.0.0.1:%d' % port
    finally:
        process.stop()


@pytest.fixture(scope='session')
def durus43_python():
    """Interpreter path of a venv with the real Durus 4.3 (see durus43_env)."""
    from durus43_env import ensure_durus43
    return ensure_durus43()


def pytest_collection_modifyitems(config, items):
    """A test that uses the Durus 4.3 venv may be the one that builds it
    (pip install durus==4.3, see durus43_env): it gets the install's time
    on top of the default per-test timeout, unless it sets its own."""
    if not config.pluginmanager.hasplugin('timeout'):
        return
    from durus43_env import INSTALL_TIMEOUT
    default = float(config.getini('timeout') or 0)
    if not default:
        return
    for item in items:
        if ('durus43_python' in getattr(item, 'fixturenames', ())
                and item.get_closest_marker('timeout') is None):
            item.add_marker(pytest.mark.timeout(default + INSTALL_TIMEOUT))


def pytest_sessionfinish(session, exitstatus):
    """Stop the shared throwaway PostgreSQL cluster (if a test started
    one), whatever the outcome."""
    import pg_cluster
    pg_cluster.stop_session_cluster()
