"""``python -m durus_shell`` runs the shell."""

import sys

from durus_shell.cli import main

if __name__ == '__main__':  # (importing it must not start a shell)
    sys.exit(main())
