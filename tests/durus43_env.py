"""A throwaway virtual environment holding the real Durus 4.3.

Interoperability tests run scripts under that interpreter.  The venv is
built once per machine in a cache directory (pip install durus==4.3
from the package index, C extension included) and reused afterwards.
When the package index cannot be reached the tests that need it skip
with that reason; any other failure is an error.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

# Durus 4.3 assigns Unpickler.persistent_load and Pickler.persistent_id on
# plain instances, which Python 3.13 made read-only: it cannot read or
# write records there.  On such a Python its venv is built with an older
# interpreter from PATH; compatibility is about bytes on disk and on the
# wire, which do not depend on which Python runs the other side.
LAST_PYTHON_FOR_DURUS43 = (3, 12)
OLDER_PYTHONS = ('python3.12', 'python3.11', 'python3.10')


def _version_of(python):
    """(major, minor) of an interpreter, or None if it does not run (a
    pyenv shim for a version that is not selected exits with 127)."""
    try:
        result = subprocess.run(
            [python, '-c', 'import sys; print("%d %d" % sys.version_info[:2])'],
            capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    if result.returncode != 0:
        return None
    return tuple(int(part) for part in result.stdout.split())


def _host_python():
    """(interpreter, (major, minor)) that Durus 4.3 runs on: this one if it
    can, else an older one found on PATH; None if there is none."""
    if sys.version_info[:2] <= LAST_PYTHON_FOR_DURUS43:
        return sys.executable, sys.version_info[:2]
    for name in OLDER_PYTHONS:
        found = shutil.which(name)
        version = found and _version_of(found)
        if version and version <= LAST_PYTHON_FOR_DURUS43:
            return found, version
    return None


CACHE_DIR = os.environ.get('DURUS43_VENV')
# Building the venv once (pip install durus==4.3, a C extension) happens
# inside the first test that needs it; conftest's timeout hook gives that
# test this much more time.
INSTALL_TIMEOUT = 240

_UNREACHABLE_HINTS = (
    'Could not find a version', 'No matching distribution',
    'Failed to establish a new connection', 'Temporary failure in name resolution',
    'Network is unreachable', 'Connection refused', 'ProxyError',
)


def _cache_dir(version):
    if CACHE_DIR:
        return CACHE_DIR
    return os.path.join(os.path.expanduser('~'), '.cache',
                        'durus-shell-tests', 'durus43-venv-py%d%d' % version)


def _python_path(cache_dir):
    return os.path.join(cache_dir, 'bin', 'python')


def _is_ready(cache_dir):
    python = _python_path(cache_dir)
    if not os.path.exists(python):
        return False
    check = subprocess.run(
        [python, '-c', 'import durus, durus.persistent; '
                       'assert durus.__version__ == "4.3"'],
        capture_output=True, timeout=60)
    return check.returncode == 0


def ensure_durus43():
    """Path of a Python interpreter that imports the real Durus 4.3."""
    found = _host_python()
    if found is None:
        pytest.skip('Durus 4.3 does not run on Python %d.%d (it assigns '
                    'Unpickler.persistent_load, read-only since 3.13) and no '
                    'python3.10-3.12 is on PATH to run it'
                    % sys.version_info[:2])
    host, version = found
    cache_dir = _cache_dir(version)
    if _is_ready(cache_dir):
        return _python_path(cache_dir)
    subprocess.run([host, '-m', 'venv', '--clear', cache_dir],
                   check=True, capture_output=True, timeout=INSTALL_TIMEOUT)
    result = subprocess.run(
        [_python_path(cache_dir), '-m', 'pip', 'install',
         '--disable-pip-version-check', '-q', 'durus==4.3'],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if any(hint in output for hint in _UNREACHABLE_HINTS):
            pytest.skip('durus==4.3 cannot be installed: the package index '
                        'is not reachable')
        raise RuntimeError('installing durus==4.3 failed:\n' + output)
    return _python_path(cache_dir)


def run_durus43(python, script, *args, timeout=120, check=True):
    """Run a Python snippet under Durus 4.3; return the CompletedProcess."""
    result = subprocess.run(
        [python, '-c', textwrap.dedent(script)] + [str(a) for a in args],
        capture_output=True, text=True, timeout=timeout,
        cwd=os.path.dirname(os.path.abspath(__file__)))
    if check and result.returncode != 0:
        raise AssertionError('Durus 4.3 script failed:\n' + result.stderr)
    return result
