"""The one error hierarchy of durus.

Every error this package raises on purpose is a ``DurusError``.  Where
Durus 4.3 raised a builtin error (``KeyError``, ``IOError``, an
``AssertionError``), the class here also derives from the builtin it
replaces, ``AssertionError`` included, so application code that caught
the old error keeps working while new code can catch precisely.

Errors cross the wire and process boundaries, so each class keeps its
constructor arguments in ``self.args`` and survives ``pickle``.
"""

import os
import struct


from pickle import UnpicklingError


class DurusError(Exception):
    """Root of every error raised by durus."""


class DurusKeyError(KeyError, DurusError):
    """No record for an oid; raised with the oid as its argument."""

    def __str__(self):
        if not self.args:
            return 'no record'
        oid = self.args[0]
        if isinstance(oid, (bytes, bytearray)) and len(oid) == 8:
            return 'no record for oid %d' % int.from_bytes(oid, 'big')
        return 'no record for oid %r' % (oid,)


def _format_oids(oids):
    numbers = []
    for oid in oids:
        if isinstance(oid, (bytes, bytearray)) and len(oid) == 8:
            numbers.append(str(int.from_bytes(oid, 'big')))
        else:
            numbers.append(repr(oid))
    return ' '.join(numbers)


class ConflictError(DurusError):
    """Another client changed objects this transaction depends on.

    ``oids`` lists the conflicting oids (8-byte ``bytes``) or is None.
    The caller must ``abort()`` and redo the whole transaction.
    """

    def __init__(self, oids=None):
        DurusError.__init__(self, oids)
        self.oids = oids

    def __str__(self):
        # Durus 4.3's form: the first oid, '...' when there are more
        # (``oids`` has them all).
        if not self.oids:
            return 'conflicting oids not available'
        more = ' ...' if len(self.oids) > 1 else ''
        return 'oids=[%s%s]' % (_format_oids(self.oids[:1]), more)


class WriteConflictError(ConflictError):
    """A commit touched objects that another client committed meanwhile."""


class ReadConflictError(ConflictError):
    """Loading an object would mix states from different transactions."""


class ProtocolError(DurusError):
    """The client/server wire protocol was violated."""


class FrameTooLargeError(ProtocolError):
    """A peer announced a frame larger than the configured limit."""


class ServerUnreachableError(DurusError, ConnectionError, AssertionError):
    """No storage server answers at the given address."""


class ShortRead(DurusError, OSError):
    """Fewer bytes than required could be read (file or socket)."""


class ServerRefusedError(ProtocolError, ShortRead):
    """The storage server refused a request (its storage could not
    commit, the request was over its limits) and closed the connection;
    the message gives the server's reason.  Also a ShortRead (an
    OSError), what a client saw when the server hung up without a word."""


class AuthenticationError(ProtocolError):
    """The client and the server could not authenticate each other: a
    wrong user or secret, a server that requires authentication from a
    client given none, or a server that could not prove it knows the
    user (or does not authenticate at all)."""


class PermissionDeniedError(DurusError, PermissionError):
    """The user's role does not allow the request (a commit by a
    ``read`` user, a pack or stop by a non-``admin``)."""


class UsersFileError(DurusError, ValueError):
    """A users file (``durus -s --users``) cannot be read or has a bad
    line; the message names the file and the line."""


class DamagedFileError(ShortRead):
    """A database file is damaged at a known place.

    Carries ``filename``, ``offset`` (where the damage starts) and
    ``nbytes`` (how many bytes from there to the end are affected).
    """

    def __init__(self, message, filename=None, offset=None, nbytes=None):
        ShortRead.__init__(self, message, filename, offset, nbytes)
        self.message = message
        self.filename = filename
        self.offset = offset
        self.nbytes = nbytes

    def __str__(self):
        return self.message


class DatabaseInUseError(DurusError, BlockingIOError):
    """Another process (or storage object) holds the database's write lock."""

    def __str__(self):
        return self.args[0] if self.args else 'database is in use'


class ConcurrentWriterError(DatabaseInUseError):
    """Another program committed to a database this storage writes
    (a Durus 4.3 writer on a SQLite file: 4.3 takes no lock there)."""


class ReadOnlyError(DurusError, AssertionError):
    """A write was attempted on a storage opened read-only."""


class CommitVetoedError(DurusError):
    """A connection observer refused a commit (its reason is the message).

    Nothing was stored: the changes are still pending.
    """


class UnknownFormatError(DurusError, ValueError, AssertionError):
    """A file is not a database of any supported format."""


class ClassImportError(DurusError, ImportError):
    """A pickled class cannot be imported.

    ``module`` and ``classname`` name what the record asked for.
    """

    def __init__(self, module, classname, reason=None):
        DurusError.__init__(self, module, classname, reason)
        self.module = module
        self.classname = classname
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.module, self.classname, self.reason))

    def __str__(self):
        text = 'cannot import class %s.%s' % (self.module, self.classname)
        if self.reason:
            text += ' (%s)' % self.reason
        return text


class RefusedGlobalError(DurusError, UnpicklingError):
    """A record names a global the safe unpickling policy refuses.

    ``module`` and ``name`` say what the record named, ``oid`` (8 bytes or
    None) which record it is.
    """

    def __init__(self, module, name, oid=None, what='names'):
        DurusError.__init__(self, module, name, oid, what)
        self.module = module
        self.name = name
        self.oid = oid
        self.what = what

    def __reduce__(self):
        return (type(self), (self.module, self.name, self.oid, self.what))

    def __str__(self):
        where = ('record oid %d' % int.from_bytes(self.oid, 'big')
                 if isinstance(self.oid, bytes) and len(self.oid) == 8
                 else 'a record')
        return ('%s %s %s.%s, which the safe unpickling policy refuses '
                '(it loads persistent classes and plain value types only, '
                'never a function or other class a database names); if '
                'this name is trusted, allow it (--allow %s:%s, the '
                'DURUS_ALLOW environment variable, or '
                'durus.unpickle_policy.allow) or load with the trusted '
                'policy' % (where, self.what, self.module, self.name,
                            self.module, self.name))


class RefusedValueError(DurusError, ValueError):
    """A value standing for a refused global was to be changed or stored."""


class PlaceholderChangeError(DurusError):
    """An object of an unimportable class was changed or committed."""


class DatabaseNotFoundError(DurusError, FileNotFoundError):
    """The database path does not exist (and creating it was not asked for)."""


class DatabasePermissionError(DurusError, PermissionError):
    """The operating system refuses access to the database file."""


class UnexpectedOidError(DurusError, ValueError, AssertionError):
    """``store()`` got an oid that is not 8 bytes, or neither the root, nor
    an existing object, nor one handed out by this storage's ``new_oid()``
    (4.3 raised ValueError or asserted)."""


class StateLoadError(DurusError, ValueError, AssertionError):
    """A state load was asked for an object that is not a ghost, or for a
    ghost without a connection (4.3 asserted the object was a ghost)."""


# Durus 4.3 also offered str_to_int8 from this module (it imported it for
# its own use).  Defined here rather than imported from durus.utils, which
# imports this module: the error hierarchy stays a leaf of the package.
def str_to_int8(s, _unpack=struct.Struct('>Q').unpack):
    """The number held in 8 big-endian bytes (as durus.utils's)."""
    return _unpack(s)[0]


def permission_error(path, access):
    """The one ``DatabasePermissionError`` for ``access`` ('read',
    'write' or 'create') of ``path``."""
    way_out = 'check the mode and owner of the file and its directory'
    if access != 'read':
        way_out += ', or open it read-only'
    return DatabasePermissionError(
        'no permission to %s %s; %s' % (access, path, way_out))


class DatabaseWriteError(DurusError, OSError):
    """Writing a database file failed (full disk, read-only file system,
    I/O error); nothing of the commit stays.

    ``errno`` is the operating system's error number, ``filename`` the
    file; the message says what was being done and the way out.
    """

    def __init__(self, number, filename, action, advice=None):
        OSError.__init__(self, number, os.strerror(number), filename)
        self.action = action
        self.advice = advice

    def __reduce__(self):
        return (type(self), (self.errno, self.filename, self.action,
                             self.advice))

    def __str__(self):
        text = 'cannot %s %s: %s' % (self.action, self.filename,
                                     self.strerror)
        if self.advice:
            text += '; ' + self.advice
        return text


class InvalidOidError(DurusError, ValueError, AssertionError):
    """An oid argument is bytes of the wrong length (an oid is 8 bytes)."""


class OidTypeError(DurusError, TypeError, AssertionError):
    """An oid argument is not bytes."""


def bad_oid_error(oid):
    """The error for ``oid``, which is not 8 bytes: ``OidTypeError``
    (a ``TypeError``) or ``InvalidOidError`` (a ``ValueError``)."""
    if isinstance(oid, (bytes, bytearray)):
        return InvalidOidError('an oid is 8 bytes, not %d: %r'
                               % (len(oid), oid))
    return OidTypeError('an oid is 8 bytes, not %s %r'
                        % (type(oid).__name__, oid))
