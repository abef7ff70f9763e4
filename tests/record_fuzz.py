"""Fuzzing the compiled record check against its Python twin.

``durus._speedups.record_fine(record)`` answers True (fine), False
(damaged) or None (left to the Python twin); the twin,
``durus.record_check._python_record_problem``, answers None or a problem.
They agree when True goes with None and False with a problem.  The
variants come from real records: cut, bit-flipped, overwritten, spliced
with other records, plus pickles made of random opcodes.

tests/test_record_check.py runs a few seconds of this; a longer run by
hand:

    python tests/record_fuzz.py 1000000 [seed]
"""

import os
import random
import shutil
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, 'data', 'durus43')
_OID = b'\0' * 7 + b'\x05'


def fixture_records():
    """Every record of the Durus 4.3 fixture files (or [] without them)."""
    from durus.file_storage import FileStorage
    from durus.file_storage2 import FileStorage2
    from durus.sqlite_storage import SqliteStorage
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, storage_class in [
                ('shelf.durus', FileStorage), ('shelf-packed.durus',
                                               FileStorage),
                ('dfs20.durus', FileStorage2), ('sqlite.durus',
                                                SqliteStorage)]:
            source = os.path.join(FIXTURES, name)
            if not os.path.exists(source):
                continue
            path = os.path.join(tmp, name)
            shutil.copyfile(source, path)
            storage = storage_class(path, readonly=True)
            try:
                records.extend(record for _, record in
                               storage.gen_oid_record())
            finally:
                storage.close()
    return records


def written_records():
    """Records written by this package: containers, trees, references,
    text, bytes, compressed and raw states."""
    from durus.btree import BTree
    from durus.connection import Connection
    from durus.persistent_dict import PersistentDict
    from durus.persistent_list import PersistentList
    from durus.persistent_set import PersistentSet
    from durus.storage import MemoryStorage
    connection = Connection(MemoryStorage())
    root = connection.get_root()
    root['dict'] = PersistentDict(a=1, b=[1.5, None, True], c={'x': (1, 2)})
    root['list'] = PersistentList([PersistentDict() for _ in range(150)])
    root['set'] = PersistentSet([1, 2, 3])
    root['tree'] = BTree()
    for number in range(300):
        root['tree'][number] = PersistentDict(v='%d' % number * 20)
    root['text'] = 'ünïcode ñ \udcff' * 30
    root['bytes'] = bytes(range(256)) * 2
    root['oidlike'] = ['é' * 8, b'\xff' * 8, ('_codecs', 'encode')]
    connection.commit()
    return [record for _, record in connection.storage.gen_oid_record()]


def _pack(oid, data, refs):
    return oid + len(data).to_bytes(4, 'big') + data + refs


def random_pickle(rng):
    """A pickle of random opcodes, often well formed enough to walk far."""
    parts = [b'\x80\x02'] if rng.random() < 0.8 else []
    oid = rng.choice([_OID, bytes(rng.randrange(256) for _ in range(8))])
    for _ in range(rng.randrange(1, 12)):
        choice = rng.randrange(16)
        if choice == 0:
            parts.append(b'c_codecs\nencode\n')
        elif choice == 1:
            text = rng.choice([oid.decode('latin-1'), 'ab', 'é' * 8,
                               '\udc80' * 8, 'latin1', 'latin-1'])
            raw = text.encode('utf-8', 'surrogatepass')
            parts.append(b'X' + len(raw).to_bytes(4, 'little') + raw)
        elif choice == 2:
            parts.append(rng.choice([b'U\x08' + oid, b'C\x08' + oid,
                                     b'B\x08\0\0\0' + oid]))
        elif choice == 3:
            parts.append(rng.choice([b'\x86', b'\x85', b'\x87', b't', b')',
                                     b'(']))
        elif choice == 4:
            parts.append(rng.choice([b'R', b'Q', b'\x93', b'2', b'0']))
        elif choice == 5:
            parts.append(rng.choice([b'q', b'h']) + bytes([rng.randrange(4)]))
        elif choice == 6:
            parts.append(rng.choice([b'r', b'j']) +
                         rng.randrange(4).to_bytes(4, 'little'))
        elif choice == 7:
            parts.append(b'\x94')
        elif choice == 8:
            parts.append(b'capp\nItem\n')
        elif choice == 9:
            parts.append(rng.choice([b'N', b'}', b']', b'K\x01', b'\x88']))
        elif choice == 10:
            parts.append(rng.choice([b'e', b'a', b's', b'u', b'b', b'l',
                                     b'd', b'o', b'1', b'\x90', b'\x91']))
        elif choice == 11:
            parts.append(bytes([rng.randrange(256)]))
        elif choice == 12:
            raw = rng.randbytes(rng.randrange(12))
            parts.append(b'\x8c' + bytes([len(raw)]) + raw)
        elif choice == 13:
            parts.append(rng.choice([b'Pxx\n', b'Sabc\n', b'I1\n', b'g0\n',
                                     b'p0\n', b'Vab\n', b'F1.5\n']))
        elif choice == 14:
            parts.append(b'\x80' + bytes([rng.randrange(8)]))
        else:
            parts.append(b'c' + rng.randbytes(rng.randrange(9)) + b'\n' +
                         rng.randbytes(rng.randrange(9)) + b'\n')
    parts.append(b'.')
    return b''.join(parts), oid


def random_record(rng):
    """A record whose state is random_pickle(), its refs some guess."""
    state, oid = random_pickle(rng)
    if rng.random() < 0.3:
        state = zlib.compress(state)
    refs = rng.choice([b'', oid, oid + oid, _OID, rng.randbytes(8)])
    own = rng.choice([_OID, oid])
    return _pack(own, b'\x80\x02capp\nItem\nq\x00.' + state, refs)


def mutate(rng, records):
    """One damaged (or, by chance, still sound) variant of a record."""
    record = rng.choice(records)
    kind = rng.randrange(9)
    if kind == 0:    # cut
        return record[:rng.randrange(len(record) + 1)]
    if kind == 1:    # bit flips
        changed = bytearray(record)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(changed))
            changed[at] ^= 1 << rng.randrange(8)
        return bytes(changed)
    if kind == 2:    # spliced with another record
        other = rng.choice(records)
        return (record[:rng.randrange(len(record) + 1)] +
                other[rng.randrange(len(other) + 1):])
    if kind == 3:    # a few bytes replaced, inserted or dropped
        changed = bytearray(record)
        at = rng.randrange(12, len(changed)) if len(changed) > 12 else 0
        changed[at:at + rng.randrange(5)] = rng.randbytes(rng.randrange(5))
        return bytes(changed)
    if kind == 4:    # zeros or garbage from a byte on, length kept
        at = rng.randrange(len(record) + 1)
        tail = (bytes(len(record) - at) if rng.random() < 0.5
                else rng.randbytes(len(record) - at))
        return record[:at] + tail
    if kind == 5:    # the state's pickle (decompressed) mutated
        return _mutate_state(rng, record)
    if kind == 6:    # another refs trailer
        size = int.from_bytes(record[8:12], 'big')
        refs = record[12 + size:]
        choice = rng.randrange(4)
        if choice == 0:
            refs = refs[8:]
        elif choice == 1:
            refs = refs + refs[:8]
        elif choice == 2:
            refs = refs[::-1]
        else:
            refs = refs[8:] + rng.randbytes(8)
        return record[:12 + size] + refs
    if kind == 7:
        return random_record(rng)
    return record[:12] + rng.randbytes(rng.randrange(60))


def _mutate_state(rng, record):
    size = int.from_bytes(record[8:12], 'big')
    data = record[12:12 + size]
    end = data.find(b'.') + 1
    if end <= 0 or end >= len(data):
        return record
    state = data[end:]
    compressed = state[:1] == b'x'
    if compressed:
        try:
            state = zlib.decompress(state)
        except zlib.error:
            return record
    changed = bytearray(state)
    if changed:
        at = rng.randrange(len(changed))
        changed[at:at + rng.randrange(3)] = rng.randbytes(rng.randrange(3))
    state = bytes(changed)
    if compressed and rng.random() < 0.8:
        state = zlib.compress(state)
    return _pack(record[:8], data[:end] + state, record[12 + size:])


def disagreement(record):
    """None when the compiled verdict and the twin's agree, else why not."""
    from durus._speedups import record_fine
    from durus.record_check import _python_record_problem, record_problem
    fine = record_fine(record)
    problem = _python_record_problem(record)
    if fine is True and problem is not None:
        return 'compiled: fine; Python: %s' % problem
    if fine is False and problem is None:
        return 'compiled: damaged; Python: fine'
    if (record_problem(record) is None) != (problem is None):
        return 'record_problem differs from its twin'
    return None


def run(count, seed=1):
    """Check ``count`` variants; return (counts of True/False/None,
    [(record, why)...] of disagreements)."""
    from durus._speedups import record_fine
    rng = random.Random(seed)
    records = written_records() + fixture_records()
    tally = {True: 0, False: 0, None: 0}
    wrong = []
    for _ in range(count):
        record = mutate(rng, records)
        tally[record_fine(record)] += 1
        why = disagreement(record)
        if why is not None:
            wrong.append((record, why))
    return tally, wrong


if __name__ == '__main__':
    sys.path.insert(0, HERE)
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    first_seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    tally, wrong = run(total, first_seed)
    print('verdicts of the compiled walk:', tally)
    for record, why in wrong[:20]:
        print(why, record)
    print('%d disagreements in %d variants' % (len(wrong), total))
    sys.exit(1 if wrong else 0)
