"""Where the no-barrier four-client row's commit span goes: a diagnostic,
not a row.

Runs bench/workloads/server_keyed.py alternately with ours and Durus 4.3
and prints, per run, each client's phase edges in milliseconds from the
moment the clients were launched (one clock for all processes:
perf_counter is CLOCK_MONOTONIC): process start (after its first
imports), connected, load end, first commit, last commit; then the
split of the row's span (first commit to last) into

* `lead`: from the first commit to the last client's end of loading
  (the stretch where fewer than four clients commit);
* `tail`: from there to the last commit.

    python bench/keyed_timeline.py [REPS] [PER_CLIENT]
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


def one_run(python, side, per_client, tmp):
    path = os.path.join(tmp, 'timeline.json')
    params = {'clients': 4, 'per_client': per_client, 'commits': 200,
              'timeline': path}
    result = subprocess.run(
        [python, os.path.join(run.WORKLOADS_DIR, 'server_keyed.py'),
         json.dumps(params)], capture_output=True, text=True,
        env=run.side_env(side), cwd=run.WORKLOADS_DIR,
        timeout=run.RUN_TIMEOUT, check=True)
    metrics = json.loads(result.stdout.strip().splitlines()[-1])['metrics']
    with open(path) as f:
        timeline = json.load(f)
    return metrics, timeline


def show(name, metrics, timeline):
    t0 = timeline['launched']
    clients = timeline['clients']

    def ms(t):
        return (t - t0) * 1000

    print('%s: %.0f commits/s, loads %.0f/s, own rates summed %.0f/s' % (
        name, metrics['commits_per_s'], metrics['loads_per_s'],
        metrics['client_commits_per_s']))
    if 'commits_per_fsync' in metrics:
        print('  commits per fdatasync %.2f, one-step share %.3f, retries %d,'
              ' overlap %.2f' % (metrics['commits_per_fsync'],
                                 metrics['one_step_share'],
                                 metrics['one_step_retries'],
                                 metrics['overlap']))
    for k, c in enumerate(clients):
        print('  client %d: started %6.0f  connected %6.0f  loaded %6.0f'
              '  commits %6.0f - %6.0f (%4.0f ms; load %5.0f ms)' % (
                  k, ms(c['started']), ms(c['connected']), ms(c['load_end']),
                  ms(c['commit_start']), ms(c['commit_end']),
                  (c['commit_end'] - c['commit_start']) * 1000,
                  (c['load_end'] - c['load_start']) * 1000))
    first = min(c['commit_start'] for c in clients)
    last_loaded = max(c['commit_start'] for c in clients)
    end = max(c['commit_end'] for c in clients)
    parts = {'span': (end - first) * 1000, 'lead': (last_loaded - first) * 1000,
             'tail': (end - last_loaded) * 1000,
             'start spread': (max(c['started'] for c in clients) -
                              min(c['started'] for c in clients)) * 1000}
    print('  span %(span).0f ms = lead %(lead).0f + tail %(tail).0f;'
          ' start spread %(start spread).0f ms' % parts)
    return parts


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    per_client = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    durus43 = durus43_venv.ensure()
    sides = [('ours', sys.executable, 'ours'), ('4.3', durus43, 'durus43')]
    if os.environ.get('KEYED_TIMELINE_SIDES') == 'ours':
        sides = sides[:1]
    summary = {name: [] for name, _, _ in sides}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(reps):
            for name, python, side in sides:
                print('load average %.1f' % os.getloadavg()[0])
                metrics, timeline = one_run(python, side, per_client, tmp)
                parts = show(name, metrics, timeline)
                parts['rate'] = metrics['commits_per_s']
                summary[name].append(parts)
    print('medians:')
    for name, runs in summary.items():
        print('  %-5s %s' % (name, '  '.join(
            '%s %.0f' % (key, median(r[key] for r in runs))
            for key in runs[0])))


if __name__ == '__main__':
    main()
