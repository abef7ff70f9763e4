"""Scan every record of a file (gen_oid_record() without a start oid) and
extract each record's class name, counting instances per class.

Params: path.  Metrics: scan_s, records, records_per_s.
"""

from durus.file_storage import FileStorage
from durus.serialize import extract_class_name

from _bench import clock, emit, params


def main():
    storage = FileStorage(params()['path'], readonly=True)
    counts = {}
    start = clock()
    for _oid, record in storage.gen_oid_record():
        name = extract_class_name(record)
        counts[name] = counts.get(name, 0) + 1
    elapsed = clock() - start
    storage.close()
    records = sum(counts.values())
    emit(scan_s=elapsed, records=records, records_per_s=records / elapsed)


if __name__ == '__main__':
    main()
