"""The same API snippets give the same results here and in Durus 4.3."""

import os
import subprocess
import sys

from durus43_env import run_durus43

SNIPPETS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        'parity', 'api_snippets.py')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_api_snippets_match_durus43(durus43_python):
    with open(SNIPPETS) as f:
        script = f.read()
    theirs = run_durus43(durus43_python, script).stdout
    ours = subprocess.run(
        [sys.executable, SNIPPETS], capture_output=True, text=True,
        timeout=60, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    assert ours.returncode == 0, ours.stderr
    assert len(theirs.splitlines()) > 15
    assert ours.stdout.splitlines() == theirs.splitlines()
