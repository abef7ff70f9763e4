"""The `durus` command: -s (serve/stop), -p (pack), -c (durus-shell)."""

import os
import socket
import subprocess
import sys
import uuid

import pytest

import durus.__main__ as durus_main
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict

from server_process import (durus_server, free_port,  # noqa: F401
                            stop_process, wait_for)


def durus(*args, timeout=60):
    return subprocess.run([sys.executable, '-m', 'durus'] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def test_usage_without_or_with_an_unknown_command():
    for args in ([], ['-x']):
        result = durus(*args)
        assert result.returncode == 2
        assert 'usage: durus -s | -c | -p' in result.stderr
    assert durus('--help').returncode == 0


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), 'durus')
    result = subprocess.run([script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and 'usage' in result.stderr


def test_serve_help_lists_the_options():
    result = durus('-s', '--help')
    for option in ('--file', '--storage-class', '--host', '--port',
                   '--address', '--owner', '--group', '--umask', '--gcbytes',
                   '--logginglevel', '--logfile', '--repair', '--readonly',
                   '--stop'):
        assert option in result.stdout


def test_listens_on_loopback_by_default(durus_server):
    server = durus_server()
    assert 'Ready on 127.0.0.1:%d' % server.port in server.log()
    assert 'WARNING' not in server.log()
    assert 'Storage file=' in server.log()


def test_listening_beyond_loopback_needs_users_or_insecure(durus_server,
                                                          tmp_path):
    result = durus('-s', '--host', '0.0.0.0', '--port', str(free_port()),
                   '--file', str(tmp_path / 'refused.durus'))
    assert result.returncode == 1
    assert 'refusing to listen on 0.0.0.0' in result.stderr
    assert 'durus passwd' in result.stderr and '--insecure' in result.stderr
    server = durus_server('--host', '0.0.0.0', '--insecure')
    assert 'without users (--insecure)' in server.log()
    Connection(ClientStorage(port=server.port)).commit()


def test_abstract_address_option_works(durus_server):
    name = '@durus-cmd-%s' % uuid.uuid4().hex
    # An abstract socket has no permissions: users, or --insecure.
    refused = durus('-s', '--address', name)
    assert refused.returncode == 1 and 'without users' in refused.stderr
    server = durus_server('--address', name, '--owner', str(os.getuid()),
                          '--insecure')
    connection = Connection(ClientStorage(address=name))
    connection.get_root()['ok'] = True
    connection.commit()
    result = durus('-s', '--stop', '--address', name)
    assert result.returncode == 0
    assert server.wait(10) == 0


def test_stop_when_nobody_runs():
    result = durus('-s', '--stop', '--port', str(free_port()))
    assert result.returncode == 0
    assert "doesn't seem to be running" in result.stderr


def test_temporary_storage_without_file(durus_server):
    # Without --file the server keeps a new, empty database in a
    # temporary file: commits are served to every client while it runs,
    # the file is named while open (as Durus 4.3's NamedTemporaryFile) and
    # removed when the server stops, and the next such server starts empty.
    server = durus_server(file=None)
    writer = Connection(ClientStorage(port=server.port))
    assert len(writer.get_root()) == 0
    writer.get_root()['x'] = PersistentDict(answer=42)
    writer.commit()
    reader = Connection(ClientStorage(port=server.port))
    assert reader.get_root()['x']['answer'] == 42
    logged = server.log().split('Storage file=', 1)[1].split()[0]
    assert os.path.exists(logged)
    server.stop()
    assert not os.path.exists(logged), 'the temporary file was left behind'
    other = durus_server(file=None)
    assert len(Connection(ClientStorage(port=other.port)).get_root()) == 0


def test_serves_a_sniffed_format(durus_server, fixture_copy):
    path = fixture_copy('dfs20.durus')
    server = durus_server(file=path)
    # a SHELF-1 reader would refuse this DFS20 file
    root = Connection(ClientStorage(port=server.port)).get_root()
    assert len(root) > 0


def test_storage_class_option(durus_server, tmp_path):
    server = durus_server('--storage-class', 'durus.file_storage.FileStorage',
                          file=tmp_path / 'explicit.durus')
    Connection(ClientStorage(port=server.port)).commit()
    assert FileStorage.has_format(open(tmp_path / 'explicit.durus', 'rb'))


def test_readonly_server_refuses_commits(durus_server, tmp_path):
    path = tmp_path / 'ro.durus'
    setup = Connection(FileStorage(str(path)))
    setup.get_root()['x'] = 1
    setup.commit()
    setup.storage.close()
    server = durus_server('--readonly', file=path)
    connection = Connection(ClientStorage(port=server.port))
    assert connection.get_root()['x'] == 1
    connection.get_root()['x'] = 2
    with pytest.raises(OSError, match='read-only'):
        connection.commit()
    # Refused by the server before it reaches the storage (--readonly
    # makes every connection read-only).
    assert 'the server is read-only (--readonly)' in server.log()


def test_open_errors_are_one_line(tmp_path):
    junk = tmp_path / 'junk.durus'
    junk.write_bytes(b'not a database at all')
    result = durus('-s', '--file', str(junk), '--port', str(free_port()))
    assert result.returncode == 1
    assert result.stderr.startswith('durus: ')
    assert 'Traceback' not in result.stderr
    locked = tmp_path / 'locked.durus'
    holder = FileStorage(str(locked))
    try:
        result = durus('-s', '--file', str(locked), '--port',
                       str(free_port()))
    finally:
        holder.close()
    assert result.returncode == 1 and 'Traceback' not in result.stderr


def test_address_in_use_is_one_line(durus_server):
    server = durus_server()
    result = durus('-s', '--port', str(server.port))
    assert result.returncode == 1
    assert 'cannot listen on 127.0.0.1:%d' % server.port in result.stderr


def _garbage_file(path):
    connection = Connection(FileStorage(str(path)))
    connection.get_root()['junk'] = PersistentDict(
        (i, PersistentDict(i=i)) for i in range(100))
    connection.commit()
    del connection.get_root()['junk']
    connection.commit()
    connection.storage.close()


def test_pack_a_file(tmp_path):
    path = tmp_path / 'pack.durus'
    _garbage_file(path)
    before = os.path.getsize(path)
    result = durus('-p', '--file', str(path))
    assert result.returncode == 0, result.stderr
    assert os.path.getsize(path) < before
    assert os.path.exists(str(path) + '.prepack')


def test_pack_through_a_server(durus_server, tmp_path):
    path = tmp_path / 'served.durus'
    _garbage_file(path)
    before = os.path.getsize(path)
    server = durus_server(file=path)
    result = durus('-p', '--port', str(server.port))
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: 'Pack finished' in server.log(), 10)
    assert os.path.getsize(path) < before


def test_client_options_map_to_durus_shell(monkeypatch):
    import durus_shell.cli
    calls = []
    monkeypatch.setattr(durus_shell.cli, 'main',
                        lambda argv: calls.append(argv) or 0)
    assert durus_main.main(['-c', '--file', 'db.durus', '--readonly',
                            '--repair', '--cache_size=50',
                            '--startup', 'start.py']) == 0
    assert durus_main.main(['-c', '--host', '::1', '--port', '3000']) == 0
    assert durus_main.main(['-c', '--address', 'local.sock']) == 0
    assert durus_main.main(['-c', '--address=@abstract']) == 0
    assert durus_main.main(['-c', '--file', __file__]) == 0
    assert calls == [
        ['db.durus', '--create', '--readonly', '--repair', '--cache-size',
         '50', '--startup', 'start.py'],
        ['--client', '[::1]:3000', '--cache-size', '10000'],
        ['--client', './local.sock', '--cache-size', '10000'],
        ['--client', '@abstract', '--cache-size', '10000'],
        [__file__, '--cache-size', '10000'],       # exists: no --create
    ]


def test_client_finds_the_shell_through_its_entry_point():
    import durus_shell.cli
    assert durus_main.find_command('shell') is durus_shell.cli.main


def test_client_without_durus_shell_is_one_clear_line(monkeypatch, capsys):
    # As if no installed distribution registered the command.
    import importlib.metadata
    monkeypatch.setattr(importlib.metadata, 'entry_points',
                        lambda **selection: [])
    assert durus_main.main(['-c']) == 1
    err = capsys.readouterr().err
    assert err.startswith('durus: durus -c needs durus-shell: no installed '
                          "package provides the 'shell' command")
    assert err.count('\n') == 1


def test_client_whose_shell_cannot_import_is_one_clear_line(monkeypatch,
                                                            capsys):
    monkeypatch.setitem(sys.modules, 'durus_shell.cli', None)
    assert durus_main.main(['-c']) == 1
    err = capsys.readouterr().err
    assert err.startswith('durus: durus -c needs durus-shell: ')
    assert 'durus_shell.cli' in err and err.count('\n') == 1


def test_client_command_opens_the_shell_in_a_real_process(tmp_path):
    # The whole way: the console script, the entry point, durus-shell's
    # own command line (a script on stdin, no terminal).
    path = tmp_path / 'db.durus'
    connection = Connection(FileStorage(str(path)))
    connection.get_root()['greeting'] = 'hello from the file'
    connection.commit()
    connection.storage.close()
    script = os.path.join(os.path.dirname(sys.executable), 'durus')
    result = subprocess.run(
        [script, '-c', '--file', str(path), '--readonly'],
        input="print(root['greeting'])\n", capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'hello from the file' in result.stdout


def test_socket_inherited_from_systemd(tmp_path):
    """systemd passes a listening socket as fd 3 and names the pid."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    log = tmp_path / 'systemd.log'

    # a launcher moves the socket to fd 3, then exec keeps its pid
    launcher = (
        'import os, sys; os.dup2(%d, 3); '
        'os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1"); '
        'os.execv(sys.executable, [sys.executable, "-m", "durus", "-s", '
        '"--logfile", sys.argv[1], "--port", "1"])' % listener.fileno())
    process = subprocess.Popen(
        [sys.executable, '-c', launcher, str(log)],
        pass_fds=(listener.fileno(),),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listener.close()
    try:
        assert wait_for(lambda: log.exists() and 'Ready on' in log.read_text(),
                        15)
        assert 'inherited socket' in log.read_text()
        connection = Connection(ClientStorage(port=port))
        connection.get_root()['activated'] = True
        connection.commit()
    finally:
        status = stop_process(process)
    assert status == 0


def test_too_many_systemd_sockets_is_an_error(monkeypatch):
    from durus.systemd_socket import get_systemd_socket
    monkeypatch.setenv('LISTEN_PID', str(os.getpid()))
    monkeypatch.setenv('LISTEN_FDS', '2')
    with pytest.raises(OSError, match='exactly one'):
        get_systemd_socket()
    monkeypatch.setenv('LISTEN_PID', '1')
    assert get_systemd_socket() is None


def test_wait_for_server(durus_server):
    from durus.storage_server import wait_for_server
    server = durus_server()
    wait_for_server(port=server.port, maxtries=3, sleeptime=0.1)
    with pytest.raises(SystemExit, match='No storage server'):
        wait_for_server(port=free_port(), maxtries=2, sleeptime=0.01)


def test_sigint_stops_and_removes_the_socket_file(durus_server, tmp_path):
    import signal
    path = str(tmp_path / 'int.sock')
    server = durus_server('--address', path)
    server.process.send_signal(signal.SIGINT)
    assert server.wait(10) == 0
    assert not os.path.exists(path)
    assert 'Stopping on signal %d' % signal.SIGINT in server.log()


def test_logger_helpers(monkeypatch):
    import io
    import logging
    from durus import logger as durus_logger
    monkeypatch.setattr(sys, 'stdout', sys.stdout)
    monkeypatch.setattr(sys, 'stderr', sys.stderr)
    stream = io.StringIO()
    old_stream = durus_logger._handler.stream
    try:
        durus_logger.direct_output(stream)
        assert sys.stderr is stream and sys.stdout is stream
        assert durus_logger.is_logging(logging.INFO)
        assert not durus_logger.is_logging(logging.DEBUG)
        durus_logger.log(logging.INFO, 'hello %s', 'there')
        durus_logger.log(logging.DEBUG, 'hidden')
    finally:
        durus_logger._handler.setStream(old_stream)
    assert stream.getvalue() == 'hello there\n'


def test_client_command_reaches_a_server(durus_server):
    server = durus_server()
    result = subprocess.run(
        [sys.executable, '-m', 'durus', '-c', '--port', str(server.port)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: 'connected' in server.log())
    nobody = durus('-c', '--port', str(free_port()))
    assert nobody.returncode != 0
    assert 'durus -s' in nobody.stderr


def test_durus_c_passes_credentials_and_tls_options_to_the_shell():
    parser_args = ['--host', '127.0.0.1', '--port', '3000', '--user', 'ops',
                   '--secret-file', 's.txt', '--tls-ca', 'ca.pem']
    from optparse import OptionParser
    parser = OptionParser()
    durus_main._address_options(parser)
    durus_main.add_client_options(parser)
    for name in ('--cache_size', '--startup'):
        parser.add_option(name, default=None)
    parser.add_option('--file', default=None)
    parser.add_option('--readonly', action='store_true', default=False)
    parser.add_option('--repair', action='store_true', default=False)
    options, _ = parser.parse_args(parser_args)
    argv = durus_main.shell_arguments(options)
    assert argv[:2] == ['--client', '127.0.0.1:3000']
    assert argv[argv.index('--user') + 1] == 'ops'
    assert argv[argv.index('--secret-file') + 1] == 's.txt'
    assert argv[argv.index('--tls-ca') + 1] == 'ca.pem'
