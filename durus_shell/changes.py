"""Change tracking for careful data fixes: diff, undo/redo, unnoted changes.

A ``ChangeTracker`` watches one Connection between commits.

How it knows what a statement changed
    Durus tells the connection about a change only once per transaction
    (``note_change`` on the SAVED -> UNSAVED step), and it is called
    *before* the object is modified.  The tracker wraps the connection's
    ``note_change`` (on the instance; the class and commit are untouched)
    to copy the object's state at that moment: its state before the
    first change.  At the end of each statement it compares every object
    awaiting commit, and every new object reachable from them, with its
    state at the end of the previous statement.  Each statement that
    changed something becomes one undo step: ``(object, before, after,
    first)`` per object, ``first`` meaning the object was SAVED before.

Undo and redo
    Undo puts the ``before`` states back (newest step first); an object
    whose first change is undone is SAVED again and leaves
    ``connection.changed``, so a commit writes exactly what remains.
    Redo re-applies ``after`` states.  A statement that changes anything
    drops the redo steps.  Commit and abort (seen as a change of
    ``transaction_serial``) clear the history: committed transactions
    are never undone.

Diff
    What a commit would write, compared with what the storage holds:
    stored state (read from the record) against the state in memory.
    BTree changes, spread over BNode records, are shown as key changes
    of their BTree; PersistentDict/List/Set per item.

Unnoted changes
    An object whose plain list or dict was changed in place without
    ``_p_note_change()`` differs from its record, but a commit would not
    write it.  ``find_unnoted`` compares loaded SAVED objects holding
    mutable values with their records; ``:abort`` turns them back into
    ghosts so they reload their stored state.

State copies keep persistent references by identity and copy plain
containers (durus_shell.states), so restoring a state never replaces
another persistent object.
"""

from durus.serialize import unpack_record
from durus_shell import states
from durus_shell.placeholders import refuse_commit_of_placeholders
from durus_shell.states import (GHOST, SAVED, UNSAVED, copy_value,
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


class ChangeTracker(object):
    """Per-statement change history of one connection (see module doc)."""

    def __init__(self, connection):
        self.connection = connection
        self.history = []        # undo steps: lists of Entry, oldest first
        self.redo_steps = []     # undone steps, most recently undone last
        self._noted = {}         # id -> (obj, state before first change)
        self._last = {}          # id -> (obj, state at last statement end)
        self._new = {}           # id -> new object (no oid) seen so far
        self._serial = connection.transaction_serial
        self._in_statement = False
        self.commit_listeners = []  # called with the diff lines of a commit
        self._original_note_change = connection.note_change
        connection.note_change = self._note_change
        self._original_commit = connection.commit
        connection.commit = self._commit
        self._original_abort = connection.abort
        connection.abort = self._abort
        self._snapshot_pending()

    def detach(self):
        """Give the connection its own methods back."""
        for name in ('note_change', 'commit', 'abort'):
            self.connection.__dict__.pop(name, None)

    # -- hooks on the connection ----------------------------------------

    def _note_change(self, obj):
        # Called before the first change of obj in this transaction.
        if id(obj) not in self._noted and id(obj) not in self._last:
            self._noted[id(obj)] = (obj, copy_value(peek_state(obj)))
        self._original_note_change(obj)

    def _commit(self):
        refuse_commit_of_placeholders(self.connection)
        lines = None
        if self.commit_listeners and self.connection.changed:
            lines = format_diffs(compute_diff(self.connection,
                                              with_unnoted=False))
        try:
            self._original_commit()
        finally:
            self._check_serial()
        if lines is not None:
            for listener in list(self.commit_listeners):
                listener(lines)

    def _abort(self):
        self._original_abort()
        self.restore_unnoted()
        self._check_serial()

    def _check_serial(self):
        if self.connection.transaction_serial != self._serial:
            self.reset()

    def reset(self):
        """Forget the history (after a commit or an abort)."""
        self.history = []
        self.redo_steps = []
        self._noted = {}
        self._last = {}
        self._new = {}
        self._serial = self.connection.transaction_serial
        self._snapshot_pending()

    def _snapshot_pending(self):
        for obj in list(self.connection.changed.values()):
            self._last[id(obj)] = (obj, copy_value(peek_state(obj)))

    # -- statements ------------------------------------------------------

    def begin_statement(self):
        self._check_serial()
        self._in_statement = True

    def end_statement(self):
        """Record what the statement just run changed as one undo step."""
        self._in_statement = False
        self._check_serial()
        entries = []
        changed = self.connection.changed
        noted, self._noted = self._noted, {}
        for key, (obj, before) in noted.items():
            if changed.get(obj._p_oid) is obj:
                after = copy_value(peek_state(obj))
                entries.append(Entry(obj, before, after, True))
                self._last[key] = (obj, after)
        for obj in list(changed.values()):
            key = id(obj)
            if key in noted:
                continue
            entry = self._compare(key, obj)
            if entry is not None:
                entries.append(entry)
        # New objects: those already known, and any reachable from an
        # object changed in this statement.
        todo = [entry.after for entry in entries]
        todo.extend(peek_state(obj) for obj in self._new.values())
        for obj in self._discover_new(todo):
            entry = self._compare(id(obj), obj)
            if entry is not None:
                entries.append(entry)
        if entries:
            self.history.append(entries)
            self.redo_steps = []
        return entries

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

    def _discover_new(self, values):
        found = []
        todo = list(values)
        while todo:
            value = todo.pop()
            for _, ref in states.gen_plain_refs(value):
                if ref._p_oid is None and id(ref) not in self._new:
                    self._new[id(ref)] = ref
                    found.append(ref)
                    todo.append(peek_state(ref))
        return found + [obj for obj in self._new.values()
                        if obj not in found]

    # -- undo / redo -----------------------------------------------------

    def undo(self, count=1):
        """Take back the last ``count`` statements; returns steps undone."""
        self._check_serial()
        done = 0
        while done < count and self.history:
            step = self.history.pop()
            for entry in reversed(step):
                self._apply(entry, entry.before, undoing=True)
            self.redo_steps.append(step)
            done += 1
        return done

    def redo(self, count=1):
        """Re-apply the last ``count`` undone statements; returns steps redone."""
        self._check_serial()
        done = 0
        while done < count and self.redo_steps:
            step = self.redo_steps.pop()
            for entry in step:
                self._apply(entry, entry.after, undoing=False)
            self.history.append(step)
            done += 1
        return done

    def _apply(self, entry, state, undoing):
        obj = entry.obj
        set_state(obj, state)
        self._last[id(obj)] = (obj, copy_value(state))
        if not entry.first or obj._p_oid is None:
            return
        changed = self.connection.changed
        if undoing:
            if changed.get(obj._p_oid) is obj:
                del changed[obj._p_oid]
            obj._p_set_status_saved()
            self._last.pop(id(obj), None)
        else:
            obj._p_set_status_unsaved()
            changed[obj._p_oid] = obj

    # -- diff ------------------------------------------------------------

    def diff(self, with_paths=True, with_unnoted=True):
        """Every change a commit would write (plus unnoted changes)."""
        self._check_serial()
        return compute_diff(self.connection, with_paths, with_unnoted)

    def restore_unnoted(self):
        """Make SAVED objects with unnoted changes reload their stored state."""
        found = find_unnoted(self.connection)
        for obj in found:
            obj._p_set_status_ghost()
        return found


# -- diff computation -------------------------------------------------------

class ObjectDiff(object):
    """What changed in one object.

    ``kind``: 'changed', 'new' or 'unnoted' (differs from its record but
    would not be committed).  ``items``: ``(label, old, new)`` with
    MISSING for an absent side; labels read as Python (``.name``,
    ``['key']``, ``[3]``, ``{'x'}`` for set members).
    """

    def __init__(self, obj, kind, items, path=None):
        self.obj = obj
        self.kind = kind
        self.items = items
        self.path = path

    @property
    def oid(self):
        oid = self.obj._p_oid
        return None if oid is None else int.from_bytes(oid, 'big')

    @property
    def class_path(self):
        return states.class_path(type(self.obj))

    @property
    def where(self):
        if self.path:
            return self.path
        return 'oid %s' % (self.oid,) if self.oid is not None else 'new'

    def __repr__(self):
        return '<ObjectDiff %s %s %s>' % (self.kind, self.where,
                                          len(self.items))


def stored_states(connection, objects):
    """``{id(obj): stored state}`` read from the records (MISSING if none)."""
    result = {}
    with_oid = [obj for obj in objects if obj._p_oid is not None]
    if not with_oid:
        return result
    storage = connection.storage
    reader = connection.reader
    oids = [obj._p_oid for obj in with_oid]
    try:
        records = list(storage.bulk_load(oids))
    except Exception:
        records = []
        for oid in oids:
            try:
                records.append(storage.load(oid))
            except Exception:
                records.append(None)
    for obj, record in zip(with_oid, records):
        if record is None:
            result[id(obj)] = MISSING
            continue
        result[id(obj)] = reader.get_state(unpack_record(record)[1],
                                           oid=obj._p_oid)
    return result


def compute_diff(connection, with_paths=True, with_unnoted=True):
    changed = list(connection.changed.values())
    new = _new_objects(changed)
    unnoted = find_unnoted(connection) if with_unnoted else []
    stored = stored_states(connection, changed + unnoted)
    diffs = []
    trees = _btrees_of_changed_nodes(connection, changed + new)
    handled = set()
    for tree, nodes in trees:
        handled.add(id(tree))
        handled.update(id(node) for node in nodes)
        kind = 'new' if tree._p_oid is None else 'changed'
        diffs.append(ObjectDiff(tree, kind,
                                 _btree_items_diff(tree, nodes, stored)))
    for obj in changed + new + unnoted:
        if id(obj) in handled:
            continue
        kind = ('new' if obj._p_oid is None else
                'unnoted' if obj._p_status != UNSAVED else 'changed')
        old = MISSING if kind == 'new' else stored.get(id(obj), MISSING)
        items = state_items_diff(obj, old, peek_state(obj))
        if kind == 'unnoted' and not items:
            continue
        diffs.append(ObjectDiff(obj, kind, items))
    if with_paths and diffs:
        root = connection.get_root()
        paths = states.find_memory_paths(root, [d.obj for d in diffs])
        for d in diffs:
            d.path = paths.get(id(d.obj))
    return diffs


def _new_objects(changed):
    found = []
    seen = set(id(obj) for obj in changed)
    todo = [peek_state(obj) for obj in changed]
    while todo:
        value = todo.pop()
        for _, ref in states.gen_plain_refs(value):
            if ref._p_oid is None and id(ref) not in seen:
                seen.add(id(ref))
                found.append(ref)
                todo.append(peek_state(ref))
    return found


def _btrees_of_changed_nodes(connection, objects):
    """``[(btree, [changed or new BNodes under it])]`` for changed BNodes.

    A changed node's ancestors are loaded (changes come from the root
    down), so walking the loaded nodes of loaded BTrees finds its tree.
    A changed or new BTree is included even without changed nodes.
    """
    nodes = {id(obj): obj for obj in objects
             if states.container_kind(obj) == 'bnode'}
    trees = [obj for obj in objects if states.container_kind(obj) == 'btree']
    listed = set(id(tree) for tree in trees)
    if nodes:
        for obj in list(connection.cache):
            if obj is None or id(obj) in listed or obj._p_status == GHOST:
                continue
            if states.container_kind(obj) == 'btree':
                trees.append(obj)
    result = []
    for tree in trees:
        under = [node for node in states.gen_btree_nodes(tree)
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
    in_tree = set(id(node) for node in states.gen_btree_nodes(tree))
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
    kind = states.container_kind(obj)
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


# -- unnoted changes ---------------------------------------------------------

def find_unnoted(connection, limit=None):
    """Loaded SAVED objects whose state differs from their stored record.

    Only objects holding something mutable (a list, a dict, ...) can
    change without a hook running, so only those are compared.
    """
    candidates = []
    for obj in list(connection.cache):
        if obj is None or obj._p_status != SAVED or obj._p_oid is None:
            continue
        state = peek_state(obj)
        if isinstance(state, dict):
            if any(states.contains_mutable(v) for v in state.values()):
                candidates.append(obj)
        elif states.contains_mutable(state):
            candidates.append(obj)
    if not candidates:
        return []
    stored = stored_states(connection, candidates)
    found = []
    for obj in candidates:
        before = stored.get(id(obj), MISSING)
        if before is MISSING:
            continue
        if not same_value(before, peek_state(obj)):
            found.append(obj)
            if limit is not None and len(found) >= limit:
                break
    return found


def touch(connection, obj):
    """Include an object with an unnoted change in the next commit."""
    if not states.is_persistent(obj):
        raise TypeError('%r is not a persistent object' % (obj,))
    if obj._p_connection is not connection and obj._p_oid is not None:
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
        if d.kind == 'unnoted':
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


def describe_unnoted(objects, max_shown=5):
    """A warning line about unnoted changes (empty string if none)."""
    if not objects:
        return ''
    names = ', '.join(repr(obj) for obj in objects[:max_shown])
    more = '' if len(objects) <= max_shown else ' and %d more' % (
        len(objects) - max_shown)
    return ('warning: %d object(s) changed in place without _p_note_change() '
            'would NOT be committed: %s%s (use :touch EXPR to include, '
            ':abort to drop)' % (len(objects), names, more))


