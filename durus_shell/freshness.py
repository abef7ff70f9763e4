"""Whether the session's view is older than the database file.

A read-only session sees the file as of its last ``:abort`` (or open):
another process's commits stay invisible until then.  Before each prompt
the shell looks once (``FileFreshness.look()``: one ``os.stat``, cheap)
and the toolbar says when the file has changed since, and by how much,
so the operator knows ``:abort`` would bring something in.

Only files opened read-only are watched: a read-write file has no other
writer (the file lock), and a server's news cannot be asked for without
taking them (the protocol's sync hands them over).
"""

import os

from durus_shell.render import human_size


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


def watch(session):
    """A FileFreshness for a read-only file session, else None."""
    target = session.target
    if (target is None or getattr(target, 'kind', None) != 'file'
            or not session.readonly):
        return None
    return FileFreshness(session, target.path)
