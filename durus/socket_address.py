"""Where a storage server listens and how a client reaches it.

``SocketAddress.new(address)`` turns what a user typed into one of:

* ``HostPortAddress(host, port)``: TCP; IPv6 when the host contains ':'.
* ``UnixDomainSocketAddress(path, owner, group, umask)``: a socket file.
* ``UnixAbstractAddress('@name')``: a Linux abstract socket (no file);
  every '@' stands for a NUL byte.
* ``InheritedSocket(sock)``: a listening socket handed over by systemd.

Each offers ``get_listening_socket()``, ``get_connected_socket(timeout)``
(None when nobody is listening), ``set_connection_options(sock)`` and
``close(sock)`` (which also removes a socket file).
"""

import errno
import os
import socket

DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 2972
DEFAULT_SOCKET_MODE = 0o600
BACKLOG = 40

# Connect errors that mean "no server there" rather than a broken network.
_NOBODY_LISTENING = (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)


class SocketAddress(object):
    """Base of every address kind; see the module docstring."""

    family = None

    @staticmethod
    def new(address, **options):
        """The SocketAddress for ``address``.

        ``options`` (owner, group, umask) only apply to socket files and
        are ignored for other kinds.
        """
        if isinstance(address, SocketAddress):
            return address
        if isinstance(address, socket.socket):
            return InheritedSocket(address)
        if isinstance(address, (tuple, list)):
            host, port = address
            return HostPortAddress(host, port)
        if isinstance(address, bytes):
            address = address.decode('utf-8')
        if isinstance(address, str):
            if address.startswith('@'):
                return UnixAbstractAddress(address)
            return UnixDomainSocketAddress(address, **options)
        raise TypeError('not a socket address: %r' % (address,))

    def target(self):
        """What ``bind``/``connect`` take."""
        raise NotImplementedError

    def is_loopback(self):
        """True when only processes on this machine can connect."""
        return True

    def is_protected(self):
        """True when only this machine's processes can connect, further
        limited by file permissions (loopback TCP counts: the server is
        then only as exposed as the machine).  The server refuses to
        listen anywhere else without users (durus -s --users)."""
        return self.is_loopback()

    def set_connection_options(self, s):
        """Options for each connected socket (either end)."""

    def get_address_family(self):
        return self.family

    def bind_socket(self, s):
        """Bind ``s`` (a new socket of this family) to this address."""
        self._bind(s)

    def _new_socket(self):
        return socket.socket(self.family, socket.SOCK_STREAM)

    def _bind(self, sock):
        sock.bind(self.target())

    def get_listening_socket(self):
        sock = self._new_socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self._bind(sock)
            except OSError as error:
                raise OSError(error.errno, 'cannot listen on %s: %s'
                              % (self, error.strerror)) from None
            sock.listen(BACKLOG)
        except BaseException:
            sock.close()
            raise
        return sock

    def get_connected_socket(self, timeout=None):
        """A socket connected to the server, or None if nobody listens."""
        sock = self._new_socket()
        sock.settimeout(timeout)
        try:
            sock.connect(self.target())
        except OSError as error:
            sock.close()
            if error.errno in _NOBODY_LISTENING:
                return None
            raise
        self.set_connection_options(sock)
        return sock

    def close(self, s):
        s.close()


class HostPortAddress(SocketAddress):

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT):
        self.host = host
        self.port = int(port)
        self.family = socket.AF_INET6 if ':' in host else socket.AF_INET

    def target(self):
        return (self.host, self.port)

    def is_loopback(self):
        return self.host in ('localhost', '::1') or self.host.startswith('127.')

    def bind_socket(self, socket):      # 4.3's parameter name here
        self._bind(socket)

    def set_connection_options(self, s):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get_connected_socket(self, timeout=None):
        try:
            sock = socket.create_connection(self.target(), timeout)
        except ConnectionRefusedError:
            return None
        self.set_connection_options(sock)
        return sock

    def __str__(self):
        if ':' in self.host:
            return '[%s]:%s' % (self.host, self.port)
        return '%s:%s' % (self.host, self.port)


class UnixAbstractAddress(SocketAddress):
    """A Linux abstract socket named ``@name``; nothing on the filesystem."""

    family = getattr(socket, 'AF_UNIX', None)

    def __init__(self, filename, **ignored):
        self.name = filename

    def target(self):
        return self.name.replace('@', '\0')

    def is_protected(self):
        # No file, no permissions: any local user can connect.
        return False

    def __str__(self):
        return self.name


class UnixDomainSocketAddress(UnixAbstractAddress):
    """A socket file; optional ``owner``/``group`` (names or ids) are set
    after binding, ``umask`` applies only while binding.  The file is
    created with ``mode`` (default 0600: only its owner may connect)
    unless a ``umask`` is given and no mode.  (A subclass of
    UnixAbstractAddress, as in 4.3.)"""

    family = getattr(socket, 'AF_UNIX', None)

    def __init__(self, filename, owner=None, group=None, umask=None,
                 mode=None):
        self.filename = filename
        self.owner = owner
        self.group = group
        self.umask = umask
        if mode is None and umask is None:
            mode = DEFAULT_SOCKET_MODE
        self.mode = mode

    def target(self):
        return self.filename

    def _bind(self, sock):
        umask = self.umask
        if umask is None:
            umask = 0o177    # nobody else can connect before the chmod
        old_umask = os.umask(umask)
        try:
            try:
                sock.bind(self.filename)
            except OSError as error:
                if error.errno != errno.EADDRINUSE or not self._is_stale():
                    raise
                os.unlink(self.filename)
                sock.bind(self.filename)
        finally:
            if old_umask is not None:
                os.umask(old_umask)
        if self.mode is not None:
            os.chmod(self.filename, self.mode)
        if self.owner is not None or self.group is not None:
            os.chown(self.filename, _user_id(self.owner),
                     _group_id(self.group))

    def is_protected(self):
        return True     # its file's permissions decide who may connect

    def _is_stale(self):
        """True for a leftover socket file nobody accepts connections on."""
        try:
            if os.stat(self.filename).st_size != 0:
                return False
        except OSError:
            return False
        sock = self.get_connected_socket(timeout=1)
        if sock is None:
            return True
        sock.close()
        return False

    def close(self, s):
        s.close()
        try:
            os.unlink(self.filename)
        except OSError:
            pass

    def __str__(self):
        return self.filename


class InheritedSocket(SocketAddress):
    """A listening socket created by someone else (systemd)."""

    def __init__(self, sock):
        self.sock = sock
        self.family = sock.family

    def get_listening_socket(self):
        return self.sock

    def get_connected_socket(self, timeout=None):
        return None

    def set_connection_options(self, s):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def is_protected(self):
        if self.family == getattr(socket, 'AF_UNIX', None):
            try:
                name = self.sock.getsockname()
            except OSError:
                return False
            return bool(name) and not isinstance(name, bytes) and \
                not name.startswith('\0')
        return self.is_loopback()

    def is_loopback(self):
        if self.family == getattr(socket, 'AF_UNIX', None):
            return True
        try:
            host = self.sock.getsockname()[0]
        except OSError:
            return False
        return host == '::1' or host.startswith('127.')

    def __str__(self):
        try:
            name = self.sock.getsockname()
        except OSError:
            name = '?'
        return 'inherited socket %s' % (name,)


def _user_id(owner):
    if owner is None:
        return -1
    if isinstance(owner, int) or str(owner).isdigit():
        return int(owner)
    import pwd
    return pwd.getpwnam(owner).pw_uid


def _group_id(group):
    if group is None:
        return -1
    if isinstance(group, int) or str(group).isdigit():
        return int(group)
    import grp
    return grp.getgrnam(group).gr_gid
