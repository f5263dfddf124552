"""Packaging and layering: one installed namespace, and imports that only point downwards."""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("package", "bindings", "engine", "kernels")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Build the wheel from a copy of the source tree (the checkout stays clean)."""
    build = tmp_path_factory.mktemp("build")
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, build / name)
    for folder in SOURCE_FOLDERS:
        shutil.copytree(ROOT / folder, build / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = build / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."],
        cwd=build,
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("genconv-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_wheel_installs_only_the_genconv_namespace(wheel: zipfile.ZipFile) -> None:
    wheel_files = wheel.namelist()
    tops = {name.split("/")[0] for name in wheel_files}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"genconv"}
    for module in (
        "genconv/__init__.py",
        "genconv/__main__.py",
        "genconv/cli.py",
        "genconv/bindings/backends.py",
        "genconv/engine/model.py",
        "genconv/kernels/reference.py",
        "genconv/kernels/csrc/langevin_cpu.cpp",
    ):
        assert module in wheel_files
    entry_points = next(name for name in wheel_files if name.endswith(".dist-info/entry_points.txt"))
    assert "genconv = genconv.cli:main" in wheel.read(entry_points).decode()


def _genconv_imports(path: Path) -> set[str]:
    """Absolute genconv modules a source file imports: import statements at any depth (lazy ones
    inside functions included) and module names given to importlib.import_module or __import__."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genconv"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("genconv"))
        elif isinstance(node, ast.Call) and _is_import_call(node.func) and node.args:
            name = node.args[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value.startswith("genconv"):
                found.add(name.value)
    return found


def _is_import_call(function: ast.expr) -> bool:
    return (isinstance(function, ast.Attribute) and function.attr == "import_module") or (
        isinstance(function, ast.Name) and function.id in ("__import__", "import_module")
    )


def _imports_of(folder: str) -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT)): _genconv_imports(path) for path in (ROOT / folder).rglob("*.py")}


def test_kernels_know_only_torch_and_triton() -> None:
    for path, imports in _imports_of("kernels").items():
        assert all(name.startswith("genconv.kernels") for name in imports), (path, imports)


def test_engine_reaches_kernels_only_through_bindings() -> None:
    for path, imports in _imports_of("engine").items():
        assert not any(name.startswith("genconv.kernels") for name in imports), (path, imports)


def test_bindings_never_import_the_engine() -> None:
    for path, imports in _imports_of("bindings").items():
        assert not any(name.startswith("genconv.engine") for name in imports), (path, imports)


def test_the_import_check_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "lazy.py"
    source.write_text(
        "import importlib\n"
        "def later():\n"
        "    from genconv.engine import model\n"
        "    return importlib.import_module('genconv.engine.trainer'), __import__('genconv.engine.data')\n"
    )
    assert _genconv_imports(source) == {"genconv.engine", "genconv.engine.trainer", "genconv.engine.data"}
