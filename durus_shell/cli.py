"""``durus-shell``: command-line arguments -> an open session -> a run.

``main(argv)`` returns the exit status (script.EXIT_*).  The prompt_toolkit
app is imported only for an interactive run, so scripts start fast.
"""

import argparse
import os
import sys

from durus.unpickle_policy import (ALLOW_ENVIRONMENT_VARIABLE, UnpicklePolicy,
                                   allowed_from_environment,
                                   parse_allowed_name)

from durus_shell import __version__
from durus_shell.opening import OpenError
from durus_shell.script import EXIT_ERROR, EXIT_USAGE, run_script

PATH_VARIABLE = 'DURUS_SHELL_PATH'
STARTUP_VARIABLE = 'DURUSSTARTUP'

DESCRIPTION = """\
An operator's shell for Durus databases: Python with the database's root,
connection and objects at hand, commands to review and commit changes.
"""

EPILOG = """\
environment:
  DURUS_SHELL_PATH  directories (os.pathsep-separated) added like --path
  DURUSSTARTUP      startup file for interactive sessions (like --startup)
  NO_COLOR          set to turn colour off (like --no-color)
  XDG_STATE_HOME    history goes to $XDG_STATE_HOME/durus-shell/history
  XDG_CONFIG_HOME   settings from $XDG_CONFIG_HOME/durus-shell/config.toml
                    (default ~/.config; docs/shell.md lists the keys)
  XDG_DATA_HOME     --demo without PATH uses $XDG_DATA_HOME/durus-shell/

exit status: 0 done; 1 an error stopped the run (nothing committed);
2 bad arguments or the database cannot be opened; 3 a script left
uncommitted changes (run it with --commit or --dry-run); 4 a conflict:
other clients changed what the script read, on every attempt (nothing
committed; run it again, or with --retry N).
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog='durus-shell', description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'file', nargs='?', metavar='PATH',
        help='database file to open (FileStorage SHELF-1, FileStorage2 '
             'DFS20 or SQLite), or a postgresql:// URL (PgStorage)')
    where = parser.add_argument_group('what to open')
    where.add_argument('--create', action='store_true',
                       help='create a new database at PATH')
    where.add_argument('--client', metavar='ADDRESS',
                       help='connect to a storage server at HOST:PORT, '
                            '/path/to/socket or @name')
    secure = parser.add_argument_group(
        'a server with users or TLS (with --client)')
    secure.add_argument('--user', metavar='NAME',
                        help='authenticate as NAME; the secret comes from '
                             '--secret-file, $DURUS_SECRET or a prompt '
                             '(never the command line)')
    secure.add_argument('--secret-file', metavar='FILE',
                        help="read the user's secret from the first line "
                             'of FILE')
    secure.add_argument('--tls-ca', metavar='FILE',
                        help='connect with TLS, trusting the CA in FILE')
    secure.add_argument('--tls-cert', metavar='FILE',
                        help='client certificate for mutual TLS')
    secure.add_argument('--tls-key', metavar='FILE',
                        help='key of --tls-cert (if not in that file)')
    where.add_argument('--demo', action='store_true',
                       help='create (if needed) and open a sample database; '
                            'at PATH if given, else in the user data '
                            'directory')
    where.add_argument('--readonly', action='store_true',
                       help='open without the possibility to commit')
    where.add_argument('--repair', action='store_true',
                       help='show what repairing a damaged file would drop, '
                            'ask, then repair it')
    where.add_argument('--yes', action='store_true',
                       help='answer yes to the --repair question (scripts)')
    where.add_argument('--cache-size', type=int, default=None,
                       metavar='N', help='objects kept in the cache '
                       '(default: the config file\'s cache_size, 100000)')
    where.add_argument('--path', dest='class_path', action='append',
                       default=[], metavar='DIR',
                       help='directory holding the application\'s classes '
                            '(repeatable; also $DURUS_SHELL_PATH)')
    where.add_argument('--trust', action='store_true',
                       help='load records with the trusted policy: they may '
                       'name any function or class, which runs when they '
                       'load (default: safe, such values show as '
                       '<refused ...>)')
    where.add_argument('--allow', metavar='MODULE:NAME', action='append',
                       default=[], help='also load this global under the '
                       'safe policy (repeatable; also $%s, comma '
                       'separated)' % ALLOW_ENVIRONMENT_VARIABLE)
    where.add_argument('--startup', metavar='FILE',
                       help='Python file run in the namespace first (also '
                            '$DURUSSTARTUP for interactive sessions)')
    run = parser.add_argument_group('running without a prompt')
    run.add_argument('-c', dest='code', metavar='CODE',
                     help='run CODE (statements and :commands), then exit')
    run.add_argument('--script', metavar='FILE',
                     help='run the statements in FILE ("-" for stdin), '
                          'then exit')
    run.add_argument('--commit', action='store_true',
                     help='commit the changes at the end of -c/--script')
    run.add_argument('--dry-run', action='store_true',
                     help='show what -c/--script would commit, commit '
                          'nothing')
    run.add_argument('--rename-class', nargs=2, metavar=('OLD', 'NEW'),
                     help='rename a class (module:Class or module.Class) '
                          'in every record, in one commit, then exit; '
                          'with --dry-run only count the records and bytes')
    run.add_argument('--merge', action='store_true',
                     help='let --rename-class rename to a class that '
                          'already names objects')
    run.add_argument('--retry', type=int, default=0, metavar='N',
                     help='with --commit: on a conflict, run the script '
                          'again from a fresh state, up to N more times '
                          '(default 0; exit status 4 when all conflict)')
    run.add_argument('--log', metavar='FILE',
                     help='append the diff of every commit (time, '
                          'database, user, reason, script) to FILE')
    run.add_argument('--reason', metavar='TEXT',
                     help='the reason or ticket recorded with each commit '
                          'in the --log file (else :commit asks)')
    look = parser.add_argument_group('appearance')
    look.add_argument('--no-color', action='store_true',
                      help='no colours (also $NO_COLOR)')
    look.add_argument('--vi', action='store_true',
                      help='vi editing keys at the prompt and in questions '
                           '(also editing_mode = "vi" in the config file)')
    look.add_argument('--version', action='version',
                      version='durus-shell %s' % __version__)
    return parser


class UsageError(Exception):
    pass


def main(argv=None):
    """Run durus-shell; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else EXIT_USAGE
    try:
        return _run(args)
    except (UsageError, OpenError) as error:
        sys.stderr.write('durus-shell: %s\n' % error)
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write('durus-shell: interrupted\n')
        return EXIT_ERROR


def is_interactive(args, stdin=None, stdout=None):
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if args.code is not None or args.script:
        return False
    try:
        return stdin.isatty() and stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _run(args):
    _check(args)
    args.settings = load_settings(args)
    add_class_paths(args.class_path)
    interactive = is_interactive(args)
    if interactive:
        # Ctrl-C works from the start (opening, --repair's question), even
        # if SIGINT came ignored; scripts keep what they inherited.
        from durus_shell.app import interruptible
        with interruptible():
            return _open_and_run(args, interactive)
    return _open_and_run(args, interactive)


def _rename_class(args):
    """--rename-class: the rename on record bytes, without a session
    (nothing is unpickled); exit status 0, or EXIT_ERROR when refused."""
    from durus.class_rename import (RenameRefused, check_merge,
                                    commit_rename, plan_rename)
    from durus.error import ConflictError
    target = open_target(args, False)
    try:
        try:
            plan = plan_rename(target.storage, *args.rename_class)
            check_merge(plan, args.merge)
        except RenameRefused as error:
            sys.stderr.write('durus-shell: %s\n' % error)
            return EXIT_ERROR
        print(plan.summary())
        if args.dry_run:
            print('dry run: nothing written')
        elif plan.records:
            try:
                commit_rename(target.storage, plan)
            except ConflictError:
                sys.stderr.write(
                    'durus-shell: another client changed some of these '
                    'records meanwhile; nothing was written: run the '
                    'rename again\n')
                return EXIT_ERROR
            print('committed: %d records now name %s.%s'
                  % ((plan.records,) + plan.new))
        else:
            print('nothing names %s.%s: nothing written' % plan.old)
        return 0
    finally:
        target.storage.close()


def _open_and_run(args, interactive):
    if args.rename_class:
        return _rename_class(args)
    color = interactive and not args.no_color and not os.environ.get(
        'NO_COLOR')
    target = open_target(args, interactive)
    from durus_shell.session import (GATE_OPEN, GATE_READONLY, GATE_SCRIPT,
                                     Session)
    mode = (GATE_READONLY if args.readonly else
            GATE_OPEN if interactive else GATE_SCRIPT)
    try:
        session = Session(target.storage, target, mode,
                          cache_size=args.cache_size or
                          args.settings.cache_size,
                          unpickle_policy=unpickle_policy(args))
    except Exception as error:
        target.storage.close()
        raise OpenError('cannot read the root object: %s: %s'
                        % (type(error).__name__, error))
    session.settings = args.settings
    script_text = None
    if args.log:
        from durus_shell.audit import script_identity
        from durus_shell.fix_commands import enable_log
        script = None
        if not interactive:
            try:
                script_text = _script_text(args)
            except UsageError:
                session.close()
                raise
            script = script_identity(script_text[1], script_text[0])
        try:
            enable_log(session, args.log, reason=args.reason, script=script)
        except OSError as error:
            session.close()
            raise UsageError('cannot write the --log file %s: %s'
                             % (args.log, error.strerror or error))
    try:
        startup = args.startup or (os.environ.get(STARTUP_VARIABLE)
                                   if interactive else None)
        if startup and not os.path.isfile(startup):
            sys.stderr.write('durus-shell: startup file %s not found; '
                             'going on without it\n' % startup)
            startup = None
        if interactive:
            from durus_shell.app import run_app
            return run_app(session, color=color, startup=startup)
        if startup:
            result = session.run_file(startup)
            if result.failed:
                sys.stderr.write(result.traceback + '\n')
                return EXIT_ERROR
        text, name = script_text or _script_text(args)
        return run_script(session, text, name, commit=args.commit,
                          dry_run=args.dry_run, retry=args.retry)
    finally:
        session.close()


def _check(args):
    sources = [bool(args.file) or args.demo, bool(args.client)]
    if args.file and args.client:
        raise UsageError('give either PATH or --client, not both')
    if not any(sources):
        raise UsageError('name a database: durus-shell PATH, --client '
                         'ADDRESS, or --demo (see --help)')
    if args.client and (args.create or args.repair or args.demo):
        raise UsageError('--create, --repair and --demo are for files, not '
                         '--client')
    if not args.client and (args.user or args.secret_file or args.tls_ca or
                            args.tls_cert or args.tls_key):
        raise UsageError('--user, --secret-file and --tls-* are for '
                         '--client')
    if args.secret_file and not args.user:
        raise UsageError('--secret-file needs --user')
    if args.code is not None and args.script:
        raise UsageError('give either -c or --script, not both')
    if args.rename_class:
        from durus.pickle_rename import parse_class_name
        if args.code is not None or args.script or args.commit:
            raise UsageError('--rename-class runs alone: not with -c, '
                             '--script or --commit')
        if args.readonly and not args.dry_run:
            raise UsageError('--rename-class writes: drop --readonly, or '
                             'add --dry-run')
        for name in args.rename_class:
            try:
                parse_class_name(name)
            except ValueError as error:
                raise UsageError('--rename-class: %s' % error)
    elif args.merge:
        raise UsageError('--merge goes with --rename-class')
    if args.commit and args.dry_run:
        raise UsageError('give either --commit or --dry-run, not both')
    if args.retry and not args.commit:
        raise UsageError('--retry needs --commit (it re-runs a script whose'
                         ' commit conflicts)')
    if args.retry < 0:
        raise UsageError('--retry must be 0 or more')
    if args.readonly and args.commit:
        raise UsageError('--commit cannot write to a --readonly database')
    if args.startup and not os.path.isfile(args.startup):
        raise UsageError('--startup %s: no such file' % args.startup)
    if args.reason is not None and not args.log:
        raise UsageError('--reason is recorded in the audit log: give '
                         '--log FILE too')
    if args.cache_size is not None and args.cache_size <= 0:
        raise UsageError('--cache-size must be positive')
    if args.trust and args.allow:
        raise UsageError('--allow is for the safe policy; --trust already '
                         'allows everything')
    try:
        for name in args.allow:
            parse_allowed_name(name)
        allowed_from_environment()
    except ValueError as error:
        raise UsageError('--allow or $%s: %s'
                         % (ALLOW_ENVIRONMENT_VARIABLE, error))


def load_settings(args):
    """The config file's settings, options applied; its warnings go to
    stderr, one line each (a bad config file never stops the shell)."""
    from durus_shell import config
    settings, warnings = config.load_settings()
    for warning in warnings:
        sys.stderr.write('durus-shell: warning: %s\n' % warning)
    if args.vi:
        settings.editing_mode = 'vi'
    return settings


def unpickle_policy(args):
    """The loading policy --trust and --allow ask for."""
    if args.trust:
        return UnpicklePolicy(trusted=True)
    return UnpicklePolicy.safe(allow=args.allow, placeholders=True)


def add_class_paths(dirs):
    """Put --path directories and $DURUS_SHELL_PATH first on sys.path."""
    for path in dirs:
        if not os.path.isdir(os.path.expanduser(path)):
            raise UsageError('--path %s is not a directory' % path)
    env = os.environ.get(PATH_VARIABLE, '')
    paths = list(dirs) + [p for p in env.split(os.pathsep) if p]
    for path in reversed(paths):
        path = os.path.abspath(os.path.expanduser(path))
        if path not in sys.path:
            sys.path.insert(0, path)


def open_target(args, interactive):
    from durus_shell import opening
    from durus_shell.ui import ConsoleUI, StreamUI
    if args.client:
        from durus.credentials import client_storage_options
        try:
            options = client_storage_options(args)
        except ValueError as error:
            raise OpenError(str(error))
        return opening.open_client(args.client, readonly=args.readonly,
                                   **options)
    if args.demo:
        from durus_shell import demo
        path = args.file or demo.default_path()
        try:
            demo.ensure_demo(path)
        except Exception as error:
            raise OpenError('cannot create the demo database at %s: %s'
                            % (path, error))
        return opening.open_file(path, readonly=args.readonly)
    from durus.storage_names import is_postgresql
    if is_postgresql(args.file):
        return opening.open_postgresql(args.file, readonly=args.readonly,
                                       create=args.create)
    if args.yes:
        ui = StreamUI(sys.stderr, answers={'Repair the file?': 'y'})
    elif interactive:
        ui = ConsoleUI(vi_mode=args.settings.editing_mode == 'vi')
    else:
        ui = StreamUI(sys.stderr)
    return opening.open_file(args.file, readonly=args.readonly,
                             repair=args.repair, create=args.create, ui=ui)


def _script_text(args):
    if args.code is not None:
        return args.code, '<-c>'
    if args.script and args.script != '-':
        try:
            with open(args.script) as f:
                return f.read(), os.path.abspath(args.script)
        except OSError as error:
            raise UsageError('cannot read --script %s: %s'
                             % (args.script, error.strerror))
    return sys.stdin.read(), '<stdin>'


if __name__ == '__main__':
    sys.exit(main())
