"""The operator's settings: ``$XDG_CONFIG_HOME/durus-shell/config.toml``.

``load_settings(path)`` returns ``(Settings, warnings)``.  A file that
is missing gives the defaults; a file that cannot be read or parsed, an
unknown key or a bad value gives a one-line warning naming the file and
the line, and that key keeps its default: a config file never stops the
shell.  Read with the standard library's tomllib (Python 3.11+), or the
``tomli`` package it came from on Python 3.10.

Every key (all optional), with its default::

    editing_mode = "emacs"      # or "vi" (also --vi)
    theme = "default"           # "default" (ANSI colours) or a pygments style
    pager = ""                  # command for :more; "" = $PAGER, else less
    cache_size = 100000         # objects kept in the cache (--cache-size wins)
    history_size = 10000        # prompt history entries loaded
    confirm_commit = true       # :commit asks before writing
    auto_suggest = false        # grey suggestion from history; Right accepts
"""

import os
import re

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

DEFAULTS = {
    'editing_mode': 'emacs',
    'theme': 'default',
    'pager': '',
    'cache_size': 100000,
    'history_size': 10000,
    'confirm_commit': True,
    'auto_suggest': False,
}


class Settings(object):
    """The settings in effect (defaults, then the file, then options)."""

    def __init__(self, **values):
        for name, value in DEFAULTS.items():
            setattr(self, name, values.get(name, value))

    def __repr__(self):
        return 'Settings(%s)' % ', '.join(
            '%s=%r' % (name, getattr(self, name)) for name in DEFAULTS)


def config_path(environ=None):
    """``$XDG_CONFIG_HOME/durus-shell/config.toml`` (default ~/.config)."""
    environ = os.environ if environ is None else environ
    base = environ.get('XDG_CONFIG_HOME') or os.path.join(
        os.path.expanduser('~'), '.config')
    return os.path.join(base, 'durus-shell', 'config.toml')


def _choice(*allowed):
    def check(value):
        if value not in allowed:
            raise ValueError('must be %s' % ' or '.join(
                '"%s"' % a for a in allowed))
        return value
    return check


def _theme(value):
    if not isinstance(value, str):
        raise ValueError('must be a string naming a pygments style')
    if value == 'default':
        return value
    from pygments.styles import get_all_styles
    if value not in set(get_all_styles()):
        raise ValueError('no pygments style "%s" (pygments has: %s)' % (
            value, ', '.join(sorted(get_all_styles())[:8]) + ', ...'))
    return value


def _string(value):
    if not isinstance(value, str):
        raise ValueError('must be a string')
    return value


def _count(minimum):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError('must be a whole number')
        if value < minimum:
            raise ValueError('must be at least %d' % minimum)
        return value
    return check


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError('must be true or false')
    return value


CHECKS = {
    'editing_mode': _choice('emacs', 'vi'),
    'theme': _theme,
    'pager': _string,
    'cache_size': _count(1),
    'history_size': _count(0),
    'confirm_commit': _boolean,
    'auto_suggest': _boolean,
}


def load_settings(path=None):
    """``(Settings, [warning, ...])`` from the file at ``path``."""
    path = path or config_path()
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return Settings(), []
    except OSError as error:
        return Settings(), ['%s: cannot read it (%s); using the defaults'
                            % (path, error.strerror or error)]
    return parse_settings(data, path)


def parse_settings(data, path='config.toml'):
    """``(Settings, warnings)`` from the bytes of a config file."""
    try:
        text = data.decode('utf-8')
        table = tomllib.loads(text)
    except UnicodeDecodeError as error:
        return Settings(), ['%s: not UTF-8 text (byte %d); using the '
                            'defaults' % (path, error.start)]
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = re.search(r'\(at line (\d+), column \d+\)', message)
        where = ':%s' % match.group(1) if match else ''
        message = re.sub(r'\s*\(at line \d+, column \d+\)', '', message)
        return Settings(), ['%s%s: not valid TOML (%s); using the defaults'
                            % (path, where, message)]
    values = {}
    warnings = []
    for key, value in table.items():
        where = '%s:%s' % (path, _line_of(text, key))
        if key not in CHECKS:
            warnings.append('%s: unknown key "%s" ignored (known: %s)' % (
                where, key, ', '.join(DEFAULTS)))
            continue
        try:
            values[key] = CHECKS[key](value)
        except ValueError as error:
            warnings.append('%s: %s = %r ignored: %s' % (
                where, key, value, error))
    return Settings(**values), warnings


def _line_of(text, key):
    """The line number where ``key`` is set (or a table of that name)."""
    pattern = re.compile(r'^\s*(\[\s*)?["\']?%s["\']?\s*[=\]]'
                         % re.escape(key))
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return number
    return '?'
