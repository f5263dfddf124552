"""What every command does to the files it writes: a lock on its output, and atomic writes.

A lock is a small JSON file (pid, host, command, start time) created with O_EXCL beside what it
guards: ``.genconv.lock`` inside an output folder, ``.NAME.genconv.lock`` beside an output file.
A second writer gets one line naming the holder; a lock left by a process that no longer runs on
this host is stale and taken over. Atomic writes go to a temporary file in the same folder, are
flushed to disk and renamed over the target, so a kill at any moment leaves the old file or the
new one, never a torn one.
"""

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

from genconv.bindings.errors import OutputBusyError

FOLDER_LOCK_NAME = ".genconv.lock"
_UNREADABLE_GRACE_S = 10.0  # a lock file still being written is younger than this


def lock_path_for(target: str | Path, folder: bool) -> Path:
    """Where the lock of an output folder (inside it) or of an output file (beside it) lives."""
    target = Path(target)
    return target / FOLDER_LOCK_NAME if folder else target.with_name(f".{target.name}.genconv.lock")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}: {holder.get('command', '?')}"
    )


def _read_holder(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _is_stale(path: Path, holder: dict | None) -> bool:
    if holder is None:  # torn or being written: stale once it is old enough
        try:
            return time.time() - path.stat().st_mtime > _UNREADABLE_GRACE_S
        except FileNotFoundError:
            return True
    if holder.get("host") != socket.gethostname():
        return False  # a process on another host cannot be checked: assume it runs
    pid = holder.get("pid")
    return not isinstance(pid, int) or not _process_alive(pid)


@contextmanager
def output_lock(target: str | Path, *, folder: bool, command: str | None = None) -> Iterator[Path]:
    """Hold the lock of an output folder or file while the block runs.

    Args:
        target: the folder (created if missing) or the file whose folder must exist or be creatable.
        folder: whether ``target`` is a folder (lock inside) or a file (lock beside it).
        command: what the holder runs, for the message a second writer sees (default: argv).
    Raises:
        OutputBusyError: another live process holds the lock.
    """
    target = Path(target)
    home = target if folder else target.parent
    created = not home.exists()
    home.mkdir(parents=True, exist_ok=True)
    path = lock_path_for(target, folder)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or " ".join(["genconv", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for _ in range(3):
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read_holder(path)
            if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == record["host"]:
                yield path  # already held by this process (e.g. a compare run's inner runs)
                return
            if not _is_stale(path, holder):
                where = "folder" if folder else "file"
                found = _describe(holder) if holder else "a lock being written"
                raise OutputBusyError(
                    f"{where} {str(target)!r} is in use by another genconv command ({found}); wait for it to end, "
                    f"or remove {str(path)!r} if that process is gone"
                ) from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps(record) + "\n")
        break
    else:
        raise OutputBusyError(f"could not take the lock {str(path)!r}: another command keeps taking it")
    failed = True
    try:
        yield path
        failed = False
    finally:
        if (_read_holder(path) or {}).get("pid") == os.getpid():
            path.unlink(missing_ok=True)
        if failed and created and home.is_dir() and not any(home.iterdir()):
            home.rmdir()  # a command that failed leaves no empty folder behind


@contextmanager
def output_locks(targets: Sequence[tuple[str | Path, bool]], command: str | None = None) -> Iterator[None]:
    """Hold the locks of several outputs, (target, folder) pairs, in order."""
    with ExitStack() as stack:
        for target, folder in targets:
            stack.enter_context(output_lock(target, folder=folder, command=command))
        yield


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync, and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:  # name the file asked for, not the temporary one (disk full, ...)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda handle: handle.write(text.encode()))
