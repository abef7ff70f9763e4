"""Which implementation of the per-object steps runs: the one list of
compiled twins, and the contract between durus and its compiled module.

``speedups`` is the compiled ``durus._speedups`` module (built from
``csrc/`` at install time when a C compiler is present), else None.
Setting ``DURUS_NO_SPEEDUPS`` (to anything but an empty string) before
durus is imported forces the pure-Python code, which is always present and
is the reference: every compiled function handles the common case and
hands anything unusual back to its Python twin.

``TWINS`` names every compiled function next to the Python function it
stands in for and the place where durus finds the one in use.  A module
swaps in a compiled twin only through ``use(name, python)``, which refuses
names not listed here; so this list is complete, and the tests check that
every entry is wired (tests/test_accel.py).  The compiled module is given
what it needs from Python by the configure functions (``CONFIGURE``); the
attribute names it still reads by name are listed in
``ATTRIBUTES_READ_BY_C``, the rest of the contract.
"""

import os


def _load():
    if os.environ.get('DURUS_NO_SPEEDUPS'):
        return None
    try:
        from durus import _speedups
    except ImportError:
        return None
    return _speedups


speedups = _load()


class Twin(object):
    """One compiled function.

    ``name``: its name in durus._speedups (or, when ``made_by`` names a
    configure function, the name of what that function returns);
    ``python``: the Python twin (the reference); ``installed``: where
    durus finds the one in use (None: used only inside compiled code,
    exported for the comparison tests).
    """

    # (A plain class: a namedtuple costs more to import than this module.)
    __slots__ = ('name', 'python', 'installed', 'made_by')

    def __init__(self, name, python, installed, made_by):
        self.name = name
        self.python = python
        self.installed = installed
        self.made_by = made_by

    def __repr__(self):
        return '<Twin %s of %s>' % (self.name, self.python)


TWINS = (
    # durus.persistent: the hooks of the type variants, object creation
    Twin('persistent_new', 'durus.persistent.PersistentBase.__new__',
         'durus.persistent.PersistentBase.__new__', None),
    Twin('watched_getattribute',
         "the watched variants' __getattribute__ made by "
         'durus.persistent._make_variants',
         'durus.persistent._fast_getattribute', 'configure'),
    Twin('persistent_setstate', 'durus.persistent.Persistent.__setstate__',
         'durus.persistent.Persistent.__setstate__', 'configure'),
    Twin('note_read', 'durus.persistent._note_read',
         'durus.persistent._note_read', None),
    Twin('refresh_hooks', 'durus.persistent.refresh_hooks',
         'durus.persistent.refresh_hooks', None),
    # durus.connection: loading a ghost, binding a new object, the cache
    Twin('load_state', 'durus.connection.Connection.load_state',
         'durus.connection.Connection.load_state', 'configure_loads'),
    Twin('bind_new_object', 'durus.connection.Connection._bind_new_object',
         'durus.connection.Connection._bind_new_object', 'configure_loads'),
    Twin('rehook', 'durus.connection._py_rehook', 'durus.connection._rehook',
         None),
    Twin('write_found', 'durus.connection._py_write_found',
         'durus.connection._write_found', None),
    Twin('get_instance', 'durus.connection.Cache.get_instance',
         'durus.connection.Cache.get_instance', None),
    Twin('touched_since_last_call',
         'durus.connection.Connection.touched_since_last_call',
         'durus.connection.Connection.touched_since_last_call', None),
    Twin('instances_of_class', 'durus.inspect._py_instances_of_class',
         'durus.inspect.instances_of_class', None),
    # durus.serialize: reading and writing record data
    Twin('get_state', 'durus.serialize.ObjectReader.get_state',
         'durus.connection._get_state', None),
    # (these two are made per reader or writer: the twins are the
    # functions that make the unpickler's persistent_load and the
    # pickler's persistent_id)
    Twin('PersistentLoader', 'durus.serialize._py_persistent_load_for',
         'durus.serialize._persistent_load_for', None),
    Twin('PersistentIdWriter', 'durus.serialize._py_persistent_id_for',
         'durus.serialize._persistent_id_for', None),
    Twin('Feed', 'durus.serialize._PyFeed', 'durus.serialize._Feed', None),
    # (a commit's record of one object: the state written without the
    # pickler for the usual value types, anything else handed back)
    Twin('get_record', 'durus.serialize.ObjectWriter.get_record',
         'durus.serialize.ObjectWriter.get_record', 'configure_writer'),
    # (inside the compiled get_state: state pickles of the common opcodes
    # walked directly, the rest left to the Python method)
    Twin('decode_state', 'durus.serialize.ObjectReader._load_state_pickle',
         None, None),
    Twin('codecs_encode', 'durus.serialize._codecs_encode',
         'durus.serialize._own_codecs_encode', None),
    # durus.record, durus.shelf: the record layout, the packed offset map
    Twin('record_data', 'durus.record.record_data', None, None),
    Twin('class_pickle_end', 'durus.record.class_pickle_end', None, None),
    # durus.file_storage: a commit's new oids and staged records
    Twin('storage_new_oid', 'durus.file_storage.FileStorage.new_oid',
         'durus.file_storage.FileStorage.new_oid', 'configure_commit'),
    Twin('storage_store', 'durus.file_storage.FileStorage.store',
         'durus.file_storage.FileStorage.store', 'configure_commit'),
    Twin('shelf_load_number', 'durus.shelf.Shelf.load_number',
         'durus.file_storage._load_number', None),
    # durus.record_check: the deep check of the last transaction at open
    # (the compiled one may also answer None: "ask the Python walk")
    Twin('record_fine', 'durus.record_check._python_record_fine',
         'durus.record_check._record_fine', None),
    Twin('memo_bomb', 'durus.memo_guard._python_memo_bomb',
         'durus.memo_guard.memo_bomb', None),
    # durus.load_snapshots: the store of load-time snapshots (taken by the
    # compiled load_state too) and its walks
    Twin('LoadSnapshots', 'durus.load_snapshots._PyLoadSnapshots',
         'durus.load_snapshots.LoadSnapshots', None),
    # durus.btree: the search and insert walk (BNode.split_child inside)
    Twin('btree_get', 'durus.btree._py_get', 'durus.btree.BTree.get',
         'btree_methods'),
    Twin('btree_getitem', 'durus.btree._py_getitem',
         'durus.btree.BTree.__getitem__', 'btree_methods'),
    Twin('btree_add', 'durus.btree._py_add', 'durus.btree.BTree.add',
         'btree_methods'),
    Twin('btree_contains', 'durus.btree._py_contains',
         'durus.btree.BTree.__contains__', 'btree_methods'),
)

_BY_NAME = {twin.name: twin for twin in TWINS}

# The functions that hand the compiled module what it needs from Python
# (classes, the Python twins it falls back to, slot offsets); each is
# called once, at import, by the module named.
CONFIGURE = {
    'configure': 'durus.persistent',
    'configure_loads': 'durus.connection',
    'set_ref_type': 'durus.connection',
    'set_access_note': 'durus.connection',
    'set_file_storage_type': 'durus.file_storage',
    'btree_methods': 'durus.btree',
    'btree_slots': 'durus.btree',
    'configure_snapshots': 'durus.load_snapshots',
    'configure_writer': 'durus.serialize',
    'configure_commit': 'durus.file_storage',
    'set_write_found': 'durus.connection',
}

# The attributes the compiled module reads (or calls) by name on objects
# of these classes: renaming one in Python needs the same change in csrc/
# (module.c interns these names; tests/test_accel.py checks both sides).
ATTRIBUTES_READ_BY_C = {
    'durus.persistent.PersistentBase': (
        '_p_status', '_p_serial', '_p_connection', '_p_oid',
        '_p_load_state', '__setstate__', '__new__', '__class__',
        '__dict__', '__getstate__'),
    'durus.connection.Connection': (
        'load_state', 'note_access', 'transaction_serial', '_unhooked',
        'cache', 'storage', 'reader', 'invalid_oids', 'get_stored_pickle',
        'new_oid', '_bind_new_object', 'load_snapshots'),
    'durus.connection.Cache': ('objects', 'recent_objects'),
    'durus.connection.ObjectDictionary': ('mapping', '_callback'),
    'durus.connection.ReferenceContainer': ('map', 'add'),
    'durus.connection._OidRef': ('key',),
    'durus.serialize.ObjectReader': (
        'connection', 'load_count', '_record_classes', '_shared', '_feed',
        '_placeholder_origins', 'load_persistent_id', 'get_state',
        'loading_oid', '_classes', 'resolve_class'),
    'durus.serialize.ObjectWriter': (
        'connection', 'dry_run', 'new_objects', 'objects_found',
        'get_record'),
    'pickle.Unpickler': ('memo', 'load'),
    'durus.file_storage.FileStorage': (
        'shelf', '_holes', '_next_number', 'invalid', 'allocated', 'pending',
        'file'),
    'durus.shelf.Shelf': ('index', 'file', 'map', '_unindexed',
                          'load_number'),
    'durus.oid_index.OidIndex': ('dense', 'overflow'),
    'durus.shelf.OffsetMap': ('count', 'word_size', '_words_start', 'start'),
    'durus.file.File': ('_map', '_mapped', 'readonly'),
    'durus.btree.BTree': ('root', '_grow_root', '__getitem__',
                          '__setitem__', '__delitem__', '__contains__',
                          'get'),
    'durus.btree.BNode': ('items', 'nodes', 'max_items', 'minimum_degree',
                          'split_child', '_p_note_change', '__init__'),
}

# Strings module.c interns that are not attribute names: methods called
# on a list-like, and the encoding name _codecs.encode is asked for; and
# the copy() of an unpickler memo given to decode_state (for the tests).
# The compression settings of durus.serialize, read by the compiled
# get_record from the module's globals at each call.
OTHER_NAMES_IN_C = ('append', 'insert', 'latin1', 'copy',
                    'WRITE_COMPRESSED_STATE_PICKLES', 'COMPRESS_MIN_SIZE',
                    'COMPRESSION_LEVEL')

_in_use = {}


def use(name, python, compiled=None):
    """The implementation of step ``name`` to run: its compiled twin
    (``compiled``, or ``durus._speedups.<name>``) when the compiled module
    runs, else ``python``.  ``name`` must be listed in ``TWINS``."""
    if name not in _BY_NAME:
        raise KeyError('%r is not a compiled twin listed in durus._accel.'
                       'TWINS' % (name,))
    if speedups is None:
        chosen = python
    elif compiled is not None:
        chosen = compiled
    else:
        chosen = getattr(speedups, name)
    _in_use[name] = (python, chosen)
    return chosen


def python_twin(name):
    """The Python function that the compiled ``name`` stands in for."""
    if name in _in_use:
        return _in_use[name][0]
    return _resolve(_BY_NAME[name].python)


def in_use(name):
    """The implementation of ``name`` that runs (after its module ran)."""
    return _in_use[name][1]


def _resolve(dotted):
    parts = dotted.split('.')
    for count in range(len(parts), 0, -1):
        module_name = '.'.join(parts[:count])
        try:
            target = __import__(module_name, fromlist=['_'])
        except ImportError:
            continue
        for part in parts[count:]:
            target = getattr(target, part)
        return target
    raise ImportError(dotted)
