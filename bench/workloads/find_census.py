"""Find every instance of a class / count instances per class over a file.

Ours: the shell's scanning API (durus_shell.scan), which is what :find and
:census run.  Durus 4.3: durus.connection.gen_every_instance and
durus.storage.get_census, the tools it offers for the same questions.
Params: path, what ('find' or 'census').
Metrics: find_s and found, or census_s and classes.
"""

from durus.connection import Connection
from durus.file_storage import FileStorage

from _bench import clock, emit, is_durus43, params
from bench_models import Account


def find_durus43(connection):
    from durus.connection import gen_every_instance
    return list(gen_every_instance(connection, Account))


def census_durus43(connection):
    from durus.storage import get_census
    return get_census(connection.get_storage())


def find_ours(connection):
    from durus_shell.scan import find_instances
    return find_instances(connection, 'bench_models.Account').items


def census_ours(connection):
    from durus_shell.scan import census
    return census(connection.get_storage()).items


def main():
    p = params()
    storage = FileStorage(p['path'], readonly=True)
    connection = Connection(storage)
    start = clock()
    if p['what'] == 'find':
        found = (find_durus43 if is_durus43() else find_ours)(connection)
        emit(find_s=clock() - start, found=len(found))
    else:
        census = (census_durus43 if is_durus43() else census_ours)(connection)
        emit(census_s=clock() - start, classes=len(census))
    storage.close()


if __name__ == '__main__':
    main()
