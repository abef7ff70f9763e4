"""Build script: everything is in pyproject.toml except the optional
compiled module, which setuptools can only declare here.

durus._speedups is optional: without a C compiler the install still
succeeds and durus runs its pure-Python code (durus/_accel.py).  Its
sources are the parts in csrc/, compiled as one unit through module.c.
The record check (csrc/record_check.c) inflates compressed states with
zlib when zlib.h and the library are found; else it leaves those records
to its Python twin.
"""

import glob
import os
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ZLIB_PROBE = """#include <zlib.h>
int main(void) { z_stream s = {0}; return inflateInit(&s) + inflateReset(&s); }
"""


def has_zlib(compiler):
    """Whether a program using zlib compiles and links."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, 'probe.c')
        with open(source, 'w') as f:
            f.write(ZLIB_PROBE)
        try:
            objects = compiler.compile([source], output_dir=tmp)
            compiler.link_executable(objects, os.path.join(tmp, 'probe'),
                                     libraries=['z'])
        except Exception:  # no header, no library, or no linker
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        if has_zlib(self.compiler):
            for extension in self.extensions:
                extension.libraries.append('z')
                extension.define_macros.append(('DURUS_HAVE_ZLIB', '1'))
        super().build_extensions()


setup(cmdclass={'build_ext': BuildExt}, ext_modules=[
    Extension('durus._speedups', ['csrc/module.c'],
              depends=sorted(glob.glob('csrc/*.[ch]')), optional=True),
])
