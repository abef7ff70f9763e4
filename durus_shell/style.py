"""Colours, by token type, in ANSI names so they suit dark and light
terminals alike.  Code colours (pygments tokens) apart from UI colours."""

from prompt_toolkit.styles import Style

CODE = {
    'pygments.keyword': 'ansimagenta',
    'pygments.keyword.constant': 'ansimagenta',
    'pygments.name.builtin': 'ansicyan',
    'pygments.name.function': 'ansiblue',
    'pygments.name.class': 'ansiblue bold',
    'pygments.name.attribute': 'ansicyan',
    'pygments.literal.string': 'ansigreen',
    'pygments.string': 'ansigreen',
    'pygments.literal.number': 'ansiyellow',
    'pygments.number': 'ansiyellow',
    'pygments.operator': '',
    'pygments.comment': 'ansibrightblack',
    'pygments.error': 'ansired',
    'pygments.generic.heading': 'bold',
    'pygments.generic.inserted': 'ansigreen',
    'pygments.generic.deleted': 'ansired bold',
}

UI = {
    'prompt': 'ansigreen bold',
    'continuation': 'ansibrightblack',
    'bottom-toolbar': 'reverse',
    'completion-menu.completion.current': 'reverse',
}


def shell_style(theme='default'):
    """The shell's colours; ``theme`` (config file) names a pygments
    style for the code colours, 'default' keeps the ANSI ones above."""
    if theme and theme != 'default':
        from prompt_toolkit.styles import merge_styles
        from prompt_toolkit.styles.pygments import style_from_pygments_cls
        from pygments.styles import get_style_by_name
        return merge_styles([style_from_pygments_cls(get_style_by_name(theme)),
                             Style.from_dict(UI)])
    rules = dict(CODE)
    rules.update(UI)
    return Style.from_dict(rules)
