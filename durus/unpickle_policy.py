"""Which globals a record's pickles may name: the unpickling policy.

A pickle runs code through the globals it names (``REDUCE``, ``NEWOBJ``,
``INST``/``OBJ`` call them).  ``durus.serialize.ObjectReader`` resolves
every global of every record through one ``UnpicklePolicy``:

* ``trusted`` (the default, Durus 4.3's behaviour): any importable global.
* ``safe``: only *classes* from an allowed set: persistent classes
  (subclasses of ``PersistentBase``), enum classes that have members, the
  plain value types in ``PLAIN_VALUE_TYPES``, and the names allowed with
  ``allow`` / ``UnpicklePolicy.safe(allow=...)`` / the ``DURUS_ALLOW``
  environment variable.  Reconstructor helpers (``copyreg._reconstructor``,
  ``copyreg.__newobj__``, ``copyreg.__newobj_ex__``) are wrapped: they run
  only for allowed classes.  A standard-library module outside that set is
  never imported at all (some, like ``antigravity``, act when imported).

A refused global either raises ``RefusedGlobalError`` (naming
``module.name`` and the record's oid) or, with ``placeholders=True``, turns
into a stand-in (``is_refused(value)``) that shows as ``<refused
module.name in oid N>`` and cannot be stored again.
"""

import copyreg
import enum
import os
import sys

from durus.error import RefusedValueError
from durus.persistent import Persistent, PersistentBase, _getattribute
from durus.utils import str_to_int8

TRUSTED = 'trusted'
SAFE = 'safe'
ALLOW_ENVIRONMENT_VARIABLE = 'DURUS_ALLOW'

# Plain value types: classes whose construction from pickled arguments
# runs no code a database could choose.
PLAIN_VALUE_TYPES = frozenset([
    ('builtins', name) for name in (
        'object', 'dict', 'list', 'tuple', 'set', 'frozenset', 'bytes',
        'bytearray', 'str', 'int', 'float', 'complex', 'bool', 'range',
        'slice')] + [
    ('datetime', name) for name in (
        'date', 'time', 'datetime', 'timedelta', 'timezone', 'tzinfo')] + [
    ('collections', name) for name in (
        'OrderedDict', 'deque', 'defaultdict', 'Counter', 'ChainMap')] + [
    ('ipaddress', name) for name in (
        'IPv4Address', 'IPv6Address', 'IPv4Network', 'IPv6Network',
        'IPv4Interface', 'IPv6Interface')] + [
    ('decimal', 'Decimal'), ('fractions', 'Fraction'), ('uuid', 'UUID'),
    ('uuid', 'SafeUUID'), ('array', 'array'),
])

# Constants that are not classes but are harmless to name.
PLAIN_CONSTANTS = frozenset([('builtins', 'Ellipsis'),
                             ('builtins', 'NotImplemented')])

# Functions that are harmless whatever their arguments.  ``_codecs.encode``
# is how protocol-2 pickles spell every bytes value; it only reaches
# codecs in the registry (the encodings package imports nothing but its
# own ``encodings.<name>`` modules), and encoding is a pure transform.
HARMLESS_FUNCTIONS = frozenset([('_codecs', 'encode')])

# Names allowed by every safe policy made after the call (``allow``).
_extra_allowed = set()

_STDLIB = frozenset(getattr(sys, 'stdlib_module_names', ())) | frozenset(
    sys.builtin_module_names)


def parse_allowed_name(text):
    """``'module:name'`` (or ``'module.name'`` when unambiguous) ->
    ``(module, name)``; ValueError when malformed."""
    text = text.strip()
    if ':' in text:
        module, _, name = text.partition(':')
    else:
        module, _, name = text.rpartition('.')
    if not module or not name or ' ' in text:
        raise ValueError('%r is not a global name: write module:name, '
                         'e.g. myapp.points:Point' % (text,))
    return module, name


def allowed_from_environment(environ=None):
    """The names in ``DURUS_ALLOW`` (comma or space separated)."""
    text = (os.environ if environ is None else environ).get(
        ALLOW_ENVIRONMENT_VARIABLE, '')
    return [parse_allowed_name(part)
            for part in text.replace(',', ' ').split() if part]


def allow(*names):
    """Allow more globals (``'module:name'``) in every safe policy made
    from now on: for applications whose values have their own reducers."""
    _extra_allowed.update(parse_allowed_name(name) for name in names)


class UnpicklePolicy(object):
    """What a reader may resolve; see the module docstring.

    ``UnpicklePolicy.trusted()`` or ``UnpicklePolicy.safe(allow=(),
    placeholders=False)``; ``Connection(..., unpickle_policy='safe')``
    makes the latter.
    """

    def __init__(self, trusted, allow=(), placeholders=False,
                 use_environment=True):
        self.trusted = bool(trusted)
        self.placeholders = bool(placeholders)
        names = set(_extra_allowed)
        if use_environment:
            names.update(allowed_from_environment())
        names.update(parse_allowed_name(n) if isinstance(n, str) else tuple(n)
                     for n in allow)
        self.allowed = frozenset(names)

    @classmethod
    def safe(cls, allow=(), placeholders=False, use_environment=True):
        return cls(False, allow, placeholders, use_environment)

    @classmethod
    def from_argument(cls, value):
        """A policy from ``None``/``'trusted'``/``'safe'``/a policy."""
        if value is None or value == TRUSTED:
            return cls(True)
        if value == SAFE:
            return cls(False)
        if isinstance(value, cls):
            return value
        raise ValueError('unpickle_policy must be %r, %r or an '
                         'UnpicklePolicy, not %r' % (TRUSTED, SAFE, value))

    @property
    def name(self):
        return TRUSTED if self.trusted else SAFE

    def __repr__(self):
        return '<UnpicklePolicy %s%s>' % (
            self.name, ' allow=%s' % sorted(self.allowed)
            if self.allowed and not self.trusted else '')

    # -- deciding -----------------------------------------------------------

    def may_import(self, module, name):
        """False when ``module`` must not even be imported: a
        standard-library module none of whose names is allowed."""
        if (module, name) in self.allowed or (
                (module, name) in PLAIN_VALUE_TYPES or
                (module, name) in PLAIN_CONSTANTS or
                (module, name) in HARMLESS_FUNCTIONS):
            return True
        if module.endswith('.__main__'):
            return False  # a package's command line: runs when imported
        return module.partition('.')[0] not in _STDLIB

    def allows(self, module, name, value, persistent):
        """True if ``value`` (what ``module.name`` imported as) may be used.

        ``persistent`` is True for record classes, which must be
        persistent classes.
        """
        if persistent:
            return isinstance(value, type) and issubclass(value,
                                                          PersistentBase)
        key = (module, name)
        if key in self.allowed:
            return True
        if not isinstance(value, type):
            return key in PLAIN_CONSTANTS or key in HARMLESS_FUNCTIONS
        if key in PLAIN_VALUE_TYPES or issubclass(value, PersistentBase):
            return True
        return issubclass(value, enum.Enum) and bool(value._member_map_)

    def allows_class(self, cls):
        """True if a class object found inside a pickle may be rebuilt."""
        if not isinstance(cls, type):
            return False
        if issubclass(cls, PersistentBase):
            return True
        key = (cls.__module__, cls.__qualname__)
        if key in self.allowed or key in PLAIN_VALUE_TYPES:
            return True
        return issubclass(cls, enum.Enum) and bool(cls._member_map_)


def format_oid(oid):
    if isinstance(oid, (bytes, bytearray)) and len(oid) == 8:
        return str(str_to_int8(oid))
    return '?'


# ---------------------------------------------------------------------------
# Stand-ins for refused globals.

class RefusedGlobal(type):
    """The metaclass of refused-global stand-ins.

    A stand-in is a class (``NEWOBJ`` needs one) that answers every way a
    pickle uses a global (call, ``__new__``, ``BUILD``, appends, item
    sets) by returning or absorbing into itself, so the rest of the state
    still loads.  It cannot be pickled: an object holding one cannot be
    stored (``RefusedValueError``).
    """

    def __repr__(cls):
        return '<refused %s in oid %s>' % (cls.refused_global,
                                           format_oid(cls.refused_oid))

    __str__ = __repr__

    def __eq__(cls, other):
        # Stand-ins for the same refusal are equal: reading a record
        # twice must not look like a change.
        if not isinstance(other, RefusedGlobal):
            return NotImplemented
        return (cls.refused_global == other.refused_global and
                cls.refused_oid == other.refused_oid)

    def __ne__(cls, other):
        result = RefusedGlobal.__eq__(cls, other)
        return result if result is NotImplemented else not result

    def __hash__(cls):
        return hash((cls.refused_global, cls.refused_oid))

    def __call__(cls, *args, **kw):
        return cls

    def __setitem__(cls, key, value):
        pass


class _RefusedBase(object, metaclass=RefusedGlobal):
    refused_global = '?'
    refused_oid = None

    def __new__(cls, *args, **kw):
        return cls

    @classmethod
    def __setstate__(cls, state):
        pass

    @classmethod
    def append(cls, item):
        pass

    @classmethod
    def extend(cls, items):
        pass

    @classmethod
    def add(cls, item):
        pass


def make_refused(module, name, oid):
    """A new stand-in for ``module.name`` refused in record ``oid``."""
    return RefusedGlobal('refused', (_RefusedBase,), {
        'refused_global': '%s.%s' % (module, name), 'refused_oid': oid,
        '__module__': __name__, '__slots__': ()})


def is_refused(value):
    """True for the stand-in of a refused global."""
    return isinstance(value, RefusedGlobal) and value is not _RefusedBase


def _refuse_to_pickle(standin):
    raise RefusedValueError(
        'cannot store %r: it stands for a global the safe unpickling policy '
        'refused to load, so the real value is unknown; put the original '
        'value back (or delete it) before committing' % (standin,))


copyreg.pickle(RefusedGlobal, _refuse_to_pickle)


class RefusedObjectType(type):
    """Metaclass of RefusedObject: a reference to one cannot be stored
    (the class it would name is not the record's real class)."""


def _refuse_to_pickle_class(cls):
    raise RefusedValueError(
        'cannot store a reference to an object of refused class %s: its '
        'record names a global the safe unpickling policy refused, so its '
        'real class is unknown' % (cls.refused_global,))


copyreg.pickle(RefusedObjectType, _refuse_to_pickle_class)


class RefusedObject(Persistent, metaclass=RefusedObjectType):
    """Base of the stand-ins for persistent objects whose class pickle was
    refused.  Their state stays readable; changing or storing them (or a
    reference to them) raises ``RefusedValueError``."""

    __slots__ = ()
    refused_global = '?'

    def __setstate__(self, state):
        if not isinstance(state, dict):
            state = {'state': state}
        Persistent.__setstate__(self, state)

    def __getstate__(self):
        raise RefusedValueError(
            'cannot store %r: its class pickle names a global the safe '
            'unpickling policy refused' % (self,))

    def _p_note_change(self):
        raise RefusedValueError(
            'cannot change %r: its class pickle names a global the safe '
            'unpickling policy refused' % (self,))

    def __setattr__(self, name, value):
        if name.startswith('_p_'):
            Persistent.__setattr__(self, name, value)
        else:
            self._p_note_change()

    def __repr__(self):
        return '<refused class %s: oid %s>' % (
            type(self).refused_global,
            format_oid(_getattribute(self, '_p_oid')))


def refused_object_class(refused_global):
    """A persistent stand-in class for records of a refused class."""
    return type('RefusedObject', (RefusedObject,), {
        'refused_global': refused_global, '__module__': __name__,
        '__slots__': ()})
