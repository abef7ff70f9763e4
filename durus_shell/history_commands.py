"""Commands over an object's past and a class's name.

:history EXPR|OID [--show K]  the states a never-packed file still holds
:revert EXPR K                state K as an ordinary uncommitted edit
:rename-class OLD NEW         rewrite the class name in every record

History reads go through durus.file_history (built once per session, then
brought up to date with what was appended); states are unpickled with the
session's reader (the safe policy).  The rename works on record bytes
(durus.class_rename): neither class is imported.
"""

import re
import weakref

from durus import class_rename, file_history
from durus.error import ConflictError
from durus.inspect import state_of_record
from durus.record import record_refs
from durus_shell import changes, peek
from durus_shell.fix_commands import _evaluate, _object_or_oid
from durus_shell.registry import CommandError, command

_HISTORIES = weakref.WeakKeyDictionary()  # session -> RecordHistory
# session -> {oid: (file end, type of obj, states, lines)}: a listing
# stays good until something is appended
_LISTINGS = weakref.WeakKeyDictionary()
_SHOW = re.compile(r'^(.*?)\s+--show\s+(\S+)\s*$', re.S)
_REVERT = re.compile(r'^(.*?)\s+(\d+)\s*$', re.S)
MAX_ITEMS = 20
MAX_SEQUENCE = 12


def session_history(session, progress=None):
    """The session's RecordHistory, built on first use and updated after
    (rebuilt after a pack).  CommandError where there is no history."""
    storage = session.storage
    if not file_history.history_available(storage):
        raise CommandError(
            'history needs a FileStorage or FileStorage2 file opened '
            'directly (this session reads a %s, which keeps no old states)'
            % type(storage).__name__)
    history = _HISTORIES.get(session)
    if history is None or history.storage is not storage or \
            history.is_stale():
        history = file_history.RecordHistory(storage)
        _HISTORIES[session] = history
    else:
        history.update()
    return history


def _states(session, oid):
    """``[(location, state)]`` oldest first."""
    history = session_history(session)
    found = []
    for location in history.versions(oid):
        record = file_history.read_record(session.storage, location)
        try:
            state = state_of_record(session.connection, record)
        except Exception as error:
            state = _Unreadable(error)
        found.append((location, record, state))
    if not found:
        raise CommandError('oid %d has no state in this file'
                           % int.from_bytes(oid, 'big'))
    return found


class _Unreadable(object):
    def __init__(self, error):
        self.error = error

    def __repr__(self):
        return '<unreadable state: %s: %s>' % (type(self.error).__name__,
                                               self.error)


def show_value(value, limit=70):
    """A value as text; persistent objects as ``<Class oid N>``, never
    loaded (their repr could load them)."""
    text = _text(value, 3)
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


def _text(value, depth):
    if value is changes.MISSING:
        return '(absent)'
    if peek.is_persistent(value):
        oid = peek.oid_of(value)
        return '<%s oid %s>' % (peek.class_path(type(value)),
                                'new' if oid is None else
                                int.from_bytes(oid, 'big'))
    if depth <= 0:
        return '...'
    if isinstance(value, (list, tuple)):
        parts = [_text(v, depth - 1) for v in value[:MAX_SEQUENCE]]
        if len(value) > MAX_SEQUENCE:
            parts.append('... %d more' % (len(value) - MAX_SEQUENCE))
        if isinstance(value, tuple):
            return '(%s%s)' % (', '.join(parts), ',' if len(value) == 1
                               else '')
        return '[%s]' % ', '.join(parts)
    if isinstance(value, dict):
        items = list(value.items())
        parts = ['%s: %s' % (_text(k, depth - 1), _text(v, depth - 1))
                 for k, v in items[:MAX_SEQUENCE]]
        if len(items) > MAX_SEQUENCE:
            parts.append('... %d more' % (len(items) - MAX_SEQUENCE))
        return '{%s}' % ', '.join(parts)
    if isinstance(value, (set, frozenset)):
        return '{%s}' % ', '.join(_text(v, depth - 1) for v in
                                  list(value)[:MAX_SEQUENCE])
    return changes.short_repr(value, 200)


def _item_lines(items):
    lines = []
    for label, old, new in items[:MAX_ITEMS]:
        if old is changes.MISSING:
            lines.append('      %s: + %s' % (label, show_value(new)))
        elif new is changes.MISSING:
            lines.append('      %s: - %s' % (label, show_value(old)))
        else:
            lines.append('      %s: %s -> %s' % (label, show_value(old),
                                                 show_value(new)))
    if len(items) > MAX_ITEMS:
        lines.append('      ... %d more' % (len(items) - MAX_ITEMS))
    return lines


def _diff(obj, old, new):
    if isinstance(old, _Unreadable) or isinstance(new, _Unreadable):
        return [('<state>', old, new)]
    try:
        return changes.state_items_diff(obj, old, new)
    except Exception as error:
        return [('<state>', '(cannot compare: %s)' % error, new)]


def history_lines(session, obj, oid, states):
    number = int.from_bytes(oid, 'big')
    cls = (peek.class_path(type(obj)) if obj is not None
           else 'no current object')
    lines = ['oid %d <%s>: %d state%s kept in %s since its last pack, '
             'oldest first' % (number, cls, len(states),
                               '' if len(states) == 1 else 's',
                               session.storage.get_filename())]
    before = changes.MISSING
    for k, (location, record, state) in enumerate(states, 1):
        head = '#%d  transaction at offset %s, record %s bytes' % (
            k, '{:,}'.format(location.transaction),
            '{:,}'.format(location.size))
        if k == len(states):
            head += '  (the committed state)'
        lines.append(head)
        if k == 1:
            lines.append('      (the oldest state this file keeps)')
        else:
            items = _diff(obj, before, state)
            lines.extend(_item_lines(items) or ['      (no change)'])
        before = state
    lines.append(':history EXPR --show K shows state K; :revert EXPR K '
                 'makes it the current state (uncommitted)')
    return lines


def _pick(states, text):
    if not text.isdigit() or not 1 <= int(text) <= len(states):
        raise CommandError('K is a state number from 1 to %d, not %r'
                           % (len(states), text))
    return states[int(text) - 1]


def show_state_lines(obj, oid, k, location, state):
    lines = ['oid %d state #%d (transaction at offset %s), read-only; '
             'references are shown, not loaded:'
             % (int.from_bytes(oid, 'big'), k,
                '{:,}'.format(location.transaction))]
    if isinstance(state, dict):
        for name in sorted(state, key=str):
            lines.append('    %s = %s' % (name, show_value(state[name],
                                                           limit=200)))
    else:
        lines.append('    %s' % show_value(state, limit=200))
    return lines


@command('history', usage=':history EXPR|OID [--show K]')
def history_command(session, args, ui):
    """List the states an object had since the file's last pack.

    Oldest first, each with its transaction's position in the file, the
    record size, and what changed from the state before (as :diff shows
    it); the states go to _ (oldest first).  --show K displays state K
    read-only (references shown, not loaded).  Needs a FileStorage or
    FileStorage2 file opened directly: a server or SQLite keeps no old
    states.  The first :history of a session reads the whole file once;
    later ones read only what was appended.
    """
    show = None
    match = _SHOW.match(args)
    if match:
        args, show = match.group(1), match.group(2)
    history = session_history(session)  # one line when none
    obj, oid = _object_or_oid(session, args)
    listings = _LISTINGS.setdefault(session, {})
    cached = listings.get(oid)
    if cached is not None and cached[:2] == (history.end, type(obj)):
        states, lines = cached[2], cached[3]
    else:
        states = _states(session, oid)
        lines = None
    if show is not None:
        location, _, state = _pick(states, show)
        session.namespace['_'] = peek.copy_value(state)  # not the cache's
        ui.show('\n'.join(show_state_lines(obj, oid, int(show), location,
                                           state)))
        return
    if lines is None:
        lines = history_lines(session, obj, oid, states)
        listings.clear()  # one listing kept: old states can be big
        listings[oid] = (history.end, type(obj), states, lines)
    session.namespace['_'] = [peek.copy_value(state)
                              for _, _, state in states]
    ui.show('\n'.join(lines))


@command('revert', usage=':revert EXPR K')
def revert_command(session, args, ui):
    """Make state K of :history the object's current state, uncommitted.

    An ordinary edit: :diff shows it, :undo takes it back, :commit writes
    it.  A state that refers to an object that no longer exists is
    refused.
    """
    match = _REVERT.match(args.strip())
    if not match:
        raise CommandError('usage: :revert EXPR K (K from :history EXPR)')
    text, k = match.group(1), match.group(2)
    obj = _evaluate(session, text)
    if not peek.is_persistent(obj) or peek.oid_of(obj) is None:
        raise CommandError('%s is not a committed persistent object' % text)
    oid = peek.oid_of(obj)
    states = _states(session, oid)
    location, record, state = _pick(states, k)
    missing = []
    for ref in record_refs(record):
        try:
            session.storage.load(ref)
        except KeyError:
            missing.append(int.from_bytes(ref, 'big'))
    if missing:
        raise CommandError(
            'state #%s refers to oid%s %s, which no longer exist%s: '
            'reverting would store dangling references; nothing changed'
            % (k, '' if len(missing) == 1 else 's',
               ', '.join(str(n) for n in missing[:10]),
               's' if len(missing) == 1 else ''))
    if isinstance(state, _Unreadable):
        raise CommandError('state #%s cannot be read: %r' % (k, state))
    peek.raw_state(obj)  # loaded, so the edit starts from the current state
    obj._p_note_change()  # the change tracker keeps the state before
    peek.set_state(obj, state)
    ui.show('%s is now state #%s (uncommitted: :diff, :undo, :commit)'
            % (text, k))


@command('rename-class', usage=':rename-class OLD NEW [--dry-run] [--merge]')
def rename_class_command(session, args, ui):
    """Rename a class in every record, in one commit (module:Class or
    module.Class).

    Rewrites each record whose class header names OLD and each state that
    refers to OLD inside its pickle, on the bytes: neither class is
    imported.  --dry-run counts the records and bytes that would change.
    Refused when NEW already names objects, unless --merge; refused with
    uncommitted edits (commit or abort them first).
    """
    words = args.split()
    flags = set(w for w in words if w.startswith('--'))
    names = [w for w in words if not w.startswith('--')]
    unknown = flags - {'--dry-run', '--merge'}
    if unknown or len(names) != 2:
        raise CommandError('usage: :rename-class OLD NEW [--dry-run] '
                           '[--merge]' + (' (unknown %s)' % ', '.join(
                               sorted(unknown)) if unknown else ''))
    dry_run = '--dry-run' in flags
    if not dry_run:
        if session.readonly:
            raise CommandError('read-only session: --dry-run only')
        if session.has_unsaved_work():
            raise CommandError('commit or abort your uncommitted edits '
                               'first: the rename is a commit of its own')
    try:
        plan = class_rename.plan_rename(session.storage, names[0], names[1])
        class_rename.check_merge(plan, '--merge' in flags)
    except ValueError as error:
        raise CommandError(str(error))
    ui.show(plan.summary())
    if dry_run or not plan.records:
        if not plan.records:
            ui.show('nothing names %s.%s: nothing to do' % plan.old)
        return
    answer = ui.ask('Rewrite %d records in one commit?' % plan.records,
                    [('y', 'yes, rewrite them and commit'),
                     ('n', 'no, write nothing')], 'n')
    if answer != 'y':
        ui.show('nothing written')
        return
    try:
        class_rename.commit_rename(session.storage, plan)
    except ConflictError:
        session.abort()
        raise CommandError('another client changed some of these records '
                           'meanwhile; nothing was written: run the rename '
                           'again')
    session.abort()
    session.renamed_classes.add('%s.%s' % plan.old, '%s.%s' % plan.new)
    stale = len(session.renamed_classes.stale_objects(session.connection))
    if stale:
        after = ('%d object%s already loaded in this session keep%s the '
                 'old class, so this session refuses to commit until you '
                 'restart durus-shell to work with the new one.'
                 % (stale, '' if stale == 1 else 's',
                    's' if stale == 1 else ''))
    else:
        after = 'Objects loaded from now on have the new class.'
    ui.show('renamed %s.%s to %s.%s in %d records (one commit). %s'
            % (plan.old + plan.new + (plan.records, after)))
