"""Keys typed while a statement runs reach the next prompt, Ctrl-D included.

Between prompts the terminal is in cooked (canonical) mode, so the
statement's own input() and Ctrl-C work as usual.  Text typed then waits
in the terminal and prompt_toolkit reads it once the next prompt starts.
A Ctrl-D does not survive that way: the terminal turns it into an
end-of-file mark, which reads as a NUL byte once the prompt switches to
raw mode (Ctrl-Space, not Ctrl-D).  So, just before each prompt, the
input the terminal holds ready is read here, still in cooked mode, where
an end-of-file mark is told apart from text, and handed to prompt_toolkit
as typeahead with the end-of-file mark back as the key that made it.
"""

import codecs
import os
import select

try:
    import termios
except ImportError:  # not a POSIX terminal: nothing to carry
    termios = None

from prompt_toolkit.input.typeahead import store_typeahead
from prompt_toolkit.input.vt100_parser import Vt100Parser

# A canonical read returns at most one line; this many lines are more
# than anyone types ahead, and bound the loop.
MAX_CHUNKS = 256
# Linux hands out a canonical line of at most 4095 bytes; a longer line
# comes in chunks that end without a newline and without an EOF mark.
MAX_CANON = 4095


def read_cooked_input(fd):
    """The chunks the terminal ``fd`` holds ready: each a complete line
    or the text before an end-of-file mark.  A chunk ends with b'\\n' for
    a line; otherwise it was ended by the EOF key (b'' for the EOF key on
    an empty line).  Returns ``[]`` when ``fd`` is not a terminal in
    canonical mode, whose input prompt_toolkit reads as it is."""
    if termios is None or not os.isatty(fd):
        return []
    try:
        if not termios.tcgetattr(fd)[3] & termios.ICANON:
            return []
    except termios.error:
        return []
    chunks = []
    for _ in range(MAX_CHUNKS):
        try:
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                break
            chunk = os.read(fd, MAX_CANON + 1)
        except (OSError, ValueError):
            break
        chunks.append(chunk)
    return chunks


def eof_key(fd):
    """The character the terminal's EOF key sends (Ctrl-D unless stty
    eof changed it)."""
    try:
        char = termios.tcgetattr(fd)[6][termios.VEOF]
    except (termios.error, IndexError):
        return '\x04'
    if isinstance(char, int):
        char = bytes([char])
    return char.decode('latin-1') or '\x04'


def keys_from_chunks(chunks, eof_char='\x04'):
    """KeyPresses for what was typed: the text of each chunk, and the EOF
    key after each chunk that an end-of-file mark ended."""
    keys = []
    parser = Vt100Parser(keys.append)
    decoder = codecs.getincrementaldecoder('utf-8')('replace')
    for chunk in chunks:
        parser.feed(decoder.decode(chunk))
        if not chunk.endswith(b'\n') and len(chunk) < MAX_CANON:
            parser.flush()
            parser.feed(eof_char)
    parser.feed(decoder.decode(b'', final=True))
    parser.flush()
    return keys


def carry_typeahead(input):
    """Move what ``input``'s terminal holds ready into prompt_toolkit's
    typeahead for ``input``, so the next prompt acts on every key."""
    try:
        fd = input.fileno()
    except (AttributeError, NotImplementedError, OSError, ValueError):
        return
    chunks = read_cooked_input(fd)
    if chunks:
        store_typeahead(input, keys_from_chunks(chunks, eof_key(fd)))
