"""The throwaway virtual environment that holds the real Durus 4.3.

Built once in bench/.durus43-venv (gitignored) with pip from the package
index, then reused.  The C extension must import: without it the
comparison would be against 4.3's slow pure-Python fallback, which is not
what users run.
"""

import os
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
VENV_DIR = os.path.join(BENCH_DIR, '.durus43-venv')
PYTHON = os.path.join(VENV_DIR, 'bin', 'python')

# Run from a neutral directory with -I so neither the current directory nor
# PYTHONPATH can put this repository's durus package in front of 4.3's.
CHECK = ('import durus, durus._persistent, durus.persistent as p; '
         'assert durus.__version__ == "4.3", durus.__version__; '
         'assert p.PersistentBase is durus._persistent.PersistentBase; '
         'print(durus.__file__)')


def is_ready():
    if not os.path.exists(PYTHON):
        return False
    result = subprocess.run([PYTHON, '-I', '-c', CHECK], capture_output=True,
                            text=True, cwd='/')
    return result.returncode == 0 and VENV_DIR in result.stdout


def ensure():
    """Path of the interpreter running Durus 4.3 (built on first use)."""
    if is_ready():
        return PYTHON
    print('creating %s with durus==4.3 (once)...' % VENV_DIR, file=sys.stderr)
    subprocess.run([sys.executable, '-m', 'venv', '--clear', VENV_DIR], check=True)
    subprocess.run([PYTHON, '-m', 'pip', 'install', '-q',
                    '--disable-pip-version-check', '--no-cache-dir',
                    'durus==4.3'], check=True, cwd='/')
    if not is_ready():
        result = subprocess.run([PYTHON, '-I', '-c', CHECK], capture_output=True,
                                text=True, cwd='/')
        raise SystemExit('Durus 4.3 installed without a working C extension '
                         '(a C compiler and Python headers are needed):\n'
                         + result.stderr)
    return PYTHON


if __name__ == '__main__':
    print(ensure())
