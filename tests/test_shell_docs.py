"""Every command and every command-line flag is documented in docs/shell.md."""

import os

from durus_shell import commands
from durus_shell.cli import build_parser

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'docs', 'shell.md')


def doc_text():
    with open(DOC) as f:
        return f.read()


def test_every_command_is_documented():
    text = doc_text()
    missing = [cmd.name for cmd in commands.all_commands()
               if '`:%s' % cmd.name not in text]
    assert not missing, 'commands missing from docs/shell.md: %s' % missing
    for cmd in commands.all_commands():
        for alias in cmd.aliases:
            assert '`:%s`' % alias in text, alias
        if cmd.key:
            assert commands.key_label(cmd.key).split()[0] in text, cmd.name


def test_every_flag_is_documented():
    text = doc_text()
    flags = [option for action in build_parser()._actions
             for option in action.option_strings]
    missing = [flag for flag in flags if '`%s' % flag not in text]
    assert not missing, 'flags missing from docs/shell.md: %s' % missing


def test_environment_variables_are_documented():
    text = doc_text()
    for name in ('DURUS_SHELL_PATH', 'DURUSSTARTUP', 'NO_COLOR',
                 'XDG_STATE_HOME', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME'):
        assert name in text
