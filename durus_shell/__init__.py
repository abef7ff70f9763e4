"""durus-shell: an operator's REPL over Durus databases.

Layout: cli (arguments) -> opening (storage + facts) -> session (namespace,
statements, commits; no terminal) -> app (prompt_toolkit) or script
(no prompt).  commands, completion, render and peek are pure helpers.
See docs/shell.md.
"""

__version__ = '0.1.0'
