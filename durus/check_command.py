"""``durus check``: the command line around durus.check.

    durus check PATH | postgresql://URL | --client HOST:PORT [--json]
                [--strict] [--all]

On a terminal the report fits the screen: each list of findings shows as
many entries as fit, then how many more there are, and every count and
the verdict stay on screen; ``--all`` (or piping the output, e.g. into
``less``, or ``--json``) gives every finding.

Exit status: 0 when the storage is sound, 1 when the check found a
problem, 2 when the storage cannot be opened (or read to its end).
Records unreachable from the root are reported but are a problem only
with --strict: a file not packed since objects were dropped holds them.
"""

import json
import shutil
import sys
import time
from optparse import OptionParser

from durus.error import DurusError

CLEAN, PROBLEMS, CANNOT_OPEN = 0, 1, 2


def storage_name(path, client):
    """The durus.storage_names name for a PATH or a --client address."""
    if client is None:
        return path
    if '://' in client:
        return client
    if client.startswith('/'):
        return 'durus://' + client
    if ':' not in client and client.isdigit():
        return 'durus://127.0.0.1:' + client
    return 'durus://' + client


class ProgressBar(object):
    """A one-line bar on a terminal (stderr), redrawn at most 10 times a
    second; wiped when done."""

    def __init__(self, stream):
        self.stream = stream
        self.shown = 0.0

    def __call__(self, done, total):
        now = time.monotonic()
        if now - self.shown < 0.1:
            return
        self.shown = now
        if total:
            share = min(done / total, 1.0)
            bar = '#' * int(share * 30)
            text = 'checking [%-30s] %3d%% %d records' % (bar, share * 100,
                                                          done)
        else:
            text = 'checking: %d records' % done
        self.stream.write('\r' + text)
        self.stream.flush()

    def finish(self):
        if self.shown:
            self.stream.write('\r\x1b[K')
            self.stream.flush()


def _isatty(stream):
    isatty = getattr(stream, 'isatty', None)
    return bool(isatty and isatty())


def main(args=None, stdout=None, stderr=None):
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = OptionParser(
        prog='durus check',
        usage='%prog PATH | postgresql://URL | --client HOST:PORT [--json] '
              '[--strict] [--all]',
        description='Check a storage: missing and unreachable records, '
                    'records that do not parse, classes that cannot be '
                    'imported, BTree invariants. Exit status 0 clean, '
                    '1 problems found, 2 cannot open.')
    parser.add_option('--client', metavar='ADDR', default=None,
                      help='check the storage of a running server '
                           '(HOST:PORT, PORT or a Unix socket path)')
    parser.add_option('--json', action='store_true', default=False,
                      help='print the report as one JSON object')
    parser.add_option('--strict', action='store_true', default=False,
                      help='count records unreachable from the root as '
                           'problems too (a pack would free them)')
    parser.add_option('--all', action='store_true', default=False,
                      help='list every finding, even on a terminal (where '
                           'the report is cut to fit the screen)')
    parser.add_option('--no-progress', action='store_true', default=False,
                      help='no progress bar, even on a terminal')
    options, rest = parser.parse_args(args)
    if len(rest) != (0 if options.client else 1):
        parser.error('name one PATH, or a server with --client ADDR')
    from durus.check import check_storage
    from durus.storage_names import open_named_storage, shown_name
    name = storage_name(rest[0] if rest else None, options.client)
    try:
        storage = open_named_storage(name, readonly=True)
    except (DurusError, OSError, ImportError, ValueError) as error:
        stderr.write('durus check: cannot open %s: %s\n' % (
            shown_name(name), error or type(error).__name__))
        return CANNOT_OPEN
    bar = None
    if not options.json and not options.no_progress and stderr.isatty():
        bar = ProgressBar(stderr)
    try:
        report = check_storage(storage, name=shown_name(name), progress=bar)
    except (DurusError, OSError, ValueError) as error:
        stderr.write('durus check: cannot read %s to its end: %s\n' % (
            shown_name(name), error or type(error).__name__))
        return CANNOT_OPEN
    finally:
        if bar is not None:
            bar.finish()
        storage.close()
    if options.json:
        stdout.write(json.dumps(report.as_dict(), sort_keys=True) + '\n')
    elif options.all or not _isatty(stdout):
        stdout.write('\n'.join(report.lines()) + '\n')
    else:
        # Room for the note and the shell's next prompt.
        size = shutil.get_terminal_size()
        lines, cut = report.screenful(max(size.lines - 2, 1), size.columns)
        if cut:
            lines.append('(cut to fit the screen: --all lists every finding,'
                         ' e.g. durus check ... --all | less)')
        stdout.write('\n'.join(lines) + '\n')
    found = report.strict_problems if options.strict else report.problems
    return PROBLEMS if found else CLEAN
