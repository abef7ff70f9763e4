"""The audit log of data fixes (``--log FILE``, ``:log FILE``).

Every commit appends one entry: the time (UTC), the database, the user
and the diff of what was written, so each manual fix leaves a trace.
The file is opened for append and closed for each entry (no buffered
text is lost if the shell dies), and entries are separated by a header
line that starts with ``=== ``.
"""

import datetime
import getpass
import os
import socket


def current_user():
    try:
        user = getpass.getuser()
    except Exception:
        user = os.environ.get('USER') or '?'
    try:
        host = socket.gethostname()
    except Exception:
        host = '?'
    return '%s@%s' % (user, host)


def format_entry(database, diff_lines, when=None, user=None):
    """The text of one log entry."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    header = '=== %s commit to %s by %s' % (
        when.strftime('%Y-%m-%dT%H:%M:%SZ'), database,
        user or current_user())
    return '\n'.join([header] + ['  ' + line for line in diff_lines]) + '\n'


class AuditLog(object):
    """Appends commit entries to ``path``."""

    def __init__(self, path, database):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.database = database
        # Fail now, not at the first commit, if the file cannot be written.
        with open(self.path, 'a', encoding='utf-8'):
            pass

    def record(self, diff_lines):
        text = format_entry(self.database, diff_lines)
        with open(self.path, 'a', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return text
