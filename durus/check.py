"""An integrity check of a whole storage (``durus check``, the shell's
``:check``).

One sequential pass over every current record (``gen_oid_record()``)
keeps only oids: each record's oid, size and the oids of its refs
trailer, in flat arrays of 64-bit integers (about 30 bytes a record plus
8 a reference; no object is built).  From them it finds

* references to oids that have no record (each missing oid with the
  oids that refer to it),
* records unreachable from the root (what a pack would drop),
* records that do not parse (durus.record_check walks the pickles'
  opcodes: no code runs, nothing is imported),
* classes that cannot be imported (decided without importing: the
  module's source is located and parsed, never run; a module already
  imported is looked into),

and then walks every BTree (class ``durus.btree.BTree`` or a subclass
already imported), reading each node from its record with the reader of
a connection (the safe unpickling policy, or the given session's), and
checks the B-tree invariants node by node, keeping one key.

Over a server (``ClientStorage``) only the records reachable from the
root can be read: the pass then follows references from the root, and
unreachable records are not known (``unreachable_known`` is False).
"""

import ast
import importlib.machinery
import sys
from array import array
from operator import itemgetter, lt

from durus.record import HEADER_SIZE, class_key, record_data
from durus.record_check import record_problem
from durus.utils import int8_to_str

ROOT = 0
# At most this many examples are kept of each kind of problem (counts
# stay exact).
EXAMPLES = 100


class CheckReport(object):
    """What a check found; ``problems`` is 0 when the storage is sound."""

    def __init__(self, name):
        self.name = name
        self.records = 0
        self.bytes = 0
        self.missing = {}            # missing oid -> [referring oids]
        self.missing_count = 0
        self.unreachable = 0
        self.unreachable_bytes = 0
        self.unreachable_examples = []
        self.unparsable = []         # (oid, reason)
        self.unparsable_count = 0
        self.classes = {}            # 'module.Name' -> records
        self.unimportable = {}       # 'module.Name' -> (records, reason)
        self.btrees = 0
        self.btree_problems = []     # (oid, reason)
        self.btree_oids = array('Q')
        self.root_missing = False
        # False over a server: only reachable records can be read there.
        self.unreachable_known = True

    @property
    def problems(self):
        """How many things are wrong.  Unreachable records are not
        counted: a file that was not packed since objects were dropped
        holds them, and a pack frees them (``strict_problems`` counts
        them too)."""
        return (self.missing_count + self.unparsable_count
                + sum(n for n, _ in self.unimportable.values())
                + len(self.btree_problems) + self.root_missing)

    @property
    def strict_problems(self):
        return self.problems + self.unreachable

    def as_dict(self):
        return {
            'storage': self.name, 'records': self.records,
            'bytes': self.bytes, 'ok': not self.problems,
            'root_missing': self.root_missing,
            'missing': [{'oid': oid, 'referred_by': refs}
                        for oid, refs in sorted(self.missing.items())],
            'missing_count': self.missing_count,
            'unreachable': {'known': self.unreachable_known,
                            'records': self.unreachable,
                            'bytes': self.unreachable_bytes,
                            'examples': self.unreachable_examples},
            'unparsable': [{'oid': oid, 'problem': why}
                           for oid, why in self.unparsable],
            'unparsable_count': self.unparsable_count,
            'unimportable': [{'class': name, 'records': n, 'problem': why}
                             for name, (n, why)
                             in sorted(self.unimportable.items())],
            'btrees': {'checked': self.btrees,
                       'problems': [{'oid': oid, 'problem': why}
                                    for oid, why in self.btree_problems]},
        }

    def lines(self, listed=None):
        """The report as text lines, for people.  ``listed``: at most that
        many entries of each list (missing records, records that do not
        parse, classes, broken BTrees), each cut list ending with how
        many it left out; every count and the verdict are always shown.
        """
        out = ['%s: %d records, %d bytes' % (self.name, self.records,
                                             self.bytes)]

        def entries(items, total):
            items = list(items)
            shown = items if listed is None else items[:listed]
            out.extend(shown)
            if total > len(items) == len(shown):
                out.append('  ... %d more (the check keeps the first %d)'
                           % (total - len(shown), EXAMPLES))
            elif total > len(shown):
                out.append('  ... %d more' % (total - len(shown)))

        if self.root_missing:
            out.append('no root record (oid 0)')
        if self.missing_count:
            out.append('%d missing records (referred to, but not stored):'
                       % self.missing_count)
            entries(['  oid %d, referred to by %s' % (
                oid, ', '.join(map(str, refs)))
                for oid, refs in sorted(self.missing.items())],
                self.missing_count)
        if self.unparsable_count:
            out.append('%d records that do not parse:' % self.unparsable_count)
            entries(['  oid %d: %s' % (oid, why)
                     for oid, why in self.unparsable], self.unparsable_count)
        if self.unimportable:
            out.append('classes that cannot be imported:')
            entries(['  %s: %d records (%s)' % (name, n, why)
                     for name, (n, why) in sorted(self.unimportable.items())],
                    len(self.unimportable))
        out.append('%d BTrees checked%s' % (
            self.btrees, '' if not self.btree_problems else
            ', %d broken:' % len(self.btree_problems)))
        entries(['  BTree oid %d: %s' % (oid, why)
                 for oid, why in self.btree_problems],
                len(self.btree_problems))
        if not self.unreachable_known:
            out.append('unreachable records are not known over a server: '
                       'check the file itself for them')
        elif self.unreachable:
            out.append('%d records (%d bytes) unreachable from the root: a '
                       'pack would free them (e.g. oids %s)' % (
                           self.unreachable, self.unreachable_bytes,
                           ', '.join(map(str, self.unreachable_examples[:10]))))
        else:
            out.append('every record is reachable from the root')
        out.append('OK: no problems found' if not self.problems else
                   'PROBLEMS FOUND')
        return out

    def screenful(self, rows, columns=None):
        """``(lines, cut)``: the report in at most ``rows`` screen lines
        (lines wrap at ``columns``) where it can be, each list cut to the
        same length, as long as fits; ``cut`` says whether anything was
        left out."""
        def height(lines):
            if not columns:
                return len(lines)
            return sum(max(1, -(-len(line) // columns)) for line in lines)

        whole = self.lines()
        if height(whole) <= rows:
            return whole, False
        low, high = 0, len(whole)   # the longest lists that fit
        while low < high:
            middle = (low + high + 1) // 2
            if height(self.lines(middle)) <= rows:
                low = middle
            else:
                high = middle - 1
        return self.lines(low), True


def check_storage(storage, name=None, progress=None, total=None,
                  connection=None):
    """Check ``storage``; returns a CheckReport.

    ``progress(done, total)`` is called now and then (``total`` may be
    None) while the records are read.  ``connection``: one on
    ``storage`` whose reader (and unpickling policy) decodes the BTree
    nodes; without it a connection with the safe policy is made (do not
    make a second connection on a storage a session uses: it would take
    that session's invalidations).
    """
    report = CheckReport(name or str(storage))
    if total is None:
        try:
            total = storage.describe().get('objects')
        except Exception:
            total = None
    if sees_every_record(storage):
        records = storage.gen_oid_record()
    else:
        report.unreachable_known = False
        records = gen_reachable(storage)
    oids, sizes, ref_ends, refs = _scan(records, report, progress, total)
    _follow(report, oids, sizes, ref_ends, refs)
    _check_classes(report)
    _check_btrees(storage, report, connection)
    return report


def sees_every_record(storage):
    """Whether ``gen_oid_record()`` gives every record, or (a server's
    client: the protocol cannot list records) only the reachable ones."""
    from durus.storage import Storage
    return type(storage).gen_oid_record is not Storage.gen_oid_record


BATCH = 500


def gen_reachable(storage):
    """``(oid, record)`` of every record reachable from the root, read
    in batches; a referred oid without a record is skipped (the check
    reports it).  Seen oids are bits in a bytearray."""
    from durus.error import DurusKeyError
    from durus.record import refs_start
    seen = bytearray(1 << 16)
    far = set()   # oids too large for the bitmap

    def first_sight(number):
        if number < (1 << 33):
            byte, bit = number >> 3, 1 << (number & 7)
            if byte >= len(seen):
                seen.extend(bytes(max(byte + 1 - len(seen), len(seen))))
            if seen[byte] & bit:
                return False
            seen[byte] |= bit
            return True
        if number in far:
            return False
        far.add(number)
        return True

    first_sight(ROOT)
    todo = [int8_to_str(ROOT)]
    while todo:
        batch, todo = todo[-BATCH:], todo[:-BATCH]
        try:
            records = list(storage.bulk_load(batch))
            found = list(zip(batch, records))
        except DurusKeyError:
            found = []
            for oid in batch:
                try:
                    found.append((oid, storage.load(oid)))
                except DurusKeyError:
                    pass
        for oid, record in found:
            yield oid, record
            try:
                start = refs_start(record)
            except ValueError:
                continue
            for position in range(start, len(record), 8):
                ref = record[position:position + 8]
                if first_sight(int.from_bytes(ref, 'big')):
                    todo.append(ref)


def _scan(records, report, progress, total):
    oid_bytes = bytearray()
    ref_bytes = bytearray()
    sizes = array('Q')
    ref_ends = array('Q')
    keys = {}
    tree_keys = {}
    count = 0
    total_bytes = 0
    for oid, record in records:
        count += 1
        size = len(record)
        total_bytes += size
        if progress is not None and not count & 0x3fff:
            progress(count, total)
        problem = record_problem(record)
        if problem is None and record[:8] != oid:
            problem = 'the record starts with another oid'
        oid_bytes += oid
        sizes.append(size)
        if problem is not None:
            report.unparsable_count += 1
            if len(report.unparsable) < EXAMPLES:
                report.unparsable.append((_int(oid), problem))
        else:
            data_end = HEADER_SIZE + int.from_bytes(record[8:12], 'big')
            ref_bytes += record[data_end:]
            key = class_key(record)
            if key in keys:
                keys[key] += 1
            else:
                keys[key] = 1
                tree_keys[key] = _is_btree_key(key)
            if tree_keys[key]:
                report.btree_oids.append(_int(oid))
        ref_ends.append(len(ref_bytes) >> 3)
    if progress is not None:
        progress(count, total)
    report.records = count
    report.bytes = total_bytes
    for key, n in keys.items():
        if key is None:
            report.classes[('?', '?')] = n
            continue
        module, _, name = key.partition(b'\n')
        report.classes[(module.decode('latin-1'), name.decode('latin-1'))] = n
    oids = _ints(oid_bytes)
    refs = _ints(ref_bytes)
    return oids, sizes, ref_ends, refs


def _ints(big_endian):
    values = array('Q')
    values.frombytes(bytes(big_endian))
    if sys.byteorder == 'little':
        values.byteswap()
    return values


def _int(oid):
    return int.from_bytes(oid, 'big')


class _OidIndex(object):
    """Oid -> position in the scan; a flat table when oids are dense."""

    def __init__(self, oids):
        top = max(oids) if oids else -1
        if top < 4 * len(oids) + 1024:
            table = array('q', [-1]) * (top + 1)
            for position, oid in enumerate(oids):
                table[oid] = position
            self.table = table
            self.get = self._from_table
        else:
            self.table = {oid: position for position, oid in enumerate(oids)}
            self.get = self.table.get

    def _from_table(self, oid, size=None):
        table = self.table
        if oid < len(table):
            position = table[oid]
            if position >= 0:
                return position
        return None


def _follow(report, oids, sizes, ref_ends, refs):
    """Missing references and reachability, from the oid arrays."""
    index = _OidIndex(oids)
    get = index.get
    targets = array('q', [-1]) * len(refs)
    missing = report.missing
    start = 0
    for position, end in enumerate(ref_ends):
        for r in range(start, end):
            target = get(refs[r])
            if target is None:
                report.missing_count += refs[r] not in missing
                referrers = missing.setdefault(refs[r], [])
                if len(referrers) < EXAMPLES:
                    referrers.append(oids[position])
            else:
                targets[r] = target
        start = end
    if len(missing) > EXAMPLES:
        for oid in sorted(missing)[EXAMPLES:]:
            del missing[oid]
    root = get(ROOT)
    reached = bytearray(len(oids))
    if root is None:
        report.root_missing = bool(oids)
    else:
        reached[root] = 1
        todo = [root]
        while todo:
            position = todo.pop()
            for r in range(ref_ends[position - 1] if position else 0,
                           ref_ends[position]):
                target = targets[r]
                if target >= 0 and not reached[target]:
                    reached[target] = 1
                    todo.append(target)
    if root is None:
        return
    position = reached.find(0)
    while position >= 0:
        report.unreachable += 1
        report.unreachable_bytes += sizes[position]
        if len(report.unreachable_examples) < EXAMPLES:
            report.unreachable_examples.append(oids[position])
        position = reached.find(0, position + 1)
    report.unreachable_examples.sort()


# -- classes, without importing -----------------------------------------------

def class_problem(module, name):
    """Why ``module.name`` cannot be imported, or None when it can (or
    when that cannot be told without running the module's code)."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        value = loaded
        for part in name.split('.'):
            space = getattr(value, '__dict__', None)
            if space is None or part not in space:
                if module_level_getattr(value):
                    return None
                return 'module %s has no %s' % (module, name)
            value = space[part]
        return None
    spec = _find_spec(module)
    if spec is None:
        return 'no module named %s' % module
    origin = getattr(spec, 'origin', None)
    if not origin or not origin.endswith('.py'):
        return None   # compiled, built in or a namespace: not told here
    try:
        with open(origin, 'rb') as source:
            tree = ast.parse(source.read(), origin)
    except (OSError, SyntaxError, ValueError) as error:
        return 'module %s cannot be read (%s)' % (module, error)
    names, unknowable = _top_level_names(tree)
    if name.split('.')[0] in names or unknowable:
        return None
    return 'module %s has no %s' % (module, name)


def module_level_getattr(module):
    return '__getattr__' in getattr(module, '__dict__', {})


def _find_spec(module):
    """The module's spec, found without importing it or its packages."""
    path = None
    spec = None
    parts = module.split('.')
    for depth in range(len(parts)):
        full = '.'.join(parts[:depth + 1])
        if full in sys.modules and depth + 1 < len(parts):
            path = getattr(sys.modules[full], '__path__', None)
            if path is None:
                return None
            continue
        if path is None:
            spec = (importlib.machinery.BuiltinImporter.find_spec(full)
                    or importlib.machinery.FrozenImporter.find_spec(full)
                    or importlib.machinery.PathFinder.find_spec(full))
        else:
            spec = importlib.machinery.PathFinder.find_spec(full, path)
        if spec is None:
            return None
        path = spec.submodule_search_locations
        if depth + 1 < len(parts) and path is None:
            return None
    return spec


def _top_level_names(tree):
    names = set()
    unknowable = False
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef)):
            names.add(node.name)
            if node.name == '__getattr__':
                unknowable = True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == '*':
                    unknowable = True
                names.add(alias.asname or alias.name.split('.')[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target])
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        else:
            # Names bound under if/try/with/for at the top level.
            for sub in ast.walk(node):
                if isinstance(sub, (ast.ClassDef, ast.FunctionDef)):
                    names.add(sub.name)
                elif isinstance(sub, ast.Name) and isinstance(
                        sub.ctx, ast.Store):
                    names.add(sub.id)
                elif isinstance(sub, ast.alias):
                    names.add(sub.asname or sub.name.split('.')[0])
    return names, unknowable


def _check_classes(report):
    for (module, name), n in report.classes.items():
        if (module, name) == ('?', '?'):
            continue   # a class pickle not in GLOBAL form: not told here
        problem = class_problem(module, name)
        if problem is not None:
            report.unimportable['%s.%s' % (module, name)] = (n, problem)


# -- BTrees -------------------------------------------------------------------

def _is_btree_key(key):
    """Whether a class key names BTree or a subclass already imported
    (nothing is imported to find out)."""
    from durus.btree import BTree
    if key is None:
        return False
    module, _, name = key.decode('latin-1').partition('\n')
    loaded = sys.modules.get(module)
    value = getattr(loaded, '__dict__', {}).get(name)
    return isinstance(value, type) and issubclass(value, BTree)


def _check_btrees(storage, report, connection):
    if not report.btree_oids:
        return
    own = connection is None
    if own:
        from durus.connection import Connection
        connection = Connection(storage, cache_size=1000,
                                unpickle_policy='safe')
    for number in report.btree_oids:
        report.btrees += 1
        try:
            problem = btree_problem(connection, int8_to_str(number))
        except Exception as error:
            problem = 'cannot be read (%s: %s)' % (type(error).__name__,
                                                   error)
        if problem is not None:
            report.btree_problems.append((number, problem))


class StoredNodes(object):
    """Reads BTree nodes' stored states from their records (never from a
    connection's cache: what a session changed but did not commit is not
    what the check looks at).  The connection's reader decodes them, with
    its unpickling policy; references come back as ghosts."""

    def __init__(self, connection):
        self.storage = connection.storage
        self.reader = connection.reader

    def read(self, oid):
        """``(class, state)`` of the record of ``oid``."""
        data = record_data(self.storage.load(oid))
        return (self.reader.get_class(data),
                self.reader.get_state(data, oid=oid))


_NONE = object()


def btree_problem(connection, oid):
    """Why the stored BTree of ``oid`` breaks an invariant, or None.

    Nodes are visited in key order, read from their records; only the
    previous key and the path from the root are kept.
    """
    from durus.inspect import oid_of
    nodes = StoredNodes(connection)
    _, state = nodes.read(oid)
    if not isinstance(state, dict) or 'root' not in state:
        return 'its state has no root node'
    root_oid = oid_of(state['root'])
    if root_oid is None:
        return 'its root is not a stored node'
    last = [_NONE]
    leaf_depth = [None]
    degree = [None]
    visited = [0]

    def check_key(key):
        if last[0] is not _NONE and not last[0] < key:
            raise _Broken('keys out of order: %r then %r' % (last[0], key))
        last[0] = key

    def visit(node_oid, depth, is_root):
        if depth > 64:
            raise _Broken('deeper than 64 levels (a cycle of nodes?)')
        cls, node = nodes.read(node_oid)
        visited[0] += 1
        if not visited[0] % 500:
            # The values' ghosts die with each node's state; the cache
            # forgets their entries when it is shrunk.
            connection.shrink_cache()
        node_degree = getattr(cls, 'minimum_degree', None)
        if not isinstance(node_degree, int) or not isinstance(node, dict):
            raise _Broken('node oid %d is not a BTree node (a %s)' % (
                _int(node_oid), getattr(cls, '__name__', cls)))
        if degree[0] is None:
            degree[0] = node_degree
        elif node_degree != degree[0]:
            raise _Broken('nodes of minimum degree %d and %d in one tree'
                          % (degree[0], node_degree))
        items = node.get('items')
        children = node.get('nodes')
        where = 'node oid %d' % _int(node_oid)
        if not isinstance(items, list):
            raise _Broken('%s: its items are not a list' % where)
        if len(items) > 2 * node_degree - 1 or (
                not is_root and len(items) < node_degree - 1):
            raise _Broken('%s has %d items (minimum degree %d)'
                          % (where, len(items), node_degree))
        # map() keeps the per-item work in C (a million items here).
        if not all(map(_is_pair, items)):
            item = next(i for i in items if not _is_pair(i))
            raise _Broken('%s: an item that is not a (key, value) pair: %r'
                          % (where, item))
        if children is None:
            if leaf_depth[0] is None:
                leaf_depth[0] = depth
            elif leaf_depth[0] != depth:
                raise _Broken('leaves at depths %d and %d'
                              % (leaf_depth[0], depth))
            if items:
                keys = list(map(_first, items))
                check_key(keys[0])
                if not all(map(_lt, keys, keys[1:])):
                    for key in keys[1:]:
                        check_key(key)   # names the pair out of order
                last[0] = keys[-1]
            return
        if not isinstance(children, list) or len(children) != len(items) + 1:
            raise _Broken('%s has %d items but %s children' % (
                where, len(items), len(children)
                if isinstance(children, list) else 'no list of'))
        if is_root and not items:
            raise _Broken('an empty root node with children')
        for i, child in enumerate(children):
            child_oid = oid_of(child) if hasattr(child, '_p_oid') else None
            if child_oid is None:
                raise _Broken('%s: child %d is not a stored node'
                              % (where, i))
            visit(child_oid, depth + 1, False)
            if i < len(items):
                check_key(items[i][0])

    try:
        visit(root_oid, 0, True)
    except _Broken as broken:
        return str(broken)
    return None


_first = itemgetter(0)
_lt = lt


def _is_pair(item):
    return type(item) is tuple and len(item) == 2


class _Broken(Exception):
    pass
