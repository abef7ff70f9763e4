"""Tab completion: plain text in, suggestions out.

``complete(text, namespace)`` looks at the text before the cursor and
returns ``Suggestion``s (text to insert, how many characters before the
cursor it replaces, a label).  Four contexts:

* ``:com``            -> command names; ``:help com`` -> a command's own
                          argument completer
* ``expr.na``         -> attributes of the value of ``expr``
* ``expr['us`` / ``expr[3`` -> keys of a dict, PersistentDict, BTree
                          (BTree keys by prefix through its ordered search,
                          at most ``MAX_KEYS``) or indexes of a list
* ``na``              -> names in the namespace, builtins and keywords

``expr`` is evaluated *safely* (``safe_eval``): only names, attribute
chains and literal subscripts; no calls.  Attributes and items are read
raw through durus_shell.peek, so completing never runs application code,
never marks an object accessed or changed.
"""

import ast
import builtins
import inspect
import keyword
import re
import types

from durus_shell import commands as command_set, peek
from durus_shell.registry import PYTHON_ARGUMENT

MAX_KEYS = 50
MAX_SCAN = 100000

_IDENT = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')
_TRAILING_IDENT = re.compile(r'[A-Za-z_0-9]*\Z')


class Suggestion(object):
    """Insert ``text`` in place of the ``replace`` characters before the
    cursor; ``display`` and ``meta`` are labels for the menu."""

    __slots__ = ('text', 'replace', 'display', 'meta')

    def __init__(self, text, replace, display=None, meta=''):
        self.text = text
        self.replace = replace
        self.display = display or text
        self.meta = meta

    def __repr__(self):
        return 'Suggestion(%r, %d)' % (self.text, self.replace)


class Unsafe(Exception):
    """The expression cannot be evaluated without running code."""


def suggest(text, namespace, commands=None, session=None):
    """``complete()`` for the prompt: never raises.

    Completion runs on every key press and must never disturb the
    operator, so an error here (a bug, or damaged data) means no
    suggestions.  Tests call ``complete()``, which lets errors through.
    """
    try:
        return complete(text, namespace, commands, session)
    except Exception:
        return []


def complete(text, namespace, commands=None, session=None):
    """Suggestions for the end of ``text`` (the engine).

    An expression that cannot be evaluated without running code
    (``Unsafe``) has no suggestions; any other error propagates.
    """
    try:
        return _suggest(text, namespace, commands, session)
    except Unsafe:
        return []


def _suggest(text, namespace, commands, session):
    line_start = text.rfind('\n') + 1
    line = text[line_start:]
    if line.lstrip().startswith(':') and line_start == 0:
        return _command_suggestions(line.lstrip(), commands, session)
    key_context = _key_context(text)
    if key_context is not None:
        base, partial = key_context
        value = safe_eval(base, namespace)
        return key_suggestions(value, partial)
    partial = _TRAILING_IDENT.search(text).group()
    if partial[:1].isdigit():
        return []
    before = text[:len(text) - len(partial)]
    if before.endswith('.'):
        base = _expression_before(before[:-1])
        if not base:
            return []
        value = safe_eval(base, namespace)
        return attribute_suggestions(value, partial)
    return name_suggestions(namespace, partial)


# -- finding the expression before the cursor --------------------------------

_KEY_PARTIAL = re.compile(
    r"""\[\s*(?P<partial>(?:[rbu]?(?P<quote>['"])[^'"\\]*)|-?[0-9]*)\Z""")


def _key_context(text):
    """``(base_expression, partial_key)`` if the cursor is after ``expr[``."""
    match = _KEY_PARTIAL.search(text)
    if match is None:
        return None
    base = _expression_before(text[:match.start()])
    if not base:
        return None
    return base, match.group('partial')


def _expression_before(text):
    """The name/attribute/subscript chain that ends ``text``, or ''."""
    index = len(text)
    while index > 0:
        char = text[index - 1]
        if char == ']':
            index = _matching_bracket(text, index - 1)
            if index < 0:
                return ''
        elif char.isalnum() or char == '_' or char == '.':
            index -= 1
        else:
            break
    chain = text[index:]
    if not chain or not (chain[0].isalpha() or chain[0] == '_'):
        return ''
    return chain


def _matching_bracket(text, close):
    depth = 0
    quote = None
    index = close
    while index >= 0:
        char = text[index]
        if quote:
            if char == quote:
                quote = None
        elif char in '\'"':
            quote = char
        elif char == ']':
            depth += 1
        elif char == '[':
            depth -= 1
            if depth == 0:
                return index
        index -= 1
    return -1


# -- safe evaluation ---------------------------------------------------------

def safe_eval(expression, namespace):
    """Evaluate a chain of names, attributes and literal subscripts.

    Raises Unsafe for anything else (calls, operators, properties...).
    """
    try:
        node = ast.parse(expression.strip(), mode='eval').body
    except SyntaxError:
        raise Unsafe(expression)
    return _eval_node(node, namespace)


def _eval_node(node, namespace):
    if isinstance(node, ast.Name):
        if node.id in namespace:
            return namespace[node.id]
        if hasattr(builtins, node.id):
            return getattr(builtins, node.id)
        raise Unsafe(node.id)
    if isinstance(node, ast.Attribute):
        return static_getattr(_eval_node(node.value, namespace), node.attr)
    if isinstance(node, ast.Subscript):
        container = _eval_node(node.value, namespace)
        try:
            key = ast.literal_eval(node.slice)
        except ValueError:
            raise Unsafe('subscript is not a literal')
        return static_getitem(container, key)
    raise Unsafe(type(node).__name__)


def static_getattr(obj, name):
    """``obj.name`` without running any code of ``obj``'s class."""
    if peek.is_persistent(obj):
        if not name.startswith('_p_'):
            try:
                return peek.raw_attribute(obj, name)
            except AttributeError:
                pass
        found, value = peek.class_attribute(peek.real_class(obj), name)
        if not found:
            raise Unsafe(name)
        return _plain_class_value(value)
    try:
        value = inspect.getattr_static(obj, name)
    except AttributeError:
        raise Unsafe(name)
    if isinstance(value, types.MemberDescriptorType):
        try:
            return value.__get__(obj, type(obj))
        except AttributeError:
            raise Unsafe(name)
    if isinstance(obj, type) or isinstance(obj, types.ModuleType):
        return _plain_class_value(value)
    instance_dict = _instance_dict(obj)
    if instance_dict is not None and name in instance_dict:
        return value
    return _plain_class_value(value)


def _instance_dict(obj):
    try:
        value = inspect.getattr_static(obj, '__dict__')
    except AttributeError:
        return None
    if isinstance(value, dict):
        return value
    try:
        return object.__getattribute__(obj, '__dict__')
    except AttributeError:
        return None


def _plain_class_value(value):
    """A class attribute, unless getting it would run code (descriptors)."""
    if isinstance(value, (types.FunctionType, staticmethod, classmethod,
                          types.BuiltinFunctionType, type)):
        return value
    if hasattr(type(value), '__get__'):
        raise Unsafe('descriptor')
    return value


_PLAIN_MAPPINGS = (dict,)
_PLAIN_SEQUENCES = (list, tuple, str, bytes)


def static_getitem(container, key):
    """``container[key]`` for plain and durus containers, read raw."""
    if type(container) in _PLAIN_MAPPINGS or type(container) in \
            _PLAIN_SEQUENCES:
        try:
            return container[key]
        except (KeyError, IndexError, TypeError):
            raise Unsafe('no item')
    if peek.is_persistent(container):
        kind = peek.container_kind(container)
        try:
            if kind in ('dict', 'list'):
                return peek.container_data(container, kind)[key]
            if kind == 'btree':
                return peek.btree_get(container, key)
        except (KeyError, IndexError, TypeError):
            raise Unsafe('no item')
    raise Unsafe('not a known container')


# -- suggestion lists --------------------------------------------------------

def attribute_suggestions(obj, partial):
    """Attributes of ``obj`` starting with ``partial``."""
    names = attribute_names(obj)
    return [Suggestion(name, len(partial), meta=meta)
            for name, meta in sorted(names.items(), key=_attribute_order)
            if name.startswith(partial) and _visible(name, partial)]


def _attribute_order(entry):
    name = entry[0]
    return (name.startswith('__'), name.startswith('_'), name)


def _visible(name, partial):
    if name.startswith('__'):
        return partial.startswith('__')
    if name.startswith('_'):
        return partial.startswith('_')
    return True


def member_kind(cls, name):
    """The label of a class member, read from the class dicts (no code
    runs): 'method', 'property', 'class' or 'class attribute'."""
    for klass in getattr(cls, '__mro__', (cls,)):
        if name in klass.__dict__:
            return _kind_of(klass.__dict__[name])
    return 'class attribute'


def _kind_of(value):
    if isinstance(value, (types.FunctionType, staticmethod, classmethod,
                          types.BuiltinFunctionType,
                          types.MethodDescriptorType,
                          types.WrapperDescriptorType,
                          types.ClassMethodDescriptorType)):
        return 'method'
    if isinstance(value, type):
        return 'class'
    if isinstance(value, (property, types.GetSetDescriptorType,
                          types.MemberDescriptorType)):
        return 'property'
    return 'class attribute'


def attribute_names(obj):
    """``{name: 'attribute'|'method'|...}`` read without running code."""
    names = {}
    if peek.is_persistent(obj):
        cls = peek.real_class(obj)
        for name in peek.class_attribute_names(cls):
            names[name] = member_kind(cls, name)
        for name in peek.raw_state(obj):
            names[name] = 'attribute'
        return names
    cls = obj if isinstance(obj, type) else type(obj)
    for klass in getattr(cls, '__mro__', (cls,)):
        for name in klass.__dict__:
            if name not in names:
                names[name] = _kind_of(klass.__dict__[name])
    instance_dict = _instance_dict(obj)
    if instance_dict:
        for name in list(instance_dict)[:MAX_SCAN]:
            if isinstance(name, str):
                names[name] = 'attribute'
    return names


def key_suggestions(container, partial):
    """Keys of ``container`` matching the typed ``partial`` key text."""
    keys = _candidate_keys(container, partial)
    suggestions = []
    for key in keys:
        text = _key_text(key, partial)
        if text is not None and text.startswith(_normal_prefix(partial)):
            suggestions.append(Suggestion(text + ']', len(partial),
                                          display=text, meta='key'))
        if len(suggestions) >= MAX_KEYS:
            break
    return suggestions


def _normal_prefix(partial):
    # The typed text as it will appear in a suggestion: a key's repr in
    # the quote the operator opened.
    if partial[:1] in 'rbu' and partial[1:2] in ('"', "'"):
        return partial[1:] if partial[0] != 'b' else partial
    return partial


def _key_text(key, partial):
    """The key as Python source, in the quote the operator typed."""
    if isinstance(key, str):
        quote = _typed_quote(partial)
        text = repr(key)
        if text[0] != quote and key.isprintable():
            text = quote + key.replace('\\', '\\\\').replace(
                quote, '\\' + quote) + quote
        return text
    if isinstance(key, (int, float, bytes, tuple)) and not isinstance(
            key, bool):
        return repr(key)
    return None


def _typed_quote(partial):
    for char in partial[:2]:
        if char in '\'"':
            return char
    return "'"


def _candidate_keys(container, partial):
    """Keys to consider, bounded; for BTrees the ordered search is used."""
    if peek.is_persistent(container):
        kind = peek.container_kind(container)
        if kind == 'btree':
            return _btree_candidates(container, partial)
        if kind == 'dict':
            return _bounded(peek.container_data(container, kind))
        if kind == 'list':
            return range(min(len(peek.container_data(container, kind)),
                             MAX_KEYS))
        return []
    if type(container) is dict:
        return _bounded(container)
    if type(container) in (list, tuple):
        return range(min(len(container), MAX_KEYS))
    return []


def _bounded(mapping):
    keys = []
    for index, key in enumerate(mapping):
        if index >= MAX_SCAN:
            break
        keys.append(key)
    try:
        keys.sort()
    except TypeError:
        pass
    return keys


def _btree_candidates(btree, partial):
    """Keys of a BTree that may match ``partial``, from an ordered search."""
    quote = _typed_quote(partial) if any(c in partial for c in '\'"') \
        else None
    if quote is not None:
        prefix = partial[partial.index(quote) + 1:]
        if partial[:1] == 'b':
            start = prefix.encode('latin-1')
        else:
            start = prefix
        keys = []
        for key, _ in peek.btree_items(btree, start=start,
                                       limit=MAX_KEYS):
            if not key.startswith(start):
                break
            keys.append(key)
        return keys
    if partial.lstrip('-').isdigit():
        # Integer keys from the typed number on (ordered search), then
        # the digits-prefix filter in key_suggestions keeps matches.
        try:
            items = peek.btree_items(btree, start=int(partial),
                                     limit=MAX_KEYS * 4)
            return [key for key, _ in items]
        except TypeError:
            return []
    return [key for key, _ in peek.btree_items(btree, limit=MAX_KEYS)]


def name_suggestions(namespace, partial):
    """Names in the namespace, then builtins and keywords."""
    seen = set()
    suggestions = []
    groups = ((sorted(namespace), 'name'),
              (sorted(dir(builtins)), 'builtin'),
              (sorted(keyword.kwlist), 'keyword'))
    for names, meta in groups:
        for name in names:
            if (name in seen or not name.startswith(partial)
                    or not _visible(name, partial)):
                continue
            seen.add(name)
            suggestions.append(Suggestion(name, len(partial), meta=meta))
    return suggestions


def _command_suggestions(line, commands, session):
    if commands is None:
        commands = command_set.all_commands()
    name, space, args = line[1:].partition(' ')
    if not space:
        found = []
        for cmd in commands:
            for candidate in (cmd.name,) + cmd.aliases:
                if candidate.startswith(name):
                    found.append(Suggestion(':' + candidate, len(line),
                                            meta=cmd.summary))
        return found
    for cmd in commands:
        if name == cmd.name or name in cmd.aliases:
            if cmd.complete is None:
                return []
            if cmd.complete == PYTHON_ARGUMENT:
                if session is None:
                    return []
                return _suggest(args, session.namespace, commands, session)
            word = args.rpartition(' ')[2]
            return [Suggestion(choice, len(word))
                    for choice in cmd.complete(session, args)
                    if choice.startswith(word)]
    return []
