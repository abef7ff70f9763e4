"""Key bindings: Enter runs complete input, command keys run commands.

* Enter: runs the input when it is complete Python (or a :command) and it
  is one line or the cursor is at its end; otherwise inserts a newline,
  keeping the indent (four more after a line ending in ':').  A blank last
  line ends a block.
* Each command's ``key`` (commands registry) runs ``:name``; text being
  typed is kept and offered again at the next prompt (``stash``).
* Tab on a blank line of a multi-line input indents; elsewhere it completes.
* Ctrl-D (on an empty line), Ctrl-C, Ctrl-R are prompt_toolkit's.
"""

import codeop
import warnings

from prompt_toolkit.application.current import get_app
from prompt_toolkit.enums import DEFAULT_BUFFER
from prompt_toolkit.filters import Condition, has_completions, has_focus
from prompt_toolkit.key_binding import KeyBindings

from durus_shell import commands

INDENT = '    '


def input_is_complete(text):
    """Whether Enter at the end of ``text`` should run it."""
    stripped = text.strip()
    if not stripped:
        return True
    if stripped.startswith(':') and '\n' not in stripped:
        return True
    lines = text.split('\n')
    if len(lines) > 1 and not lines[-1].strip():
        return True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            code = codeop.compile_command(text, '<input>', 'single')
    except (SyntaxError, ValueError, OverflowError):
        return True  # run it, so the error is shown
    return code is not None


def next_line_indent(line):
    indent = line[:len(line) - len(line.lstrip())]
    if line.rstrip().endswith(':'):
        indent += INDENT
    return indent


class Stash(object):
    """Text set aside when a command key interrupts typing."""

    def __init__(self):
        self.text = ''

    def take(self):
        text, self.text = self.text, ''
        return text


@Condition
def indenting():
    """Tab indents on a blank line of a multi-line input."""
    document = get_app().current_buffer.document
    return (document.line_count > 1
            and not document.current_line_before_cursor.strip())


def shell_key_bindings(stash=None):
    kb = KeyBindings()
    # Only the input line: Enter in the Ctrl-R search field ends the search.
    editing = has_focus(DEFAULT_BUFFER)

    @kb.add('enter', filter=editing & ~has_completions)
    def enter(event):
        buffer = event.current_buffer
        # One line runs from anywhere in it (as after a Ctrl-R search);
        # a block only from its end, so Enter inside it adds a line.
        at_end = (not buffer.document.text_after_cursor.strip()
                  or '\n' not in buffer.text)
        if at_end and input_is_complete(buffer.text):
            buffer.validate_and_handle()
            return
        line = buffer.document.current_line_before_cursor
        buffer.insert_text('\n' + next_line_indent(line))

    @kb.add('tab', filter=editing & indenting)
    def indent(event):
        event.current_buffer.insert_text(INDENT)

    @kb.add('enter', filter=editing & has_completions)
    def take_completion(event):
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)
        else:
            buffer.cancel_completion()

    for cmd in commands.all_commands():
        if cmd.key:
            kb.add(*cmd.key)(_run_command_handler(cmd.name, stash))
    return kb


def _run_command_handler(name, stash):
    def run(event):
        buffer = event.current_buffer
        if stash is not None and buffer.text.strip():
            stash.text = buffer.text
        event.app.exit(result=':' + name)
    run.__name__ = 'run_%s' % name
    return run
