"""A database file: an unbuffered handle with an exclusive lock and fsync.

Invariants:

* A writable ``File`` holds an exclusive, non-blocking lock on its open
  file description from construction to ``close()``.  A second writer
  (another process, or another ``File`` in this process) gets
  ``DatabaseInUseError`` at once instead of waiting.
* A read-only ``File`` takes no lock, so it can open a file that a
  writer holds.  It refuses every write with ``ReadOnlyFileError`` (a
  ``ReadOnlyError``).
* Reads and writes are positional (``pread``/``pwrite``), so readers
  never disturb the append position and no user-space buffer can hold
  stale bytes.  Durus 4.3's stream calls (``seek``/``read``/``write``)
  keep a position of their own on top of them.  Reads inside the part of
  the file that existed when it was first read come from a read-only
  memory map of the page cache (no system call per read); reads past it
  use ``pread``, and the map is renewed once the file has grown.  The
  storages only append to an open file (``truncate`` only cuts bytes
  that no record uses), so records never change under a reader; a write
  inside the mapped part (4.3's tools patch a length or an offset map)
  is seen through the map at once, since it maps the same page cache.
* ``fsync()`` returns only when the bytes written so far are on disk.
  Creating or renaming the file also syncs its directory, so the new name
  survives a power loss.
"""

import errno
import os
from os.path import exists  # noqa: F401 (a name of Durus 4.3's module)

try:
    import mmap
except ImportError:
    mmap = None

from durus.error import (
    DatabaseInUseError, DatabaseNotFoundError, DatabaseWriteError,
    ReadOnlyError, UnknownFormatError, permission_error)


class ReadOnlyFileError(ReadOnlyError, AssertionError):
    """A write to a ``File`` opened read-only (Durus 4.3 asserted)."""

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


# What to do about a failed write, by errno.
_ADVICE = {
    errno.ENOSPC: 'the file system is full; free space, then try again',
    errno.EDQUOT: 'the disk quota is exhausted; free space, then try again',
    errno.EROFS: 'the file system is read-only (it may have been remounted '
                 'read-only after an error: see dmesg); fix it, then reopen',
    errno.EIO: 'the disk reported an I/O error (see dmesg); check it, '
               'then reopen',
}


def write_error(error, name, action, advice=None):
    """``error`` (an OSError from writing ``name``) as a clear
    ``DatabaseWriteError`` naming the file, or unchanged if it is not
    an operating-system error about the file."""
    if not isinstance(error, OSError) or isinstance(error, DatabaseWriteError) \
            or error.errno is None:
        return error
    if isinstance(error, PermissionError):
        return permission_error(name, 'write')
    text = _ADVICE.get(error.errno)
    if advice:
        text = advice if text is None else '%s; %s' % (advice, text)
    return DatabaseWriteError(error.errno, name, action, text)


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


# Keywords of tempfile.NamedTemporaryFile that Durus 4.3's File passed
# on.  The file is always binary and unbuffered here, so the ones about
# text and buffering are accepted and have no effect.
_TEMPORARY_NAMING = ('suffix', 'prefix', 'dir')
_TEMPORARY_IGNORED = ('mode', 'buffering', 'encoding', 'newline', 'errors')


def _make_temporary(keywords):
    """``(fd, name)`` of a new temporary file.  As with
    ``tempfile.NamedTemporaryFile`` it has a name while open (so another
    process can open it read-only, as with Durus 4.3) and is removed when
    closed, unless ``delete=False`` asks to keep it."""
    unknown = set(keywords) - set(_TEMPORARY_NAMING + _TEMPORARY_IGNORED
                                  + ('delete',))
    if unknown:
        raise TypeError('File() got an unexpected keyword argument %r'
                        % sorted(unknown)[0])
    import tempfile  # only here: it costs ~7 ms to import
    fd, name = tempfile.mkstemp(
        **dict((key, keywords[key]) for key in _TEMPORARY_NAMING
               if key in keywords))
    return fd, name


def __getattr__(name):
    # Durus 4.3's module offered tempfile's NamedTemporaryFile; imported
    # on first use to keep ``import durus.file`` cheap.
    if name == 'NamedTemporaryFile':
        import tempfile
        return tempfile.NamedTemporaryFile
    raise AttributeError('module %r has no attribute %r' % (__name__, name))


def __dir__():
    return sorted(list(globals()) + ['NamedTemporaryFile'])


class File(object):
    """An open database file (or a temporary one when name is None).

    ``readonly`` opens without a lock and refuses writes.  A missing path
    is created when writable.  A temporary file is named while open and
    removed when closed unless ``delete=False``; its other keywords are those of
    ``tempfile.NamedTemporaryFile`` (``suffix``, ``prefix``, ``dir``).

    Besides positional ``pread``/``pwrite``, a ``File`` has Durus 4.3's
    stream interface (``seek``, ``tell``, ``read``, ``write``): a current
    position of its own, which the positional calls neither use nor move.
    """

    _position = 0  # of the stream interface

    def __init__(self, name=None, readonly=False, **kwargs):
        self.readonly = readonly
        self.locked = False
        self.unsynced = False  # written with durable=False, not yet fsynced
        self.temporary = name is None
        self._delete_on_close = False
        if self.temporary:
            if readonly:
                raise ReadOnlyFileError('a temporary file cannot be '
                                        'read-only')
            fd, name = _make_temporary(kwargs)
            self._delete_on_close = kwargs.get('delete', True)
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
            raise permission_error(
                name, 'read' if readonly else 'write') from None
        except OSError as error:
            if readonly:
                raise
            raise write_error(error, name, 'open',
                              'open it read-only') from None
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | binary,
                         0o666)
        except FileNotFoundError:
            raise DatabaseNotFoundError(
                'cannot create %s: its directory does not exist' % name) \
                from None
        except PermissionError:
            raise permission_error(name, 'create') from None
        except OSError as error:
            raise write_error(error, name, 'create') from None
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

    @property
    def has_lock(self):
        """Durus 4.3's name for ``locked``."""
        return self.locked

    def obtain_lock(self):
        self._check_writable()  # a reader must not block the writer
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
            raise ReadOnlyFileError(
                '%s is open read-only; reopen it without readonly to change '
                'it' % self.name)

    def get_size(self):
        return os.fstat(self.fd).st_size

    # Durus 4.3's stream interface

    def get_name(self):
        return self.name

    def __len__(self):
        return self.stat().st_size

    def stat(self):
        # Of the open descriptor while open; by name once closed, as in
        # Durus 4.3.
        if self.fd is None:
            return os.stat(self.name)
        return os.fstat(self.fd)

    def _open_fd(self):
        if self.fd is None:
            raise ValueError('I/O operation on closed file %s' % self.name)
        return self.fd

    def seek(self, n, whence=0):
        """Move the stream position: ``whence`` 0 from the start, 1 from
        the current position, 2 from the end."""
        self._open_fd()
        if whence == 0:
            position = n
        elif whence == 1:
            position = self._position + n
        elif whence == 2:
            position = self.get_size() + n
        else:
            raise ValueError('whence value %r unsupported (0, 1 or 2)'
                             % (whence,))
        if position < 0:
            raise OSError(errno.EINVAL, 'cannot seek %s to the negative '
                          'position %d' % (self.name, position))
        self._position = position

    def seek_end(self):
        self._open_fd()
        self._position = self.get_size()

    def tell(self):
        self._open_fd()
        return self._position

    def read(self, n=None):
        """Up to ``n`` bytes (all up to the end when None or negative)
        from the stream position, which moves past them."""
        self._open_fd()
        if n is None or n < 0:
            n = max(0, self.get_size() - self._position)
        data = self.pread(n, self._position)
        self._position += len(data)
        return data

    def write(self, s):
        """Write ``s`` at the stream position, which moves past it."""
        self._open_fd()
        self.pwrite(s, self._position)
        self._position += memoryview(s).nbytes

    def flush(self):
        # Writes are unbuffered (pwrite): nothing waits in user space.
        self._open_fd()

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
        try:
            while view:
                done = os.pwrite(self.fd, view, offset)
                view = view[done:]
                offset += done
        except OSError as error:
            raise write_error(error, self.name, 'write to') from None

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
        except BaseException as error:
            try:
                self.truncate(offset)
            except OSError:
                pass
            if isinstance(error, DatabaseWriteError):
                advice = 'nothing was committed'
                if error.advice:
                    advice += '; ' + error.advice
                raise DatabaseWriteError(error.errno, self.name, 'commit to',
                                         advice) from None
            raise

    def truncate(self, size=None):
        """Cut the file to ``size`` bytes (None: at the stream position)."""
        self._check_writable()
        if size is None:
            size = self._position
        # Mapped pages past the new end must never be read (SIGBUS).
        self._mapped = min(self._mapped, size)
        try:
            os.ftruncate(self.fd, size)
        except OSError as error:
            raise write_error(error, self.name, 'truncate') from None

    def fsync(self):
        # fdatasync is enough for an append-only file (it flushes the new
        # size too) and skips the timestamp updates fsync also writes.
        # Cleared before, not after: a write made while the sync runs
        # (the server syncs in a helper thread) sets it again.
        self.unsynced = False
        try:
            getattr(os, 'fdatasync', os.fsync)(self.fd)
        except OSError as error:
            self.unsynced = True
            raise write_error(error, self.name, 'sync') from None
        except BaseException:
            self.unsynced = True
            raise

    def rename(self, name):
        """Give the file a new name (replacing any file there), durably."""
        self._check_writable()
        try:
            os.replace(self.name, name)
        except OSError as error:
            raise write_error(error, name, 'rename %s to' % self.name) \
                from None
        self.name = name
        self._delete_on_close = False  # it now has the name it was given
        fsync_directory(name)

    def close(self):
        if self.fd is not None:
            if self.unsynced:
                self.fsync()  # a deferred commit must not stay in the cache
            self._drop_map()  # it holds a duplicate of the descriptor
            fd, self.fd = self.fd, None
            self.locked = False  # closing the descriptor drops the lock
            os.close(fd)
            if self._delete_on_close:
                self._delete_on_close = False
                try:
                    os.unlink(self.name)
                except FileNotFoundError:
                    pass
