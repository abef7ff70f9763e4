"""Storages named by one string, for the command line.

* ``postgresql://...`` or ``postgres://...``: a PgStorage (the URL goes
  to libpq unchanged);
* ``durus://HOST:PORT`` or ``durus:///path/to/socket``: a storage server
  (ClientStorage);
* anything else: a database file, its format sniffed (SHELF-1, DFS20,
  SQLite).
"""

from urllib.parse import urlsplit

PG_SCHEMES = ('postgresql://', 'postgres://')
SERVER_SCHEME = 'durus://'


def is_postgresql(name):
    return isinstance(name, str) and name.lower().startswith(PG_SCHEMES)


def is_server(name):
    return isinstance(name, str) and name.lower().startswith(SERVER_SCHEME)


def shown_name(name):
    """``name`` for messages: a PostgreSQL URL without its password."""
    if is_postgresql(name):
        from durus.pg_storage import safe_dsn
        return safe_dsn(name)
    return name


def server_address(name):
    """``durus://HOST:PORT`` -> ``(host, port)``; ``durus:///path`` ->
    the socket path."""
    parts = urlsplit(name)
    if parts.netloc:
        try:
            port = parts.port
        except ValueError as error:
            raise ValueError('bad port in %s: %s' % (name, error)) from None
        from durus.socket_address import DEFAULT_HOST, DEFAULT_PORT
        return (parts.hostname or DEFAULT_HOST, port or DEFAULT_PORT)
    if not parts.path:
        raise ValueError('%s names no server: use durus://HOST:PORT or '
                         'durus:///path/to/socket' % name)
    return parts.path


def open_named_storage(name, readonly=False, create=False):
    """The storage ``name`` designates (see the module docstring)."""
    if is_postgresql(name):
        from durus.pg_storage import PgStorage
        return PgStorage(name, create=create, readonly=readonly)
    if is_server(name):
        from durus.client_storage import ClientStorage
        return ClientStorage(address=server_address(name))
    from durus.format import open_storage
    return open_storage(name, readonly=readonly, create=create)
