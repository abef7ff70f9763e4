"""Writing and reading the data of object records.

A record is ``oid | int4 N | data (N) | refs``; its layout, and the class
name read from its first bytes, belong to durus.record (re-exported here
under the Durus 4.3 names: ``pack_record``, ``unpack_record``,
``split_oids``, ``extract_class_name``).  ``data`` is the class pickle
followed by the state pickle (zlib-compressed when it starts with 0x78).

``ObjectWriter`` turns objects into record data during a commit;
``ObjectReader`` turns record data back into classes, ghosts and states,
and is the one place where a pickled (module, name) becomes a class.
"""

import _codecs
import copyreg
import struct
import sys
import zlib
from io import BytesIO
from types import MethodType
from pickle import Pickler, Unpickler

from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

from durus._accel import speedups as _speedups, use as _use_compiled
from durus.error import ClassImportError, RefusedGlobalError
from durus.memo_guard import check_memo
from durus.persistent import PersistentBase, _variants
from durus.record import (  # noqa: F401 (re-exported)
    OidListError, RecordError, class_name, class_pickle_end, class_pickle_length,
    data_class_path, pack_record, split_oids, unpack_record)
from durus.unpickle_policy import (UnpicklePolicy, is_refused, make_refused,
                                   refused_object_class)

PICKLE_PROTOCOL = 2
WRITE_COMPRESSED_STATE_PICKLES = True
COMPRESSED_START_BYTE = 0x78

# The record layout lives in durus.record; these are Durus 4.3's names.
extract_class_name = class_name
extract_class_path = data_class_path


# ---------------------------------------------------------------------------
# Writing and reading object states.

_compress = zlib.compress
_pack_int4 = struct.Struct('>I').pack
_decompress = zlib.decompress
_raw_get = object.__getattribute__

# How states are compressed.  Durus 4.3 compresses every state at zlib's
# default level (6); its readers accept any level and uncompressed states.
# Here states shorter than COMPRESS_MIN_SIZE are left uncompressed (zlib
# gains little on them and costs more than the rest of writing the
# record) and the others use level 1, several times faster than 6 for
# about the same size.  COMPRESS_MIN_SIZE = 0 with COMPRESSION_LEVEL = 6
# makes records byte-identical to Durus 4.3's.
COMPRESS_MIN_SIZE = 256
COMPRESSION_LEVEL = 1

# A connection keeps its commit's writer for the next commit unless the
# last state it pickled was larger than this (its buffer stays as large).
REUSED_BUFFER_MAX = 1 << 16


class _RecordPickler(Pickler):
    """A Pickler whose instances accept a ``persistent_id`` attribute.

    (Python 3.13 made that attribute read-only on plain Picklers.)
    """


class ObjectWriter(object):
    """Turns persistent objects into record data for one connection.

    ``get_state(obj)`` -> ``(data, refs)``: data is the class pickle and
    the (compressed) state pickle written by one pickler whose memo is
    shared, exactly as Durus 4.3 writes them (formats.md §1).  Persistent
    objects met in the state become persistent ids ``(oid, class)``; one
    without an oid is new: it gets an oid, is bound to the connection and
    queued, so that ``gen_new_objects`` yields it for writing too.
    """

    def __init__(self, connection, dry_run=False):
        self.connection = connection
        self.sio = BytesIO()
        self.pickler = _RecordPickler(self.sio, PICKLE_PROTOCOL)
        # The oids met while pickling one state (duplicates included).
        self._refs = []
        self.objects_found = []
        self.new_objects = []
        # A dry run finds new objects exactly as a commit would, but
        # neither gives them oids nor binds them (durus.inspect).
        self.dry_run = dry_run
        self.pickler.persistent_id = _persistent_id_for(self)

    @property
    def refs(self):
        return set(self._refs)

    def close(self):
        # Break the pickler <-> persistent_id closure cycle.
        self.pickler = None
        self.sio = None

    def ready_again(self):
        """Forget this commit's objects so that the writer can serve the
        connection's next commit (making a writer costs more than a
        small commit's pickling); False if it is better dropped (it holds
        a large buffer, or was closed)."""
        if self.pickler is None or self.dry_run:
            return False
        # (The compiled persistent_id holds these very lists.)
        del self.objects_found[:]
        del self.new_objects[:]
        del self._refs[:]
        # The memo holds the last state's objects: let them go.
        self.pickler.clear_memo()
        if self.sio.tell() > REUSED_BUFFER_MAX:
            return False
        return True

    def gen_new_objects(self, obj):
        """Yield ``obj``, then every new object found while serializing.

        The caller is expected to call ``get_state`` on each object
        yielded before asking for the next one.
        """
        queue = self.objects_found
        queue.append(obj)
        while queue:
            yield queue.pop()

    def _make_persistent_id(self):
        # A closure over locals: the pickler calls it for every object it
        # writes (about ten times per reference), so it must return None
        # for plain values as fast as it can.
        connection = self.connection
        new_objects = self.new_objects
        objects_found = self.objects_found
        add_ref = self._refs.append
        dry_run = self.dry_run
        met = {}  # dry run: id of a new object -> the stand-in oid it got

        def persistent_id(obj, isinstance=isinstance, base=PersistentBase,
                          raw_get=_raw_get, variants=_variants):
            if not isinstance(obj, base):
                return None
            # Raw reads: referenced objects are mostly hooked ghosts.
            oid = raw_get(obj, '_p_oid')
            if oid is None:
                if raw_get(obj, '_p_connection') is not None:
                    raise ValueError('%r has a connection but no oid' % (obj,))
                if dry_run:
                    oid = met.get(id(obj))
                    if oid is None:
                        oid = met[id(obj)] = b'new:%04d' % len(met)
                        new_objects.append(obj)
                        objects_found.append(obj)
                else:
                    oid = connection.new_oid()
                    connection._bind_new_object(obj, oid)
                    new_objects.append(obj)
                    objects_found.append(obj)
            elif raw_get(obj, '_p_connection') is not connection:
                raise ValueError(
                    'cannot store a reference to %r: it belongs to another '
                    'connection; copy the object instead' % (obj,))
            add_ref(oid)
            cls = type(obj)
            if cls in variants:
                cls = variants[cls][0]
            return oid, cls
        return persistent_id

    def get_class_pickle(self, obj):
        """The class pickle a commit writes at the start of ``obj``'s record."""
        entry = _class_entries.get(type(obj))
        if entry is None:
            entry = _class_entry(type(obj))
        return entry[1]

    def matches_record(self, obj, state, data):
        """Whether record data ``data`` holds exactly ``state`` as this
        writer would write it for ``obj`` (uncompressed records only;
        False means: compare another way)."""
        entry = _class_entries.get(type(obj))
        if entry is None:
            entry = _class_entry(type(obj))
        head = entry[1]
        if not data.startswith(head):
            return False
        return data[len(head):] == self._pickle_state(entry, state)

    def get_state_pickle(self, obj, state):
        """The pickle of ``state`` (``obj``'s state) as a commit would
        write it for ``obj``, before compression."""
        entry = _class_entries.get(type(obj))
        if entry is None:
            entry = _class_entry(type(obj))
        return self._pickle_state(entry, state)

    def _pickle_state(self, entry, state):
        # The state pickle continues the class pickle's memo (entry[2]).
        sio = self.sio
        sio.seek(0)
        sio.truncate()
        pickler = self.pickler
        pickler.memo = entry[2]
        self._refs.clear()
        pickler.dump(state)
        return sio.getvalue()

    def get_state(self, obj):
        return unpack_record(self.get_record(obj))[1:]

    def get_record(self, obj):
        """The record a commit stores for ``obj`` (durus.record): its
        oid, the data length, the data (``get_state``'s) and the refs."""
        entry = _class_entries.get(type(obj))
        if entry is None:
            entry = _class_entry(type(obj))
        return self._record_of_state(obj, entry, obj.__getstate__())

    def _record_of_state(self, obj, entry, state):
        # get_record's second half: also where the compiled twin sends a
        # state it does not write itself.
        sio = self.sio
        sio.seek(0)
        sio.truncate()
        # The state pickle continues the class pickle's memo, in which the
        # class is entry 0 (a fresh memo also keeps clear_memo() cheap).
        pickler = self.pickler
        pickler.memo = entry[2]
        refs = self._refs
        if refs:
            refs.clear()  # left by a state that failed to pickle
        pickler.dump(state)
        state = sio.getvalue()
        if (WRITE_COMPRESSED_STATE_PICKLES and
                len(state) >= COMPRESS_MIN_SIZE):
            state = _compress(state, COMPRESSION_LEVEL)
        oid = _raw_get(obj, '_p_oid')
        head = entry[1]
        size = _pack_int4(len(head) + len(state))
        if not refs:
            return b''.join((oid, size, head, state))
        if len(refs) == 1:
            ref = refs.pop()
            if ref == oid:
                return b''.join((oid, size, head, state))
            return b''.join((oid, size, head, state, ref))
        found = set(refs)
        refs.clear()
        found.discard(oid)
        return b''.join((oid, size, head, state, b''.join(sorted(found))))


def _py_persistent_id_for(writer):
    return writer._make_persistent_id()


def _compiled_persistent_id_for(writer):
    # The compiled twin; the cases that raise (and, in a dry run, new
    # objects) go to the closure.
    return _speedups.PersistentIdWriter(
        writer._make_persistent_id(), PersistentBase, writer.connection,
        writer._refs, writer.new_objects, writer.objects_found,
        writer.dry_run)


# The pickler's persistent_id for a writer (durus/_accel.py).
_persistent_id_for = _use_compiled(
    'PersistentIdWriter', _py_persistent_id_for,
    _compiled_persistent_id_for if _speedups is not None else None)


# class or hook variant -> (class, class pickle, pickler memo after it,
# the class's GLOBAL opcode or None); the last for the compiled
# get_record, which writes only class pickles of the plain form
# PROTO 2, GLOBAL, BINPUT 0, STOP (one memo entry: the class).
_class_entries = {}


def _class_entry(cls):
    real = _variants[cls][0] if cls in _variants else cls
    sio = BytesIO()
    pickler = Pickler(sio, PICKLE_PROTOCOL)
    pickler.dump(real)
    head = sio.getvalue()
    # The memo proxy keeps the pickler: assigning it copies its memo.
    entry = (real, head, pickler.memo, _plain_global(head))
    _class_entries[cls] = entry
    if real is not cls:
        _class_entries[real] = entry
    return entry


def _plain_global(class_pickle):
    """The GLOBAL opcode of a class pickle of the plain form, else None."""
    if (class_pickle[:3] == b'\x80\x02c' and class_pickle[-3:] == b'q\x00.'
            and class_pickle.count(b'\n') == 2
            and class_pickle[-4:-3] == b'\n'):
        return class_pickle[2:-3]
    return None


def _compiled_get_record_method():
    from pickle import dumps
    return _speedups.configure_writer(
        ObjectWriter, ObjectWriter.get_record, ObjectWriter._record_of_state,
        _class_entries, _class_entry, globals(), _compress, _codecs.encode,
        _plain_global(dumps(_codecs.encode, PICKLE_PROTOCOL)) or b'',
        copyreg._extension_registry)


# ObjectWriter.get_record, or its compiled twin (durus/_accel.py).
ObjectWriter.get_record = _use_compiled(
    'get_record', ObjectWriter.get_record,
    _compiled_get_record_method() if _speedups is not None else None)


class _RecordUnpickler(Unpickler):
    """Unpickles record pickles; class resolution goes to the reader.

    ``persistent_load`` is set on each instance (the reader's
    ``load_persistent_id``).
    """

    def find_class(self, module, name):
        return self.reader.resolve_class(module, name, self.record_class)


class _PyFeed(object):
    """A file over one pickle at a time, for the reader's shared unpickler.

    The C unpickler takes the whole pickle in one ``peek`` (so it makes no
    call per opcode, unlike with a BytesIO) and ``read``s what it used at
    the end; ``pos`` then tells whether it stopped exactly at the end.
    """

    __slots__ = ('data', 'pos')

    def __init__(self):
        self.data = b''
        self.pos = 0

    def peek(self, n=0):
        if not self.pos:
            return self.data  # the usual call: no copy
        return self.data[self.pos:]

    def read(self, n=-1):
        start = self.pos
        data = self.data
        end = len(data) if n is None or n < 0 else start + n
        self.pos = min(end, len(data))
        if not start and end >= len(data):
            return data  # the usual call (all of it was used): no copy
        return data[start:end]

    def readinto(self, buffer):
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def readline(self, size=-1):
        end = self.data.find(b'\n', self.pos)
        return self.read(-1 if end < 0 else end + 1 - self.pos)


# The same, or its compiled twin (durus/_accel.py).
_Feed = _use_compiled('Feed', _PyFeed)


def _py_persistent_load_for(reader):
    # Straight to the reader, without a method frame in between.
    return reader.load_persistent_id


# The unpickler's persistent_load for a reader: the reader's method, or
# the compiled twin, which hands unusual pids back to it.
_persistent_load_for = _use_compiled('PersistentLoader',
                                     _py_persistent_load_for)

_EMPTY_MEMO = {}


class ObjectReader(object):
    """Turns record data back into classes, ghosts and states.

    ``resolve_class`` is the one place where a pickled (module, name)
    becomes a class: for the record's class, for the class inside every
    persistent id and for every other global in a state.  A class that
    cannot be imported raises ``ClassImportError``, unless a class
    factory is given (``class_factory``, or the ``missing_class_factory``
    attribute of this reader): then ``factory(module, name, persistent)``
    returns a class to use instead (``persistent`` is True for the
    record's class and for classes of persistent ids).

    ``policy`` (durus.unpickle_policy) decides which globals may be
    resolved at all; under a safe policy, ``refusals`` maps the oid of each
    record that named a refused global to the names refused.  Callers
    that know which record they load set ``loading_oid`` first (it only
    serves to name the record in refusals).
    """

    missing_class_factory = None

    def __init__(self, connection, policy=None, class_factory=None):
        self.connection = connection
        if class_factory is not None:
            self.missing_class_factory = class_factory
        self.policy = UnpicklePolicy.from_argument(policy)
        self.loading_oid = None
        self.refusals = {}
        # Classes this reader handed out (the safe reconstructor wrappers
        # rebuild only those).
        self._handed_out = set()
        self._refused_names = set()
        self._standins = {}  # (module, name, oid) -> stand-in
        # refused class pickle -> (RefusedObject subclass, memo after it)
        self._refused_record_classes = {}
        self.load_count = 0
        self._classes = {}
        # class pickle (bytes, validated) -> (class, memo after it)
        self._record_classes = {}
        # placeholder made for a non-persistent use -> (module, name)
        self._placeholder_origins = {}
        # One unpickler reused for state pickles (making one per record
        # costs more than most states take to read); None while in use,
        # so that a nested load makes its own.
        self._feed = _Feed()
        self._shared = None

    def get_load_count(self):
        return self.load_count

    def resolve_class(self, module, name, persistent=False):
        key = (module, name, persistent)
        try:
            return self._classes[key]
        except KeyError:
            pass
        policy = self.policy
        if not policy.trusted:
            mapped = _map_name(module, name)
            helper = self._safe_helper(*mapped)
            if helper is not None:
                self._classes[key] = helper
                return helper
            if (mapped in self._refused_names or
                    not policy.may_import(*mapped)):
                return self.refuse(*mapped)
        try:
            cls = _import_global(module, name)
        except Exception as error:
            factory = self.missing_class_factory
            if factory is None:
                raise ClassImportError(module, name, str(error)) from None
            cls = factory(module, name, persistent)
            if not persistent:
                self._placeholder_origins[cls] = (module, name)
            if not policy.trusted and isinstance(cls, type):
                self._handed_out.add(cls)  # the tool's own stand-in
        else:
            if not policy.trusted:
                if not policy.allows(mapped[0], mapped[1], cls, False):
                    self._refused_names.add(mapped)
                    return self.refuse(*mapped)
                if isinstance(cls, type):
                    self._handed_out.add(cls)
        self._classes[key] = cls
        return cls

    # -- the safe policy ---------------------------------------------------

    def refuse(self, module, name):
        """Refuse ``module.name`` in the record being loaded: raise
        RefusedGlobalError, or return a stand-in when the policy asks for
        placeholders."""
        oid = self.loading_oid
        self._note_refusal('%s.%s' % (module, name))
        if not self.policy.placeholders:
            raise RefusedGlobalError(module, name, oid)
        key = (module, name, oid)
        standin = self._standins.get(key)
        if standin is None:
            standin = self._standins[key] = make_refused(module, name, oid)
        # (Also sends persistent ids to load_persistent_id, which knows
        # stand-ins, instead of the compiled loader.)
        self._placeholder_origins[standin] = None
        return standin

    def _note_refusal(self, text):
        self.refusals.setdefault(self.loading_oid, set()).add(text)

    def _safe_helper(self, module, name):
        if module == 'copyreg':
            if name == '_reconstructor':
                return self._safe_reconstructor
            if name == '__newobj__':
                return self._safe_newobj
            if name == '__newobj_ex__':
                return self._safe_newobj_ex
        return None

    def _check_rebuilt(self, *classes):
        """The first of ``classes`` that may not be rebuilt (a stand-in is
        returned as is), or None."""
        for cls in classes:
            if is_refused(cls):
                return cls
            if not (cls in self._handed_out or
                    self.policy.allows_class(cls)):
                return self.refuse(getattr(cls, '__module__', '?'),
                                   getattr(cls, '__qualname__', repr(cls)))
        return None

    def _safe_reconstructor(self, cls, base, state):
        refused = self._check_rebuilt(cls, base)
        if refused is not None:
            return refused
        return copyreg._reconstructor(cls, base, state)

    def _safe_newobj(self, cls, *args):
        refused = self._check_rebuilt(cls)
        if refused is not None:
            return refused
        return cls.__new__(cls, *args)

    def _safe_newobj_ex(self, cls, args, kwargs):
        refused = self._check_rebuilt(cls)
        if refused is not None:
            return refused
        return cls.__new__(cls, *args, **kwargs)

    def load_persistent_id(self, pid):
        oid, cls = pid
        if type(oid) is str:
            oid = oid.encode('latin-1')
        if self._placeholder_origins and cls in self._placeholder_origins:
            origin = self._placeholder_origins[cls]
            if origin is None:
                return cls  # a refused stand-in: show it in the reference
            # The GLOBAL before BINPERSID was resolved as a plain global.
            module, name = origin
            cls = self.resolve_class(module, name, True)
        if not self.policy.trusted and not (
                isinstance(cls, type) and issubclass(cls, PersistentBase)):
            return self.refuse(getattr(cls, '__module__', '?'),
                               getattr(cls, '__qualname__', repr(cls)))
        connection = self.connection
        return connection.cache.get_instance(oid, cls, connection)

    def _unpickler(self, stream, record_class):
        unpickler = _RecordUnpickler(stream)
        unpickler.reader = self
        unpickler.record_class = record_class
        unpickler.persistent_load = _persistent_load_for(self)
        return unpickler

    def _record_class(self, class_pickle):
        """``(class, memo)`` of a class pickle, cached by its bytes.

        ``memo`` is the unpickler memo after the class pickle: state
        pickles are read with a copy of it (they may refer to the class
        by memo index).
        """
        entry = self._record_classes.get(class_pickle)
        if entry is None:
            refused = self._refused_record_classes.get(class_pickle)
            if refused is not None:
                # Kept apart from _record_classes, so that every record
                # with this class pickle comes here and is noted.
                self._note_refusal(refused[0].refused_global)
                return refused
            check_memo(class_pickle, self.loading_oid)
            unpickler = self._unpickler(BytesIO(class_pickle), True)
            cls = unpickler.load()
            if not self.policy.trusted and not (
                    isinstance(cls, type) and issubclass(cls, PersistentBase)):
                cls = self._refused_record_class(cls)
                unpickler.reader = None
                entry = self._refused_record_classes[class_pickle] = (
                    cls, unpickler.memo)
                return entry
            unpickler.reader = None  # kept for its memo only: no cycle
            entry = self._record_classes[class_pickle] = (cls,
                                                          unpickler.memo)
        return entry

    def _refused_record_class(self, cls):
        """A record's class pickle gave ``cls``, not a persistent class."""
        if is_refused(cls):
            text = cls.refused_global
        else:
            text = '%s.%s' % (getattr(cls, '__module__', '?'),
                              getattr(cls, '__qualname__', repr(cls)))
            self.refuse(*text.rsplit('.', 1))  # raises unless placeholders
        return refused_object_class(text)

    def _class_pickle_length(self, data):
        end = class_pickle_length(data)
        if end < 0:
            # Not the form Durus writes: unpickle to find where it stops.
            check_memo(data, self.loading_oid)
            stream = BytesIO(data)
            self._unpickler(stream, True).load()
            end = stream.tell()
        return end

    def _class_entry(self, data):
        """``(class pickle length, class, memo)`` of record data."""
        # Fast path: Durus's class pickles end with b'\nq\x00.'; a prefix
        # found that way is trusted only if it is a class pickle already
        # validated (the cache holds only those).
        end = class_pickle_end(data)
        if end > 0:
            entry = self._record_classes.get(data[:end])
            if entry is not None:
                return end, entry[0], entry[1]
        end = self._class_pickle_length(data)
        cls, memo = self._record_class(data[:end])
        return end, cls, memo

    def _split(self, data):
        """``(class pickle, state pickle)`` of record data."""
        end = self._class_pickle_length(data)
        state = data[end:]
        if state[:1] == b'\x78':
            try:
                state = _decompress(state)
            except zlib.error:
                pass
        return data[:end], state

    def get_class(self, data):
        """The class of the record whose data is ``data``."""
        return self._class_entry(data)[1]

    def get_ghost(self, data):
        """A new, unbound ghost of the record's class."""
        cls = self.get_class(data)
        obj = cls.__new__(cls)
        obj._p_set_status_ghost()
        return obj

    def get_state_pickle(self, data):
        """The uncompressed state pickle of record data."""
        return self._split(data)[1]

    def get_state(self, data, load=True, oid=None):
        if oid is not None:
            self.loading_oid = oid
        end, cls, memo = self._class_entry(data)
        if len(data) > end and data[end] == COMPRESSED_START_BYTE:
            try:
                state = _decompress(data[end:])  # (a memoryview is slower)
            except zlib.error:
                state = data[end:]
        else:
            state = data[end:]
        if not load:
            return state
        self.load_count += 1
        return self._load_state_pickle(state, memo)

    def _load_state_pickle(self, state, memo):
        check_memo(state, self.loading_oid)   # before the unpickler sizes its memo
        unpickler = self._shared
        if unpickler is None:
            if self._feed is None:
                # The shared unpickler is busy (a nested load).
                unpickler = self._unpickler(BytesIO(state), False)
                unpickler.memo = memo
                return unpickler.load()
            unpickler = self._unpickler(self._feed, False)
        feed = self._feed
        self._shared = self._feed = None
        feed.data = state
        feed.pos = 0
        unpickler.memo = memo
        try:
            value = unpickler.load()
        except BaseException:
            # Its input buffer may hold the rest of this pickle: drop it.
            self._feed = _Feed()
            raise
        self._feed = feed
        if feed.pos == len(state):
            # Its memo would keep this state's objects alive.
            unpickler.memo = _EMPTY_MEMO
            self._shared = unpickler
        # else: bytes after the STOP opcode are still buffered: drop it.
        feed.data = b''
        return value


def _codecs_encode(obj, encoding='utf-8', errors='strict'):
    """``_codecs.encode`` as protocol-2 pickles of bytes call it.

    Every bytes value Durus pickles (the oid of each reference, among
    others) reads back as ``_codecs.encode(text, 'latin1')``; str.encode
    knows latin-1 itself, while the codec registry would first import
    encodings.latin_1 (a noticeable part of opening a database).
    """
    if encoding == 'latin1' and errors == 'strict' and type(obj) is str:
        return obj.encode('latin-1')
    return _codecs.encode(obj, encoding, errors)


_own_codecs_encode = _use_compiled('codecs_encode', _codecs_encode)
_OWN_GLOBALS = {('_codecs', 'encode'): _own_codecs_encode}


def _map_name(module, name):
    """``(module, name)`` with Python 2 names mapped to Python 3's."""
    if (module, name) in NAME_MAPPING:
        return NAME_MAPPING[(module, name)]
    if module in IMPORT_MAPPING:
        return IMPORT_MAPPING[module], name
    return module, name


def _import_global(module, name):
    """The object a pickle GLOBAL names (with Python 2 name mapping)."""
    own = _OWN_GLOBALS.get((module, name))
    if own is not None:
        return own
    module, name = _map_name(module, name)
    __import__(module)
    target = sys.modules[module]
    for part in name.split('.'):
        target = getattr(target, part)
    return target


NEWLINE = b'\n'     # ends the class line of a state pickle (4.3's name)


def method(a, b):
    """``types.MethodType(a, b)``: function ``a`` bound to ``b`` (4.3's)."""
    return MethodType(a, b)


# Names Durus 4.3 also offered from this module (it imported them for
# its own use), for code that imports them from here.
from durus.persistent import call_if_persistent  # noqa: E402,F401
from durus.utils import (  # noqa: E402,F401
    as_bytes, int4_to_str, join_bytes, str_to_int4)
