"""Install genconv: the top-level source folders become one namespace, ``genconv``.

``package/`` is the top of the namespace (the public API and ``python -m genconv``);
``bindings/``, ``engine/`` and ``kernels/`` become ``genconv.bindings``, ``genconv.engine`` and
``genconv.kernels``. Nothing but ``genconv`` lands in site-packages.
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
)
