"""Progress of long runs: tqdm's bar on a terminal, a line every few percent in a log.

A bar redraws itself with carriage returns, which in a redirected log become one endless line;
when stderr is not a terminal the progress is a plain line per step of ``LOG_EVERY_PERCENT``.
"""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TextIO

from tqdm.auto import tqdm

LOG_EVERY_PERCENT = 10


class Progress(Protocol):
    def update(self, count: int = 1) -> None: ...

    def set_postfix(self, **values: Any) -> None: ...


class LineProgress:
    """Progress as lines: "<unit>s 40/200 (20%), 3.4 <unit>/s, key=value" every few percent and at the end."""

    def __init__(self, total: int, initial: int, unit: str, description: str | None, stream: TextIO) -> None:
        self.total, self.done, self.unit, self.stream = total, initial, unit, stream
        self.prefix = f"{description}: " if description else ""
        self.started, self.first = time.perf_counter(), initial
        self.next_report = self._next_threshold(initial)
        self.postfix: dict[str, Any] = {}

    def _next_threshold(self, done: int) -> int:
        step = max(1, self.total * LOG_EVERY_PERCENT // 100)
        return (done // step + 1) * step

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.done >= self.next_report or self.done >= self.total:
            self.next_report = self._next_threshold(self.done)
            elapsed = time.perf_counter() - self.started
            rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
            extra = "".join(f", {key}={value}" for key, value in self.postfix.items())
            percent = 100 * self.done // max(self.total, 1)
            print(f"{self.prefix}{self.unit}s {self.done}/{self.total} ({percent}%), {rate:.3g} {self.unit}/s{extra}",
                  file=self.stream, flush=True)  # fmt: skip


class _Silent:
    def update(self, count: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass


@contextmanager
def progress_reporter(
    total: int, *, enabled: bool = True, initial: int = 0, unit: str = "it", description: str | None = None
) -> Iterator[Progress]:
    """A progress reporter for ``total`` units: a tqdm bar on a terminal, lines otherwise, or nothing."""
    if not enabled:
        yield _Silent()
        return
    stream = sys.stderr
    if stream.isatty():
        with tqdm(total=total, initial=initial, unit=unit, desc=description, file=stream) as bar:
            yield bar
        return
    yield LineProgress(total, initial, unit, description, stream)
