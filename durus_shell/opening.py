"""Opening what the operator names: a database file or a storage server.

``open_file`` and ``open_client`` return a ``Target``: the storage plus
the facts the banner, ``:status`` and the toolbar show.  Facts are cheap:
a file's size from ``stat`` and its object count from the storage's index
(never by scanning records).  Errors are ``OpenError`` with a one-line
message that says what to do.
"""

import os

from durus_shell import render
from durus_shell.render import human_size


class OpenError(Exception):
    """The database cannot be opened; the message is one line for the
    operator."""


class Target(object):
    """What is open: ``kind`` 'file', 'server', 'postgresql' or
    'memory'."""

    def __init__(self, storage, kind, readonly=False, path=None,
                 format=None, address=None):
        self.storage = storage
        self.kind = kind
        self.readonly = readonly
        self.path = path
        self.format = format
        self.address = address
        self.damage = None  # a torn tail left out (read-only files)

    @property
    def label(self):
        """Short text for the toolbar."""
        if self.kind == 'file':
            return '%s (%s)' % (os.path.basename(self.path), self.format)
        if self.kind == 'server':
            return 'server %s' % self.address
        if self.kind == 'postgresql':
            return 'postgresql %s' % self.address
        return 'memory'

    def describe(self):
        """Lines saying what is open."""
        mode = ', read-only' if self.readonly else ''
        if self.kind == 'file':
            try:
                size = human_size(os.path.getsize(self.path))
            except OSError:
                size = '?'
            count, exact = object_count(self.storage)
            # An estimate names its source: :census counts the records.
            objects = '' if count is None else ', %s%s objects%s' % (
                '' if exact else 'about ', _thousands(count),
                '' if exact else ' (estimated from the index; :census '
                'counts them)')
            lines = ['%s: %s file, %s%s%s' % (self.path, self.format, size,
                                              objects, mode)]
            if self.damage is not None:
                lines.append(
                    'DAMAGED: %d bytes at offset %d are a torn transaction;'
                    ' showing the intact part before it (reopen with '
                    '--repair to cut the torn bytes off, kept aside)' % (
                        self.damage.nbytes, self.damage.offset))
            return lines
        if self.kind == 'server':
            if getattr(self.storage, 'connected', True) is False:
                return ['DISCONNECTED from the storage server at %s%s '
                        '(:reconnect, or any command, connects again)'
                        % (self.address, mode)]
            return ['Connected to the storage server at %s%s'
                    % (self.address, mode)]
        if self.kind == 'postgresql':
            count, exact = object_count(self.storage)
            objects = '' if count is None else ', %s objects' % (
                _thousands(count))
            return ['PostgreSQL database %s%s%s' % (self.address, objects,
                                                    mode)]
        return ['In-memory storage%s' % mode]


def _thousands(n):
    return '{:,}'.format(n)


def object_count(storage):
    """``(count, exact)``: the number of objects from the storage's index
    (``(None, False)`` if unknown); never a scan of the records."""
    try:
        facts = storage.describe()
    except Exception:
        return None, False
    return facts.get('objects'), bool(facts.get('exact'))


# -- files -------------------------------------------------------------------

def open_file(path, readonly=False, repair=False, create=False, ui=None):
    """Open a database file of any supported format.

    A missing path is an error unless ``create``.  A damaged file is
    refused; with ``repair`` the damage is shown, ``ui.ask`` confirms, and
    the file is repaired.
    """
    from durus import format as formats
    from durus.error import DamagedFileError, DatabaseInUseError, DurusError
    path = os.path.abspath(path)
    exists = os.path.exists(path)
    if not exists and not create:
        raise OpenError('%s does not exist; use --create to make a new '
                        'database there' % path)
    if exists and create and os.path.getsize(path) > 0:
        raise OpenError('%s already exists; leave out --create to open it'
                        % path)
    if create and readonly:
        raise OpenError('--create and --readonly exclude each other')
    if exists and os.path.isdir(path):
        raise OpenError('%s is a directory, not a database file' % path)
    if exists and not create and os.path.getsize(path) == 0:
        # Said in the shell's words (durus's own names create=True).
        raise OpenError('%s is empty (0 bytes), not a database; use '
                        '--create to make a new database in it' % path)
    try:
        if exists:
            kind = formats.detect_format(path)
        if repair and exists:
            _confirm_repair(formats, path, ui)
        # Read-only, a torn file opens at its last intact transaction:
        # the operator can look before deciding to --repair.
        intact = readonly and exists and kind in (formats.SHELF,
                                                   formats.DFS20)
        storage = formats.open_storage(path, readonly=readonly,
                                       repair=repair, create=create,
                                       **({'intact_part': True} if intact
                                          else {}))
    except OpenError:
        raise
    except DamagedFileError as error:
        message = str(error)
        if not repair and '--repair' not in message:
            message += '; run with --repair to see what would be dropped'
        if (not readonly and not repair
                and getattr(error, 'repairable', False)):
            message += ' (or --readonly to look at the intact part first)'
        raise OpenError(message)
    except DatabaseInUseError as error:
        raise OpenError('%s (use --readonly to look without writing)'
                        % error)
    except (DurusError, OSError, ValueError, NotImplementedError) as error:
        message = str(error)
        if path in message:  # durus's message already names the file
            raise OpenError(message)
        raise OpenError('cannot open %s: %s' % (path, message))
    if not exists:
        kind = formats.detect_format(path)
    target = Target(storage, 'file', readonly=readonly, path=path,
                    format=_format_name(kind))
    target.damage = getattr(storage, 'damage', None)
    return target


def _format_name(kind):
    return getattr(kind, 'name', None) or str(kind)


def _confirm_repair(formats, path, ui):
    """Show what a repair would drop and ask; OpenError if declined."""
    inspect = getattr(formats, 'inspect_damage', None)
    damage = inspect(path) if inspect is not None else None
    if damage is None:
        return
    if not getattr(damage, 'repairable', True):
        raise OpenError(damage.message() if hasattr(damage, 'message')
                        else str(damage))
    where = getattr(damage, 'offset', None)
    nbytes = getattr(damage, 'nbytes', None)
    reason = getattr(damage, 'reason', '')
    lines = ['%s is damaged from byte offset %s on: %s.'
             % (path, where, reason or 'incomplete last transaction'),
             'A repair drops the last %s (from byte offset %s to the end)'
             ' and keeps every earlier transaction.'
             % (_plural(nbytes, 'byte'), where)]
    saved = getattr(damage, 'torn_name', None)
    if saved is not None:
        lines.append('The dropped bytes are kept in %s.' % saved())
    if ui is None:
        raise OpenError(' '.join(lines))
    ui.show('\n'.join(lines))
    if ui.ask('Repair the file?', [('y', 'yes'), ('n', 'no')], 'n') != 'y':
        raise OpenError('not repaired; %s was left unchanged' % path)


def _plural(n, word):
    if n is None:
        return 'bytes'
    return '%s %s%s' % (_thousands(n), word, '' if n == 1 else 's')


# -- servers -----------------------------------------------------------------

DEFAULT_PORT = 2972
# Seconds to wait for a server to accept and answer the version handshake.
CONNECT_TIMEOUT = 3


def parse_client_address(text):
    """``HOST:PORT``, ``HOST``, ``:PORT``, ``[v6]:PORT``, ``/path`` or
    ``@name`` -> an address for ClientStorage."""
    text = text.strip()
    if not text:
        raise OpenError('--client needs HOST:PORT, /path/to/socket or @name')
    if text.startswith('@') or '/' in text:
        return text
    if text.startswith('['):
        host, _, rest = text[1:].partition(']')
        port = rest.lstrip(':') or str(DEFAULT_PORT)
    elif text.count(':') == 1:
        host, port = text.split(':')
    elif ':' in text:
        host, port = text, str(DEFAULT_PORT)  # a bare IPv6 address
    else:
        host, port = text, str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise OpenError('bad port %r in --client %s' % (port, text))
    return (host or '127.0.0.1', int(port))


def format_address(address):
    if isinstance(address, tuple):
        host, port = address
        return '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (
            host, port)
    return address


def open_client(text, readonly=False, **client_options):
    """Connect to a storage server; OpenError (one line) if unreachable.
    ``client_options``: user, secret, ssl_context (ClientStorage's)."""
    from durus.client_storage import ClientStorage
    address = parse_client_address(text)
    shown = format_address(address)
    from durus.error import DurusError
    try:
        storage = ClientStorage(address=address,
                                connect_timeout=CONNECT_TIMEOUT,
                                **client_options)
    except DurusError as error:  # its message says where and what to do
        raise OpenError(_one_line(error))
    except Exception as error:
        raise OpenError('no storage server answers at %s (%s); start one '
                        'with: durus -s' % (shown, _one_line(error)))
    return Target(storage, 'server', readonly=readonly, address=shown)


def _one_line(error):
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)


# -- PostgreSQL ----------------------------------------------------------------

def open_postgresql(url, readonly=False, create=False):
    """Open a PgStorage; OpenError (one line) when it cannot be."""
    from durus.error import DurusError
    if create and readonly:
        raise OpenError('--create and --readonly exclude each other')
    try:
        from durus.pg_storage import PgStorage, safe_dsn
        storage = PgStorage(url, readonly=readonly, create=create)
    except ImportError as error:
        raise OpenError(_one_line(error))
    except DurusError as error:
        message = _one_line(error)
        if 'create=True' in message:
            message += ' (durus-shell: --create)'
        raise OpenError(message)
    return Target(storage, 'postgresql', readonly=readonly,
                  address=safe_dsn(url))


# -- the root table ----------------------------------------------------------

MAX_ROOT_ROWS = 40


def root_table(session):
    """Fragments: the root's entries (key, class, oid, record size)."""
    from durus_shell import peek
    root = session.connection.get_root()
    if peek.container_kind(root) == 'dict':
        entries = peek.container_data(root, 'dict')
    else:
        entries = peek.raw_state(root)
    keys = list(entries)
    try:
        keys.sort()
    except TypeError:
        pass
    rows = []
    for key in keys[:MAX_ROOT_ROWS]:
        value = entries[key]
        rows.append([repr(key)] + _describe_value(session, value))
    out = [(render.T_NOTE, 'root <%s 0>, %d entr%s\n' % (
        type(root).__name__, len(keys), 'y' if len(keys) == 1 else 'ies'))]
    if rows:
        out += render.table(['key', 'class', 'oid', 'size'], rows)
    if len(keys) > MAX_ROOT_ROWS:
        out.append((render.T_NOTE, '\n... %d more (root.keys() lists them)'
                    % (len(keys) - MAX_ROOT_ROWS)))
    return out


def _describe_value(session, value):
    from durus_shell import peek
    if not peek.is_persistent(value):
        size = len(value) if isinstance(value, (str, bytes, list, tuple,
                                                dict, set)) else None
        return [type(value).__name__, '-',
                'inline' if size is None else 'inline, %d' % size]
    oid = peek.oid_of(value)
    if oid is None:
        return [type(value).__name__, 'new', '-']
    try:
        size = human_size(len(session.storage.load(oid)))
    except Exception:
        size = '?'
    return [type(value).__name__, str(int.from_bytes(oid, 'big')), size]


def banner(session):
    """Fragments shown when the shell starts."""
    out = []
    if session.target is not None:
        out.append((render.T_HEAD, '\n'.join(session.target.describe())))
        out.append((render.T_TEXT, '\n'))
    out += root_table(session)
    from durus_shell.refusals import banner_fragments, refusal_note
    out += banner_fragments(session)
    note = refusal_note(session)
    if note:
        out.append((render.T_TEXT, '\n'))
        out += note
    out.append((render.T_NOTE, '\nType :help for commands and keys (F1), '
                'Tab to complete, Ctrl-D to leave.'))
    return out
