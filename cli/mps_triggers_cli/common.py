"""What every subcommand shares: usage errors (exit 2), ``--env-file``, progress on stderr, tables and JSON on stdout.

Progress: on a terminal a tqdm bar (count, rate, ETA) on stderr; otherwise one plain line every
:data:`PLAIN_EVERY` seconds (``backfill: 1,200/10,000 (12.0%) submitted 1,180 duplicate 10 failed 2 · 94.9/s · ETA
1m33s``), so a log collector gets a readable trace rather than carriage returns.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Iterable, TextIO

PLAIN_EVERY = 5.0
"""Seconds between two plain progress lines when stderr is not a terminal."""


class UsageError(Exception):
    """A usage or configuration error: the command prints it and exits with status 2. ``what`` names the argument
    or variable at fault."""

    def __init__(self, what: str, problem: str) -> None:
        self.what, self.problem = what, problem
        super().__init__(f"{what}: {problem}")


def load_env_file(path: str | None) -> None:
    """Apply ``path`` (dotenv syntax: ``NAME=value``, quotes, ``export``, comments; python-dotenv) to
    ``os.environ``. Values in the file win over the environment: the file is what the operator named. Raises
    :class:`UsageError` when the file cannot be read."""
    if not path:
        return
    from dotenv import dotenv_values

    if not os.path.isfile(path):
        raise UsageError("--env-file", f"{path}: no such file")
    try:
        values = dotenv_values(path, interpolate=True)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError("--env-file", f"{path}: {exc}") from None
    for name, value in values.items():
        if value is not None:
            os.environ[name] = value


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s`` or ``0.8s``."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Progress of a long run on stderr (see the module docstring). ``total`` may be None (unknown); ``counts``
    names the counters shown (``submitted``, ``failed``...). Use as a context manager; :meth:`update` per item."""

    def __init__(self, label: str, total: int | None, counts: Iterable[str], stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.label, self.total, self.done = label, total, 0
        self.counts = {name: 0 for name in counts}
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._start = time.monotonic()
        self._last = self._start
        self._bar: Any = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
            except ImportError:  # the cli extra is not installed: plain lines still work
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=label, unit="obj", file=self.stream, dynamic_ncols=True,
                                 smoothing=0.1)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1, **counts: int) -> None:
        """Count ``n`` more items done and add ``counts`` to the named counters."""
        self.done += n
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix({k: v for k, v in self.counts.items() if v}, refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= PLAIN_EVERY:
            self._last = now
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """The plain progress line."""
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        head = f"{self.done:,}"
        eta = ""
        if self.total:
            head += f"/{self.total:,} ({100.0 * self.done / self.total:.1f}%)"
            if rate > 0 and self.done < self.total:
                eta = f" · ETA {duration((self.total - self.done) / rate)}"
        counts = " ".join(f"{k} {v:,}" for k, v in self.counts.items() if v)
        return f"{self.label}: {head} {counts} · {rate:.1f}/s{eta}".replace("  ", " ")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.done:
            print(self.line(), file=self.stream, flush=True)


def note(message: str) -> None:
    """One line for the operator on stderr (plans, warnings, where the report went)."""
    print(message, file=sys.stderr, flush=True)


def table(headers: list[str], rows: list[list[Any]], stream: TextIO | None = None) -> None:
    """An aligned text table on stdout (numbers right-aligned)."""
    stream = stream or sys.stdout
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) and rows for i in range(len(headers))]
    if any(headers):
            print("  ".join(h.rjust(w) if numeric[i] else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths))
                        ).rstrip(), file=stream)
    for row in cells:
        print("  ".join(v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))).rstrip(),
              file=stream)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def emit_json(doc: Any, stream: TextIO | None = None) -> None:
    """``doc`` as one JSON document on stdout."""
    print(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False), file=stream or sys.stdout)
