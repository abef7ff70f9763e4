"""Change tracking for careful data fixes: diff, undo/redo, in-place edits.

A ``ChangeTracker`` is an observer of one Connection
(``durus.connection.ConnectionObserver``); it never replaces a method of
the connection.

How it knows what a statement changed
    ``before_change`` runs before the first change of an object in a
    transaction: the tracker copies the object's state then (its state
    before the change).  At the end of each statement it compares every
    object awaiting commit, and every new object a commit would write
    (found by the writer's own dry run, ``durus.inspect.pending_writes``),
    with its state at the end of the previous statement.  Each statement
    that changed something becomes one undo step: ``(object, before,
    after, first)`` per object, ``first`` meaning the object was SAVED
    before and was noted in that statement.

In-place edits (changed without ``_p_note_change()``)
    A commit does not write them, so the operator must see them.  Only
    code that reads an object can change its plain lists and dicts in
    place, so the tracker asks the connection which objects were read or
    written since the last statement (``touched_since_last_call``).
    Those still matching their load snapshots hold their records' states
    (``durus.inspect.in_place_suspects``; the Session's connection keeps
    snapshots); the others holding mutable values are compared with
    their records, as the writer would write them.  An object whose mutable
    parts are also referenced from elsewhere (``t = obj.tags``) can be
    changed later without being read again: such objects stay on a watch
    list and are compared after every statement until the outside
    references are gone.  Found edits are undo steps like any other.

Undo and redo
    Undo puts the ``before`` states back (newest step first); an object
    whose first change is undone is SAVED again and leaves the changed
    set, so a commit writes exactly what remains.  Redo re-applies
    ``after`` states.  A statement that changes anything drops the redo
    steps.  Commit and abort clear the history (``after_commit``,
    ``after_abort``): committed transactions are never undone.

Diff
    What a commit would write, compared with what the storage holds:
    stored state (read from the record) against the state in memory.  An
    object another client changed since this transaction read it cannot
    be read (a conflict): its state before this transaction's first
    change stands in, and the diff says so.  BTree changes, spread over
    BNode records, are shown as key changes of their BTree;
    PersistentDict/List/Set per item.

State copies keep persistent references by identity and copy plain
containers (durus_shell.peek), so restoring a state never replaces
another persistent object.
"""

import sys
import time

from durus import inspect
from durus.btree import BTree
from durus.connection import ConnectionObserver
from durus.error import ReadConflictError, ServerUnreachableError, ShortRead
from durus.persistent import PersistentBase
from durus_shell import peek
from durus_shell.object_paths import MEMORY_SECONDS, MEMORY_VISIT_LIMIT
from durus_shell.peek import (IMMUTABLE_TYPES, SAVED, UNSAVED, copy_value,
                              peek_state, same_value, set_state)

MISSING = type('Missing', (), {'__repr__': lambda self: '<missing>',
                               '__bool__': lambda self: False})()


class Entry(object):
    """One object's change within one statement."""

    __slots__ = ('obj', 'before', 'after', 'first')

    def __init__(self, obj, before, after, first):
        self.obj = obj
        self.before = before
        self.after = after
        self.first = first


class Changes(object):
    """What is pending: ``changed`` and ``new`` (a commit writes them) and
    ``unnoted`` (changed in place: a commit would NOT write them)."""

    def __init__(self, changed, new, unnoted=()):
        self.changed = list(changed)
        self.new = list(new)
        self.unnoted = list(unnoted)

    @property
    def written(self):
        """How many objects a commit would write."""
        return len(self.changed) + len(self.new)

    def __len__(self):
        return len(self.changed) + len(self.new) + len(self.unnoted)

    def __bool__(self):
        return bool(self.changed or self.new or self.unnoted)


class ChangeTracker(ConnectionObserver):
    """Per-statement change history of one connection (see module doc)."""

    def __init__(self, connection):
        self.connection = connection
        self.history = []        # undo steps: lists of Entry, oldest first
        self.redo_steps = []     # undone steps, most recently undone last
        self._noted = {}         # id -> (obj, state before first change)
        self._original = {}      # id -> (obj, state before the transaction's
                                 #        first change): stands in for a
                                 #        record another client replaced
        self._last = {}          # id -> (obj, state at last statement end)
        self.unnoted = {}        # id -> SAVED object differing from record
        self._unnoted_last = {}  # id -> (obj, its state at last check)
        self._exposed = {}       # id -> object whose mutable parts are
                                 #       referenced from elsewhere
        self._trees = {}         # id -> BTree read in this transaction
        self._serial = connection.transaction_serial
        self.aborted_steps = []  # the history an abort dropped, until
                                 # the next edit (:undo brings it back)
        self.aborted_conflicts = set()  # oids others changed meanwhile
        self.commit_listeners = []  # called with the diff lines of a commit
        self._commit_lines = None
        self._pending = None     # Changes as of the last refresh
        connection.add_observer(self)
        self._snapshot_pending()
        self._check_in_place(connection.touched_since_last_call(),
                             record=False)

    def detach(self):
        self.connection.remove_observer(self)

    # -- observer of the connection --------------------------------------

    def before_change(self, connection, obj):
        key = id(obj)
        if key not in self._noted and (key not in self._last
                                       or key in self.unnoted):
            self._noted[key] = (obj, copy_value(peek_state(obj)))
        if key not in self._original:
            self._original[key] = (obj, copy_value(peek_state(obj)))

    def before_commit(self, connection):
        self._commit_lines = None
        if self.commit_listeners:
            self._commit_lines = format_diffs(compute_diff(
                connection, trees=self._trees.values()))
        return None

    def after_commit(self, connection, written):
        lines, self._commit_lines = self._commit_lines, None
        # In-place edits the commit did not write are still in memory,
        # and kept references can still change objects: carried over.
        keep = list(self.unnoted.values()) + list(self._exposed.values())
        self.reset()
        self._carry(keep)
        if lines is not None and written:
            for listener in list(self.commit_listeners):
                listener(lines)

    def after_abort(self, connection, invalidated):
        # In-place edits are dropped too: their objects reload their
        # stored state.
        for obj in list(self.unnoted.values()):
            if inspect.status(obj) == SAVED:
                obj._p_set_status_ghost()
        dropped = self.history
        self.reset()
        if dropped:
            self.aborted_steps = dropped
            self.aborted_conflicts = set(invalidated or ())

    def _check_serial(self):
        if self.connection.transaction_serial != self._serial:
            self.reset()

    def reset(self):
        """Forget the history (after a commit or an abort)."""
        self.history = []
        self.redo_steps = []
        self.aborted_steps = []
        self.aborted_conflicts = set()
        self._noted = {}
        self._original = {}
        self._last = {}
        self.unnoted = {}
        self._unnoted_last = {}
        self._exposed = {}
        self._trees = {}
        self._pending = None
        self._serial = self.connection.transaction_serial
        self.connection.touched_since_last_call()
        self._snapshot_pending()

    def _snapshot_pending(self):
        for obj in list(self.connection.changed.values()):
            self._last[id(obj)] = (obj, copy_value(peek_state(obj)))

    # -- statements ------------------------------------------------------

    def begin_statement(self):
        self._check_serial()

    def end_statement(self):
        """Record what the statement just run changed as one undo step."""
        return self.refresh()

    def refresh(self):
        """Take in every change made since the last look (one undo step
        if anything changed); returns the step's entries."""
        self._check_serial()
        entries = []
        changed = self.connection.changed
        noted, self._noted = self._noted, {}
        for key, (obj, before) in noted.items():
            if changed.get(inspect.oid_of(obj)) is obj:
                after = copy_value(peek_state(obj))
                entries.append(Entry(obj, before, after, True))
                self._last[key] = (obj, after)
                self.unnoted.pop(key, None)
                self._unnoted_last.pop(key, None)
        for obj in list(changed.values()):
            key = id(obj)
            if key in noted:
                continue
            entry = self._compare(key, obj)
            if entry is not None:
                entries.append(entry)
        # New objects: exactly those a commit would write.
        found = inspect.pending_writes(self.connection)
        for obj in found.new:
            entry = self._compare(id(obj), obj)
            if entry is not None:
                entries.append(entry)
        entries.extend(self._check_in_place_if_readable(
            self.connection.touched_since_last_call()))
        self._pending = Changes(found.changed, found.new,
                                self._sorted_unnoted())
        if entries:
            self.history.append(entries)
            self.redo_steps = []
            self.aborted_steps = []  # a new edit: the abort stays
        return entries

    def _sorted_unnoted(self):
        return sorted(self.unnoted.values(), key=inspect.oid_of)

    def _compare(self, key, obj):
        known = self._last.get(key)
        current = peek_state(obj)
        if known is None:
            self._last[key] = (obj, copy_value(current))
            return None
        if same_value(known[1], current):
            return None
        after = copy_value(current)
        self._last[key] = (obj, after)
        return Entry(obj, known[1], after, False)

    # -- in-place edits ----------------------------------------------------

    def _check_in_place_if_readable(self, touched):
        """``_check_in_place``, unless the records cannot be read (the
        server went away: durus_shell.link reconnects and forgets every
        loaded state, so nothing is missed that would be kept)."""
        try:
            return self._check_in_place(touched)
        except (ShortRead, ServerUnreachableError):
            if getattr(self.connection.storage, 'connected', True):
                raise
            return []

    def _check_in_place(self, touched, record=True):
        # BTrees by their types, without a Python step per object:
        # isinstance() with an abstract base class (BTree is a
        # MutableMapping) costs microseconds per object.
        for tree in inspect.instances_of_class(touched, BTree):
            self._trees[id(tree)] = tree
        # Objects that still match their load snapshots hold their
        # records' states (durus.load_snapshots): only the others are
        # compared with their records.
        suspects, shared = inspect.in_place_suspects(
            self.connection, touched + list(self._exposed.values()))
        candidates = {}
        exposed = {id(obj): obj for obj in shared}
        for obj in suspects:
            parts = _mutable_parts(obj)
            if parts:
                candidates[id(obj)] = obj
                if parts == EXPOSED:
                    exposed[id(obj)] = obj
        self._exposed = exposed
        candidates.update(self.unnoted)
        if not candidates:
            return []
        differing = {id(obj): obj for obj in inspect.differing_from_records(
            self.connection, list(candidates.values()), same=same_value)}
        newly = [obj for key, obj in differing.items()
                 if key not in self.unnoted]
        stored = inspect.stored_states(self.connection, newly) if (
            newly and record) else {}
        entries = []
        for key, obj in candidates.items():
            if key in differing:
                now = copy_value(peek_state(obj))
                if key not in self.unnoted:
                    self.unnoted[key] = obj
                    before = stored.get(key, (None, None))[0]
                    if before is not None:
                        entries.append(Entry(obj, copy_value(before), now,
                                             False))
                else:
                    known = self._unnoted_last[key][1]
                    if not same_value(known, now):
                        entries.append(Entry(obj, known, now, False))
                self._unnoted_last[key] = (obj, now)
            elif key in self.unnoted:
                del self.unnoted[key]
                known = self._unnoted_last.pop(key)[1]
                if inspect.status(obj) == SAVED:   # put back by the code
                    entries.append(Entry(obj, known,
                                         copy_value(peek_state(obj)), False))
        return entries if record else []

    def _carry(self, objects):
        """Look again, in the new transaction, at objects that differed
        from their records or were exposed in the last one."""
        if not objects:
            return
        self._reconcile(objects)
        self._exposed = {id(obj): obj for obj in objects
                         if inspect.status(obj) == SAVED
                         and _mutable_parts(obj) == EXPOSED}
        self._pending = None

    def _reconcile(self, objects):
        """Bring the in-place-edit bookkeeping of ``objects`` up to date
        after their states were put back (undo, redo)."""
        saved = [obj for obj in objects if inspect.status(obj) == SAVED
                 and inspect.oid_of(obj) is not None]
        differing = set(map(id, inspect.differing_from_records(
            self.connection, saved, same=same_value)))
        for obj in saved:
            key = id(obj)
            if key in differing:
                self.unnoted[key] = obj
                self._unnoted_last[key] = (obj, copy_value(peek_state(obj)))
            else:
                self.unnoted.pop(key, None)
                self._unnoted_last.pop(key, None)
        self.connection.touched_since_last_call()

    # -- what is pending ---------------------------------------------------

    def pending(self):
        """Changes(changed, new, unnoted): what a commit would write and
        the in-place edits it would not, as of now."""
        self.refresh()
        return self._pending

    def last_pending(self):
        """``pending()`` as of the last statement, command or look (cheap)."""
        if self._pending is None:
            self.refresh()
        return self._pending

    def original_states(self):
        """``{id(obj): state before this transaction first changed it}``."""
        self._check_serial()
        return dict((key, state) for key, (obj, state)
                    in self._original.items())

    def touch_unnoted(self):
        """Note every object changed in place, so a commit writes it."""
        for obj in list(self.unnoted.values()):
            obj._p_note_change()
        return self.refresh()

    # -- undo / redo -----------------------------------------------------

    def undo(self, count=1):
        """Take back the last ``count`` statements; returns steps undone."""
        self.refresh()
        done = 0
        while done < count and self.history:
            step = self.history.pop()
            for entry in reversed(step):
                self._apply(entry, entry.before, undoing=True)
            self._reconcile([entry.obj for entry in step])
            self.redo_steps.append(step)
            done += 1
        self._pending = None
        return done

    def undo_abort(self):
        """Re-apply the edits the last abort dropped (every statement, in
        order); returns how many statements.  Refused (ValueError) when
        other clients changed one of those objects meanwhile: their
        commit would be silently overwritten."""
        steps = self.aborted_steps
        if not steps:
            return 0
        objects = {id(entry.obj): entry.obj for step in steps
                   for entry in step}
        clashing = sorted(oid for oid in (inspect.oid_of(obj)
                                          for obj in objects.values())
                          if oid is not None and oid in
                          self.aborted_conflicts)
        if clashing:
            raise ValueError(
                'other clients changed %s since the abort (oid %s): '
                'bringing the dropped edits back would overwrite that; '
                'redo the change on the new state' % (
                    'an object it changed' if len(clashing) == 1 else
                    '%d objects it changed' % len(clashing),
                    ', '.join(str(int.from_bytes(oid, 'big'))
                              for oid in clashing[:10])))
        self._check_serial()
        self.aborted_steps = []
        for obj in objects.values():
            # The abort made them ghosts: load the stored state first,
            # or the next access would load it over the restored one.
            if inspect.oid_of(obj) is not None:
                inspect.load_quietly(obj)
        self.redo_steps = list(reversed(steps))
        return self.redo(len(steps))

    def redo(self, count=1):
        """Re-apply the last ``count`` undone statements; returns steps redone."""
        self._check_serial()
        done = 0
        while done < count and self.redo_steps:
            step = self.redo_steps.pop()
            for entry in step:
                self._apply(entry, entry.after, undoing=False)
            self._reconcile([entry.obj for entry in step])
            self.history.append(step)
            done += 1
        self._pending = None
        return done

    def _apply(self, entry, state, undoing):
        obj = entry.obj
        set_state(obj, state)
        self._last[id(obj)] = (obj, copy_value(state))
        if not entry.first or inspect.oid_of(obj) is None:
            return
        changed = self.connection.changed
        if undoing:
            if changed.get(inspect.oid_of(obj)) is obj:
                del changed[inspect.oid_of(obj)]
            obj._p_set_status_saved()
            self._last.pop(id(obj), None)
        else:
            self._noted.pop(id(obj), None)
            obj._p_note_change()
            self._noted.pop(id(obj), None)

    # -- diff ------------------------------------------------------------

    def diff(self, with_paths=True, with_unnoted=True):
        """Every change a commit would write (plus in-place edits)."""
        self.refresh()
        unnoted = (sorted(self.unnoted.values(), key=inspect.oid_of)
                   if with_unnoted else [])
        originals = {key: state for key, (obj, state)
                     in self._original.items()}
        return compute_diff(self.connection, with_paths, unnoted,
                            originals, self._trees.values())


# -- what can change in place -------------------------------------------------

NOTHING_MUTABLE, MUTABLE, EXPOSED = 0, 1, 2


def _mutable_parts(obj):
    """NOTHING_MUTABLE, MUTABLE (the state holds values that can change
    in place) or EXPOSED (one of them is also referenced from outside the
    state, so it can change without ``obj`` being read)."""
    state = peek_state(obj)
    if type(state) is dict:
        try:
            own = state is object.__getattribute__(obj, '__dict__')
        except AttributeError:
            own = False
        # A state made for the occasion (slots, own __getstate__) holds
        # its values once more than the object does.
        return _classify(state.values(), 0 if own else 1)
    return _classify((state,), 1)


def _classify(values, extra):
    found = NOTHING_MUTABLE
    immutable = IMMUTABLE_TYPES
    for value in values:
        kind = type(value)
        if kind in immutable or kind is frozenset or kind is type:
            continue
        if isinstance(value, PersistentBase):
            continue
        if kind is tuple:
            nested = _classify(value, 0)
            if nested == EXPOSED:
                return EXPOSED
            found = max(found, nested)
            continue
        found = MUTABLE
        if sys.getrefcount(value) > _TOP_REFERENCES + extra:
            return EXPOSED
        if _inner_held(value, kind):
            return EXPOSED
    return found


def _inner_held(value, kind):
    if kind is list or kind is set:
        immutable = IMMUTABLE_TYPES
        for item in value:   # _any_held inlined: most items are plain
            if type(item) not in immutable and _held(item, 1):
                return True
        return False
    if kind is dict:
        return _any_held(value.values(), 1)
    try:
        attributes = object.__getattribute__(value, '__dict__')
    except AttributeError:
        return False
    return _any_held(attributes.values(), 1)


_OWN_REFERENCES = None   # a value's reference count when only its
                         # container holds it (measured below)
_TOP_REFERENCES = None
_probe = []


def _any_held(children, depth):
    immutable = IMMUTABLE_TYPES
    for child in children:
        if type(child) in immutable:
            continue   # the common case, without a call
        if _held(child, depth):
            return True
    return False


def _held(value, depth):
    kind = type(value)
    if (kind in IMMUTABLE_TYPES or kind is frozenset or kind is type
            or isinstance(value, PersistentBase)):
        return False
    count = sys.getrefcount(value)
    if _OWN_REFERENCES is None:
        _probe.append(count)
        return False
    if count > _OWN_REFERENCES:
        return True
    if depth > 30:
        return False
    if kind is tuple:
        return _any_held(value, depth + 1)
    return _inner_held(value, kind) if depth < 30 else False


def _calibrate():
    global _OWN_REFERENCES, _TOP_REFERENCES
    _any_held([[]], 0)
    _OWN_REFERENCES = _probe.pop()
    # The top level: a value held by the state only, seen by _classify.
    for threshold in range(1, 20):
        _TOP_REFERENCES = threshold
        if _classify({'x': []}.values(), 0) == MUTABLE:
            return
    raise RuntimeError('cannot measure reference counts here')


_calibrate()


# -- diff computation -------------------------------------------------------

class ObjectDiff(object):
    """What changed in one object.

    ``kind``: 'changed', 'new' or 'unnoted' (differs from its record but
    would not be committed).  ``items``: ``(label, old, new)`` with
    MISSING for an absent side; labels read as Python (``.name``,
    ``['key']``, ``[3]``, ``{'x'}`` for set members).
    """

    def __init__(self, obj, kind, items, path=None, conflict=False):
        self.obj = obj
        self.kind = kind
        self.items = items
        self.path = path
        self.conflict = conflict

    @property
    def oid(self):
        oid = inspect.oid_of(self.obj)
        return None if oid is None else int.from_bytes(oid, 'big')

    @property
    def class_path(self):
        return peek.class_path(type(self.obj))

    @property
    def where(self):
        if self.path:
            return self.path
        return 'oid %s' % (self.oid,) if self.oid is not None else 'new'

    def __repr__(self):
        return '<ObjectDiff %s %s %s>' % (self.kind, self.where,
                                          len(self.items))


def compute_diff(connection, with_paths=True, unnoted=(), originals=None,
                 trees=()):
    """ObjectDiffs of what a commit would write (the writer's dry run),
    then of ``unnoted`` objects (changed in place).

    ``originals``: ``{id(obj): state before this transaction changed
    it}``, shown as the old state of an object whose record another
    client replaced (a conflict).  ``trees``: BTrees that may own changed
    nodes (besides the changed ones).
    """
    pending = inspect.pending_writes(connection)
    changed = list(pending.changed)
    new = list(pending.new)
    unnoted = [obj for obj in unnoted if inspect.status(obj) == SAVED]
    originals = originals or {}
    stored = {}
    conflicts = set()
    for key, (state, error) in inspect.stored_states(
            connection, changed + unnoted).items():
        if isinstance(error, ReadConflictError):
            conflicts.add(key)
            state = originals.get(key)
        stored[key] = MISSING if state is None else state
    diffs = []
    handled = set()
    for tree, nodes in _btrees_of_changed_nodes(changed + new, trees):
        handled.add(id(tree))
        handled.update(id(node) for node in nodes)
        kind = 'new' if inspect.oid_of(tree) is None else 'changed'
        diffs.append(ObjectDiff(
            tree, kind, _btree_items_diff(tree, nodes, stored),
            conflict=any(id(node) in conflicts for node in nodes)))
    for obj in changed + new + unnoted:
        if id(obj) in handled:
            continue
        kind = ('new' if inspect.oid_of(obj) is None else
                'unnoted' if inspect.status(obj) != UNSAVED else 'changed')
        old = MISSING if kind == 'new' else stored.get(id(obj), MISSING)
        items = state_items_diff(obj, old, peek_state(obj))
        if kind == 'unnoted' and not items:
            continue
        diffs.append(ObjectDiff(obj, kind, items,
                                conflict=id(obj) in conflicts))
    if with_paths and diffs:
        root = connection.get_root()
        paths = peek.find_memory_paths(
            root, [d.obj for d in diffs], limit_objects=MEMORY_VISIT_LIMIT,
            deadline=time.monotonic() + MEMORY_SECONDS)
        for d in diffs:
            d.path = paths.get(id(d.obj))
    return diffs


def _btrees_of_changed_nodes(objects, known_trees):
    """``[(btree, [changed or new BNodes under it])]`` for changed BNodes.

    A node is changed through its tree (changes come from the root down,
    reading the BTree), so the trees read in this transaction
    (``known_trees``) own the changed nodes; walking their loaded nodes
    finds which.  A changed or new BTree is included even without
    changed nodes.
    """
    nodes = {id(obj): obj for obj in objects if inspect.is_bnode(obj)}
    trees = [obj for obj in objects if inspect.is_btree(obj)]
    listed = set(id(tree) for tree in trees)
    if nodes:
        seen = set(listed)
        for tree in known_trees:
            if id(tree) not in seen:
                seen.add(id(tree))
                trees.append(tree)
    result = []
    for tree in trees:
        under = [node for node in peek.gen_btree_nodes(tree)
                 if id(node) in nodes]
        if under or id(tree) in listed:
            result.append((tree, under))
    return result


def _btree_items_diff(tree, nodes, stored):
    """Key changes of a BTree from its changed and new nodes.

    Old items: the stored items of the changed nodes, plus those of nodes
    they referred to that left the tree (merged away, unchanged since).
    New items: the items of the changed and new nodes now.  A key that
    only moved between nodes has the same value on both sides.
    """
    old_items = {}
    new_items = {}
    in_tree = set(id(node) for node in peek.gen_btree_nodes(tree))
    for node in nodes:
        before = stored.get(id(node), MISSING)
        if isinstance(before, dict):
            old_items.update(before.get('items') or ())
            for child in before.get('nodes') or ():
                if id(child) not in in_tree:
                    dropped = peek_state(child, load=True)
                    if isinstance(dropped, dict):
                        old_items.update(dropped.get('items') or ())
        now = peek_state(node)
        if isinstance(now, dict):
            new_items.update(now.get('items') or ())
    return _mapping_diff(old_items, new_items, '[%r]')


def _mapping_diff(old, new, label):
    items = []
    for key in _ordered(set(old) | set(new)):
        before = old.get(key, MISSING)
        after = new.get(key, MISSING)
        if before is MISSING or after is MISSING or \
                not same_value(before, after):
            items.append((label % (key,), before, after))
    return items


def _ordered(keys):
    keys = list(keys)
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=repr)


def state_items_diff(obj, old, new):
    """``(label, old, new)`` per attribute or container item."""
    kind = peek.container_kind(obj)
    old_dict = old if isinstance(old, dict) else {}
    new_dict = new if isinstance(new, dict) else {}
    if kind == 'dict' and 'data' in new_dict:
        return _mapping_diff(old_dict.get('data') or {}, new_dict['data'],
                             '[%r]')
    if kind == 'list' and 'data' in new_dict:
        return _list_diff(old_dict.get('data') or [], new_dict['data'])
    if kind == 'set' and 's' in new_dict:
        before = old_dict.get('s') or set()
        after = new_dict['s']
        items = [('{%r}' % (v,), v, MISSING) for v in _ordered(before - after)]
        items += [('{%r}' % (v,), MISSING, v) for v in _ordered(after - before)]
        return items
    if old is not MISSING and not isinstance(old, dict) or \
            not isinstance(new, dict):
        if old is MISSING or not same_value(old, new):
            return [('<state>', old, new)]
        return []
    return _mapping_diff(old_dict, new_dict, '.%s')


def _list_diff(old, new):
    import difflib
    keys_old = [_key(v) for v in old]
    keys_new = [_key(v) for v in new]
    items = []
    matcher = difflib.SequenceMatcher(None, keys_old, keys_new,
                                      autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == 'equal':
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            before = old[i1 + k] if i1 + k < i2 else MISSING
            after = new[j1 + k] if j1 + k < j2 else MISSING
            index = j1 + k if after is not MISSING else i1 + k
            items.append(('[%d]' % index, before, after))
    return items


def _key(value):
    if isinstance(value, (str, bytes, int, float, type(None))):
        return (type(value).__name__, value)
    return ('id', id(value))


def touch(connection, obj):
    """Include an object with an unnoted change in the next commit."""
    if not peek.is_persistent(obj):
        raise TypeError('%r is not a persistent object' % (obj,))
    if (object.__getattribute__(obj, '_p_connection') is not connection
            and inspect.oid_of(obj) is not None):
        raise ValueError('%r belongs to another connection' % (obj,))
    obj._p_note_change()


# -- text --------------------------------------------------------------------

def short_repr(value, limit=70):
    if value is MISSING:
        return '(absent)'
    try:
        text = repr(value)
    except Exception as error:
        text = '<%s: repr failed: %s>' % (type(value).__name__, error)
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


def format_diffs(diffs, max_objects=None, max_items=20):
    """Plain text lines for a diff (as shown by :diff and in logs)."""
    if not diffs:
        return ['no uncommitted changes']
    lines = []
    shown = diffs if max_objects is None else diffs[:max_objects]
    for d in shown:
        oid = 'new' if d.oid is None else 'oid %d' % d.oid
        where = d.path or oid
        head = '%s %s <%s %s>' % (
            {'changed': '~', 'new': '+', 'unnoted': '!'}[d.kind], where,
            d.class_path, 'new' if d.oid is None else d.oid)
        if d.conflict:
            head += ('  CONFLICT: another client changed it after this '
                     'transaction read it; old values are those read. A '
                     'commit will fail: :abort, then redo the change')
        elif d.kind == 'unnoted':
            head += '  UNNOTED: changed in place, not marked; :touch it to ' \
                    'commit, :abort to drop'
        elif d.kind == 'new':
            head += '  (new)'
        lines.append(head)
        for label, old, new in d.items[:max_items]:
            if old is MISSING:
                lines.append('    %s: + %s' % (label, short_repr(new)))
            elif new is MISSING:
                lines.append('    %s: - %s' % (label, short_repr(old)))
            else:
                lines.append('    %s: %s -> %s' % (label, short_repr(old),
                                                   short_repr(new)))
        if len(d.items) > max_items:
            lines.append('    ... %d more' % (len(d.items) - max_items))
    if max_objects is not None and len(diffs) > max_objects:
        lines.append('... %d more objects' % (len(diffs) - max_objects))
    counts = {}
    for d in diffs:
        counts[d.kind] = counts.get(d.kind, 0) + 1
    lines.append('%d changed, %d new, %d unnoted' % (
        counts.get('changed', 0), counts.get('new', 0),
        counts.get('unnoted', 0)))
    return lines
