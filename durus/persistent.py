"""Persistent objects: the base classes and the state machine they follow.

Every persistent object carries four slots: ``_p_oid`` (8-byte oid or
None), ``_p_connection`` (the Connection it belongs to, or None),
``_p_status`` and ``_p_serial`` (the connection's ``transaction_serial``
when the object was last accessed).

State machine (``_p_status``)::

    (new) ----------------------------------------------> UNSAVED
    UNSAVED --record stored by commit / state loaded----> SAVED
    SAVED   --_p_note_change() (hooked set/del, mutator)-> UNSAVED
    GHOST   --hooked get: connection.load_state(obj)----> SAVED
    GHOST   --_p_note_change(): load, then mark---------> UNSAVED
    SAVED   --cache shrink, invalidation, sync----------> GHOST
    UNSAVED --abort() of a changed object---------------> GHOST
    new and bound by a commit that failed with a ConflictError
            --unbound again (oid None, no connection)---> UNSAVED

A GHOST keeps its oid and connection but no state; the first hooked
attribute read loads it.  Each hooked read of an object whose
``_p_serial`` differs from ``connection.transaction_serial`` calls
``connection.note_access(obj)``, which stamps the serial: that is how the
connection knows what the current transaction has read (conflicts) and
what it has not used lately (cache shrinking).  Names starting with
``_p_`` and ``__repr__``, ``__class__``, ``__setstate__`` are exempt.

How the hooks stay cheap (the one idea of this module): hooks run only
while they have something to do.  An object's type is one of three
variants of its class, chosen by ``refresh_hooks`` from its state:

* the *watched* variant (get, set and del hooked): ghosts, and bound
  objects not yet accessed in the current transaction;
* the *saved* variant (set and del hooked): bound SAVED objects already
  accessed in the current transaction;
* the class itself (no hooks): unbound objects, and bound UNSAVED objects
  already accessed in the current transaction.

The two variants are subclasses that add no storage, share the class's
name and module and report the class itself as ``obj.__class__``; only
``type(obj)`` can tell them apart.  A Connection that supports this
(``connection._unhooked`` is a list) records every object that left the
watched variant and puts it back when ``transaction_serial`` changes.
Deviation from Durus 4.3: a hooked *set* also notes the access.
"""

import copyreg
import struct
from abc import ABCMeta
from sys import intern as _intern

from durus._accel import speedups as _speedups, use as _use_compiled
from durus.error import StateLoadError

GHOST = -1
UNSAVED = 1
SAVED = 0

_EXEMPT = frozenset(['__repr__', '__class__', '__setstate__'])

_raw_get = object.__getattribute__
_raw_set = object.__setattr__
_raw_del = object.__delattr__
_set_type = object.__dict__['__class__'].__set__
_unpack_oid = struct.Struct('>Q').unpack


class PersistentBase(object):
    """The four ``_p_`` slots every persistent object has."""

    __slots__ = ['_p_status', '_p_serial', '_p_connection', '_p_oid']

    def __new__(cls, *args, **kwargs):
        obj = _object_new(cls)
        # Slot setters: no __setattr__ of the class in the way.
        _init_status(obj, UNSAVED)
        _init_serial(obj, 0)
        _init_connection(obj, None)
        _init_oid(obj, None)
        return obj


_object_new = object.__new__
_init_status = PersistentBase._p_status.__set__
_init_serial = PersistentBase._p_serial.__set__
_init_connection = PersistentBase._p_connection.__set__
_init_oid = PersistentBase._p_oid.__set__


class ConnectionBase(object):
    """What persistent objects need from a connection: a serial number.

    Subclasses provide ``load_state(obj)``, ``note_access(obj)`` and
    ``note_change(obj)``.  ``_unhooked`` is None unless the subclass
    takes part in hook switching (see the module docstring).
    """

    # A class-level default, so ConnectionBase.transaction_serial exists as
    # in 4.3 (a slot there); __new__ gives each connection its own.
    transaction_serial = 1

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.transaction_serial = 1
        self._unhooked = None
        return self


# real class -> [real class, watched variant, saved variant or None until
# first needed, function that makes it]; the variants map to the same list.
_variants = {}


def _class_property():
    def get_class(self):
        return _variants[type(self)][0]

    def set_class(self, cls):
        _set_type(self, cls)
        refresh_hooks(self)
    return property(get_class, set_class)


def _make_variants(cls):
    """Create (once) the watched and saved variants of a persistent class."""
    if cls in _variants:
        return _variants[cls]
    real_get = cls.__getattribute__
    real_set = cls.__setattr__
    real_del = cls.__delattr__

    def watched_getattribute(self, name):
        if name[:3] != '_p_' and name not in _EXEMPT:
            _note_read(self)
        return real_get(self, name)

    def hooked_setattr(self, name, value):
        if name[:3] != '_p_' and name not in _EXEMPT:
            _note_write(self)
        real_set(self, name, value)

    def hooked_delattr(self, name):
        _note_write(self)
        real_del(self, name)

    if _fast_getattribute is not None and real_get is _object_getattribute:
        # The compiled twin of watched_getattribute (csrc/).
        watched = _fast_getattribute
    else:
        watched = watched_getattribute

    def make(getattribute):
        namespace = {
            '__slots__': (),
            '__module__': cls.__module__,
            '__qualname__': cls.__qualname__,
            '__doc__': cls.__doc__,
            '__class__': _class_property(),
            '__setattr__': hooked_setattr,
            '__delattr__': hooked_delattr,
        }
        if getattribute is not None:
            namespace['__getattribute__'] = getattribute
        return _new_hidden_subclass(cls, namespace)

    def checked_make(getattribute):
        try:
            return make(getattribute)
        except Exception as error:
            # Without the variants changes would go unnoticed: refuse loudly.
            raise TypeError('cannot track changes of persistent class %s.%s: '
                            'subclassing it failed (%s); make it subclassable '
                            'without arguments' % (cls.__module__,
                                                   cls.__qualname__, error)
                            ) from error

    def make_saved():
        saved = checked_make(None)
        triple[2] = saved
        _variants[saved] = triple
        return saved

    # The saved variant is made when first needed (refresh_hooks): most
    # classes an open meets appear as ghosts only, and making a class
    # costs tens of microseconds.  One list, shared by all the keys.
    triple = [cls, checked_make(watched), None, make_saved]
    _variants[cls] = _variants[triple[1]] = triple
    return triple


_MISSING = object()
_object_getattribute = object.__getattribute__
# The compiled watched __getattribute__, set at the end of this module
# when durus._speedups runs (durus/_accel.py).
_fast_getattribute = None


def _ignore_subclass(cls, **kwargs):
    pass


def _new_hidden_subclass(cls, namespace):
    """A subclass of ``cls`` that the application's own hooks never see.

    Variants are an implementation detail: an ``__init_subclass__`` or a
    metaclass ``__init__`` that registers subclasses (plugin registries,
    ORMs) must not meet them, so both are bypassed while it is made.
    """
    meta = type(cls)
    own_hook = cls.__dict__.get('__init_subclass__', _MISSING)
    type.__setattr__(cls, '__init_subclass__', classmethod(_ignore_subclass))
    try:
        if meta is type or meta is ABCMeta:
            # Their __new__ has no side effects; ABCMeta's sets up the
            # abstract-class bookkeeping the containers rely on.
            return meta(cls.__name__, (cls,), namespace)
        return type.__new__(meta, cls.__name__, (cls,), namespace)
    finally:
        if own_hook is _MISSING:
            type.__delattr__(cls, '__init_subclass__')
        else:
            type.__setattr__(cls, '__init_subclass__', own_hook)


def hook_variants(cls):
    """``[cls, watched variant, saved variant or None, maker of the saved
    variant]``, created on first use (the saved variant on first need)."""
    return _variants.get(cls) or _make_variants(cls)


def refresh_hooks(obj):
    """Give ``obj`` the type variant its state calls for (module docstring)."""
    cls = type(obj)
    triple = _variants.get(cls) or _make_variants(cls)
    status = _raw_get(obj, '_p_status')
    connection = _raw_get(obj, '_p_connection')
    if status == GHOST:
        wanted = triple[1]
    elif connection is None:
        wanted = triple[0]
    else:
        unhooked = getattr(connection, '_unhooked', None)
        if (unhooked is None or
                _raw_get(obj, '_p_serial') != connection.transaction_serial):
            wanted = triple[1]
        else:
            if status == SAVED:
                wanted = triple[2] or triple[3]()
            else:
                wanted = triple[0]
            if wanted is not cls:
                # Listed (possibly twice) to be hooked again when the
                # transaction ends.
                unhooked.append(obj)
    if wanted is not cls:
        _set_type(obj, wanted)


def _note_read(obj):
    connection = _raw_get(obj, '_p_connection')
    if _raw_get(obj, '_p_status') == GHOST:
        if (connection is not None and
                type(obj)._p_load_state is _standard_load_state):
            # PersistentObject._p_load_state without its frame (this runs
            # for every object load).
            connection.load_state(obj)
            _raw_set(obj, '_p_status', SAVED)
        else:
            _raw_get(obj, '_p_load_state')()
            connection = _raw_get(obj, '_p_connection')
    if (connection is not None and
            _raw_get(obj, '_p_serial') != connection.transaction_serial):
        connection.note_access(obj)
    refresh_hooks(obj)


def _note_write(obj):
    if _raw_get(obj, '_p_status') != UNSAVED:
        obj._p_note_change()
    connection = _raw_get(obj, '_p_connection')
    if (connection is not None and
            _raw_get(obj, '_p_serial') != connection.transaction_serial):
        connection.note_access(obj)
    refresh_hooks(obj)


def _slot_names(cls):
    """Data slot names declared by ``cls`` and its bases (mangled)."""
    names = []
    for klass in cls.__mro__:
        if klass is PersistentBase or klass is object:
            continue
        slots = klass.__dict__.get('__slots__', ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name in ('__weakref__', '__dict__'):
                continue
            if name.startswith('__') and not name.endswith('__'):
                name = '_%s%s' % (klass.__name__.lstrip('_'), name)
            if name not in names:
                names.append(name)
    return tuple(names)


_slot_cache = {}


def data_slot_names(cls):
    """Names of the data slots of a persistent class (what a state holds
    besides ``__dict__``), mangled, without ``__weakref__``/``__dict__``
    and the ``_p_`` slots.  Cached; hook variants map to their class."""
    real = _variants[cls][0] if cls in _variants else cls
    try:
        return _slot_cache[real]
    except KeyError:
        names = _slot_cache[real] = _slot_names(real)
        return names


class PersistentObject(PersistentBase):
    """Base for persistent classes; subclasses may use ``__slots__``.

    The state is a dict of the instance ``__dict__`` (if any) and every
    data slot that holds a value.
    """

    __slots__ = ['__weakref__']

    def __getstate__(self):
        state = {}
        try:
            state.update(_raw_get(self, '__dict__'))
        except AttributeError:
            pass
        for name in data_slot_names(type(self)):
            try:
                state[name] = _raw_get(self, name)
            except AttributeError:
                pass
        return state

    def __setstate__(self, state):
        try:
            _raw_get(self, '__dict__').clear()
        except AttributeError:
            pass
        for name in data_slot_names(type(self)):
            try:
                _raw_del(self, name)
            except AttributeError:
                pass
        if state is not None:
            for name, value in state.items():
                _raw_set(self, name, value)

    def __reduce_ex__(self, protocol):
        # Plain pickling (outside Durus) copies the state by value and
        # names the class itself, never a hook variant.
        if type(self).__reduce__ is not object.__reduce__:
            return self.__reduce__()
        return (copyreg.__newobj__, (self.__class__,), self.__getstate__())

    def __repr__(self):
        oid = _raw_get(self, '_p_oid')
        name = self.__class__.__name__
        if oid is None:
            return '<%s @%x>' % (name, id(self))
        return '<%s %s>' % (name, int.from_bytes(oid, 'big'))

    def _p_load_state(self):
        # Raw slot access: this runs for every load, often from a hook.
        if _raw_get(self, '_p_status') != GHOST:
            raise StateLoadError('%r is not a ghost: its state is already '
                                 'loaded' % (self,))
        connection = _raw_get(self, '_p_connection')
        if connection is None:
            raise StateLoadError('%r is a ghost without a connection: '
                                 'nothing to load its state from' % (self,))
        connection.load_state(self)
        # Still the watched variant, which is always safe; the hook that
        # asked for the load moves it on.
        _raw_set(self, '_p_status', SAVED)

    def _p_note_change(self):
        if self._p_status != UNSAVED:
            self._p_set_status_unsaved()
            connection = self._p_connection
            if connection is not None:
                connection.note_change(self)

    def _p_format_oid(self):
        """The oid as a decimal string; as in 4.3, a falsy oid (None, b'')
        is shown by its str(), a str oid is read as latin-1 bytes and an
        oid of the wrong length raises struct.error."""
        oid = self._p_oid
        if not oid:
            return str(oid)
        if isinstance(oid, str):
            oid = oid.encode('latin-1')
        return str(_unpack_oid(oid)[0])

    def _p_set_status_ghost(self):
        self.__setstate__({})
        self._p_status = GHOST
        refresh_hooks(self)

    def _p_set_status_saved(self):
        self._p_status = SAVED
        refresh_hooks(self)

    def _p_set_status_unsaved(self):
        if self._p_status == GHOST:
            self._p_load_state()
        self._p_status = UNSAVED
        refresh_hooks(self)

    def _p_is_ghost(self):
        return self._p_status == GHOST

    def _p_is_saved(self):
        return self._p_status == SAVED

    def _p_is_unsaved(self):
        return self._p_status == UNSAVED

    def _p_gen_data_slots(self):
        for name in data_slot_names(type(self)):
            try:
                _raw_get(self, name)
            except AttributeError:
                continue
            yield name


_standard_load_state = PersistentObject._p_load_state


class Persistent(PersistentObject):
    """The classic persistent base: the state is the instance ``__dict__``."""

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        # A new dict rather than clear() and update(), with interned keys:
        # CPython's fast attribute reads need a combined key table and
        # match keys by identity (unpickled strings are not interned).
        if not state:
            _raw_set(self, '__dict__', {})
            return
        attributes = {}
        try:
            for key, value in state.items():
                attributes[_intern(key)] = value
        except TypeError:
            # A key that is not an exact str.
            attributes = {_intern(key) if type(key) is str else key: value
                          for key, value in state.items()}
        _raw_set(self, '__dict__', attributes)


class ComputedAttribute(PersistentObject):
    """A value computed on demand whose validity is shared through its oid.

    The value is never stored (the state is None).  ``invalidate()``
    writes an empty record at the next commit, which makes every other
    connection drop its copy and compute the value again.
    """

    __slots__ = ['value']

    def __getstate__(self):
        return None

    def _p_load_state(self):
        # Nothing to read: a ComputedAttribute has no stored state.
        self._p_status = SAVED
        refresh_hooks(self)

    def get(self, compute):
        try:
            return _raw_get(self, 'value')
        except AttributeError:
            value = compute()
            _raw_set(self, 'value', value)
            return value

    def invalidate(self):
        try:
            _raw_del(self, 'value')
        except AttributeError:
            pass
        self._p_note_change()


# The compiled twins (listed in durus/_accel.py) replace the hot functions
# when durus._speedups runs; the Python versions stay as the fallback they
# call for unusual cases.  __new__ first: configure() takes the one it
# finds as the standard.
PersistentBase.__new__ = staticmethod(
    _use_compiled('persistent_new', PersistentBase.__new__))
_configured = (None, None)
if _speedups is not None:
    _configured = _speedups.configure(
        PersistentBase, _variants, _EXEMPT, _standard_load_state, _note_read,
        refresh_hooks, hook_variants, Persistent.__setstate__)
_fast_getattribute = _use_compiled('watched_getattribute', None,
                                   _configured[0])
Persistent.__setstate__ = _use_compiled(
    'persistent_setstate', Persistent.__setstate__, _configured[1])
_note_read = _use_compiled('note_read', _note_read)
refresh_hooks = _use_compiled('refresh_hooks', refresh_hooks)
del _configured


def _setattribute(obj, name, value):
    """Set an attribute with no load and no access/change tracking."""
    _raw_set(obj, name, value)


def _getattribute(obj, name):
    """Read an attribute with no load and no access tracking."""
    return _raw_get(obj, name)


def _delattribute(obj, name):
    """Delete an attribute with no load and no change tracking."""
    _raw_del(obj, name)


def _hasattribute(obj, name):
    """Whether ``obj`` has ``name`` without loading or tracking."""
    try:
        _raw_get(obj, name)
    except AttributeError:
        return False
    return True


def call_if_persistent(f, x):
    """``f(x)`` if ``x`` is persistent, else None."""
    if isinstance(x, PersistentBase):
        return f(x)
    return None


def peek(obj, name):
    """Read ``obj.name`` without counting it as an access.

    A ghost is loaded (its state is read from storage) but is not stamped
    as accessed by the current transaction, so it takes no part in
    conflict detection and stays first in line for cache shrinking.  For
    tools (the shell's completion) that look around a database without
    being part of the application's transaction.
    """
    if _raw_get(obj, '_p_status') == GHOST:
        connection = _raw_get(obj, '_p_connection')
        if connection is None:
            raise StateLoadError('%r is a ghost without a connection'
                                 % (obj,))
        connection.load_state(obj)
        _raw_set(obj, '_p_status', SAVED)
        refresh_hooks(obj)
    return _raw_get(obj, name)


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
from durus.utils import as_bytes, iteritems, str_to_int8  # noqa: E402,F401
