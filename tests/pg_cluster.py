"""Throwaway PostgreSQL clusters for the tests (and the benchmarks).

``PgCluster`` runs ``initdb`` into a fresh temporary directory and starts
the server on a Unix socket in that directory (``listen_addresses`` is
empty: nothing listens on the network), then ``stop()`` stops it with
``pg_ctl -m immediate`` and removes the directory.  PostgreSQL refuses to
run as root, so as root every server command runs as the ``postgres``
user (``runuser``) in a directory that user owns.

``session_cluster()`` is the one cluster a test session shares; each test
gets its own database in it (``new_database``).  Where the server
binaries are missing, ``require_binaries()`` skips with how to install
them (CI installs them, see .ci/run).
"""

import atexit
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time

INSTALL_HINT = ('PostgreSQL server binaries (initdb, pg_ctl) not found; '
                'install them with "apt-get install postgresql" (or set '
                'DURUS_PG_BINDIR to their directory) to run the PostgreSQL '
                'tests')
DRIVER_HINT = ("psycopg 3 is not installed: pip install -e '.[test]' "
               "installs it")
START_TIMEOUT = 30
RUN_AS = 'postgres'


def find_bindir():
    """The newest PostgreSQL server bin directory on this machine, or None."""
    explicit = os.environ.get('DURUS_PG_BINDIR')
    if explicit:
        return explicit if os.path.exists(os.path.join(explicit,
                                                       'initdb')) else None
    candidates = glob.glob('/usr/lib/postgresql/*/bin/initdb')
    candidates.sort(key=lambda p: _version_key(p.split('/')[-3]))
    if candidates:
        return os.path.dirname(candidates[-1])
    found = shutil.which('initdb')
    return os.path.dirname(found) if found else None


def _version_key(text):
    return [int(part) if part.isdigit() else 0 for part in text.split('.')]


def require_binaries():
    """The bin directory; pytest.skip with the install hint if missing."""
    bindir = find_bindir()
    if bindir is None:
        import pytest
        pytest.skip(INSTALL_HINT)
    return bindir


def _unprivileged_user():
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        raise RuntimeError('running as root, PostgreSQL needs an unprivileged '
                           'user: create the %r user (the postgresql '
                           'package does)' % RUN_AS)


class PgCluster(object):
    """One PostgreSQL server in its own temporary directory."""

    _numbers = itertools.count()

    def __init__(self, bindir=None, port=5432, settings=None, root=None,
                 data_from=None):
        """Start a server; ``settings`` are extra ``-c name=value``;
        ``data_from`` is a primary PgCluster to copy with pg_basebackup -R
        (the new cluster is then its streaming standby)."""
        self.bindir = bindir or require_binaries()
        self.user = _unprivileged_user()
        # Short: a Unix socket path must fit in about 107 bytes.
        self.root = root or tempfile.mkdtemp(prefix='dpg')
        self.owns_root = root is None
        self.data = os.path.join(self.root, 'data%d' % port)
        self.log = os.path.join(self.root, 'log%d' % port)
        self.port = port
        self.process_started = False
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        try:
            if data_from is None:
                self._run('initdb', '-D', self.data, '-A', 'trust', '-U',
                          'postgres', '--no-sync', '-E', 'UTF8',
                          '--no-instructions')
            else:
                self._run('pg_basebackup', '-h', data_from.root, '-p',
                          str(data_from.port), '-U', 'postgres', '-D',
                          self.data, '-R', '-X', 'stream', '-c', 'fast')
            options = ["-p %d" % port, "-k %s" % self.root,
                       "-c listen_addresses=''"]
            for name, value in (settings or {}).items():
                options.append("-c %s=%s" % (name, value))
            self.process_started = True
            self._run('pg_ctl', '-D', self.data, '-l', self.log, '-w', '-t',
                      str(START_TIMEOUT), '-o', ' '.join(options), 'start')
        except BaseException:
            self.stop()
            raise

    def _command(self, name, *args):
        command = [os.path.join(self.bindir, name)] + list(args)
        if self.user is not None:
            command = ['runuser', '-u', self.user.pw_name, '--'] + command
        return command

    def _run(self, name, *args, timeout=60):
        result = subprocess.run(self._command(name, *args),
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=timeout,
                                cwd=self.root)
        if result.returncode:
            raise RuntimeError('%s failed (%d): %s%s' % (
                name, result.returncode,
                result.stdout.decode(errors='replace'), self.log_text()))
        return result.stdout.decode(errors='replace')

    def log_text(self):
        try:
            with open(self.log, errors='replace') as f:
                return f.read()[-3000:]
        except OSError:
            return ''

    def dsn(self, dbname='postgres', **params):
        query = '&'.join('%s=%s' % item for item in params.items())
        return 'postgresql:///%s?host=%s&port=%d&user=postgres%s' % (
            dbname, self.root, self.port, '&' + query if query else '')

    def connect(self, dbname='postgres'):
        import psycopg
        return psycopg.connect(self.dsn(dbname), autocommit=True)

    def sql(self, statement, dbname='postgres'):
        with self.connect(dbname) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else None

    _db_numbers = itertools.count()
    _admin = None

    def new_database(self):
        """A fresh empty database; returns its name.  (FILE_COPY: with
        fsync off it takes a few ms.)"""
        name = 'd%d_%d' % (os.getpid(), next(self._db_numbers))
        if self._admin is None or self._admin.closed:
            self._admin = self.connect()
        self._admin.execute('CREATE DATABASE %s STRATEGY FILE_COPY' % name)
        return name

    _shared_db = None

    def new_dsn(self):
        """A dsn whose tables go to a fresh schema of a shared database:
        as good as an empty database for PgStorage, and much faster to
        make than one (CREATE DATABASE checkpoints)."""
        if self._shared_db is None:
            self._shared_db = self.new_database()
        name = 's%d' % next(self._db_numbers)
        self.sql('CREATE SCHEMA %s' % name, self._shared_db)
        return self.dsn(self._shared_db,
                        options='-csearch_path%%3D%s' % name)

    def promote(self):
        self._run('pg_ctl', '-D', self.data, '-w', 'promote')

    def stop_server(self, mode='immediate'):
        """Stop the server process, keeping the directory."""
        if self.process_started and os.path.exists(
                os.path.join(self.data, 'postmaster.pid')):
            subprocess.run(self._command('pg_ctl', '-D', self.data, '-m',
                                         mode, '-w', 'stop'),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60,
                           cwd=self.root)
        self.process_started = False

    def stop(self):
        """Stop the server and remove its directory; safe to call twice."""
        if self._admin is not None:
            self._admin.close()
        try:
            self.stop_server()
        finally:
            if self.owns_root and os.path.isdir(self.root):
                shutil.rmtree(self.root, ignore_errors=True)


_session = None


def session_cluster():
    """The cluster this process's tests share, started on first use and
    stopped at exit (and by conftest's session finish)."""
    global _session
    if _session is None:
        bindir = require_binaries()
        # Tests only: no fsync (a crash loses the throwaway cluster anyway).
        _session = PgCluster(bindir, settings={
            'fsync': 'off', 'synchronous_commit': 'off',
            'full_page_writes': 'off', 'max_connections': '60'})
        atexit.register(stop_session_cluster)
    return _session


def stop_session_cluster():
    global _session
    cluster, _session = _session, None
    if cluster is not None:
        cluster.stop()


def wait_until(predicate, timeout=10, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
