"""The command registry: ``@command`` and the lookups; no command lives here.

A command is a function ``func(session, args, ui)``: ``args`` is the text
after the command name (stripped), ``ui`` the small interface the command
talks to the operator through (see ``durus_shell.ui``).  Registering it
with ``@command`` also feeds ``:help`` and the documentation test, so a
command cannot exist without its help text.  Modules register their
commands when imported (durus_shell.commands imports every command
module of the shell)::

    from durus_shell.registry import command, CommandError

    @command('census', usage=':census [CLASS]')
    def census(session, args, ui):
        '''Count the objects of each class.'''

A command signals an operator mistake by raising ``CommandError``: the
shell shows its message as one line and carries on.
"""

import difflib


class CommandError(Exception):
    """An operator mistake in a shortcut: shown as one line."""


class Command(object):
    """One registered command and its help."""

    def __init__(self, name, func, usage, key, aliases, complete,
                 interactive_only):
        self.name = name
        self.func = func
        self.usage = usage or ':' + name
        self.key = key
        self.aliases = tuple(aliases)
        self.complete = complete
        self.interactive_only = interactive_only
        doc = (func.__doc__ or '').strip()
        self.summary = doc.splitlines()[0] if doc else ''
        self.doc = doc

    def __repr__(self):
        return '<Command :%s>' % self.name


# ``complete=PYTHON_ARGUMENT``: the argument is a Python expression,
# completed as at the prompt (names, attributes, keys).
PYTHON_ARGUMENT = 'python'

REGISTRY = {}
_ALIASES = {}


def command(name, usage=None, key=None, aliases=(), complete=None,
            interactive_only=False):
    """Register ``func`` as the shortcut ``:name``.

    ``key``: the documented key binding (prompt_toolkit key names, e.g.
    ``('c-x', 'c')``), bound by the app to run this command.
    ``complete(session, text)``: suggestions for the argument being typed
    (or PYTHON_ARGUMENT: complete it as Python, as at the prompt).
    ``interactive_only``: refused in scripts (e.g. commands that page).
    """
    def register(func):
        if name in REGISTRY or name in _ALIASES:
            raise ValueError('command :%s is already registered' % name)
        cmd = Command(name, func, usage, key, aliases, complete,
                      interactive_only)
        if not cmd.summary:
            raise ValueError('command :%s needs a docstring (its help)' % name)
        REGISTRY[name] = cmd
        for alias in aliases:
            _ALIASES[alias] = name
        return func
    return register


def all_commands():
    """Every command, sorted by name."""
    return [REGISTRY[name] for name in sorted(REGISTRY)]


def find_command(name):
    """The command called ``name`` (or an alias of it); CommandError if none."""
    typed = name
    name = name.lower()  # :Commit, :COMMIT (caps lock) mean :commit
    name = _ALIASES.get(name, name)
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(REGISTRY) +
                                          list(_ALIASES), n=3, cutoff=0.6)
        if close:
            names = []
            for candidate in close:
                full = _ALIASES.get(candidate, candidate)
                if full not in names:
                    names.append(full)
            raise CommandError('unknown command :%s; did you mean %s? '
                               '(:help lists them all)' % (
                                   typed, ' or '.join(':' + n
                                                      for n in names)))
        known = ', '.join(':' + n for n in sorted(REGISTRY))
        raise CommandError('unknown command :%s (known: %s)' % (typed, known))


def split_command_line(line):
    """``(name, args)`` from ``':name args'``."""
    text = line.strip()
    if not text.startswith(':'):
        raise CommandError('a command starts with ":"')
    name, _, args = text[1:].partition(' ')
    if not name:
        raise CommandError('type a command name after ":" (see :help)')
    return name, args.strip()


def key_label(key):
    """A human label for a key binding tuple: ('c-x', 'c') -> 'Ctrl-X C'."""
    if key is None:
        return ''
    if isinstance(key, str):
        key = (key,)
    labels = []
    for part in key:
        if part.startswith('c-'):
            labels.append('Ctrl-' + part[2:].upper())
        elif part.startswith('f') and part[1:].isdigit():
            labels.append(part.upper())
        else:
            labels.append(part.upper() if len(part) == 1 else part)
    return ' '.join(labels)
