"""Users, roles and SCRAM-SHA-256 authentication, without sockets.

A server started with ``--users FILE`` knows each user by a line of that
file::

    name:role:SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey

(the verifier is PostgreSQL's format, base64 fields).  The secret itself
is never stored: only ``StoredKey = H(HMAC(P, "Client Key"))`` and
``ServerKey = HMAC(P, "Server Key")`` where ``P`` is PBKDF2-HMAC-SHA256
of the secret (RFC 5802, RFC 7677).  ``durus passwd`` writes lines.

The exchange (``ScramClient`` and ``ScramServer``, three messages as in
RFC 5802) proves to the server that the client knows the secret and to
the client that the server knows the verifier, without the secret
crossing the wire; fresh nonces from both sides make a recorded exchange
useless.  Over TLS both sides bind the exchange to the server
certificate (channel binding ``tls-server-end-point``), so it cannot be
relayed through another TLS server.  Our one addition: the server's
final message carries the user's role (``v=...,R=write``), so the client
can refuse locally what the server would refuse.

Roles, each allowing what the previous one does and more: ``read``
(loads, bulk loads, sync), ``write`` (new oids and commits), ``admin``
(pack, stopping the server).
"""

import base64
import hashlib
import hmac
import os
import re
import secrets

from durus.error import AuthenticationError, UsersFileError

READ, WRITE, ADMIN = 'read', 'write', 'admin'
ROLES = (READ, WRITE, ADMIN)
_RANK = {role: rank for rank, role in enumerate(ROLES)}

MECHANISM = 'SCRAM-SHA-256'
DEFAULT_ITERATIONS = 100000
# A client refuses a server that asks for more (or fewer) rounds: a fake
# server must not make it spin, nor get a cheap-to-crack proof.
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 10000000
MAX_MESSAGE = 1024
CHANNEL_BINDING = 'tls-server-end-point'

_NAME = re.compile(r'^[A-Za-z0-9_.@+-]{1,64}$')


def role_allows(role, needed):
    """True if ``role`` may do what ``needed`` may."""
    return _RANK[role] >= _RANK[needed]


def check_role(role):
    if role not in _RANK:
        raise ValueError('unknown role %r (roles: %s)'
                         % (role, ', '.join(ROLES)))
    return role


def check_user_name(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError('a user name is 1 to 64 letters, digits or any of '
                         '"_.@+-", not %r' % (name,))
    return name


# The primitives -----------------------------------------------------------

def _hmac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def _h(data):
    return hashlib.sha256(data).digest()


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def _unb64(text, what):
    try:
        return base64.b64decode(text.encode('ascii'), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ValueError('%s is not base64' % what) from None


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def salted_password(secret, salt, iterations):
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    return hashlib.pbkdf2_hmac('sha256', secret, salt, iterations)


class Verifier(object):
    """What the server stores about one user's secret."""

    __slots__ = ('salt', 'iterations', 'stored_key', 'server_key')

    def __init__(self, salt, iterations, stored_key, server_key):
        self.salt = salt
        self.iterations = iterations
        self.stored_key = stored_key
        self.server_key = server_key

    @classmethod
    def from_secret(cls, secret, iterations=DEFAULT_ITERATIONS, salt=None):
        salt = os.urandom(16) if salt is None else salt
        salted = salted_password(secret, salt, iterations)
        return cls(salt, iterations, _h(_hmac(salted, b'Client Key')),
                   _hmac(salted, b'Server Key'))

    def encode(self):
        return '%s$%d:%s$%s:%s' % (MECHANISM, self.iterations,
                                   _b64(self.salt), _b64(self.stored_key),
                                   _b64(self.server_key))

    @classmethod
    def decode(cls, text):
        match = re.match(r'^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$',
                         text)
        if not match:
            raise ValueError('the verifier is not SCRAM-SHA-256$iterations:'
                             'salt$StoredKey:ServerKey')
        iterations = int(match.group(1))
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise ValueError('%d iterations is outside %d..%d'
                             % (iterations, MIN_ITERATIONS, MAX_ITERATIONS))
        salt = _unb64(match.group(2), 'the salt')
        stored_key = _unb64(match.group(3), 'StoredKey')
        server_key = _unb64(match.group(4), 'ServerKey')
        if len(stored_key) != 32 or len(server_key) != 32:
            raise ValueError('StoredKey and ServerKey must be 32 bytes')
        return cls(salt, iterations, stored_key, server_key)


class User(object):
    __slots__ = ('name', 'role', 'verifier')

    def __init__(self, name, role, verifier):
        self.name = name
        self.role = role
        self.verifier = verifier

    def line(self):
        return '%s:%s:%s\n' % (self.name, self.role, self.verifier.encode())


# The users file -----------------------------------------------------------

def parse_users(text, filename='users file'):
    """``{name: User}`` from the text of a users file; ``UsersFileError``
    naming the line for anything else."""
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        where = '%s line %d' % (filename, number)
        parts = line.split(':', 2)
        if len(parts) != 3:
            raise UsersFileError(
                '%s: expected name:role:verifier (written by "durus passwd '
                '%s NAME --role ROLE")' % (where, filename))
        name, role, verifier = parts
        try:
            check_user_name(name)
            check_role(role)
            verifier = Verifier.decode(verifier)
        except ValueError as error:
            raise UsersFileError('%s: %s' % (where, error)) from None
        if name in users:
            raise UsersFileError('%s: user %s appears twice' % (where, name))
        users[name] = User(name, role, verifier)
    return users


def load_users(filename):
    try:
        with open(filename, encoding='utf-8') as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UsersFileError('cannot read the users file %s: %s'
                             % (filename, error)) from None
    users = parse_users(text, filename)
    if not users:
        raise UsersFileError('the users file %s has no users; add one with '
                             '"durus passwd %s NAME --role admin"'
                             % (filename, filename))
    return users


def set_user(filename, name, role, secret, iterations=DEFAULT_ITERATIONS):
    """Add or replace ``name`` in the users file (created mode 0600);
    other lines (and comments) stay as they are.  True if it was new."""
    check_user_name(name)
    check_role(role)
    try:
        with open(filename, encoding='utf-8') as f:
            lines = f.read().splitlines(True)
    except FileNotFoundError:
        lines = []
    parse_users(''.join(lines), filename)    # refuse to rewrite a bad file
    new_line = User(name, role, Verifier.from_secret(
        secret, iterations)).line()
    added = True
    for index, line in enumerate(lines):
        if line.split(':', 1)[0].strip() == name:
            lines[index] = new_line
            added = False
    if added:
        if lines and not lines[-1].endswith('\n'):
            lines[-1] += '\n'
        lines.append(new_line)
    temporary = '%s.tmp%d' % (filename, os.getpid())
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(''.join(lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, filename)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return added


# The exchange -------------------------------------------------------------

class AuthFailure(Exception):
    """The server refuses the exchange.  The message is for the log; the
    client is told only ``CLIENT_REASON`` (nothing that tells a wrong
    secret from an unknown user)."""

    CLIENT_REASON = 'authentication failed: wrong user name or secret'


def _attributes(message, what):
    try:
        text = message.decode('utf-8')
    except UnicodeDecodeError:
        raise AuthFailure('%s is not UTF-8' % what) from None
    values = []
    for part in text.split(','):
        if len(part) < 2 or part[1] != '=':
            raise AuthFailure('%s is malformed' % what)
        values.append((part[0], part[2:]))
    return values


def _gs2_header(binding):
    return ('p=%s,,' % CHANNEL_BINDING) if binding is not None else 'n,,'


class ScramServer(object):
    """The server side of one exchange.

    ``users``: ``{name: User}``; ``server_secret``: random bytes this
    server keeps for its lifetime (an unknown user gets a made-up salt
    derived from it, so the answer looks like a real user's);
    ``binding``: the hash of this server's TLS certificate on a TLS
    connection, else None.
    """

    def __init__(self, users, server_secret, binding=None, nonce=None):
        self.users = users
        self.server_secret = server_secret
        self.binding = binding
        self.nonce = nonce or secrets.token_urlsafe(18)
        self.user = None     # the user name the client gave
        self.role = None     # set once the client has proved itself
        self._state = 'first'

    def first(self, message):
        """The server-first message answering client-first ``message``."""
        if self._state != 'first':
            raise AuthFailure('authentication message out of turn')
        self._state = 'final'
        text = _check_length(message)
        gs2, sep, rest = text.partition(',,')
        if not sep:
            raise AuthFailure('client-first message has no GS2 header')
        if gs2 == 'n' or gs2 == 'y':
            if self.binding is not None and gs2 == 'y':
                raise AuthFailure('client believes this TLS server does not '
                                  'offer channel binding (a relay?)')
        elif gs2 != 'p=' + CHANNEL_BINDING:
            raise AuthFailure('unsupported channel binding %r' % gs2)
        elif self.binding is None:
            raise AuthFailure('client asked for channel binding on a '
                              'connection without TLS (a relay?)')
        self._gs2 = gs2 + ',,'
        values = dict(_attributes(rest.encode('utf-8'),
                                  'client-first message'))
        name, client_nonce = values.get('n'), values.get('r')
        if not name or not client_nonce or ',' in client_nonce:
            raise AuthFailure('client-first message lacks n= or r=')
        self.user = name
        user = self.users.get(name)
        if user is None:
            # Same answer, same work as for a real user.
            fake = _hmac(self.server_secret, b'salt:' + name.encode('utf-8'))
            self._verifier = Verifier(fake[:16], DEFAULT_ITERATIONS,
                                      _hmac(self.server_secret, fake),
                                      _hmac(self.server_secret, fake[::-1]))
            self._role = None
        else:
            self._verifier = user.verifier
            self._role = user.role
        self._client_first_bare = rest
        self._nonce = client_nonce + self.nonce
        self._server_first = 'r=%s,s=%s,i=%d' % (
            self._nonce, _b64(self._verifier.salt), self._verifier.iterations)
        return self._server_first.encode('ascii')

    def final(self, message):
        """The server-final message; ``self.role`` is then set.  Raises
        AuthFailure (the log reason) if the proof is wrong."""
        if self._state != 'final':
            raise AuthFailure('authentication message out of turn')
        self._state = 'done'
        text = _check_length(message)
        without_proof, sep, proof = text.rpartition(',p=')
        values = dict(_attributes(without_proof.encode('utf-8'),
                                  'client-final message'))
        if not sep or 'c' not in values or 'r' not in values:
            raise AuthFailure('client-final message lacks c=, r= or p=')
        if not hmac.compare_digest(values['r'].encode('utf-8'),
                                   self._nonce.encode('utf-8')):
            raise AuthFailure('client-final message has the wrong nonce '
                              '(a replayed exchange?)')
        try:
            binding = _unb64(values['c'], 'c=')
            proof = _unb64(proof, 'p=')
        except ValueError as error:
            raise AuthFailure(str(error)) from None
        expected = self._gs2.encode('ascii')
        if self._gs2.startswith('p='):
            expected += self.binding
        if not hmac.compare_digest(binding, expected):
            raise AuthFailure('channel binding does not match this TLS '
                              'connection (a relay?)')
        auth_message = ','.join((self._client_first_bare, self._server_first,
                                 without_proof)).encode('utf-8')
        verifier = self._verifier
        signature = _hmac(verifier.stored_key, auth_message)
        client_key = _xor(proof, signature)
        if (len(proof) != 32 or
                not hmac.compare_digest(_h(client_key), verifier.stored_key)
                or self._role is None):
            if self._role is None:
                raise AuthFailure('unknown user %r' % self.user)
            raise AuthFailure('wrong secret for user %r' % self.user)
        self.role = self._role
        server_signature = _hmac(verifier.server_key, auth_message)
        return ('v=%s,R=%s' % (_b64(server_signature), self.role)).encode(
            'ascii')


def _check_length(message):
    if len(message) > MAX_MESSAGE:
        raise AuthFailure('authentication message of %d bytes is too long'
                          % len(message))
    try:
        return message.decode('utf-8')
    except UnicodeDecodeError:
        raise AuthFailure('authentication message is not UTF-8') from None


class ScramClient(object):
    """The client side: ``first()``, ``final(server_first)``,
    ``verify(server_final)`` -> the role.  ``binding``: the hash of the
    server's TLS certificate (``certificate_binding``), None without
    TLS.  Raises AuthenticationError when the server is not convincing."""

    def __init__(self, user, secret, binding=None, nonce=None):
        self.user = check_user_name(user)
        self.secret = secret
        self.binding = binding
        self.nonce = nonce or secrets.token_urlsafe(18)
        self._gs2 = _gs2_header(binding)

    def first(self):
        self._first_bare = 'n=%s,r=%s' % (self.user, self.nonce)
        return (self._gs2 + self._first_bare).encode('utf-8')

    def final(self, server_first):
        try:
            text = server_first.decode('ascii')
            values = dict(_attributes(server_first, 'server-first message'))
            nonce, salt = values['r'], _unb64(values['s'], 's=')
            iterations = int(values['i'])
        except (AuthFailure, KeyError, ValueError, UnicodeDecodeError):
            raise AuthenticationError('the server sent a malformed '
                                      'authentication challenge') from None
        if not nonce.startswith(self.nonce) or nonce == self.nonce:
            raise AuthenticationError('the server did not answer with our '
                                      'nonce (a replayed exchange?)')
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise AuthenticationError(
                'the server asks for %d PBKDF2 iterations, outside %d..%d'
                % (iterations, MIN_ITERATIONS, MAX_ITERATIONS))
        salted = salted_password(self.secret, salt, iterations)
        client_key = _hmac(salted, b'Client Key')
        binding = self._gs2.encode('ascii') + (self.binding or b'')
        without_proof = 'c=%s,r=%s' % (_b64(binding), nonce)
        auth_message = ','.join((self._first_bare, text, without_proof)
                                ).encode('utf-8')
        proof = _xor(client_key, _hmac(_h(client_key), auth_message))
        self._expected = _hmac(_hmac(salted, b'Server Key'), auth_message)
        return ('%s,p=%s' % (without_proof, _b64(proof))).encode('ascii')

    def verify(self, server_final):
        """The role the server gives us, once it proved it knows us."""
        try:
            values = dict(_attributes(server_final, 'server-final message'))
            signature = _unb64(values['v'], 'v=')
            role = check_role(values['R'])
        except (AuthFailure, KeyError, ValueError):
            raise AuthenticationError('the server sent a malformed final '
                                      'authentication message') from None
        if not hmac.compare_digest(signature, self._expected):
            raise AuthenticationError('the server could not prove it knows '
                                      'user %s (an impostor?)' % self.user)
        return role


def certificate_binding(der_certificate):
    """The ``tls-server-end-point`` channel binding data of a certificate
    (RFC 5929: SHA-256 for certificates signed with MD5, SHA-1 or
    SHA-256; the tests and usual certificates are SHA-256)."""
    return hashlib.sha256(der_certificate).digest()
