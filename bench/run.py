"""Benchmark this project's durus against the real Durus 4.3, side by side.

    python bench/run.py [--quick] [--only NAME[,NAME...]] [--reps N] [--list]

Run it with the interpreter that has this project's dependencies (the dev
venv: .venv/bin/python).  "ours" is that interpreter with this repository
first on PYTHONPATH; "durus43" is bench/.durus43-venv (built on first use).
Each workload script runs as a fresh process, alternating ours, 4.3, ours,
4.3, ... and each side's median is reported.  Big data files are generated
once into bench/data/ by Durus 4.3.  Results go to bench/results/ as JSON.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
WORKLOADS_DIR = os.path.join(BENCH_DIR, 'workloads')
DATA_DIR = os.path.join(BENCH_DIR, 'data')
RESULTS_DIR = os.path.join(BENCH_DIR, 'results')
sys.path.insert(0, BENCH_DIR)

import durus43_venv  # noqa: E402
from report import format_table, judge  # noqa: E402
from rows import WORKLOADS, by_name  # noqa: E402

RUN_TIMEOUT = 1800

# Data files: name -> (make_data params for full size, for quick size, the
# paths the workloads use).
SIZES = {'full': {'shop': 1000000, 'garbage': 100000, 'clients': 10000},
         'quick': {'shop': 20000, 'garbage': 20000, 'clients': 2000}}


def data_paths(size):
    n = SIZES[size]
    shop = os.path.join(DATA_DIR, 'shop-%d' % n['shop'])
    return {
        'shop': {'make': {'kind': 'shop', 'n': n['shop'], 'out': shop},
                 'paths': {'shop_packed': shop + '-packed.durus',
                           'shop_unpacked': shop + '-unpacked.durus'}},
        'garbage': {'make': {'kind': 'garbage', 'n': n['garbage'],
                             'out': os.path.join(DATA_DIR, 'garbage-%d' % n['garbage'])},
                    'paths': {'garbage': os.path.join(
                        DATA_DIR, 'garbage-%d.durus' % n['garbage'])}},
        'clients': {'make': {'kind': 'clients', 'n': n['clients'], 'clients': 4,
                             'out': os.path.join(DATA_DIR, 'clients-4x%d' % n['clients'])},
                    'paths': {'clients': os.path.join(
                        DATA_DIR, 'clients-4x%d.durus' % n['clients'])}},
    }


def ensure_data(names, size, durus43):
    """Generate missing data files with Durus 4.3; return name -> path."""
    paths = {}
    for name, spec in data_paths(size).items():
        paths.update(spec['paths'])
        if name in names and not all(map(os.path.exists, spec['paths'].values())):
            os.makedirs(DATA_DIR, exist_ok=True)
            print('generating %s with Durus 4.3 (once)...' % name, file=sys.stderr)
            run_script(durus43, 'durus43', 'make_data.py', spec['make'], quiet=False)
    return paths


def side_env(side):
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    if side == 'ours':
        env['PYTHONPATH'] = REPO_DIR
    return env


class WorkloadFailed(Exception):
    pass


def run_script(python, side, script, params, quiet=True):
    """Run one workload process; return its metrics dict."""
    # cwd is the workloads directory so no `durus` package shadows the side's.
    result = subprocess.run(
        [python, os.path.join(WORKLOADS_DIR, script), json.dumps(params)],
        capture_output=quiet, text=True, env=side_env(side), cwd=WORKLOADS_DIR,
        timeout=RUN_TIMEOUT)
    if result.returncode != 0:
        lines = (result.stderr or '').strip().splitlines() or ['exit %d' % result.returncode]
        raise WorkloadFailed(lines[-1][:200])
    if not quiet:
        return {}
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report['side'] != side:
        raise WorkloadFailed('ran %s durus from %s' % (report['side'], report['durus']))
    return report['metrics']


def missing_modules(python, modules):
    """Which of `modules` our side cannot find (checked without importing)."""
    code = ('import importlib.util, sys\n'
            'def found(m):\n'
            '    try:\n'
            '        return importlib.util.find_spec(m) is not None\n'
            '    except ImportError:\n'
            '        return False\n'
            'print(" ".join(m for m in sys.argv[1:] if not found(m)))\n')
    result = subprocess.run([python, '-c', code] + list(modules), capture_output=True,
                            text=True, env=side_env('ours'), cwd=WORKLOADS_DIR)
    return result.stdout.split()


def resolve(params, paths):
    return {key: value.format(**paths) if isinstance(value, str) else value
            for key, value in params.items()}


def run_workload(workload, size, pythons, paths, reps=None, log=print, sides=None):
    """Run a workload interleaved across its sides.

    Returns {'runs': {side: [metrics...]}, 'errors': {side: msg},
    'median': {side: {metric: value}}}.
    """
    params = resolve(workload.full if size == 'full' else workload.quick, paths)
    if reps is None:
        reps = workload.reps if size == 'full' else workload.quick_reps
    sides = workload.sides if sides is None else sides
    runs = {side: [] for side in sides}
    errors = {}
    for rep in range(reps):
        for side in sides:
            if side in errors:
                continue
            try:
                metrics = run_script(pythons[side], side, workload.script, params)
            except (WorkloadFailed, subprocess.TimeoutExpired) as exc:
                errors[side] = 'failed: %s' % (exc,)
                log('  %s %s: %s' % (workload.name, side, errors[side]))
                continue
            runs[side].append(metrics)
            log('  %s %s run %d: %s' % (workload.name, side, rep + 1, ', '.join(
                '%s=%.4g' % item for item in sorted(metrics.items()))))
    median = {}
    for side, side_runs in runs.items():
        if side_runs:
            median[side] = {key: statistics.median(r[key] for r in side_runs)
                            for key in side_runs[0]}
    return {'params': params, 'runs': runs, 'errors': errors, 'median': median}


def machine_info():
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True, cwd=REPO_DIR).stdout.strip()
    return {'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            'cpu': cpu, 'cores': os.cpu_count(), 'python': platform.python_version(),
            'platform': platform.platform(), 'commit': commit}


def header_line(info):
    line = '%s, %s (%d cores), Python %s, commit %s, %s sizes' % (
        info['date'], info['cpu'], info['cores'], info['python'], info['commit'],
        info['size'])
    if 'load_average' in info:
        line += ', load average %.1f at start, %.1f at end' % (
            info['load_average']['start'][0], info['load_average']['end'][0])
    return line


def compile_sources():
    """Byte-compile this project as pip does for Durus 4.3's install.

    With PYTHONDONTWRITEBYTECODE set (or stale .pyc files) every fresh
    process would compile our modules again, which start-up rows would
    count against us but never against the installed Durus 4.3.
    """
    import compileall
    for package in ('durus', 'durus_shell'):
        compileall.compile_dir(os.path.join(REPO_DIR, package), quiet=1)


def warn_about_startup_cost():
    """Say so when this interpreter's site start-up imports an editable
    install's finder: it costs ~20 ms per process, which the whole-process
    rows would charge to durus (4.3's venv has no such hook)."""
    import glob
    import site
    for directory in site.getsitepackages():
        if glob.glob(os.path.join(directory, '__editable___*_finder.py')):
            print('warning: %s has an editable install with an import finder '
                  '(~20 ms per process start); reinstall with\n'
                  '  pip install -e . --config-settings editable_mode=compat'
                  % directory, file=sys.stderr)
            return


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='small sizes, one rep')
    parser.add_argument('--only', help='comma-separated workload names')
    parser.add_argument('--reps', type=int, help='override repetitions per side')
    parser.add_argument('--list', action='store_true', help='list workloads and exit')
    parser.add_argument('--show', metavar='JSON', help='print the table of a saved result')
    args = parser.parse_args(argv)
    if args.show:
        with open(args.show) as f:
            saved = json.load(f)
        print(header_line(saved['machine']))
        print(format_table(judge(WORKLOADS, saved['workloads'])))
        return 0
    if args.list:
        for w in WORKLOADS:
            print('%-20s %s' % (w.name, '; '.join(r.label.strip() for r in w.rows)))
        return 0
    selected = WORKLOADS
    if args.only:
        names = args.only.split(',')
        unknown = [n for n in names if n not in by_name()]
        if unknown:
            parser.error('unknown workload(s) %s; see --list' % ', '.join(unknown))
        selected = [by_name()[n] for n in names]
    size = 'quick' if args.quick else 'full'
    pythons = {'ours': sys.executable, 'durus43': durus43_venv.ensure()}
    compile_sources()
    warn_about_startup_cost()
    load_at_start = os.getloadavg()

    results = []
    for workload in selected:
        missing = missing_modules(pythons['ours'], workload.requires)
        sides = [s for s in workload.sides if not (missing and s == 'ours')]
        if missing:
            print('%s: ours not available yet (missing %s)' % (
                workload.name, ', '.join(missing)))
        if not sides:
            results.append({'name': workload.name, 'unavailable': missing})
            continue
        paths = ensure_data(workload.data, size, pythons['durus43'])
        print('%s:' % workload.name)
        outcome = run_workload(workload, size, pythons, paths, reps=args.reps, sides=sides)
        outcome['name'] = workload.name
        if missing:
            outcome['unavailable'] = missing
        results.append(outcome)

    info = machine_info()
    info['load_average'] = {'start': load_at_start, 'end': os.getloadavg()}
    rows = judge(selected, results)
    info['size'] = size
    table = format_table(rows)
    print()
    print(header_line(info))
    print(table)
    os.makedirs(RESULTS_DIR, exist_ok=True)
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    out = os.path.join(RESULTS_DIR, '%s-%s.json' % (stamp, size))
    with open(out, 'w') as f:
        json.dump({'machine': info, 'rows': rows, 'workloads': results}, f, indent=1)
    print('\nresults: %s' % os.path.relpath(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
