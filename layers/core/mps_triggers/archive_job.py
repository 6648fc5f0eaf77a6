"""The archive job: MPS callback → (verify) → normalize → redact → JSON line → S3/COS object [→ webhook].

``functions/archive/app.py`` calls :func:`run` and turns the :class:`ArchiveReport` into the platform's answer:
``http_response()`` for HTTP invocations (200 only after the object is written and the push, if any, went out;
401 forged/expired/bad token, 413 too large, 400 not JSON, 405 not POST, 5xx when writing or pushing failed, so
the sender retries), ``sqs_response()`` for SQS batches (exactly the records whose write or push failed), and
``raise_for_failures()`` for the SCF MPS trigger (the platform retries).

Nothing is lost: a record is acknowledged only after its line is in an object. A line may repeat under
redelivery; its ``id`` lets a reader drop the copy.
"""
from __future__ import annotations

import functools
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from .archive import ArchiveLine, batch_objects, build_line, single_object
from .batch import BoundedRunner, sqs_response
from .callbacks import CallbackInvocation, HttpRequest, check_signature, normalize, parse_callback_event, unwrap
from .config import ArchiveSettings, load_archive_settings
from .exceptions import BatchProcessingError, EventError
from .logs import log, request_id_of, run_logged, set_context
from .storage import ObjectStore, StorageError, open_store
from .webhook import WebhookClient, WebhookError


@dataclass
class ArchiveReport:
    """The outcome of one archive invocation."""

    source: str
    platform: str | None = None
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    message_ids: list[str] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    lines: int = 0

    def http_response(self) -> dict[str, Any]:
        """Lambda function URL / API Gateway response, equally SCF's integration response."""
        return {"statusCode": self.status, "headers": {"Content-Type": "application/json"},
                "body": json.dumps(self.body, ensure_ascii=False), "isBase64Encoded": False}

    def sqs_response(self) -> dict[str, list[dict[str, str]]]:
        """``batchItemFailures`` for exactly the failed messages; raises if a failed record has no messageId."""
        if any(rid not in self.message_ids for rid in self.failed):
            raise BatchProcessingError(self.failed, len(self.message_ids))
        return sqs_response(self.failed)

    def raise_for_failures(self) -> None:
        if self.failed:
            raise BatchProcessingError(self.failed, max(1, len(self.message_ids)))

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "lines": self.lines, "objects": self.keys, "failed": len(self.failed)}


class ArchiveJob:
    """Holds what lives for a container: settings, the object store, the webhook client, the push pool."""

    def __init__(self, settings: ArchiveSettings, store: ObjectStore | None = None,
                 webhook: WebhookClient | None = None) -> None:
        self.settings = settings
        self.location = settings.location
        self._store = store
        self.webhook = webhook
        if webhook is None and settings.webhook_url:
            self.webhook = WebhookClient(settings.webhook_url, settings.webhook_format, settings.webhook_timeout,
                                         settings.webhook_max_attempts)
        self.runner = BoundedRunner(settings.archive_max_concurrency)

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            s = self.settings
            self._store = open_store(self.location.storage, self.location.bucket, s.region,
                                     s.mps_secret_id.get_secret_value() if s.mps_secret_id else None,
                                     s.mps_secret_key.get_secret_value() if s.mps_secret_key else None,
                                     s.mps_session_token.get_secret_value() if s.mps_session_token else None)
        return self._store

    def run(self, event: Any, context: Any = None) -> ArchiveReport:
        """Archive one invocation. Raises :class:`EventError` only for an event of no known shape."""
        request_id = request_id_of(context)
        set_context(request_id=request_id)
        inv = parse_callback_event(event, request_id)
        if inv.source == "http":
            assert inv.http is not None
            return self._http(inv.http)
        if inv.source == "sqs":
            return self._sqs(inv)
        return self._trigger(inv)

    # --- one callback: HTTP or MPS trigger ------------------------------------------------------------------

    def _http(self, req: HttpRequest) -> ArchiveReport:
        report = ArchiveReport("http", platform=req.platform)
        s = self.settings

        def reject(status: int, reason: str) -> ArchiveReport:
            log("warning", "callback rejected", status=status, reason=reason, source="http", source_id=req.request_id,
                bytes=len(req.body))
            report.status, report.body = status, {"error": reason}
            return report

        if req.method != "POST":
            return reject(405, f"method {req.method or '?'} not allowed, use POST")
        if s.callback_token and not _same(req.query.get("token", ""), s.callback_token.get_secret_value()):
            return reject(401, "token query parameter missing or wrong")
        if len(req.body) > s.callback_max_bytes:
            return reject(413, f"body of {len(req.body)} bytes exceeds {s.callback_max_bytes}")
        try:
            doc = unwrap(json.loads(req.body.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            return reject(400, "body is not JSON")
        if not isinstance(doc, dict):
            return reject(400, "body is not a JSON object")
        if s.mps_notify_key:
            why = check_signature(doc, s.mps_notify_key.get_secret_value(), s.callback_clock_skew)
            if why:
                return reject(401, why)
        try:
            key, lid = self._one(doc, "http", req.request_id)
        except StorageError as exc:
            report.failed[req.request_id or "request"] = exc
            report.status, report.body = 503, {"error": "archive write failed, retry later"}
            return report
        except WebhookError as exc:
            report.failed[req.request_id or "request"] = exc
            report.status, report.body = 502, {"error": "archived, but the webhook push failed; retry"}
            return report
        report.keys, report.lines, report.body = [key], 1, {"ok": True, "id": lid, "key": key}
        return report

    def _trigger(self, inv: CallbackInvocation) -> ArchiveReport:
        report = ArchiveReport("scf-mps-trigger")
        doc = unwrap(inv.notification)
        try:
            key, lid = self._one(doc, "scf-mps-trigger", inv.request_id)
        except (StorageError, WebhookError) as exc:
            report.failed[inv.request_id or "notification"] = exc
            return report
        report.keys, report.lines = [key], 1
        return report

    def _one(self, doc: dict[str, Any], source: str, source_id: str | None) -> tuple[str, str]:
        """Write one notification's object and push it. Returns ``(key, line id)``; raises Storage/WebhookError."""
        now = time.time()
        line = build_line(doc, normalize(doc), source, source_id, now)
        obj = single_object(self.location.prefix, line, now, source_id or "")
        self._put(obj.key, obj.data, 1, source)
        self._push(line, obj.key)
        return obj.key, line.id

    # --- SQS batch ------------------------------------------------------------------------------------------

    def _sqs(self, inv: CallbackInvocation) -> ArchiveReport:
        report = ArchiveReport("sqs", message_ids=[m.message_id for m in inv.messages])
        for err in inv.bad_messages:
            report.failed[err.record] = err
            log("error", "bad record", record=err.record, field=err.field, error=err.problem)
        now = time.time()
        lines: list[tuple[str, ArchiveLine]] = []
        for msg in inv.messages:
            try:
                doc = unwrap(json.loads(msg.body))
            except ValueError as exc:
                report.failed[msg.message_id] = EventError(msg.message_id, "body", f"not JSON ({exc})")
                log("error", "bad record", record=msg.message_id, field="body", error="not JSON")
                continue
            if not isinstance(doc, dict):
                report.failed[msg.message_id] = EventError(msg.message_id, "body", "not a JSON object")
                log("error", "bad record", record=msg.message_id, field="body", error="not a JSON object")
                continue
            lines.append((msg.message_id, build_line(doc, normalize(doc), "sqs", msg.message_id, now)))
        written: list[tuple[str, ArchiveLine, str]] = []
        for obj in batch_objects(self.location.prefix, lines, report.message_ids, now):
            try:
                self._put(obj.key, obj.data, len(obj.entries), "sqs")
            except StorageError as exc:
                for rid, _ in obj.entries:
                    report.failed[rid] = exc
                continue
            report.keys.append(obj.key)
            report.lines += len(obj.entries)
            written.extend((rid, line, obj.key) for rid, line in obj.entries)
        if self.webhook is not None and written:
            outcomes = self.runner.map(lambda w: self._push(w[1], w[2]), written)
            for (rid, _, _), outcome in zip(written, outcomes):
                if isinstance(outcome, BaseException):
                    report.failed.setdefault(rid, outcome)
        return report

    # --- I/O ---------------------------------------------------------------------------------------------------

    def _put(self, key: str, data: bytes, lines: int, source: str) -> None:
        try:
            self.store.put(key, data)
        except StorageError as exc:
            log("error", "archive write failed", key=key, lines=lines, source=source, error=str(exc))
            raise
        log("info", "archived", key=key, lines=lines, bytes=len(data), source=source)

    def _push(self, line: ArchiveLine, key: str) -> None:
        if self.webhook is None:
            return
        n = line.normalized
        try:
            attempts = self.webhook.push(n, key)
        except WebhookError as exc:
            log("error", "webhook push failed", task_id=n.task_id, event_type=n.event_type, id=line.id, error=str(exc))
            raise
        log("info", "webhook pushed", task_id=n.task_id, event_type=n.event_type, id=line.id, attempts=attempts)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@functools.lru_cache(maxsize=1)
def default_job() -> ArchiveJob:
    """The container's job, configured from the environment on first call (raises ConfigError if invalid)."""
    return ArchiveJob(load_archive_settings())


def run(event: Any, context: Any = None) -> ArchiveReport:
    """Run the container's :func:`default_job` on one invocation (configuration and shape errors are logged)."""
    return run_logged(default_job, event, context)
