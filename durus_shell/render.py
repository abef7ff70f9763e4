"""How values, objects and tables are shown.

Everything renders to *fragments*: a list of ``(token, text)`` pairs with
pygments token types.  The app turns them into colours; ``plain()`` joins
the text for scripts, pipes and tests.  One renderer serves both, so
coloured and plain output never disagree.

Limits keep output small and loading bounded: containers show their
first ``max_items`` items and their size; BTrees are walked from the start
(durus_shell.peek) and their size is counted only when that is cheap;
nested plain containers stop at ``max_depth``; a container met again
inside itself is marked as a cycle; long strings are cut.  Persistent
objects inside a value are shown as references (``<User 12>``), never
loaded.
"""

from pygments.token import Token

from durus_shell import peek

T_CLASS = Token.Name.Class
T_OID = Token.Number.Integer
T_KEY = Token.Name.Attribute
T_STR = Token.Literal.String
T_NUM = Token.Literal.Number
T_CONST = Token.Keyword.Constant
T_PUNCT = Token.Punctuation
T_NOTE = Token.Comment
T_TEXT = Token.Text
T_ERROR = Token.Error
T_HEAD = Token.Generic.Heading
T_STATE = {'ghost': Token.Comment, 'saved': Token.Generic.Inserted,
           'changed': Token.Generic.Deleted, 'new': Token.Generic.Deleted}


class Display(object):
    """Display switches the operator toggles (``\\x``: vertical tables and
    one container item per line).  One shell per process, so one set."""
    vertical = False


DISPLAY = Display()


def plain(fragments):
    """The text of fragments (a str passes through)."""
    if isinstance(fragments, str):
        return fragments
    return ''.join(text for _, text in fragments)


def count_lines(fragments):
    return plain(fragments).count('\n') + 1


def screen_lines(fragments, columns):
    """How many terminal lines the text takes, long lines wrapped."""
    return sum(max(1, -(-len(line) // columns))
               for line in plain(fragments).split('\n'))


def cut_lines(fragments, max_lines, note):
    """The first ``max_lines`` lines of fragments, then ``note`` (a format
    string given the number of lines left out)."""
    out = []
    lines = 0
    for token, text in fragments:
        pieces = text.split('\n')
        for index, piece in enumerate(pieces):
            if index:
                lines += 1
                if lines >= max_lines:
                    total = count_lines(fragments)
                    out.append((T_NOTE, '\n' + note % (total - lines)))
                    return out
                out.append((token, '\n'))
            if piece:
                out.append((token, piece))
    return out


class Renderer(object):
    """Renders values to fragments within limits."""

    def __init__(self, max_items=20, max_depth=3, max_string=300,
                 width=100):
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_string = max_string
        self.width = width

    # -- top level -------------------------------------------------------

    def render(self, value):
        """Fragments showing ``value``: an object view or an inline value."""
        if peek.is_persistent(value):
            return self.object_view(value)
        if DISPLAY.vertical and isinstance(
                value, (dict, list, tuple, set, frozenset)) and value:
            return self.block(value)
        out = []
        self.inline(value, out, depth=0, path=set())
        if len(plain(out)) > self.width and isinstance(
                value, (dict, list, tuple, set, frozenset)):
            return self.block(value)
        return out

    def block(self, value):
        """A plain container with one item per line."""
        out = [(T_NOTE, '%s of %d item%s' % (
            type(value).__name__, len(value), '' if len(value) == 1 else 's'))]
        if isinstance(value, dict):
            items = list(_first(value.items(), self.max_items))
            for key, item in items:
                out.append((T_TEXT, '\n  '))
                self.inline(key, out, 1, {id(value)})
                out.append((T_PUNCT, ': '))
                self.inline(item, out, 1, {id(value)})
        else:
            items = list(_first(_ordered(value), self.max_items))
            for item in items:
                out.append((T_TEXT, '\n  '))
                self.inline(item, out, 1, {id(value)})
        self._more(out, len(value) - len(items))
        return out

    def object_view(self, obj):
        """Header (class, oid, state) then attributes or items."""
        status = peek.status_name(obj)
        cls = peek.real_class(obj)
        out = [(T_PUNCT, '<'), (T_CLASS, cls.__name__)]
        oid = peek.oid_of(obj)
        if oid is not None:
            out += [(T_TEXT, ' '), (T_OID, str(int.from_bytes(oid, 'big')))]
        out += [(T_PUNCT, '>'), (T_TEXT, '  '),
                (T_NOTE, peek.class_path(cls)), (T_TEXT, '  '),
                (T_STATE[status], status)]
        if status == 'ghost':
            out.append((T_NOTE, ' (loaded to show it)'))
        if _is_placeholder(cls):
            out.append((T_ERROR, '  placeholder: the class cannot be '
                        'imported (read-only; give --path)'))
        try:
            kind = peek.container_kind(obj)
            if kind == 'btree':
                self._btree_body(obj, out)
            elif kind is not None:
                self._container_body(obj, kind, out)
            else:
                self._attributes_body(obj, out)
        except Exception as error:  # a damaged or unloadable object
            out += [(T_TEXT, '\n  '),
                    (T_ERROR, 'cannot read state: %s: %s'
                     % (type(error).__name__, error))]
        return out

    def _attributes_body(self, obj, out):
        state = peek.raw_state(obj)
        if not state:
            out += [(T_TEXT, '\n  '), (T_NOTE, '(no attributes)')]
            return
        names = sorted(state)
        width = min(max(len(name) for name in names), 24)
        for name in names[:self.max_items * 2]:
            out += [(T_TEXT, '\n  '), (T_KEY, name.ljust(width)),
                    (T_TEXT, '  ')]
            self.inline(state[name], out, 1, set(), owner=obj)
        self._more(out, len(names) - self.max_items * 2)

    def _container_body(self, obj, kind, out):
        data = peek.container_data(obj, kind)
        out.append((T_NOTE, '  %d item%s' % (len(data),
                                            '' if len(data) == 1 else 's')))
        if kind == 'dict':
            items = list(_first(data.items(), self.max_items))
            for key, value in items:
                out.append((T_TEXT, '\n  '))
                self.inline(key, out, 1, set())
                out.append((T_PUNCT, ': '))
                self.inline(value, out, 1, set(), owner=obj)
        else:
            items = list(_first(_ordered(data), self.max_items))
            for index, value in enumerate(items):
                out.append((T_TEXT, '\n  '))
                if kind == 'list':
                    out += [(T_NOTE, '[%d] ' % index)]
                self.inline(value, out, 1, set(), owner=obj)
        self._more(out, len(data) - len(items))

    def _btree_body(self, obj, out):
        count, exact = peek.btree_size(obj)
        if exact:
            out.append((T_NOTE, '  %d item%s' % (count,
                                                '' if count == 1 else 's')))
        else:
            out.append((T_NOTE, '  about %d items (len() counts them all)'
                        % count))
        shown = 0
        for key, value in peek.btree_items(obj, limit=self.max_items):
            out.append((T_TEXT, '\n  '))
            self.inline(key, out, 1, set())
            out.append((T_PUNCT, ': '))
            self.inline(value, out, 1, set(), owner=obj)
            shown += 1
        if shown < count:
            out += [(T_TEXT, '\n  '),
                    (T_NOTE, '... first %d shown; .items_from(key) walks on'
                     % shown)]

    def _more(self, out, left):
        if left > 0:
            out += [(T_TEXT, '\n  '), (T_NOTE, '... %d more' % left)]

    # -- inline values ---------------------------------------------------

    def inline(self, value, out, depth, path, owner=None):
        """Append a one-line form of ``value`` to ``out``."""
        if peek.is_persistent(value):
            self.reference(value, out, cycle=value is owner)
        elif value is None or value is True or value is False:
            out.append((T_CONST, repr(value)))
        elif isinstance(value, (int, float, complex)):
            out.append((T_NUM, repr(value)))
        elif isinstance(value, (str, bytes, bytearray)):
            text = repr(value)
            if len(value) > self.max_string:
                text = repr(value[:self.max_string])
                out += [(T_STR, text),
                        (T_NOTE, '... (%d in all)' % len(value))]
            else:
                out.append((T_STR, text))
        elif isinstance(value, (dict, list, tuple, set, frozenset)):
            self._inline_container(value, out, depth, path, owner)
        else:
            text = _safe_repr(value)
            if len(text) > self.max_string:
                text = text[:self.max_string] + '...'
            out.append((T_TEXT, text))

    def _inline_container(self, value, out, depth, path, owner):
        if isinstance(value, dict):
            opening, closing = '{', '}'
        elif isinstance(value, list):
            opening, closing = '[', ']'
        elif isinstance(value, tuple):
            opening, closing = '(', ')'
        elif type(value) is set and value:
            opening, closing = '{', '}'
        else:
            opening, closing = type(value).__name__ + '({', '})'
            if not value:
                out.append((T_PUNCT, type(value).__name__ + '()'))
                return
        if id(value) in path:
            out.append((T_NOTE, opening + '...cycle' + closing))
            return
        if depth >= self.max_depth and value:
            out.append((T_NOTE, '%s...%d item%s%s' % (
                opening, len(value), '' if len(value) == 1 else 's',
                closing)))
            return
        out.append((T_PUNCT, opening))
        inner = path | {id(value)}
        if isinstance(value, dict):
            entries = list(_first(value.items(), self.max_items))
        else:
            entries = list(_first(_ordered(value), self.max_items))
        for index, entry in enumerate(entries):
            if index:
                out.append((T_PUNCT, ', '))
            if isinstance(value, dict):
                self.inline(entry[0], out, depth + 1, inner)
                out.append((T_PUNCT, ': '))
                self.inline(entry[1], out, depth + 1, inner, owner)
            else:
                self.inline(entry, out, depth + 1, inner, owner)
        left = len(value) - len(entries)
        if left > 0:
            out.append((T_NOTE, ', ... %d more' % left))
        if isinstance(value, tuple) and len(value) == 1:
            out.append((T_PUNCT, ','))
        out.append((T_PUNCT, closing))

    def reference(self, obj, out, cycle=False):
        """``<User 12>``, with its state when not simply saved."""
        status = peek.status_name(obj)
        out += [(T_PUNCT, '<'), (T_CLASS, peek.real_class(obj).__name__)]
        oid = peek.oid_of(obj)
        if oid is not None:
            out += [(T_TEXT, ' '), (T_OID, str(int.from_bytes(oid, 'big')))]
        if status != 'saved':
            out += [(T_TEXT, ' '), (T_STATE[status], status)]
        if _is_placeholder(peek.real_class(obj)):
            out += [(T_TEXT, ' '), (T_ERROR, 'placeholder')]
        out.append((T_PUNCT, '>'))
        if cycle:
            out.append((T_NOTE, ' (cycle: this object)'))


def _is_placeholder(cls):
    """Whether ``cls`` stands in for an unimportable class (issue 6)."""
    try:
        from durus_shell.placeholders import is_placeholder_class
    except ImportError:
        return False
    return is_placeholder_class(cls)


def _first(iterable, n):
    for index, item in enumerate(iterable):
        if index >= n:
            return
        yield item


def _ordered(values):
    """Sets in sorted order when that is cheap and possible."""
    if isinstance(values, (set, frozenset)) and len(values) <= 10000:
        try:
            return sorted(values)
        except TypeError:
            return values
    return values


def _safe_repr(value):
    try:
        return repr(value)
    except Exception as error:
        return '<%s: repr failed: %s>' % (type(value).__name__, error)


def table(headers, rows):
    """Fragments of a simple aligned table (cells are strings); with
    ``\\x`` on, each row as a block of ``header | cell`` lines."""
    if DISPLAY.vertical:
        return vertical_table(headers, rows)
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    out = []
    line = '  '.join(h.ljust(w) for h, w in zip(headers, widths))
    out.append((T_HEAD, line.rstrip()))
    for row in rows:
        out.append((T_TEXT, '\n'))
        for index, (cell, w) in enumerate(zip(row, widths)):
            if index:
                out.append((T_TEXT, '  '))
            token = (T_STR if index == 0 else T_CLASS if index == 1
                     else T_OID if index == 2 else T_TEXT)
            out.append((token, cell.ljust(w) if index < len(row) - 1
                        else cell))
    return out


def vertical_table(headers, rows):
    """psql's expanded display: one block per row, one line per column."""
    width = max(len(h) for h in headers) if headers else 0
    out = []
    for number, row in enumerate(rows, 1):
        if out:
            out.append((T_TEXT, '\n'))
        out.append((T_HEAD, '-[ RECORD %d ]%s' % (number, '-' * 20)))
        for header, cell in zip(headers, row):
            out += [(T_TEXT, '\n'), (T_KEY, header.ljust(width)),
                    (T_PUNCT, ' | '), (T_TEXT, cell)]
    if not rows:
        out.append((T_NOTE, '(no rows)'))
    return out


def human_size(n):
    """Bytes as a short text: 999 B, 12.3 KB, 4.5 MB."""
    if n is None:
        return '?'
    for unit in ('B', 'KB', 'MB', 'GB'):
        if n < 1024 or unit == 'GB':
            return ('%d %s' % (n, unit) if unit == 'B'
                    else '%.1f %s' % (n, unit))
        n /= 1024.0
    return '%d' % n
