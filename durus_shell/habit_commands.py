"""Habits operators bring from other shells, as commands.

:page EXPR, then :page or `it`   a collection a screenful at a time (mongosh)
:describe EXPR, or `EXPR?`       class, oid, state, attributes, docstring (IPython)
:expanded, or `\\x`               vertical tables (psql)

``shorthand(session, text)`` turns the short forms typed at the prompt
into the command lines they stand for (commands.run_input asks it first).
"""

import inspect as pyinspect

from durus_shell import pages, peek, render
from durus_shell.fix_commands import _evaluate as evaluate
from durus_shell.registry import CommandError, command

PAGE_LINES = 20  # without a terminal to measure


def shorthand(session, text):
    """The ``:command`` line a one-line short form stands for, or None.

    ``EXPR?`` only when the line is not Python (a comment may end in ?);
    ``it`` is taken as a name when the namespace has one.
    """
    if '\n' in text:
        return None
    if text == '\\x':
        return ':expanded'
    if text == 'it' and 'it' not in session.namespace and \
            getattr(session, 'page_cursor', None) is not None:
        return ':page'
    if text.endswith('?') and not text.startswith(':') and \
            len(text) > 1 and not text.endswith('??') and \
            not _is_python(text, 'exec') and _is_python(text[:-1], 'eval'):
        return ':describe ' + text[:-1].strip()
    return None


def _is_python(text, mode):
    """Whether ``text`` compiles (``x = 1  # why?`` is a statement)."""
    try:
        compile(text, '<input>', mode)
    except (SyntaxError, ValueError):
        return False
    return True


def _page_size(ui):
    size = getattr(ui, 'size', None)
    if size is None:
        return PAGE_LINES
    rows, _ = size()
    return max(5, rows - 6)


@command('page', usage=':page [EXPR]', aliases=('it',))
def page_command(session, args, ui):
    """Show a collection a screenful at a time; :page (or it) goes on.

    EXPR may be a BTree (walked by key), a mapping, a sequence, a set, any
    iterable or a generator.  Without EXPR, the next screenful of the last
    one paged, from where it stopped.  The page's items are in _.
    """
    if args:
        value = evaluate(session, args)
        try:
            cursor = pages.cursor_for(value)
        except TypeError as error:
            raise CommandError(str(error))
        cursor.label = args
        session.page_cursor = cursor
    else:
        cursor = getattr(session, 'page_cursor', None)
        if cursor is None:
            raise CommandError('nothing to page: :page EXPR first')
        if cursor.done:
            session.page_cursor = None
            raise CommandError('%s: no more items (%d shown)'
                               % (cursor.label, cursor.shown))
    first = cursor.shown + 1
    entries = cursor.next_page(_page_size(ui))
    session.namespace['_'] = [value if label is None or cursor.kind !=
                              'keys' else (label, value)
                              for label, value in entries]
    renderer = render.Renderer(max_items=10)
    out = []
    for label, value in entries:
        if out:
            out.append((render.T_TEXT, '\n'))
        out.append((render.T_TEXT, '  '))
        if label is not None:
            if cursor.kind == 'keys':
                renderer.inline(label, out, 1, set())
                out.append((render.T_PUNCT, ': '))
            else:
                out.append((render.T_NOTE, '[%d] ' % label))
        renderer.inline(value, out, 1, set())
    if entries:
        ui.show(out)
    total = '' if cursor.total is None else ' of {:,}'.format(cursor.total)
    if cursor.done:
        session.page_cursor = None
        ui.show('%s: items %d-%d%s; the end.' % (
            cursor.label, first, cursor.shown, total) if entries else
            '%s: empty.' % cursor.label)
    else:
        ui.show('%s: items %d-%d%s (in _); :page or it for more.' % (
            cursor.label, first, cursor.shown, total))


@command('describe', usage=':describe EXPR  (or EXPR?)')
def describe_command(session, args, ui):
    """Class, oid, state, attributes and docstring of a value (EXPR?).

    Attributes are read from the stored state: no property or other
    descriptor of the class runs.
    """
    if not args:
        raise CommandError('usage: :describe EXPR (or type EXPR?)')
    value = evaluate(session, args)
    session.namespace['_'] = value
    ui.show(describe(value))


def describe(value):
    """Fragments describing ``value`` for ``EXPR?``."""
    if peek.is_persistent(value):
        cls = peek.real_class(value)
        out = [(render.T_KEY, 'class      '),
               (render.T_CLASS, peek.class_path(cls)),
               (render.T_TEXT, '\n'), (render.T_KEY, 'oid        ')]
        oid = peek.oid_of(value)
        out.append((render.T_OID, str(int.from_bytes(oid, 'big'))) if oid
                   is not None else (render.T_NOTE, '(none yet: new)'))
        status = peek.status_name(value)
        out += [(render.T_TEXT, '\n'), (render.T_KEY, 'state      '),
                (render.T_TEXT, status)]
        if status == 'ghost':
            out.append((render.T_NOTE, ' (loaded to show it)'))
        try:
            state = peek.raw_state(value) or {}
        except Exception as error:
            state = None
            out += [(render.T_TEXT, '\n'), (render.T_ERROR,
                    'cannot read state: %s: %s' % (type(error).__name__,
                                                   error))]
        if state is not None:
            out += [(render.T_TEXT, '\n'), (render.T_KEY, 'attributes'),
                    (render.T_NOTE, ' %d' % len(state))]
            renderer = render.Renderer(max_items=10)
            names = sorted(state)
            width = min(max([len(n) for n in names] or [0]), 24)
            for name in names[:40]:
                out += [(render.T_TEXT, '\n  '),
                        (render.T_KEY, name.ljust(width)),
                        (render.T_TEXT, '  ')]
                renderer.inline(state[name], out, 1, set(), owner=value)
            if len(names) > 40:
                out += [(render.T_TEXT, '\n  '),
                        (render.T_NOTE, '... %d more' % (len(names) - 40))]
    else:
        cls = type(value)
        out = [(render.T_KEY, 'type       '),
               (render.T_CLASS, '%s.%s' % (cls.__module__, cls.__qualname__)),
               (render.T_TEXT, '\n'), (render.T_KEY, 'value      ')]
        render.Renderer(max_items=10).inline(value, out, 1, set())
        if hasattr(value, '__len__'):
            try:
                out += [(render.T_TEXT, '\n'), (render.T_KEY, 'length     '),
                        (render.T_NUM, str(len(value)))]
            except Exception:
                pass
    out += [(render.T_TEXT, '\n'), (render.T_KEY, 'docstring  ')]
    doc = _docstring(value, cls)
    out.append((render.T_STR, doc) if doc else (render.T_NOTE, '(none)'))
    return out


def _docstring(value, cls):
    """The value's own docstring (a function, class or module), else its
    class's own: an inherited one (Persistent's) would describe the base."""
    if pyinspect.isroutine(value) or pyinspect.ismodule(value) or \
            isinstance(value, type):
        doc = getattr(value, '__doc__', None)
    else:
        doc = cls.__dict__.get('__doc__')
    return pyinspect.cleandoc(doc) if isinstance(doc, str) else None


@command('expanded', usage=':expanded [on|off]  (or \\x)')
def expanded_command(session, args, ui):
    """Toggle vertical display (\\x): table rows and container items one
    per line, for values too wide for the terminal."""
    word = args.strip().lower()
    if word in ('on', 'off'):
        render.DISPLAY.vertical = word == 'on'
    elif word:
        raise CommandError('usage: :expanded [on|off]')
    else:
        render.DISPLAY.vertical = not render.DISPLAY.vertical
    ui.show('Expanded display is %s.' % (
        'on' if render.DISPLAY.vertical else 'off'))
