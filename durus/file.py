"""A database file: an unbuffered handle with an exclusive lock and fsync.

Invariants:

* A writable ``File`` holds an exclusive, non-blocking lock on its open
  file description from construction to ``close()``.  A second writer
  (another process, or another ``File`` in this process) gets
  ``DatabaseInUseError`` at once instead of waiting.
* A read-only ``File`` takes no lock, so it can open a file that a
  writer holds.  It refuses every write with ``ReadOnlyError``.
* Reads and writes are positional (``pread``/``pwrite``), so readers
  never disturb the append position and no user-space buffer can hold
  stale bytes.  Reads inside the part of the file that existed when it
  was first read come from a read-only memory map of the page cache (no
  system call per read); reads past it use ``pread``, and the map is
  renewed once the file has grown.  The file is only ever appended to
  while open (``truncate`` only cuts bytes that no record uses), so the
  mapped part never changes under a reader.
* ``fsync()`` returns only when the bytes written so far are on disk.
  Creating or renaming the file also syncs its directory, so the new name
  survives a power loss.
"""

import errno
import os

try:
    import mmap
except ImportError:
    mmap = None

from durus.error import (
    DatabaseInUseError, DatabaseNotFoundError, DatabasePermissionError,
    ReadOnlyError, UnknownFormatError)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


# Reads past the mapped part before the file is mapped (again).  Opening a
# file makes a few reads only; mapping it would cost more than it saves.
_REMAP_AFTER = 64
# _reads_past once mapping has proved impossible: never try again.
_NEVER_MAP = -(1 << 62)


def fsync_directory(path):
    """Make the directory entry of ``path`` durable (no-op where unsupported)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _lock(fd, name):
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise DatabaseInUseError(
                '%s is in use: another process (or storage object) has it '
                'open for writing; close that one first or open this one '
                'read-only' % name) from None
        raise


def _unlock(fd):
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class File(object):
    """An open database file (or an anonymous temporary one when name is None).

    ``readonly`` opens without a lock and refuses writes.  A missing path
    is created when writable; ``tmpkw`` go to ``tempfile.mkstemp``.
    """

    def __init__(self, name=None, readonly=False, **tmpkw):
        self.readonly = readonly
        self.locked = False
        self.unsynced = False  # written with durable=False, not yet fsynced
        self.temporary = name is None
        if self.temporary:
            if readonly:
                raise ReadOnlyError('a temporary file cannot be read-only')
            import tempfile  # only here: it costs ~7 ms to import
            fd, name = tempfile.mkstemp(**tmpkw)
            os.unlink(name)  # anonymous: gone when closed
        else:
            fd = self._open(name, readonly)
        self.name = name
        self.fd = fd
        self._map = None
        self._mapped = 0        # bytes readable through _map
        self._reads_past = 0  # preads past the map (the first few map nothing)
        if not readonly:
            try:
                self.obtain_lock()
            except BaseException:
                os.close(fd)
                self.fd = None
                raise

    @staticmethod
    def _open(name, readonly):
        if os.path.isdir(name):
            raise UnknownFormatError(
                '%s is a directory, not a database file' % name)
        flags = os.O_RDONLY if readonly else os.O_RDWR
        binary = getattr(os, 'O_BINARY', 0)
        try:
            return os.open(name, flags | binary)
        except FileNotFoundError:
            if readonly:
                raise DatabaseNotFoundError(
                    'No "%s" found: a read-only open needs an existing '
                    'database file' % name) from None
        except PermissionError:
            raise DatabasePermissionError(
                'no permission to open %s %s; check the file mode or open '
                'it read-only' % (name, 'for reading' if readonly
                                  else 'for writing')) from None
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | binary,
                         0o666)
        except FileNotFoundError:
            raise DatabaseNotFoundError(
                'cannot create %s: its directory does not exist' % name) \
                from None
        except PermissionError:
            raise DatabasePermissionError(
                'no permission to create %s' % name) from None
        fsync_directory(name)
        return fd

    def __repr__(self):
        return 'File(%r)' % (self.name,)

    def is_temporary(self):
        return self.temporary

    def is_readonly(self):
        return self.readonly

    def is_closed(self):
        return self.fd is None

    def obtain_lock(self):
        if not self.locked:
            _lock(self.fd, self.name)
            self.locked = True

    def release_lock(self):
        if self.locked:
            _unlock(self.fd)
            self.locked = False

    def writer_holds_lock(self):
        """For a read-only file: does a writer hold the lock right now?

        True, False, or None where it cannot be told (Windows).  It tries
        a shared lock without waiting and drops it at once: a writer that
        opens in that instant gets ``DatabaseInUseError``.  Readers ask
        only when the end of the file looks damaged.
        """
        if fcntl is None or self.locked or self.fd is None:
            return None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES,
                               errno.EWOULDBLOCK):
                return True
            return None
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False

    def _check_writable(self):
        if self.readonly:
            raise ReadOnlyError(
                '%s is open read-only; reopen it without readonly to change '
                'it' % self.name)

    def get_size(self):
        return os.fstat(self.fd).st_size

    def pread(self, n, offset):
        """Up to ``n`` bytes at ``offset`` (fewer only at end of file)."""
        if offset + n <= self._mapped:
            return self._map[offset:offset + n]
        if self._reads_past >= _REMAP_AFTER:
            self._remap()
            if offset + n <= self._mapped:
                return self._map[offset:offset + n]
        self._reads_past += 1
        data = os.pread(self.fd, n, offset)
        if len(data) == n or not data:
            return data
        parts = [data]
        got = len(data)
        while got < n:
            more = os.pread(self.fd, n - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b''.join(parts)

    def _remap(self):
        """Map the file as it is now (or keep using pread where mapping
        is not possible: no mmap module, Windows, an empty file)."""
        self._reads_past = 0
        if mmap is None or fcntl is None or self.fd is None:
            self._reads_past = _NEVER_MAP
            return
        size = os.fstat(self.fd).st_size
        if size <= self._mapped:
            return
        try:
            new_map = mmap.mmap(self.fd, size, access=mmap.ACCESS_READ)
        except (OSError, ValueError, OverflowError):
            self._reads_past = _NEVER_MAP
            return
        self._drop_map()
        self._map = new_map
        self._mapped = size

    def _drop_map(self):
        old, self._map = self._map, None
        self._mapped = 0
        if old is not None:
            old.close()

    def pwrite(self, data, offset):
        """Write all of ``data`` at ``offset``."""
        self._check_writable()
        view = memoryview(data)
        while view:
            done = os.pwrite(self.fd, view, offset)
            view = view[done:]
            offset += done

    def append_durably(self, data, offset, durable=True):
        """Write ``data`` at ``offset`` (the end of the file) and fsync.

        If anything fails, the file is cut back to ``offset`` (as far as
        possible) and the error propagates: no partial write stays.
        With ``durable=False`` the fsync is left to a later ``fsync()``
        (group commit: the caller must not report the write as committed
        before that).
        """
        try:
            self.pwrite(data, offset)
            if durable:
                self.fsync()
            else:
                self.unsynced = True
        except BaseException:
            try:
                self.truncate(offset)
            except OSError:
                pass
            raise

    def truncate(self, size):
        self._check_writable()
        # Mapped pages past the new end must never be read (SIGBUS).
        self._mapped = min(self._mapped, size)
        os.ftruncate(self.fd, size)

    def fsync(self):
        # fdatasync is enough for an append-only file (it flushes the new
        # size too) and skips the timestamp updates fsync also writes.
        getattr(os, 'fdatasync', os.fsync)(self.fd)
        self.unsynced = False

    def rename(self, name):
        """Give the file a new name (replacing any file there), durably."""
        self._check_writable()
        os.replace(self.name, name)
        self.name = name
        fsync_directory(name)

    def close(self):
        if self.fd is not None:
            if self.unsynced:
                self.fsync()  # a deferred commit must not stay in the cache
            self._drop_map()  # it holds a duplicate of the descriptor
            fd, self.fd = self.fd, None
            self.locked = False  # closing the descriptor drops the lock
            os.close(fd)
