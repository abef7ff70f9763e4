"""``python -m durus_shell`` runs the shell."""

import sys

from durus_shell.cli import main

sys.exit(main())
