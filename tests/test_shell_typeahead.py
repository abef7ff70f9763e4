"""Keys typed between prompts (durus_shell.typeahead) and Ctrl-C handling
(app.interruptible), in process, on a real pseudo-terminal."""

import os
import pty
import signal
import termios
import time

import pytest
from prompt_toolkit.input.typeahead import get_typeahead
from prompt_toolkit.input.vt100 import Vt100Input
from prompt_toolkit.keys import Keys

from durus_shell.app import interruptible
from durus_shell.typeahead import (carry_typeahead, keys_from_chunks,
                                   read_cooked_input)


@pytest.fixture
def terminal():
    """(master, slave) of a new pseudo-terminal in cooked mode."""
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def type_keys(master, data):
    os.write(master, data)
    time.sleep(0.05)  # the line discipline handles it asynchronously


def test_cooked_input_tells_eof_marks_from_text(terminal):
    master, slave = terminal
    type_keys(master, b'6 * 7\r\x04ab\x04tail')
    # A line, the EOF key on an empty line, text ended by the EOF key;
    # 'tail' is an unfinished line: it stays for prompt_toolkit.
    assert read_cooked_input(slave) == [b'6 * 7\n', b'', b'ab']
    assert read_cooked_input(slave) == []


def test_raw_mode_and_non_terminals_are_left_alone(terminal, tmp_path):
    master, slave = terminal
    attributes = termios.tcgetattr(slave)
    attributes[3] &= ~termios.ICANON
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    type_keys(master, b'x')
    assert read_cooked_input(slave) == []
    with open(tmp_path / 'file', 'wb+') as f:
        assert read_cooked_input(f.fileno()) == []


def test_keys_keep_their_order_and_the_eof_key_comes_back():
    keys = keys_from_chunks([b'6 * 7\n', b'', b'ab', b'\x1b[A\n'])
    assert [k.key for k in keys] == (
        list('6 * 7') + [Keys.ControlJ, Keys.ControlD, 'a', 'b',
                         Keys.ControlD, Keys.Up, Keys.ControlJ])
    assert [k.key for k in keys_from_chunks([b''], eof_char='\x18')] == [
        Keys.ControlX]


def test_carry_typeahead_hands_the_keys_to_the_next_prompt(terminal):
    master, slave = terminal
    with os.fdopen(os.dup(slave), 'r') as stdin:
        prompt_input = Vt100Input(stdin)
        type_keys(master, b'1\r\x04')
        carry_typeahead(prompt_input)
        assert [k.key for k in get_typeahead(prompt_input)] == [
            '1', Keys.ControlJ, Keys.ControlD]


def test_interruptible_raises_even_when_sigint_was_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            with interruptible():
                os.kill(os.getpid(), signal.SIGINT)
                deadline = time.monotonic() + 10  # bounded if not raised
                while time.monotonic() < deadline:
                    time.sleep(0.01)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
