"""The interactive shell: a prompt_toolkit read-dispatch-render loop.

    read     PromptSession.prompt() (multi-line Python, completion, keys)
    dispatch commands.run_input(session, text, ui)
    render   TerminalUI.show_result(result)

All logic lives in Session, commands, completion and render; this module
only wires them to a terminal.  ``input``/``output`` can be given (tests
use create_pipe_input and DummyOutput).
"""

import contextlib
import os
import signal
import threading

from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.formatted_text import PygmentsTokens
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.shortcuts import PromptSession, print_formatted_text
from prompt_toolkit.output import ColorDepth

from durus_shell import commands, completion, freshness, link, paging, render
from durus_shell.keys import Stash, shell_key_bindings
from durus_shell.config import Settings
from durus_shell.lexer import ShellLexer
from durus_shell.refusals import refusal_note, toolbar_part
from durus_shell.style import shell_style
from durus_shell.typeahead import carry_typeahead
from durus_shell.ui import UI, choice_prompt

MIN_CUT_LINES = 20
REPL_MAX_ITEMS = 50


class ShellCompleter(Completer):
    """prompt_toolkit adapter over completion.suggest (pure)."""

    def __init__(self, session):
        self.session = session

    def get_completions(self, document, complete_event):
        for item in completion.suggest(document.text_before_cursor,
                                       self.session.namespace,
                                       session=self.session):
            yield Completion(item.text, -item.replace, display=item.display,
                             display_meta=item.meta)


class TerminalUI(UI):
    """Shows fragments with colours and asks through a prompt."""

    interactive = True

    def __init__(self, session, color=True, input=None, output=None):
        self.session = session
        self.color = color
        self.input = input
        self.output = output
        self.settings = session.settings or Settings()
        self.style = shell_style(self.settings.theme)
        self.renderer = render.Renderer(max_items=REPL_MAX_ITEMS)
        self._questions = None
        self._cut = None

    # -- one screenful per input (durus_shell.paging) ----------------------

    def start_output(self):
        """Count what the next input shows against one screenful."""
        rows, columns = self.size()
        self._cut = paging.ScreenCut(max(rows - 5, MIN_CUT_LINES), columns)

    def end_output(self):
        """Print the note on what was held back; keep it for :more."""
        cut, self._cut = self._cut, None
        if cut is None:
            return
        if cut.cut:
            # With a Deferred in it, the whole text is built by :more.
            self.session.last_output = (cut.full_text if cut.deferred
                                        else cut.full_text())
        tail = cut.finish()
        if tail:
            self._print(tail)

    @contextlib.contextmanager
    def one_screenful(self):
        self.start_output()
        try:
            yield
        finally:
            self.end_output()

    # show() takes a paging.Deferred too (see durus_shell.fix_commands).
    defers = True

    def show(self, text):
        if isinstance(text, paging.Deferred):
            if self._cut is None:
                text = text.build()
            else:
                shown = self._cut.take_deferred(text)
                if shown:
                    self._print(shown)
                return
        if isinstance(text, str):
            text = [(render.T_TEXT, text)]
        if self._cut is not None:
            text = self._cut.take(text)
            if not text:
                return
        self._print(text)

    def _print(self, text):
        if not self.color:
            print_formatted_text(render.plain(text), output=self.output)
            return
        print_formatted_text(PygmentsTokens(text), style=self.style,
                             output=self.output,
                             include_default_pygments_style=False)

    def _question_session(self):
        if self._questions is None:
            # vi mode (config editing_mode, --vi) in questions as well.
            self._questions = PromptSession(
                input=self.input, output=self.output,
                vi_mode=self.settings.editing_mode == 'vi')
        return self._questions

    def ask_text(self, question, default=''):
        self._question_break()
        session = self._question_session()
        carry_typeahead(session.app.input)
        try:
            return session.prompt(question + ' ')
        except (EOFError, KeyboardInterrupt):
            return default

    def ask(self, question, choices, default):
        self._question_session()
        keys = [key for key, _ in choices]
        self._question_break()
        for _ in range(3):
            carry_typeahead(self._questions.app.input)
            try:
                answer = self._questions.prompt(
                    choice_prompt(question, choices, default))
            except (EOFError, KeyboardInterrupt):
                return default
            answer = answer.strip().lower()[:1] or default
            if answer in keys:
                return answer
            self.show('Please answer %s.' % ', '.join(keys))
        return default

    def _question_break(self):
        """A question is never held back: say what was, start afresh."""
        if self._cut is not None:
            self.end_output()
            self.start_output()

    def size(self):
        try:
            size = self._output().get_size()
            return size.rows, max(size.columns, 20)
        except Exception:
            return 24, 80

    def _output(self):
        if self.output is not None:
            return self.output
        from prompt_toolkit.application.current import get_app_session
        return get_app_session().output

    def show_result(self, result):
        """Render what running one input produced."""
        if result.kind == 'value':
            # Long values are cut by the screenful the input runs in.
            self.show(self.renderer.render(result.value))
        elif result.failed:
            self.show([(render.T_ERROR, result.traceback)])


def history_path():
    """$XDG_STATE_HOME/durus-shell/history (default ~/.local/state/...)."""
    base = os.environ.get('XDG_STATE_HOME') or os.path.join(
        os.path.expanduser('~'), '.local', 'state')
    return os.path.join(base, 'durus-shell', 'history')


class SafeFileHistory(FileHistory):
    """History in a file; a file that cannot be read or written only
    costs the history, never the session.  At most ``size`` entries (the
    newest) are loaded: the config file's ``history_size``."""

    def __init__(self, filename, size=None):
        FileHistory.__init__(self, filename)
        self.size = size

    def load_history_strings(self):
        if self.size == 0:
            return
        try:
            for count, string in enumerate(
                    FileHistory.load_history_strings(self), 1):
                yield string
                if self.size is not None and count >= self.size:
                    return
        except (OSError, UnicodeDecodeError):
            return

    def store_string(self, string):
        try:
            FileHistory.store_string(self, string)
        except OSError:
            pass


def _history(size=None):
    path = history_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        return InMemoryHistory()
    return SafeFileHistory(path, size)


def make_prompt_session(session, ui, stash, input=None, output=None,
                        history=None, freshness=None):
    """The PromptSession for Python input and :commands.

    ``freshness`` (durus_shell.freshness): its last look's note is shown.
    """
    def toolbar():
        parts = [session.target.label if session.target else 'database']
        count = session.change_count()
        parts.append('%d uncommitted' % count if count else 'no changes')
        if session.readonly:
            parts.append('READ-ONLY')
        lost = link.toolbar_part(session)
        if lost:
            parts.append(lost)
        if freshness is not None and freshness.note:
            parts.append(freshness.note)
        if session.trusted:
            parts.append(toolbar_part(session))
        # No commit key to offer where nothing can be committed.
        parts.append('F1 help  Ctrl-D quit' if session.readonly
                     else 'F1 help  Ctrl-X C commit  Ctrl-D quit')
        return ' ' + ' | '.join(parts) + ' '

    def prompt_text():
        # Styled, so the trailing space is written out (prompt_toolkit
        # leaves unstyled trailing blanks to cursor moves): pexpect and
        # screen readers see 'durus> '.
        text = 'durus[ro]> ' if session.readonly else 'durus> '
        return [('class:prompt', text)]

    return PromptSession(
        message=prompt_text,
        multiline=True,
        prompt_continuation=lambda width, line, wrap: [
            ('class:continuation', '.' * (width - 1) + ' ')],
        completer=ShellCompleter(session),
        complete_while_typing=False,
        lexer=ShellLexer(),
        style=ui.style,
        include_default_pygments_style=False,
        color_depth=None if ui.color else ColorDepth.MONOCHROME,
        key_bindings=shell_key_bindings(stash),
        bottom_toolbar=toolbar,
        history=history if history is not None else _history(
            ui.settings.history_size),
        enable_history_search=False,
        auto_suggest=AutoSuggestFromHistory() if ui.settings.auto_suggest
        else None,
        vi_mode=ui.settings.editing_mode == 'vi',
        input=input,
        output=output,
        erase_when_done=False,
    )


@contextlib.contextmanager
def interruptible():
    """Ctrl-C (SIGINT) raises KeyboardInterrupt while the shell runs,
    whatever the shell inherited: started with SIGINT ignored (a
    background job of a non-interactive shell, some service managers),
    Python would leave it ignored and a runaway statement could not be
    stopped.  The previous handling comes back when the shell ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_app(session, color=True, startup=None, input=None, output=None,
            history=None):
    """Run the interactive shell until the operator leaves; returns 0."""
    with interruptible():
        return _run_app(session, color, startup, input, output, history)


def _run_app(session, color, startup, input, output, history):
    from durus_shell.opening import banner
    ui = TerminalUI(session, color=color, input=input, output=output)
    stash = Stash()
    fresh = freshness.watch(session)
    prompt = make_prompt_session(session, ui, stash, input=input,
                                 output=output, history=history,
                                 freshness=fresh)
    ui.show(banner(session))
    if startup:
        with ui.one_screenful():
            result = session.run_file(startup)
            ui.show_result(result)
            note = refusal_note(session)
            if note:
                ui.show(note)
    failures = 0
    while True:
        # Keys typed while the last statement ran, Ctrl-D included.
        carry_typeahead(prompt.app.input)
        if fresh is not None:
            fresh.look()  # once per prompt, not at each redraw
        try:
            text = prompt.prompt(default=stash.take())
            failures = 0
        except KeyboardInterrupt:
            continue
        except EOFError:
            if not session.has_unsaved_work() or commands.decide_exit(session, ui):
                break
            continue
        except Exception as error:  # e.g. the history file cannot be written
            failures += 1
            ui.show([(render.T_ERROR, 'durus-shell: the prompt failed: %s: %s'
                      % (type(error).__name__, error))])
            if failures >= 3:
                return 1
            prompt.history = InMemoryHistory()
            continue
        try:
            with ui.one_screenful():
                result = commands.run_input(session, text, ui)
                ui.show_result(result)
                note = refusal_note(session)
                if note:
                    ui.show(note)
        except KeyboardInterrupt:
            ui.show('Interrupted.')
            continue
        except Exception as error:
            # A failing hook or an unshowable value: say so and carry on.
            ui.show([(render.T_ERROR, 'durus-shell: %s: %s'
                      % (type(error).__name__, error))])
            continue
        if result.kind == 'quit':
            if result.source.lstrip().startswith(':'):
                break  # :quit already asked about pending changes
            if not session.has_unsaved_work() or commands.decide_exit(session, ui):
                break
    return 0
