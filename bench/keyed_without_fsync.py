"""What the no-barrier four-client row would give if our server did not
fsync: a diagnostic only, never a way to run a server.

Runs bench/workloads/server_keyed.py (four clients, own BTree key
ranges, no start barrier) alternately as

* ours: the normal server (an fdatasync per batch of commits);
* ours, fsync off: the same, with os.fdatasync made a no-op in every
  process of that run (a sitecustomize on PYTHONPATH), so each commit
  costs what 4.3's does, a round trip and a write without a sync;
* 4.3: Durus 4.3's server, which does not fsync at all;

and prints each one's median commits/s (the row's metric: all commits
over the span from the first commit to the last), the sum of each
client's own rate, our commits per fdatasync and the overlap of the
commit phases.

    python bench/keyed_without_fsync.py [REPS]
"""

import json
import os
import subprocess
import sys
import tempfile
from statistics import median

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import durus43_venv                      # noqa: E402
import run                               # noqa: E402

NO_FSYNC = '''import os
os.fdatasync = lambda fd: None   # diagnostic run: nothing is durable
'''
PARAMS = {'clients': 4, 'per_client': 10000, 'commits': 200}


def keyed(python, env):
    """One run of server_keyed.py; its metrics."""
    result = subprocess.run(
        [python, os.path.join(run.WORKLOADS_DIR, 'server_keyed.py'),
         json.dumps(PARAMS)], capture_output=True, text=True, env=env,
        cwd=run.WORKLOADS_DIR, timeout=run.RUN_TIMEOUT, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])['metrics']


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    durus43 = durus43_venv.ensure()
    results = {'ours': [], 'ours, fsync off': [], '4.3': []}
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, 'sitecustomize.py'), 'w') as out:
            out.write(NO_FSYNC)
        no_fsync = run.side_env('ours')
        no_fsync['PYTHONPATH'] += os.pathsep + tmp
        for _ in range(reps):
            results['ours'].append(keyed(sys.executable, run.side_env('ours')))
            results['ours, fsync off'].append(keyed(sys.executable, no_fsync))
            results['4.3'].append(keyed(durus43, run.side_env('durus43')))
    print('server_keyed %s, %d runs a side, alternating; medians; load '
          'average %.1f at the end' % (PARAMS, reps, os.getloadavg()[0]))
    base = median([m['commits_per_s'] for m in results['4.3']])
    for name, runs in results.items():
        rate = median([m['commits_per_s'] for m in runs])
        line = ('%-16s %7.0f commits/s (%.2fx 4.3)  own rates summed %7.0f/s'
                '  overlap %.2f' % (
                    name, rate, rate / base,
                    median([m['client_commits_per_s'] for m in runs]),
                    median([m['overlap'] for m in runs])))
        if 'commits_per_fsync' in runs[0]:
            line += '  commits per fdatasync %.2f' % median(
                [m['commits_per_fsync'] for m in runs])
        print(line)


if __name__ == '__main__':
    main()
