"""The submit job: upload event → normalize → guard → route → ProcessMedia (idempotent SessionId) or
BatchProcessMedia (claimed once, :mod:`mps_triggers.claims`).

``functions/submit/app.py`` is ``return submit.run(event, context).respond()``: SQS batches get
``{"batchItemFailures": [...]}`` with exactly the failed messages; direct S3/EventBridge/SNS/COS invocations get a
summary, or :class:`~mps_triggers.exceptions.BatchProcessingError` so the platform retries (objects already accepted
are rejected by MPS as duplicate sessions, or found claimed).

BatchProcessMedia has no SessionId: the object's SessionId is claimed under ``ARCHIVE_URI`` first; a claim found
submitted makes the object a duplicate, one held by another invocation fails the record (:class:`ClaimBusyError`,
delivered again later); after the request the claim is marked submitted (with the TaskId), released (MPS surely
did not act), or left uncertain (a timeout after sending: held until its lease ends).

The ledger: when ``ARCHIVE_URI`` is set, every invocation writes one object of submission lines
(:func:`mps_triggers.lines.submission_line`, under ``event_type=submissions``): one line per object submitted,
found duplicate or failed, and per record that could not be read. It is written after the MPS calls, which keep
:data:`LEDGER_SECONDS` of the invocation for it; when it cannot be written, the records it covers fail and are
delivered again, which is safe: MPS answers the repeat as a duplicate (SessionId), and the next ledger says so.

Rules (DESIGN.md): a record is successful only after MPS accepted each of its objects or reported it a duplicate,
or it was deliberately skipped; one bad record never fails the others (each record runs under the spine's record
guard); every ProcessMedia attempt ends before the invocation's deadline less the safety margin
(:mod:`mps_triggers.invocation`), and a record that could not be tried in time fails, to be delivered again.
"""
from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .claims import CLOCK_SKEW, UNBOUNDED_LEASE, Busy, ClaimBook, Taken
from .exceptions import ClaimBusyError, ConfigError, DeadlineError, EventError, MpsTriggersError, SecretError
from .invocation import Invocation, RecordRunner, Report, run_job
from .logs import log
from .mps import BATCH_PROCESS_MEDIA, MpsClient, MpsDuplicateSessionError, MpsError, is_throttling
from .redaction import scrub
from .retries import RetryPolicy, call_within
from .routing import Router, S3Credentials, Skip, Submission
from .storage import ConditionalStore
from .uploads import UploadedObject, UploadEvent, UploadRecord, parse_upload_event

if TYPE_CHECKING:  # the pydantic models are built when the configuration is first loaded, not at import
    from .config import Settings

Outcome = Literal["submitted", "duplicate", "skipped", "failed"]

LEDGER_SECONDS = 3.0
"""Seconds of the invocation kept, while calling MPS, for writing the ledger object afterwards (at most a quarter
of the time the invocation has when it starts, so a short timeout still leaves the calls most of it)."""
HEAD_TIMEOUT = 10.0
"""Longest the HEAD of an S3 Batch Operations task's object may take (seconds)."""
LEDGER_TIMEOUT = 10.0
"""Longest the ledger write may take (seconds), when the invocation has more time than that."""


@dataclass
class ObjectResult:
    """What happened to one object: ``outcome`` with the route, SessionId, TaskId, skip reason or error."""

    record_id: str
    obj: UploadedObject
    outcome: Outcome
    route: str | None = None
    target: str | None = None  # "ScheduleId=12345" or "MediaProcessTask,AiAnalysisTask"
    session_id: str | None = None
    task_id: str | None = None
    reason: str | None = None
    error: MpsTriggersError | None = None
    attempts: int = 0
    retried: tuple[str, ...] = ()
    api: str = "ProcessMedia"
    generation: int = 0
    at: float = field(default_factory=time.time)  # UNIX seconds: decided, just before the request was sent

    def ledger_line(self, origin: str, source_type: str) -> bytes | None:
        """This result's ledger line (:func:`~mps_triggers.lines.submission_line`), timed :attr:`at` (when the
        object was decided and its request sent, so a reader can measure submission → first callback); None for
        a skip."""
        if self.outcome == "skipped":
            return None
        from .lines import submission_line  # with the first ledger, not at cold start (it loads the models)

        code = message = None
        if self.error is not None:
            code = getattr(self.error, "code", None) or type(self.error).__name__
            message = getattr(self.error, "message", None) or str(self.error)
        obj = {"storage": self.obj.storage, "bucket": self.obj.bucket, "key": self.obj.key, "route": self.route}
        return submission_line(result=self.outcome, obj=obj, session_id=self.session_id, task_id=self.task_id,
                               error_code=code, error_message=message, at=self.at, origin=origin,
                               source_type=source_type, source_id=self.record_id, api=self.api,
                               generation=self.generation)

    def as_dict(self) -> dict[str, Any]:
        d = {"record": self.record_id, "storage": self.obj.storage, "bucket": self.obj.bucket, "key": self.obj.key,
             "outcome": self.outcome, "route": self.route, "target": self.target, "session_id": self.session_id,
             "task_id": self.task_id, "reason": self.reason, "attempts": self.attempts or None,
             "error": f"{type(self.error).__name__}: {self.error}" if self.error else None}
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class SubmitReport(Report):
    """The outcome of one submit invocation: the parsed event, and every object's :class:`ObjectResult`."""

    event: UploadEvent | None = None
    results: list[ObjectResult] = field(default_factory=list)
    congested: int = 0
    allowance: float | None = None

    def respond(self) -> dict[str, Any] | None:
        """The platform's answer; for S3 Batch Operations, :meth:`batch_operations_response`."""
        if self.event is not None and self.event.kind == "s3-batch-operations":
            return self.batch_operations_response()
        return super().respond()

    def batch_operations_response(self) -> dict[str, Any]:
        """``{"invocationSchemaVersion", "treatMissingKeysAs": "PermanentFailure", "invocationId", "results":
        [{"taskId", "resultCode", "resultString"}]}`` (S3 user guide "Invoke AWS Lambda function"), one result per
        task: ``Succeeded`` (submitted, duplicate, skipped), ``TemporaryFailure`` (throttling, timeouts, MPS or
        storage unavailable, a claim held elsewhere, the ledger not written: Batch Operations retries them) or
        ``PermanentFailure`` (the reason in ``resultString``, which lands in the completion report)."""
        assert self.event is not None and self.event.batch is not None
        by_record = {r.record_id: r for r in self.results}
        results = []
        for rec in self.event.records:
            error = self.failures.get(rec.record_id)
            result = by_record.get(rec.record_id)
            if error is not None:
                code = "TemporaryFailure" if _temporary(error) else "PermanentFailure"
                text = f"{type(error).__name__}: {error}"
            elif result is not None:
                code = "Succeeded"
                text = f"{result.outcome}" + (f" TaskId={result.task_id}" if result.task_id else "") + \
                    (f" SessionId={result.session_id}" if result.session_id else "") + \
                    (f": {result.reason}" if result.reason else "")
            else:
                code, text = "Succeeded", "; ".join(rec.ignored) or "nothing to do"
            results.append({"taskId": rec.record_id, "resultCode": code, "resultString": text[:1000]})
        return {"invocationSchemaVersion": self.event.batch["invocationSchemaVersion"],
                "treatMissingKeysAs": "PermanentFailure", "invocationId": self.event.batch["invocationId"],
                "results": results}

    def metrics(self) -> dict[str, int | float]:
        """The invocation's metric counts (:mod:`mps_triggers.metrics`): the records', then ``Submitted``,
        ``Duplicate``, ``Skipped``, ``SubmitFailed`` (objects by outcome), ``Throttled`` (rate-limit answers),
        ``Congested`` (throttled resends: MPS's window was full) and, once the container has an MPS client,
        ``MpsAllowance`` (its ProcessMedia allowance at the end, requests/s:
        :class:`~mps_triggers.retries.AdaptiveWindow`)."""
        counts: dict[str, int | float] = dict(super().metrics())
        counts.update(_outcome_counts(self.results))
        counts["Throttled"] = sum(_throttled(r) for r in self.results)
        counts["Congested"] = self.congested
        if self.allowance is not None:
            counts["MpsAllowance"] = round(self.allowance, 1)
        return counts

    def route_metrics(self) -> dict[str, dict[str, int]]:
        """``Submitted``, ``Duplicate``, ``SubmitFailed``, ``Skipped`` and ``Throttled`` per route of the
        invocation's objects (objects without a route, skipped before routing, count in the function's line only)."""
        routes: dict[str, list[ObjectResult]] = {}
        for r in self.results:
            if r.route:
                routes.setdefault(r.route, []).append(r)
        return {route: {**_outcome_counts(rs), "Throttled": sum(_throttled(r) for r in rs)}
                for route, rs in routes.items()}

    def summary(self) -> dict[str, Any]:
        """Counts by outcome plus every object's result, as returned to direct invocations."""
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        records = self.event.records if self.event else []
        return {"source": self.event.kind if self.event else self.source.value, "records": len(records),
                "ignored": sum(len(r.ignored) for r in records), **counts,
                "objects": [r.as_dict() for r in self.results]}


class SubmitJob:
    """Holds what lives for a container: settings, router, MPS client, S3 credentials, the record runner.

    Create once per container (:func:`default_job`); :meth:`run` per invocation. ``client`` may be injected
    (tests, benchmarks); by default it is built from settings on first use.
    """

    def __init__(self, settings: Settings, client: MpsClient | None = None, origin: str = "submit") -> None:
        self.settings = settings
        self.origin = origin
        self.router = Router(settings)
        self.runner = RecordRunner(settings.mps_max_concurrency, name="mps-submit")
        self._client = client
        self._s3: S3Credentials | None = None
        self._claims: ClaimBook | None = None
        self._archive: ConditionalStore | None = None
        self._lock = threading.RLock()  # claims() takes it and then reads the client, which takes it too

    @property
    def client(self) -> MpsClient:
        with self._lock:
            if self._client is None:
                from .secrets import mps_credentials
                s = self.settings
                self._client = MpsClient(s.mps_endpoint, functools.partial(mps_credentials, s), region=s.mps_region,
                                         timeout=s.mps_timeout, retry=RetryPolicy(max_attempts=s.mps_max_attempts),
                                         max_connections=max(10, s.mps_max_concurrency))
            return self._client

    def s3_credentials(self) -> S3Credentials:
        with self._lock:
            if self._s3 is None:
                from .secrets import s3_credentials
                self._s3 = s3_credentials(self.settings)
            if self._s3 is None:
                raise ConfigError("MPS_S3_SECRET_ID/MPS_S3_SECRET_KEY",
                                  "S3 inputs need the AWS key MPS reads them with (or MPS_S3_CREDENTIALS_SECRET_ARN)")
            return self._s3

    @property
    def ledger_enabled(self) -> bool:
        """True when ``ARCHIVE_URI`` is set: every invocation then writes its submission lines there."""
        return self.settings.archive_location is not None

    def archive_store(self) -> ConditionalStore:
        """The store under ``ARCHIVE_URI`` (COS with the MPS key, S3 with the role), made on first use. Raises
        :class:`ConfigError` without ``ARCHIVE_URI`` (or without a region for a COS archive)."""
        with self._lock:
            if self._archive is None:
                from .storage import open_store
                s, location = self.settings, self.settings.archive_location
                if location is None:
                    raise ConfigError("ARCHIVE_URI", "BatchProcessMedia routes claim each object under ARCHIVE_URI")
                region = s.archive_region or location.region
                creds = None
                if location.storage == "cos":
                    if region is None:
                        raise ConfigError("ARCHIVE_REGION", "required for claims and the ledger in a COS archive")
                    creds = self.client.credentials()
                self._archive = open_store(location.storage, location.bucket, region,
                                           creds.secret_id if creds else None, creds.secret_key if creds else None,
                                           creds.token if creds else None)  # type: ignore[assignment]
            return self._archive  # type: ignore[return-value]

    def claims(self) -> ClaimBook:
        """The BatchProcessMedia claims under ``ARCHIVE_URI``, made on first use."""
        with self._lock:
            if self._claims is None:
                store = self.archive_store()
                self._claims = ClaimBook(store, self.settings.archive_location.prefix,  # type: ignore[union-attr]
                                         BATCH_PROCESS_MEDIA)
            return self._claims

    def write_ledger(self, lines: list[bytes], budget: float, when: float | None = None) -> str:
        """Write ``lines`` (ledger lines) as one object under ``ARCHIVE_URI`` within ``budget`` seconds; returns its
        key. Raises :class:`~mps_triggers.storage.StorageError`, or :class:`DeadlineError` when it did not finish
        in time (or ``budget`` ≤ 0: not started)."""
        from .lines import ledger_object
        from .storage import StorageError

        location = self.settings.archive_location
        if location is None:
            raise ConfigError("ARCHIVE_URI", "the ledger is written under ARCHIVE_URI")
        obj = ledger_object(location.prefix, lines, time.time() if when is None else when)
        try:
            call_within(lambda: self.archive_store().put(obj.key, obj.data), budget, "ledger write")
        except TimeoutError as exc:
            raise DeadlineError(f"ledger write of {obj.key}: {exc}") from None
        except (StorageError, ConfigError):
            raise
        except Exception as exc:  # the store could not be made (SDK missing, bad region)
            raise StorageError(f"{obj.key}: {type(exc).__name__}: {scrub(str(exc))[:300]}") from None
        return obj.key

    def run(self, event: Any, context: Any = None) -> SubmitReport:
        """Process one invocation (``context``: the platform's, or an :class:`Invocation`). Raises
        :class:`~mps_triggers.exceptions.EventError` only for an event of no known shape."""
        invocation = Invocation.of(context)
        parsed = parse_upload_event(event)
        report = SubmitReport(parsed.source, invocation, event=parsed)
        generation, bad_arguments = _batch_generation(parsed)
        work: list[tuple[UploadRecord, UploadedObject]] = []
        for rec in parsed.records:
            report.record(rec.record_id, rec.message_id)
            if rec.error is None and bad_arguments is not None and rec.objects:
                rec.error, rec.objects = bad_arguments, []
            if rec.error is not None:
                report.fail(rec.record_id, rec.error)
            for reason in rec.ignored:
                log("info", "ignored", record=rec.record_id, reason=reason)
            work.extend((rec, obj) for obj in rec.objects)
        window = self._client.window("ProcessMedia") if self._client is not None else None
        congested = window.congestions if window is not None else 0
        budget = invocation.budget()
        reserve = 0.0 if not self.ledger_enabled else \
            LEDGER_SECONDS if budget is None else min(LEDGER_SECONDS, max(budget, 0.0) / 4)
        outcomes = self.runner.map(lambda w: self.submit(w[1], invocation, w[0].record_id, generation, reserve),
                                   work, lambda w: w[0].record_id)
        for (rec, obj), outcome in zip(work, outcomes):
            result = outcome if isinstance(outcome, ObjectResult) else ObjectResult(rec.record_id, obj, "failed",
                                                                                    error=outcome)
            report.results.append(result)
            if result.outcome == "failed" and result.error is not None:
                report.fail(rec.record_id, result.error)
        if window is None and self._client is not None:  # the client came with this invocation's first object
            window, congested = self._client.window("ProcessMedia"), 0
        if window is not None:  # shared by the container's concurrent invocations (S3 Batch Operations, SCF)
            report.congested, report.allowance = max(0, window.congestions - congested), window.allowance
        if self.ledger_enabled:
            self._ledger(report, parsed, invocation)
        return report

    def _ledger(self, report: "SubmitReport", parsed: UploadEvent, invocation: Invocation) -> None:
        """Write the invocation's ledger object; when it cannot be written, fail the records it covers."""
        from .lines import submission_line

        now = time.time()
        origin = "s3-batch-operations" if parsed.kind == "s3-batch-operations" else self.origin
        entries: list[tuple[str, bytes]] = []
        for rec in parsed.records:
            if rec.error is not None:
                entries.append((rec.record_id, submission_line(
                    result="failed", obj=None, session_id=None, task_id=None, error_code=type(rec.error).__name__,
                    error_message=str(rec.error), at=now, origin=origin, source_type=parsed.kind,
                    source_id=rec.record_id)))
        for result in report.results:
            line = result.ledger_line(origin, parsed.kind)
            if line is not None:
                entries.append((result.record_id, line))
        skipped = sum(r.outcome == "skipped" for r in report.results)
        if not entries:
            if skipped:
                log("info", "ledger: nothing to record", skipped=skipped)
            return
        try:
            key = self.write_ledger([line for _, line in entries], invocation.within(LEDGER_TIMEOUT), now)
        except (MpsTriggersError, TimeoutError) as exc:
            error = exc if isinstance(exc, MpsTriggersError) else DeadlineError(str(exc))
            covered = sorted({rid for rid, _ in entries if rid not in report.failures})
            log("error", "ledger write failed", error=f"{type(error).__name__}: {error}", lines=len(entries),
                records_failed=len(covered),
                reason="the records it covers are delivered again; MPS answers their SessionIds as duplicates")
            for rid in covered:
                report.fail(rid, error)
            return
        log("info", "ledger written", key=key, lines=len(entries), skipped=skipped)

    def submit(self, obj: UploadedObject, invocation: Invocation, record_id: str = "", generation: int = 0,
               reserve: float = 0.0) -> ObjectResult:
        """Decide and submit one object (ProcessMedia, or BatchProcessMedia through its claim); never raises for
        what MPS or the object did (the :class:`ObjectResult` says ``failed`` with the error). ``generation`` ≥ 1
        derives a reprocess SessionId; ``reserve`` seconds of the invocation are kept for work after the call
        (the ledger). Used by the handler and by ``mps-triggers backfill``/``reprocess``."""
        where = {"record": record_id, "storage": obj.storage, "bucket": obj.bucket, "key": obj.key}
        if obj.needs_head:
            try:
                obj = self._head(obj, invocation)
            except MpsTriggersError as exc:
                log("error", "submit failed", error=f"{type(exc).__name__}: {exc}", **where)
                return ObjectResult(record_id, obj, "failed", error=exc, generation=generation)
        decision = self.router.decide(obj, generation)
        if isinstance(decision, Skip):
            log("info", "skipped", reason=decision.reason, **where)
            return ObjectResult(record_id, obj, "skipped", reason=decision.reason)
        assert isinstance(decision, Submission)
        route = decision.route
        result = ObjectResult(record_id, obj, "failed", route=route.name, session_id=decision.session_id,
                              target=f"ScheduleId={route.schedule_id}" if route.schedule_id is not None
                              else ",".join(sorted(route.tasks or {})),
                              api=BATCH_PROCESS_MEDIA if route.batch else "ProcessMedia", generation=generation)
        if route.batch:
            return self._batch(decision, result, invocation, where, reserve)
        try:
            request = decision.request(self.s3_credentials() if obj.storage == "s3" else None)
            call = self.client.process_media(request, invocation.call_deadline(reserve))
        except MpsDuplicateSessionError as exc:
            result.outcome, result.reason = "duplicate", "already submitted (MPS InvalidParameterValue.SessionId)"
            log("info", "duplicate", session_id=decision.session_id, route=route.name, mps_request_id=exc.request_id,
                **where)
            return result
        except MpsError as exc:
            result.error = exc
            log("error", "submit failed", session_id=decision.session_id, route=route.name, code=exc.code,
                error=exc.message, mps_request_id=exc.request_id, family=type(exc).__name__, **where)
            return result
        except MpsTriggersError as exc:  # SecretError, ConfigError: this object fails, its batch goes on
            result.error = exc
            log("error", "submit failed", session_id=decision.session_id, route=route.name,
                error=f"{type(exc).__name__}: {exc}", **where)
            return result
        result.outcome, result.task_id = "submitted", call.response.get("TaskId")
        result.attempts, result.retried = call.attempts, call.retried
        log("info", "submitted", session_id=decision.session_id, task_id=result.task_id, route=route.name,
            target=result.target, attempts=call.attempts, retried=list(call.retried) or None,
            mps_request_id=call.response.get("RequestId"), **where)
        return result


    def _head(self, obj: UploadedObject, invocation: Invocation) -> UploadedObject:
        """``obj`` with the size, ETag and version id HEAD gives (S3 Batch Operations tasks carry none), in the
        function's region. Raises :class:`EventError` (``s3Key``) when the object does not exist, StorageError or
        DeadlineError when HEAD fails."""
        import dataclasses
        import os

        from .storage import open_store

        store = open_store("s3", obj.bucket, None)
        try:
            listed = call_within(lambda: store.head(obj.key), invocation.within(HEAD_TIMEOUT), "HEAD")  # type: ignore[attr-defined]
        except TimeoutError as exc:
            raise DeadlineError(f"HEAD s3://{obj.bucket}/{obj.key}: {exc}") from None
        if listed is None:
            raise EventError(obj.uri, "s3Key", "no such object (deleted since the manifest was made?)")
        if obj.version_id and listed.version_id and listed.version_id != obj.version_id:
            raise EventError(obj.uri, "s3VersionId", f"version {obj.version_id} is not the latest; only the latest "
                                                     f"version of an object is submitted")
        region = obj.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
        return dataclasses.replace(obj, size=listed.size, etag=listed.etag,
                                   version_id=listed.version_id or obj.version_id, region=region, needs_head=False)

    def _batch(self, decision: Submission, result: ObjectResult, invocation: Invocation, where: dict[str, Any],
               reserve: float = 0.0) -> ObjectResult:
        """BatchProcessMedia for one object, exactly once through its claim (:mod:`mps_triggers.claims`)."""
        sid, route, deadline = decision.session_id, decision.route, invocation.call_deadline(reserve)
        ids = {"session_id": sid, "route": route.name, **where}
        try:
            request = decision.request(self.s3_credentials() if decision.obj.storage == "s3" else None)
            remaining = invocation.remaining()
            lease = time.time() + (UNBOUNDED_LEASE if remaining is None else max(remaining, 0.0)) + CLOCK_SKEW
            outcome = self.claims().claim(sid, lease, {
                "holder": invocation.request_id, "route": route.name,
                "object": {"storage": decision.obj.storage, "bucket": decision.obj.bucket, "key": decision.obj.key}},
                deadline)
        except (MpsTriggersError, TimeoutError) as exc:  # a rule, the S3 key, or the claim store: this object fails
            result.error = exc if isinstance(exc, MpsTriggersError) else DeadlineError(f"claim: {exc}")
            log("error", "submit failed", error=f"{type(result.error).__name__}: {result.error}", **ids)
            return result
        if isinstance(outcome, Taken):
            result.outcome, result.task_id = "duplicate", outcome.task_id
            result.reason = f"already submitted (claim {outcome.key})"
            log("info", "duplicate", task_id=outcome.task_id, claim=outcome.key, **ids)
            return result
        if isinstance(outcome, Busy):
            result.error = ClaimBusyError(sid, outcome.lease_until, outcome.holder)
            log("warning", "claim busy", claim=outcome.key, holder=outcome.holder, lease_until=outcome.lease_until,
                **ids)
            return result
        claim = outcome
        try:
            call = self.client.batch_process_media(request, deadline)
        except MpsError as exc:
            result.error = exc
            log("error", "submit failed", code=exc.code, error=exc.message, mps_request_id=exc.request_id,
                family=type(exc).__name__, claim=claim.key, **ids)
            self._settle(claim, exc, deadline, ids)
            return result
        except Exception as exc:  # SecretError, an unexpected bug: nothing was sent, so the claim is free again
            self._settle(claim, exc, deadline, ids)
            raise
        result.outcome, result.task_id = "submitted", call.response.get("TaskId")
        result.attempts, result.retried = call.attempts, call.retried
        try:
            self.claims().submitted(claim, result.task_id, call.response.get("RequestId"), deadline)
        except (MpsTriggersError, TimeoutError) as exc:  # the task exists: the record is done, only the mark is not
            log("error", "claim not marked submitted", claim=claim.key, task_id=result.task_id, error=str(exc),
                reason="a delivery of this object after the claim's lease would submit it again", **ids)
        log("info", "submitted", task_id=result.task_id, target=result.target, attempts=call.attempts,
            retried=list(call.retried) or None, mps_request_id=call.response.get("RequestId"), api=BATCH_PROCESS_MEDIA,
            claim=claim.key, **ids)
        return result

    def _settle(self, claim: Any, exc: BaseException, deadline: float | None, ids: dict[str, Any]) -> None:
        """After a failed request: release the claim when MPS surely did not act, else mark it uncertain (held to
        its lease). A failure to write either only delays the object: the claim's lease runs out."""
        maybe = bool(getattr(exc, "maybe_processed", False))
        reason = f"{getattr(exc, 'code', type(exc).__name__)}: {getattr(exc, 'message', exc)}"
        try:
            if maybe:
                self.claims().uncertain(claim, reason, deadline)
            else:
                self.claims().release(claim, reason, deadline)
        except (MpsTriggersError, TimeoutError) as err:
            log("warning", "claim not settled", claim=claim.key, state="uncertain" if maybe else "released",
                error=str(err), **ids)


_METRIC_OF_OUTCOME = {"submitted": "Submitted", "duplicate": "Duplicate", "skipped": "Skipped",
                      "failed": "SubmitFailed"}


def _outcome_counts(results: list[ObjectResult]) -> dict[str, int]:
    counts = dict.fromkeys(_METRIC_OF_OUTCOME.values(), 0)
    for r in results:
        counts[_METRIC_OF_OUTCOME[r.outcome]] += 1
    return counts


def _throttled(result: ObjectResult) -> int:
    """Rate-limit answers MPS gave for one object: those retried, and the last one if it failed on it."""
    final = isinstance(result.error, MpsError) and is_throttling(result.error.code)
    return sum(1 for code in result.retried if is_throttling(code)) + final


def _temporary(error: MpsTriggersError) -> bool:
    """Whether a failure may pass by itself (retry later) rather than needing someone to act."""
    from .mps import MpsTransientError
    from .storage import StorageError

    return isinstance(error, (MpsTransientError, DeadlineError, ClaimBusyError, StorageError, SecretError))


def _batch_generation(parsed: UploadEvent) -> tuple[int, EventError | None]:
    """The reprocess generation an S3 Batch Operations job passes in ``userArguments`` (schema 2.0:
    ``{"generation": "1"}``); 0 otherwise. An invalid value fails every task, naming the argument."""
    if parsed.batch is None:
        return 0, None
    value = parsed.batch["userArguments"].get("generation")
    if value is None:
        return 0, None
    text = str(value)
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        return 0, EventError("job", "userArguments.generation", f"expected a whole number ≥ 0, got {text[:20]!r}")
    return int(text), None


@functools.lru_cache(maxsize=1)
def default_job() -> SubmitJob:
    """The container's job, configured from the environment on first call (raises ConfigError if invalid)."""
    from .config import load_settings  # pydantic and the models: built here, once per container

    return SubmitJob(load_settings())


def run(event: Any, context: Any = None) -> SubmitReport:
    """Run the container's :func:`default_job` on one invocation (configuration and shape errors are logged)."""
    return run_job(default_job, event, context, "submit")
