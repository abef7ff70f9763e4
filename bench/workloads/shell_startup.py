"""durus-shell from process start to its first prompt, in a pseudo-terminal.

Spawns `python -m durus_shell PATH` (this interpreter) with pexpect in an
80x24 pty, answers the terminal's cursor-position requests, waits for the
prompt `durus> `, then leaves with Ctrl-D.
Params: path, repeats.  Metrics: prompt_s (median), prompt_best_s.
"""

import os
import statistics
import sys

import pexpect

from _bench import clock, emit, params

# prompt_toolkit draws the prompt's trailing space as a cursor move.
PROMPT = r'durus(\[ro\])?>'
CPR_REQUEST = r'\x1b\[6n'
HERE = os.path.dirname(os.path.abspath(__file__))


def one_start(path):
    env = dict(os.environ, TERM='xterm-256color', NO_COLOR='1',
               HOME=os.environ.get('BENCH_SHELL_HOME', os.environ.get('HOME', '/tmp')))
    start = clock()
    child = pexpect.spawn(sys.executable, ['-m', 'durus_shell', path], cwd=HERE,
                          env=env, dimensions=(24, 80), timeout=60, encoding='utf-8')
    try:
        # Answer cursor-position requests as a real terminal does (without an
        # answer prompt_toolkit waits, then warns).
        while child.expect([PROMPT, CPR_REQUEST]) == 1:
            child.send('\x1b[1;1R')
        elapsed = clock() - start
        child.sendcontrol('d')
        child.expect(pexpect.EOF, timeout=20)
    finally:
        child.close(force=True)
    return elapsed


def main():
    p = params()
    path = os.path.abspath(p['path'])
    times = [one_start(path) for _ in range(p.get('repeats', 5))]
    emit(prompt_s=statistics.median(times), prompt_best_s=min(times))


if __name__ == '__main__':
    main()
