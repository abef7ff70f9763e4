"""Build script: everything is in pyproject.toml except the optional
compiled module, which setuptools can only declare here.

durus._speedups is optional: without a C compiler the install still
succeeds and durus runs its pure-Python code (durus/_accel.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension('durus._speedups', ['durus/_speedups.c'], optional=True),
])
