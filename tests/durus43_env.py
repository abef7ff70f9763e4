"""A throwaway virtual environment holding the real Durus 4.3.

Interoperability tests run scripts under that interpreter.  The venv is
built once per machine in a cache directory (pip install durus==4.3
from the package index, C extension included) and reused afterwards.
When the package index cannot be reached the tests that need it skip
with that reason; any other failure is an error.
"""

import os
import subprocess
import sys
import textwrap

import pytest

CACHE_DIR = os.environ.get(
    'DURUS43_VENV',
    os.path.join(os.path.expanduser('~'), '.cache', 'durus-shell-tests',
                 'durus43-venv-py%d%d' % sys.version_info[:2]))

_UNREACHABLE_HINTS = (
    'Could not find a version', 'No matching distribution',
    'Failed to establish a new connection', 'Temporary failure in name resolution',
    'Network is unreachable', 'Connection refused', 'ProxyError',
)


def _python_path():
    return os.path.join(CACHE_DIR, 'bin', 'python')


def _is_ready():
    python = _python_path()
    if not os.path.exists(python):
        return False
    check = subprocess.run(
        [python, '-c', 'import durus, durus.persistent; '
                       'assert durus.__version__ == "4.3"'],
        capture_output=True)
    return check.returncode == 0


def ensure_durus43():
    """Path of a Python interpreter that imports the real Durus 4.3."""
    if _is_ready():
        return _python_path()
    subprocess.run([sys.executable, '-m', 'venv', '--clear', CACHE_DIR],
                   check=True, capture_output=True)
    result = subprocess.run(
        [_python_path(), '-m', 'pip', 'install', '--disable-pip-version-check',
         '-q', 'durus==4.3'],
        capture_output=True, text=True)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if any(hint in output for hint in _UNREACHABLE_HINTS):
            pytest.skip('durus==4.3 cannot be installed: the package index '
                        'is not reachable')
        raise RuntimeError('installing durus==4.3 failed:\n' + output)
    return _python_path()


def run_durus43(python, script, *args, timeout=120, check=True):
    """Run a Python snippet under Durus 4.3; return the CompletedProcess."""
    result = subprocess.run(
        [python, '-c', textwrap.dedent(script)] + [str(a) for a in args],
        capture_output=True, text=True, timeout=timeout,
        cwd=os.path.dirname(os.path.abspath(__file__)))
    if check and result.returncode != 0:
        raise AssertionError('Durus 4.3 script failed:\n' + result.stderr)
    return result
