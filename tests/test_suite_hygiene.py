"""The suite cannot hang or leave processes behind: a test that runs past
its time fails (pytest-timeout), the processes it started are stopped by
its finalizers, and all of it works with SIGINT ignored by the runner."""

import os
import signal
import subprocess
import sys
import time

from server_process import default_signals

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

HANGING_TEST = '''
import os, subprocess, sys, time
import pytest
from server_process import stop_process


@pytest.fixture
def child():
    process = subprocess.Popen(
        [sys.executable, '-c', 'import time; time.sleep(120)'])
    with open(os.environ['CHILD_PID_FILE'], 'w') as f:
        f.write(str(process.pid))
    yield process
    stop_process(process)


def test_runs_far_past_its_time(child):
    deadline = time.monotonic() + 100
    while time.monotonic() < deadline:
        time.sleep(0.01)
'''


def test_a_hanging_test_fails_on_time_and_its_process_is_stopped(tmp_path):
    (tmp_path / 'test_hanging.py').write_text(HANGING_TEST)
    pid_file = tmp_path / 'child.pid'
    env = dict(os.environ, PYTHONPATH=TESTS_DIR,
               CHILD_PID_FILE=str(pid_file))
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         '--timeout', '2', 'test_hanging.py'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True,
        timeout=90, preexec_fn=default_signals(ignored=(signal.SIGINT,)))
    assert time.monotonic() - started < 60
    assert run.returncode == 1, run.stdout + run.stderr
    assert 'Timeout' in run.stdout and '1 failed' in run.stdout
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass  # stopped and reaped by the finalizer
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError('the hanging test left its process %d' % pid)
