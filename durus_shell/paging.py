"""One screenful per input: the cut every command's output goes through.

The terminal UI opens a ``ScreenCut`` for each input it runs.  Everything
shown while it runs (a value, a command's tables and lines, any number of
``ui.show`` calls) is counted against one screenful: what fits is printed,
the rest is only kept, in full, for ``:more`` (the pager).  When the input
ends the cut prints how many lines it held back, then the last short
message the command showed (``99,999 found (in _)``), or the last line of
a long one (a report's summary), so the count is never lost.  Holding text back is cheap, so a long listing can neither
flood the terminal nor keep it busy after Ctrl-C.

Pure logic: it works on render fragments and line counts, the UI prints.
"""

from durus_shell import render

CUT_NOTE = '... %d more line%s (:more shows all of it in the pager)'
TAIL_LINES = 2   # a last message this short is shown after the note


class Deferred(object):
    """A long text shown as its start, built in full only if :more asks:
    ``head`` (fragments, longer than a screenful), ``more_lines`` lines
    after it, ``build()`` the whole text (a str).  For tables of many
    rows (:find), whose rows cost more to make than to print."""

    def __init__(self, head, more_lines, build):
        self.head = head
        self.more_lines = more_lines
        self.build = build


class ScreenCut(object):
    """Counts one input's output against ``limit`` terminal lines."""

    def __init__(self, limit, columns):
        self.limit = max(1, limit)
        self.columns = max(20, columns)
        self.used = 0
        self.held = 0          # lines held back so far
        self.tail = None       # the last held-back show(), if short
        self.texts = []        # the plain text of every show(), in order
        self.deferred = False  # whether texts holds a Deferred

    @property
    def cut(self):
        return self.held > 0

    def take(self, fragments):
        """The part of ``fragments`` (or a str) to print now (maybe empty)."""
        if isinstance(fragments, str):
            fragments = [(render.T_TEXT, fragments)]
        text = render.plain(fragments)
        self.texts.append(text)
        lines = render.screen_lines(text, self.columns)
        if self.held:
            self._hold(fragments, render.count_lines(text))
            return []
        if self.used + lines <= self.limit:
            self.used += lines
            return fragments
        room = self.limit - self.used
        if room <= 0:
            self._hold(fragments, render.count_lines(text))
            return []
        shown = _first_lines(fragments, room)
        self.used = self.limit
        left = render.count_lines(text) - room
        if left > 1:
            # One long show (a report): its last line (the summary) is
            # shown after the note.
            self.held += left - 1
            self.tail = (_last_line(text), 1)
        else:
            self.held += max(1, left)
            self.tail = None
        return shown

    def take_deferred(self, deferred):
        """As ``take`` for the start of a Deferred; its rest is held."""
        tail = self.tail
        shown = self.take(deferred.head)
        self.texts[-1] = deferred
        self.deferred = True
        if self.tail is not tail and self.tail is not None:
            # The head's last line: the rest follows it, so it is held.
            self.held += self.tail[1]
            self.tail = None
        self.held += max(1, deferred.more_lines)
        return shown

    def _hold(self, fragments, lines):
        if self.tail is not None:
            self.held += self.tail[1]
        if lines <= TAIL_LINES:
            self.tail = (fragments, lines)
        else:
            self.held += lines - 1
            self.tail = (_last_line(render.plain(fragments)), 1)

    def finish(self):
        """The fragments to print when the input ends: the note and the
        short last message, or nothing when everything fitted."""
        if not self.held:
            if self.tail is not None:
                return self.tail[0]
            return []
        out = [(render.T_NOTE, CUT_NOTE % (self.held,
                                           '' if self.held == 1 else 's'))]
        if self.tail is not None:
            out += [(render.T_TEXT, '\n')] + list(self.tail[0])
        return out

    def full_text(self):
        """Everything shown during the input, for the pager (a Deferred's
        text is built now)."""
        return '\n'.join(
            (text.build() if isinstance(text, Deferred) else text).rstrip('\n')
            for text in self.texts)


def _last_line(text):
    return [(render.T_TEXT, text.rstrip('\n').rsplit('\n', 1)[-1])]


def _first_lines(fragments, count):
    """The fragments of the first ``count`` lines (no trailing newline)."""
    out = []
    lines = 1
    for token, text in fragments:
        pieces = text.split('\n')
        for index, piece in enumerate(pieces):
            if index:
                if lines >= count:
                    return out
                lines += 1
                out.append((token, '\n'))
            if piece:
                out.append((token, piece))
    return out
