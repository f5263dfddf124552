"""Install genconv: the top-level source folders become one namespace, ``genconv``.

``package/`` is the top of the namespace (the public API and ``python -m genconv``);
``bindings/``, ``engine/`` and ``kernels/`` become ``genconv.bindings``, ``genconv.engine`` and
``genconv.kernels``. Nothing but ``genconv`` lands in site-packages. The C++ source of the CPU
kernel ships as package data: it is compiled on the user's machine on first use.
"""

from setuptools import setup

PACKAGE_DIRS = {
    "genconv": "package",
    "genconv.bindings": "bindings",
    "genconv.engine": "engine",
    "genconv.kernels": "kernels",
}

setup(
    packages=list(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    package_data={"genconv.kernels": ["csrc/*.cpp"]},
)
