"""How commands talk to the operator, without knowing about terminals.

A UI offers ``show(text)`` (a str or styled fragments from
durus_shell.render), ``ask(question, choices, default)`` returning one of
the choice keys, ``interactive`` (True at a prompt) and ``color``.

``StreamUI`` writes plain text and answers questions from a fixed table
(else the default), so scripts never wait for input; ``ConsoleUI`` asks on
the terminal before the app runs; ``RecordingUI`` is the test double.
"""

import sys

from durus_shell import render


class UI(object):
    interactive = False
    color = False

    def show(self, text):
        raise NotImplementedError

    def ask(self, question, choices, default):
        """``choices``: list of (key, label); returns the key chosen."""
        raise NotImplementedError

    def ask_text(self, question, default=''):
        """A line of free text (e.g. a commit's reason); ``default`` if
        nobody can answer."""
        return default


class SilentUI(UI):
    """Shows nothing and always takes the default."""

    def show(self, text):
        pass

    def ask(self, question, choices, default):
        return default


class StreamUI(UI):
    """Writes plain text to a stream; questions take ``answers`` or the default."""

    def __init__(self, stream=None, answers=None):
        self.stream = stream
        self.answers = dict(answers or {})

    def show(self, text):
        stream = self.stream or sys.stdout
        stream.write(render.plain(text).rstrip('\n') + '\n')
        stream.flush()

    def ask(self, question, choices, default):
        answer = self.answers.get(question, default)
        self.show('%s %s' % (question, answer))
        return answer

    def ask_text(self, question, default=''):
        return self.ask(question, (), default)



class RecordingUI(UI):
    """Keeps what was shown; answers questions from a list (tests)."""

    def __init__(self, answers=(), interactive=True):
        self.shown = []
        self.questions = []
        self.answers = list(answers)
        self.interactive = interactive

    def show(self, text):
        self.shown.append(render.plain(text))

    def ask(self, question, choices, default):
        self.questions.append(question)
        if self.answers:
            return self.answers.pop(0)
        return default

    def ask_text(self, question, default=''):
        return self.ask(question, (), default)

    @property
    def text(self):
        return '\n'.join(self.shown)


def choice_prompt(question, choices, default):
    """``question [c]ommit, [a]bort, [s]tay (default s): ``"""
    labels = []
    for key, label in choices:
        if label.lower().startswith(key.lower()):
            labels.append('[%s]%s' % (label[0], label[1:]))
        else:
            labels.append('%s (%s)' % (label, key))
    return '%s %s (default %s): ' % (question, ', '.join(labels), default)


class ConsoleUI(StreamUI):
    """Plain terminal questions before the app runs (e.g. --repair)."""

    interactive = True

    def __init__(self, stream=None, answers=None, vi_mode=False):
        StreamUI.__init__(self, stream, answers)
        self.vi_mode = vi_mode

    def _input(self, text):
        if not self.vi_mode:
            return input(text)
        # vi keys (config editing_mode / --vi) in this question too.
        from prompt_toolkit import prompt
        return prompt(text, vi_mode=True)

    def ask(self, question, choices, default):
        keys = [key for key, _ in choices]
        for _ in range(3):
            try:
                answer = self._input(choice_prompt(question, choices,
                                                   default))
            except EOFError:
                return default
            answer = answer.strip().lower()[:1] or default
            if answer in keys:
                return answer
        return default
