"""Rename a class in every stored record, on the record bytes.

When a class moves module or is renamed, old records still name the old
path: in their class header, in the state of other objects that refer to
them (Durus pickles a reference with the class of its target), and in
states that hold a non-persistent instance of it.  ``rename_class``
rewrites all of them in one transaction, through any storage (a file, a
server), without importing either class or unpickling a state: each
pickle is rewritten opcode by opcode (durus.pickle_rename)::

    plan = plan_rename(storage, 'old.mod:Thing', 'new.mod:Thing')
    plan.records, plan.bytes_before, plan.bytes_after   # a dry run
    commit_rename(storage, plan)                        # one commit

Records read through ``storage.gen_oid_record()``: a file gives every
record, a server the records reachable from the root.  Other clients of a
server see the new records after their next sync, like any commit.
"""

import zlib

from durus.error import DurusError, WriteConflictError
from durus.pickle_rename import parse_class_name, pickle_end, rename_in_pickle
from durus.record import class_path, pack_record, unpack_record
from durus.utils import str_to_int8

COMPRESSION_LEVEL = 6  # what Durus writes; any level reads


class RenameRefused(DurusError, ValueError):
    """The rename would mix two classes, or cannot be done on these bytes."""


class RenamePlan(object):
    """What a rename would write: ``changed`` ``[(oid, new record)]``,
    headers renamed (``headers``), references inside states rewritten
    (``references``), bytes before and after, and the records whose
    class is already NEW (``existing_new``)."""

    def __init__(self, old, new):
        self.old = old
        self.new = new
        self.changed = []
        self.headers = 0
        self.references = 0
        self.bytes_before = 0
        self.bytes_after = 0
        self.existing_new = 0
        self.scanned = 0

    @property
    def records(self):
        return len(self.changed)

    def summary(self):
        return ('%s -> %s: %d record%s to rewrite (%d class header%s, %d '
                'reference%s inside states), %s bytes -> %s bytes, of %s '
                'records read' % (
                    _dotted(self.old), _dotted(self.new), self.records,
                    _s(self.records), self.headers, _s(self.headers),
                    self.references, _s(self.references),
                    '{:,}'.format(self.bytes_before),
                    '{:,}'.format(self.bytes_after),
                    '{:,}'.format(self.scanned)))


def _s(n):
    return '' if n == 1 else 's'


def _dotted(path):
    return '%s.%s' % path


def as_class_path(name):
    """``(module, name)`` from ``'module:Class'``, ``'module.Class'`` or
    a pair."""
    if isinstance(name, tuple):
        return name
    return parse_class_name(name)


def rename_record(record, old, new):
    """``(new record or None, header renamed?, references rewritten)``.

    ``old``/``new`` are ``(module, name)``.  None when nothing names
    ``old``.  RenameRefused for data that is not two pickles.
    """
    oid, data, refs = unpack_record(record)
    try:
        split = pickle_end(data)
        class_pickle, state = data[:split], data[split:]
        new_class, header = rename_in_pickle(class_pickle, old, new)
        compressed = state[:1] == b'x'
        plain = zlib.decompress(state) if compressed else state
        new_plain, references = rename_in_pickle(plain, old, new)
    except (ValueError, zlib.error) as error:
        raise RenameRefused('the record of oid %d cannot be read as two '
                            'pickles (%s); nothing was written'
                            % (str_to_int8(oid), error))
    if not header and not references:
        return None, False, 0
    if references:
        state = (zlib.compress(new_plain, COMPRESSION_LEVEL) if compressed
                 else new_plain)
    return pack_record(oid, new_class + state, refs), bool(header), references


def plan_rename(storage, old, new, progress=None):
    """Read every record of ``storage`` and work out the rename (nothing is
    written).  ``progress(scanned)`` is called now and then."""
    old, new = as_class_path(old), as_class_path(new)
    if old == new:
        raise RenameRefused('%s and %s are the same class'
                            % (_dotted(old), _dotted(new)))
    plan = RenamePlan(old, new)
    for oid, record in storage.gen_oid_record():
        plan.scanned += 1
        if progress is not None and plan.scanned % 10000 == 0:
            progress(plan.scanned)
        if class_path(record) == new:
            plan.existing_new += 1
        rewritten, header, references = rename_record(record, old, new)
        if rewritten is None:
            continue
        plan.changed.append((oid, rewritten))
        plan.headers += header
        plan.references += references
        plan.bytes_before += len(record)
        plan.bytes_after += len(rewritten)
    return plan


def check_merge(plan, merge=False):
    """RenameRefused when NEW already names objects and ``merge`` is off."""
    if plan.existing_new and not merge and plan.records:
        raise RenameRefused(
            '%s already names %d record%s in this database: renaming %s to '
            'it would make them one class; give --merge if that is meant'
            % (_dotted(plan.new), plan.existing_new, _s(plan.existing_new),
               _dotted(plan.old)))


def commit_rename(storage, plan):
    """Write the planned records as one transaction.

    Over a server, a commit of another client since the plan read the
    records stops it (WriteConflictError, nothing written): any record
    may then name OLD anew, or be overwritten with a stale state.  Plan
    again.
    """
    if not plan.changed:
        return 0

    def refuse_if_changed(oids):
        if oids:
            raise WriteConflictError(list(oids))
    storage.begin()
    for oid, record in plan.changed:
        storage.store(oid, record)
    storage.end(refuse_if_changed)
    return plan.records


def rename_class(storage, old, new, merge=False, dry_run=False):
    """Plan, check and (unless ``dry_run``) commit a rename; the plan."""
    plan = plan_rename(storage, old, new)
    check_merge(plan, merge)
    if not dry_run:
        commit_rename(storage, plan)
    return plan
