"""The ``durus`` command (also ``python -m durus``).

    durus -s [options]   run a storage server (or --stop one)
    durus -c [options]   open durus-shell on a file or a server
    durus -p [options]   pack a file or a server's storage
    durus passwd FILE NAME --role ROLE
                         add or change a user of a server's users file

Options use optparse syntax (``--opt=value`` or ``--opt value``), as in
Durus 4.3.  The server listens on 127.0.0.1 unless told otherwise; it
refuses to listen where other users or machines can connect (another
interface, an abstract socket) unless it has users (``--users``) or is
told ``--insecure``.  See docs/security.md.
"""

import logging
import os
import signal
import sys
import time
from optparse import OptionParser

from durus.credentials import add_client_options, client_storage_options
from durus.error import DurusError
from durus.format import (
    get_storage_class as sniff_storage_class, import_storage_class,
    open_storage)
from durus.logger import direct_output, log, logger
from durus.socket_address import (
    DEFAULT_HOST, DEFAULT_PORT, HostPortAddress, SocketAddress)
from durus.utils import lazy_names

USAGE = """\
usage: durus -s | -c | -p [options]
       durus copy SOURCE DESTINATION [--force]
       durus passwd FILE NAME --role read|write|admin
       durus check PATH | --client HOST:PORT [--json] [--strict]
  -s      run a storage server (durus -s --help for its options)
  -c      open durus-shell on a database file or a storage server
  -p      pack a database file or a storage server's database
  copy    copy every reachable record from one storage to another (a file,
          postgresql://URL or durus://HOST:PORT)
  passwd  add or change a user in a users file (durus -s --users FILE)
  check   check a database: missing, unreachable and damaged records,
          unimportable classes, BTree invariants (exit 0 clean,
          1 problems, 2 cannot open)"""

UNPROTECTED = """refusing to listen on %s without users: anyone who can connect there could
read, change, pack or stop the database.  Add users and start with --users:
    durus passwd users.txt NAME --role admin
    durus -s --users users.txt ...
(and --tls-cert/--tls-key so that secrets and data are encrypted), or
listen on 127.0.0.1 or a Unix socket file, or accept the risk with
--insecure."""

STOP_WAIT = 10.0
DEFAULT_GCBYTES = 0     # the server's default: never pack automatically

# Names Durus 4.3's durus.__main__ also offered, imported when first asked
# for (so `durus -p` does not load the server): name -> module.
_LAZY_NAMES = {
    'ClientStorage': 'durus.client_storage', 'Connection': 'durus.connection',
    'StorageServer': 'durus.storage_server',
    'wait_for_server': 'durus.storage_server',
    'int8_to_str': 'durus.utils', 'str_to_int8': 'durus.utils',
    'write': 'durus.utils',
}

# Entry points through which installed applications add commands (the
# shell adds 'shell', which ``durus -c`` runs with a durus-shell argv).
COMMANDS_GROUP = 'durus.commands'


__getattr__, __dir__ = lazy_names(__name__, _LAZY_NAMES)


def usage():
    """Write the command's usage to stdout."""
    sys.stdout.write(USAGE + '\n')


def configure_readline(namespace, history_path):
    """Tab completion over ``namespace`` and a history kept in
    ``history_path``, where the readline module exists."""
    try:
        import atexit
        import readline
        import rlcompleter
    except ImportError:
        return
    readline.set_completer(rlcompleter.Completer(namespace).complete)
    readline.parse_and_bind('tab: complete')
    if os.path.exists(history_path):
        try:
            readline.read_history_file(history_path)
        except OSError:
            pass    # an unreadable history only loses the history
    atexit.register(readline.write_history_file, history_path)


def interactive_client(file, address, cache_size, readonly, repair,
                       startup, storage_class=None):
    """Durus 4.3's ``durus -c`` entry point: here it opens durus-shell on
    ``file``, or on the server at ``address`` when ``file`` is empty.
    ``storage_class`` is not needed: the shell recognises the format."""
    from optparse import Values
    options = Values(dict(file=file, address=None, host=DEFAULT_HOST,
                          port=DEFAULT_PORT, cache_size=cache_size,
                          readonly=readonly, repair=repair, startup=startup))
    if not file:
        address = SocketAddress.new(address)
        if isinstance(address, HostPortAddress):
            options.host, options.port = address.host, address.port
        else:
            options.address = str(address)
    return find_command('shell')(shell_arguments(options))


def import_class(name):
    """The class named by a dotted path such as ``durus.file_storage.FileStorage``."""
    return import_storage_class(name)


def get_storage_class(file):
    """The storage class for an existing file (sniffed)."""
    return sniff_storage_class(file)


def get_storage(file, storage_class=None, **kw):
    """Open ``file`` (``readonly``/``repair`` keywords); no file means a
    new temporary FileStorage."""
    if storage_class is not None:
        if isinstance(storage_class, str):
            storage_class = import_class(storage_class)
        return storage_class(file, **kw)
    if file is None:
        from durus.file_storage import TempFileStorage
        return TempFileStorage()
    from durus.storage_names import is_postgresql
    if is_postgresql(file):
        from durus.pg_storage import PgStorage
        return PgStorage(file, readonly=kw.get('readonly', False),
                         create=kw.get('create', True))
    return open_storage(file, readonly=kw.get('readonly', False),
                        repair=kw.get('repair', False), create=True)


def _storage_name(storage):
    get_filename = getattr(storage, 'get_filename', None)
    return get_filename() if get_filename is not None else str(storage)


def start_durus(logfile, logginglevel, address, storage, gcbytes=0,
                max_frame=None, insecure=False, **server_options):
    """Serve ``storage`` until Q, SIGTERM or SIGINT; then close it.
    ``server_options``: StorageServer keywords (users, ssl_context, ...).
    Without users, an address others can reach is refused (ValueError)
    unless ``insecure``."""
    from durus.storage_server import StorageServer
    if logfile:
        direct_output(open(logfile, 'a', buffering=1))
    logger.setLevel(logginglevel)
    from durus.systemd_socket import get_systemd_socket
    inherited = get_systemd_socket()
    address = SocketAddress.new(inherited or address)
    if not address.is_protected() and not server_options.get('users'):
        if not insecure:
            storage.close()
            raise ValueError(UNPROTECTED % address)
        log(logging.WARNING, 'WARNING: listening on %s without users '
            '(--insecure): anyone who can reach this address can read, '
            'change, pack and stop the database', address)
    log(logging.INFO, 'Storage file=%s address=%s', _storage_name(storage),
        address)
    if server_options.get('users'):
        log(logging.INFO, 'Authentication required: %d users',
            len(server_options['users']))
    if server_options.get('ssl_context') is not None:
        log(logging.INFO, 'TLS%s', ' with client certificates'
            if server_options['ssl_context'].verify_mode else '')
    limits = {} if max_frame is None else {'max_frame': max_frame}
    try:
        server = StorageServer(storage, address=address, gcbytes=gcbytes,
                               **limits, **server_options)
    except BaseException:
        storage.close()
        raise
    try:
        server.listen()
    except BaseException:
        storage.close()
        raise

    def stop(signum, frame):
        log(logging.INFO, 'Stopping on signal %d', signum)
        server.stop()

    previous = {sig: signal.signal(sig, stop)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_durus(address, **client_options):
    """Ask the server at ``address`` to quit; wait for the address to free.
    ``client_options``: ClientStorage keywords (user, secret,
    ssl_context) for a server that needs them.

    Returns True when it stopped, False when nobody was listening, None
    when it is still answering after STOP_WAIT seconds.
    """
    address = SocketAddress.new(address)
    if client_options:
        from durus.client_storage import ClientStorage
        from durus.error import ServerUnreachableError
        try:
            client = ClientStorage(address=address, timeout=STOP_WAIT,
                                   **client_options)
        except ServerUnreachableError:
            client = None
        if client is None:
            log(logging.INFO, "Durus server %s doesn't seem to be running.",
                address)
            return False
        client.stop_server()
    else:
        sock = address.get_connected_socket(timeout=STOP_WAIT)
        if sock is None:
            log(logging.INFO, "Durus server %s doesn't seem to be running.",
                address)
            return False
        with sock:
            sock.sendall(b'Q')
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        try:
            probe = address.get_connected_socket(timeout=1)
        except OSError:
            probe = None
        if probe is None:
            log(logging.INFO, 'Durus server %s stopped.', address)
            return True
        probe.close()
        time.sleep(0.05)
    hint = '' if client_options else (
        ' (a server with users stops only for an admin: durus -s --stop '
        '--user NAME)')
    log(logging.WARNING, 'Durus server %s is still answering after %d s%s.',
        address, STOP_WAIT, hint)
    return None


def _address_options(parser):
    parser.add_option('--host', default=DEFAULT_HOST,
                      help='host to listen on or connect to [%default]')
    parser.add_option('--port', type='int', default=DEFAULT_PORT,
                      help='TCP port [%default]')
    parser.add_option('--address', default=None,
                      help='Unix socket path, or @name for a Linux abstract '
                           'socket (overrides --host and --port)')


def _pg_option(parser, text):
    parser.add_option('--pg', metavar='DSN', default=None,
                      help=text + " (a libpq connection string or "
                           "postgresql:// URL; needs pip install "
                           "'durus-shell[postgresql]')")


def _address(options):
    if options.address:
        return SocketAddress.new(
            options.address, owner=getattr(options, 'owner', None),
            group=getattr(options, 'group', None),
            umask=getattr(options, 'umask', None),
            mode=getattr(options, 'socket_mode', None))
    return HostPortAddress(options.host, options.port)


def _fail(message):
    sys.stderr.write('durus: %s\n' % message)
    return 1


def run_durus_main(args=None):
    """``durus -s``: serve a database (or --stop a server)."""
    parser = OptionParser(prog='durus -s', usage='%prog [options]')
    parser.add_option('--file', default=None,
                      help='database file (default: a temporary file)')
    parser.add_option('--storage-class', dest='storage_class', default=None,
                      help='dotted class path (default: sniffed from the '
                           'file)')
    _pg_option(parser, 'serve the Durus database in this PostgreSQL '
                       'database (made there if it has none)')
    _address_options(parser)
    parser.add_option('--owner', default=None,
                      help='owner of the Unix socket file')
    parser.add_option('--group', default=None,
                      help='group of the Unix socket file')
    parser.add_option('--umask', type='int', default=None,
                      help='umask while creating the Unix socket file')
    parser.add_option('--gcbytes', type='int', default=0,
                      help='pack automatically after this many committed '
                           'bytes (0: never) [%default]')
    parser.add_option('--max-frame', dest='max_frame', type='int',
                      default=None,
                      help='largest commit or record in bytes a client may '
                           'send (default 512 MiB)')
    parser.add_option('--logginglevel', type='int', default=20,
                      help='logging level, 10 debug .. 50 critical '
                           '[%default]')
    parser.add_option('--logfile', default=None,
                      help='append the log (and stdout/stderr) to this file')
    parser.add_option('--repair', action='store_true', default=False,
                      help='repair a torn last transaction when opening')
    parser.add_option('--readonly', action='store_true', default=False,
                      help='serve the file read-only')
    parser.add_option('--stop', action='store_true', default=False,
                      help='stop the server at the address (with --user '
                           'and --tls-* for a server that needs them)')
    parser.add_option('--users', default=None,
                      help='require authentication: users, roles and '
                           'verifiers, one a line (made by durus passwd)')
    parser.add_option('--insecure', action='store_true', default=False,
                      help='allow listening beyond loopback and socket files '
                           'without --users')
    parser.add_option('--socket-mode', dest='socket_mode', default=None,
                      help='permissions of the Unix socket file, octal '
                           '[0600]')
    parser.add_option('--peer-uid', dest='peer_uid', action='append',
                      default=[], metavar='UID:ROLE',
                      help='on a Unix socket, give connections of this user '
                           '(id or name) a role without a secret; repeatable')
    parser.add_option('--tls-cert', dest='tls_cert', default=None,
                      help='serve TLS with this certificate (chain) file')
    parser.add_option('--tls-key', dest='tls_key', default=None,
                      help='private key of --tls-cert (if not in that file)')
    parser.add_option('--tls-client-ca', dest='tls_client_ca', default=None,
                      help='require client certificates signed by this CA')
    parser.add_option('--max-buffered', dest='max_buffered', type='int',
                      default=None,
                      help='most bytes of partial requests buffered across '
                           'all clients (default 1 GiB)')
    parser.add_option('--max-connections', dest='max_connections',
                      type='int', default=None,
                      help='most connections open at once; more are refused '
                           '(default: what the limit on open files allows)')
    parser.add_option('--max-per-peer', dest='max_per_peer', type='int',
                      default=None,
                      help='most connections open at once from one peer '
                           'host (or Unix user); default: no such limit')
    stop_options = OptionParser(add_help_option=False)
    add_client_options(stop_options)
    for option in stop_options.option_list:
        if option.dest not in ('tls_cert', 'tls_key'):
            parser.add_option(option)
    options, rest = parser.parse_args(args)
    if rest:
        parser.error('unexpected arguments: %s' % ' '.join(rest))
    try:
        if options.socket_mode is not None:
            try:
                options.socket_mode = int(options.socket_mode, 8)
            except ValueError:
                raise ValueError('--socket-mode takes octal permissions such '
                                 'as 0660, not %r' % options.socket_mode)
        address = _address(options)
        if options.stop:
            stopped = stop_durus(address, **client_storage_options(options))
            return 1 if stopped is None else 0
        server_options = _server_options(options)
        storage = get_storage(options.pg or options.file,
                              options.storage_class,
                              readonly=options.readonly,
                              repair=options.repair)
        start_durus(options.logfile, options.logginglevel, address, storage,
                    options.gcbytes, options.max_frame, options.insecure,
                    **server_options)
    except (DurusError, OSError, ImportError, ValueError) as error:
        return _fail(str(error) or type(error).__name__)
    return 0


def _server_options(options):
    """StorageServer keywords from the durus -s options (files loaded,
    with clear errors, before the storage is opened)."""
    from durus.auth import check_role, load_users
    server_options = {'readonly': options.readonly}
    if options.users:
        server_options['users'] = load_users(options.users)
    if options.tls_cert:
        from durus.tls import server_context
        server_options['ssl_context'] = server_context(
            options.tls_cert, options.tls_key, options.tls_client_ca)
    elif options.tls_key or options.tls_client_ca:
        raise ValueError('--tls-key and --tls-client-ca need --tls-cert')
    if options.max_buffered is not None:
        server_options['max_buffered'] = options.max_buffered
    from durus.admission import check_limit
    for name in ('max_connections', 'max_per_peer'):
        value = check_limit('--' + name.replace('_', '-'),
                            getattr(options, name))
        if value is not None:
            server_options[name] = value
    peer_roles = {}
    for entry in options.peer_uid:
        who, sep, role = entry.rpartition(':')
        if not sep:
            raise ValueError('--peer-uid takes UID:ROLE, not %r' % entry)
        from durus.socket_address import _user_id
        try:
            peer_roles[_user_id(who)] = check_role(role)
        except KeyError:
            raise ValueError('--peer-uid: no user %r' % who) from None
    if peer_roles:
        server_options['peer_roles'] = peer_roles
    return server_options


def passwd_main(args=None):
    """``durus passwd FILE NAME --role ROLE``: add or change a user."""
    import getpass
    from durus.auth import DEFAULT_ITERATIONS, ROLES, set_user
    parser = OptionParser(prog='durus passwd',
                          usage='%prog FILE NAME --role ROLE')
    parser.add_option('--role', choices=ROLES, default=None,
                      help='read, write or admin')
    parser.add_option('--iterations', type='int', default=DEFAULT_ITERATIONS,
                      help='PBKDF2 rounds [%default]')
    options, rest = parser.parse_args(args)
    if len(rest) != 2 or options.role is None:
        parser.error('give FILE NAME --role ROLE')
    filename, name = rest
    try:
        if sys.stdin.isatty():
            secret = getpass.getpass('Secret for %s: ' % name)
            if getpass.getpass('Again: ') != secret:
                return _fail('the two secrets differ; nothing changed')
        else:
            secret = sys.stdin.readline().rstrip('\r\n')
        if not secret:
            return _fail('empty secret; nothing changed')
        added = set_user(filename, name, options.role, secret,
                         options.iterations)
    except (DurusError, OSError, ValueError) as error:
        return _fail(str(error))
    sys.stdout.write('%s user %s (role %s) in %s\n'
                     % ('added' if added else 'changed', name, options.role,
                        filename))
    return 0


def client_main(args=None):
    """``durus -c``: open durus-shell with the same options."""
    parser = OptionParser(prog='durus -c', usage='%prog [options]')
    parser.add_option('--file', default=None,
                      help='open this database file instead of a server')
    parser.add_option('--storage-class', dest='storage_class', default=None,
                      help='ignored: durus-shell sniffs the file format')
    _address_options(parser)
    parser.add_option('--cache_size', type='int', default=10000,
                      help='object cache size [%default]')
    parser.add_option('--repair', action='store_true', default=False)
    parser.add_option('--readonly', action='store_true', default=False)
    parser.add_option('--startup', default=os.environ.get('DURUSSTARTUP'),
                      help='Python file to run at start [$DURUSSTARTUP]')
    add_client_options(parser)
    options, rest = parser.parse_args(args)
    if rest:
        parser.error('unexpected arguments: %s' % ' '.join(rest))
    try:
        shell_main = find_command('shell')
    except (LookupError, ImportError, AttributeError) as error:
        return _fail('durus -c needs durus-shell: %s; install the '
                     'durus-shell package' % error)
    return shell_main(shell_arguments(options))


def find_command(name):
    """The callable that the ``durus.commands`` entry point ``name`` names.

    The shell registers itself there (pyproject.toml), so this package
    never imports it: ``durus -c`` works whenever some installed
    distribution provides the command.  Raises LookupError when none does,
    ImportError/AttributeError when the one found cannot be loaded.
    """
    from importlib.metadata import entry_points  # only -c pays its import
    found = entry_points(group=COMMANDS_GROUP, name=name)
    for entry_point in found:
        return entry_point.load()
    raise LookupError('no installed package provides the %r command (entry '
                      'point group %s)' % (name, COMMANDS_GROUP))


def shell_arguments(options):
    """The durus-shell command line equivalent to ``durus -c`` options."""
    argv = []
    from durus.storage_names import is_postgresql
    if options.file and is_postgresql(options.file):
        argv.append(options.file)
    elif options.file:
        argv.append(options.file)
        if not os.path.exists(options.file):
            argv.append('--create')     # durus -c creates, as in 4.3
    elif options.address:
        address = options.address
        if not address.startswith('@') and '/' not in address:
            address = './' + address   # durus-shell reads a bare name as a host
        argv += ['--client', address]
    else:
        host = options.host
        argv += ['--client', '[%s]:%d' % (host, options.port) if ':' in host
                 else '%s:%d' % (host, options.port)]
    if options.readonly:
        argv.append('--readonly')
    if options.repair:
        argv.append('--repair')
    if options.cache_size is not None:
        argv += ['--cache-size', str(options.cache_size)]
    if options.startup:
        argv += ['--startup', options.startup]
    for name in ('user', 'secret_file', 'tls_ca', 'tls_cert', 'tls_key'):
        value = getattr(options, name, None)
        if value:
            argv += ['--' + name.replace('_', '-'), value]
    return argv


def pack_storage_main(args=None):
    """``durus -p``: pack a file, or ask a server to pack."""
    parser = OptionParser(prog='durus -p', usage='%prog [options]')
    parser.add_option('--file', default=None,
                      help='pack this database file directly')
    _pg_option(parser, 'pack the Durus database in this PostgreSQL '
                       'database')
    _address_options(parser)
    add_client_options(parser)
    options, rest = parser.parse_args(args)
    if rest:
        parser.error('unexpected arguments: %s' % ' '.join(rest))
    try:
        if options.pg or options.file:
            storage = get_storage(options.pg or options.file, create=False)
        else:
            from durus.client_storage import ClientStorage
            storage = ClientStorage(address=_address(options),
                                    **client_storage_options(options))
        try:
            from durus.connection import Connection
            from durus.unpickle_policy import UnpicklePolicy
            # Packing reads refs trailers only; the root a Connection
            # loads must not run anything its record names.
            Connection(storage, unpickle_policy=UnpicklePolicy.safe(
                placeholders=True)).pack()
        finally:
            storage.close()
    except (DurusError, OSError, ImportError, ValueError) as error:
        return _fail(str(error) or type(error).__name__)
    return 0


def copy_main(args=None):
    """``durus copy SRC DST``: copy every reachable record."""
    parser = OptionParser(prog='durus copy',
                          usage='%prog SOURCE DESTINATION [--force]')
    parser.add_option('--force', action='store_true', default=False,
                      help='write into a destination that is not empty')
    options, rest = parser.parse_args(args)
    if len(rest) != 2:
        parser.error('name a SOURCE and a DESTINATION')
    from durus.copy import copy_storage
    from durus.storage_names import open_named_storage
    source = destination = None
    try:
        source = open_named_storage(rest[0], readonly=True)
        destination = open_named_storage(rest[1], create=True)
        count = copy_storage(source, destination, force=options.force)
    except (DurusError, OSError, ImportError, ValueError) as error:
        return _fail(str(error) or type(error).__name__)
    finally:
        for storage in (source, destination):
            if storage is not None:
                storage.close()
    from durus.storage_names import shown_name
    sys.stdout.write('copied %d records from %s to %s; the destination '
                     'has them all\n' % (count, shown_name(rest[0]),
                                          shown_name(rest[1])))
    return 0


def check_main(args=None):
    """``durus check``: see durus.check_command."""
    from durus.check_command import main as check_command
    return check_command(args)


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    commands = {'-s': run_durus_main, '-c': client_main,
                '-p': pack_storage_main, 'copy': copy_main,
                'passwd': passwd_main, 'check': check_main}
    if args and args[0] in ('-h', '--help'):
        sys.stdout.write(USAGE + '\n')
        return 0
    if not args or args[0] not in commands:
        sys.stderr.write(USAGE + '\n')
        return 2
    return commands[args[0]](args[1:]) or 0


if __name__ == '__main__':
    sys.exit(main())
