"""PgStorage: a Durus storage in a PostgreSQL database (docs/postgresql.md).

It keeps the semantics of a ClientStorage talking to a Durus server:

* Each PgStorage has a snapshot number ``last_tid``: the newest commit it
  has heard of (by ``sync()``, by its own commit, or when opened).  Every
  commit gets a tid larger than all earlier ones and stamps it on the rows
  it writes.  A load of a row stamped after ``last_tid`` raises
  ReadConflictError (the server's "invalid" answer); ``sync()`` returns the
  oids stamped after ``last_tid`` and moves ``last_tid`` on.
* A commit takes one global transaction-scoped advisory lock (what the
  Durus server's single thread does), reads what others committed since
  ``last_tid``, lets the Connection decide (``handle_invalidations`` may
  raise WriteConflictError, then nothing is written), writes its rows and
  commits: two pipelined round trips.
* Loads and sync are single autocommit statements: no transaction is
  left open between requests.
* Pack marks in SQL over the reference arrays (no unpickling), then
  sweeps in batches, each under the commit lock; removed objects become
  tombstones (no data) with a fresh tid, so other clients hear of them
  through ``sync()``; the next pack deletes them.

The driver is psycopg 3, imported when a PgStorage is made: the durus
package itself needs only the standard library.
"""

import random
import struct
import time

from durus.error import (
    DurusError, DurusKeyError, ReadConflictError, ReadOnlyError,
    UnexpectedOidError, UnknownFormatError)
from durus.prefetch import Prefetcher
from durus.serialize import RecordError, unpack_record
from durus.storage import PendingChanges, Storage
from durus.utils import check_oid

SCHEMA_VERSION = '1'
FORMAT_NAME = 'durus-pg'
# Advisory lock keys: (Durus namespace, which lock).
LOCK_NAMESPACE = 17493
COMMIT_LOCK = 1
PACK_LOCK = 2
CREATE_LOCK = 3
OID_BLOCK = 32
PACK_BATCH = 10000
INSTALL_HINT = ("PgStorage needs psycopg 3: pip install "
                "'durus-shell[postgresql]'")

_int4 = struct.Struct('>I')

SCHEMA = [
    """CREATE TABLE durus_meta (
        key text PRIMARY KEY,
        value text NOT NULL)""",
    # zoid: the 8-byte oid read as a signed big-endian int64.  tid: the
    # commit that last wrote the row.  data IS NULL: removed by a pack.
    """CREATE TABLE durus_object (
        zoid bigint PRIMARY KEY,
        tid bigint NOT NULL,
        data bytea,
        refs bigint[] NOT NULL DEFAULT '{}'
    ) WITH (fillfactor = 90)""",
    # Durus records are compressed already: don't let TOAST try again.
    "ALTER TABLE durus_object ALTER data SET STORAGE EXTERNAL",
    "CREATE INDEX durus_object_tid ON durus_object (tid)",
    # One row per commit (pruned by pack): the source of new tids, and
    # how a client that lost its connection during COMMIT learns whether
    # the commit happened.
    "CREATE TABLE durus_commit (tid bigint PRIMARY KEY)",
    "CREATE SEQUENCE durus_oid_seq MINVALUE 0 START 0",
]


class MissingDriverError(DurusError, ImportError):
    """psycopg 3 is not installed."""


class PgConnectionError(DurusError, ConnectionError):
    """PostgreSQL cannot be reached, or the connection was lost.

    When raised by a commit, the commit was not made.
    """


class CommitUnknownError(DurusError):
    """The connection was lost after the COMMIT was sent and no server
    could be reached again to learn whether it was made."""


class StaleStorageError(DurusError):
    """The PostgreSQL server now answering has lost commits this client
    already saw (an asynchronous standby was promoted): open a new
    Connection."""


class CommitLockTimeout(DurusError):
    """The commit lock was not obtained in time (another commit or a pack
    holds it); nothing was written, the commit can be retried."""


def import_psycopg():
    try:
        import psycopg
    except ImportError:
        raise MissingDriverError(INSTALL_HINT) from None
    return psycopg


def oid_to_int(oid):
    """The signed bigint of ``oid``; a TypeError or ValueError naming it
    when it is not 8 bytes."""
    check_oid(oid)
    return int.from_bytes(oid, 'big', signed=True)


def int_to_oid(number):
    return number.to_bytes(8, 'big', signed=True)


def _record(zoid, data, refs):
    """Rebuild the record bytes from a row (a hostile row is an error)."""
    if data is None:
        raise DurusKeyError(int_to_oid(zoid))
    try:
        trailer = struct.pack('>%dq' % len(refs), *refs)
    except (struct.error, TypeError):
        raise RecordError('durus_object row %d has a bad refs array'
                          % zoid) from None
    return b''.join((int_to_oid(zoid), _int4.pack(len(data)), data,
                     trailer))


def _split(oid, record):
    """``(zoid, data, refs)`` for storing ``record`` under ``oid``."""
    check_oid(oid)
    record_oid, data, refs = unpack_record(record)
    if record_oid != oid:
        raise UnexpectedOidError('the record stored under oid %r starts '
                                 'with oid %r' % (oid, record_oid))
    return (oid_to_int(oid), data,
            list(struct.unpack('>%dq' % (len(refs) // 8), refs)))


def safe_dsn(dsn):
    """``dsn`` without its password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
        params = conninfo_to_dict(dsn)
    except Exception:
        return '<connection string>'
    if 'password' in params:
        params['password'] = '***'
    return make_conninfo('', **params)


_UPSERT = ('INSERT INTO durus_object (zoid, tid, data, refs) '
           'VALUES (%s::bigint, %s::bigint, %s, %s::bigint[]) ON CONFLICT (zoid) DO UPDATE '
           'SET tid = EXCLUDED.tid, data = EXCLUDED.data, '
           'refs = EXCLUDED.refs')
_NEXT_TID = ('SELECT greatest(coalesce(max(tid), 0) + 1, '
             '(extract(epoch FROM clock_timestamp()) * 1e6)::bigint) '
             'FROM durus_commit')
# In a transaction of its own: an xid and a WAL record, so that its commit
# waits (per synchronous_commit) for the WAL up to it to be durable.
_WAIT_DURABLE = ("SELECT pg_current_xact_id(), "
                 "pg_logical_emit_message(false, 'durus', '')")
_LSN = "(pg_current_wal_insert_lsn() - '0/0')::bigint"
_REPLAY_LSN = "coalesce((pg_last_wal_replay_lsn() - '0/0')::bigint, -1)"


class _Replica(object):
    """A hot standby that serves loads while it has replayed far enough."""

    RETRY_AFTER = 5.0

    def __init__(self, dsn):
        self.dsn = dsn
        self.conn = None
        self.replayed = -1      # a replay position it had certainly reached
        self.down_until = 0.0


class PgStorage(Storage):
    """The Durus database in the PostgreSQL database named by ``dsn``.

    ``dsn``: a libpq connection string or ``postgresql://`` URL, passed to
    libpq unchanged (several hosts plus ``target_session_attrs=read-write``
    for failover).  ``create=True`` makes the schema if it is missing.
    ``replica_dsn``: one or several hot standbys that serve loads.
    """

    # Any oid may be stored (the oid sequence is moved past it): durus
    # copy need not reserve oids first.
    accepts_any_oid = True

    def __init__(self, dsn, create=False, readonly=False, replica_dsn=None,
                 lock_timeout=30.0, connect_timeout=10,
                 reconnect_timeout=30.0, replica_wait=0.05,
                 prepare_threshold=5):
        self.psycopg = import_psycopg()
        self.dsn = dsn
        self.readonly = readonly
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.replica_wait = replica_wait
        self.prepare_threshold = prepare_threshold
        self.records = {}
        self.prefetcher = Prefetcher()
        self.oid_pool = []
        self.max_oid_given = -1
        self.last_tid = 0
        self.need_lsn = 0       # WAL position a replica must have replayed
        if isinstance(replica_dsn, str):
            replica_dsn = [replica_dsn]
        self.replicas = [_Replica(r) for r in (replica_dsn or ())]
        # Statements that read records, by where they went (for tests and
        # tuning).
        self.reads = {'primary': 0, 'replica': 0}
        self.reconnects = 0
        random.shuffle(self.replicas)   # spread clients over replicas
        self.conn = None
        self.conn = self._connect(dsn)
        try:
            self._check_schema(create)
            row = self.conn.execute('SELECT coalesce(max(tid), 0), %s FROM '
                                    'durus_commit' % _LSN).fetchone()
            self.last_tid, self.need_lsn = row
        except BaseException:
            self.conn.close()
            raise

    def __str__(self):
        return 'PgStorage(%s)' % safe_dsn(self.dsn)

    # Connections --------------------------------------------------------

    def _connect(self, dsn):
        psycopg = self.psycopg
        try:
            conn = psycopg.connect(dsn, autocommit=True,
                                   connect_timeout=self.connect_timeout,
                                   prepare_threshold=self.prepare_threshold)
        except psycopg.Error as error:
            raise PgConnectionError('cannot connect to PostgreSQL at %s: %s'
                                    % (safe_dsn(dsn), _one_line(error))
                                    ) from None
        settings = ["SET lock_timeout = %d" % int(self.lock_timeout * 1000),
                    "SET idle_in_transaction_session_timeout = 60000"]
        if self.readonly:
            settings.append('SET default_transaction_read_only = on')
        conn.execute('; '.join(settings))
        return conn

    def _lost(self, error):
        """Whether ``error`` means the primary connection is gone (closed,
        broken, or the server shutting down)."""
        state = getattr(error, 'sqlstate', None) or ''
        return (self.conn is None or self.conn.broken or self.conn.closed
                or state.startswith(('08', '57P')))

    def _reconnect(self):
        """Connect again (libpq tries the hosts of the dsn in order), for
        at most ``reconnect_timeout`` seconds; refuse a server that lost
        commits this client saw."""
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.reconnects += 1
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            try:
                self.conn = self._connect(self.dsn)
                break
            except PgConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        newest = self.conn.execute(
            'SELECT coalesce(max(tid), 0) FROM durus_commit').fetchone()[0]
        if newest < self.last_tid:
            self.conn.close()
            self.conn = None
            raise StaleStorageError(
                'the PostgreSQL server at %s has lost commits this client '
                'already saw (newest commit %d, this client saw %d): an '
                'asynchronous standby was promoted; open a new Connection'
                % (safe_dsn(self.dsn), newest, self.last_tid))
        for replica in self.replicas:
            replica.replayed = -1   # possibly another timeline now

    def _primary(self, work):
        """``work(conn)`` on the primary, once more after a reconnect if
        the connection was lost (only for statements that change
        nothing)."""
        psycopg = self.psycopg
        if self.conn is None:
            self._reconnect()
        try:
            return work(self.conn)
        except psycopg.OperationalError as error:
            if not self._lost(error):
                raise
        self._reconnect()
        try:
            return work(self.conn)
        except psycopg.OperationalError as error:
            raise PgConnectionError('lost the connection to PostgreSQL at '
                                    '%s: %s' % (safe_dsn(self.dsn),
                                                _one_line(error))) from None

    def _read(self, sql, params):
        """Rows of a read-only statement, from a replica that has
        replayed up to ``need_lsn`` if there is one, else the primary.
        The statement's last column is the replica's replay position."""
        for replica in self.replicas:
            rows = self._read_replica(replica, sql, params)
            if rows is not None:
                self.reads['replica'] += 1
                return rows
        self.reads['primary'] += 1
        return self._primary(lambda conn: conn.execute(
            sql % ('-1',), params, binary=True).fetchall())

    def _read_replica(self, replica, sql, params):
        psycopg = self.psycopg
        if replica.down_until > time.monotonic():
            return None
        try:
            if replica.conn is None:
                try:
                    replica.conn = self._connect(replica.dsn)
                except PgConnectionError:
                    replica.down_until = (time.monotonic()
                                          + replica.RETRY_AFTER)
                    return None
            if replica.replayed < self.need_lsn and not self._wait_replay(
                    replica):
                return None
            rows = replica.conn.execute(sql % (_REPLAY_LSN,), params,
                                        binary=True).fetchall()
        except (psycopg.Error, PgConnectionError):
            # Down, or a query cancelled by recovery: the primary answers.
            if replica.conn is not None and (replica.conn.broken
                                             or replica.conn.closed):
                replica.conn.close()
                replica.conn = None
                replica.down_until = time.monotonic() + replica.RETRY_AFTER
            return None
        if rows:
            # Evaluated after the statement's snapshot: a bound for the next.
            replica.replayed = max(replica.replayed, rows[0][-1])
        return rows

    def _wait_replay(self, replica):
        """Whether ``replica`` has replayed ``need_lsn``, polling for at
        most ``replica_wait`` seconds.  The position is read before the
        next statement's snapshot, so that statement sees all of it."""
        deadline = time.monotonic() + self.replica_wait
        while True:
            replica.replayed = replica.conn.execute(
                'SELECT %s' % _REPLAY_LSN).fetchone()[0]
            if replica.replayed >= self.need_lsn:
                return True
            if replica.replayed < 0 or time.monotonic() >= deadline:
                return False
            time.sleep(0.002)

    # Loads ----------------------------------------------------------------

    def _check(self, zoid, tid, data, refs):
        if tid is None or data is None:
            raise DurusKeyError(int_to_oid(zoid))
        if tid > self.last_tid:
            raise ReadConflictError([int_to_oid(zoid)])
        return _record(zoid, data, refs)

    def load(self, oid):
        """The record of ``oid``; siblings of a container being walked
        come along in the same statement (durus.prefetch), kept until
        the next sync or commit."""
        prefetcher = self.prefetcher
        record = prefetcher.take(oid)
        if record is None:
            siblings = prefetcher.siblings_to_fetch_with(oid)
            if siblings:
                records = self._load_many([oid] + siblings)
                for sibling in siblings:
                    kept = records.get(oid_to_int(sibling))
                    if kept is not None and kept[0] is not None:
                        try:
                            prefetcher.keep(sibling, self._check(
                                oid_to_int(sibling), *kept))
                        except (DurusKeyError, ReadConflictError):
                            pass    # raised if and when it is asked for
                zoid = oid_to_int(oid)
                record = self._check(zoid, *records.get(
                    zoid, (None, None, None)))
            else:
                record = self._load_one(oid)
        prefetcher.note_record(oid, record)
        return record

    def _load_one(self, oid):
        zoid = oid_to_int(oid)
        rows = self._read(
            'SELECT o.tid, o.data, o.refs, %s FROM (SELECT 1) AS one '
            'LEFT JOIN durus_object o ON o.zoid = %%s::bigint', (zoid,))
        tid, data, refs, _ = rows[0]
        return self._check(zoid, tid, data, refs)

    def _load_many(self, oids):
        """``{zoid: (tid, data, refs)}`` of the rows of ``oids``."""
        zoids = [oid_to_int(oid) for oid in oids]
        found = {}
        for start in range(0, len(zoids), 1000):
            chunk = zoids[start:start + 1000]
            rows = self._read(
                'SELECT o.zoid, o.tid, o.data, o.refs, %s FROM (SELECT 1) '
                'AS one LEFT JOIN durus_object o ON o.zoid = '
                'ANY(%%s::bigint[])', (chunk,))
            for zoid, tid, data, refs, _ in rows:
                if zoid is not None:
                    found[zoid] = (tid, data, refs)
        return found

    def bulk_load(self, oids):
        """The records of ``oids`` in order; missing or changed ones raise
        when their turn comes, as with ClientStorage."""
        oids = list(oids)
        found = self._load_many(oids)
        for oid in oids:
            zoid = oid_to_int(oid)
            tid, data, refs = found.get(zoid, (None, None, None))
            yield self._check(zoid, tid, data, refs)

    def gen_oid_record(self, start_oid=None, batch_size=100):
        """Every current record (``start_oid`` None), read from one
        consistent snapshot on a connection of its own; or the records
        reachable from ``start_oid``."""
        if start_oid is not None:
            return Storage.gen_oid_record(self, start_oid, batch_size)
        return self._gen_all_records()

    def _gen_all_records(self):
        conn = self._connect(self.dsn)
        try:
            with conn.transaction():
                conn.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE '
                             'READ, READ ONLY')
                with conn.cursor(name='durus_all_records',
                                 binary=True) as cursor:
                    cursor.itersize = 1000
                    cursor.execute('SELECT zoid, data, refs FROM '
                                   'durus_object WHERE data IS NOT NULL '
                                   'ORDER BY zoid')
                    for zoid, data, refs in cursor:
                        yield int_to_oid(zoid), _record(zoid, data, refs)
        finally:
            conn.close()

    def get_object_count(self):
        return self._primary(lambda conn: conn.execute(
            'SELECT count(*) FROM durus_object WHERE data IS NOT NULL'
        ).fetchone()[0])

    # Oids ---------------------------------------------------------------

    def new_oid(self):
        if not self.oid_pool:
            rows = self._primary(lambda conn: conn.execute(
                "SELECT nextval('durus_oid_seq') FROM generate_series(1, "
                "%d)" % OID_BLOCK).fetchall())
            self.oid_pool = sorted((row[0] for row in rows), reverse=True)
            self.max_oid_given = max(self.max_oid_given, self.oid_pool[0])
        return int_to_oid(self.oid_pool.pop())

    # Commits ------------------------------------------------------------

    def begin(self):
        self.records = {}

    def store(self, oid, record):
        if self.readonly:
            raise ReadOnlyError('%s is read-only' % self)
        self.records[oid] = _split(oid, record)

    def sync(self):
        self.prefetcher.forget_records()
        if self.replicas:
            sql = ('SELECT o.zoid, o.tid, %s FROM (SELECT 1) AS one LEFT '
                   'JOIN durus_object o ON o.tid > %%s::bigint' % _LSN)
        else:
            sql = ('SELECT zoid, tid, 0 FROM durus_object WHERE tid > '
                   '%s::bigint')
        rows = self._primary(lambda conn: conn.execute(
            sql, (self.last_tid,)).fetchall())
        return self._take_news(rows)

    def pending_changes(self, limit=100, timeout=1.0):
        """What ``sync()`` would bring, without moving ``last_tid``: the
        rows and commits stamped after this storage's snapshot (indexed
        queries on the primary; ``timeout`` is not enforced here)."""
        limit = max(0, int(limit))

        def ask(conn):
            count = conn.execute(
                'SELECT count(*) FROM durus_object WHERE tid > %s::bigint',
                (self.last_tid,)).fetchone()[0]
            commits = conn.execute(
                'SELECT count(*) FROM durus_commit WHERE tid > %s::bigint',
                (self.last_tid,)).fetchone()[0]
            rows = conn.execute(
                'SELECT zoid FROM durus_object WHERE tid > %s::bigint '
                'ORDER BY tid DESC, zoid LIMIT %s',
                (self.last_tid, limit)).fetchall() if limit and count else []
            return count, commits, rows
        count, commits, rows = self._primary(ask)
        return PendingChanges(count, [int_to_oid(zoid) for zoid, in rows],
                              commits)

    def _take_news(self, rows):
        """The oids in ``(zoid, tid, lsn)`` rows; moves ``last_tid``."""
        oids = []
        for zoid, tid, lsn in rows:
            self.need_lsn = max(self.need_lsn, lsn)
            if zoid is not None:
                oids.append(int_to_oid(zoid))
                if tid > self.last_tid:
                    self.last_tid = tid
        return oids

    def end(self, handle_invalidations=None):
        records, self.records = self.records, {}
        self.prefetcher.forget_records()
        if not records:
            oids = self.sync()
            if oids and handle_invalidations is not None:
                handle_invalidations(oids)
            return
        if self.readonly:
            raise ReadOnlyError('%s is read-only' % self)
        if self.conn is None:
            self._reconnect()
        psycopg = self.psycopg
        conn = self.conn
        rows = list(records.values())
        sent = False    # whether the COMMIT may have reached the server
        new_tid = None
        try:
            # Plain BEGIN/COMMIT statements in one pipeline: two syncs,
            # i.e. two round trips (conn.transaction() would add more).
            with conn.pipeline() as pipeline:
                conn.execute('BEGIN')
                # Not waiting for the WAL flush while holding the commit
                # lock: the flush is waited for below, after the lock is
                # released, so concurrent commits share fsyncs.
                conn.execute('SET LOCAL synchronous_commit = off')
                conn.execute('SELECT pg_advisory_xact_lock(%d, %d)'
                             % (LOCK_NAMESPACE, COMMIT_LOCK))
                news = conn.execute(
                    'SELECT zoid, tid, 0 FROM durus_object WHERE '
                    'tid > %s::bigint', (self.last_tid,))
                tid_cursor = conn.execute(_NEXT_TID)
                pipeline.sync()
                oids = self._take_news(news.fetchall())
                new_tid = tid_cursor.fetchone()[0]
                if oids and handle_invalidations is not None:
                    try:
                        handle_invalidations(oids)
                    except BaseException:
                        conn.execute('ROLLBACK')    # sent on the way out
                        raise
                conn.cursor().executemany(
                    _UPSERT, [(zoid, new_tid, data, refs)
                              for zoid, data, refs in rows])
                conn.execute('INSERT INTO durus_commit (tid) VALUES (%s)',
                             (new_tid,))
                highest = max(zoid for zoid, _, _ in rows)
                if highest > self.max_oid_given:
                    # Oids not handed out by the sequence (a copy): the
                    # sequence must never hand them out.
                    conn.execute(
                        "SELECT setval('durus_oid_seq', greatest("
                        "(SELECT last_value FROM durus_oid_seq), %s))",
                        (highest,))
                sent = True
                conn.execute('COMMIT')
                lsn_cursor = conn.execute('SELECT %s' % _LSN)
                # A transaction with an xid commits with the session's own
                # synchronous_commit: it returns once the WAL up to it,
                # hence the commit above, is as durable (fsynced, or on a
                # synchronous standby) as a plain commit would have been.
                conn.execute('BEGIN')
                conn.execute(_WAIT_DURABLE)
                conn.execute('COMMIT')
            self.need_lsn = max(self.need_lsn, lsn_cursor.fetchone()[0])
        except psycopg.OperationalError as error:
            if self._lost(error):
                self._commit_lost(error, sent, new_tid)
            else:
                self._rollback()
                if isinstance(error, psycopg.errors.LockNotAvailable):
                    raise CommitLockTimeout(
                        'the commit lock of %s was not obtained within %s s '
                        '(a long commit or pack holds it); nothing was '
                        'written' % (self, self.lock_timeout)) from None
                raise
        except psycopg.Error:
            self._rollback()
            raise
        self.last_tid = max(self.last_tid, new_tid)

    def _rollback(self):
        """Make the connection usable after an error inside a commit's
        pipeline: a new connection, since psycopg may believe statements
        skipped in the aborted pipeline were prepared (seen with a variant
        of this commit whose check aborted the pipeline: 'prepared
        statement "_pg3_3" does not exist' on the next commit).  The
        server rolls the failed transaction back when this one closes."""
        self._reconnect()

    def _commit_lost(self, error, sent, new_tid):
        """The connection broke during a commit: reconnect and return if
        the commit happened, raise PgConnectionError if it did not."""
        try:
            self._reconnect()
        except PgConnectionError as again:
            if not sent:
                raise
            raise CommitUnknownError(
                'the connection to PostgreSQL at %s was lost while a commit '
                'was being made (%s) and no server answers since (%s): '
                'whether the commit was made is unknown; look before '
                'retrying' % (safe_dsn(self.dsn), _one_line(error),
                              _one_line(again))) from None
        if sent and new_tid is not None:
            made = self.conn.execute(
                'SELECT count(*) FROM durus_commit WHERE tid = %s',
                (new_tid,)).fetchone()[0]
            if made:
                # It may have been committed without waiting for the
                # flush: wait for it now, as end() would have.
                with self.conn.transaction():
                    self.conn.execute(_WAIT_DURABLE)
                return
        raise PgConnectionError(
            'the connection to PostgreSQL at %s was lost during a commit '
            '(%s); the commit was not made, it can be retried'
            % (safe_dsn(self.dsn), _one_line(error)))

    # Pack ---------------------------------------------------------------

    def pack(self):
        for _ in self.get_packer():
            pass

    def get_packer(self):
        if self.readonly:
            raise ReadOnlyError('%s is read-only' % self)
        return self._packer()

    def _packer(self):
        """Mark in one snapshot, yield, then sweep in batches under the
        commit lock, rescuing what commits after the snapshot made
        reachable again."""
        conn = self._connect(self.dsn)
        try:
            got = conn.execute('SELECT pg_try_advisory_lock(%d, %d)'
                               % (LOCK_NAMESPACE, PACK_LOCK)).fetchone()[0]
            if not got:
                raise DurusError('%s: another pack is running' % self)
            with conn.transaction():
                conn.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE '
                             'READ')
                snapshot, has_root = conn.execute(
                    'SELECT (SELECT coalesce(max(tid), 0) FROM '
                    'durus_commit), EXISTS (SELECT 1 FROM durus_object '
                    'WHERE zoid = 0 AND data IS NOT NULL)').fetchone()
                if not has_root:
                    return
                conn.execute(
                    'CREATE TEMP TABLE durus_reach ON COMMIT DROP AS '
                    'WITH RECURSIVE reach(zoid) AS (SELECT 0::bigint UNION '
                    'SELECT r FROM reach JOIN durus_object o USING (zoid), '
                    'unnest(o.refs) r) SELECT zoid FROM reach')
                conn.execute('CREATE TEMP TABLE durus_garbage (zoid bigint '
                             'PRIMARY KEY)')
                conn.execute(
                    'INSERT INTO durus_garbage SELECT o.zoid FROM '
                    'durus_object o WHERE o.data IS NOT NULL AND o.tid <= '
                    '%s AND NOT EXISTS (SELECT 1 FROM durus_reach r WHERE '
                    'r.zoid = o.zoid)', (snapshot,))
            yield
            checked = snapshot
            while True:
                with conn.transaction():
                    conn.execute('SELECT pg_advisory_xact_lock(%d, %d)'
                                 % (LOCK_NAMESPACE, COMMIT_LOCK))
                    newest = conn.execute(
                        'SELECT coalesce(max(tid), 0) FROM durus_commit'
                    ).fetchone()[0]
                    if newest > checked:
                        self._rescue(conn, checked)
                        checked = newest
                    tid = conn.execute(_NEXT_TID).fetchone()[0]
                    done = conn.execute(
                        'WITH batch AS (DELETE FROM durus_garbage WHERE '
                        'zoid IN (SELECT zoid FROM durus_garbage LIMIT %s) '
                        'RETURNING zoid) UPDATE durus_object o SET data = '
                        "NULL, refs = '{}', tid = %s FROM batch WHERE "
                        'o.zoid = batch.zoid AND o.tid <= %s',
                        (PACK_BATCH, tid, snapshot))
                    left = conn.execute('SELECT EXISTS (SELECT 1 FROM '
                                        'durus_garbage)').fetchone()[0]
                    if done.rowcount:
                        conn.execute('INSERT INTO durus_commit (tid) '
                                     'VALUES (%s)', (tid,))
                    if not left:
                        # Tombstones of earlier packs, and the commit log
                        # up to the snapshot (the newest row stays).
                        conn.execute('DELETE FROM durus_object WHERE data '
                                     'IS NULL AND tid <= %s', (snapshot,))
                        # (An hour of it stays: a client that lost its
                        # connection during COMMIT looks its tid up.)
                        conn.execute(
                            'DELETE FROM durus_commit WHERE tid < least(%s, '
                            '(extract(epoch FROM clock_timestamp()) * 1e6 '
                            '- 3600e6)::bigint)', (snapshot,))
                if not left:
                    break
                yield
        finally:
            conn.close()

    @staticmethod
    def _rescue(conn, since):
        """Drop from the garbage whatever rows written after ``since``
        reach (through garbage only)."""
        conn.execute(
            'WITH RECURSIVE rescue(zoid) AS ('
            ' SELECT r FROM durus_object o, unnest(o.refs) r'
            ' WHERE o.tid > %s AND o.data IS NOT NULL'
            ' AND r IN (SELECT zoid FROM durus_garbage)'
            ' UNION'
            ' SELECT r FROM rescue JOIN durus_object o USING (zoid),'
            ' unnest(o.refs) r WHERE r IN (SELECT zoid FROM durus_garbage))'
            ' DELETE FROM durus_garbage WHERE zoid IN (SELECT zoid FROM '
            'rescue)', (since,))

    # Schema -------------------------------------------------------------

    def _check_schema(self, create):
        psycopg = self.psycopg
        try:
            rows = self.conn.execute(
                'SELECT key, value FROM durus_meta').fetchall()
        except psycopg.errors.UndefinedTable:
            rows = None
        if rows is None and create:
            self._create_schema()
            return
        if rows is None:
            raise UnknownFormatError(
                'the PostgreSQL database at %s has no durus schema (no '
                'durus_meta table); create one with PgStorage(dsn, '
                'create=True) or copy a database into it with durus copy'
                % safe_dsn(self.dsn))
        meta = dict(rows)
        if meta.get('format') != FORMAT_NAME:
            raise UnknownFormatError(
                'the PostgreSQL database at %s was not made by PgStorage '
                '(its durus_meta has no format %r)'
                % (safe_dsn(self.dsn), FORMAT_NAME))
        if meta.get('schema_version') != SCHEMA_VERSION:
            raise UnknownFormatError(
                'the PostgreSQL database at %s has durus schema version '
                '%r; this durus reads version %s (use the durus version '
                'that made it)' % (safe_dsn(self.dsn),
                                   meta.get('schema_version'),
                                   SCHEMA_VERSION))

    def _create_schema(self):
        if self.readonly:
            raise ReadOnlyError('cannot create a schema read-only')
        conn = self.conn
        with conn.transaction():
            conn.execute('SELECT pg_advisory_xact_lock(%d, %d)'
                         % (LOCK_NAMESPACE, CREATE_LOCK))
            exists = conn.execute(
                "SELECT to_regclass('durus_meta') IS NOT NULL").fetchone()[0]
            if not exists:
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    'INSERT INTO durus_meta (key, value) VALUES '
                    "('format', %s), ('schema_version', %s)",
                    (FORMAT_NAME, SCHEMA_VERSION))
        if exists:
            self._check_schema(create=False)

    # Closing ------------------------------------------------------------

    def close(self):
        for replica in self.replicas:
            if replica.conn is not None:
                replica.conn.close()
                replica.conn = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _one_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
