"""Which implementation of the per-load steps runs.

``speedups`` is the compiled ``durus._speedups`` module when it was built
at install time, else None.  Setting the environment variable
``DURUS_NO_SPEEDUPS`` (to anything but an empty string) before durus is
imported forces the pure-Python code, which is always present and is the
reference: the compiled functions hand every unusual case back to it.
"""

import os


def _load():
    if os.environ.get('DURUS_NO_SPEEDUPS'):
        return None
    try:
        from durus import _speedups
    except ImportError:
        return None
    return _speedups


speedups = _load()
