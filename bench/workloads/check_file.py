"""`durus check` on a whole file (issue 14: a 1M-record packed file in at
most 10 s, bounded memory).  Ours only: Durus 4.3 has no such check.

Runs durus.check.check_storage in this process, as `durus check PATH`
does.  Params: path.  Metrics: check_s, records, records_per_s, problems,
max_rss_mb (the whole process's peak resident size, file pages it read
included).
"""

import resource

from durus.check import check_storage
from durus.file_storage import FileStorage

from _bench import clock, emit, params


def main():
    storage = FileStorage(params()['path'], readonly=True)
    start = clock()
    report = check_storage(storage)
    elapsed = clock() - start
    storage.close()
    emit(check_s=elapsed, records=report.records,
         records_per_s=report.records / elapsed, problems=report.problems,
         max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == '__main__':
    main()
