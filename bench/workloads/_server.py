"""Start and always stop a `durus -s` storage server on a free loopback port.

The server is this interpreter's own `python -m durus -s`, so each side
benchmarks its own server.  Its output goes to a log file that is shown if
it fails to start.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time

HOST = '127.0.0.1'
WORKLOADS_DIR = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_until_listening(port, process, log_path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.02)
    with open(log_path) as log:
        raise SystemExit('storage server did not start on port %d:\n%s'
                         % (port, log.read()))


@contextlib.contextmanager
def running_server(path, log_path, extra_args=(), processes=None):
    """Yield the port of a server on `path`; stop it on the way out.
    `processes`, a list, gets the server's Popen."""
    port = free_port()
    with open(log_path, 'w') as log:
        # cwd: `python -m` puts the working directory first on sys.path.
        process = subprocess.Popen(
            [sys.executable, '-m', 'durus', '-s', '--file', path,
             '--host', HOST, '--port', str(port)] + list(extra_args),
            stdout=log, stderr=subprocess.STDOUT, cwd=WORKLOADS_DIR)
    if processes is not None:
        processes.append(process)
    try:
        wait_until_listening(port, process, log_path)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
