"""The documentation cannot rot: every Python snippet of README.md and docs/ runs, every picture they
embed is made by a command of ``make docs-images``, and every relative link points at a file."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
PAGES = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]
SNIPPET = re.compile(r"```python\n(.*?)```", re.DOTALL)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)#]+)(#[^)]*)?\)")


def _snippets() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for index, code in enumerate(SNIPPET.findall(page.read_text())):
            found.append((f"{page.relative_to(REPOSITORY)}#{index + 1}", code))
    return found


SNIPPETS = _snippets()


def test_the_pages_have_snippets() -> None:
    assert len(SNIPPETS) >= 5 and any(name.startswith("README.md") for name, _ in SNIPPETS)


@pytest.mark.parametrize("name,code", SNIPPETS, ids=[name for name, _ in SNIPPETS])
def test_every_python_snippet_runs(name: str, code: str, tmp_path: Path) -> None:
    if "torchebm" in code:
        pytest.importorskip("torchebm")
    if "import ebm" in code:
        pytest.importorskip("ebm")
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"


def _docs_images_outputs() -> set[str]:
    """The files the ``docs-images`` recipe of the Makefile writes (its ``cp SOURCE DESTINATION`` lines)."""
    recipe, inside = [], False
    for line in (REPOSITORY / "Makefile").read_text().splitlines():
        if line.startswith("docs-images:"):
            inside = True
        elif inside and line.startswith("\t"):
            recipe.append(line.strip())
        elif inside and line.strip() and not line.startswith("#"):
            break
    return {line.split()[-1] for line in recipe if line.startswith("cp ")}


def test_every_embedded_picture_is_made_by_make_docs_images() -> None:
    outputs = _docs_images_outputs()
    embedded = []
    for page in PAGES:
        for target in IMAGE.findall(page.read_text()):
            path = (page.parent / target).resolve().relative_to(REPOSITORY)
            embedded.append(str(path))
            assert (REPOSITORY / path).is_file(), f"{page.name} embeds a missing picture {target}"
    assert embedded, "the pages embed no pictures"
    missing = [path for path in embedded if path not in outputs]
    assert not missing, f"pictures no command of `make docs-images` writes: {missing}"


def test_relative_links_point_at_files() -> None:
    for page in PAGES:
        for target, _ in LINK.findall(page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"


def _make_dry_run(*targets: str) -> subprocess.CompletedProcess[str]:
    """``make -n TARGETS`` in the repository, as if typed at a shell (not inside another make)."""
    environment = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    return subprocess.run(["make", "--no-print-directory", "-n", "-o", ".venv/.installed", *targets],
                          cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_makefile_parses_and_make_test_runs_the_suite() -> None:
    """The README's commands go through the Makefile: it must parse, and ``make test`` must run pytest
    on the whole suite (not a subset)."""
    done = _make_dry_run("test", "demo", "docs-images", "bench")
    assert done.returncode == 0, done.stderr
    assert _make_dry_run("test").stdout.splitlines()[-1].endswith("-m pytest")
