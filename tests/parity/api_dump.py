"""Print, as JSON, the public API of whichever `durus` package imports.

Run under Durus 4.3's interpreter and under this project's, the two
outputs are compared by tests/test_api_parity.py.  Usage:

    python api_dump.py MODULE...

For every module: each public module-level name (not starting with '_'),
its kind, where it was defined, a signature for callables and the value of
simple constants.  For every class also its base-class names, the
collections.abc interfaces it implements, and its public members: names
not starting with '_', the `_p_*` persistence protocol, and the special
methods it defines beyond `object`'s.
"""

import collections.abc
import importlib
import inspect
import json
import sys
import types

# Special methods a class gets from `object` or `type` machinery rather
# than from its author: not API.
IGNORED_DUNDERS = {
    '__dict__', '__doc__', '__module__', '__weakref__', '__slots__',
    '__init_subclass__', '__subclasshook__', '__abstractmethods__',
    '__annotations__', '__qualname__', '__orig_bases__', '__parameters__',
    '__match_args__', '__dataclass_fields__', '__dataclass_params__',
    '__firstlineno__', '__static_attributes__', '__class_getitem__',
    '__getnewargs__', '__getnewargs_ex__', '__reduce__', '__reduce_ex__',
    '__class__',
}

INTERFACES = ('Container', 'Iterable', 'Sized', 'Mapping', 'MutableMapping',
              'Set', 'MutableSet', 'Sequence', 'MutableSequence')

SIMPLE = (int, float, str, bytes, bool, type(None))


def simple_value(value):
    """repr of a literal constant, or None for anything else."""
    if isinstance(value, SIMPLE):
        return repr(value)
    if isinstance(value, tuple) and all(isinstance(v, SIMPLE) for v in value):
        return repr(value)
    return None


def signature_of(obj):
    """Parameters as [name, kind, default-repr-or-None, has-default], or
    None when the callable does not describe itself (C functions)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = []
    for param in signature.parameters.values():
        has_default = param.default is not param.empty
        default = simple_value(param.default) if has_default else None
        if has_default and default is None:
            default = '<%s>' % type(param.default).__name__
        params.append([param.name, param.kind.name, default, has_default])
    return params


def is_public_member(cls, name):
    if name.startswith('_p_'):
        return True
    if name.startswith('__') and name.endswith('__'):
        if name in IGNORED_DUNDERS:
            return False
        return getattr(cls, name, None) is not getattr(object, name, None)
    return not name.startswith('_')


def raw_member(cls, name):
    """The attribute as stored in the class dict that defines it."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return getattr(cls, name)


def describe_member(cls, name):
    raw = raw_member(cls, name)
    if isinstance(raw, staticmethod):
        signature = signature_of(raw.__func__)
        if name == '__new__' and signature:
            # Without the class argument, as C types report theirs.
            signature = signature[1:]
        return {'kind': 'staticmethod', 'signature': signature}
    if isinstance(raw, classmethod):
        return {'kind': 'classmethod', 'signature': signature_of(raw.__func__)}
    if isinstance(raw, property):
        return {'kind': 'property', 'settable': raw.fset is not None}
    if isinstance(raw, (types.FunctionType, types.BuiltinFunctionType,
                        types.MethodDescriptorType, types.WrapperDescriptorType,
                        types.MethodWrapperType)):
        return {'kind': 'method', 'signature': signature_of(raw)}
    if isinstance(raw, (types.MemberDescriptorType, types.GetSetDescriptorType)):
        return {'kind': 'attribute'}
    if inspect.isclass(raw):
        return {'kind': 'class'}
    if callable(raw):
        return {'kind': 'method', 'signature': signature_of(raw)}
    return {'kind': 'data', 'value': simple_value(raw),
            'type': type(raw).__name__}


def describe_class(cls):
    members = {}
    for name in dir(cls):
        if is_public_member(cls, name):
            members[name] = describe_member(cls, name)
    return {
        'kind': 'class',
        'origin': getattr(cls, '__module__', None),
        'bases': [klass.__name__ for klass in cls.__mro__[1:]
                  if klass is not object],
        'interfaces': [name for name in INTERFACES
                       if issubclass(cls, getattr(collections.abc, name))],
        'signature': signature_of(cls),
        'members': members,
        'all_names': sorted(dir(cls)),
    }


def describe(value):
    if isinstance(value, types.ModuleType):
        return {'kind': 'module', 'origin': value.__name__}
    if inspect.isclass(value):
        return describe_class(value)
    if callable(value):
        return {'kind': 'function',
                'origin': getattr(value, '__module__', None),
                'signature': signature_of(value)}
    return {'kind': 'data', 'origin': None, 'value': simple_value(value),
            'type': type(value).__name__}


def describe_module(name):
    try:
        module = importlib.import_module(name)
    except Exception as error:  # the comparison reports it
        return {'error': '%s: %s' % (type(error).__name__, error)}
    # dir() and getattr(), so names a module provides lazily through
    # __getattr__/__dir__ (PEP 562) count.
    return {'names': {key: describe(getattr(module, key))
                      for key in sorted(dir(module))
                      if not key.startswith('_')}}


def main(module_names):
    api = {name: describe_module(name) for name in module_names}
    json.dump(api, sys.stdout, indent=1, sort_keys=True)


if __name__ == '__main__':
    main(sys.argv[1:])
