"""Export persistent objects as JSON (the shell's ``:export``).

One entry per persistent object::

    {"oid": 42, "class": "app.User", "depth": 0,
     "attributes": {"name": "ann", "friend": {"$ref": 43}}}

References are ``{"$ref": OID}``; values JSON cannot hold are tagged by
type (``{"$bytes": BASE64}``, ``{"$datetime": ISO}``, ``{"$set": [...]}``,
``{"$tuple": [...]}``, ``{"$dict": [[key, value], ...]}`` for a dict whose
keys are not all text, ...).  A dict whose keys are all text and none
starts with ``$`` is a JSON object.  ``decode_value`` turns the JSON back
into Python values (references as ``Ref(oid)``), so an export can be
checked against the database.

Objects are read quietly (durus_shell.peek: raw attributes, no access
mark, no method of an application class), through the session's
connection and its unpickling policy: no code from the database runs.
A value the policy refused is ``{"$refused": "module.name"}``.
"""

import base64
import datetime
import decimal
import enum
import fractions
import json
import math
import os
import uuid
from collections import namedtuple

from durus.unpickle_policy import is_refused

from durus_shell import peek

FORMAT = 'durus-shell export 1'
Ref = namedtuple('Ref', 'oid')


class ExportError(Exception):
    """An export that cannot be done (shown as one line)."""


# -- values -> JSON -------------------------------------------------------------

def encode_value(value, found):
    """``value`` as JSON-ready data; persistent objects met are appended
    to ``found`` (a list) and written as references."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        return {'$float': repr(value)}
    if peek.is_persistent(value):
        found.append(value)
        oid = peek.oid_of(value)
        if oid is None:
            return {'$new': peek.class_path(type(value))}
        return {'$ref': int.from_bytes(oid, 'big')}
    if is_refused(value):
        return {'$refused': _refused_name(value)}
    if kind is list:
        return [encode_value(item, found) for item in value]
    if kind is tuple:
        return {'$tuple': [encode_value(item, found) for item in value]}
    if kind is dict:
        if all(type(key) is str and not key.startswith('$') for key in value):
            return {key: encode_value(item, found)
                    for key, item in value.items()}
        return {'$dict': [[encode_value(key, found), encode_value(item, found)]
                          for key, item in value.items()]}
    if kind in (set, frozenset):
        items = [encode_value(item, found) for item in value]
        items.sort(key=_sort_key)
        return {'$' + kind.__name__: items}
    if kind in (bytes, bytearray):
        return {'$' + kind.__name__:
                base64.b64encode(bytes(value)).decode('ascii')}
    if kind is datetime.datetime:
        return {'$datetime': value.isoformat()}
    if kind is datetime.date:
        return {'$date': value.isoformat()}
    if kind is datetime.time:
        return {'$time': value.isoformat()}
    if kind is datetime.timedelta:
        return {'$timedelta': [value.days, value.seconds, value.microseconds]}
    if kind is decimal.Decimal:
        return {'$decimal': str(value)}
    if kind is fractions.Fraction:
        return {'$fraction': [value.numerator, value.denominator]}
    if kind is complex:
        return {'$complex': [value.real, value.imag]}
    if kind is uuid.UUID:
        return {'$uuid': str(value)}
    if isinstance(value, enum.Enum):
        return {'$enum': '%s.%s' % (peek.class_path(kind), value.name)}
    attributes = _instance_dict(value)
    if attributes is not None:
        return {'$object': peek.class_path(kind),
                'attributes': encode_value(dict(attributes), found)}
    return {'$unsupported': peek.class_path(kind)}


def _refused_name(value):
    # The stand-in's own repr (durus code) reads <refused module.name ...>.
    text = repr(value)
    if text.startswith('<refused ') and text.endswith('>'):
        return text[len('<refused '):-1].split(' ')[0]
    return text


def _instance_dict(value):
    try:
        attributes = object.__getattribute__(value, '__dict__')
    except AttributeError:
        return None
    return attributes if type(attributes) is dict else None


def _sort_key(encoded):
    return json.dumps(encoded, sort_keys=True)


# -- JSON -> values (to check an export) ---------------------------------------

_DECODERS = {
    '$ref': Ref,
    '$float': float,
    '$bytes': lambda text: base64.b64decode(text),
    '$bytearray': lambda text: bytearray(base64.b64decode(text)),
    '$datetime': datetime.datetime.fromisoformat,
    '$date': datetime.date.fromisoformat,
    '$time': datetime.time.fromisoformat,
    '$timedelta': lambda parts: datetime.timedelta(*parts),
    '$decimal': decimal.Decimal,
    '$fraction': lambda parts: fractions.Fraction(*parts),
    '$complex': lambda parts: complex(*parts),
    '$uuid': uuid.UUID,
}


def decode_value(data):
    """The Python value an encoded value stands for.  References become
    ``Ref(oid)``; ``$object``, ``$enum``, ``$refused``, ``$new`` and
    ``$unsupported`` stay as their JSON (no class is imported)."""
    if isinstance(data, list):
        return [decode_value(item) for item in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        (tag, inner), = data.items()
        if tag in _DECODERS:
            return _DECODERS[tag](inner)
        if tag == '$tuple':
            return tuple(decode_value(item) for item in inner)
        if tag == '$set':
            return set(decode_value(item) for item in inner)
        if tag == '$frozenset':
            return frozenset(decode_value(item) for item in inner)
        if tag == '$dict':
            return {decode_value(key): decode_value(value)
                    for key, value in inner}
    if any(key.startswith('$') for key in data):
        return data
    return {key: decode_value(value) for key, value in data.items()}


# -- objects -------------------------------------------------------------------

def start_objects(value):
    """The persistent objects an export starts from: ``value`` itself, or
    the persistent objects in a list, tuple or set (``_`` of :find)."""
    if peek.is_persistent(value):
        return [value]
    if type(value) in (list, tuple, set, frozenset):
        objects = [item for item in value if peek.is_persistent(item)]
        if objects and len(objects) == len(value):
            return objects
        if objects:
            raise ExportError('%d of the %d values are not persistent '
                              'objects' % (len(value) - len(objects),
                                           len(value)))
    raise ExportError('nothing to export: give a persistent object or a '
                      'list of them (like _ after :find), not a %s'
                      % type(value).__name__)


def gen_entries(objects, depth=0):
    """One entry per persistent object: ``objects`` first, then what they
    reach, breadth first, up to ``depth`` references away.  Each object
    once; only oids are remembered."""
    seen = set()
    level = []
    for obj in objects:
        if id(obj) not in seen:
            seen.add(id(obj))
            level.append(obj)
    kept = list(level)   # keeps new objects alive while their id is in seen
    distance = 0
    while level:
        following = []
        for obj in level:
            found = []
            yield entry(obj, distance, found)
            if distance >= depth:
                continue
            for other in found:
                key = peek.oid_of(other) or id(other)
                if key not in seen and id(other) not in seen:
                    seen.add(key)
                    following.append(other)
        distance += 1
        level = following
        kept = None
    del kept


def entry(obj, depth, found):
    """The JSON entry of one persistent object (read quietly)."""
    oid = peek.oid_of(obj)
    return {'oid': None if oid is None else int.from_bytes(oid, 'big'),
            'class': peek.class_path(type(obj)), 'depth': depth,
            'attributes': encode_value(peek.raw_state(obj), found)}


# -- files ---------------------------------------------------------------------

def write_export(path, objects, depth=0, lines=False, source=None,
                 force=False):
    """Write the export to ``path`` (through a temporary file, renamed
    when complete); returns the number of objects written.

    ``lines``: JSON Lines, one object a line, written as they are read
    (for large exports).  Otherwise one JSON document: ``format``,
    ``source``, ``roots`` and ``objects``.  An existing file is refused
    unless ``force``.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise ExportError('%s exists: choose another name or add --force'
                          % path)
    temporary = path + '.partial'
    count = 0
    try:
        with open(temporary, 'w', encoding='utf-8') as out:
            if lines:
                for item in gen_entries(objects, depth):
                    out.write(json.dumps(item, sort_keys=True) + '\n')
                    count += 1
            else:
                roots = [int.from_bytes(peek.oid_of(obj), 'big')
                         if peek.oid_of(obj) is not None else None
                         for obj in objects]
                out.write('{"format": %s, "source": %s, "roots": %s, '
                          '"objects": [' % (json.dumps(FORMAT),
                                            json.dumps(source),
                                            json.dumps(roots)))
                for item in gen_entries(objects, depth):
                    out.write((',\n' if count else '\n')
                              + json.dumps(item, sort_keys=True))
                    count += 1
                out.write('\n]}\n')
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise
    return count


def read_export(path):
    """The entries of an export file (either format), as a list."""
    with open(path, encoding='utf-8') as source:
        text = source.read()
    if text.startswith('{"format"'):
        return json.loads(text)['objects']
    return [json.loads(line) for line in text.splitlines() if line.strip()]
