"""Helpers shared by the workload scripts (both interpreters import this).

A workload is run as `python WORKLOAD.py 'JSON-PARAMS'` and prints one JSON
object on its last stdout line: {"durus": <where durus came from>,
"metrics": {name: number}}.  Times are in seconds unless a name says
otherwise.
"""

import gc
import json
import os
import sys
import time

import durus

clock = time.perf_counter


def params():
    return json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}


def is_durus43():
    return getattr(durus, '__version__', None) == '4.3' and '.durus43-venv' in durus.__file__


def side():
    return 'durus43' if is_durus43() else 'ours'


class GcTime(object):
    """Time spent inside the cyclic collector while in a with block (from
    gc.callbacks), and how many full (generation 2) collections ran."""

    def __init__(self):
        self.seconds = 0.0
        self.full_collections = 0
        self._started = 0.0

    def _note(self, phase, info):
        if phase == 'start':
            self._started = clock()
        else:
            self.seconds += clock() - self._started
            if info['generation'] == 2:
                self.full_collections += 1

    def __enter__(self):
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self._note)


def emit(**metrics):
    sys.stdout.flush()
    print(json.dumps({'durus': os.path.dirname(durus.__file__), 'side': side(),
                      'metrics': metrics}))


def best_of(repeats, fn):
    """Smallest wall time of `repeats` calls of fn() (for in-process micro loops)."""
    best = None
    for _ in range(repeats):
        start = clock()
        fn()
        elapsed = clock() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


def run_client_processes(argvs, barrier=True, timeout=600):
    """Run one client process per argv and return the JSON report each
    prints last.  With ``barrier`` every client prints ``ready`` once set
    up and starts its timed part only when all are (``go`` on stdin).
    Every process is killed if anything fails."""
    import subprocess
    stdin = subprocess.PIPE if barrier else None
    procs = [subprocess.Popen([sys.executable] + list(argv), stdin=stdin,
                              stdout=subprocess.PIPE, text=True)
             for argv in argvs]
    try:
        if barrier:
            for proc in procs:
                if proc.stdout.readline().strip() != 'ready':
                    raise SystemExit('a client failed to start')
            for proc in procs:
                proc.stdin.write('go\n')
                proc.stdin.flush()
        reports = []
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise SystemExit('a client failed')
            reports.append(json.loads(out.strip().splitlines()[-1]))
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def client_of_clients_row(storage, index, commits):
    """One client of the four-client rows (server_clients, pg_rows): at
    ``go``, load every object of its own list ``c<index>``, then commit
    ``commits`` one-attribute changes; print its timings as JSON."""
    from durus.connection import Connection
    connection = Connection(storage, cache_size=100000)
    print('ready', flush=True)
    sys.stdin.readline()
    load_start = clock()
    objects = connection.get_root()['c%d' % index]
    total = 0
    for obj in objects:
        total += obj.n
    load_end = clock()
    loads = connection.get_load_count()
    for i in range(commits):
        objects[i % len(objects)].n = -i
        connection.commit()
    commit_end = clock()
    storage.close()
    print(json.dumps({'load_start': load_start, 'load_end': load_end,
                      'commit_end': commit_end, 'loads': loads}), flush=True)
