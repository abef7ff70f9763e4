"""The Connection: one client's view of a storage, its cache and transaction.

A transaction is everything between two ``commit()``/``abort()`` calls;
``transaction_serial`` numbers them (it starts at 1).  An object counts
as accessed in the current transaction when its ``_p_serial`` equals
``transaction_serial``.

Conflicts (spec api.md §3): other clients' commits reach this connection
as lists of invalidated oids (from ``storage.sync()``, from a load
answered "invalid", or during ``storage.end()``).  An invalidated object
that the current transaction accessed or changed is a conflict: its oid
goes into ``invalid_oids`` and a ``ConflictError`` is raised; until
``abort()`` every commit with changes is refused.  Other invalidated
objects are simply turned into ghosts and reload on next use.
"""

import heapq
import os
import weakref
import zlib

from durus._accel import speedups as _speedups, use as _use_compiled
from durus.error import (CommitVetoedError, ConflictError, DurusError,
                         DurusKeyError, ReadConflictError, RefusedValueError,
                         StateLoadError, WriteConflictError)
from durus.load_snapshots import PRUNE_MINIMUM, LoadSnapshots
from durus.persistent import (ConnectionBase, GHOST, SAVED, UNSAVED,
                              PersistentBase, _variants, hook_variants,
                              refresh_hooks)
from durus.persistent_dict import PersistentDict
from durus.record import (  # noqa: F401 (pack_record: 4.3 offered it here)
    class_pickle_end, pack_record, record_data)
from durus.serialize import (ObjectReader, ObjectWriter, _EMPTY_MEMO,
                             _decompress)
from durus.storage import ROOT_OID, Storage
from durus.utils import int8_to_str, str_to_int8

_raw_get = object.__getattribute__
_raw_set = object.__setattr__
_set_type = object.__dict__['__class__'].__set__
_object_new = object.__new__
_base_new = PersistentBase.__new__
_set_oid = PersistentBase._p_oid.__set__
_set_connection = PersistentBase._p_connection.__set__
_set_status = PersistentBase._p_status.__set__
_set_serial = PersistentBase._p_serial.__set__

__all__ = ['ROOT_OID', 'Connection', 'ConnectionObserver', 'Cache',
           'ObjectDictionary', 'ReferenceContainer', 'touch_every_reference',
           'gen_every_instance', 'StillConflictedError']


# ObjectReader.get_state, or its compiled twin (which calls the reader's
# own get_state for ObjectReader subclasses).
_get_state = _use_compiled('get_state', ObjectReader.get_state)


class StillConflictedError(DurusError, AssertionError):
    """A commit with changes was attempted before ``abort()`` after a conflict.

    Also an ``AssertionError``, which is what Durus 4.3 raised here.
    """


class RootClassError(DurusError, AssertionError):
    """The database root is not of the ``root_class`` asked for."""


class NotAStorageError(DurusError, TypeError, AssertionError):
    """Connection() was given something that is not a storage."""


class FirstOidError(DurusError, AssertionError):
    """A storage without a root gave a first new oid other than 0."""


class ConnectionObserver(object):
    """What a connection tells its observers (``add_observer``).

    Subclass it and override what you need; each method is called with
    the connection first.  Observers are called in the order added.

    * ``before_change(connection, obj)``: ``obj`` is about to be noted as
      changed (its first change in this transaction, before it happens).
    * ``before_commit(connection)``: a commit with changes is about to
      store them.  Return a reason (a str) to refuse it, or raise;
      nothing has been stored or bound yet.
    * ``after_commit(connection, written)``: the commit is complete;
      ``written`` lists the objects stored (empty if there were none).
    * ``after_abort(connection, invalidated)``: the abort is complete;
      ``invalidated`` lists the oids other clients changed meanwhile.
    """

    def before_change(self, connection, obj):
        pass

    def before_commit(self, connection):
        return None

    def after_commit(self, connection, written):
        pass

    def after_abort(self, connection, invalidated):
        pass


class Connection(ConnectionBase):
    """A client's view of a storage: cache, changed objects, transactions."""

    _writer = None
    # A LoadSnapshots when asked for (see __init__), else None.
    load_snapshots = None

    def __init__(self, storage, cache_size=100000, root_class=None,
                 unpickle_policy=None, class_factory=None,
                 load_snapshots=False):
        """``unpickle_policy``: which globals records may name
        (durus.unpickle_policy; None or 'trusted' is Durus 4.3's
        behaviour, 'safe' refuses every global that is not a persistent
        class or a plain value type).  ``class_factory(module, name,
        persistent)``: a class to use for a pickled class that cannot be
        imported (see ObjectReader); this connection only, already while
        the root is loaded.  ``load_snapshots``: keep a snapshot of each
        object's state as loaded (``self.load_snapshots``, a
        durus.load_snapshots.LoadSnapshots), so that tools can tell
        cheaply which objects still hold their records' states; already
        while the root is loaded.  An addition to Durus 4.3."""
        if isinstance(storage, (str, os.PathLike)):
            from durus.file_storage import FileStorage
            storage = FileStorage(os.fspath(storage))
        if not isinstance(storage, Storage):
            raise NotAStorageError('Connection needs a durus.storage.Storage '
                                   'or a file name, not %r' % (storage,))
        self.storage = storage
        self.cache = Cache(cache_size)
        self.reader = ObjectReader(self, unpickle_policy,
                                   class_factory=class_factory)
        self._observers = ()
        self.changed = {}
        self.invalid_oids = set()
        self.new_oid = storage.new_oid
        self._unhooked = []
        self._writer = None  # the last commit's ObjectWriter, reused
        if load_snapshots:
            self.load_snapshots = LoadSnapshots(
                self.cache.objects, _prune_floor(self.cache.size))
        self.root = self.get(ROOT_OID)
        if self.root is None:
            oid = self.new_oid()
            if oid != ROOT_OID:
                raise FirstOidError('the storage has no root object but its '
                                    'first new oid is %d, not 0: the storage '
                                    'is damaged' % str_to_int8(oid))
            root = self.cache.get_instance(ROOT_OID,
                                           root_class or PersistentDict, self)
            root._p_set_status_saved()
            root.__init__()
            root._p_note_change()
            self.root = root
            self.commit()
        elif root_class is not None and self.root.__class__ is not root_class:
            raise RootClassError('the root is a %s, not a %s as asked' % (
                self.root.__class__.__name__, root_class.__name__))

    # -- accessors ---------------------------------------------------------

    def get_storage(self):
        return self.storage

    def get_cache(self):
        return self.cache

    def get_root(self):
        return self.root

    def get_cache_count(self):
        return self.cache.get_count()

    def get_cache_size(self):
        return self.cache.get_size()

    def set_cache_size(self, size):
        self.cache.set_size(size)
        snapshots = self.load_snapshots
        if snapshots is not None:
            snapshots.prune_floor = _prune_floor(self.cache.size)
            snapshots.prune_at = max(snapshots.prune_at,
                                     snapshots.prune_floor)

    def get_transaction_serial(self):
        return self.transaction_serial

    def get_load_count(self):
        return self.reader.get_load_count()

    # -- loading -----------------------------------------------------------

    def get(self, oid):
        """The object with ``oid`` (8-byte oid or int), or None if absent."""
        if isinstance(oid, int):
            oid = int8_to_str(oid)
        obj = self.cache.get(oid)
        if obj is not None:
            return obj
        try:
            data = self.get_stored_pickle(oid)
        except KeyError:
            return None
        self.reader.loading_oid = oid
        obj = self.cache.get_instance(oid, self.reader.get_class(data), self)
        if obj._p_status == GHOST:
            obj.__setstate__(self.reader.get_state(data))
            if self.load_snapshots is not None:
                self.load_snapshots.take(obj)
            obj._p_set_status_saved()
        return obj

    __getitem__ = get

    def get_stored_pickle(self, oid):
        """The data field of the stored record of ``oid``."""
        if oid in self.invalid_oids:
            raise ReadConflictError([oid])
        try:
            record = self.storage.load(oid)
        except ReadConflictError:
            # Another client changed objects: learn which, then retry.
            self._handle_invalidations(self.storage.sync(), read_oid=oid)
            record = self.storage.load(oid)
        return record_data(record)

    def load_state(self, obj):
        """Fill the ghost ``obj`` with its stored state."""
        if _raw_get(obj, '_p_status') != GHOST:
            raise StateLoadError('%r is not a ghost' % (obj,))
        oid = _raw_get(obj, '_p_oid')
        try:
            data = self.get_stored_pickle(oid)
        except DurusKeyError:
            # The record is gone (packed away): the cached ghost is stale.
            raise ReadConflictError([oid]) from None
        self.reader.loading_oid = oid
        # Through the type: no bound method to make (this runs per load).
        type(obj).__setstate__(obj, _get_state(self.reader, data))
        # Loaded, as 4.3 leaves it for a direct caller; the hook that asked
        # for the load (Persistent._p_load_state) moves its class on.
        _raw_set(obj, '_p_status', SAVED)
        if self.load_snapshots is not None:
            self.load_snapshots.take(obj)

    def note_access(self, obj):
        _raw_set(obj, '_p_serial', self.transaction_serial)
        self.cache.recent_objects.add(obj)

    def note_change(self, obj):
        if self.reader.refusals and obj._p_oid in self.reader.refusals:
            self._refuse_change(obj)
        if self._observers:
            for observer in self._observers:
                observer.before_change(self, obj)
        self.changed[obj._p_oid] = obj

    def _refuse_change(self, obj):
        # Its record named globals the safe policy refused: the state in
        # memory is not the stored one, so writing it would lose data.
        names = ', '.join(sorted(self.reader.refusals[obj._p_oid]))
        obj._p_set_status_saved()  # _p_note_change marked it first
        raise RefusedValueError(
            'cannot change %r: its record names %s, which the safe '
            'unpickling policy refused to load, so its real state is '
            'unknown; reopen with the trusted policy (durus-shell --trust) '
            'or allow the name to change it' % (obj, names))

    # -- observers ---------------------------------------------------------

    def add_observer(self, observer):
        """Tell ``observer`` (a ``ConnectionObserver``) about changes and
        transactions; see that class.  Costs nothing while none is added."""
        if observer not in self._observers:
            self._observers = self._observers + (observer,)
        return observer

    def remove_observer(self, observer):
        self._observers = tuple(o for o in self._observers
                                if o is not observer)

    def touched_since_last_call(self):
        """The objects read or written since the previous call (or since
        the transaction began), each once, in first-touch order.

        The hooks that noticed them are armed again, so the next read or
        write of each is noticed again.  For tools that want to know what
        a piece of code could have changed without comparing every loaded
        object.  Costs the number of objects returned.
        """
        unhooked = self._unhooked
        self._unhooked = []
        touched = {}
        variants = _variants
        for obj in unhooked:
            key = id(obj)
            if key in touched:
                continue
            touched[key] = obj
            triple = variants.get(type(obj))
            if (triple is None or
                    _raw_get(obj, '_p_connection') is not self or
                    _raw_get(obj, '_p_status') == GHOST):
                refresh_hooks(obj)
            elif type(obj) is not triple[1]:
                _set_type(obj, triple[1])
        return list(touched.values())

    # The compiled twin (durus/_accel.py): the same walk without a frame
    # per object (it runs after every shell statement).
    if _speedups is not None:
        def _compiled_touched(self,
                              _touched=_speedups.touched_since_last_call):
            """The objects read or written since the previous call (see
            the Python twin)."""
            return _touched(self)
    else:
        _compiled_touched = None
    touched_since_last_call = _use_compiled(
        'touched_since_last_call', touched_since_last_call,
        _compiled_touched)
    del _compiled_touched

    def _bind_new_object(self, obj, oid):
        """Give a new object its oid and this connection (during commit)."""
        hook_variants(obj.__class__)  # fail here, before anything is stored
        _set_oid(obj, oid)
        _set_connection(obj, self)
        _set_serial(obj, self.transaction_serial)
        # The object will change type (durus.persistent): swapping types
        # leaves CPython's compact instance dict in a form that reads
        # slowly, so give it a plain dict now.
        try:
            attributes = _raw_get(obj, '__dict__')
        except AttributeError:
            pass
        else:
            _raw_set(obj, '__dict__', dict(attributes))
        cache = self.cache
        objects = cache.objects
        ref = _OidRef(obj, objects._callback)
        ref.key = oid
        objects.mapping[oid] = ref
        cache.recent_objects.map[id(obj)] = obj
        self._unhooked.append(obj)

    # The compiled twins of load_state and _bind_new_object (listed in
    # durus/_accel.py): load_state reads FileStorage records and fills the
    # ghost without Python frames; anything unusual (a conflict, another
    # storage, a missing record) comes back to the Python methods above,
    # which configure_loads is handed for that.
    _compiled = (None, None)
    if _speedups is not None:
        _compiled = _speedups.configure_loads(
            ObjectReader, ObjectReader.get_state,
            ObjectReader._load_state_pickle, _decompress, zlib.error,
            _EMPTY_MEMO, ConnectionBase, load_state, get_stored_pickle,
            _bind_new_object, record_data, class_pickle_end)
    load_state = _use_compiled('load_state', load_state, _compiled[0])
    _bind_new_object = _use_compiled('bind_new_object', _bind_new_object,
                                     _compiled[1])
    del _compiled

    def _unbind_new_object(self, obj):
        self.cache.recent_objects.discard(obj)
        oid = obj._p_oid
        obj._p_oid = None
        obj._p_connection = None
        obj._p_status = UNSAVED
        refresh_hooks(obj)
        del self.cache[oid]

    def get_crawler(self, start_oid=ROOT_OID, batch_size=100):
        """Every object reachable from ``start_oid``, loaded, in storage order."""
        for oid, record in self.storage.gen_oid_record(
                start_oid=start_oid, batch_size=batch_size):
            data = record_data(record)
            self.reader.loading_oid = oid
            obj = self.cache.get_instance(
                oid, self.reader.get_class(data), self)
            if obj._p_status == GHOST:
                obj.__setstate__(self.reader.get_state(data))
                if self.load_snapshots is not None:
                    self.load_snapshots.take(obj)
                obj._p_set_status_saved()
            yield obj

    # -- transactions ------------------------------------------------------

    def shrink_cache(self):
        self.cache.shrink(self)
        snapshots = self.load_snapshots
        if snapshots is not None and len(snapshots) > self.cache.size:
            # Some are surely of ghosts or of objects gone: let them go.
            snapshots.prune()

    def _next_transaction(self):
        self.transaction_serial += 1
        unhooked = self._unhooked
        if unhooked:
            self._unhooked = []
            _rehook(self, unhooked)

    def _sync(self):
        # Conflicting objects were left as they were when the conflict was
        # found; their invalidations are already consumed, so drop them now.
        stale = list(self.invalid_oids)
        stale.extend(self.storage.sync())
        for oid in stale:
            obj = self.cache.get(oid)
            if obj is not None and obj._p_status != GHOST:
                obj._p_set_status_ghost()
        self.invalid_oids.clear()
        return stale

    def _handle_invalidations(self, oids, read_oid=None):
        """Ghost invalidated objects; raise if this transaction used one.

        Unlike Durus 4.3, an object waiting in ``changed`` is always a
        conflict (4.3 could turn it into a ghost and lose the edit).
        """
        conflicts = []
        serial = self.transaction_serial
        for oid in oids:
            obj = self.cache.get(oid)
            if obj is None:
                continue
            if obj._p_serial == serial or oid in self.changed:
                self.invalid_oids.add(oid)
                conflicts.append(oid)
            elif obj._p_status != GHOST:
                obj._p_set_status_ghost()
        if conflicts:
            if read_oid is None:
                raise WriteConflictError(conflicts)
            raise ReadConflictError([read_oid])

    def abort(self):
        """Drop every uncommitted change and start a new transaction."""
        for obj in self.changed.values():
            obj._p_set_status_ghost()
        self.changed.clear()
        invalidated = self._sync()
        self.shrink_cache()
        self._next_transaction()
        for observer in self._observers:
            observer.after_abort(self, invalidated)

    def forget_loaded_states(self):
        """Drop every change and make every loaded object a ghost, then
        start a new transaction; returns the oids made ghosts.

        For a storage whose invalidations were lost (a ClientStorage
        after ``reconnect()``): no state loaded before can be trusted, so
        each object reads its record again when next used.  Observers
        see it as an abort (``after_abort``).  An addition to Durus 4.3.
        """
        for obj in self.changed.values():
            obj._p_set_status_ghost()
        self.changed.clear()
        self.invalid_oids.clear()
        forgotten = []
        for obj in list(self.cache):
            if obj._p_oid is not None and obj._p_status != GHOST:
                obj._p_set_status_ghost()
                forgotten.append(obj._p_oid)
        self.shrink_cache()
        self._next_transaction()
        for observer in self._observers:
            observer.after_abort(self, forgotten)
        return forgotten

    def commit(self):
        """Store every changed object (and new objects they reach).

        Observers are asked first (``before_commit``); one that refuses
        stops the commit before anything is stored, and the connection
        stays exactly as it was (``CommitVetoedError``).
        """
        written = []
        if self.changed:
            for observer in self._observers:
                reason = observer.before_commit(self)
                if reason:
                    raise CommitVetoedError(reason)
            written = self._commit()
            if self.load_snapshots is not None:
                # Their records now hold the states in memory.
                take = self.load_snapshots.take
                for obj in written:
                    take(obj)
        else:
            self._sync()
        # Shrinking only when it can do something (the cache's own test,
        # without two calls).
        cache = self.cache
        if cache.objects.dead or len(cache.objects.mapping) > cache.size:
            self.shrink_cache()
        self._next_transaction()
        for observer in self._observers:
            observer.after_commit(self, written)

    def _commit(self):
        if self.invalid_oids:
            raise StillConflictedError(
                'still conflicted: call abort() before committing again')
        storage = self.storage
        # The previous commit's writer, kept (None while a commit uses it).
        writer, self._writer = self._writer, None
        if writer is None:
            writer = ObjectWriter(self)
        written = []
        try:
            storage.begin()
            _write_found(self, writer, list(self.changed.values()),
                         storage.store, written)
            storage.end(self._handle_invalidations)
        except BaseException:
            for obj in writer.new_objects:
                self._unbind_new_object(obj)
            writer.close()
            raise
        if writer.ready_again():
            self._writer = writer
        else:
            writer.close()
        for obj in written:
            _set_status(obj, SAVED)
        # Their hook variants are brought up to date when the transaction
        # ends, right after this (new objects are already listed).
        self._unhooked.extend(self.changed.values())
        self.changed.clear()
        return written

    def pack(self):
        self.abort()
        self.storage.pack()


def _py_rehook(connection, unhooked):
    """At the end of a transaction: the objects it bound or changed get
    the hook variant that watches them again."""
    variants = _variants
    for obj in unhooked:
        # refresh_hooks, inlined: a bound object has not been accessed in
        # the new transaction, so it is watched.
        triple = variants.get(type(obj))
        if (triple is None or
                _raw_get(obj, '_p_connection') is not connection):
            refresh_hooks(obj)
        elif type(obj) is not triple[1]:
            _set_type(obj, triple[1])


# The same, or its compiled twin (durus/_accel.py).
_rehook = _use_compiled('rehook', _py_rehook)


def _py_write_found(connection, writer, roots, store, written):
    """A commit's loop: write each of ``roots`` (the changed objects)
    and every new object found while writing them, ``store(oid, record)``
    each one, and list it in ``written``."""
    serial = connection.transaction_serial
    get_record = writer.get_record
    for changed in roots:
        for obj in writer.gen_new_objects(changed):
            if obj._p_serial != serial:
                connection.note_access(obj)
            store(obj._p_oid, get_record(obj))
            written.append(obj)


# The same, or its compiled twin (durus/_accel.py).
if _speedups is not None:
    _speedups.set_write_found(_py_write_found)
_write_found = _use_compiled('write_found', _py_write_found)


class _OidRef(weakref.ref):
    """A weak reference that remembers the oid it is filed under."""

    # Cheaper to create than weakref.KeyedRef (no Python __new__/__init__).
    __slots__ = ('key',)




class ObjectDictionary(object):
    """oid -> object, holding only weak references.

    Entries of objects that died are recorded by the weakref callback and
    removed at the next count or iteration (never during a callback).
    """

    def __init__(self):
        self.mapping = {}
        self.dead = []
        # One bound method for every weakref (not one per object); public
        # as `callback` like 4.3's.
        self.callback = self._callback = self._died

    def _died(self, ref, _append=None):
        self.dead.append(ref.key)

    def _purge(self):
        dead = self.dead
        if not dead:
            return
        self.dead = []
        mapping = self.mapping
        for oid in dead:
            ref = mapping.get(oid)
            if ref is not None and ref() is None:
                del mapping[oid]

    def get(self, key, default=None):
        ref = self.mapping.get(key)
        if ref is None:
            return default
        obj = ref()
        if obj is None:
            return default
        return obj

    def __setitem__(self, key, value):
        ref = _OidRef(value, self._callback)
        ref.key = key
        self.mapping[key] = ref

    def __delitem__(self, key):
        del self.mapping[key]

    def __contains__(self, key):
        return self.get(key) is not None

    def __len__(self):
        self._purge()
        return len(self.mapping)

    def clear_dead(self):
        """Drop the entries of objects that died."""
        self._purge()

    def __iter__(self):
        """The oids of live objects."""
        self._purge()
        for oid, ref in list(self.mapping.items()):
            if ref() is not None:
                yield oid


class ReferenceContainer(object):
    """Strong references to objects, keyed by ``id()``."""

    def __init__(self):
        self.map = {}

    def add(self, x):
        self.map[id(x)] = x

    def discard(self, x):
        self.map.pop(id(x), None)

    def __contains__(self, obj):
        return id(obj) in self.map

    def __len__(self):
        return len(self.map)

    def __iter__(self):
        return iter(list(self.map.values()))


if _speedups is not None:
    _speedups.set_ref_type(_OidRef)
    # The compiled note_read stamps and lists accessed objects itself
    # while these two are the ones in use.
    _speedups.set_access_note(Connection.note_access, ReferenceContainer)


def _prune_floor(cache_size):
    # The cache may hold cache_size loaded objects between shrinks (which
    # prune, see shrink_cache): pruning the snapshots of a store smaller
    # than twice that would mostly keep everything, and each prune reads
    # every snapshotted object (a third of what snapshots cost a cold
    # load of 100k objects, bench/workloads/shell_after_load.py).
    return max(PRUNE_MINIMUM, 2 * cache_size)


class Cache(object):
    """The objects of one connection: weakly by oid, strongly if recent.

    ``shrink`` ghosts the least recently accessed SAVED objects and drops
    strong references until at most ``size`` objects are alive.  Objects
    accessed in the current transaction are skipped and UNSAVED objects
    are never ghosted, so shrinking never loses a change.
    """

    def __init__(self, size):
        self.objects = ObjectDictionary()
        self.recent_objects = ReferenceContainer()
        self.finger = 0
        self.set_size(size)

    def get_size(self):
        return self.size

    def set_size(self, size):
        if size <= 0:
            raise ValueError('cache size must be positive, not %r' % (size,))
        self.size = size

    def get_count(self):
        return len(self.objects)

    def get(self, oid):
        return self.objects.get(oid)

    def __setitem__(self, key, obj):
        self.objects[key] = obj

    def __delitem__(self, key):
        obj = self.objects.get(key)
        if obj is not None and obj._p_oid is not None:
            raise ValueError('remove the oid of %r before dropping it from '
                             'the cache' % (obj,))
        del self.objects[key]

    def __iter__(self):
        for oid in self.objects:
            obj = self.objects.get(oid)
            if obj is not None:
                yield obj

    def get_instance(self, oid, klass, connection):
        """The cached object of ``oid`` if of class ``klass``, else a new
        ghost."""
        objects = self.objects
        ref = objects.mapping.get(oid)
        if ref is not None:
            obj = ref()
            if obj is not None and (type(obj) is klass or obj.__class__ is klass):
                return obj
        watched = (_variants.get(klass) or hook_variants(klass))[1]
        if klass.__new__ is _base_new:
            # The common case, without PersistentBase.__new__'s Python
            # frame; a fresh object has no state to drop.
            obj = _object_new(watched)
            _set_serial(obj, 0)
        else:
            obj = klass.__new__(klass)
            _set_type(obj, watched)
        _set_oid(obj, oid)
        _set_connection(obj, connection)
        _set_status(obj, GHOST)
        ref = _OidRef(obj, objects._callback)
        ref.key = oid
        objects.mapping[oid] = ref
        return obj

    # The compiled twin (durus/_accel.py): same steps, no Python frames.
    if _speedups is not None:
        def _compiled_get_instance(self, oid, klass, connection,
                                   _get=_speedups.get_instance):
            """The cached object of ``oid`` if of class ``klass``, else a new ghost."""
            return _get(self.objects, oid, klass, connection)
    else:
        _compiled_get_instance = None
    get_instance = _use_compiled('get_instance', get_instance,
                                 _compiled_get_instance)
    del _compiled_get_instance

    def shrink(self, connection):
        objects = self.objects
        if not objects.dead and len(objects.mapping) <= self.size:
            return  # the usual case after a commit: nothing to do
        count = self.get_count()
        excess = count - self.size
        if excess <= 0:
            return
        serial = connection.transaction_serial
        oids = list(self.objects.mapping)
        total = len(oids)
        start = self.finger % total if total else 0
        wanted = 2 * excess
        heap = []
        get = self.objects.get
        scanned = 0
        position = start
        while scanned < total and len(heap) < wanted:
            oid = oids[position]
            position += 1
            if position == total:
                position = 0
            scanned += 1
            obj = get(oid)
            if obj is None or obj._p_serial == serial:
                continue
            heap.append((obj._p_serial, oid))
        self.finger = position
        heapq.heapify(heap)
        recent = self.recent_objects
        while heap and len(self.objects) > self.size:
            oid = heapq.heappop(heap)[1]
            obj = get(oid)
            if obj is None:
                continue
            if obj._p_status == SAVED:
                obj._p_set_status_ghost()
            recent.discard(obj)
            del obj


def touch_every_reference(connection, *words):
    """Mark changed every object whose record mentions one of ``words``.

    Use after renaming a class or module, then commit: the records are
    rewritten with the new names.
    """
    needles = [word.encode('latin-1') if isinstance(word, str) else word
               for word in words]
    reader = connection.reader
    for oid, record in connection.storage.gen_oid_record():
        data = record_data(record)
        texts = (data, reader.get_state_pickle(data))
        if any(needle in text for needle in needles for text in texts):
            connection.get(oid)._p_note_change()


def gen_every_instance(connection, *classes):
    """Every stored object that is an instance of one of ``classes``."""
    reader = connection.reader
    for oid, record in connection.storage.gen_oid_record():
        data = record_data(record)
        reader.loading_oid = oid
        if issubclass(reader.get_class(data), classes):
            yield connection.get(oid)


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
from durus.serialize import unpack_record  # noqa: E402,F401
from durus.utils import as_bytes, byte_string, iteritems  # noqa: E402,F401
