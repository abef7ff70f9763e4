"""Whether the session's view is older than the database.

A session sees the database as of its last ``:abort``, ``:commit`` (or
open): other clients' commits stay invisible until then.  Before each
prompt the shell looks once, cheaply, and the toolbar says when the view
is behind, so the operator knows ``:abort`` would bring something in:

* a file opened read-only (``FileFreshness``): one ``os.stat``; the
  toolbar says by how many bytes the file grew.  (A read-write file has
  no other writer: the file lock.)
* a storage that can tell without taking the news
  (``StorageFreshness``: ``Storage.pending_changes()``, e.g. this
  project's server, protocol 4): one round trip, bounded in time; the
  toolbar says how many objects others changed.  The news stays where
  it is, so conflicts are detected as if nobody had asked.  A storage
  that cannot tell (a Durus 4.3 server) shows nothing: no guess.

``incoming(session)`` is what ``:abort`` would bring in, for its
question and its report.
"""

import os

from durus_shell import link, object_paths, peek
from durus_shell.render import human_size

LOOK_TIMEOUT = 0.5     # seconds the prompt may wait for the server, at most
INCOMING_LISTED = 10   # changed objects :abort names, at most


class FileFreshness(object):
    """Watches one file for another writer's commits (see module doc)."""

    def __init__(self, session, path):
        self.path = path
        self.seen = self._stat()
        self.note = ''
        session.hooks.add('after_abort', self._caught_up)
        session.hooks.add('after_commit', self._caught_up)

    def _stat(self):
        try:
            facts = os.stat(self.path)
        except OSError:
            return None
        return facts.st_ino, facts.st_size

    def _caught_up(self, *args):
        self.seen = self._stat()
        self.note = ''

    def look(self):
        """Compare the file with the view; returns the toolbar note."""
        now = self._stat()
        if now is None or self.seen is None or now == self.seen:
            self.note = ''
        elif now[0] != self.seen[0]:
            self.note = 'file replaced (packed?) since this view: :abort ' \
                        'shows the new one'
        elif now[1] > self.seen[1]:
            self.note = 'view older than the file: %s committed since ' \
                        '(:abort brings it in)' % human_size(
                            now[1] - self.seen[1])
        else:
            self.note = 'file changed since this view: :abort to look again'
        return self.note


class StorageFreshness(object):
    """Asks the storage what other clients committed (see module doc)."""

    def __init__(self, session):
        self.session = session
        self.note = ''
        session.hooks.add('after_abort', self._caught_up)
        session.hooks.add('after_commit', self._caught_up)

    def _caught_up(self, *args):
        self.note = ''

    def look(self):
        """One bounded question to the storage; returns the toolbar note
        ('' when the view is current or the answer did not come)."""
        pending = _ask(self.session, 0)
        self.note = '' if pending is None else behind_note(pending)
        return self.note


def behind_note(pending):
    if not pending.count:
        return ''
    if pending.commits:
        return 'view %d commit%s behind (:abort brings %s in)' % (
            pending.commits, '' if pending.commits == 1 else 's',
            'it' if pending.commits == 1 else 'them')
    return '%d object%s changed by others (:abort brings %s in)' % (
        pending.count, '' if pending.count == 1 else 's',
        'it' if pending.count == 1 else 'them')


def _ask(session, limit):
    """The storage's PendingChanges, or None (it cannot tell, it is
    disconnected, it did not answer in time, or the asking failed)."""
    if link.is_disconnected(session):
        return None
    ask = getattr(session.storage, 'pending_changes', None)
    if ask is None:
        return None
    try:
        return ask(limit=limit, timeout=LOOK_TIMEOUT)
    except Exception:
        return None     # never a failing prompt: the statement will say


def status_note(session):
    """The toolbar's note for :status ('' if current or not known)."""
    pending = _ask(session, 0)
    return '' if pending is None else behind_note(pending)


def incoming(session):
    """What :abort would bring in, as lines ([] when nothing is known):
    the count, and the changed objects this session holds, by path when
    known (from memory: asking the storage for paths now would meet the
    very changes being announced)."""
    pending = _ask(session, INCOMING_LISTED)
    if pending is None or not pending.count:
        return []
    cache = session.connection.get_cache()
    # Only loaded states are stale; a ghost will be read fresh anyway.
    held = [obj for obj in (cache.get(oid) for oid in pending.oids)
            if obj is not None and not peek.is_ghost(obj)]
    paths = object_paths.object_paths(session, held, max_searches=0)
    lines = ['Would bring in: %d object%s changed by other clients%s' % (
        pending.count, '' if pending.count == 1 else 's',
        ' (%d commit%s)' % (pending.commits, '' if pending.commits == 1
                            else 's') if pending.commits else '')]
    for obj in held:
        oid = int.from_bytes(peek.oid_of(obj), 'big')
        label = '<%s %d>' % (type(obj).__name__, oid)
        path = paths.get(id(obj))
        lines.append('  %-24s %s' % (label, 'at ' + path if path
                                     else '(path not known)'))
    others = pending.count - len(held)
    if others:
        lines.append('  and %d not loaded in this session' % others)
    return lines


def watch(session):
    """A FileFreshness for a read-only file session, a StorageFreshness
    for a storage that can tell what others committed, else None."""
    target = session.target
    if (target is not None and getattr(target, 'kind', None) == 'file'
            and session.readonly):
        return FileFreshness(session, target.path)
    if _ask(session, 0) is not None:
        return StorageFreshness(session)
    return None
