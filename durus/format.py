"""Open any supported database file by looking at its first bytes.

================  =====================  ===========================
first bytes       format                 storage class
================  =====================  ===========================
``SHELF-1\\n``     ``'SHELF-1'``           durus.file_storage.FileStorage
``DFS20\\0``       ``'DFS20'``             durus.file_storage2.FileStorage2
``SQLite format``  ``'SQLite'``            durus.sqlite_storage.SqliteStorage
================  =====================  ===========================

Unlike the storage constructors (which create a missing file, as Durus
4.3 does), ``open_storage`` creates nothing unless ``create=True``, and
explains every file it cannot open: missing, empty, a directory, not
readable, or of another kind.  Checking never changes the file.
"""

import os

from durus.error import (
    DatabaseNotFoundError, UnknownFormatError, permission_error)

SHELF = 'SHELF-1'
DFS20 = 'DFS20'
SQLITE = 'SQLite'

_MARKERS = ((b'SHELF-1\n', SHELF), (b'DFS20\0', DFS20),
            (b'SQLite format 3\0', SQLITE))
_CLASS_PATHS = {
    SHELF: 'durus.file_storage.FileStorage',
    DFS20: 'durus.file_storage2.FileStorage2',
    SQLITE: 'durus.sqlite_storage.SqliteStorage',
}


def import_storage_class(dotted):
    """The class a dotted path such as ``durus.file_storage.FileStorage``
    names: the one place where a storage class is found by its name (the
    formats above, ``durus -s --storage-class``)."""
    module_name, _, class_name = dotted.rpartition('.')
    if not module_name or not class_name:
        raise ValueError('a storage class is named module.Class, not %r'
                         % (dotted,))
    module = __import__(module_name, fromlist=[class_name])
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ImportError('module %s has no class %s'
                          % (module_name, class_name)) from None


def _storage_class(kind):
    return import_storage_class(_CLASS_PATHS[kind])


def detect_format(path):
    """``'SHELF-1'``, ``'DFS20'`` or ``'SQLite'`` for an existing file.

    Raises ``DatabaseNotFoundError``, ``DatabasePermissionError`` or
    ``UnknownFormatError`` (empty file, directory, other kind of file).
    """
    if os.path.isdir(path):
        raise UnknownFormatError('%s is a directory, not a database file'
                                 % path)
    try:
        with open(path, 'rb') as f:
            head = f.read(16)
    except FileNotFoundError:
        raise DatabaseNotFoundError(
            '%s does not exist; pass create=True (command line: --create) '
            'to create a new database there' % path) from None
    except PermissionError:
        raise permission_error(path, 'read') from None
    if not head:
        raise UnknownFormatError(
            '%s is empty (0 bytes), not a database; pass create=True '
            '(command line: --create) to create a database in it' % path)
    for marker, kind in _MARKERS:
        if head.startswith(marker):
            return kind
    raise UnknownFormatError(
        '%s is not a durus database: it starts with %r, not with a '
        'SHELF-1, DFS20 or SQLite marker' % (path, head[:8]))


def get_storage_class(path):
    """The storage class for the existing file at ``path``."""
    return _storage_class(detect_format(path))


def open_storage(path, readonly=False, repair=False, create=False,
                 kind=SHELF, intact_part=False):
    """Open the database at ``path`` with the storage its marker names.

    With ``create=True`` a missing path or an empty file becomes a new
    database of ``kind`` (default SHELF-1, i.e. FileStorage).
    ``intact_part=True`` (with ``readonly``) opens a file with a torn
    last transaction at the end of its last intact one; the storage's
    ``damage`` names what was left out (FileStorage and FileStorage2).
    """
    try:
        found = detect_format(path)
    except DatabaseNotFoundError:
        if not create or readonly:
            raise
        found = kind
    except UnknownFormatError:
        if not (create and not readonly and os.path.isfile(path)
                and os.path.getsize(path) == 0):
            raise
        found = kind
    if found not in _CLASS_PATHS:
        raise ValueError('unknown storage kind %r; use one of %s'
                         % (found, ', '.join(sorted(_CLASS_PATHS))))
    if not readonly and not os.access(path, os.W_OK) and os.path.exists(path):
        raise permission_error(path, 'write')
    if intact_part:
        if found not in (SHELF, DFS20):
            raise ValueError('intact_part applies to FileStorage and '
                             'FileStorage2 files, not %s' % (found,))
        return _storage_class(found)(path, readonly=readonly, repair=repair,
                                     intact_part=True)
    return _storage_class(found)(path, readonly=readonly, repair=repair)


def inspect_damage(path):
    """The damage a repair would remove (a ``durus.shelf.Damage``) or None.

    Reads only; use it to show what would be dropped before repairing.
    """
    kind = detect_format(path)
    if kind == SHELF:
        from durus.file_storage import inspect_file
    elif kind == DFS20:
        from durus.file_storage2 import inspect_file
    else:
        return None  # SQLite keeps its own journal
    return inspect_file(path)
