"""Placeholder classes for pickled classes that cannot be imported.

A database names the classes of its objects (``module`` + class name at
the start of every record).  When the shell runs without the
application's code, those imports fail.  Instead of refusing to open the
database, the shell opens its connection with ``missing_class_factory``
as the class factory (``Connection(..., class_factory=...)``: that
connection only) and gets a stand-in class from here:

* a *persistent* placeholder (for record classes and persistent
  references) keeps the object's oid and its state (attributes stay
  readable), and refuses every change with ``PlaceholderChangeError``;
* a *plain* placeholder (for values inside a state) keeps what the pickle
  gave it, so that it can be written back unchanged.

Placeholder classes are published under the module path they stand for
(a stub module in ``sys.modules`` when the module itself is missing):
pickle writes a class by name and checks that the name leads back to
the same class, and an object that refers to a placeholder must still be
committable.  ``forget_placeholders()`` removes all of that again.
"""

import copyreg
import sys
import types

from durus import inspect
from durus.connection import ConnectionObserver
from durus.error import PlaceholderChangeError
from durus.persistent import Persistent

# Where a state that is not a dict (e.g. ComputedAttribute's None) is kept;
# the space makes it impossible to set through normal attribute syntax.
_RAW_STATE_KEY = ' state'


def _how_to_fix(module, name='CLASS'):
    return ('make module %s importable: start durus-shell with --path DIR '
            '(the directory that contains it); or, if the class moved or '
            'was renamed, rename it in the records: :rename-class %s:%s '
            'NEWMODULE:NEWNAME (durus-shell PATH --rename-class ... from '
            'the command line)' % (module, module, name))


class PlaceholderModule(types.ModuleType):
    """A stand-in module for a module that cannot be imported."""


def _refuse(obj, action):
    cls = type(obj)
    raise PlaceholderChangeError(
        'cannot %s <%s %s>: its class is not importable, the object is a '
        'read-only placeholder; %s'
        % (action, placeholder_class_path(cls), obj._p_format_oid(),
           _how_to_fix(cls.placeholder_module, cls.placeholder_name)))


class PersistentPlaceholder(Persistent):
    """Base of the stand-ins for persistent objects of unimportable classes.

    Readable: attributes, oid, ``placeholder_state(obj)``.  Every change
    (set, delete, ``_p_note_change``, construction) raises
    ``PlaceholderChangeError`` naming the class and the way out.
    """

    placeholder_module = '?'
    placeholder_name = '?'

    def __init__(self, *args, **kw):
        raise PlaceholderChangeError(
            'cannot create a %s: the class is not importable; %s'
            % (placeholder_class_path(type(self)),
               _how_to_fix(type(self).placeholder_module,
                           type(self).placeholder_name)))

    def __setattr__(self, name, value):
        if name.startswith('_p_'):
            Persistent.__setattr__(self, name, value)
        else:
            _refuse(self, 'change attribute %r of' % name)

    def __delattr__(self, name):
        if name.startswith('_p_'):
            Persistent.__delattr__(self, name)
        else:
            _refuse(self, 'delete attribute %r of' % name)

    def _p_note_change(self):
        _refuse(self, 'change')

    def __getstate__(self):
        state = object.__getattribute__(self, '__dict__')
        if _RAW_STATE_KEY in state:
            return state[_RAW_STATE_KEY]
        return state

    def __setstate__(self, state):
        if state is None or isinstance(state, dict):
            Persistent.__setstate__(self, state if state is not None
                                    else {_RAW_STATE_KEY: None})
        else:
            Persistent.__setstate__(self, {_RAW_STATE_KEY: state})

    def __repr__(self):
        return '<%s %s (placeholder)>' % (placeholder_class_path(type(self)),
                                          self._p_format_oid())


class Placeholder(object):
    """Stand-in for a non-persistent object (or callable) of an unimportable
    class, found inside some state.  It keeps the constructor arguments,
    the pickled state and any list/dict items, and pickles back the same
    way (``NEWOBJ`` if it was created with ``__new__``, else a call).
    """

    placeholder_module = '?'
    placeholder_name = '?'

    def __new__(cls, *args, **kw):
        self = object.__new__(cls)
        inner = self.__dict__
        inner['_placeholder_args'] = args
        inner['_placeholder_kw'] = kw
        inner['_placeholder_called'] = False
        inner['_placeholder_state'] = None
        inner['_placeholder_items'] = []
        inner['_placeholder_mapping'] = {}
        return self

    def __init__(self, *args, **kw):
        self.__dict__['_placeholder_called'] = True

    def __setstate__(self, state):
        self.__dict__['_placeholder_state'] = state

    def append(self, item):
        self.__dict__['_placeholder_items'].append(item)

    def extend(self, items):
        self.__dict__['_placeholder_items'].extend(items)

    def __setitem__(self, key, value):
        self.__dict__['_placeholder_mapping'][key] = value

    def __getattr__(self, name):
        state = self.__dict__.get('_placeholder_state')
        if isinstance(state, dict) and name in state:
            return state[name]
        raise AttributeError('%s placeholder has no attribute %r'
                             % (placeholder_class_path(type(self)), name))

    def __reduce_ex__(self, protocol):
        inner = self.__dict__
        items = iter(inner['_placeholder_items']) if inner[
            '_placeholder_items'] else None
        mapping = iter(inner['_placeholder_mapping'].items()) if inner[
            '_placeholder_mapping'] else None
        if inner['_placeholder_called'] or inner['_placeholder_kw']:
            return (type(self), inner['_placeholder_args'],
                    inner['_placeholder_state'], items, mapping)
        return (copyreg.__newobj__, (type(self),) + inner['_placeholder_args'],
                inner['_placeholder_state'], items, mapping)

    def __eq__(self, other):
        return (type(self) is type(other)
                and self.__reduce_ex__(2)[1:3] == other.__reduce_ex__(2)[1:3])

    def __hash__(self):
        return hash((type(self), self.__dict__['_placeholder_args']))

    def __repr__(self):
        inner = self.__dict__
        shown = inner['_placeholder_state']
        if shown is None:
            shown = inner['_placeholder_args']
        text = repr(shown)
        if len(text) > 60:
            text = text[:57] + '...'
        return '<%s placeholder %s>' % (placeholder_class_path(type(self)),
                                        text)


_classes = {}          # (module, name) -> placeholder class
_published = []        # (module object, name, stub module created?)


def is_placeholder_class(cls):
    return isinstance(cls, type) and issubclass(
        cls, (PersistentPlaceholder, Placeholder))


def is_placeholder(obj):
    """True for instances of any placeholder class."""
    return is_placeholder_class(type(obj))


def placeholder_class_path(cls):
    """``'module.Name'`` the placeholder class stands for."""
    return '%s.%s' % (cls.placeholder_module, cls.placeholder_name)


def placeholder_state(obj):
    """The state of a persistent placeholder (loaded if a ghost, without
    marking it accessed)."""
    inspect.load_quietly(obj)
    return PersistentPlaceholder.__getstate__(obj)


def placeholder_class(module, name, persistent=True):
    """The placeholder class standing for ``module.name`` (made once)."""
    key = (module, name)
    cls = _classes.get(key)
    if cls is not None and (not persistent or
                            issubclass(cls, PersistentPlaceholder)):
        return cls
    base = PersistentPlaceholder if persistent else Placeholder
    namespace = {'placeholder_module': module, 'placeholder_name': name,
                 '__module__': module, '__qualname__': name}
    if persistent:
        namespace['__slots__'] = ()
    cls = type(name.rpartition('.')[2] or 'Placeholder', (base,), namespace)
    _classes[key] = cls
    if persistent:
        # Only persistent placeholders are published: the reader resolves
        # the class of a persistent reference as a plain global first and
        # asks again for the persistent one, which must not find this.
        _publish(cls, module, name)
    return cls


def missing_class_factory(module, name, persistent):
    """The class factory for ``Connection(..., class_factory=...)``."""
    return placeholder_class(module, name, persistent)


class PlaceholderGuard(ConnectionObserver):
    """Refuses a commit that would write a placeholder (an observer of
    the session's connection)."""

    def before_commit(self, connection):
        refuse_commit_of_placeholders(connection)


def _publish(cls, module, name):
    if '.' in name:
        return  # nested classes are not reachable by a plain attribute
    target = _module_or_stub(module)
    setattr(target, name, cls)
    _published.append((target, name, False))


def _module_or_stub(module):
    """The module named ``module``, or a stub standing for it.

    Parent packages get stubs too: pickle imports a class's module with
    ``__import__``, which imports the top package first.
    """
    found = sys.modules.get(module)
    if found is not None:
        return found
    try:
        __import__(module)
        return sys.modules[module]
    except Exception:
        pass
    parent_name, dot, last = module.rpartition('.')
    parent = _module_or_stub(parent_name) if dot else None
    stub = PlaceholderModule(module)
    stub.__doc__ = 'durus-shell stand-in for an unimportable module'
    stub.__path__ = []
    sys.modules[module] = stub
    _published.append((stub, None, True))
    if parent is not None and not hasattr(parent, last):
        setattr(parent, last, stub)
    return stub


def changed_placeholders(connection):
    """Placeholders among the objects a commit would write."""
    return [obj for obj in connection.changed.values() if is_placeholder(obj)]


def refuse_commit_of_placeholders(connection):
    """Raise PlaceholderChangeError if a commit would write a placeholder."""
    found = changed_placeholders(connection)
    if found:
        first = found[0]
        raise PlaceholderChangeError(
            'cannot commit: %d changed object(s) are placeholders of '
            'unimportable classes (first: %r); :abort (or :undo) the change, '
            'or %s' % (len(found), first,
                       _how_to_fix(type(first).placeholder_module,
                                   type(first).placeholder_name)))


def forget_placeholders():
    """Remove every published placeholder class and stub module."""
    while _published:
        target, name, created = _published.pop()
        if created:
            if sys.modules.get(target.__name__) is target:
                del sys.modules[target.__name__]
        elif getattr(target, name, None) is _classes.get(
                (target.__name__, name)):
            delattr(target, name)
    _classes.clear()
