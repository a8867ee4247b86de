"""Progress reporting for long operations: a bar on a terminal, log lines otherwise.

Every long command (demo generation, ingest-file, rebuild, replay, export,
verify) reports through :class:`Progress`, so all of them show rate and ETA
the same way without a third-party dependency.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

import structlog

log = structlog.get_logger(__name__)


def _fmt_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """Count units of work and show rate and ETA.

    On a TTY it redraws one line at most 10 times a second; otherwise it logs
    a ``progress`` line every ``log_every`` seconds, so CI logs stay short.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "events",
        stream: TextIO | None = None,
        enabled: bool = True,
        log_every: float = 10.0,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.log_every = log_every
        self.done = 0
        self.started = time.perf_counter()
        self._last_draw = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def rate(self) -> float:
        """Units per second so far."""
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more units done and redraw if due."""
        self.done += n
        now = time.perf_counter()
        interval = 0.1 if self.tty else self.log_every
        if self.enabled and now - self._last_draw >= interval:
            self._last_draw = now
            self._draw()

    def _line(self) -> str:
        rate = self.rate
        if self.total:
            share = min(1.0, self.done / self.total)
            width = 30
            filled = int(share * width)
            bar = "#" * filled + "-" * (width - filled)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            return (
                f"{self.label} [{bar}] {self.done:,}/{self.total:,} {self.unit} "
                f"{rate:,.0f}/s ETA {_fmt_seconds(eta)}"
            )
        elapsed = time.perf_counter() - self.started
        return f"{self.label} {self.done:,} {self.unit} {rate:,.0f}/s {_fmt_seconds(elapsed)}"

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self._line().ljust(100))
            self.stream.flush()
        else:
            log.info(
                "progress", task=self.label, done=self.done, total=self.total, rate=round(self.rate)
            )

    def close(self) -> None:
        """Draw the final state (and end the terminal line)."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self._line().ljust(100) + "\n")
            self.stream.flush()
