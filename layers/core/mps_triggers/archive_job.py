"""The archive job: MPS callback → (verify) → redact → normalize → JSON line → S3/COS object [→ digest].

``functions/archive/app.py`` is ``return archive_job.run(event, context).respond()``:

- HTTP (function URL, API gateway): **200** only after the callback's object is written; **401** forged, expired
  or wrong token; **413** too large; **400** not JSON, not an object, nested deeper than 64 levels, bad base64;
  **405** not POST; **503** the write failed or the invocation's deadline came first (the sender retries);
  **500** an unexpected error (logged with a traceback). It never raises.
- SQS batches: ``batchItemFailures`` lists exactly the records whose line was not written (bad input, a failed or
  unfinished write); every other record is acknowledged.
- the SCF MPS trigger (DIRECT): a summary, or an exception so SCF retries.

Deadlines: no write starts with less than :data:`MIN_WRITE_SECONDS` of budget left, and each is bounded by the
budget (:func:`mps_triggers.retries.call_within`); records not written in time fail (SQS) or get 503 (HTTP), so the
platform redelivers only those. The digest push gets what is left after :data:`PUSH_FAILED_RESERVE` seconds are
kept for recording its failure.

Chat: one digest per invocation (:mod:`mps_triggers.webhook`). Whether it is delivered never changes the answer
above: a digest that is not delivered (paced, refused, timed out) is written under ``event_type=push_failed``
(:func:`mps_triggers.lines.push_failed_object`), naming every line it covered, to be sent again later.

``BatchTask`` callbacks (BatchProcessMedia) carry no TaskId: it is read from the object's claim, which the submit
job wrote under the same ``ARCHIVE_URI`` (:mod:`mps_triggers.claims`; a GET per task, cached per container). When the
claim cannot be read in :data:`LOOKUP_SECONDS` the line is still written, with ``task_id`` null.

Nothing is lost: a record is acknowledged only after its line is in an object. A line may repeat under
redelivery; its ``id`` lets a reader drop the copy.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .callbacks import HttpRequest, check_signature, parse_callback_event, read_http_json, unwrap
from .claims import ClaimBook
from .exceptions import DeadlineError, EventError, MpsTriggersError
from .invocation import Invocation, Report, Source, guard, log_failure, run_job
from .lines import ArchiveLine, ArchiveObject, batch_objects, build_line, push_failed_object, single_object
from .logs import log
from .mps import BATCH_PROCESS_MEDIA
from .redaction import scrub
from .retries import call_within
from .safejson import JsonError, loads
from .session import is_session_id
from .storage import ObjectStore, StorageError, open_store
from .webhook import Digest, DigestItem, WebhookClient, WebhookError

if TYPE_CHECKING:  # the pydantic models are built when the configuration is first loaded, not at import
    from .config import ArchiveSettings

MIN_WRITE_SECONDS = 2.0
"""Least budget (seconds, after the safety margin) with which an archive write is started."""
WRITE_TIMEOUT = 20.0
"""Longest one archive write may take (seconds), when the invocation has more time than that."""
PUSH_FAILED_RESERVE = 3.0
"""Seconds kept, while pushing a digest, for writing its push_failed record if the push does not go through."""
LOOKUP_SECONDS = 3.0
"""Longest a BatchTask callback's TaskId lookup (its claim) may take; it is skipped when the write needs the time."""


@dataclass
class ArchiveReport(Report):
    """The outcome of one archive invocation: the platform it came from, objects written, lines archived."""

    platform: str | None = None
    keys: list[str] = field(default_factory=list)
    lines: int = 0
    pushed: bool | None = None

    def summary(self) -> dict[str, Any]:
        return {"source": self.source.value, "lines": self.lines, "objects": self.keys, "failed": len(self.failures),
                "pushed": self.pushed}

    def metrics(self) -> dict[str, int]:
        """The invocation's metric counts (:mod:`mps_triggers.metrics`): the records', then ``Archived`` (lines),
        ``ArchiveObjects``, ``Rejected`` (an HTTP callback answered 4xx, or records whose body is not a
        notification), ``Pushed`` and ``PushFailed`` (the chat digest)."""
        counts = super().metrics()
        refused = self.source is Source.HTTP and 400 <= self.status < 500
        counts.update(Archived=self.lines, ArchiveObjects=len(self.keys),
                      Rejected=int(refused) + sum(isinstance(e, EventError) for e in self.failures.values()),
                      Pushed=int(self.pushed is True), PushFailed=int(self.pushed is False))
        return counts


class ArchiveJob:
    """Holds what lives for a container: settings, the object store, the webhook client.

    Create once per container (:func:`default_job`); :meth:`run` per invocation. ``store`` and ``webhook`` may be
    injected (tests, benchmarks). Logs a warning at creation when callbacks are not authenticated.
    """

    def __init__(self, settings: ArchiveSettings, store: ObjectStore | None = None,
                 webhook: WebhookClient | None = None) -> None:
        self.settings = settings
        self.location = settings.location
        self._store = store
        self._task_ids: dict[str, str] = {}
        self.webhook = webhook
        if webhook is None and settings.webhook_url:
            self.webhook = WebhookClient(settings.webhook_url, settings.webhook_format, settings.webhook_timeout,
                                         settings.webhook_max_attempts, settings.webhook_rate)
        if not settings.mps_notify_key and not settings.callback_token:
            log("warning", "callbacks are not authenticated",
                reason="neither MPS_NOTIFY_KEY nor CALLBACK_TOKEN is set: anyone who learns the callback URL can "
                       "write archive lines and chat messages; set both (README, Authentication)")

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = archive_store(self.settings)
        return self._store

    @property
    def archive_uri(self) -> str:
        """The archive's base, ``s3://bucket/`` or ``cos://bucket-appid/``, for naming objects in digests."""
        return f"{self.location.storage}://{self.location.bucket}/"

    def run(self, event: Any, context: Any = None) -> ArchiveReport:
        """Archive one invocation (``context``: the platform's, or an :class:`Invocation`). Raises
        :class:`~mps_triggers.exceptions.EventError` only for an event of no known shape."""
        invocation = Invocation.of(context)
        shape = parse_callback_event(event, invocation.request_id, self.settings.callback_max_bytes)
        if shape.http is not None:
            report = ArchiveReport(Source.HTTP, invocation, platform=shape.http.platform)
            outcome = guard(shape.http.request_id or "request", lambda: self._http(shape.http, report))
            if isinstance(outcome, MpsTriggersError):  # unexpected: answer, never raise at the sender
                report.answer(500, {"error": "internal error, retry later"})
            return report
        if shape.source is Source.SQS:
            return self._sqs(shape.records, invocation)
        return self._trigger(shape.notification, invocation)

    # --- one callback: HTTP or MPS trigger ------------------------------------------------------------------

    def _http(self, req: HttpRequest, report: ArchiveReport) -> ArchiveReport:
        s = self.settings
        rid = req.request_id or "request"
        report.record(rid)

        def reject(status: int, reason: str) -> ArchiveReport:
            log("warning", "callback rejected", status=status, reason=reason, source="http", source_id=rid,
                bytes=req.body_size)
            return report.answer(status, {"error": reason})

        body, problem = read_http_json(req, s.callback_token.get_secret_value() if s.callback_token else None,
                                       s.callback_max_bytes)
        if problem is not None:
            return reject(*problem)
        doc = unwrap(body)
        if not isinstance(doc, dict):
            return reject(400, "body is not a JSON object")
        verified = False
        if s.mps_notify_key:
            why = check_signature(doc, s.mps_notify_key.get_secret_value(), s.callback_clock_skew)
            if why:
                return reject(401, why)
            verified = True
        try:
            line = build_line(doc, "http", rid, time.time(), verified=verified,
                              task_id_of=self._task_id_of(report.invocation))
        except ValueError as exc:  # nested beyond 64 levels, or a value JSON cannot carry
            return reject(400, f"body {exc}" if isinstance(exc, JsonError) else "body holds a value JSON cannot carry")
        obj = single_object(self.location.prefix, line, time.time(), rid)
        try:
            self._write(obj, "http", report.invocation)
        except (StorageError, DeadlineError) as exc:
            report.fail(rid, exc)
            return report.answer(503, {"error": "archive write failed, retry later"})
        report.keys, report.lines = [obj.key], 1
        report.pushed = self._push([DigestItem(line.id, line.normalized, obj.key)], "http", rid, report.invocation)
        return report.answer(200, {"ok": True, "id": line.id, "key": obj.key})

    def _trigger(self, notification: Any, invocation: Invocation) -> ArchiveReport:
        report = ArchiveReport(Source.DIRECT, invocation)
        rid = invocation.request_id or "notification"
        report.record(rid)
        doc = unwrap(notification)
        verified = False
        if self.settings.mps_notify_key and isinstance(doc, dict) and "Sign" in doc:
            verified = check_signature(doc, self.settings.mps_notify_key.get_secret_value(),
                                       self.settings.callback_clock_skew) is None
        outcome = guard(rid, lambda: self._line(rid, doc, time.time(), "scf-mps-trigger", invocation, verified))
        if isinstance(outcome, MpsTriggersError):
            report.fail(rid, outcome)
            return report
        obj = single_object(self.location.prefix, outcome, time.time(), rid)
        try:
            self._write(obj, "scf-mps-trigger", invocation)
        except (StorageError, DeadlineError) as exc:
            report.fail(rid, exc)
            return report
        report.keys, report.lines = [obj.key], 1
        report.pushed = self._push([DigestItem(outcome.id, outcome.normalized, obj.key)], "scf-mps-trigger", rid,
                                   invocation)
        return report

    # --- SQS batch ------------------------------------------------------------------------------------------

    def _sqs(self, records: list[Any], invocation: Invocation) -> ArchiveReport:
        report = ArchiveReport(Source.SQS, invocation)
        now = time.time()
        lines: list[tuple[str, ArchiveLine]] = []
        for rec in records:
            report.record(rec.record_id, rec.message_id)
            if rec.error is not None:
                report.fail(rec.record_id, rec.error)
                log_failure(rec.record_id, rec.error)
                continue
            outcome = guard(rec.record_id, lambda: self._line(rec.record_id, rec.body, now, "sqs", invocation))
            if isinstance(outcome, MpsTriggersError):
                report.fail(rec.record_id, outcome)
            else:
                lines.append((rec.record_id, outcome))
        items: list[DigestItem] = []
        for obj in batch_objects(self.location.prefix, lines, [r for r, m in report.records.items() if m], now):
            try:
                self._write(obj, "sqs", invocation)
            except (StorageError, DeadlineError) as exc:
                for rid, _ in obj.entries:
                    report.fail(rid, exc)
                continue
            report.keys.append(obj.key)
            report.lines += len(obj.entries)
            items.extend(DigestItem(line.id, line.normalized, obj.key) for _, line in obj.entries)
        report.pushed = self._push(items, "sqs", invocation.request_id, invocation)
        return report

    def _line(self, record_id: str, body: str | dict[str, Any], now: float, source: str, invocation: Invocation,
              verified: bool = False) -> ArchiveLine:
        """The archive line of one notification: ``body`` is the SQS message text or the trigger's dict. Raises
        :class:`EventError` (field ``body``) for text that is not JSON, not an object, or nested too deeply."""
        try:
            doc = unwrap(loads(body)) if isinstance(body, str) else body
        except JsonError as exc:
            raise EventError(record_id, "body", str(exc)) from None
        if not isinstance(doc, dict):
            raise EventError(record_id, "body", f"expected a JSON object, got {type(doc).__name__}")
        try:
            return build_line(doc, source, record_id, now, verified=verified,
                              task_id_of=self._task_id_of(invocation))
        except JsonError as exc:
            raise EventError(record_id, "body", str(exc)) from None

    def _task_id_of(self, invocation: Invocation) -> Callable[[str], str | None]:
        """A BatchTask's TaskId from its claim (cached), within :data:`LOOKUP_SECONDS` and never at the expense of
        the write; None when it cannot be found. Never raises."""
        def lookup(session_id: str) -> str | None:
            if not is_session_id(session_id):  # only our own form names a claim key
                return None
            if session_id in self._task_ids:
                return self._task_ids[session_id]
            if invocation.within(LOOKUP_SECONDS + MIN_WRITE_SECONDS) < LOOKUP_SECONDS + MIN_WRITE_SECONDS:
                return None  # the write needs the time more
            book = ClaimBook(self.store, self.location.prefix, BATCH_PROCESS_MEDIA)  # type: ignore[arg-type]
            try:
                found = book.task_id(session_id, time.monotonic() + LOOKUP_SECONDS)
            except Exception as exc:  # a missing permission, a slow store: the line goes without the TaskId
                log("warning", "task id lookup failed", session_id=session_id, error=f"{type(exc).__name__}: "
                                                                                  f"{scrub(str(exc))[:200]}")
                return None
            if found is not None:
                if len(self._task_ids) >= 4096:
                    self._task_ids.clear()
                self._task_ids[session_id] = found
            return found
        return lookup

    # --- I/O ---------------------------------------------------------------------------------------------------

    def _write(self, obj: ArchiveObject, source: str, invocation: Invocation) -> None:
        write_object(lambda: self.store, obj, source, invocation)

    def _push(self, items: list[DigestItem], source: str, source_id: str | None, invocation: Invocation) -> bool | None:
        """Send the digest of ``items``; on failure write its push_failed record. Returns True (delivered), False
        (recorded or, if even that failed, logged) or None (no webhook, or nothing to say). Never raises."""
        if self.webhook is None or not items:
            return None
        digest = Digest(items, self.archive_uri)
        body: dict[str, Any] | None = None
        task_ids = [i.callback.task_id for i in items]
        try:
            body = digest.render(self.webhook.fmt)
            done = self.webhook.push(body, invocation.call_deadline(reserve=PUSH_FAILED_RESERVE))
        except WebhookError as exc:
            reason, attempts = str(exc), getattr(exc, "attempts", 1)
        except Exception as exc:  # a push must never fail an archived callback
            reason, attempts = f"internal error: {type(exc).__name__}: {exc}", 1
        else:
            log("info", "webhook pushed", webhook=self.webhook.webhook_id, callbacks=len(items),
                attempts=done.attempts)
            return True
        log("warning", "webhook push failed", webhook=self.webhook.webhook_id, callbacks=len(items), reason=reason)
        record = push_failed_object(self.location.prefix, covers=digest.covers(), body=body, fmt=self.webhook.fmt,
                                    webhook=self.webhook.webhook_id, reason=reason, attempts=attempts,
                                    source_type=source, source_id=source_id, failed_at=time.time())
        try:
            self._write(record, "push_failed", invocation)
        except (StorageError, DeadlineError) as exc:
            log("error", "push failure not recorded", webhook=self.webhook.webhook_id, callbacks=len(items),
                task_ids=task_ids[:100], error=str(exc))
        return False


def write_object(store: Callable[[], ObjectStore], obj: ArchiveObject, source: str, invocation: Invocation) -> None:
    """Write ``obj`` to ``store()`` (the container's archive store, made on first use) within the invocation's
    budget: at most :data:`WRITE_TIMEOUT` seconds, never started with less than :data:`MIN_WRITE_SECONDS` left.
    Raises StorageError (also when the store cannot be made: that write fails alone), or DeadlineError when too
    little time is left to start it or it did not finish in time (the platform redelivers its records). Shared by
    the archive and vod jobs; ``source`` goes into the log lines."""
    budget = invocation.within(WRITE_TIMEOUT)
    lines = max(1, len(obj.entries))
    if budget < MIN_WRITE_SECONDS:
        log("error", "archive write not started", key=obj.key, lines=lines, source=source,
            reason=f"{max(budget, 0.0):.1f} s left before the invocation's deadline")
        raise DeadlineError(f"archive write of {obj.key} not started: the invocation's deadline is near")
    try:
        call_within(lambda: store().put(obj.key, obj.data), budget, "archive write")
    except TimeoutError as exc:
        log("error", "archive write failed", key=obj.key, lines=lines, source=source, error=str(exc))
        raise DeadlineError(f"archive write of {obj.key}: {exc}") from None
    except StorageError as exc:
        log("error", "archive write failed", key=obj.key, lines=lines, source=source, error=str(exc))
        raise
    except Exception as exc:  # the store could not be made (SDK missing, bad region): this write fails alone
        log("error", "archive write failed", exc=exc, key=obj.key, lines=lines, source=source,
            error=f"{type(exc).__name__}: {exc}")
        raise StorageError(f"{obj.key}: {type(exc).__name__}: {scrub(str(exc))[:300]}") from None
    log("info", "archived", key=obj.key, lines=lines, bytes=len(obj.data), source=source)


def archive_store(settings: ArchiveSettings) -> ObjectStore:
    """The container's store of ``ARCHIVE_URI``: S3 with the function's AWS role, COS with the Tencent Cloud key
    (``MPS_SECRET_ID``/``MPS_SECRET_KEY``/``MPS_SESSION_TOKEN``, or SCF's role credentials) in ``ARCHIVE_REGION``.
    Shared by the archive and compaction jobs and the command."""
    s, location = settings, settings.location
    return open_store(location.storage, location.bucket, s.region,
                      s.mps_secret_id.get_secret_value() if s.mps_secret_id else None,
                      s.mps_secret_key.get_secret_value() if s.mps_secret_key else None,
                      s.mps_session_token.get_secret_value() if s.mps_session_token else None)


@functools.lru_cache(maxsize=1)
def default_job() -> ArchiveJob:
    """The container's job, configured from the environment on first call (raises ConfigError if invalid)."""
    from .config import load_archive_settings  # pydantic and the models: built here, once per container

    return ArchiveJob(load_archive_settings())


def run(event: Any, context: Any = None) -> ArchiveReport:
    """Run the container's :func:`default_job` on one invocation (configuration and shape errors are logged)."""
    return run_job(default_job, event, context, "archive")
