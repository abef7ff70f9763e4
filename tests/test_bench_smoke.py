"""Keeps the benchmark harness (bench/) from rotting: one tiny workload run
through the real runner under our interpreter, and the PASS/FAIL logic."""

import importlib.util
import os
import sys

BENCH_RUN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         'bench', 'run.py')


def load_runner():
    spec = importlib.util.spec_from_file_location('bench_run', BENCH_RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_btree_workload_runs_our_durus_and_reports():
    run = load_runner()
    import rows  # importable once the runner has put bench/ on sys.path
    real = rows.by_name()['btree']
    tiny = rows.Workload('btree', real.script, full={}, quick={'n': 300},
                         rows=real.rows, sides=('ours',))
    outcome = run.run_workload(tiny, 'quick', {'ours': sys.executable}, {},
                               reps=1, log=lambda *a: None)
    # run_script checks the process reported *our* durus, not 4.3's.
    assert outcome['errors'] == {}
    metrics = outcome['median']['ours']
    assert metrics['total_s'] >= metrics['insert_s'] > 0
    outcome['name'] = 'btree'
    judged = run.judge([tiny], [outcome])
    assert [r['ours'] for r in judged] == [metrics['total_s'], metrics['insert_s'],
                                           metrics['lookup_s']]
    assert 'BTree' in run.format_table(judged)


def test_targets_judge_ratio_direction_and_floor():
    load_runner()
    import report
    import rows
    timed = rows.Workload('w', 'x.py', {}, {}, rows=[
        rows.Row(2, 'time', 'run_s', True, rows.Target('speedup', 3)),
        rows.Row(2, 'rate', 'ops_per_s', False, rows.Target('speedup', 2)),
        rows.Row(2, 'read', 'read_ns', True, rows.Target('floor', 2, 'plain_ns')),
        rows.Row(5, 'prompt', 'run_s', True, rows.Target('max', 0.5)),
        rows.Row(16, 'share', 'of_floor', False, rows.Target('min', 0.9)),
    ])
    result = {'name': 'w', 'median': {
        'ours': {'run_s': 1.0, 'ops_per_s': 150.0, 'read_ns': 30.0, 'plain_ns': 10.0,
                 'of_floor': 0.85},
        'durus43': {'run_s': 4.0, 'ops_per_s': 100.0, 'read_ns': 45.0, 'plain_ns': 10.0}}}
    judged = {r['label']: r for r in report.judge([timed], [result])}
    assert judged['time']['ratio'] == 4.0 and judged['time']['verdict'] == 'PASS'
    assert judged['rate']['ratio'] == 1.5 and judged['rate']['verdict'] == 'FAIL'
    assert judged['read']['verdict'] == 'FAIL'      # 30 ns > 2 x 10 ns plain
    assert judged['prompt']['verdict'] == 'FAIL'    # 1 s > 0.5 s
    assert judged['share']['verdict'] == 'FAIL'     # 0.85 < 0.9
    assert judged['share']['target'] == '>= 0.9'
