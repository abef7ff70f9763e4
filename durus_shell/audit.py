"""The audit log of data fixes (``--log FILE``, ``:log FILE``).

Every commit appends one entry: the time (UTC), the database, the user
and the diff of what was written, so each manual fix leaves a trace;
with the reason or ticket given (``--reason``, or asked at ``:commit``)
and, for ``-c``/``--script`` runs, the script's name and SHA-256.
The file is opened for append and closed for each entry (no buffered
text is lost if the shell dies), and entries are separated by a header
line that starts with ``=== ``.
"""

import datetime
import getpass
import hashlib
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


def script_identity(name, text):
    """``'NAME sha256:HEX'`` naming a script and exactly what it held."""
    digest = hashlib.sha256(text.encode('utf-8', 'surrogateescape'))
    return '%s sha256:%s' % (name, digest.hexdigest())


def format_entry(database, diff_lines, when=None, user=None, reason=None,
                 script=None):
    """The text of one log entry."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    header = '=== %s commit to %s by %s' % (
        when.strftime('%Y-%m-%dT%H:%M:%SZ'), database,
        user or current_user())
    lines = [header]
    if reason:
        # One line: a reason cannot forge an entry header.
        lines.append('  reason: %s' % ' '.join(reason.split()))
    if script:
        lines.append('  script: %s' % script)
    lines += ['  ' + line for line in diff_lines]
    return '\n'.join(lines) + '\n'


class AuditLog(object):
    """Appends commit entries to ``path``."""

    def __init__(self, path, database, reason=None, script=None):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.database = database
        self.reason = reason          # --reason: every commit's
        self.next_reason = None       # asked at :commit: the next one's
        self.script = script          # script_identity() of a script run
        # Fail now, not at the first commit, if the file cannot be written.
        with open(self.path, 'a', encoding='utf-8'):
            pass

    def record(self, diff_lines):
        reason, self.next_reason = self.next_reason or self.reason, None
        text = format_entry(self.database, diff_lines, reason=reason,
                            script=self.script)
        with open(self.path, 'a', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return text
