"""Databases whose records try to run code when loaded.

Each payload, if ever run, creates the marker file it is given (so a test
only has to check that the file does not exist).  ``write_hostile_database``
stores them all under the root of a FileStorage; usable from a subprocess:
``python hostile_records.py DB MARKER``.
"""

import os
import pickle
import subprocess
import sys

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.serialize import pack_record


class SystemCall(object):
    """Pickles as REDUCE(os.system, (command,))."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class PopenCall(object):
    """Pickles as REDUCE(subprocess.Popen, (argv,)): a class, not a function."""

    def __init__(self, argv):
        self.argv = argv

    def __reduce__(self):
        return (subprocess.Popen, (self.argv,))


class _ImportOs(object):
    def __call__(self):
        pass

    def __reduce__(self):
        return (__import__, ('os',))


class _GetattrSystem(object):
    def __call__(self):
        pass

    def __reduce__(self):
        return (getattr, (_ImportOs(), 'system'))


class GetattrCall(object):
    """REDUCE(getattr(__import__('os'), 'system'), (command,))."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (_GetattrSystem(), (self.command,))


def marker_command(marker):
    return 'touch %s' % marker


def inst_pickle(marker):
    """A protocol-0 pickle using INST (``i`` opcode) to call os.system."""
    return b'(V' + marker_command(marker).encode() + b'\nios\nsystem\n.'


def hostile_state_values(marker):
    """Name -> a value whose pickle runs a payload when loaded."""
    command = marker_command(marker)
    return {
        'system': SystemCall(command),
        'popen': PopenCall(['touch', marker]),
        'getattr': GetattrCall(command),
    }


def _store_raw(storage, oid, data):
    storage.begin()
    storage.store(oid, pack_record(oid, data, b''))
    storage.end()


def write_hostile_database(path, marker):
    """A FileStorage whose root holds every kind of hostile record.

    root['harmless_looking']: PersistentDict with a hostile value among
    plain ones; root['system'/'popen'/'getattr']: the bare payloads;
    root['hostile_class']: an object whose class pickle calls os.system;
    root['inst']: an object whose state is a protocol-0 INST call;
    root['this']: an object whose state names ``this.s`` (importing the
    standard module ``this`` prints to stdout).
    Returns the oids of the three raw records.
    """
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    values = hostile_state_values(marker)
    holder = PersistentDict()
    holder['payload'] = values['system']
    holder['name'] = 'ok'
    holder['count'] = 3
    root['harmless_looking'] = holder
    root.update(values)
    root['hostile_class'] = Persistent()
    root['inst'] = Persistent()
    root['this'] = Persistent()
    connection.commit()
    hostile_class_oid = root['hostile_class']._p_oid
    inst_oid = root['inst']._p_oid
    this_oid = root['this']._p_oid
    # The class pickle itself calls os.system; the state is empty.
    class_pickle = (b'\x80\x02cposix\nsystem\nq\x00X' +
                    len(marker_command(marker)).to_bytes(4, 'little') +
                    marker_command(marker).encode() + b'\x85R.')
    _store_raw(storage, hostile_class_oid,
               class_pickle + pickle.dumps({}, 2))
    _store_raw(storage, inst_oid, _persistent_with_x(inst_pickle(marker)[:-1]))
    _store_raw(storage, this_oid, _persistent_with_x(b'cthis\ns\n'))
    storage.close()
    return hostile_class_oid, inst_oid, this_oid


_PERSISTENT_CLASS_PICKLE = b'\x80\x02cdurus.persistent\nPersistent\nq\x00.'


def _persistent_with_x(value_opcodes):
    """Record data: a Persistent whose state is {'x': <value_opcodes>}."""
    return (_PERSISTENT_CLASS_PICKLE + b'\x80\x02}q\x01X\x01\x00\x00\x00x' +
            value_opcodes + b's.')


if __name__ == '__main__':
    write_hostile_database(sys.argv[1], sys.argv[2])
