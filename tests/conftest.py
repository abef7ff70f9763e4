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


@pytest.fixture(scope='session')
def durus43_python():
    """Interpreter path of a venv with the real Durus 4.3 (see durus43_env)."""
    from durus43_env import ensure_durus43
    return ensure_durus43()
