"""A tiny Python lexer for the input line: one regular expression.

Pygments' PythonLexer compiles well over a hundred regular expressions
when it is created, which alone would cost a large part of the time to
the first prompt.  Input lines need only keywords, strings, numbers,
comments and the ``:command`` form; the styles are the same pygments
token classes the output uses (durus_shell.style).
"""

import keyword
import re

from prompt_toolkit.lexers import Lexer

_KEYWORDS = frozenset(keyword.kwlist) - {'True', 'False', 'None'}
_CONSTANTS = frozenset(['True', 'False', 'None'])
_SHELL_NAMES = frozenset(['root', 'connection', 'conn', 'get', 'storage'])

_TOKEN = re.compile(r'''
    (?P<comment>\#.*)
  | (?P<string>[rRbBuUfF]{0,2}(?:'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?))
  | (?P<number>\b(?:0[xXoObB][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][-+]?\d+)?j?)\b)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
''', re.VERBOSE)

STYLE_OF = {
    'comment': 'class:pygments.comment',
    'string': 'class:pygments.literal.string',
    'number': 'class:pygments.literal.number',
}


def lex_line(line, first_line=True):
    """``[(style, text), ...]`` covering ``line``."""
    if first_line and line.lstrip().startswith(':'):
        name, space, rest = line.partition(' ')
        return [('class:pygments.keyword', name), ('', space + rest)]
    fragments = []
    position = 0
    for match in _TOKEN.finditer(line):
        if match.start() > position:
            fragments.append(('', line[position:match.start()]))
        kind = match.lastgroup
        text = match.group()
        if kind == 'name':
            if text in _KEYWORDS:
                style = 'class:pygments.keyword'
            elif text in _CONSTANTS:
                style = 'class:pygments.keyword.constant'
            elif text in _SHELL_NAMES:
                style = 'class:pygments.name.builtin'
            else:
                style = ''
        else:
            style = STYLE_OF[kind]
        fragments.append((style, text))
        position = match.end()
    if position < len(line):
        fragments.append(('', line[position:]))
    return fragments


class ShellLexer(Lexer):
    """prompt_toolkit lexer over ``lex_line``."""

    def lex_document(self, document):
        lines = document.lines

        def get_line(number):
            try:
                return lex_line(lines[number], number == 0)
            except IndexError:
                return []
        return get_line
