"""Nothing lost on a conflict: the transaction's statements, kept to re-run.

A ``StatementJournal`` remembers, for the open transaction, every input
that ran without error (or was stopped by another client's change), in
order: Python statements (all of them: a later
statement may use a name an earlier one computed from the database) and
the ``:commands`` that changed something (``:touch`` ...).  Each entry
keeps the undo step its input made, so a statement taken back with
``:undo`` is left out (and comes back with ``:redo``), exactly as the
pending changes do.

When a commit conflicts, the session keeps the journal's statements
(``kept``) before it aborts, and a ``ConflictReport`` shows, per
conflicting object and attribute or item, the value this transaction
read, the value the other client committed and the value this
transaction set.  ``retry(session, ui)`` re-runs the kept statements on
the fresh state; the first one that fails stops it, and its partial
changes are dropped (the statements stay kept).
"""

from durus import inspect
from durus.error import ConflictError
from durus_shell import peek
from durus_shell.changes import MISSING, short_repr, state_items_diff
from durus_shell.peek import copy_value, peek_state
from durus_shell.registry import find_command, split_command_line

PYTHON, COMMAND = 'python', 'command'
UNCHANGED = type('Unchanged', (), {'__repr__': lambda self: '<unchanged>'})()
# Commands never re-run: :undo/:redo only move along the undo history
# (their effect is in which steps are kept), :retry runs statements that
# are journaled themselves, and :commit/:abort end the transaction.
HISTORY_COMMANDS = ('undo', 'redo', 'retry', 'commit', 'abort')


class Statement(object):
    """One input of a transaction: its text, kind and the undo step it made."""

    __slots__ = ('kind', 'source', 'step')

    def __init__(self, kind, source, step=None):
        self.kind = kind
        self.source = source
        self.step = step

    def __repr__(self):
        return 'Statement(%r, %r)' % (self.kind, self.source)


class StatementJournal(object):
    """The statements of the open transaction and those kept for :retry."""

    def __init__(self, tracker):
        self.tracker = tracker
        self.entries = []
        self._serial = tracker.connection.transaction_serial
        self.kept = []          # statements of a transaction that was lost
        self.kept_reason = None  # 'conflict' or 'disconnected'

    def note(self, kind, source, step_made, failed=False):
        """Record one input just run; ``step_made`` is the undo step it
        made (or None).  Failed inputs are not re-run later (the session
        passes a statement stopped by a conflict as not failed: on the
        new state it may well succeed)."""
        self._check_serial()
        if failed:
            return
        if kind == COMMAND and step_made is None:
            return   # a command that changed nothing need not run again
        self.entries.append(Statement(kind, source, step_made))

    def statements(self):
        """The statements whose effect is still pending, in order."""
        self._check_serial()
        history = self.tracker.history
        live = set(id(step) for step in history)
        return [entry for entry in self.entries
                if entry.step is None or id(entry.step) in live]

    def keep(self, reason):
        """Keep this transaction's statements for :retry (before an abort)."""
        statements = self.statements()
        if statements:
            self.kept = [Statement(s.kind, s.source) for s in statements]
            self.kept_reason = reason
        return self.kept

    def _check_serial(self):
        # A commit or an abort (by any path) ends the transaction.
        serial = self.tracker.connection.transaction_serial
        if serial != self._serial:
            self._serial = serial
            self.entries = []

    def drop_kept(self):
        self.kept = []
        self.kept_reason = None


def last_step(tracker, before):
    """The undo step the last input made, given ``len(history)`` before it."""
    history = tracker.history
    return history[-1] if len(history) > before else None


# -- what conflicted ----------------------------------------------------------

class ConflictedObject(object):
    """One conflicting object: ``rows`` of (label, read, committed, set)."""

    def __init__(self, obj, oid, rows, note=None):
        self.obj = obj
        self.oid = oid
        self.rows = rows
        self.note = note

    @property
    def label(self):
        number = int.from_bytes(self.oid, 'big')
        if self.obj is None:
            return 'oid %d' % number
        return '<%s %d>' % (type(self.obj).__name__, number)


class ConflictSnapshot(object):
    """Taken before the abort: what this transaction read and set."""

    def __init__(self, session, oids):
        self.oids = list(oids)
        originals = session.tracker.original_states()
        changed = session.connection.changed
        self.objects = []
        for oid in self.oids:
            obj = session.connection.cache.get(oid)
            if obj is None:
                self.objects.append((oid, None, MISSING, MISSING))
                continue
            mine = changed.get(oid) is obj
            current = copy_value(peek_state(obj))
            read = originals.get(id(obj), MISSING if mine else current)
            self.objects.append((oid, obj, read,
                                 current if mine else MISSING))

    def report(self, connection):
        """After the abort: compare with the records committed now."""
        present = [obj for oid, obj, read, mine in self.objects
                   if obj is not None]
        stored = inspect.stored_states(connection, present)
        result = []
        for oid, obj, read, mine in self.objects:
            if obj is None:
                result.append(ConflictedObject(
                    None, oid, [], 'not loaded here: its values are unknown'))
                continue
            committed, error = stored.get(id(obj), (None, None))
            if committed is None:
                result.append(ConflictedObject(
                    obj, oid, [], 'cannot read the committed record: %s'
                    % (error,)))
                continue
            if read is None:
                result.append(ConflictedObject(
                    obj, oid, [], 'not loaded by this transaction: only '
                    'its record changed'))
                continue
            try:
                rows = compare_three(obj, read, committed, mine)
            except Exception as error:  # never hide the conflict itself
                result.append(ConflictedObject(
                    obj, oid, [], 'cannot compare its states: %s'
                    % describe(error)))
                continue
            result.append(ConflictedObject(obj, oid, rows))
        return result


def compare_three(obj, read, committed, mine):
    """``[(label, read, committed, set)]`` for every attribute or item
    that this transaction set or the other client changed.  ``set`` is
    MISSING when this transaction only read the object, UNCHANGED when
    it changed the object but not this attribute."""
    if read is MISSING:
        return []
    theirs = dict((label, new) for label, old, new in
                  state_items_diff(obj, read, committed))
    ours = {} if mine is MISSING else dict(
        (label, new) for label, old, new in state_items_diff(obj, read, mine))
    olds = {}
    for label, old, new in state_items_diff(obj, read, committed):
        olds[label] = old
    if mine is not MISSING:
        for label, old, new in state_items_diff(obj, read, mine):
            olds[label] = old
    rows = []
    for label in olds:
        rows.append((label, olds[label],
                     theirs.get(label, olds[label]),
                     ours.get(label, UNCHANGED) if mine is not MISSING
                     else MISSING))
    return rows


def format_conflict(objects, kept_count, limit=10, paths=None):
    """The lines shown for a conflict at :commit; ``paths``: {oid: path
    from the root} for the objects whose path is known."""
    paths = paths or {}
    lines = ['Conflict: another client committed changes to %s this '
             'transaction read. Nothing was written.' % (
                 _conflict_name(objects[0], paths) if len(objects) == 1
                 else '%d objects' % len(objects) if objects else 'objects')]
    for item in objects[:limit]:
        where = peek.class_path(type(item.obj)) if item.obj is not None \
            else ''
        path = paths.get(item.oid)
        lines.append('  %s %s%s' % (item.label, where,
                                    '  at ' + path if path else ''))
        if item.note:
            lines.append('    (%s)' % item.note)
            continue
        if not item.rows:
            lines.append('    (no attribute differs from what you read:'
                         ' changed and changed back, or only its layout)')
        for label, read, committed, mine in item.rows:
            lines.append('    %s  you read %s; now committed %s; %s' % (
                label, short_repr(read, 40), short_repr(committed, 40),
                'you only read it' if mine is MISSING
                else 'you left it' if mine is UNCHANGED
                else 'you set %s' % short_repr(mine, 40)))
    if len(objects) > limit:
        lines.append('  ... %d more' % (len(objects) - limit))
    if kept_count:
        lines.append('Your %d statement%s %s kept: :retry re-runs %s on the '
                     'new state, shows :diff and asks to commit (:retry '
                     '--list shows them, :retry --drop forgets them).' % (
                         kept_count, '' if kept_count == 1 else 's',
                         'is' if kept_count == 1 else 'are',
                         'it' if kept_count == 1 else 'them'))
    else:
        lines.append('No statement of this transaction is left to re-run:'
                     ' redo the change by hand.')
    return lines


def _conflict_name(item, paths):
    path = paths.get(item.oid)
    return '%s at %s' % (item.label, path) if path else item.label


# -- re-running ---------------------------------------------------------------

class RetryFailed(Exception):
    """A kept statement failed on the new state (nothing was committed)."""

    def __init__(self, number, statement, reason, conflict=False):
        Exception.__init__(self, number, statement, reason)
        self.number = number
        self.statement = statement
        self.reason = reason
        self.conflict = conflict

    def __str__(self):
        return 'statement %d failed on the new state: %s\n  %s' % (
            self.number, self.reason, self.statement.source.strip())


def rerun(session, statements, ui):
    """Run ``statements`` in order; RetryFailed names the first that fails."""
    for number, statement in enumerate(statements, 1):
        if statement.kind == COMMAND:
            error = _run_kept_command(session, statement.source, ui)
            if error is not None:
                raise RetryFailed(number, statement, describe(error),
                                  conflict=isinstance(error, ConflictError))
            continue
        result = session.run_python(statement.source)
        if result.failed:
            raise RetryFailed(number, statement,
                              result.traceback or result.kind,
                              conflict=isinstance(result.error,
                                                  ConflictError))


def _run_kept_command(session, line, ui):
    """Run a kept ``:command`` as the dispatcher would (found through the
    registry, one undo step, journaled); the error it raised, or None."""
    tracker = session.tracker
    try:
        name, args = split_command_line(line)
        cmd = find_command(name)
        tracker.begin_statement()
        steps_before = len(tracker.history)
        try:
            cmd.func(session, args, ui)
        finally:
            tracker.end_statement()
        session.journal.note(COMMAND, line, last_step(tracker, steps_before))
    except Exception as error:
        return error
    return None


def describe(error):
    text = str(error)
    return '%s: %s' % (type(error).__name__, text) if text else \
        type(error).__name__
