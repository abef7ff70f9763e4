"""The mark for tests that need the compiled module (durus._speedups)."""

import pytest

from durus import _accel

compiled = pytest.mark.skipif(
    _accel.speedups is None,
    reason='durus._speedups was not built (no C compiler at install time) '
           'or DURUS_NO_SPEEDUPS is set')
