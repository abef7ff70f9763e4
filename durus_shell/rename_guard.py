"""After :rename-class, no commit while objects of the old class are loaded.

A rename rewrites the records, not the objects this session already
holds: they keep the class they were loaded with (a ghost's class comes
from the reference that made it).  Committing one of them, or an object
that refers to one (a persistent reference names its target's class),
would write the old name back into the records and quietly undo part of
the rename.  So once a session has renamed a class, this observer of its
connection refuses a commit while any object of an old class is still in
the cache, and says how to go on: restart durus-shell.
"""

from durus import inspect
from durus.connection import ConnectionObserver

# How many oids a refusal names.
EXAMPLES = 3


class RenamedClassGuard(ConnectionObserver):
    """Vetoes commits while objects of a renamed-away class are loaded."""

    def __init__(self):
        self.renamed = {}   # old dotted path -> new dotted path

    def add(self, old, new):
        self.renamed[old] = new

    def stale_objects(self, connection):
        """(object, old path) for each cached object of a renamed class."""
        renamed = self.renamed
        found = []
        for obj in connection.get_cache():
            path = inspect.class_path(type(obj))
            if path in renamed:
                found.append((obj, path))
        return found

    def before_commit(self, connection):
        if not self.renamed:
            return None
        stale = self.stale_objects(connection)
        if not stale:
            return None
        old = stale[0][1]
        oids = ', '.join(obj._p_format_oid() for obj, _ in stale[:EXAMPLES])
        return ('%d object%s in this session %s loaded as %s before '
                ':rename-class renamed it to %s (oid %s%s): a commit now '
                'could write the old name back into the records. Nothing '
                'was written. Restart durus-shell to work with %s (your '
                'uncommitted edits: :diff shows them, redo them after the '
                'restart).'
                % (len(stale), '' if len(stale) == 1 else 's',
                   'was' if len(stale) == 1 else 'were', old,
                   self.renamed[old], oids,
                   ', ...' if len(stale) > EXAMPLES else '',
                   self.renamed[old]))
