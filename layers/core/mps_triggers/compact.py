"""The compaction job: each closed hour partition's small objects → one gzip JSON Lines object.

An HTTP-callback deployment writes one object per callback (about 5,000 objects for 10,000 callbacks), the
small-files pattern that makes Athena and DLC slow and costly. Scheduled hourly (EventBridge Scheduler on Lambda, a
timer trigger on SCF: ``functions/compact/app.py``) and run on demand by ``mps-triggers compact``, the job takes
every partition ``event_type=P/dt=D/hour=H`` under the archive prefix whose hour ended at least
``COMPACT_GRACE_MINUTES`` ago (the scheduled run looks back ``COMPACT_LOOKBACK_HOURS``; the command takes any
range) and that holds a plain ``.jsonl`` object or more than one object, and:

1. lists the partition's archive objects (:func:`mps_triggers.lines.parse_key`; any other file is left alone);
2. reads them all (:data:`READERS` at once): lines deduplicated by ``id`` (a line without one, which this
   project never writes, by its bytes), ordered by time (``received_at``, ``at`` or ``failed_at``, then ``id``);
3. writes ``compacted-<sha256 of the content, 32 hex>.jsonl.gz`` (gzip with no timestamp: the same lines always
   make the same bytes and so the same name);
4. reads it back and checks that every id and every id-less line of the inputs is in it;
5. only then deletes the inputs (never the object it just wrote).

Idempotent and crash-safe: killed before 3, nothing changed; between 3 and the end of 5, the partition holds the
compacted object and some inputs, which readers deduplicate by ``id``, and the next run merges them into the very
same object (same lines → same name) and finishes the deletes. An object written into the partition after the
listing is not read and not deleted: the next run merges it. No line is ever lost, and once a run completes no
line is kept twice.
"""
from __future__ import annotations

import concurrent.futures as cf
import functools
import gzip
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

from .exceptions import MpsTriggersError
from .lines import COMPACTED, ArchiveKey, object_lines, parse_key
from .logs import log

GZIP_CONTENT_TYPE = "application/gzip"
READERS = 16
"""Objects of a partition read at once."""
PARTITION_RESERVE = 30.0
"""Seconds of the invocation a partition may not start in (its reads, write, read-back and deletes)."""


class CompactionError(MpsTriggersError):
    """Some partitions could not be compacted (named in the message); the others were. Raised by
    :meth:`CompactReport.respond` so the platform counts the invocation as failed; running again is safe."""


@dataclass
class PartitionResult:
    """One partition's compaction: its ``folder`` (``event_type=…/dt=…/hour=…/``), ``inputs`` read, ``lines``
    kept (each once), ``bytes_in``/``bytes_out``, the compacted ``key``, ``deleted`` inputs, and ``error`` when it
    failed (nothing was deleted then) or ``skipped`` when there was nothing to do."""

    folder: str
    inputs: int = 0
    lines: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    key: str | None = None
    deleted: int = 0
    error: str | None = None
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class CompactReport:
    """What one run did: ``results`` per partition, and ``pending`` partitions left for the next run (deadline)."""

    results: list[PartitionResult] = field(default_factory=list)
    pending: int = 0

    @property
    def failed(self) -> list[PartitionResult]:
        return [r for r in self.results if r.error]

    def summary(self) -> dict[str, Any]:
        done = [r for r in self.results if r.key and not r.error and not r.skipped]
        return {"partitions": len(done), "objects_before": sum(r.inputs for r in done),
                "objects_after": len(done), "lines": sum(r.lines for r in done),
                "bytes_before": sum(r.bytes_in for r in done), "bytes_after": sum(r.bytes_out for r in done),
                "deleted": sum(r.deleted for r in self.results), "failed": len(self.failed),
                "pending": self.pending}

    def metrics(self) -> dict[str, int]:
        """The run's metric counts (:mod:`mps_triggers.metrics`): ``Compacted`` (partitions), ``CompactFailed``,
        ``CompactPending`` (left at the deadline), ``ObjectsBefore``, ``ObjectsAfter``, ``InvocationFailed`` 0."""
        s = self.summary()
        return {"Compacted": s["partitions"], "CompactFailed": s["failed"], "CompactPending": s["pending"],
                "ObjectsBefore": s["objects_before"], "ObjectsAfter": s["objects_after"], "InvocationFailed": 0}

    def route_metrics(self) -> dict[str, dict[str, int]]:
        return {}

    def respond(self) -> dict[str, Any]:
        """The invocation's answer: the summary; raises :class:`CompactionError` when a partition failed."""
        if self.failed:
            raise CompactionError("; ".join(f"{r.folder}: {r.error}" for r in self.failed[:5]))
        return self.summary()


def _read(line: bytes) -> tuple[str, tuple[str, str, bytes]]:
    """A line's identity (its ``id``, or ``bytes:<sha256>`` for a line that has none) and its place in the
    compacted object (time, then ``id``, then bytes; a line without a time after every timed one), from one
    parse."""
    try:
        doc = json.loads(line)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return "bytes:" + hashlib.sha256(line).hexdigest(), ("~", "", line)
    lid = doc.get("id")
    when = doc.get("received_at") or doc.get("at") or doc.get("failed_at")
    identity = lid if isinstance(lid, str) and lid else "bytes:" + hashlib.sha256(line).hexdigest()
    return identity, (when if isinstance(when, str) else "~", lid if isinstance(lid, str) else "", line)


def merge(contents: Iterable[tuple[bytes, bool]]) -> tuple[bytes, set[str]]:
    """The compacted content (gzip, no timestamp) of objects ``(data, compressed)`` and the identities of every
    line in it. Raises ``OSError``/``EOFError`` for a compressed input that is not whole gzip."""
    kept: dict[str, tuple[str, str, bytes]] = {}
    for data, compressed in contents:
        for line in object_lines(data, compressed):
            identity, order = _read(line)
            kept.setdefault(identity, order)
    plain = b"".join(order[2] + b"\n" for order in sorted(kept.values()))
    return gzip.compress(plain, compresslevel=6, mtime=0), set(kept)


def identities(data: bytes, compressed: bool) -> set[str]:
    """The identities of the lines of one object (what :func:`merge` keeps), for checking a written object.
    Raises ``OSError``/``EOFError`` for a compressed object that is not whole gzip."""
    return {_read(line)[0] for line in object_lines(data, compressed)}


class CompactJob:
    """Compacts the archive under ``prefix`` of ``store`` (S3Store or CosStore: list, prefixes, get, put,
    delete). ``grace`` and ``lookback`` in seconds (see the module docstring)."""

    def __init__(self, store: Any, prefix: str, grace: float = 3600.0, lookback: float = 48 * 3600.0) -> None:
        self.store, self.prefix, self.grace, self.lookback = store, prefix, grace, lookback

    def closed(self, key: ArchiveKey, now: float) -> bool:
        """Whether the hour of ``key``'s partition ended at least ``grace`` seconds before ``now``."""
        return key.start.timestamp() + 3600 + self.grace <= now

    def partitions(self, since: datetime | None, until: datetime | None, now: float
                   ) -> Iterator[tuple[str, list[ArchiveKey]]]:
        """``(folder, objects)`` of every closed partition whose hour is in ``[since, until)`` and that needs
        compaction (a plain object, or more than one), one ``LIST`` per event type and day."""
        start = since.replace(minute=0, second=0, microsecond=0) if since else None
        end = until or datetime.fromtimestamp(now, timezone.utc)
        for folder in self.store.prefixes(self.prefix):
            if not folder[len(self.prefix):].startswith("event_type="):
                continue
            for day in self._days(folder, start, end):
                hours: dict[str, list[ArchiveKey]] = {}
                for listed in self.store.list(f"{folder}dt={day}/"):
                    key = parse_key(listed.key, self.prefix)
                    if key is None or not self.closed(key, now) or key.start >= end or \
                            (start is not None and key.start < start):
                        continue
                    hours.setdefault(key.relative.rsplit("/", 1)[0] + "/", []).append(key)
                for part, keys in sorted(hours.items()):
                    if len(keys) > 1 or not keys[0].compressed:
                        yield part, sorted(keys, key=lambda k: k.key)

    def _days(self, folder: str, start: datetime | None, end: datetime) -> list[str]:
        """The ``dt=`` values to list under ``folder``: the days of ``[start, end]``, or (no start) every one."""
        if start is None:
            return [p[len(folder):].rstrip("/")[3:] for p in self.store.prefixes(folder)
                    if p[len(folder):].startswith("dt=")]
        days, day = [], start.date()
        while day <= end.date():
            days.append(day.isoformat())
            day += timedelta(days=1)
        return days

    def compact_partition(self, folder: str, keys: list[ArchiveKey]) -> PartitionResult:
        """Compact one partition's ``keys`` (see the module docstring). Never raises for a storage or content
        problem: the result's ``error`` says it, and nothing was deleted."""
        result = PartitionResult(folder, inputs=len(keys))
        try:
            with cf.ThreadPoolExecutor(READERS) as pool:
                datas = list(pool.map(lambda k: self.store.get(k.key), keys))
            contents = []
            for key, data in zip(keys, datas):
                if data is None:
                    result.error = f"{key.key}: gone while compacting (another run?); left for the next run"
                    return result
                result.bytes_in += len(data)
                contents.append((data, key.compressed))
            merged, kept = merge(contents)
            name = f"{COMPACTED}{hashlib.sha256(merged).hexdigest()[:32]}"
            target = f"{self.prefix}{folder}{name}.jsonl.gz"
            result.lines, result.bytes_out, result.key = len(kept), len(merged), target
            if len(keys) == 1 and keys[0].key == target:
                result.skipped = "already compact"
                return result
            self.store.put(target, merged, content_type=GZIP_CONTENT_TYPE)
            back = self.store.get(target)
            if back is None:
                result.error = f"{target}: not readable right after it was written; inputs kept"
                return result
            written = identities(back, True)
            missing = kept - written
            if missing or len(written) != len(kept):
                result.error = f"{target}: read back {len(written)} lines, {len(missing)} missing; inputs kept"
                return result
            inputs = [k.key for k in keys if k.key != target]
            self.store.delete(inputs)
            result.deleted = len(inputs)
        except (MpsTriggersError, OSError, EOFError, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:500]
        return result

    def run_range(self, since: datetime | None, until: datetime | None, now: float | None = None,
                  remaining: Callable[[], float | None] = lambda: None,
                  on_result: Callable[[PartitionResult], None] = lambda r: None) -> CompactReport:
        """Compact every partition of ``[since, until)`` that needs it, stopping before a partition would start
        within :data:`PARTITION_RESERVE` seconds of the deadline (``remaining()``: seconds, or None)."""
        now = time.time() if now is None else now
        report = CompactReport()
        work = list(self.partitions(since, until, now))
        for n, (folder, keys) in enumerate(work):
            left = remaining()
            if left is not None and left < PARTITION_RESERVE:
                report.pending = len(work) - n
                log("warning", "compaction: deadline near, partitions left for the next run", pending=report.pending)
                break
            result = self.compact_partition(folder, keys)
            report.results.append(result)
            if result.error:
                log("error", "compaction failed", partition=folder, error=result.error)
            elif not result.skipped:
                log("info", "compacted", partition=folder, objects=result.inputs, lines=result.lines,
                    bytes_before=result.bytes_in, bytes_after=result.bytes_out, key=result.key)
            on_result(result)
        return report

    def run(self, event: Any, context: Any = None) -> CompactReport:
        """One scheduled invocation: the closed partitions of the last ``lookback`` seconds. ``event`` (the
        scheduler's or the timer's) is not read."""
        from .invocation import Invocation

        invocation = Invocation.of(context)
        now = time.time()
        since = datetime.fromtimestamp(now - self.lookback, timezone.utc)
        report = self.run_range(since, None, now, invocation.remaining)
        log("info", "compaction done", **report.summary())
        return report


def job_from_settings(settings: Any) -> CompactJob:
    """The job over the archive of :class:`~mps_triggers.config.ArchiveSettings` (``ARCHIVE_URI``, the
    archive function's store), with ``COMPACT_GRACE_MINUTES`` and ``COMPACT_LOOKBACK_HOURS``."""
    from .archive_job import archive_store

    return CompactJob(archive_store(settings), settings.location.prefix, settings.compact_grace_minutes * 60.0,
                      settings.compact_lookback_hours * 3600.0)


@functools.lru_cache(maxsize=1)
def default_job() -> CompactJob:
    """The container's job, configured from the environment on first call (raises ConfigError if invalid)."""
    from .config import load_archive_settings

    return job_from_settings(load_archive_settings())


def run(event: Any, context: Any = None) -> CompactReport:
    """Run the container's :func:`default_job` on one scheduled invocation."""
    from .invocation import run_job

    return run_job(default_job, event, context, "compact")
