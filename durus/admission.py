"""Who the server lets in: limits on open connections.

Every connection holds a file descriptor, and a process has a fixed
number of them (``RLIMIT_NOFILE``).  Without a limit, one peer that opens
connections and stays silent takes them all, and then the server can
neither accept anyone else nor open the files a pack needs.  The server
asks ``ConnectionLimits.admit`` for each accepted socket and refuses
(closes at once) what is over a limit: the total, and optionally the
connections of one peer host.

``RefusalLog`` keeps a flood of refusals to a few log lines.  This module
does no I/O: the loop passes the time in.
"""

import logging

try:
    import resource
except ImportError:     # not on every platform
    resource = None

# Descriptors kept for the server's own use: the storage file and its
# pack files, the listening socket, the selector, the wake-up pair, the
# log file, and some room.
RESERVED_DESCRIPTORS = 32
# Used when the platform does not say how many descriptors it allows.
FALLBACK_MAX_CONNECTIONS = 1000
# The log names refusals at most this often (seconds); the rest are
# counted and reported with the next line.
REFUSAL_LOG_INTERVAL = 10.0


def descriptor_limit():
    """The soft limit on open descriptors, or None when unknown."""
    if resource is None:
        return None
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    return soft


def default_max_connections():
    """As many connections as the descriptor limit leaves room for."""
    limit = descriptor_limit()
    if limit is None:
        return FALLBACK_MAX_CONNECTIONS
    return max(1, limit - RESERVED_DESCRIPTORS)


def check_limit(name, value):
    """``value`` as a connection limit (None: none), or ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError('%s must be a whole number of connections, at '
                         'least 1, not %r' % (name, value))
    return value


class ConnectionLimits(object):
    """Counts open connections, in all and per peer host, and says which
    new one is over a limit."""

    def __init__(self, max_connections=None, max_per_peer=None):
        if max_connections is None:
            max_connections = default_max_connections()
        self.max_connections = check_limit('max_connections', max_connections)
        self.max_per_peer = check_limit('max_per_peer', max_per_peer)
        self.open = 0
        self._per_peer = {}

    def admit(self, peer):
        """Count a new connection from ``peer`` and return None, or return
        why it is refused (then it is not counted)."""
        if self.open >= self.max_connections:
            return ('the server has %d connections open, its limit '
                    '(--max-connections)' % self.open)
        if self.max_per_peer is not None:
            count = self._per_peer.get(peer, 0)
            if count >= self.max_per_peer:
                return ('%s has %d connections open, the limit per peer '
                        '(--max-per-peer)' % (peer, count))
            self._per_peer[peer] = count + 1
        self.open += 1
        return None

    def release(self, peer):
        """A connection ``admit`` counted has closed."""
        self.open -= 1
        if self.max_per_peer is not None:
            count = self._per_peer.get(peer, 0) - 1
            if count > 0:
                self._per_peer[peer] = count
            else:
                self._per_peer.pop(peer, None)


class RefusalLog(object):
    """Turns a stream of refusals into at most one log line per
    ``interval``: the first at once, the others counted into the next."""

    def __init__(self, interval=REFUSAL_LOG_INTERVAL):
        self.interval = interval
        self._next = None
        self._held = 0

    def refused(self, why, now):
        """Return (level, message) to log now, or None to hold it."""
        if self._next is not None and now < self._next:
            self._held += 1
            return None
        self._next = now + self.interval
        held, self._held = self._held, 0
        message = 'refused a connection: %s' % why
        if held:
            message += (' (and %d more refused since the last such line)'
                        % held)
        return logging.WARNING, message
