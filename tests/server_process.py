"""Run `python -m durus -s` as a real process for tests.

``ServerProcess`` starts the command with a log file, waits (bounded)
for its ``Ready on`` line, and stops it with SIGTERM (then SIGKILL) in
``stop()``; fixtures call ``stop()`` in their finalizers.
"""

import os
import signal
import socket
import subprocess
import sys
import time

READY_TIMEOUT = 15


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout=10, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# Signals a child gets from a terminal or from a test stopping it; set in
# the child, so no test depends on what the test runner inherited (started
# with SIGINT ignored, as a background job of a script, for example).
CHILD_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT)


def default_signals(ignored=()):
    """A preexec_fn: default dispositions, except the signals ``ignored``."""
    def set_dispositions():
        for number in CHILD_SIGNALS:
            signal.signal(number, signal.SIG_IGN if number in ignored
                          else signal.SIG_DFL)
    return set_dispositions


def stop_process(process, timeout=10, kill=False):
    """Stop ``process`` and reap it, for finalizers: SIGTERM (SIGKILL if
    ``kill``), then SIGKILL if it is still there after ``timeout``
    seconds.  Returns its exit status; never leaves it running."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode


class ServerProcess(object):

    def __init__(self, args, logfile, python=None, env=None,
                 ready_text='Ready on'):
        self.args = list(args)
        self.logfile = str(logfile)
        command = [python or sys.executable, '-m', 'durus', '-s']
        command += self.args
        if python is None:
            command += ['--logfile', self.logfile, '--logginglevel', '10']
            self.output = None
        else:   # Durus 4.3: logs to stderr
            self.output = open(self.logfile, 'a')
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL,
            stdout=self.output or subprocess.DEVNULL,
            stderr=self.output or subprocess.DEVNULL, env=env,
            cwd=os.path.dirname(os.path.abspath(__file__)))
        try:
            ready = wait_for(lambda: ready_text in self.log() or
                             self.process.poll() is not None, READY_TIMEOUT)
        except BaseException:  # e.g. the test's time is up: no orphan
            self.stop()
            raise
        if not ready:
            self.stop()
            raise AssertionError('server did not start:\n' + self.log())
        if self.process.poll() is not None:
            self.stop()
            raise AssertionError('server exited with %s:\n%s'
                                 % (self.process.returncode, self.log()))

    def log(self):
        try:
            with open(self.logfile) as f:
                return f.read()
        except OSError:
            return ''

    @property
    def pid(self):
        return self.process.pid

    def rss_kb(self):
        with open('/proc/%d/status' % self.pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
        raise AssertionError('no VmRSS')

    def wait(self, timeout=10):
        return self.process.wait(timeout)

    def stop(self):
        try:
            return stop_process(self.process)
        finally:
            if self.output is not None:
                self.output.close()


import pytest  # noqa: E402


@pytest.fixture
def durus_server(tmp_path):
    """Factory: ``durus_server(*args)`` starts `durus -s` with ``args``
    (default: a new file in tmp_path on a free port); every server is
    stopped when the test ends.  The result has ``port``/``address``."""
    started = []

    def start(*args, python=None, port=None, file=True, env=None):
        args = list(args)
        if file is True:
            args += ['--file', str(tmp_path / ('db%d.durus' % len(started)))]
        elif file:
            args += ['--file', str(file)]
        if '--address' not in args:
            port = port or free_port()
            args += ['--port', str(port)]
        server = ServerProcess(args, tmp_path / ('server%d.log' % len(started)),
                               python=python, env=env)
        server.port = port
        server.address = (args[args.index('--address') + 1]
                          if '--address' in args else ('127.0.0.1', port))
        started.append(server)
        return server

    try:
        yield start
    finally:
        errors = []
        for server in started:
            try:
                server.stop()
            except Exception as error:  # stop the others all the same
                errors.append(error)
        if errors:
            raise errors[0]
