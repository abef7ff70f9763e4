"""durus-shell without a prompt: -c, --script, stdin; flags; exit statuses.

Each run is a real process, as an operator or a cron job would start it.
"""

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from durus_shell.cli import build_parser, main

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def shell(*args, stdin='', env=None, cwd=None):
    environment = dict(os.environ)
    environment.pop('DURUS_SHELL_PATH', None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, '-m', 'durus_shell'] + list(args), input=stdin,
        capture_output=True, text=True, timeout=60, env=environment,
        cwd=cwd or TESTS_DIR)


def value_of(path, expression):
    done = shell(path, '--path', TESTS_DIR, '-c', expression)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def shelf(fixture_copy):
    return fixture_copy('shelf.durus')


def test_c_prints_values_and_exits_zero(shelf):
    done = shell(shelf, '--path', TESTS_DIR, '-c',
                 "x = root['users'][3]\nx.name\n:status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "'user3'"
    assert 'SHELF-1 file' in done.stdout
    assert 'No uncommitted changes.' in done.stdout
    assert '\x1b[' not in done.stdout  # no colour codes without a terminal


def test_changes_without_commit_are_reported_and_fail(shelf):
    done = shell(shelf, '--path', TESTS_DIR, '-c',
                 "root['users'][3].name = 'Zed'")
    assert done.returncode == 3
    assert 'Not committed: 1 changed object' in done.stderr
    assert '--commit' in done.stderr
    assert value_of(shelf, "root['users'][3].name") == "'user3'"


def test_the_not_committed_list_names_objects_by_path(shelf):
    # As the shell names them elsewhere (:status, :commit): the path
    # from the root, also for an object reached without one (by oid).
    done = shell(shelf, '--path', TESTS_DIR, '-c',
                 "u = root['users'][3]; u.name = 'Zed'")
    assert done.returncode == 3
    assert "at root['users'][3]" in done.stderr
    oid = value_of(shelf, "root['users'][5]._p_oid")
    done = shell(shelf, '--path', TESTS_DIR, '-c',
                 "u = connection.get(%s)\n"
                 "u.name = 'Yan'" % oid)
    assert done.returncode == 3, done.stderr
    assert "at root['users'][5]" in done.stderr


def test_commit_writes(shelf):
    done = shell(shelf, '--path', TESTS_DIR, '--commit', '-c',
                 "root['users'][3].name = 'Zed'")
    assert done.returncode == 0, done.stderr
    assert 'Committed 1 object.' in done.stdout
    assert value_of(shelf, "root['users'][3].name") == "'Zed'"


def test_commit_refuses_a_script_with_an_unnoted_change(shelf):
    """A partial fix is worse than none: commit nothing, say why."""
    done = shell(shelf, '--path', TESTS_DIR, '--commit', '-c',
                 "root['users'][3].name = 'Zed'\n"
                 "root['users'][4].tags.append('lost')")
    assert done.returncode == 1
    assert 'changed in place without _p_note_change()' in done.stderr
    assert 'Nothing was committed' in done.stderr
    assert value_of(shelf, "root['users'][3].name") == "'user3'"
    done = shell(shelf, '--path', TESTS_DIR, '--commit', '-c',
                 "root['users'][4].tags.append('kept')\n"
                 "root['users'][4]._p_note_change()")
    assert done.returncode == 0, done.stderr
    assert value_of(shelf, "root['users'][4].tags") == "['t1', 'all', 'kept']"


def test_dry_run_shows_and_discards(shelf):
    done = shell(shelf, '--path', TESTS_DIR, '--dry-run', '-c',
                 "root['users'][3].name = 'Zed'")
    assert done.returncode == 0, done.stderr
    assert 'Would write' in done.stdout and 'Zed' in done.stdout
    assert 'nothing was committed' in done.stdout
    assert value_of(shelf, "root['users'][3].name") == "'user3'"


def test_an_error_stops_the_run_and_commits_nothing(shelf):
    done = shell(shelf, '--path', TESTS_DIR, '--commit', '-c',
                 "root['users'][3].name = 'Zed'\nroot['nope']\n"
                 "root['users'][4].name = 'never'")
    assert done.returncode == 1
    assert "KeyError: 'nope'" in done.stderr
    assert 'line 2' in done.stderr and 'nothing was committed' in done.stderr
    assert 'durus_shell' not in done.stderr
    assert value_of(shelf, "root['users'][3].name") == "'user3'"


def test_code_cannot_commit_by_itself(shelf):
    done = shell(shelf, '--path', TESTS_DIR, '--commit', '-c',
                 "root['users'][3].name = 'Zed'\nconnection.commit()")
    assert done.returncode == 1
    assert 'run with --commit' in done.stderr
    assert value_of(shelf, "root['users'][3].name") == "'user3'"


def test_script_file_and_stdin(shelf, tmp_path):
    script = tmp_path / 'fix.py'
    script.write_text("for uid in (1, 2):\n"
                      "    root['users'][uid].email = 'x%d' % uid\n"
                      ":status\n"
                      "root['users'][1].email\n")
    done = shell(shelf, '--path', TESTS_DIR, '--script', str(script),
                 '--commit')
    assert done.returncode == 0, done.stderr
    assert 'Uncommitted: 2 changed objects' in done.stdout
    assert "'x1'" in done.stdout
    assert value_of(shelf, "root['users'][2].email") == "'x2'"
    done = shell(shelf, '--path', TESTS_DIR, stdin="len(root['log'])\n")
    assert done.returncode == 0 and done.stdout.strip() == '3'


def test_missing_file_suggests_create_and_create_makes_one(tmp_path):
    path = str(tmp_path / 'new.durus')
    done = shell(path, '-c', '1')
    assert done.returncode == 2
    assert '--create' in done.stderr and len(done.stderr.splitlines()) == 1
    done = shell(path, '--create', '--commit', '-c', "root['a'] = 1")
    assert done.returncode == 0, done.stderr
    assert value_of(path, "root['a']") == '1'


def test_unreachable_server_is_a_quick_one_line_error():
    started = time.time()
    done = shell('--client', '127.0.0.1:1', '-c', '1')
    assert time.time() - started < 10
    assert done.returncode == 2
    assert done.stderr.count('\n') == 1
    assert '127.0.0.1:1' in done.stderr
    # A socket that accepts but never answers: still a quick error.
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(1)
        address = '127.0.0.1:%d' % silent.getsockname()[1]
        started = time.time()
        done = shell('--client', address, '-c', '1')
        assert time.time() - started < 8
    assert done.returncode == 2 and done.stderr.count('\n') == 1
    assert address in done.stderr


def test_readonly_script_cannot_commit(shelf):
    done = shell(shelf, '--readonly', '--commit', '-c', '1')
    assert done.returncode == 2
    done = shell(shelf, '--path', TESTS_DIR, '--readonly', '-c',
                 "root['users'][3].name")
    assert done.returncode == 0 and done.stdout.strip() == "'user3'"
    done = shell(shelf, '--path', TESTS_DIR, '--readonly', '-c',
                 "root['users'][3].name = 'Zed'\nconnection.commit()")
    assert done.returncode == 1 and 'read-only session' in done.stderr


def test_startup_file_and_class_path_variable(shelf, tmp_path):
    startup = tmp_path / 'start.py'
    startup.write_text("users = root['users']\n")
    done = shell(shelf, '--startup', str(startup), '-c',
                 'users[3].name', env={'DURUS_SHELL_PATH': TESTS_DIR})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "'user3'"


def test_demo_database(tmp_path):
    path = str(tmp_path / 'demo.durus')
    done = shell('--demo', path, '-c',
                 "len(root['orders']), root['customers'][1].name")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(400, 'customer1')"
    assert os.path.exists(path)
    done = shell('--demo', '-c', "sorted(root.keys())",
                 env={'XDG_DATA_HOME': str(tmp_path / 'data')})
    assert done.returncode == 0, done.stderr
    assert "'orders'" in done.stdout
    assert os.path.exists(tmp_path / 'data' / 'durus-shell' / 'demo.durus')


def test_repair_shows_damage_and_asks(fixture_copy, manifest):
    path = fixture_copy('shelf-torn.durus')
    size = os.path.getsize(path)
    done = shell(path, '--path', TESTS_DIR, '-c', '1')
    assert done.returncode == 2 and '--repair' in done.stderr
    done = shell(path, '--repair', '--path', TESTS_DIR, '-c', '1')
    assert done.returncode == 2 and 'not repaired' in done.stderr
    assert 'drops the last' in done.stderr
    assert os.path.getsize(path) == size
    done = shell(path, '--repair', '--yes', '--path', TESTS_DIR, '-c',
                 "len(root['users'])")
    assert done.returncode == 0, done.stderr
    intact = manifest['files']['shelf-torn.durus']['intact_size']
    assert os.path.getsize(path) == intact


def test_usage_errors_and_version(capsys):
    assert main(['--version']) == 0
    assert 'durus-shell' in capsys.readouterr().out
    assert main([]) == 2
    assert 'name a database' in capsys.readouterr().err
    assert main(['x.durus', '--client', 'h:1']) == 2
    assert main(['x.durus', '-c', '1', '--script', 'f']) == 2
    assert main(['x.durus', '--commit', '--dry-run', '-c', '1']) == 2
    assert main(['x.durus', '--path', '/no/such/dir', '-c', '1']) == 2
    assert '--path /no/such/dir is not a directory' in capsys.readouterr().err
    assert main(['x.durus', '--startup', '/no/such.py', '-c', '1']) == 2
    assert '--startup /no/such.py: no such file' in capsys.readouterr().err
    assert main(['--help']) == 0
    assert '--client' in capsys.readouterr().out


def test_parser_knows_every_documented_flag():
    options = {opt for action in build_parser()._actions
               for opt in action.option_strings}
    for flag in ('--create', '--client', '--readonly', '--repair',
                 '--cache-size', '--path', '--startup', '--no-color',
                 '--version', '--help', '--demo', '-c', '--script',
                 '--commit', '--dry-run'):
        assert flag in options


@pytest.mark.parametrize('name, kind', [('dfs20.durus', 'DFS20'),
                                        ('sqlite.durus', 'SQLite'),
                                        ('shelf-packed.durus', 'SHELF-1')])
def test_every_format_opens(fixture_copy, name, kind):
    path = fixture_copy(name)
    done = shell(path, '--path', TESTS_DIR, '-c',
                 ":status\nroot['users'][3].name")
    assert done.returncode == 0, done.stderr
    assert '%s file' % kind in done.stdout
    expected = 'about' if kind == 'SHELF-1' else 'exact'
    count = re.search(r'(about )?([\d,]+) objects', done.stdout)
    assert ('about' if count.group(1) else 'exact') == expected
    assert 440 <= int(count.group(2).replace(',', '')) <= 460
    assert done.stdout.strip().endswith("'user3'")


def test_files_that_cannot_be_opened(tmp_path, shelf):
    junk = tmp_path / 'junk.durus'
    junk.write_bytes(b'not a database at all')
    done = shell(str(junk), '-c', '1')
    assert done.returncode == 2 and 'not a durus database' in done.stderr
    assert len(done.stderr.splitlines()) == 1
    from durus.file_storage import FileStorage
    holder = FileStorage(shelf)  # holds the write lock
    try:
        done = shell(shelf, '-c', '1')
        assert done.returncode == 2 and '--readonly' in done.stderr
        done = shell(shelf, '--readonly', '--path', TESTS_DIR, '-c',
                     "root['users'][3].name")
        assert done.returncode == 0 and "'user3'" in done.stdout
    finally:
        holder.close()


def test_client_address_forms():
    from durus_shell.opening import OpenError, parse_client_address
    assert parse_client_address('db.example.org:3000') == (
        'db.example.org', 3000)
    assert parse_client_address('db.example.org') == ('db.example.org', 2972)
    assert parse_client_address(':3000') == ('127.0.0.1', 3000)
    assert parse_client_address('[::1]:3000') == ('::1', 3000)
    assert parse_client_address('/run/durus.sock') == '/run/durus.sock'
    assert parse_client_address('./durus.sock') == './durus.sock'
    assert parse_client_address('@durus') == '@durus'
    for bad in ('', 'host:port', 'host:0', 'host:70000'):
        with pytest.raises(OpenError):
            parse_client_address(bad)
