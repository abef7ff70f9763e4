"""The saved index beside a SHELF-1 file (``NAME.index``).

Opening a never-packed SHELF-1 file means reading the header of every
record after the offset map.  A writer therefore saves the resulting
index beside the file; the next open loads it and scans only the
transactions appended since.  The ``.durus`` file itself is untouched
and stays readable by Durus 4.3, which ignores ``NAME.index``.

Layout (all integers big-endian)::

    magic         b"DURUS-SHELF-INDEX-1\\n"  (20 bytes)
    int8 covered  offset in the data file up to which the index is exact
                  (always the end of a transaction)
    int8 S        offset-map start of the data file it was built for
    32 bytes      fingerprint: sha256(covered ‖ S ‖ first 4 KiB of the
                  data file ‖ the 4 KiB before ``covered``)
    int8 C        number of oids in the index
    int8 D        number of dense words
    int8 P        number of overflow pairs
    D * int8      offset of the newest disk-record of oid i (0: none)
    P * (int8 oid number, int8 offset)
    int4          crc32 of everything above

It is trusted only if its checksum is right, ``covered`` is within the
data file, S matches the file's map, and the fingerprint matches the
data file's bytes now: the file is append-only, so an unchanged header
and unchanged bytes just before ``covered`` mean the indexed prefix is
the same.  A pack, a repair below ``covered`` or a file replaced by
another program changes them and the index is ignored and rebuilt.
"""

import os
import struct
import zlib

from durus.oid_index import OidIndex

MAGIC = b'DURUS-SHELF-INDEX-1\n'
_head = struct.Struct('>QQ32sQQQ')
_SAMPLE = 4096


def index_path(data_path):
    return data_path + '.index'


def fingerprint(data_file, covered, map_start):
    import hashlib  # only when an index is used: not on every start-up
    digest = hashlib.sha256(struct.pack('>QQ', covered, map_start))
    digest.update(data_file.pread(min(_SAMPLE, covered), 0))
    low = max(0, covered - _SAMPLE)
    digest.update(data_file.pread(covered - low, low))
    return digest.digest()


class SavedIndex(object):
    """An index of a data file's appended transactions up to ``covered``."""

    def __init__(self, index, covered_end, map_start):
        self.index = index
        self.covered_end = covered_end
        self.map_start = map_start


def load(data_file):
    """The ``SavedIndex`` for ``data_file`` if one exists and matches, else None."""
    try:
        with open(index_path(data_file.name), 'rb') as f:
            data = f.read()
    except OSError:
        return None
    size = len(MAGIC) + _head.size
    if len(data) < size + 4 or not data.startswith(MAGIC):
        return None
    if zlib.crc32(memoryview(data)[:-4]) != struct.unpack('>I',
                                                           data[-4:])[0]:
        return None
    covered, map_start, digest, count, dense, pairs = _head.unpack_from(
        data, len(MAGIC))
    if size + 8 * dense + 16 * pairs + 4 != len(data):
        return None
    if covered > data_file.get_size() or \
            fingerprint(data_file, covered, map_start) != digest:
        return None
    index = OidIndex.from_bytes(data[size:size + 8 * dense],
                                data[size + 8 * dense:-4], count)
    return SavedIndex(index, covered, map_start)


def save(data_file, index, covered_end, map_start):
    """Write the index atomically (temporary file, rename).

    No fsync: the index is a cache that every open checks, so one lost
    or torn by a crash is merely ignored and rebuilt.
    """
    dense = index.dense_bytes()
    pairs = index.overflow_bytes()
    body = b''.join((
        MAGIC,
        _head.pack(covered_end, map_start,
                   fingerprint(data_file, covered_end, map_start),
                   len(index), len(dense) // 8, len(pairs) // 16),
        dense, pairs))
    path = index_path(data_file.name)
    temporary = path + '.tmp'
    try:
        with open(temporary, 'wb') as f:
            f.write(body)
            f.write(struct.pack('>I', zlib.crc32(body)))
        os.replace(temporary, path)
    except OSError:
        # A full or read-only disk: the next open simply scans the file.
        try:
            os.unlink(temporary)
        except OSError:
            pass


def remove(data_path):
    try:
        os.unlink(index_path(data_path))
    except FileNotFoundError:
        pass
