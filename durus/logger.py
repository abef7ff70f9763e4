"""The ``durus`` logger used by the server and the command line.

At import it writes to stderr, level INFO, message only, and does not
propagate (as Durus 4.3 does); ``direct_output`` sends it elsewhere.
"""

import logging
import sys

logger = logging.getLogger('durus')
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter('%(message)s'))
logger.addHandler(_handler)
logger.setLevel(logging.INFO)
logger.propagate = False


def log(level, msg, *args, **kwargs):
    """Log ``msg % args`` at ``level`` (an int, e.g. 20 for INFO);
    ``kwargs`` as for ``logging.Logger.log`` (exc_info...)."""
    logger.log(level, msg, *args, **kwargs)


def is_logging(level):
    return logger.isEnabledFor(level)


def direct_output(file):
    """Send log messages, and the process's stdout and stderr, to ``file``."""
    _handler.setStream(file)
    sys.stdout = sys.stderr = file
