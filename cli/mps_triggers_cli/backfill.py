"""The engine of ``mps-triggers backfill`` and ``reprocess``: list → decide → submit at a rate, resumable.

Two phases, each checkpointed under ``--state-dir`` (default ``.mps-triggers/``), in files named by the command
and its source (so ``--resume`` finds them):

1. **plan**: the source is listed (:mod:`.sources`) and every object decided exactly as the submit function decides
   (:meth:`mps_triggers.routing.Router.decide`: folder markers, zero-byte objects, the recursion guard, routes).
   Objects whose SessionId the ledger already holds (``submitted`` or ``duplicate`` lines under ``ARCHIVE_URI``) are
   skipped unless ``--reprocess``. What is left is spooled to ``<name>.objects.jsonl``; the checkpoint keeps the
   listing's cursor, so an interrupted listing continues where it stopped.
2. **submit**: the spool is submitted through :meth:`mps_triggers.submit.SubmitJob.submit` (the function's own
   code: SessionId, BatchProcessMedia claims, retry rules) by ``--concurrency`` workers, every MPS request (retries
   included) taking a slot of one token bucket of ``--rate`` requests/s
   (:class:`~mps_triggers.retries.RateLimiter`, depth one: no one-second window above the rate). ProcessMedia
   requests also take a slot of the functions' :class:`~mps_triggers.retries.AdaptiveWindow`, here starting at
   ``--rate`` and never above it (:func:`mps_triggers.mps.rate_windows`): when the functions fill MPS's window the
   backfill yields (× 0.7) and comes back within about a second. Every second, in
   this order: the new ledger lines are written (one object), the report lines appended, and the checkpoint
   replaced (write + rename): the index below which every object is done, and the few done above it. After
   ``kill -9`` a resume submits again at most what finished in the last second, and MPS answers those as
   duplicates of their SessionIds: nothing is processed twice.

With ``--via-queue`` the objects are sent as S3 notifications to the upload queue instead (at ``--rate`` messages
per second); the deployed function submits them and writes the ledger.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote_plus

from mps_triggers.invocation import Invocation, guard
from mps_triggers.retries import RateLimiter
from mps_triggers.routing import Skip
from mps_triggers.submit import ObjectResult, SubmitJob
from mps_triggers.uploads import UploadedObject

from .common import Progress, UsageError, duration, emit_json, note, table
from .sources import Item, Source

RESULTS = ("submitted", "duplicate", "skipped", "failed")
CHECKPOINT_SECONDS = 1.0
"""Seconds between two checkpoints (and ledger and report flushes) while submitting."""
OBJECT_SECONDS = 120.0
"""Longest one object's submission may take, retries of throttled requests included (seconds)."""
IN_LEDGER = "already in the ledger (use --reprocess to submit it again)"
MAX_RATE = 100.0
"""MPS's ProcessMedia quota per account (requests/s): a backfill never asks for more."""


@dataclass
class Options:
    """What the operator asked for (the subcommand's arguments)."""

    kind: str = "backfill"
    rate: float = 50.0
    concurrency: int = 32
    dry_run: bool = False
    report: str | None = None
    resume: bool = False
    restart: bool = False
    state_dir: str = ".mps-triggers"
    reprocess: bool = False
    generation: int = 0
    via_queue: str | None = None
    fmt: str = "table"
    progress: bool = True


@dataclass
class Counts:
    """Running totals, kept in the checkpoint so a resumed run reports the whole run."""

    listed: int = 0
    to_submit: int = 0
    in_ledger: int = 0
    routes: dict[str, int] = field(default_factory=dict)
    skips: dict[str, int] = field(default_factory=dict)
    results: dict[str, int] = field(default_factory=dict)

    def add(self, result: str) -> None:
        self.results[result] = self.results.get(result, 0) + 1


def ledger_session_ids(job: SubmitJob, threads: int = 16) -> set[str]:
    """SessionIds the ledger under ``ARCHIVE_URI`` records as ``submitted`` or ``duplicate`` (empty without
    ``ARCHIVE_URI``). Objects are read in parallel; a line that is not JSON is ignored."""
    location = job.settings.archive_location
    if location is None:
        return set()
    store = job.archive_store()
    keys = [listed.key for listed in store.list(f"{location.prefix}event_type=submissions/")]
    found: set[str] = set()

    def read(key: str) -> list[str]:
        out = []
        for raw in (store.get(key) or b"").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and line.get("result") in ("submitted", "duplicate") and \
                    isinstance(line.get("session_id"), str):
                out.append(line["session_id"])
        return out

    with cf.ThreadPoolExecutor(threads) as pool:
        for ids in pool.map(read, keys):
            found.update(ids)
    return found


class Run:
    """One backfill or reprocess run of ``source`` with ``options`` on ``job`` (see the module docstring)."""

    def __init__(self, job: SubmitJob, source: Source, options: Options, sqs: Any = None) -> None:
        self.job, self.source, self.o, self.sqs = job, source, options, sqs
        digest = hashlib.sha256(json.dumps([options.kind, source.description, options.generation,
                                            options.reprocess, options.via_queue]).encode()).hexdigest()[:12]
        state = Path(options.state_dir)
        self.checkpoint_path = state / f"{options.kind}-{digest}.json"
        self.spool_path = state / f"{options.kind}-{digest}.objects.jsonl"
        self.counts = Counts()
        self.run_id = f"{options.kind}-{uuid.uuid4().hex[:12]}"
        self.started = time.monotonic()
        self.submit_seconds = 0.0
        self._report: Any = None
        self._ledger: list[bytes] = []
        self._queue_pace = RateLimiter(options.rate) if options.via_queue else None
        self.ledger_failed = False
        self.list_seconds = 0.0

    # --- the run ---------------------------------------------------------------------------------------------

    def execute(self) -> int:
        """Plan (and unless ``--dry-run``, submit); print the result. Returns the exit status (0 or 1). Raises
        :class:`UsageError` for a checkpoint that does not fit the arguments."""
        checkpoint = self._load_checkpoint()
        ledger = set() if self.o.reprocess else self._ledger_ids()
        if self.o.dry_run:
            self._plan(ledger, None)
            return self._print_plan()
        if checkpoint and checkpoint.get("phase") == "submit":
            note(f"resuming {self.o.kind}: listing was done ({checkpoint['counts']['listed']:,} objects); "
                 f"submitting from object {checkpoint['next']:,} of {checkpoint['counts']['to_submit']:,}")
        state = checkpoint or {"phase": "plan", "cursor": None, "spooled": 0}
        self._report = open(self.o.report, "a" if checkpoint else "w", encoding="utf-8") if self.o.report else None
        try:
            if state["phase"] == "plan":
                if checkpoint:
                    note(f"resuming {self.o.kind}: listing {self.source.description} after "
                         f"{self.counts.listed:,} objects")
                self._plan(ledger, state)
                state = {"phase": "submit", "next": 0, "done_after": []}
                self._save(state)
            interrupted = self._submit(state)
        finally:
            if self._report:
                self._report.close()
        failed = self.counts.results.get("failed", 0)
        self._print_result(interrupted)
        if interrupted:
            note(f"interrupted: run the same command with --resume to continue ({self.checkpoint_path})")
            return 1
        self.checkpoint_path.unlink(missing_ok=True)
        self.spool_path.unlink(missing_ok=True)
        return 1 if failed or self.ledger_failed else 0

    def _ledger_ids(self) -> set[str]:
        if not self.job.ledger_enabled:
            note("no ARCHIVE_URI: no ledger to skip what was already submitted (MPS still refuses a SessionId it "
                 "saw in the last 3 days)")
            return set()
        t0 = time.monotonic()
        ids = ledger_session_ids(self.job)
        note(f"ledger: {len(ids):,} SessionIds already submitted ({time.monotonic() - t0:.1f}s to read)")
        return ids

    # --- phase 1: plan ----------------------------------------------------------------------------------------

    def _plan(self, ledger: set[str], state: dict[str, Any] | None) -> None:
        """List and decide; spool what is to be submitted (not in a dry run). ``state`` is the checkpoint."""
        spool = None
        cursor = state.get("cursor") if state else None
        if state is not None:
            self.spool_path.parent.mkdir(parents=True, exist_ok=True)
            spool = open(self.spool_path, "r+" if cursor is not None else "w", encoding="utf-8")
            if cursor is not None:  # drop anything written after the last checkpoint
                self._truncate_spool(spool, state["spooled"])
        last = time.monotonic()
        t0 = time.monotonic()
        try:
            with Progress(f"{self.o.kind} (listing)", None, ("to submit", "skipped", "failed"),
                          enabled=self.o.progress) as progress:
                for item in self.source.items(cursor):
                    self._decide(item, ledger, spool, progress)
                    if spool is not None and time.monotonic() - last >= CHECKPOINT_SECONDS:
                        last = time.monotonic()
                        self._flush_plan(spool, item.cursor)
            self.list_seconds = time.monotonic() - t0
            if spool is not None:
                spool.flush()
                os.fsync(spool.fileno())
        finally:
            if spool is not None:
                spool.close()

    def _decide(self, item: Item, ledger: set[str], spool: Any, progress: Progress) -> None:
        self.counts.listed += 1
        if item.obj is None:
            self._result(item.storage, item.bucket, item.key, None, None, "failed", None, item.error)
            progress.update(failed=1)
            return
        obj = item.obj
        decision = self.job.router.decide(obj, self.o.generation)
        if isinstance(decision, Skip):
            self.counts.skips[decision.reason] = self.counts.skips.get(decision.reason, 0) + 1
            self._result(obj.storage, obj.bucket, obj.key, None, None, "skipped", None, decision.reason)
            progress.update(skipped=1)
            return
        if decision.session_id in ledger:
            self.counts.in_ledger += 1
            self._result(obj.storage, obj.bucket, obj.key, decision.route.name, decision.session_id, "skipped", None,
                         IN_LEDGER)
            progress.update(skipped=1)
            return
        route = decision.route.name
        self.counts.routes[route] = self.counts.routes.get(route, 0) + 1
        self.counts.to_submit += 1
        if spool is not None:
            spool.write(json.dumps(_encode(obj), ensure_ascii=False) + "\n")
        progress.update(**{"to submit": 1})

    def _flush_plan(self, spool: Any, cursor: Any) -> None:
        """Spool, then report, then the checkpoint naming the listing's cursor after the last item decided."""
        spool.flush()
        os.fsync(spool.fileno())
        self._flush_report()
        self._save({"phase": "plan", "cursor": cursor, "spooled": self.counts.to_submit})

    def _truncate_spool(self, spool: Any, lines: int) -> None:
        spool.seek(0)
        for _ in range(lines):
            spool.readline()
        spool.truncate(spool.tell())

    # --- phase 2: submit --------------------------------------------------------------------------------------

    def _submit(self, state: dict[str, Any]) -> bool:
        """Submit the spool from the checkpoint on. Returns True when interrupted (Ctrl-C)."""
        low = int(state.get("next", 0))
        done: set[int] = set(state.get("done_after", []))
        total = self.counts.to_submit
        inflight: dict[cf.Future, tuple[int, UploadedObject]] = {}
        last = time.monotonic()
        t0 = time.monotonic()
        interrupted = False
        # a thread the token bucket releases must get the interpreter at once, or its request leaves late and
        # bunches with the next ones at MPS (the default switch interval is 5 ms)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        pool = cf.ThreadPoolExecutor(self.o.concurrency, thread_name_prefix=self.o.kind)
        progress = Progress(self.o.kind, total, RESULTS, enabled=self.o.progress)
        progress.update(low + len(done))

        def finish(futures: Any) -> None:
            nonlocal low
            for fut in futures:
                index, obj = inflight.pop(fut)
                result = fut.result()
                self._record(index, obj, result)
                progress.update(**{result.outcome: 1})
                done.add(index)
            while low in done:
                done.discard(low)
                low += 1

        try:
            for index, obj in self._spooled(low):
                if index in done:
                    continue
                while len(inflight) >= self.o.concurrency:
                    finished, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
                    finish(finished)
                inflight[pool.submit(self._one, index, obj)] = (index, obj)
                if time.monotonic() - last >= CHECKPOINT_SECONDS:
                    last = time.monotonic()
                    self._checkpoint(low, done)
            while inflight:
                finished, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
                finish(finished)
        except KeyboardInterrupt:
            interrupted = True
            for fut in list(inflight):
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            finish([f for f in list(inflight) if f.done() and not f.cancelled()])
        finally:
            pool.shutdown(wait=True)
            sys.setswitchinterval(switch)
            progress.close()
            self.submit_seconds = time.monotonic() - t0
            self._checkpoint(low, done, final=True)
        return interrupted

    def _spooled(self, start: int) -> Iterator[tuple[int, UploadedObject]]:
        with open(self.spool_path, encoding="utf-8") as f:
            for index, line in enumerate(f):
                if index >= start:
                    yield index, _decode(json.loads(line))

    def _one(self, index: int, obj: UploadedObject) -> ObjectResult:
        """One object, under the record guard: whatever goes wrong fails this object alone."""
        record_id = f"{self.o.kind}:{index}"

        def work() -> ObjectResult:
            if self.o.via_queue:
                return self._enqueue(index, obj)
            invocation = Invocation(self.run_id, time.monotonic() + OBJECT_SECONDS)
            return self.job.submit(obj, invocation, record_id=record_id, generation=self.o.generation)

        outcome = guard(record_id, work)
        return outcome if isinstance(outcome, ObjectResult) else ObjectResult(record_id, obj, "failed", error=outcome)

    def _enqueue(self, index: int, obj: UploadedObject) -> ObjectResult:
        """Send ``obj`` to the upload queue as the S3 notification S3 itself would send."""
        decision = self.job.router.decide(obj, self.o.generation)
        result = ObjectResult(f"{self.o.kind}:{index}", obj, "failed", session_id=getattr(decision, "session_id", None),
                              route=getattr(getattr(decision, "route", None), "name", None))
        if obj.storage != "s3":
            result.reason = "--via-queue sends S3 notifications; a COS object is submitted without it"
            return result
        assert self._queue_pace is not None
        self._queue_pace.acquire()
        try:
            self.sqs.send_message(QueueUrl=self.o.via_queue, MessageBody=json.dumps(s3_notification(obj)))
        except Exception as exc:  # one object fails, the run goes on
            result.reason = f"{type(exc).__name__}: {exc}"[:500]
            return result
        result.outcome, result.reason = "submitted", "sent to the upload queue"
        return result

    def _record(self, index: int, obj: UploadedObject, r: ObjectResult) -> None:
        reason = r.reason
        if r.error is not None:
            code = getattr(r.error, "code", None) or type(r.error).__name__
            reason = f"{code}: {getattr(r.error, 'message', None) or r.error}"
        self._result(obj.storage, obj.bucket, obj.key, r.route, r.session_id, r.outcome, r.task_id, reason)
        if not self.o.via_queue and self.job.ledger_enabled:
            line = r.ledger_line(self.o.kind, "cli")
            if line is not None:
                self._ledger.append(line)

    def _checkpoint(self, low: int, done: set[int], final: bool = False) -> None:
        """Ledger, then report, then checkpoint: a checkpoint never counts an object whose lines were not kept."""
        if self._ledger:
            try:
                self.job.write_ledger(self._ledger, 30.0)
                self._ledger = []
            except Exception as exc:  # kept for the next flush; the objects are submitted, only their record waits
                if not final:
                    note(f"warning: ledger write failed ({exc}); retrying at the next checkpoint")
                    return
                note(f"error: the last {len(self._ledger):,} ledger lines could not be written ({exc}); a later "
                     f"backfill may submit those objects again (MPS refuses their SessionIds for 3 days)")
                self.ledger_failed = True
                self._ledger = []
        self._flush_report()
        self._save({"phase": "submit", "next": low, "done_after": sorted(done)})

    # --- files ------------------------------------------------------------------------------------------------

    def _result(self, storage: str, bucket: str, key: str, route: str | None, sid: str | None, result: str,
                task_id: str | None, reason: str | None) -> None:
        self.counts.add(result)
        if self._report is not None:
            self._report.write(json.dumps({"storage": storage, "bucket": bucket, "key": key, "route": route,
                                           "session_id": sid, "result": result, "task_id": task_id,
                                           "reason": reason}, ensure_ascii=False) + "\n")

    def _flush_report(self) -> None:
        if self._report is not None:
            self._report.flush()
            os.fsync(self._report.fileno())

    def _save(self, state: dict[str, Any]) -> None:
        doc = {"version": 1, "kind": self.o.kind, "source": self.source.description,
               "generation": self.o.generation, "counts": self.counts.__dict__, **state}
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.checkpoint_path)

    def _load_checkpoint(self) -> dict[str, Any] | None:
        exists = self.checkpoint_path.exists()
        if self.o.dry_run:
            return None
        if exists and not (self.o.resume or self.o.restart):
            raise UsageError("--resume", f"an earlier {self.o.kind} of {self.source.description} was interrupted "
                                         f"({self.checkpoint_path}): --resume to continue it, or --restart to begin "
                                         f"again")
        if self.o.resume and not exists:
            raise UsageError("--resume", f"no checkpoint of a {self.o.kind} of {self.source.description} in "
                                         f"{self.o.state_dir}")
        if self.o.resume and not self.source.resumable:
            raise UsageError("--resume", "a run reading stdin cannot be resumed; save the keys to a file")
        if not self.o.resume:
            self.checkpoint_path.unlink(missing_ok=True)
            return None
        try:
            doc = json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
            self.counts = Counts(**doc["counts"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError("--resume", f"{self.checkpoint_path} is not a checkpoint this version can read ({exc}); "
                                         f"--restart to begin again") from None
        if doc.get("phase") == "submit" and not self.spool_path.exists():
            raise UsageError("--resume", f"{self.spool_path} (the listed objects) is missing; --restart to begin "
                                         f"again")
        return doc

    # --- output -----------------------------------------------------------------------------------------------

    def _print_plan(self) -> int:
        c = self.counts
        seconds = c.to_submit / self.o.rate if self.o.rate else 0.0
        skipped = sum(c.skips.values())
        unreadable = c.results.get("failed", 0)
        doc = {"command": self.o.kind, "source": self.source.description, "dry_run": True, "listed": c.listed,
               "to_submit": c.to_submit, "routes": c.routes, "already_in_ledger": c.in_ledger,
               "skipped": dict(sorted(c.skips.items(), key=lambda kv: -kv[1])), "unreadable": unreadable,
               "generation": self.o.generation, "rate": self.o.rate, "estimated_seconds": round(seconds, 2),
               "listing_seconds": round(self.list_seconds, 3),
               "listed_per_second": round(c.listed / self.list_seconds, 1) if self.list_seconds else None}
        if self.o.fmt == "json":
            emit_json(doc)
        else:
            print(f"Plan: {self.o.kind} {self.source.description} (dry run: nothing is submitted)")
            rows: list[list[Any]] = [["objects listed", c.listed], ["to submit", c.to_submit]]
            rows += [[f"  route {name}", n] for name, n in sorted(c.routes.items())]
            rows += [["already in the ledger", c.in_ledger], ["skipped", skipped]]
            rows += [[f"  {reason}", n] for reason, n in doc["skipped"].items()]
            if unreadable:
                rows.append(["unreadable (see --report)", unreadable])
            rows.append([f"estimated time at {self.o.rate:g}/s", duration(seconds)])
            table(["", "objects"], rows)
        return 1 if unreadable else 0

    def _print_result(self, interrupted: bool) -> None:
        c = self.counts
        accepted = c.results.get("submitted", 0) + c.results.get("duplicate", 0)
        rate = accepted / self.submit_seconds if self.submit_seconds else 0.0
        doc = {"command": self.o.kind, "source": self.source.description, "interrupted": interrupted,
               "listed": c.listed, "results": {r: c.results.get(r, 0) for r in RESULTS}, "routes": c.routes,
               "already_in_ledger": c.in_ledger, "skipped": c.skips, "generation": self.o.generation,
               "seconds": round(time.monotonic() - self.started, 1), "accepted_per_second": round(rate, 1),
               "report": self.o.report, "via_queue": self.o.via_queue}
        if self.o.fmt == "json":
            emit_json(doc)
            return
        print(f"{self.o.kind} {self.source.description}: {'INTERRUPTED' if interrupted else 'done'} in "
              f"{duration(doc['seconds'])} ({rate:.1f} accepted/s)")
        table(["result", "objects"], [[r, c.results.get(r, 0)] for r in RESULTS])
        if self.o.report:
            print(f"report: {self.o.report}")


def _encode(obj: UploadedObject) -> dict[str, Any]:
    return {"s": obj.storage, "b": obj.bucket, "r": obj.region, "k": obj.key, "z": obj.size, "e": obj.etag,
            "v": obj.version_id}


def _decode(doc: dict[str, Any]) -> UploadedObject:
    return UploadedObject(storage=doc["s"], bucket=doc["b"], region=doc["r"], key=doc["k"], size=doc["z"],
                          etag=doc["e"], version_id=doc["v"], event_name="backfill")


def s3_notification(obj: UploadedObject) -> dict[str, Any]:
    """The S3 ``ObjectCreated`` notification (event version 2.1; S3 user guide "Event message structure") S3 would
    send for ``obj``: key URL-encoded as S3 encodes it, version id and ETag as listed, so the function derives the
    same SessionId as the backfill would."""
    obj_doc: dict[str, Any] = {"key": quote_plus(obj.key, safe="/"), "size": obj.size, "eTag": obj.etag,
                               "sequencer": "0"}
    if obj.version_id:
        obj_doc["versionId"] = obj.version_id
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": obj.region or "us-east-1",
        "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "mps-triggers-backfill"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "mps-triggers-backfill",
               "bucket": {"name": obj.bucket, "arn": f"arn:aws:s3:::{obj.bucket}"}, "object": obj_doc}}]}
