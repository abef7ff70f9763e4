"""Build script: everything is in pyproject.toml except the optional
compiled module, which setuptools can only declare here.

durus._speedups is optional: without a C compiler the install still
succeeds and durus runs its pure-Python code (durus/_accel.py).  Its
sources are the parts in csrc/, compiled as one unit through module.c.
"""

import glob

from setuptools import Extension, setup

setup(ext_modules=[
    Extension('durus._speedups', ['csrc/module.c'],
              depends=sorted(glob.glob('csrc/*.[ch]')), optional=True),
])
