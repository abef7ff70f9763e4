"""Every module of both packages imports first, in a fresh interpreter.

An import cycle between two modules only shows when one particular module
is the first imported (``import durus.utils`` failed that way while
``import durus.error`` first worked), so each module gets its own process.
"""

import os
import pkgutil
import subprocess
import sys

import pytest

import durus
import durus_shell

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules(package):
    yield package.__name__
    for info in pkgutil.iter_modules(package.__path__):
        if info.name == '__main__':  # importing it runs the program
            continue
        yield '%s.%s' % (package.__name__, info.name)


MODULES = sorted(set(_modules(durus)) | set(_modules(durus_shell)))


def test_modules_are_found():
    assert 'durus.utils' in MODULES and 'durus_shell.session' in MODULES


def test_each_module_imports_first_in_a_fresh_interpreter():
    script = ('import importlib, sys\n'
              'failed = []\n'
              'for name in sys.argv[1:]:\n'
              '    for loaded in [m for m in sys.modules\n'
              '                   if m.split(".")[0] in ("durus", "durus_shell")]:\n'
              '        del sys.modules[loaded]\n'
              '    try:\n'
              '        importlib.import_module(name)\n'
              '    except ImportError as error:\n'
              '        failed.append("%s: %s" % (name, error))\n'
              'print("\\n".join(failed))\n')
    # Optional dependencies (psycopg for PgStorage) may be missing: only
    # failures that name a durus module count.
    result = subprocess.run([sys.executable, '-c', script] + MODULES,
                            cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    failures = [line for line in result.stdout.splitlines()
                if line and 'durus' in line.split(':', 1)[1]]
    assert not failures, '\n'.join(failures)


def test_opening_a_file_does_not_import_logging_or_sockets():
    # Start-up cost of every process that opens a database (the packed
    # open row of bench/): names Durus 4.3 re-exported from these modules
    # (is_logging, ...) are imported only when asked for.
    script = ('import sys\n'
              'import durus.connection, durus.file_storage, '
              'durus.file_storage2\n'
              'print(" ".join(m for m in ("logging", "socket", "ssl", '
              '"threading") if m in sys.modules))\n')
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
    import durus.file_storage
    assert durus.file_storage.is_logging.__module__ == 'durus.logger'
