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
"""

import os
import sqlite3
from urllib.parse import quote

from durus.error import (
    DatabaseNotFoundError, DatabasePermissionError, DurusKeyError,
    ReadOnlyError, UnknownFormatError)
from durus.file import File
from durus.serialize import pack_record, unpack_record
from durus.storage import ROOT_OID, Storage
from durus.utils import int8_to_str, str_to_int8

SQLITE_MAGIC = b'SQLite format 3\0'
_SCHEMA = 'create table objects (id integer primary key, data blob, refs blob)'


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

    def _check_magic(self):
        try:
            with open(self.filename, 'rb') as f:
                head = f.read(len(SQLITE_MAGIC))
        except PermissionError:
            raise DatabasePermissionError(
                'no permission to read %s; check its mode and owner'
                % self.filename) from None
        if head != SQLITE_MAGIC:
            raise UnknownFormatError(
                '%s is not a SQLite database' % self.filename)

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
            (_signed(str_to_int8(oid)),)).fetchone()
        if row is None:
            raise DurusKeyError(oid)
        return pack_record(oid, row[0], row[1] or b'')

    def gen_oid_record(self, start_oid=None, batch_size=100):
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
        with self.connection:
            self.connection.executemany(
                'insert or replace into objects (id, data, refs) '
                'values (?, ?, ?)', rows)

    def sync(self):
        invalid, self.invalid = self.invalid, []
        return invalid

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
        with self.connection:
            self.connection.executemany('delete from objects where id = ?',
                                        doomed)
        self.invalid.extend(int8_to_str(_unsigned(value))
                            for (value,) in doomed)
        yield
