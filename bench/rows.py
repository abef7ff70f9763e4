"""What the benchmark runs: workloads, their sizes, and the rows and targets
reported for them.

A Workload is one script in bench/workloads run under each side; a Row picks
one metric of it and says what to compare.  Targets come from the issues:

    Target('speedup', 4)        4.3's time / ours (or ours / 4.3 for a rate) >= 4
    Target('max', 0.5)          ours <= 0.5 (in the metric's unit)
    Target('min', 0.9)          ours >= 0.9 (in the metric's unit)
    Target('floor', 2, 'm')     ours <= 2 x our own metric 'm' from the same run
    Target('min', 500)          ours >= 500 (in the metric's unit)
    None                        shown for information only

Parameter values like '{shop_packed}' name data files (see DATA in run.py).
"""

from collections import namedtuple

Target = namedtuple('Target', 'kind value other')
Target.__new__.__defaults__ = (None,)

# lower: smaller is better (times); higher: bigger is better (rates).
# reference: (workload, metric, what) of 4.3 to show beside a row that has
# no 4.3 counterpart (a ratio is computed from it only for a 'speedup'
# target).
Row = namedtuple('Row', 'issue label metric lower target reference')
Row.__new__.__defaults__ = (None,)


class Workload:
    def __init__(self, name, script, full, quick, rows, sides=('ours', 'durus43'),
                 reps=3, quick_reps=1, requires=(), data=()):
        self.name = name
        self.script = script
        self.full = full
        self.quick = quick
        self.rows = rows
        self.sides = sides          # ('ours',) when 4.3 has no counterpart
        self.reps = reps
        self.quick_reps = quick_reps
        self.requires = requires    # modules our side needs (else "not available yet")
        self.data = data            # data-file names the params use


CORE = ('durus.persistent', 'durus.connection')
FILES = CORE + ('durus.file_storage',)
SERVER = FILES + ('durus.client_storage', 'durus.storage_server', 'durus.__main__')

WORKLOADS = [
    Workload(
        'attr', 'attr_access.py',
        full={'n': 2000000, 'repeats': 5}, quick={'n': 200000, 'repeats': 3},
        reps=5, requires=FILES,
        rows=[
            Row(2, 'attribute read, loaded persistent obj', 'persistent_read_ns', True,
                Target('floor', 2, 'plain_read_ns')),
            Row(2, 'attribute read, plain object (floor)', 'plain_read_ns', True, None),
            Row(2, 'attribute set, persistent obj', 'persistent_set_ns', True,
                Target('speedup', 2.5)),
        ]),
    Workload(
        'btree', 'btree_ops.py', full={'n': 100000}, quick={'n': 20000},
        reps=5, requires=('durus.btree',),
        rows=[
            Row('2,16', 'BTree 100k shuffled inserts + 100k lookups', 'total_s', True,
                Target('speedup', 5)),
            Row(16, '  inserts only', 'insert_s', True, Target('speedup', 5)),
            Row(16, '  lookups only', 'lookup_s', True, Target('speedup', 5)),
        ]),
    Workload(
        'commit', 'commit_small.py', full={'n': 100000, 'per_txn': 1000},
        quick={'n': 10000, 'per_txn': 1000}, reps=3, requires=FILES,
        rows=[Row('2,3,16', 'commit 100k small objs, txns of 1000 (FileStorage)',
                  'commit_s', True, Target('speedup', 3.5))]),
    Workload(
        'open_packed', 'open_file.py', full={'path': '{shop_packed}', 'repeats': 3},
        quick={'path': '{shop_packed}', 'repeats': 3}, reps=9, quick_reps=2,
        requires=FILES, data=('shop',),
        rows=[Row(3, 'open packed 1M-object file + root, in-process', 'first_open_s',
                  True, Target('speedup', 1)),
              Row(3, '  later opens in the same process', 'later_open_s', True, None)]),
    Workload(
        'open_packed_process', 'open_process.py',
        full={'path': '{shop_packed}', 'repeats': 5},
        quick={'path': '{shop_packed}', 'repeats': 3}, reps=3, requires=FILES,
        data=('shop',),
        rows=[Row(3, 'open packed 1M file + root, whole fresh process', 'process_s',
                  True, Target('speedup', 1))]),
    Workload(
        'open_unpacked', 'open_file.py',
        full={'path': '{shop_unpacked}', 'copy': True, 'repeats': 3},
        quick={'path': '{shop_unpacked}', 'copy': True, 'repeats': 3}, reps=3,
        requires=FILES, data=('shop',),
        rows=[
            Row(3, 'open never-packed 1M file: first open (fresh copy)', 'first_open_s',
                True, Target('speedup', 20)),
            Row(3, '  first open + root + close (index saved)', 'first_session_s', True,
                None),
            Row(3, 'open never-packed 1M file: later opens', 'later_open_s', True,
                Target('speedup', 20)),
        ]),
    Workload(
        'cold_load', 'cold_load.py', full={'path': '{shop_packed}', 'n': 100000},
        quick={'path': '{shop_packed}', 'n': 10000}, reps=3, requires=FILES,
        data=('shop',),
        rows=[Row('3,16', 'cold-load 100k objects (BTree walk)', 'load_s', True,
                  Target('speedup', 5)),
              Row(16, '  of which in the cyclic GC (gc.callbacks)', 'gc_s', True,
                  None),
              Row(16, '  the walk outside the GC', 'outside_gc_s', True, None)]),
    Workload(
        'cold_load_floor', 'cold_load_floor.py', full={'n': 100000},
        quick={'n': 10000}, sides=('ours',), reps=3,
        rows=[Row(16, '  floor: the same objects by a bare loop, no durus',
                  'make_s', True, Target('speedup', 5),
                  ('cold_load', 'load_s', "4.3 col: 4.3's cold load")),
              Row(16, '  of which in the cyclic GC', 'gc_s', True, None)]),
    Workload(
        'scan', 'scan_records.py', full={'path': '{shop_packed}'},
        quick={'path': '{shop_packed}'}, reps=3, requires=FILES, data=('shop',),
        rows=[Row(3, 'scan every record + class names (1M file)', 'scan_s', True,
                  Target('speedup', 3))]),
    Workload(
        'pack', 'pack_file.py', full={'path': '{garbage}'}, quick={'path': '{garbage}'},
        reps=3, requires=FILES, data=('garbage',),
        rows=[Row(3, 'pack 200k-record file, half garbage', 'pack_s', True,
                  Target('speedup', 2))]),
    Workload(
        'server_commits', 'server_commits.py', full={'commits': 2000},
        quick={'commits': 300}, reps=3, requires=SERVER,
        rows=[Row(4, 'server: 1 client, 2000 small commits', 'commits_per_s', False,
                  None),
              Row(16, '  share of the floor (1 trip + append), same run', 'of_floor',
                  False, Target('min', 0.9)),
              Row(16, '  that floor', 'floor_commits_per_s', False, None)]),
    Workload(
        'server_clients', 'server_clients.py',
        full={'path': '{clients}', 'clients': 4, 'commits': 200},
        quick={'path': '{clients}', 'clients': 4, 'commits': 50}, reps=3,
        requires=SERVER, data=('clients',),
        rows=[
            Row(4, 'server: 4 clients x 10k cold loads', 'loads_per_s', False,
                Target('speedup', 2)),
            Row('4,16', 'server: 4 clients committing', 'commits_per_s', False,
                Target('speedup', 2)),
        ]),
    Workload(
        'server_keyed', 'server_keyed.py',
        full={'clients': 4, 'per_client': 10000, 'commits': 200},
        quick={'clients': 4, 'per_client': 2000, 'commits': 50}, reps=3,
        requires=SERVER + ('durus.btree',),
        rows=[
            Row(16, 'server: 4 clients, own BTree key ranges, no barrier: commits',
                'commits_per_s', False, Target('speedup', 2)),
            Row(16, '  the same, sum of each client\'s own rate',
                'client_commits_per_s', False, None),
            Row(16, '  the same: cold loads', 'loads_per_s', False,
                Target('speedup', 3)),
        ]),
    Workload(
        'postgresql', 'pg_rows.py',
        full={'path': '{clients}', 'commits': 2000, 'client_commits': 200,
              'cold': 100000},
        quick={'path': '{clients}', 'commits': 300, 'client_commits': 50,
               'cold': 20000},
        sides=('ours',), reps=3, quick_reps=1, data=('clients',),
        requires=CORE + ('durus.pg_storage', 'psycopg'),
        rows=[
            Row(15, 'PgStorage: 1 client, small commits (fsync each)',
                'commits_per_s', False, Target('min', 500)),
            Row(15, 'PgStorage: 4 clients x 10k cold loads', 'clients_loads_per_s',
                False, Target('speedup', 2),
                ('server_clients', 'loads_per_s', "4.3 col: 4.3 server's 4-client loads")),
            Row(15, 'PgStorage: 4 clients committing', 'clients_commits_per_s',
                False, None,
                ('server_clients', 'commits_per_s', "4.3 col: 4.3 server's 4 clients")),
            Row(15, 'PgStorage: cold load of 100k objects', 'cold_load_s', True, None),
            Row(15, 'PgStorage + standby: 4 clients x 10k cold loads',
                'replica_clients_loads_per_s', False, Target('speedup', 2),
                ('server_clients', 'loads_per_s', "4.3 col: 4.3 server's 4-client loads")),
            Row(15, 'PgStorage + standby: cold load of 100k objects',
                'replica_cold_load_s', True, None),
        ]),
    Workload(
        'server_security', 'server_security.py',
        full={'path': '{clients}', 'clients': 4, 'commits': 1000, 'rounds': 8},
        quick={'path': '{clients}', 'clients': 4, 'commits': 100, 'rounds': 2},
        sides=('ours',), reps=1, data=('clients',),
        requires=SERVER + ('durus.auth', 'durus.tls', 'trustme'),
        rows=[
            Row(13, 'server: 4 clients x 10k cold loads, plain', 'load_s_plain',
                True, None),
            Row(13, '  same over TLS', 'load_s_tls', True,
                Target('floor', 1.15, 'load_s_plain')),
            Row(13, '  same with users (SCRAM)', 'load_s_auth', True,
                Target('floor', 1.15, 'load_s_plain')),
            Row(13, '  same over TLS with users', 'load_s_tls_auth', True,
                Target('floor', 1.15, 'load_s_plain')),
            Row(13, '4-client loads, CPU s (clients + server), plain',
                'load_cpu_s_plain', True, None),
            Row(13, '  same over TLS', 'load_cpu_s_tls', True,
                Target('floor', 1.15, 'load_cpu_s_plain')),
            Row(13, '  same with users (SCRAM)', 'load_cpu_s_auth', True,
                Target('floor', 1.15, 'load_cpu_s_plain')),
            Row(13, '  same over TLS with users', 'load_cpu_s_tls_auth', True,
                Target('floor', 1.15, 'load_cpu_s_plain')),
            Row(13, 'server: 1 client, 1000 small commits, plain',
                'commit_s_plain', True, None),
            Row(13, '  same over TLS', 'commit_s_tls', True, None),
            Row(13, '  same with users (SCRAM)', 'commit_s_auth', True, None),
            Row(13, '  same over TLS with users', 'commit_s_tls_auth', True, None),
            Row(13, '1-client commits, CPU s (client + server), plain',
                'commit_cpu_s_plain', True, None),
            Row(13, '  same over TLS with users', 'commit_cpu_s_tls_auth',
                True, None),
            Row(13, 'server: connect, plain', 'connect_s_plain', True, None),
            Row(13, '  connect over TLS with users (handshake + SCRAM)',
                'connect_s_tls_auth', True, None),
        ]),
    Workload(
        'floors', 'floors.py', full={'appends': 2000, 'trips': 5000},
        quick={'appends': 200, 'trips': 500}, sides=('ours',), reps=3,
        rows=[
            Row(4, 'floor: durable 150-byte append (fdatasync)', 'append_s', True, None),
            Row(4, 'floor: loopback TCP round trip, 2 processes', 'rtt_s', True, None),
            Row(4, 'floor: 1-client commits/s, 1 trip + append, no CPU',
                'best_commits_per_s', False, None,
                ('server_commits', 'commits_per_s', "4.3 col: 4.3's 1-client rate")),
        ]),
    Workload(
        'shell_startup', 'shell_startup.py',
        full={'path': '{shop_packed}', 'repeats': 5},
        quick={'path': '{shop_packed}', 'repeats': 2}, sides=('ours',), reps=1,
        requires=FILES + ('durus_shell.cli',), data=('shop',),
        rows=[Row(5, 'durus-shell start to first prompt (1M file)', 'prompt_s', True,
                  Target('max', 0.5),
                  ('open_packed_process', 'process_s', "4.3 col: 4.3's whole-process open"))]),
    Workload(
        'shell_completion', 'shell_completion.py',
        full={'path': '{shop_packed}', 'repeats': 5},
        quick={'path': '{shop_packed}', 'repeats': 3}, sides=('ours',), reps=1,
        requires=FILES + ('durus_shell.completion',), data=('shop',),
        rows=[Row(5, 'completion after [ on a 1M-key BTree (cold)', 'complete_s', True,
                  Target('max', 0.05)),
              Row(5, '  same completion again (warm)', 'warm_complete_s', True, None)]),
    Workload(
        'find', 'find_census.py', full={'path': '{shop_packed}', 'what': 'find'},
        quick={'path': '{shop_packed}', 'what': 'find'}, reps=3,
        requires=FILES + ('durus_shell.scan',), data=('shop',),
        rows=[Row(6, ':find Account vs 4.3 gen_every_instance (1M file)', 'find_s',
                  True, Target('speedup', 5))]),
    Workload(
        'find_screenful', 'shell_find_screenful.py', full={'matches': 100000},
        quick={'matches': 10000}, sides=('ours',), reps=3, quick_reps=1,
        requires=FILES + ('durus_shell.scan', 'durus_shell.paging'),
        rows=[Row(14, ':find with 100k matches: first screenful', 'first_screen_s',
                  True, None),
              Row(14, '  the whole command', 'find_s', True, None),
              Row(14, '  :more building the whole table', 'more_s', True, None)]),
    Workload(
        'census', 'find_census.py', full={'path': '{shop_packed}', 'what': 'census'},
        quick={'path': '{shop_packed}', 'what': 'census'}, reps=3,
        requires=FILES + ('durus_shell.scan',), data=('shop',),
        rows=[Row(6, ':census vs 4.3 get_census (1M file)', 'census_s', True,
                  Target('speedup', 3))]),
    Workload(
        'check', 'check_file.py', full={'path': '{shop_packed}'},
        quick={'path': '{shop_packed}'}, sides=('ours',), reps=3,
        requires=FILES + ('durus.check',), data=('shop',),
        rows=[Row(14, 'durus check, packed 1M-record file', 'check_s', True,
                  Target('max', 10.0)),
              Row(14, '  its peak resident size (MB)', 'max_rss_mb', True,
                  None)]),
    Workload(
        'history', 'history_first.py', full={'path': '{shop_unpacked}'},
        quick={'path': '{shop_unpacked}'}, sides=('ours',), reps=3,
        requires=FILES + ('durus.file_history', 'durus_shell.history_commands'),
        data=('shop',),
        rows=[Row(14, ':history, first in a session (never-packed 1M file)',
                  'first_history_s', True, Target('max', 3.0)),
              Row(14, ':history, the same object again', 'later_history_s',
                  True, Target('max', 0.1)),
              Row(14, ':history, another object (BTree root)', 'other_object_s',
                  True, None)]),
    Workload(
        'diff_undo', 'shell_diff_undo.py', full={'changed': 10000},
        quick={'changed': 1000}, sides=('ours',), reps=3, quick_reps=1,
        requires=FILES + ('durus_shell.changes',),
        rows=[
            Row(6, ':diff with 10,000 changed objects', 'diff_s', True,
                Target('max', 1.0)),
            Row(6, ':undo with 10,000 changed objects', 'undo_s', True,
                Target('max', 1.0)),
        ]),
    Workload(
        'shell_after_load', 'shell_after_load.py',
        full={'path': '{shop_packed}', 'n': 1000000, 'cold_n': 100000},
        quick={'path': '{shop_packed}', 'n': 10000, 'cold_n': 10000},
        sides=('ours',), reps=3, quick_reps=1,
        requires=FILES + ('durus.inspect', 'durus_shell.changes'), data=('shop',),
        rows=[
            Row(12, 'cold-load 100k through a shell Session', 'session_load_s', True,
                Target('floor', 1.1, 'plain_load_s')),
            Row(12, '  same statement through a plain Connection (floor)',
                'plain_load_s', True, None),
            Row(12, '  the walk as a function, plain Connection',
                'plain_function_load_s', True, None),
            Row(12, ':status after a statement loaded 1M objects', 'status_s', True,
                Target('max', 0.3)),
            Row(12, ':diff after a statement loaded 1M objects', 'diff_s', True,
                Target('max', 0.3)),
            Row(12, ':commit of 2 objects after loading 1M', 'commit_s', True,
                Target('max', 0.3)),
            Row(12, 'quit check, nothing pending, after loading 1M', 'quit_check_s',
                True, Target('max', 0.3)),
            Row(12, '  the statement loading 1M (in-place check included)',
                'statement_s', True, None),
            Row(12, '  the same walk through a plain Connection', 'plain_walk_s',
                True, None),
        ]),
]


def by_name():
    return {w.name: w for w in WORKLOADS}
