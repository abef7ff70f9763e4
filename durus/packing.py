"""What packing a file storage has in common across formats.

A pack copies the records reachable from the root (through ``refs``
only) into ``NAME.pack``, then swaps files so that ``NAME`` always exists:
the old file is hard-linked as ``NAME.prepack`` and ``NAME.pack``
atomically replaces ``NAME``.
"""

import heapq
import os

from durus.error import DamagedFileError
from durus.file import fsync_directory
from durus.serialize import RecordError, unpack_record
from durus.utils import int8_to_str, str_to_int8


def gen_pack_records(load_number, roots, written, refresh, filename):
    """``(number, oid, record)`` reachable from ``roots``, smallest first.

    ``load_number(n)`` returns the newest record of oid number ``n`` or
    raises ``KeyError`` (a dangling reference: nothing to keep).
    Numbers in ``written`` are skipped, except the roots when
    ``refresh`` (they were committed again meanwhile); every yielded
    number is added to ``written``.  A record whose refs cannot be read
    stops the pack: dropping what it refers to would lose live objects.
    """
    todo = [number for number in roots if refresh or number not in written]
    seen = set(todo)
    heapq.heapify(todo)
    while todo:
        number = heapq.heappop(todo)
        try:
            record = load_number(number)
        except KeyError:
            continue
        try:
            refs = unpack_record(record)[2]
        except RecordError as error:
            raise DamagedFileError(
                '%s: the record of oid %d is malformed (%s); the pack '
                'stopped and changed nothing' % (filename, number, error),
                filename, None, 0) from None
        written.add(number)
        yield number, int8_to_str(number), record
        for position in range(0, len(refs), 8):
            ref = str_to_int8(refs[position:position + 8])
            if ref not in seen and ref not in written:
                seen.add(ref)
                heapq.heappush(todo, ref)


def switch_to_packed(old_file, pack_file, name):
    """Make ``pack_file`` (a locked ``File`` at NAME.pack) the file NAME.

    The old file stays as NAME.prepack.  ``old_file`` is closed.
    """
    prepack = name + '.prepack'
    try:
        os.unlink(prepack)
    except FileNotFoundError:
        pass
    try:
        os.link(name, prepack)
    except OSError:
        os.replace(name, prepack)  # no hard links here: brief gap
    pack_file.rename(name)
    fsync_directory(name)
    old_file.close()


def discard_pack_file(pack_file):
    pack_file.close()
    try:
        os.unlink(pack_file.name)
    except OSError:
        pass
