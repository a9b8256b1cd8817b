"""Progress reporting per pipeline stage: a tqdm bar (rate, ETA) on a terminal, plain lines in logs.

Modes (``--progress``):

* ``auto`` (default): ``bar`` when standard error is a terminal and tqdm is installed, else ``plain``;
* ``bar``: a tqdm bar per stage (falls back to ``plain`` without tqdm);
* ``plain``: one line every ``every`` items and at the end: ``done/total, rate, ETA``;
* ``none``: silent (``--quiet``).

``True`` / ``False`` (the older boolean setting) mean ``auto`` / ``none``.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any, Literal

Mode = Literal["auto", "bar", "plain", "none"]
MODES: tuple[str, ...] = ("auto", "bar", "plain", "none")


def resolve_mode(mode: "Mode | bool | None", stream: IO[str] | None = None) -> str:
    """The concrete mode (``bar``, ``plain`` or ``none``) of a requested one.

    Example:
        >>> import io
        >>> resolve_mode("auto", io.StringIO()), resolve_mode(False), resolve_mode("plain")
        ('plain', 'none', 'plain')
    """
    if mode is None or mode is True:
        mode = "auto"
    if mode is False:
        return "none"
    if mode not in MODES:
        raise ValueError(f"--progress {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "none":
        return "none"
    stream = sys.stderr if stream is None else stream
    if mode == "auto":
        isatty = getattr(stream, "isatty", None)
        mode = "bar" if (isatty is not None and isatty()) else "plain"
    if mode == "bar":
        try:
            import tqdm  # noqa: F401
        except ImportError:
            return "plain"
    return mode


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Progress of one stage over ``total`` items; use as a context manager and call :meth:`update`.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with Progress("decode", 3, mode="plain", stream=out, every=2, unit="clip") as p:
        ...     for _ in range(3):
        ...         p.update()
        >>> [line.split(" (")[0] for line in out.getvalue().splitlines()]
        ['[javisbench] decode: 2/3 clips', '[javisbench] decode: 3/3 clips']
    """

    def __init__(self, desc: str, total: int, mode: "Mode | bool | None" = "auto", stream: IO[str] | None = None,
                 every: int = 25, unit: str = "sample") -> None:
        self.desc, self.total, self.unit = desc, int(total), unit
        self.stream = sys.stderr if stream is None else stream
        self.mode = resolve_mode(mode, self.stream)
        self.every = max(1, int(every))
        self.n = 0
        self._t0 = time.perf_counter()
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=f"[javisbench] {desc}", unit=unit, file=self.stream,
                             dynamic_ncols=True, leave=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "plain" and (self.n % self.every == 0 or self.n == self.total):
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        """``[javisbench] desc: n/total units (rate/s, ETA m:ss)``."""
        dt = max(time.perf_counter() - self._t0, 1e-9)
        rate = self.n / dt
        eta = (self.total - self.n) / rate if rate > 0 else float("inf")
        eta_s = _clock(eta) if eta != float("inf") else "?"
        unit = self.unit + ("s" if self.total != 1 else "")
        return f"[javisbench] {self.desc}: {self.n}/{self.total} {unit} ({rate:.2f}/s, ETA {eta_s})"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def note(mode: "Mode | bool | None", msg: str, stream: IO[str] | None = None) -> None:
    """A one-line stage message, unless progress is off."""
    if resolve_mode(mode, stream) != "none":
        s = sys.stderr if stream is None else stream
        s.write(msg + "\n")
        s.flush()
