"""Commands for careful data fixes, registered in the shell's registry.

:diff :undo :redo :touch   change tracking (durus_shell.changes)
:find :census :refs :path  scans over raw records (durus_shell.scan)
:get :ls :tree             looking at objects
:log                       the audit log (durus_shell.audit)

The change tracker itself is part of every Session (``session.tracker``);
these commands only talk to it.
"""

import re
import shlex
import sys
import time
import weakref

from durus_shell import (audit, changes, object_paths, paging, peek, render,
                         scan)
from durus_shell.registry import PYTHON_ARGUMENT, CommandError, command

MAX_TREE_CHILDREN = 10
TREE_DEFAULT_DEPTH = 2
LS_MAX_ITEMS = 200


def diff_lines(session, max_objects=None):
    """The :diff text of a session, as lines (used by scripts' --dry-run)."""
    diffs = session.tracker.diff()
    _add_stored_paths(session, diffs)
    return changes.format_diffs(diffs, max_objects=max_objects)


def _add_stored_paths(session, diffs):
    """Paths for changed objects not reached through loaded objects
    (e.g. found by :find), from the shared bounded lookup."""
    missing = [diff for diff in diffs if not diff.path]
    paths = object_paths.object_paths(
        session, [diff.obj for diff in missing], in_memory=False)
    for diff in missing:
        diff.path = paths.get(id(diff.obj))


def enable_log(session, path, reason=None, script=None):
    """Append each commit's diff to ``path`` (``--log FILE``), with
    ``reason`` (``--reason``) and ``script`` (audit.script_identity)."""
    tracker = session.tracker
    target = session.target
    database = getattr(target, 'path', None) or getattr(
        target, 'label', None) or str(session.storage)
    old = session.audit_log
    if old is not None:
        reason = reason or old.reason
        script = script or old.script
    log = audit.AuditLog(path, database, reason=reason, script=script)
    if old is not None and old.record in tracker.commit_listeners:
        tracker.commit_listeners.remove(old.record)
    tracker.commit_listeners.append(log.record)
    session.audit_log = log
    return log


# -- argument helpers ----------------------------------------------------------

def _split(args):
    try:
        return shlex.split(args)
    except ValueError as error:
        raise CommandError('cannot read the arguments: %s' % error)


def _options(words, names):
    """``(positional, {name: value})`` for ``--name value`` options."""
    positional = []
    values = {}
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith('--'):
            name, eq, value = word[2:].partition('=')
            if name not in names:
                raise CommandError('unknown option --%s (known: %s)' % (
                    name, ', '.join('--' + n for n in names)))
            if not eq:
                index += 1
                if index >= len(words):
                    raise CommandError('--%s needs a value' % name)
                value = words[index]
            values[name] = value
        else:
            positional.append(word)
        index += 1
    return positional, values


def _int_option(values, name, default):
    if name not in values:
        return default
    try:
        number = int(values[name])
    except ValueError:
        raise CommandError('--%s takes a number, not %r' % (name,
                                                           values[name]))
    if number < 0:
        raise CommandError('--%s must not be negative' % name)
    return number


def _evaluate(session, text, extra=None):
    namespace = session.namespace
    if extra:
        namespace = dict(namespace)
        namespace.update(extra)
    try:
        return eval(compile(text, '<command>', 'eval'), namespace)
    except SyntaxError as error:
        raise CommandError('not a Python expression: %s (%s)'
                           % (text, error.msg))
    except CommandError:
        raise
    except Exception as error:
        raise CommandError('%s: %s: %s' % (text, type(error).__name__, error))


def _object_or_oid(session, args):
    """``(object or None, oid bytes)`` for ``EXPR|OID``."""
    text = args.strip()
    if not text:
        raise CommandError('give an expression or an oid')
    value = int(text) if text.isdigit() else _evaluate(session, text)
    if isinstance(value, int) and not isinstance(value, bool):
        return _existing(session, value)
    if not peek.is_persistent(value):
        raise CommandError('%s is not a persistent object (a %s)%s'
                           % (text, type(value).__name__,
                              _owner_hint(session, text)))
    if peek.oid_of(value) is None:
        raise CommandError('%s is new (not committed yet): it has no oid'
                           % text)
    return value, peek.oid_of(value)


def _existing(session, number):
    """``(object, oid)`` for an oid number; the one answer every command
    gives for an oid that has no record."""
    if number < 0 or number >= 1 << 64:
        raise CommandError('%d is not an oid' % number)
    oid = number.to_bytes(8, 'big')
    obj = session.connection.get(oid)
    if obj is None:
        raise CommandError('no object with oid %d in this database' % number)
    return obj, oid


def _owner_hint(session, text):
    """'; the persistent object holding it is root[...]' for a plain
    value reached through attributes or items, else ''."""
    import ast
    try:
        node = ast.parse(text, mode='eval').body
    except SyntaxError:
        return ''
    for _ in range(20):  # bounded: each step drops one .name or [key]
        if not isinstance(node, (ast.Attribute, ast.Subscript)):
            return ''
        node = node.value
        owner = ast.unparse(node)
        try:
            value = eval(compile(owner, '<command>', 'eval'),
                         session.namespace)
        except Exception:
            return ''
        if peek.is_persistent(value):
            return '; the persistent object holding it is %s (%r)' % (
                owner, value)
    return ''


def _oid_int(obj):
    oid = peek.oid_of(obj)
    return None if oid is None else int.from_bytes(oid, 'big')


# -- progress ------------------------------------------------------------------

class Progress(object):
    """Throttled progress for scans: ``ui.progress(text)`` if the UI has
    it, else a self-overwriting line on stderr at an interactive prompt."""

    def __init__(self, ui, label, interval=0.1):
        self.ui = ui
        self.label = label
        self.interval = interval
        self.last = 0.0
        self.shown = False

    def __call__(self, scanned, total, found, elapsed):
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        self.show(format_progress(self.label, scanned, total, found,
                                  elapsed))

    def show(self, text):
        method = getattr(self.ui, 'progress', None)
        if method is not None:
            method(text)
        elif getattr(self.ui, 'interactive', False):
            sys.stderr.write('\r' + text + '\x1b[K')
            sys.stderr.flush()
        else:
            return
        self.shown = True

    def done(self):
        if not self.shown:
            return
        method = getattr(self.ui, 'progress', None)
        if method is not None:
            method(None)
        else:
            sys.stderr.write('\r\x1b[K')
            sys.stderr.flush()


def format_progress(label, scanned, total, found, elapsed, width=24):
    rate = scanned / elapsed if elapsed > 0 else 0
    if total:
        share = min(1.0, scanned / float(total))
        filled = int(share * width)
        bar = '[%s%s] %3d%% ' % ('#' * filled, '.' * (width - filled),
                                 share * 100)
    else:
        bar = ''
    return '%s %s%s records, %s found, %s/s  (Ctrl-C stops)' % (
        label, bar, '{:,}'.format(scanned), '{:,}'.format(found),
        '{:,}'.format(int(rate)))


def _scan_note(result, what):
    note = '%s: %s record%s read in %.2f s' % (
        what, '{:,}'.format(result.scanned),
        '' if result.scanned == 1 else 's', result.elapsed)
    if result.interrupted:
        note += ' -- INTERRUPTED (Ctrl-C): results so far'
    return note


# -- showing objects -----------------------------------------------------------

def summary(obj, width=60):
    """A short one-line description of an object's content."""
    try:
        state = peek.peek_state(obj, load=True)
    except Exception as error:
        return '(cannot load: %s)' % type(error).__name__
    kind = peek.container_kind(obj)
    if kind in ('dict', 'list') and isinstance(state, dict):
        text = 'len %d' % len(state.get('data') or ())
    elif kind == 'set' and isinstance(state, dict):
        text = 'len %d' % len(state.get('s') or ())
    elif kind == 'btree':
        text = 'BTree'
    elif isinstance(state, dict):
        parts = []
        for name in sorted(state):
            parts.append('%s=%s' % (name, changes.short_repr(
                state[name], max(20, width // 3))))
        text = ', '.join(parts)
    else:
        text = changes.short_repr(state, width)
    if len(text) > width:
        text = text[:width - 3] + '...'
    return text


def object_table(objects, columns=80, unreachable=(), paths=None):
    """oid, class, summary rows; the summary fills what the screen's
    ``columns`` leave (at least 60 characters).  Objects whose id is in
    ``unreachable`` are marked.  With ``paths`` ({id(obj): path}, see
    row_paths) a path column comes after the class."""
    paths = paths or {}
    heads = [(str(_oid_int(obj)), peek.class_path(type(obj)))
             for obj in objects]
    used = max([len(oid) for oid, _ in heads] + [3]) + max(
        [len(name) for _, name in heads] + [5]) + 4
    if paths:
        used += max([len(path) for path in paths.values()] + [4]) + 2
    width = max(60, columns - used - 1)
    rows = [[oid, name] + ([paths.get(id(obj), '')] if paths else []) +
            [(UNREACHABLE_MARK if id(obj) in unreachable else '')
             + summary(obj, width)]
            for (oid, name), obj in zip(heads, objects)]
    return render.table(['oid', 'class'] + (['path'] if paths else []) +
                        ['summary'], rows)


PATH_ROWS = 20   # :find and :refs rows (from the top) that get a path
HEAD_ROWS = 300  # rows built at once for a long :find/:refs table


def row_paths(session, objects, unreachable=()):
    """Paths for the first PATH_ROWS reachable ``objects`` of a result
    (the shared lookup bounds the storage searches and their time)."""
    rows = [obj for obj in objects if id(obj) not in unreachable]
    return object_paths.object_paths(session, rows[:PATH_ROWS])


def screen_columns(ui):
    """The terminal's width through the UI (80 when it has none)."""
    size = getattr(ui, 'size', None)
    if size is None:
        return 80
    try:
        return size()[1]
    except Exception:
        return 80


def _lines(fragments):
    return render.count_lines(render.plain(fragments))


def _show_objects(session, ui, objects, result, what, reachable_only=False):
    objects, lost, note = _reachability(session, ui, objects,
                                        reachable_only)
    session.namespace['_'] = objects
    columns = screen_columns(ui)
    paths = row_paths(session, objects, lost) if objects else {}
    if len(objects) > HEAD_ROWS and getattr(ui, 'defers', False):
        # A screenful needs only the first rows; the whole table (seconds
        # for 100,000 rows) is built if :more asks for it.
        per_row = _lines(object_table(objects[:2], columns, lost, paths)) - \
            _lines(object_table(objects[:1], columns, lost, paths))
        ui.show(paging.Deferred(
            object_table(objects[:HEAD_ROWS], columns, lost, paths),
            (len(objects) - HEAD_ROWS) * per_row,
            lambda: render.plain(object_table(objects, columns, lost,
                                              paths))))
    elif objects:
        ui.show(object_table(objects, columns, lost, paths))
    ui.show('%d found (in _).%s %s' % (len(objects), note,
                                       _scan_note(result, what)))


# -- commands: change tracking -------------------------------------------------

@command('diff', usage=':diff')
def diff_command(session, args, ui):
    """Show every uncommitted change, with old and new values.

    Each changed object is shown with its path from the root (or its
    oid), its class, and old -> new per attribute, or per item for
    PersistentDict/List/Set and BTree.  New objects are marked '+'.
    Objects marked '!' were changed in place without _p_note_change():
    a commit would NOT write them (:touch EXPR includes one).
    """
    ui.show('\n'.join(diff_lines(session, max_objects=200)))


def _count(args, default=1):
    text = args.strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise CommandError('give a positive number of statements, not %r'
                           % text)
    return int(text)


@command('undo', usage=':undo [N]')
def undo_command(session, args, ui):
    """Take back the last N statements' changes (default 1).

    Attribute sets and deletes, container changes and new objects, as far
    back as the last commit or abort; committed data is never undone.
    Right after :abort, brings back what the abort dropped.
    """
    count = _count(args)
    tracker = session.tracker
    tracker.refresh()
    if not tracker.history and tracker.aborted_steps:
        try:
            done = tracker.undo_abort()
        except ValueError as error:
            raise CommandError(str(error))
        ui.show('brought back the %d statement%s the abort dropped; %d '
                'changed object%s pending (:diff)' % (
                    done, '' if done == 1 else 's', session.change_count(),
                    '' if session.change_count() == 1 else 's'))
        return
    done = tracker.undo(count)
    if not done:
        raise CommandError('nothing to undo since the last commit or abort')
    remaining = session.change_count()
    ui.show('undid %d statement%s; %d changed object%s remain%s (:diff, '
            ':redo)' % (done, '' if done == 1 else 's', remaining,
                        '' if remaining == 1 else 's',
                        's' if remaining == 1 else ''))


@command('redo', usage=':redo [N]')
def redo_command(session, args, ui):
    """Re-apply the last N undone statements (until a new edit is made)."""
    count = _count(args)
    done = session.tracker.redo(count)
    if not done:
        raise CommandError('nothing to redo')
    ui.show('redid %d statement%s' % (done, '' if done == 1 else 's'))


@command('touch', usage=':touch EXPR|OID', complete=PYTHON_ARGUMENT)
def touch_command(session, args, ui):
    """Mark an object changed so the next commit writes it.

    For an object whose plain list or dict was changed in place without
    _p_note_change() (shown with '!' by :diff).  Undoable.
    """
    if not args.strip():
        raise CommandError('give an expression or oid of the object to '
                           'touch')
    text = args.strip()
    if text.isdigit():
        obj, _ = _existing(session, int(text))
    else:
        obj = _evaluate(session, text)
        if not peek.is_persistent(obj):
            raise CommandError('%s is not a persistent object (a %s)%s: '
                               'touch that' % (text, type(obj).__name__,
                                               _owner_hint(session, text)))
    try:
        changes.touch(session.connection, obj)
    except (TypeError, ValueError) as error:
        raise CommandError(str(error))
    ui.show('%r will be written by the next commit' % (obj,))


# -- commands: scans -----------------------------------------------------------

FIND_USAGE = (':find CLASS [--limit N] [--reachable] [--skip-errors] '
              '[--where EXPR]')


def _take_where(args):
    """``(args without --where, the expression or None)``: everything after
    ``--where`` is the expression, quoted or not."""
    match = re.search(r'(?:^|\s)--where(?:=|\s+|$)', args)
    if not match:
        return args, None
    expression = args[match.end():].strip()
    if len(expression) >= 2 and expression[0] == expression[-1] \
            and expression[0] in '"\'':
        try:
            words = shlex.split(expression)
        except ValueError:
            words = None
        if words is not None and len(words) == 1:
            expression = words[0]
    if not expression:
        raise CommandError('--where needs an expression, e.g. '
                           '--where obj.balance < 0')
    return args[:match.start()], expression


@command('find', usage=FIND_USAGE, complete=lambda session, text:
         class_names(session))
def find_command(session, args, ui):
    """Find instances of a class by name or dotted path (results in _).

    Reads the class from each record's first bytes: nothing is imported
    and only matching records are loaded.  --where EXPR filters with the
    object bound to `obj` (the rest of the line, quoted or not), e.g.
    --where obj.balance < 0.  An error in the expression stops the
    search and names the object it failed on; --skip-errors counts such
    objects as no match instead.  Ctrl-C stops the scan and keeps what
    was found so far.  Records not reachable from the root (a pack would
    remove them) are marked [unreachable]; --reachable leaves them out.
    """
    args, code = _take_where(args)
    words = _split(args)
    skip_errors = '--skip-errors' in words
    reachable_only = '--reachable' in words
    words = [word for word in words
             if word not in ('--skip-errors', '--reachable')]
    words, values = _options(words, ('limit', 'where', 'skip-errors'))
    if len(words) != 1:
        raise CommandError('usage: ' + FIND_USAGE)
    limit = _int_option(values, 'limit', None)
    where = None
    skipped = []
    if code is not None:
        try:
            compiled = compile(code, '<--where>', 'eval')
        except SyntaxError as error:
            raise CommandError('--where is not an expression: %s' % error.msg)
        namespace = dict(session.namespace)

        def where(obj):
            namespace['obj'] = obj
            try:
                return eval(compiled, namespace)
            except Exception as error:
                if skip_errors:
                    skipped.append(obj)
                    return False
                # A typo must not read as "no bad records".
                raise CommandError(
                    'the --where expression failed on %r: %s. Nothing '
                    'was listed; fix the expression, or add --skip-errors'
                    ' to count such objects as no match'
                    % (obj, _error_line(error)))
    progress = Progress(ui, ':find %s' % words[0])
    try:
        result = scan.find_instances(session.connection, words[0], limit,
                                     where, progress)
    finally:
        progress.done()
    if not result.items and not result.interrupted:
        _no_such_class(session, words[0])
    _show_objects(session, ui, result.items, result, ':find',
                  reachable_only)
    if skipped:
        ui.show('%d object%s skipped: the --where expression failed on '
                'them (first: %r)' % (len(skipped), '' if len(skipped) == 1
                                      else 's', skipped[0]))


_CLASS_NAMES = weakref.WeakKeyDictionary()


def class_names(session, refresh=False):
    """Class names in the database (short and dotted), for completing
    :find: from one census per session (a scan of the record bytes),
    renewed by :census."""
    names = _CLASS_NAMES.get(session)
    if names is None or refresh:
        result = scan.census(session.storage)
        names = _names_from_census(result.items)
        _CLASS_NAMES[session] = names
    return names


def _names_from_census(counts):
    names = set()
    for name in counts:
        if name == '?':
            continue
        names.add(name)
        names.add(name.rpartition('.')[2])
    return sorted(names)


_REACHABLE = weakref.WeakKeyDictionary()  # session -> (serial, set)


def reachable_set(session, ui):
    """The oids reachable from the root, walked once per transaction
    (None if Ctrl-C cut the walk)."""
    serial = session.connection.transaction_serial
    cached = _REACHABLE.get(session)
    if cached is not None and cached[0] == serial:
        return cached[1]
    progress = Progress(ui, 'reachable from the root')
    try:
        result = scan.reachable_oids(session.storage, progress)
    finally:
        progress.done()
    if result.interrupted:
        return None
    _REACHABLE[session] = (serial, result.items)
    return result.items


def _reachability(session, ui, objects, reachable_only):
    """``(objects, unreachable ids, note)``: marks records not reachable
    from the root; ``reachable_only`` leaves them out."""
    if not objects:
        return objects, set(), ''
    reachable = reachable_set(session, ui)
    if reachable is None:
        return objects, set(), ' (reachability not checked: interrupted)'
    lost = [obj for obj in objects
            if peek.oid_of(obj) is not None
            and peek.oid_of(obj) not in reachable]
    if reachable_only:
        dropped = set(map(id, lost))
        kept = [obj for obj in objects if id(obj) not in dropped]
        note = (' %d unreachable from the root left out (--reachable).'
                % len(lost)) if lost else ''
        return kept, set(), note
    note = (' %d of them unreachable from the root (marked; a pack '
            'removes them; --reachable leaves them out).' % len(lost)) \
        if lost else ''
    return objects, set(map(id, lost)), note


UNREACHABLE_MARK = '[unreachable] '


def _error_line(error):
    """``NameError: name 'x' is not defined. Did you mean: 'y'?``"""
    import traceback
    summary = traceback.TracebackException(
        type(error), error, error.__traceback__, compact=True)
    from durus_shell.session import did_you_mean
    text = ''.join(summary.format_exception_only()).strip()
    if 'Did you mean' not in text:
        text += did_you_mean(error)
    return text


def _no_such_class(session, spec):
    """CommandError when no record anywhere has class ``spec``, with the
    closest class names (from a census: a second scan, only when
    nothing was found)."""
    import difflib
    result = scan.census(session.storage)
    if result.interrupted:
        return
    names = list(result.items)
    for name in names:
        if name == spec or ('.' not in spec
                            and name.rpartition('.')[2] == spec):
            return
    shorts = {}
    for name in names:
        shorts.setdefault(name.rpartition('.')[2], []).append(name)
    wanted = spec.rpartition('.')[2] if '.' not in spec else spec
    pool = list(shorts) if '.' not in spec else names
    close = difflib.get_close_matches(wanted, pool, n=5, cutoff=0.5)
    if not close:
        lowered = wanted.lower()
        close = [n for n in pool if lowered in n.lower()][:5]
    hint = ('; did you mean %s?' % ', '.join(close)) if close else \
        ' (:census lists the classes)'
    raise CommandError('no record of class %s in this database%s'
                       % (spec, hint))


@command('census', usage=':census')
def census_command(session, args, ui):
    """Count the records of each class and their bytes (results in _).

    Read from every current record's bytes: the exact count, where the
    banner's "about N objects" is an estimate from the file's index.
    """
    progress = Progress(ui, ':census')
    try:
        result = scan.census(session.storage, progress)
    finally:
        progress.done()
    if not result.interrupted:
        _CLASS_NAMES[session] = _names_from_census(result.items)
    counts = sorted(result.items.items(), key=lambda pair: (-pair[1],
                                                            pair[0]))
    session.namespace['_'] = dict(counts)
    sizes = result.bytes
    ui.show(render.table(['class', 'count', 'bytes'],
                         [(name, '{:,}'.format(n),
                           render.human_size(sizes.get(name, 0)))
                          for name, n in counts]))
    ui.show('%d classes, %s records (each current record read: the exact '
            'count), %s. %s' % (
                len(counts), '{:,}'.format(sum(n for _, n in counts)),
                render.human_size(sum(sizes.values())),
                _scan_note(result, ':census')))


@command('refs', usage=':refs EXPR|OID [--reachable]',
         complete=PYTHON_ARGUMENT)
def refs_command(session, args, ui):
    """List the objects that refer to an object (results in _).

    A reference from inside a BTree is shown as the BTree and the key
    that holds the object (walking up through its nodes), not as a node.
    Referrers not reachable from the root are marked [unreachable];
    --reachable leaves them out.
    """
    words = args.split()
    reachable_only = '--reachable' in words
    if reachable_only:
        args = ' '.join(word for word in words if word != '--reachable')
    target, oid = _object_or_oid(session, args)
    progress = Progress(ui, ':refs')
    try:
        result = scan.referrers(session.storage, oid, progress=progress)
        holders = [_holder(session, other, target, progress)
                   for other in result.items]
    finally:
        progress.done()
    objects, lost, note = _reachability(
        session, ui, [obj for obj, _ in holders], reachable_only)
    kept = set(map(id, objects))
    holders = [(obj, step) for obj, step in holders if id(obj) in kept]
    session.namespace['_'] = objects
    if objects:
        columns = screen_columns(ui)
        paths = row_paths(session, objects, lost)
        rows = [(str(_oid_int(obj)), peek.class_path(type(obj)),
                 paths.get(id(obj), ''), step or '',
                 (UNREACHABLE_MARK if id(obj) in lost else '')
                 + summary(obj, max(60, columns - 80)))
                for obj, step in holders]
        ui.show(render.table(['oid', 'class', 'path', 'holds it as',
                              'summary'], rows))
    ui.show('%d found (in _).%s %s' % (len(objects), note,
                                       _scan_note(result, ':refs')))


MAX_NODE_LEVELS = 16


def _holder(session, oid, target, progress=None):
    """``(object, step)`` for a referrer: a BTree node becomes the BTree
    that holds it and ``[key]`` (each level up is one more scan)."""
    obj = session.connection.get(oid)
    if peek.container_kind(obj) != 'bnode':
        return obj, peek.find_step(obj, target) if target is not None \
            else None
    step = None
    state = peek.peek_state(obj, load=True)
    for key, value in (state.get('items') or ()) if isinstance(
            state, dict) else ():
        if value is target:
            step = '[%r]' % (key,)
            break
    node_oid = oid
    for _ in range(MAX_NODE_LEVELS):
        up = scan.referrers(session.storage, node_oid, limit=1,
                            progress=progress)
        if not up.items:
            break
        parent = session.connection.get(up.items[0])
        kind = peek.container_kind(parent)
        if kind == 'btree':
            return parent, step
        if kind != 'bnode':
            break
        node_oid = up.items[0]
    return obj, step


@command('path', usage=':path EXPR|OID', complete=PYTHON_ARGUMENT)
def path_command(session, args, ui):
    """Show a path from the root to an object (the path string goes in _)."""
    _, oid = _object_or_oid(session, args)
    progress = Progress(ui, ':path')
    try:
        result = scan.oid_path(session.storage, oid, progress=progress)
    finally:
        progress.done()
    if not result.items:
        if result.interrupted:
            ui.show(_scan_note(result, ':path'))
            return
        raise CommandError('oid %d is not reachable from the root'
                           % int.from_bytes(oid, 'big'))
    path = scan.describe_chain(session.connection, result.items)
    session.namespace['_'] = path
    ui.show(path)
    ui.show('oids: %s' % ' -> '.join(
        str(int.from_bytes(o, 'big')) for o in result.items))


# -- commands: looking at objects -----------------------------------------------

@command('get', usage=':get OID')
def get_command(session, args, ui):
    """Show the object with an oid (it goes in _)."""
    text = args.strip()
    if not text.isdigit():
        raise CommandError('give an oid (a number), e.g. :get 12')
    obj, _ = _existing(session, int(text))
    session.namespace['_'] = obj
    ui.show(render.Renderer().render(obj))


@command('ls', usage=':ls EXPR', complete=PYTHON_ARGUMENT)
def ls_command(session, args, ui):
    """List an object's attributes (or a container's items) as a table."""
    obj = _evaluate(session, args) if args.strip() else session.root
    if not peek.is_persistent(obj):
        raise CommandError('%s is not a persistent object' % args.strip())
    state = peek.peek_state(obj, load=True)
    kind = peek.container_kind(obj)
    more = False
    if kind in ('dict', 'list') and isinstance(state, dict):
        data = state.get('data') or {}
        pairs = data.items() if kind == 'dict' else enumerate(data)
        rows = [(repr(k), v) for k, v in pairs]
    elif kind == 'set' and isinstance(state, dict):
        rows = [('', v) for v in state.get('s') or ()]
    elif kind == 'btree':
        rows = []
        for key, value in peek.gen_btree_items(obj, load=True):
            if len(rows) >= LS_MAX_ITEMS:
                more = True
                break
            rows.append((repr(key), value))
    elif isinstance(state, dict):
        rows = [('.' + name, state[name]) for name in sorted(state)]
    else:
        rows = [('<state>', state)]
    table = [(name, type(value).__name__, changes.short_repr(value, 80))
             for name, value in rows]
    ui.show('%r  %s' % (obj, peek.class_path(type(obj))))
    ui.show(render.table(['name', 'type', 'value'], table))
    if more:
        ui.show('... more items after these %d (the first by key); '
                'iterate the BTree, e.g. list(x.items_from(KEY)), for the '
                'rest' % LS_MAX_ITEMS)


def tree_lines(obj, depth=TREE_DEFAULT_DEPTH, max_children=MAX_TREE_CHILDREN):
    """Lines drawing the persistent objects below ``obj``.

    Oids are shown; an object already on the way down is a cycle; one
    already drawn elsewhere is marked as seen; long containers are cut
    after ``max_children`` references.
    """
    lines = ['%s  <%s %s>' % ('.', peek.class_path(type(obj)),
                              peek.format_oid(obj))]
    drawn = {id(obj)}

    def walk(parent, prefix, level, ancestors):
        if level >= depth:
            return
        children = []
        more = 0
        for step, child in peek.gen_refs(parent, load=True):
            if len(children) >= max_children:
                more += 1
                if more > 1000:
                    break
                continue
            children.append((step, child))
        for index, (step, child) in enumerate(children):
            last = index == len(children) - 1 and not more
            branch = '`-- ' if last else '|-- '
            label = '%s  <%s %s>' % (step or '.', peek.class_path(
                type(child)), peek.format_oid(child))
            if id(child) in ancestors:
                lines.append(prefix + branch + label + '  (cycle)')
                continue
            if id(child) in drawn:
                lines.append(prefix + branch + label + '  (seen above)')
                continue
            drawn.add(id(child))
            if level + 1 >= depth:
                below = _count_refs(child)
                if below:
                    label += '  ... %s below' % below
                    cut[0] = True
            lines.append(prefix + branch + label)
            walk(child, prefix + ('    ' if last else '|   '), level + 1,
                 ancestors | {id(child)})
        if more:
            lines.append(prefix + '`-- ... %s more' % (
                '1000+' if more > 1000 else more))

    cut = [False]
    walk(obj, '', 0, {id(obj)})
    if cut[0]:
        lines.append('(cut at depth %d%s; "... N below" marks where: '
                     ':tree EXPR --depth N shows more)' % (
                         depth, ', the default' if depth == TREE_DEFAULT_DEPTH
                         else ''))
    return lines


def _count_refs(obj, bound=1000):
    """How many references an object holds ('1000+' past ``bound``)."""
    count = 0
    for _ in peek.gen_refs(obj, load=True):
        count += 1
        if count > bound:
            return '%d+' % bound
    return count


@command('tree', usage=':tree EXPR [--depth N]',
         complete=PYTHON_ARGUMENT)
def tree_command(session, args, ui):
    """Draw the graph of persistent objects below an object, with oids.

    Cycles are marked, objects met twice are shown once, and containers
    are cut after 10 references.  Default depth 2; objects at the last
    level that hold references show how many ("... N below").
    """
    # The expression keeps its quotes: only --depth is taken out.
    values = {}
    match = re.search(r'(?:^|\s)--depth(?:=|\s+)(\S+)\s*$', args)
    if match:
        values['depth'] = match.group(1)
        args = args[:match.start()]
    elif re.search(r'(?:^|\s)--', args):
        raise CommandError('usage: :tree EXPR [--depth N]')
    depth = _int_option(values, 'depth', TREE_DEFAULT_DEPTH)
    expression = args.strip()
    obj = _evaluate(session, expression) if expression else session.root
    if not peek.is_persistent(obj):
        raise CommandError('%s is not a persistent object' % expression)
    ui.show('\n'.join(tree_lines(obj, depth)))


@command('log', usage=':log FILE')
def log_command(session, args, ui):
    """Append each commit's diff (time, database, user) to FILE."""
    words = _split(args)
    if len(words) != 1:
        raise CommandError('usage: :log FILE')
    try:
        log = enable_log(session, words[0])
    except OSError as error:
        raise CommandError('cannot write %s: %s' % (words[0],
                                                   error.strerror or error))
    ui.show('logging every commit to %s' % log.path)
