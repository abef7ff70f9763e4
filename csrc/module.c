/* durus._speedups: optional compiled twins of durus's per-object steps.

   Everything here has a pure-Python twin (durus.persistent, durus.connection,
   durus.serialize, durus.shelf) that stays the reference and runs whenever
   this module is missing or DURUS_NO_SPEEDUPS is set; the tests run both.
   Each function handles the common case itself and hands anything unusual
   (an unset slot, a class without variants yet, a connection or storage of
   another kind, a conflict, damage) to its Python twin, so the two cannot
   drift apart on rare paths.

   The contract with the Python side is written down in durus/_accel.py:
   TWINS lists every function here next to its Python twin (a function
   added to the module table must be listed there), CONFIGURE the functions
   through which Python hands over the classes and the Python twins to fall
   back to, and ATTRIBUTES_READ_BY_C every attribute name interned below
   with the class it is read from.  tests/test_accel.py checks both sides.

   This file holds configure(), the module table and the module's init; the
   parts below hold the functions, one job each. */

#include "common.h"

/* The parts, in dependency order (see the note at the top of each). */
#include "hooks.c"
#include "touched.c"
#include "cache.c"
#include "feed.c"
#include "writer.c"
#include "shelf.c"
#include "record.c"
#include "snapshot.c"
#include "reader.c"
#include "decode.c"
#include "record_check.c"
#include "btree.c"
#include "record_writer.c"
#include "commit.c"

static Py_ssize_t
member_offset(PyObject *cls, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(cls, name);
    Py_ssize_t offset = -1;
    if (descr == NULL)
        return -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX)
            offset = member->offset;
    }
    Py_DECREF(descr);
    if (offset < 0)
        PyErr_Format(PyExc_TypeError, "%s is not an object slot", name);
    return offset;
}

/* configure(PersistentBase, _variants, _EXEMPT, standard_load_state,
              _note_read, refresh_hooks, hook_variants, setstate)
   -> (watched __getattribute__, Persistent.__setstate__) descriptors. */
static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *base, *new_variants, *new_exempt, *load_state, *note, *refresh_,
        *hooks, *setstate, *getattribute_descr, *setstate_descr;

    if (!PyArg_ParseTuple(args, "O!O!O!OOOOO:configure", &PyType_Type,
                          &base, &PyDict_Type, &new_variants,
                          &PyFrozenSet_Type, &new_exempt, &load_state, &note,
                          &refresh_, &hooks, &setstate))
        return NULL;
    off_status = member_offset(base, "_p_status");
    off_serial = member_offset(base, "_p_serial");
    off_connection = member_offset(base, "_p_connection");
    off_oid = member_offset(base, "_p_oid");
    if (off_status < 0 || off_serial < 0 || off_connection < 0 || off_oid < 0)
        return NULL;
    Py_XSETREF(persistent_base, Py_NewRef(base));
    /* Through _PyType_Lookup: the tp_dict of built-in types is not
       reachable directly on Python 3.12 and later. */
    Py_XSETREF(base_new, Py_XNewRef(_PyType_Lookup((PyTypeObject *)base,
                                                   s_new)));
    Py_XSETREF(class_setter, Py_XNewRef(_PyType_Lookup(&PyBaseObject_Type,
                                                       s_class)));
    if (base_new == NULL || class_setter == NULL ||
            Py_TYPE(class_setter)->tp_descr_set == NULL) {
        PyErr_SetString(PyExc_TypeError, "unexpected PersistentBase");
        return NULL;
    }
    Py_XSETREF(variants, Py_NewRef(new_variants));
    Py_XSETREF(exempt, Py_NewRef(new_exempt));
    Py_XSETREF(standard_load_state, Py_NewRef(load_state));
    Py_XSETREF(py_note_read, Py_NewRef(note));
    Py_XSETREF(py_refresh_hooks, Py_NewRef(refresh_));
    Py_XSETREF(py_hook_variants, Py_NewRef(hooks));
    Py_XSETREF(py_setstate, Py_NewRef(setstate));
    getattribute_descr = PyDescr_NewMethod((PyTypeObject *)base,
                                           &watched_getattribute_def);
    if (getattribute_descr == NULL)
        return NULL;
    setstate_descr = PyDescr_NewMethod((PyTypeObject *)base,
                                       &persistent_setstate_def);
    if (setstate_descr == NULL) {
        Py_DECREF(getattribute_descr);
        return NULL;
    }
    configured = 1;
    return Py_BuildValue("(NN)", getattribute_descr, setstate_descr);
}

/* set_ref_type(_OidRef): the weak reference class of the cache. */
static PyObject *
set_ref_type(PyObject *module, PyObject *ref_type)
{
    if (!PyType_Check(ref_type) ||
            !PyType_IsSubtype((PyTypeObject *)ref_type,
                              &_PyWeakref_RefType)) {
        PyErr_SetString(PyExc_TypeError, "a weakref.ref subclass is needed");
        return NULL;
    }
    off_ref_key = member_offset(ref_type, "key");
    if (off_ref_key < 0) {
        off_ref_key = 0;  /* no slot: key is set by name */
        PyErr_Clear();
    }
    Py_XSETREF(oid_ref_type, Py_NewRef(ref_type));
    Py_RETURN_NONE;
}

/* step(obj) for objects of a hooked persistent class, else the Python
   twin (which makes the class's variants, or raises). */
static PyObject *
run_step(int (*step)(PyObject *), PyObject *python_twin, PyObject *obj)
{
    if (!is_persistent_instance(obj)) {
        if (PyErr_Occurred())
            return NULL;
        return PyObject_CallOneArg(python_twin, obj);
    }
    if (step(obj) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
py_note_read_c(PyObject *module, PyObject *obj)
{
    return run_step(note_read, py_note_read, obj);
}

static PyObject *
py_refresh_c(PyObject *module, PyObject *obj)
{
    return run_step(refresh, py_refresh_hooks, obj);
}

static PyMethodDef module_methods[] = {
    {"persistent_new", (PyCFunction)(void (*)(void))persistent_new,
     METH_VARARGS | METH_KEYWORDS,
     "PersistentBase.__new__: a new UNSAVED object, slots set."},
    {"configure", configure, METH_VARARGS,
     "Connect the module to durus.persistent (called once by it)."},
    {"configure_loads", configure_loads, METH_VARARGS,
     "Connect the module to the reader, connection and FileStorage."},
    {"set_file_storage_type", set_file_storage_type, METH_O,
     "Name the FileStorage class whose shelf can be read directly."},
    {"decode_state", (PyCFunction)(void (*)(void))decode_state_c,
     METH_FASTCALL,
     "ObjectReader._load_state_pickle(state, memo), common opcodes walked "
     "directly."},
    {"get_state", (PyCFunction)(void (*)(void))reader_get_state,
     METH_FASTCALL, "ObjectReader.get_state(data) (the loading form)."},
    {"set_access_note", set_access_note, METH_VARARGS,
     "Give Connection.note_access and ReferenceContainer (called once by "
     "connection)."},
    {"set_ref_type", set_ref_type, METH_O,
     "Give the cache's weak reference class (called once by connection)."},
    {"note_read", py_note_read_c, METH_O,
     "durus.persistent._note_read: load a ghost, note the access."},
    {"refresh_hooks", py_refresh_c, METH_O,
     "durus.persistent.refresh_hooks: the type variant for obj's state."},
    {"shelf_load_number", (PyCFunction)(void (*)(void))shelf_load_number,
     METH_FASTCALL, "Shelf.load_number for mapped files (else the Python one)."},
    {"get_instance", (PyCFunction)(void (*)(void))get_instance, METH_FASTCALL,
     "get_instance(objects, oid, cls, connection): cached object or ghost."},
    {"codecs_encode", (PyCFunction)(void (*)(void))codecs_encode,
     METH_FASTCALL, "_codecs.encode with latin-1 text answered directly."},
    {"btree_methods", btree_methods, METH_VARARGS,
     "Compiled BTree.get, __getitem__, add, __contains__ (durus.btree)."},
    {"btree_slots", btree_slots, METH_O,
     "Point BTree's subscript slots at the compiled walk (durus.btree)."},
    {"record_data", record_data_c, METH_O,
     "durus.record.record_data: the data field of a record."},
    {"class_pickle_end", class_pickle_end_c, METH_O,
     "durus.record.class_pickle_end: where the class pickle may end."},
    {"touched_since_last_call", touched_since_last_call, METH_O,
     "Connection.touched_since_last_call(connection)."},
    {"instances_of_class", instances_of_class, METH_VARARGS,
     "The objects (a sequence) whose type is a subclass of cls\n"
     "(issubclass, asked once per type), in order."},
    {"configure_snapshots", configure_snapshots, METH_VARARGS,
     "Connect the load snapshots to durus.load_snapshots (called once)."},
    {"record_fine", record_fine, METH_O,
     "record_fine(record): True, False or None (durus.record_check)."},
    {"configure_commit", configure_commit, METH_VARARGS,
     "Compiled FileStorage.new_oid and store (called once by file_storage)."},
    {"rehook", (PyCFunction)(void (*)(void))rehook, METH_FASTCALL,
     "durus.connection._py_rehook: watch a transaction's objects again."},
    {"write_found", (PyCFunction)(void (*)(void))write_found, METH_FASTCALL,
     "durus.connection._py_write_found: a commit's store loop."},
    {"set_write_found", set_write_found, METH_O,
     "Give the commit loop's Python twin (called once by connection)."},
    {"configure_writer", configure_writer, METH_VARARGS,
     "Connect the record writer to durus.serialize (called once by it)."},
    {"memo_bomb", memo_bomb_c, METH_O,
     "durus.memo_guard.memo_bomb: an absurd memo index the pickle names."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "durus._speedups",
    "Compiled versions of durus's per-load steps (optional).", -1,
    module_methods
};

#define INTERN(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module;
    /* Attribute names: durus._accel.ATTRIBUTES_READ_BY_C names each one's
       class; keep the two in step. */
    INTERN(s_load_state, "load_state");
    INTERN(s_p_load_state, "_p_load_state");
    INTERN(s_note_access, "note_access");
    INTERN(s_transaction_serial, "transaction_serial");
    INTERN(s_unhooked, "_unhooked");
    INTERN(s_key, "key");
    INTERN(s_dict, "__dict__");
    INTERN(s_new, "__new__");
    INTERN(s_append, "append");
    INTERN(s_add, "add");
    INTERN(s_mapping, "mapping");
    INTERN(s_callback, "_callback");
    INTERN(s_latin1, "latin1");
    INTERN(s_cache, "cache");
    INTERN(s_objects, "objects");
    INTERN(s_placeholder_origins, "_placeholder_origins");
    INTERN(s_connection, "connection");
    INTERN(s_load_persistent_id, "load_persistent_id");
    INTERN(s_index, "index");
    INTERN(s_dense, "dense");
    INTERN(s_overflow, "overflow");
    INTERN(s_unindexed, "_unindexed");
    INTERN(s_map, "map");
    INTERN(s_count, "count");
    INTERN(s_word_size, "word_size");
    INTERN(s_words_start, "_words_start");
    INTERN(s_start, "start");
    INTERN(s_file, "file");
    INTERN(s_mm, "_map");
    INTERN(s_mapped, "_mapped");
    INTERN(s_load_number, "load_number");
    INTERN(s_record_classes, "_record_classes");
    INTERN(s_shared, "_shared");
    INTERN(s_feed, "_feed");
    INTERN(s_memo, "memo");
    INTERN(s_load, "load");
    INTERN(s_load_count, "load_count");
    INTERN(s_reader, "reader");
    INTERN(s_loading_oid, "loading_oid");
    INTERN(s_storage, "storage");
    INTERN(s_shelf, "shelf");
    INTERN(s_invalid_oids, "invalid_oids");
    INTERN(s_setstate, "__setstate__");
    INTERN(s_get_state, "get_state");
    INTERN(s_classes, "_classes");              /* decode.c */
    INTERN(s_resolve_class, "resolve_class");
    INTERN(s_get_stored_pickle, "get_stored_pickle");
    INTERN(s_new_oid, "new_oid");
    INTERN(s_bind_new_object, "_bind_new_object");
    INTERN(s_class, "__class__");
    INTERN(s_recent_objects, "recent_objects");
    INTERN(s_items, "items");                   /* btree.c */
    INTERN(s_nodes, "nodes");
    INTERN(s_root, "root");
    INTERN(s_max_items, "max_items");
    INTERN(s_split_child, "split_child");
    INTERN(s_p_note_change, "_p_note_change");
    INTERN(s_grow_root, "_grow_root");
    INTERN(s_getitem, "__getitem__");
    INTERN(s_setitem, "__setitem__");
    INTERN(s_delitem, "__delitem__");
    INTERN(s_contains, "__contains__");
    INTERN(s_get, "get");
    INTERN(s_init, "__init__");
    INTERN(s_load_snapshots, "load_snapshots");   /* snapshot.c */
    INTERN(s_getstate, "__getstate__");
    INTERN(s_minimum_degree, "minimum_degree");
    INTERN(s_dry_run, "dry_run");               /* record_writer.c */
    INTERN(s_new_objects, "new_objects");
    INTERN(s_objects_found, "objects_found");
    INTERN(s_write_compressed, "WRITE_COMPRESSED_STATE_PICKLES");
    INTERN(s_compress_min_size, "COMPRESS_MIN_SIZE");
    INTERN(s_compression_level, "COMPRESSION_LEVEL");
    INTERN(s_get_record, "get_record");
    INTERN(s_p_serial_name, "_p_serial");
    INTERN(s_p_oid_name, "_p_oid");
    INTERN(s_holes, "_holes");                  /* commit.c */
    INTERN(s_next_number, "_next_number");
    INTERN(s_invalid, "invalid");
    INTERN(s_allocated, "allocated");
    INTERN(s_pending, "pending");
    INTERN(s_readonly, "readonly");
    empty_tuple = PyTuple_New(0);
    saved_value = PyLong_FromLong(SAVED);
    ghost_value = PyLong_FromLong(GHOST);
    zero_value = PyLong_FromLong(0);
    one_value = PyLong_FromLong(1);
    ds_dropped = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (!empty_tuple || !saved_value || !ghost_value || !zero_value ||
            !one_value || !ds_dropped)
        return NULL;
    rc_init_table();
    if (PyType_Ready(&LoaderType) < 0)
        return NULL;
    module = PyModule_Create(&speedups_module);
    if (module == NULL)
        return NULL;
    if (PyType_Ready(&FeedType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&FeedType);
    if (PyModule_AddObject(module, "Feed", (PyObject *)&FeedType) < 0) {
        Py_DECREF(&FeedType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyType_Ready(&WriterType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(module, "PersistentIdWriter",
                           (PyObject *)&WriterType) < 0) {
        Py_DECREF(&WriterType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyType_Ready(&SnapshotsType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&SnapshotsType);
    if (PyModule_AddObject(module, "LoadSnapshots",
                           (PyObject *)&SnapshotsType) < 0) {
        Py_DECREF(&SnapshotsType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&LoaderType);
    if (PyModule_AddObject(module, "PersistentLoader",
                           (PyObject *)&LoaderType) < 0) {
        Py_DECREF(&LoaderType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
