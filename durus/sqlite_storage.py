"""SqliteStorage: records in a SQLite table (spec formats.md §4).

Schema (the same as Durus 4.3, so files interoperate)::

    create table objects (id integer primary key, data blob, refs blob)

``id`` is the oid as an integer; ``data`` and ``refs`` are the record's
fields.  A commit is one SQLite transaction (SQLite makes it durable).

Differences from Durus 4.3, on purpose:

* ``new_oid()`` starts at ``max(id) + 1`` after reopening (4.3 handed out
  ``max(id)`` again, overwriting an object).
* ``gen_oid_record()`` without a start oid lists every record.
* ``readonly=True`` works: the database is opened with SQLite's
  ``mode=ro`` and commits raise ``ReadOnlyError``.
* A writable storage holds an exclusive lock on the file like the other
  file storages, so two writers cannot hand out the same oids
  (``DatabaseInUseError``).  The lock (``flock``) is independent of
  SQLite's own locks, and its descriptor is closed only after SQLite's.
* Durus 4.3 takes no such lock, so a 4.3 writer could commit beside us
  and both would hand out the same oids.  Between commits a writable
  storage therefore keeps a read transaction open: SQLite lets no other
  connection commit meanwhile (a 4.3 commit waits, then fails with
  "database is locked").  If another connection still commits (in the
  moment between our commit and the next read transaction, or in WAL
  mode), SQLite's ``data_version`` changes and our next commit refuses
  with ``ConcurrentWriterError`` instead of overwriting its objects.
* Commits use ``synchronous=EXTRA`` so that a power cut cannot undo an
  acknowledged commit (see ``_make_commits_durable``).
"""

import errno
import os
import sqlite3
from urllib.parse import quote

from durus.error import (
    ConcurrentWriterError, DatabaseInUseError, DatabaseNotFoundError,
    DurusKeyError, ReadOnlyError, UnknownFormatError, permission_error)
from durus.file import File, write_error
from durus.record import pack_record, unpack_record
from durus.storage import ROOT_OID, Storage
from durus.utils import (
    check_oid, int8_to_str, lazy_names, oid_number, str_to_int8)

SQLITE_MAGIC = b'SQLite format 3\0'
_SCHEMA = 'create table objects (id integer primary key, data blob, refs blob)'


def _reopen_errno(path):
    """SQLite reports EROFS as a mere I/O error: the errno of opening the
    file for writing now, or None if that works."""
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as error:
        return error.errno
    return None


def _signed(number):
    """Oid numbers >= 2**63 are stored as negative SQLite integers."""
    return number - (1 << 64) if number >= 1 << 63 else number


def _unsigned(value):
    return value + (1 << 64) if value < 0 else value


class SqliteStorage(Storage):

    def __init__(self, filename, readonly=False, repair=False):
        self.filename = filename
        self.readonly = readonly
        self.lock_file = None
        if os.path.isdir(filename):
            raise UnknownFormatError(
                '%s is a directory, not a database file' % filename)
        if readonly:
            if not os.path.exists(filename):
                raise DatabaseNotFoundError(
                    'No "%s" found: a read-only open needs an existing '
                    'database file' % filename)
            self._check_magic()
            uri = 'file:%s?mode=ro' % quote(os.path.abspath(filename))
            self.connection = sqlite3.connect(uri, uri=True)
        else:
            # Our own lock, taken before SQLite opens the file.
            self.lock_file = File(filename)
            try:
                if self.lock_file.get_size():
                    self._check_magic()
                self.connection = sqlite3.connect(filename)
                self._make_commits_durable()
                self._create_table()
            except sqlite3.DatabaseError as error:
                self.lock_file.close()
                raise UnknownFormatError(
                    '%s is not a usable SQLite durus database (%s)'
                    % (filename, error)) from None
            except BaseException:
                self.lock_file.close()
                raise
        self.pending = None
        self.invalid = []
        try:
            value = self.connection.execute(
                'select max(id) from objects').fetchone()[0]
        except sqlite3.DatabaseError as error:
            self.close()
            raise UnknownFormatError(
                '%s is not a usable SQLite durus database (%s)'
                % (filename, error)) from None
        self.next_number = 0 if value is None else self._max_number() + 1
        self.data_version = self._data_version()
        # Read-only: a fingerprint of each record handed out, so that
        # sync() can tell which of them another program changed.
        self.loaded = {}
        if not readonly:
            self._hold_read_lock()

    def _check_magic(self):
        try:
            with open(self.filename, 'rb') as f:
                head = f.read(len(SQLITE_MAGIC))
        except PermissionError:
            raise permission_error(self.filename, 'read') from None
        if head != SQLITE_MAGIC:
            raise UnknownFormatError(
                '%s is not a SQLite database' % self.filename)

    def _make_commits_durable(self):
        """Sync the directory after each commit, not only the files.

        In rollback-journal mode a commit ends by deleting the journal;
        with SQLite's default (FULL) that deletion is not synced, so a
        power cut can bring the journal back as a hot journal and the
        next open rolls the acknowledged commit back.  EXTRA syncs the
        directory too.  It changes nothing in the file, so Durus 4.3
        still reads and writes it.
        """
        self.connection.execute('pragma synchronous = extra')
        if self.connection.execute('pragma synchronous').fetchone()[0] < 3:
            # SQLite before 3.12 reads an unknown level as NORMAL.
            self.connection.execute('pragma synchronous = full')

    def _data_version(self):
        """Changes whenever another connection commits to the file."""
        return self.connection.execute('pragma data_version').fetchone()[0]

    def _hold_read_lock(self):
        """Open a read transaction that lasts until our next commit.

        While it is open, SQLite (in its default rollback-journal mode)
        lets no other connection commit, so a Durus 4.3 writer, which
        takes no other lock, fails instead of reusing our oids.  If the
        lock cannot be had now (another connection is committing), the
        next commit's ``data_version`` check still catches the change.
        """
        try:
            if not self.connection.in_transaction:
                self.connection.execute('begin')
            self.connection.execute(
                'select count(*) from sqlite_master').fetchone()
        except sqlite3.OperationalError:
            self.connection.rollback()

    def _check_sole_writer(self):
        if self._data_version() != self.data_version:
            raise ConcurrentWriterError(
                '%s was changed by another program since this storage '
                'opened it (Durus 4.3 takes no lock on SQLite files); '
                'nothing was committed, because the oids handed out here '
                'may be the other writer\'s: stop the other writer and '
                'reopen the database' % self.filename)

    def _max_number(self):
        # Oids >= 2**63 are negative in SQLite: the largest unsigned one
        # is the largest negative value, if any.
        negative = self.connection.execute(
            'select max(id) from objects where id < 0').fetchone()[0]
        if negative is not None:
            return _unsigned(negative)
        return self.connection.execute(
            'select max(id) from objects').fetchone()[0]

    def _create_table(self):
        found = self.connection.execute(
            "select name from sqlite_master where type = 'table' and "
            "name = 'objects'").fetchone()
        if not found:
            with self.connection:
                self.connection.execute(_SCHEMA)

    def __str__(self):
        return 'SqliteStorage(%r)' % (self.filename,)

    def get_filename(self):
        return self.filename

    def is_temporary(self):
        return False

    def is_readonly(self):
        return self.readonly

    # Reading

    def load(self, oid):
        row = self.connection.execute(
            'select data, refs from objects where id = ?',
            (_signed(oid_number(oid)),)).fetchone()
        if row is None:
            raise DurusKeyError(oid)
        record = pack_record(oid, row[0], row[1] or b'')
        if self.readonly:
            self.loaded[bytes(oid)] = hash(record)
        return record

    def gen_oid_record(self, start_oid=None, batch_size=100, **other):
        # **other: 4.3's took and ignored any other keyword; so does this.
        if start_oid is not None:
            return Storage.gen_oid_record(self, start_oid, batch_size)
        return self._gen_all()

    def _gen_all(self):
        cursor = self.connection.execute(
            'select id, data, refs from objects order by id')
        for value, data, refs in cursor:
            oid = int8_to_str(_unsigned(value))
            yield oid, pack_record(oid, data, refs or b'')

    # Committing

    def new_oid(self):
        number = self.next_number
        self.next_number += 1
        return int8_to_str(number)

    def begin(self):
        self.pending = {}

    def store(self, oid, record):
        if self.readonly:
            raise ReadOnlyError('%s is open read-only; reopen it without '
                                'readonly to commit' % self.filename)
        check_oid(oid)
        if self.pending is None:
            self.pending = {}
        self.pending[oid] = record

    def end(self, handle_invalidations=None):
        pending, self.pending = self.pending, None
        if not pending:
            return
        rows = []
        for oid, record in pending.items():
            _, data, refs = unpack_record(record)
            number = str_to_int8(oid)
            rows.append((_signed(number), data, refs))
            if number >= self.next_number:
                self.next_number = number + 1
        self._write(lambda execute: execute(
            'insert or replace into objects (id, data, refs) '
            'values (?, ?, ?)', rows))

    def _write(self, change):
        """Run ``change(executemany)`` as one commit, if no other
        program committed since our last one; then hold the read lock
        again."""
        self._check_sole_writer()
        try:
            with self.connection:
                change(self.connection.executemany)
        except sqlite3.OperationalError as error:
            raise self._write_error(error) from None
        finally:
            self._hold_read_lock()

    def _write_error(self, error):
        """A clear error, naming the file, for a commit SQLite refused."""
        text = str(error)
        if 'locked' in text:
            return DatabaseInUseError(
                '%s is locked by another program (a writer, such as Durus '
                '4.3, which takes no lock of its own on SQLite files, or a '
                'long read); nothing was committed: stop any other writer, '
                'then commit again' % self.filename)
        number = _reopen_errno(self.filename)
        if number is None:
            number = (errno.ENOSPC if 'full' in text else
                      errno.EACCES if 'readonly' in text else errno.EIO)
        advice = 'nothing was committed'
        if number == errno.EIO:
            advice += ' (SQLite: %s)' % text
        return write_error(OSError(number, text), self.filename, 'commit to',
                           advice)

    def sync(self):
        """Oids a pack removed; read-only: also the loaded oids whose
        rows another program changed or deleted since they were read."""
        invalid, self.invalid = self.invalid, []
        if self.readonly and self.loaded:
            version = self._data_version()
            if version != self.data_version:
                self.data_version = version
                invalid.extend(self._changed_since_loaded())
        return invalid

    def _changed_since_loaded(self):
        oids = list(self.loaded)
        changed = []
        for start in range(0, len(oids), 500):
            batch = oids[start:start + 500]
            cursor = self.connection.execute(
                'select id, data, refs from objects where id in (%s)'
                % ','.join('?' * len(batch)),
                [_signed(oid_number(oid)) for oid in batch])
            rows = dict((value, (data, refs)) for value, data, refs in cursor)
            for oid in batch:
                row = rows.get(_signed(oid_number(oid)))
                if row is None or self.loaded[oid] != hash(
                        pack_record(oid, row[0], row[1] or b'')):
                    del self.loaded[oid]
                    changed.append(oid)
        return changed

    def describe(self):
        try:  # counted from SQLite's b-tree pages, no record is read
            count = self.connection.execute(
                'SELECT count(*) FROM objects').fetchone()[0]
        except Exception:
            count = None
        try:
            size = os.path.getsize(self.filename)
        except (OSError, TypeError):
            size = None
        return {'format': 'sqlite', 'objects': count,
                'exact': count is not None, 'size': size,
                'readonly': bool(self.readonly)}

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.lock_file is not None:
            self.lock_file.close()
            self.lock_file = None

    # Rewriting

    def create_from_records(self, oid_records):
        """Store these ``(oid, record)`` pairs in one transaction."""
        self.begin()
        for oid, record in oid_records:
            self.store(oid, record)
        self.end()

    def pack(self):
        for _ in self.get_packer():
            pass

    def get_packer(self):
        if self.readonly:
            raise ReadOnlyError('%s is open read-only; it cannot be packed'
                                % self.filename)
        if self.pending:
            return iter(())
        return self._packer()

    def _packer(self):
        # One step: between a reachability walk and the delete, a commit
        # could make a new object reachable that the walk did not see.
        reachable = set(oid for oid, _ in
                        Storage.gen_oid_record(self, ROOT_OID))
        doomed = [(value,) for (value,) in self.connection.execute(
            'select id from objects')
            if int8_to_str(_unsigned(value)) not in reachable]
        self._write(lambda execute: execute(
            'delete from objects where id = ?', doomed))
        self.invalid.extend(int8_to_str(_unsigned(value))
                            for (value,) in doomed)
        yield


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
__getattr__, __dir__ = lazy_names(  # durus.logger imports logging
    __name__, {'is_logging': 'durus.logger'})
from durus.serialize import split_oids  # noqa: E402,F401
from durus.utils import as_bytes, iteritems  # noqa: E402,F401
