"""The Durus client/server wire protocol, without sockets.

Both ends are objects that take bytes in and give events out; the caller
owns the socket (``durus.storage_server`` and ``durus.client_storage``
are thin loops around them).  Byte layouts follow Durus 4.3 exactly
(see docs/protocol.md).

Requests (client -> server) and replies (server -> client) are events::

    request              wire (after the code byte)    reply
    Version(protocol)    'V' int4                      VersionReply(protocol)
    Load(oid)            'L' oid                       LoadReply(status, record)
    BulkLoad(oids)       'B' int4 n, n oids            BulkLoadReply(replies)
    NewOid()             'N'                           Oids([oid])
    NewOids(count)       'M' 1 byte count              Oids(oids)
    CommitStart()        'C'                           Invalidations(oids)
    CommitData(items)    int4 T, T bytes of items      Status(b'O' | b'I')
    CommitBackOut()      int4 0                        (none)
    Sync()               'S'                           Invalidations(oids)
    Pack()               'P'                           Status(b'O')
    Quit()               'Q'                           (none)
    Goodbye()            '.'                           (none)

Protocol 2 (this project's extension, spoken only when both ends asked
for it with 'V' 2) adds one request, a commit in a single round trip::

    CommitAll(items)     'A' int4 T, T bytes of items  CommitAllReply(oids,
                                                       status)

Protocols 4 and 5 are protocols 2 and 3 plus one request that asks,
without taking them, how many invalidations wait for this client and
(at most ``limit``, itself at most MAX_PEEK_OIDS) which oids::

    PeekInvalidations(limit)  'W' int4 limit       PendingInvalidations(
                                                     count, oids)

answered int4 count, int4 n, n oids (n <= limit).  The invalidations
stay where they were: a later load still answers 'I', a later sync or
commit still delivers them, and conflicts are detected exactly as
without the request.  Under protocols 1 to 3, 'W' is an unknown command.

Protocol 3 is protocol 2 on a server that authenticates its clients
(``durus -s --users``).  After 'V' 3 the client proves who it is (SCRAM,
see durus.auth) before any other request, in two exchanges of::

    Auth(message)        'U' int4 n, n bytes           AuthReply(message)

answered 'O' int4 n, n bytes (the server's SCRAM message), or refused
with an error reply.  Under protocol 3 a request the user's role does not
allow ('N', 'M', 'C', 'A', 'P', 'Q') is answered ``DeniedReply(reason)``
('D' int4 n, n bytes of reason; for 'A' after an empty oid list) and the
connection goes on; so that 'D' cannot be mistaken for data, the replies
to 'N', 'M' and 'C' then start with the status byte 'O'.  A server without users answers 'V' 3 with 2 and
hangs up; a server with users answers 'V' 1 or 2 with 3 and hangs up
(Durus 4.3's client then says "Protocol version mismatch").

The server commits only if it has no invalidations for this client and
no other client holds the commit lock.  Reply: the oid list of the
invalidations it had (empty if it committed) and a status byte: 'O'
committed, 'I' refused by the storage as a conflict, 'R' not committed
(the client handles the invalidations, if any, and commits again the
protocol-1 way).  Under protocol 1, 'A' is an unknown command.

Error replies: a server that refuses a request (the storage failed the
commit: disk full, read-only; a frame over the limit; a malformed
commit) answers ``ErrorReply(reason)`` in place of the reply, then
closes the connection.  It can do so only where the reply starts with a
status byte (loads, bulk loads, commit payloads, 'A', 'P'): there it
sends ``E``, under protocol 2 followed by int4 n and n bytes of UTF-8
reason.  A Durus 4.3 client (protocol 1) reads the lone ``E`` as an
unexpected status (its ``ProtocolError``) and then finds the
connection closed; the reason does not follow, so nothing is left
unread to be mistaken for a later reply.

Conversation states, the same on both ends (``TRANSITIONS``): a
connection is IDLE (expecting a command), COMMITTING (the invalidation
list of a 'C' went out; the next bytes are a commit payload or a
back-out) or CLOSED.  A request is legal only in the states listed for
it, and each request has at most one reply, sent in request order.
The server end accepts the next request only after it has replied to
the previous one; the client end may pipeline.

Errors: ``ProtocolError`` means the peer sent bytes that break the
protocol (``FrameTooLargeError`` when it announced more than
``max_frame`` bytes, checked before anything is buffered);
``OutOfTurnError`` means our own caller used the object out of turn.
"""

import struct

from durus.error import FrameTooLargeError, ProtocolError
from durus.record import record_problem

PROTOCOL_VERSION = 1          # Durus 4.3's; what a connection starts at
EXTENDED_PROTOCOL_VERSION = 2  # protocol 1 plus CommitAll (see above)
AUTH_PROTOCOL_VERSION = 3      # protocol 2 after authentication
PEEK_PROTOCOL_VERSION = 4      # protocol 2 plus PeekInvalidations
AUTH_PEEK_PROTOCOL_VERSION = 5  # protocol 3 plus PeekInvalidations
# Versions a client may ask for without authenticating.
SUPPORTED_VERSIONS = (PROTOCOL_VERSION, EXTENDED_PROTOCOL_VERSION,
                      PEEK_PROTOCOL_VERSION)
# Versions spoken only after authentication (or by a peer-credential
# connection), and versions that have PeekInvalidations.
AUTHENTICATED_VERSIONS = (AUTH_PROTOCOL_VERSION, AUTH_PEEK_PROTOCOL_VERSION)
PEEK_VERSIONS = (PEEK_PROTOCOL_VERSION, AUTH_PEEK_PROTOCOL_VERSION)
# Versions whose CommitAll reply is only the invalidations and a status
# (no denial can come first): ClientConnection.send_commit_all.
_PLAIN_COMMIT_ALL_VERSIONS = (EXTENDED_PROTOCOL_VERSION, PEEK_PROTOCOL_VERSION)
# Most oids one PeekInvalidations reply lists (the count is exact).
MAX_PEEK_OIDS = 1000
MAX_AUTH_MESSAGE = 1024
STATUS_OKAY = b'O'
STATUS_KEYERROR = b'K'
STATUS_INVALID = b'I'
STATUS_RETRY = b'R'
STATUS_ERROR = b'E'
STATUS_DENIED = b'D'
_COMMIT_ALL_STATUSES = (STATUS_OKAY, STATUS_INVALID, STATUS_RETRY)
# A CommitAll reply without invalidations (an empty oid list, the status)
# -> its status.
_LONE_COMMIT_ALL_REPLIES = {b'\0\0\0\0' + status: status
                            for status in _COMMIT_ALL_STATUSES}

# Largest commit payload, record, oid list or bulk request accepted.
DEFAULT_MAX_FRAME = 512 * 1024 * 1024
# Most oids in one bulk load: its replies are built in memory at once.
MAX_BULK_OIDS = 65536
# Longest reason an error reply carries (longer ones are cut).
MAX_ERROR_REASON = 4096

_int4 = struct.Struct('>I')
_unpack_int4 = _int4.unpack_from
_pack_int4 = _int4.pack


class OutOfTurnError(ProtocolError):
    """Our own code sent or asked for an event the state does not allow."""


class _NeedData(object):
    __slots__ = ()

    def __repr__(self):
        return 'NEED_DATA'


NEED_DATA = _NeedData()


class Event(object):
    """Base of requests and replies: plain values with equality."""

    __slots__ = ()

    def _values(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        return type(self) is type(other) and self._values() == other._values()

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return '%s(%s)' % (type(self).__name__,
                           ', '.join(repr(v) for v in self._values()))


# Requests ---------------------------------------------------------------

class Version(Event):
    __slots__ = ('protocol',)

    def __init__(self, protocol=PROTOCOL_VERSION):
        self.protocol = protocol


class Load(Event):
    __slots__ = ('oid',)

    def __init__(self, oid):
        self.oid = oid


class BulkLoad(Event):
    __slots__ = ('oids',)

    def __init__(self, oids):
        self.oids = list(oids)


class NewOid(Event):
    __slots__ = ()


class NewOids(Event):
    __slots__ = ('count',)

    def __init__(self, count):
        self.count = count


class CommitStart(Event):
    __slots__ = ()


class CommitData(Event):
    """The records of a commit: ``items`` is a list of ``(oid, record)``."""

    __slots__ = ('items',)

    def __init__(self, items):
        self.items = list(items)


class CommitBackOut(Event):
    __slots__ = ()


class CommitAll(Event):
    """Protocol 2: commit ``items`` (``(oid, record)`` pairs) at once."""

    __slots__ = ('items',)

    def __init__(self, items):
        self.items = list(items)


class Auth(Event):
    """Protocol 3: one SCRAM message of the client (see durus.auth)."""

    __slots__ = ('message',)

    def __init__(self, message):
        self.message = message


class Sync(Event):
    __slots__ = ()


class PeekInvalidations(Event):
    """Protocols 4 and 5: how many invalidations wait (not taken), and
    at most ``limit`` of their oids."""

    __slots__ = ('limit',)

    def __init__(self, limit):
        self.limit = limit


class Pack(Event):
    __slots__ = ()


class Quit(Event):
    __slots__ = ()


class Goodbye(Event):
    __slots__ = ()


class ConnectionClosed(Event):
    """Not a request: the client ended the stream between requests."""

    __slots__ = ()


# Replies ----------------------------------------------------------------

class VersionReply(Event):
    __slots__ = ('protocol',)

    def __init__(self, protocol=PROTOCOL_VERSION):
        self.protocol = protocol


class LoadReply(Event):
    """``status`` is STATUS_OKAY (``record`` set), STATUS_KEYERROR or
    STATUS_INVALID (``record`` None)."""

    __slots__ = ('status', 'record')

    def __init__(self, status, record=None):
        self.status = status
        self.record = record


class BulkLoadReply(Event):
    __slots__ = ('replies',)

    def __init__(self, replies):
        self.replies = list(replies)


class Oids(Event):
    __slots__ = ('oids',)

    def __init__(self, oids):
        self.oids = list(oids)


class Invalidations(Event):
    __slots__ = ('oids',)

    def __init__(self, oids):
        self.oids = list(oids)


class PendingInvalidations(Event):
    """``count`` invalidations wait for the client; ``oids`` lists at
    most the asked-for number of them."""

    __slots__ = ('count', 'oids')

    def __init__(self, count, oids):
        self.count = count
        self.oids = list(oids)


class Status(Event):
    __slots__ = ('status',)

    def __init__(self, status):
        self.status = status


class CommitAllReply(Event):
    """The invalidations the server had for the client, and the status."""

    __slots__ = ('oids', 'status')

    def __init__(self, oids, status):
        self.oids = list(oids)
        self.status = status


class AuthReply(Event):
    __slots__ = ('message',)

    def __init__(self, message):
        self.message = message


class DeniedReply(Event):
    """Protocol 3: the user's role does not allow the request; the
    connection goes on."""

    __slots__ = ('reason',)

    def __init__(self, reason):
        self.reason = reason


class ErrorReply(Event):
    """The server refused the request and closes the connection;
    ``reason`` says why (None under protocol 1, which carries no
    reason)."""

    __slots__ = ('reason',)

    def __init__(self, reason):
        self.reason = reason


# The state machine, as data ---------------------------------------------

IDLE = 'IDLE'
COMMITTING = 'COMMITTING'
CLOSED = 'CLOSED'

# (state, request type) -> (reply type or None, state after the exchange)
TRANSITIONS = {
    (IDLE, Version): (VersionReply, IDLE),
    (IDLE, Load): (LoadReply, IDLE),
    (IDLE, BulkLoad): (BulkLoadReply, IDLE),
    (IDLE, NewOid): (Oids, IDLE),
    (IDLE, NewOids): (Oids, IDLE),
    (IDLE, CommitStart): (Invalidations, COMMITTING),
    (IDLE, Sync): (Invalidations, IDLE),
    (IDLE, PeekInvalidations): (PendingInvalidations, IDLE),
    (IDLE, Pack): (Status, IDLE),
    (IDLE, Quit): (None, CLOSED),
    (IDLE, Goodbye): (None, CLOSED),
    (IDLE, CommitAll): (CommitAllReply, IDLE),
    (IDLE, Auth): (AuthReply, IDLE),
    (COMMITTING, CommitData): (Status, IDLE),
    (COMMITTING, CommitBackOut): (None, IDLE),
}

# Command byte -> (request type, fixed length of the request in bytes).
COMMANDS = {
    b'V'[0]: (Version, 5),
    b'L'[0]: (Load, 9),
    b'B'[0]: (BulkLoad, 5),     # plus 8 bytes per oid
    b'N'[0]: (NewOid, 1),
    b'M'[0]: (NewOids, 2),
    b'C'[0]: (CommitStart, 1),
    b'S'[0]: (Sync, 1),
    b'P'[0]: (Pack, 1),
    b'Q'[0]: (Quit, 1),
    b'.'[0]: (Goodbye, 1),
    b'A'[0]: (CommitAll, 5),    # plus the items; protocol 2 only
    b'U'[0]: (Auth, 5),         # plus the message; protocols 3 and 5 only
    b'W'[0]: (PeekInvalidations, 5),  # protocols 4 and 5 only
}

# Requests whose reply can be an error reply, and the bytes before its
# status byte.
_ERROR_PREFIX = {Load: b'', BulkLoad: b'', CommitData: b'', Pack: b'',
                 CommitAll: b'\0\0\0\0', Auth: b''}

# Requests a role can deny; under protocol 3 their replies can be 'D'.
DENIABLE = (NewOid, NewOids, CommitStart, CommitAll, Pack, Quit)
# ... of which these have replies with no status byte of their own:
# under protocol 3 those replies start with 'O'.
_PREFIXED_IN_3 = (NewOid, NewOids, CommitStart)

_SIMPLE_CODES = {NewOid: b'N', CommitStart: b'C', Sync: b'S', Pack: b'P',
                 Quit: b'Q', Goodbye: b'.'}


def _transition(state, request, side):
    try:
        return TRANSITIONS[state, type(request)]
    except KeyError:
        raise OutOfTurnError('%s: %r is not allowed in state %s'
                             % (side, request, state)) from None


def _check_oid(oid):
    if type(oid) is not bytes or len(oid) != 8:
        raise OutOfTurnError('an oid must be 8 bytes, not %r' % (oid,))


# Encoding ----------------------------------------------------------------

def encode_request(request):
    kind = type(request)
    if kind is Load:
        _check_oid(request.oid)
        return b'L' + request.oid
    if kind is BulkLoad:
        for oid in request.oids:
            _check_oid(oid)
        return b'B' + _pack_int4(len(request.oids)) + b''.join(request.oids)
    if kind is CommitData:
        return _encode_items(request.items)
    if kind is CommitAll:
        if not request.items:
            raise OutOfTurnError('CommitAll needs at least one record')
        return b'A' + _encode_items(request.items)
    if kind is CommitBackOut:
        return b'\0\0\0\0'
    if kind is NewOids:
        if not 0 <= request.count <= 255:
            raise OutOfTurnError('NewOids count must be 0..255, not %r'
                                 % (request.count,))
        return b'M' + bytes((request.count,))
    if kind is Version:
        return b'V' + _pack_int4(request.protocol)
    if kind is Auth:
        return b'U' + _pack_int4(len(request.message)) + request.message
    if kind is PeekInvalidations:
        if not 0 <= request.limit <= MAX_PEEK_OIDS:
            raise OutOfTurnError('PeekInvalidations limit must be 0..%d, '
                                 'not %r' % (MAX_PEEK_OIDS, request.limit))
        return b'W' + _pack_int4(request.limit)
    return _SIMPLE_CODES[kind]


def _encode_items(items):
    """int4 T, then T bytes of (int4 size, oid, record) items."""
    parts = [b'']
    total = 0
    for oid, record in items:
        if type(oid) is not bytes or len(oid) != 8:
            _check_oid(oid)     # raises, naming the oid
        size = 8 + len(record)
        parts.append(_pack_int4(size))
        parts.append(oid)
        parts.append(record)
        total += 4 + size
    parts[0] = _pack_int4(total)
    return b''.join(parts)


def _encode_load_reply(reply):
    if reply.status == STATUS_OKAY:
        return b'O' + _pack_int4(len(reply.record)) + reply.record
    if reply.status in (STATUS_KEYERROR, STATUS_INVALID):
        return reply.status
    raise OutOfTurnError('bad load status %r' % (reply.status,))


def _encode_oid_list(oids):
    return _pack_int4(len(oids)) + b''.join(oids)


def encode_reply(reply):
    kind = type(reply)
    if kind is CommitAllReply:     # (first: a server's most common reply)
        if reply.status not in _COMMIT_ALL_STATUSES:
            raise OutOfTurnError('bad commit status %r' % (reply.status,))
        oids = reply.oids
        return _pack_int4(len(oids)) + b''.join(oids) + reply.status
    if kind is LoadReply:
        return _encode_load_reply(reply)
    if kind is BulkLoadReply:
        return b''.join([_encode_load_reply(r) for r in reply.replies])
    if kind is Invalidations:
        return _encode_oid_list(reply.oids)
    if kind is Oids:
        return b''.join(reply.oids)
    if kind is Status:
        return reply.status
    if kind is VersionReply:
        return _pack_int4(reply.protocol)
    if kind is AuthReply:
        return STATUS_OKAY + _pack_int4(len(reply.message)) + reply.message
    if kind is PendingInvalidations:
        return _pack_int4(reply.count) + _encode_oid_list(reply.oids)
    raise OutOfTurnError('%r is not a reply' % (reply,))


def encode_error_reply(request_type, reason, version):
    """The bytes refusing a request of ``request_type`` (b'' if its
    reply has no status byte to carry a refusal)."""
    prefix = _ERROR_PREFIX.get(request_type)
    if prefix is None:
        return b''
    if version < EXTENDED_PROTOCOL_VERSION:
        return prefix + STATUS_ERROR
    text = reason.encode('utf-8', 'replace')[:MAX_ERROR_REASON]
    return prefix + STATUS_ERROR + _pack_int4(len(text)) + text


# The buffer both ends parse from ---------------------------------------

class _InputBuffer(object):
    """Received bytes not yet parsed, read from a moving start offset."""

    def __init__(self):
        self.data = bytearray()
        self.start = 0
        self.eof = False

    def feed(self, data):
        if self.eof:
            raise OutOfTurnError('data received after end of stream')
        if not data:
            self.eof = True
            return
        if self.start and self.start == len(self.data):
            self.data.clear()
            self.start = 0
        elif self.start > 65536:
            del self.data[:self.start]
            self.start = 0
        self.data += data

    def available(self):
        return len(self.data) - self.start

    def take(self, n):
        start = self.start
        self.start = start + n
        return bytes(self.data[start:start + n])


class ServerConnection(object):
    """The server end of one client connection.

    ``receive_data(bytes)`` (``b''`` at end of stream), then
    ``next_event()`` until it returns NEED_DATA; answer each request with
    ``send(reply)`` -> bytes before asking for the next one.
    """

    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self.state = IDLE
        self.version = PROTOCOL_VERSION  # until a 'V' agrees on another
        self.pending = None   # request waiting for our reply
        self._parsing = None  # type of the request being parsed
        self.requests = 0     # requests parsed so far
        self._input = _InputBuffer()
        # (the buffer's own method: one call less per received chunk)
        self.receive_data = self._input.feed

    def receive_data(self, data):
        self._input.feed(data)

    def discard_input(self):
        """Drop every received byte (the session is over)."""
        self._input.data = bytearray()
        self._input.start = 0

    def compact(self):
        """Give back the memory of parsed bytes (a large commit's buffer
        would otherwise stay until the next bytes arrive); returns
        ``buffer_size()``."""
        buf = self._input
        start = buf.start
        if start:
            if start == len(buf.data):
                buf.data = bytearray()
                buf.start = 0
                return 0
            if start > 65536:
                del buf.data[:start]
                buf.start = 0
        return len(buf.data)

    def buffer_size(self):
        """Bytes of memory the input buffer holds (parsed or not)."""
        return len(self._input.data)

    def buffered(self):
        """Bytes received but not yet parsed into a request."""
        return self._input.available()

    def in_frame(self):
        """True while a request is partly received or a commit is open."""
        buf = self._input
        return len(buf.data) > buf.start or self.state == COMMITTING

    def next_event(self):
        if self.pending is not None:
            raise OutOfTurnError('reply to %r before reading the next request'
                                 % (self.pending,))
        if self.state == CLOSED:
            raise OutOfTurnError('the connection is closed')
        buf = self._input
        if self.state == COMMITTING:
            request = self._parse_commit()
        elif buf.start == len(buf.data):
            request = NEED_DATA   # (after each request: nothing more yet)
        else:
            request = self._parse_command()
        if request is NEED_DATA:
            if buf.eof:
                if buf.available() or self.state == COMMITTING:
                    raise ProtocolError('connection closed in the middle of '
                                        'a request')
                self.state = CLOSED
                return ConnectionClosed()
            return request
        self._parsing = None
        self.requests += 1
        reply_type, after = TRANSITIONS[self.state, type(request)]
        if reply_type is None:
            self.state = after
            if (type(request) is Quit and
                    self.version in AUTHENTICATED_VERSIONS):
                self.pending = request    # it may be denied
        else:
            self.pending = request
        return request

    def refuse(self, reason):
        """Bytes answering the request being handled (or the one whose
        bytes broke the protocol) with ``ErrorReply(reason)``: b'' if
        its reply cannot carry one.  The connection is CLOSED after."""
        if self.pending is not None:
            request_type = type(self.pending)
        else:
            request_type = self._parsing or self._request_type_buffered()
        self.pending = None
        self._parsing = None
        self.state = CLOSED
        return encode_error_reply(request_type, reason, self.version)

    def deny(self, reason):
        """Bytes answering the pending request with ``DeniedReply``
        (protocol 3); the connection goes on (IDLE)."""
        request = self.pending
        self.pending = None
        self.state = IDLE
        prefix = _ERROR_PREFIX.get(type(request), b'')
        text = reason.encode('utf-8', 'replace')[:MAX_ERROR_REASON]
        return prefix + STATUS_DENIED + _pack_int4(len(text)) + text

    def _request_type_buffered(self):
        """The type of the request whose bytes start the buffer, if any."""
        if self.state == COMMITTING:
            return CommitData
        buf = self._input
        if not buf.available():
            return None
        return COMMANDS.get(buf.data[buf.start], (None,))[0]

    def send(self, reply):
        request = self.pending
        if request is None:
            raise OutOfTurnError('no request is waiting for %r' % (reply,))
        reply_type, after = TRANSITIONS[self.state, type(request)]
        if type(reply) is not reply_type:
            raise OutOfTurnError('%r cannot answer %r' % (reply, request))
        if reply_type is Oids:
            wanted = 1 if type(request) is NewOid else request.count
            if len(reply.oids) != wanted:
                raise OutOfTurnError('%r asked for %d oids, not %d'
                                     % (request, wanted, len(reply.oids)))
        elif reply_type is BulkLoadReply:
            if len(reply.replies) != len(request.oids):
                raise OutOfTurnError('bulk load of %d oids answered with %d'
                                     % (len(request.oids), len(reply.replies)))
        elif reply_type is VersionReply:
            if reply.protocol != request.protocol:
                after = CLOSED  # versions differ: reply, then hang up
            else:
                self.version = reply.protocol
        elif reply_type is PendingInvalidations:
            if (len(reply.oids) > request.limit or
                    len(reply.oids) > reply.count):
                raise OutOfTurnError('%r cannot answer %r' % (reply, request))
        self.pending = None
        self.state = after
        if (self.version in AUTHENTICATED_VERSIONS and
                type(request) in _PREFIXED_IN_3):
            return STATUS_OKAY + encode_reply(reply)
        return encode_reply(reply)

    def _parse_command(self):
        buf = self._input
        data = buf.data
        start = buf.start
        available = len(data) - start
        if not available:
            return NEED_DATA
        code = data[start]
        try:
            kind, size = COMMANDS[code]
        except KeyError:
            kind = None
        if kind is None or (kind is CommitAll and
                            self.version < EXTENDED_PROTOCOL_VERSION) or (
                kind is Auth and self.version not in AUTHENTICATED_VERSIONS) or (
                kind is PeekInvalidations and self.version not in PEEK_VERSIONS):
            if code == 0x16 and not self.requests:
                raise ProtocolError('it sent a TLS handshake, but this '
                                    'server does not use TLS (start it with '
                                    '--tls-cert and --tls-key)')
            raise ProtocolError('No such command code: %r' % chr(code))
        self._parsing = kind
        if available < size:
            return NEED_DATA
        if kind is Load:
            return Load(buf.take(9)[1:])
        if kind is BulkLoad:
            count = _unpack_int4(data, start + 1)[0]
            if count > MAX_BULK_OIDS or 8 * count > self.max_frame:
                raise FrameTooLargeError(
                    'bulk load of %d oids exceeds the limit of %d oids per '
                    'request' % (count, MAX_BULK_OIDS))
            if buf.available() < 5 + 8 * count:
                return NEED_DATA
            raw = buf.take(5 + 8 * count)
            return BulkLoad([raw[i:i + 8] for i in range(5, len(raw), 8)])
        if kind is Auth:
            length = _unpack_int4(data, start + 1)[0]
            if length > MAX_AUTH_MESSAGE:
                raise FrameTooLargeError(
                    'authentication message of %d bytes exceeds the limit '
                    'of %d' % (length, MAX_AUTH_MESSAGE))
            if buf.available() < 5 + length:
                return NEED_DATA
            return Auth(buf.take(5 + length)[5:])
        if kind is CommitAll:
            if _unpack_int4(data, start + 1)[0] == 0:
                raise ProtocolError('a one-step commit of no records')
            items = self._parse_items(start + 1)
            return items if items is NEED_DATA else CommitAll(items)
        buf.take(size)
        if kind is NewOids:
            return NewOids(data[start + 1])
        if kind is Version:
            return Version(_unpack_int4(data, start + 1)[0])
        if kind is PeekInvalidations:
            limit = _unpack_int4(data, start + 1)[0]
            if limit > MAX_PEEK_OIDS:
                raise ProtocolError('asked for %d pending invalidations; the '
                                    'limit is %d' % (limit, MAX_PEEK_OIDS))
            return PeekInvalidations(limit)
        return kind()

    def _parse_commit(self):
        buf = self._input
        self._parsing = CommitData
        if buf.available() < 4:
            return NEED_DATA
        if _unpack_int4(buf.data, buf.start)[0] == 0:
            buf.take(4)
            return CommitBackOut()
        items = self._parse_items(buf.start)
        if items is NEED_DATA:
            return NEED_DATA
        return CommitData(items)

    def _parse_items(self, position):
        """The items of the int4-sized payload at ``position`` (the buffer
        then continues after it), or NEED_DATA."""
        buf = self._input
        data = buf.data
        total = _unpack_int4(data, position)[0]
        if total > self.max_frame:
            raise FrameTooLargeError(
                'commit of %d bytes exceeds the frame limit of %d bytes'
                % (total, self.max_frame))
        position += 4
        end = position + total
        if len(data) < end:
            return NEED_DATA
        items = []
        view = memoryview(data)
        try:
            while position < end:
                if end - position < 12:
                    raise ProtocolError('commit payload ends inside an item '
                                        'header')
                size = _unpack_int4(data, position)[0]
                if size < 8 or position + 4 + size > end:
                    raise ProtocolError('commit item of %d bytes overruns the '
                                        'payload' % size)
                oid = bytes(view[position + 4:position + 12])
                record = bytes(view[position + 12:position + 4 + size])
                # (record_problem's checks inline; it names the problem)
                rest = size - 20
                if rest >= 0:   # bytes after the data field (refs: 8 each)
                    rest -= _unpack_int4(record, 8)[0]
                if rest < 0 or rest & 7 or record[:8] != oid:
                    raise ProtocolError('commit item for oid %d: %s'
                                        % (int.from_bytes(oid, 'big'),
                                           record_problem(record, oid)))
                items.append((oid, record))
                position += 4 + size
        finally:
            view.release()
        buf.start = end
        return items


class ClientConnection(object):
    """The client end: ``send(request)`` -> bytes; feed received bytes with
    ``receive_data``; ``next_event()`` -> the reply to the oldest
    unanswered request, or NEED_DATA.  Requests may be pipelined."""

    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self.state = IDLE
        self.version = PROTOCOL_VERSION  # until a 'V' agrees on another
        self._expected = []     # requests awaiting replies, oldest first
        self._input = _InputBuffer()
        self._partial = None    # bulk load replies parsed so far
        self.refused = None     # the request an ErrorReply answered
        self._status_taken = False  # the 'O' of a protocol-3 reply

    def send(self, request):
        if self.state == CLOSED:
            raise OutOfTurnError('the connection is closed')
        kind = type(request)
        if kind is CommitData and not request.items:
            request = CommitBackOut()   # an empty payload is a back-out
            kind = CommitBackOut
        if kind is Auth and self.version not in AUTHENTICATED_VERSIONS:
            raise OutOfTurnError('Auth needs protocol %d'
                                 % AUTH_PROTOCOL_VERSION)
        if kind is PeekInvalidations and self.version not in PEEK_VERSIONS:
            raise OutOfTurnError('PeekInvalidations needs protocol %d or %d; '
                                 'this connection speaks %d'
                                 % (PEEK_VERSIONS + (self.version,)))
        if kind is CommitAll and self.version < EXTENDED_PROTOCOL_VERSION:
            raise OutOfTurnError('CommitAll needs protocol %d; this '
                                 'connection speaks %d'
                                 % (EXTENDED_PROTOCOL_VERSION, self.version))
        reply_type, after = _transition(self.state, request, 'client')
        data = encode_request(request)
        if reply_type is not None:
            self._expected.append(request)
        self.state = after
        return data

    def receive_data(self, data):
        self._input.feed(data)

    def buffered(self):
        """Bytes received but not yet parsed into a reply (while there
        are none, next_event() can only answer NEED_DATA)."""
        return len(self._input.data) - self._input.start

    # A small commit's client CPU is mostly Python calls: these two do
    # the usual one-step commit (idle, not authenticated, the reply just
    # a status) in one call each, and hand anything else to the general
    # send() / receive_data() + next_event().

    def send_commit_all(self, items):
        """``send(CommitAll(items))``; ``items`` (a list the caller no
        longer changes) is kept as the request's items, not copied."""
        if (self.state != IDLE or not items or
                self.version not in _PLAIN_COMMIT_ALL_VERSIONS):
            return self.send(CommitAll(items))
        if len(items) == 1:     # one changed object: _encode_items inlined
            oid, record = items[0]
            if type(oid) is not bytes or len(oid) != 8:
                _check_oid(oid)     # raises, naming the oid
            data = b''.join((b'A', _pack_int4(12 + len(record)),
                             _pack_int4(8 + len(record)), oid, record))
        else:
            data = b'A' + _encode_items(items)
        request = object.__new__(CommitAll)
        request.items = items
        self._expected.append(request)
        return data

    def receive_commit_all_reply(self, data):
        """The reply to the one awaited CommitAll when ``data`` (just
        received, with nothing buffered before it) is exactly that reply
        without invalidations; else None, ``data`` fed as
        ``receive_data(data)`` would (``next_event()`` parses it)."""
        expected = self._expected
        if len(data) == 5 and len(expected) == 1:
            status = _LONE_COMMIT_ALL_REPLIES.get(bytes(data))
            if (status is not None and type(expected[0]) is CommitAll and
                    self.version in _PLAIN_COMMIT_ALL_VERSIONS and
                    self._input.start == len(self._input.data) and
                    not self._input.eof):
                del expected[0]
                self._status_taken = False
                return CommitAllReply((), status)
        self._input.feed(data)
        return None

    def awaiting(self):
        """The requests still waiting for their replies."""
        return list(self._expected)

    def next_event(self):
        if not self._expected:
            if self._input.available():
                raise ProtocolError('server sent %d bytes nobody asked for'
                                    % self._input.available())
            return NEED_DATA
        request = self._expected[0]
        kind = type(request)
        if self.version in AUTHENTICATED_VERSIONS and kind in DENIABLE:
            denied = self._parse_denied(kind)
            if denied is NEED_DATA:
                if self._input.eof:
                    raise ProtocolError('server closed the connection '
                                        'before answering %r' % (request,))
                return denied
            if denied is not None:
                del self._expected[0]
                if kind is CommitStart:
                    self.state = IDLE     # no commit is open
                return denied
        if kind is Load:
            reply = self._parse_load()
        elif kind is BulkLoad:
            reply = self._parse_bulk(len(request.oids))
        elif kind is CommitStart or kind is Sync:
            reply = self._parse_oid_list()
        elif kind is CommitAll:
            reply = self._parse_commit_all_reply()
        elif kind is NewOids or kind is NewOid:
            count = 1 if kind is NewOid else request.count
            reply = self._parse_fixed(8 * count, self._oids)
        elif kind is Version:
            reply = self._parse_fixed(4, self._version)
        elif kind is Auth:
            reply = self._parse_auth_reply()
        elif kind is PeekInvalidations:
            reply = self._parse_pending(request.limit)
        else:   # CommitData, Pack
            reply = self._parse_status()
        if reply is NEED_DATA:
            if self._input.eof:
                raise ProtocolError('server closed the connection before '
                                    'answering %r' % (request,))
            return reply
        if type(reply) is ErrorReply:
            # The server hangs up after it: nothing else will come.
            self.refused = request
            self._expected = []
            self._status_taken = False
            self.state = CLOSED
            return reply
        del self._expected[0]
        self._status_taken = False
        if kind is Version:
            if reply.protocol != request.protocol:
                self.state = CLOSED
            else:
                self.version = reply.protocol
        return reply

    def _parse_denied(self, kind):
        """A DeniedReply starting the buffer, NEED_DATA, or None (a
        normal reply follows; a protocol-3 'O' before it is taken)."""
        buf = self._input
        if self._status_taken:
            return None
        offset = 4 if kind is CommitAll else 0
        if buf.available() < offset + 1:
            return NEED_DATA
        status = buf.data[buf.start + offset:buf.start + offset + 1]
        if status != STATUS_DENIED or (
                offset and buf.data[buf.start:buf.start + 4] != b'\0\0\0\0'):
            if kind in _PREFIXED_IN_3:
                if status != STATUS_OKAY:
                    raise ProtocolError('unexpected status byte %r before '
                                        'a reply' % bytes(status))
                buf.take(1)
                self._status_taken = True
            return None
        start = offset + 1
        if buf.available() < start + 4:
            return NEED_DATA
        size = _unpack_int4(buf.data, buf.start + start)[0]
        if size > MAX_ERROR_REASON:
            raise ProtocolError('denial of %d bytes exceeds the limit of %d'
                                % (size, MAX_ERROR_REASON))
        if buf.available() < start + 4 + size:
            return NEED_DATA
        raw = buf.take(start + 4 + size)
        return DeniedReply(raw[start + 4:].decode('utf-8', 'replace'))

    @staticmethod
    def _oids(raw):
        return Oids([raw[i:i + 8] for i in range(0, len(raw), 8)])

    @staticmethod
    def _version(raw):
        return VersionReply(_unpack_int4(raw)[0])

    def _parse_fixed(self, size, build):
        if self._input.available() < size:
            return NEED_DATA
        return build(self._input.take(size))

    def _parse_load(self):
        buf = self._input
        if not buf.available():
            return NEED_DATA
        status = buf.data[buf.start:buf.start + 1]
        if status == STATUS_OKAY:
            if buf.available() < 5:
                return NEED_DATA
            size = _unpack_int4(buf.data, buf.start + 1)[0]
            if size > self.max_frame:
                raise FrameTooLargeError(
                    'record of %d bytes exceeds the frame limit of %d bytes'
                    % (size, self.max_frame))
            if buf.available() < 5 + size:
                return NEED_DATA
            buf.start += 5
            return LoadReply(STATUS_OKAY, buf.take(size))
        if status == STATUS_KEYERROR or status == STATUS_INVALID:
            buf.take(1)
            return LoadReply(bytes(status))
        if status == STATUS_ERROR:
            return self._parse_error(0)
        raise ProtocolError('unexpected status byte %r in a load reply'
                            % bytes(status))

    def _parse_auth_reply(self):
        buf = self._input
        if not buf.available():
            return NEED_DATA
        status = buf.data[buf.start:buf.start + 1]
        if status == STATUS_ERROR:
            return self._parse_error(0)
        if status != STATUS_OKAY:
            raise ProtocolError('unexpected status byte %r in an '
                                'authentication reply' % bytes(status))
        if buf.available() < 5:
            return NEED_DATA
        size = _unpack_int4(buf.data, buf.start + 1)[0]
        if size > MAX_AUTH_MESSAGE:
            raise ProtocolError('authentication reply of %d bytes exceeds '
                                'the limit of %d' % (size, MAX_AUTH_MESSAGE))
        if buf.available() < 5 + size:
            return NEED_DATA
        return AuthReply(buf.take(5 + size)[5:])

    def _parse_status(self):
        buf = self._input
        if not buf.available():
            return NEED_DATA
        if buf.data[buf.start] == STATUS_ERROR[0]:
            return self._parse_error(0)
        return Status(buf.take(1))

    def _parse_error(self, offset):
        """The error reply whose status byte is ``offset`` bytes into
        the buffer, or NEED_DATA."""
        buf = self._input
        start = offset + 1
        if self.version < EXTENDED_PROTOCOL_VERSION:
            buf.take(start)
            return ErrorReply(None)
        if buf.available() < start + 4:
            return NEED_DATA
        size = _unpack_int4(buf.data, buf.start + start)[0]
        if size > MAX_ERROR_REASON:
            raise ProtocolError('error reply of %d bytes exceeds the limit '
                                'of %d' % (size, MAX_ERROR_REASON))
        if buf.available() < start + 4 + size:
            return NEED_DATA
        raw = buf.take(start + 4 + size)
        return ErrorReply(raw[start + 4:].decode('utf-8', 'replace'))

    def _parse_bulk(self, count):
        if self._partial is None:
            self._partial = []
        replies = self._partial
        while len(replies) < count:
            reply = self._parse_load()
            if reply is NEED_DATA:
                return NEED_DATA
            if type(reply) is ErrorReply:
                self._partial = None
                return reply
            replies.append(reply)
        self._partial = None
        return BulkLoadReply(replies)

    def _oid_count(self):
        """The length of the oid list starting the buffer, checked against
        the frame limit before the list is waited for; or NEED_DATA."""
        buf = self._input
        if buf.available() < 4:
            return NEED_DATA
        count = _unpack_int4(buf.data, buf.start)[0]
        if 8 * count > self.max_frame:
            raise FrameTooLargeError(
                'list of %d oids exceeds the frame limit of %d bytes'
                % (count, self.max_frame))
        return count

    def _parse_commit_all_reply(self):
        count = self._oid_count()
        buf = self._input
        if count is NEED_DATA or buf.available() < 5 + 8 * count:
            return NEED_DATA  # the list and the status byte after it
        status = bytes(buf.data[buf.start + 4 + 8 * count:
                                buf.start + 5 + 8 * count])
        if status == STATUS_ERROR and count == 0:
            return self._parse_error(4)
        if status not in _COMMIT_ALL_STATUSES:
            raise ProtocolError('unexpected status byte %r in a commit reply'
                                % status)
        raw = buf.take(5 + 8 * count)  # the list, then the status byte
        oids = [raw[i:i + 8] for i in range(4, 4 + 8 * count, 8)]
        return CommitAllReply(oids, status)

    def _parse_pending(self, limit):
        buf = self._input
        if buf.available() < 4:
            return NEED_DATA
        count = _unpack_int4(buf.data, buf.start)[0]
        buf.start += 4
        try:
            listed = self._oid_count()
            if listed is NEED_DATA or buf.available() < 4 + 8 * listed:
                return NEED_DATA
        finally:
            buf.start -= 4
        if listed > limit or listed > count:
            raise ProtocolError('pending invalidations reply lists %d oids '
                                'of %d (asked for at most %d)'
                                % (listed, count, limit))
        buf.take(4)
        return PendingInvalidations(count, self._parse_oid_list().oids)

    def _parse_oid_list(self):
        count = self._oid_count()
        buf = self._input
        if count is NEED_DATA or buf.available() < 4 + 8 * count:
            return NEED_DATA
        raw = buf.take(4 + 8 * count)
        return Invalidations([raw[i:i + 8] for i in range(4, len(raw), 8)])
