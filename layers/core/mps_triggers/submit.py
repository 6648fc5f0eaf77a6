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
from typing import Any, Literal

from .config import Settings, load_settings
from .claims import CLOCK_SKEW, UNBOUNDED_LEASE, Busy, ClaimBook, Taken
from .exceptions import ClaimBusyError, ConfigError, DeadlineError, MpsTriggersError
from .invocation import Invocation, RecordRunner, Report, run_job
from .logs import log
from .mps import BATCH_PROCESS_MEDIA, MpsClient, MpsDuplicateSessionError, MpsError
from .retries import RetryPolicy
from .routing import Router, S3Credentials, Skip, Submission
from .uploads import UploadedObject, UploadEvent, UploadRecord, parse_upload_event

Outcome = Literal["submitted", "duplicate", "skipped", "failed"]


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

    def __init__(self, settings: Settings, client: MpsClient | None = None) -> None:
        self.settings = settings
        self.router = Router(settings)
        self.runner = RecordRunner(settings.mps_max_concurrency, name="mps-submit")
        self._client = client
        self._s3: S3Credentials | None = None
        self._claims: ClaimBook | None = None
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

    def claims(self) -> ClaimBook:
        """The BatchProcessMedia claims under ``ARCHIVE_URI`` (COS with the MPS key), made on first use."""
        with self._lock:
            if self._claims is None:
                from .storage import open_store
                s, location = self.settings, self.settings.archive_location
                if location is None:
                    raise ConfigError("ARCHIVE_URI", "BatchProcessMedia routes claim each object under ARCHIVE_URI")
                region = s.archive_region or location.region
                creds = None
                if location.storage == "cos":
                    if region is None:
                        raise ConfigError("ARCHIVE_REGION", "required for claims in a COS archive")
                    creds = self.client.credentials()
                store = open_store(location.storage, location.bucket, region,
                                   creds.secret_id if creds else None, creds.secret_key if creds else None,
                                   creds.token if creds else None)
                self._claims = ClaimBook(store, location.prefix, BATCH_PROCESS_MEDIA)  # type: ignore[arg-type]
            return self._claims

    def run(self, event: Any, context: Any = None) -> SubmitReport:
        """Process one invocation (``context``: the platform's, or an :class:`Invocation`). Raises
        :class:`~mps_triggers.exceptions.EventError` only for an event of no known shape."""
        invocation = Invocation.of(context)
        parsed = parse_upload_event(event)
        report = SubmitReport(parsed.source, invocation, event=parsed)
        work: list[tuple[UploadRecord, UploadedObject]] = []
        for rec in parsed.records:
            report.record(rec.record_id, rec.message_id)
            if rec.error is not None:
                report.fail(rec.record_id, rec.error)
            for reason in rec.ignored:
                log("info", "ignored", record=rec.record_id, reason=reason)
            work.extend((rec, obj) for obj in rec.objects)
        outcomes = self.runner.map(lambda w: self._one(w[0], w[1], invocation), work, lambda w: w[0].record_id)
        for (rec, obj), outcome in zip(work, outcomes):
            result = outcome if isinstance(outcome, ObjectResult) else ObjectResult(rec.record_id, obj, "failed",
                                                                                    error=outcome)
            report.results.append(result)
            if result.outcome == "failed" and result.error is not None:
                report.fail(rec.record_id, result.error)
        return report

    def _one(self, rec: UploadRecord, obj: UploadedObject, invocation: Invocation) -> ObjectResult:
        decision = self.router.decide(obj)
        where = {"record": rec.record_id, "storage": obj.storage, "bucket": obj.bucket, "key": obj.key}
        if isinstance(decision, Skip):
            log("info", "skipped", reason=decision.reason, **where)
            return ObjectResult(rec.record_id, obj, "skipped", reason=decision.reason)
        assert isinstance(decision, Submission)
        route = decision.route
        result = ObjectResult(rec.record_id, obj, "failed", route=route.name, session_id=decision.session_id,
                              target=f"ScheduleId={route.schedule_id}" if route.schedule_id is not None
                              else ",".join(sorted(route.tasks or {})))
        if route.batch:
            return self._batch(decision, result, invocation, where)
        try:
            request = decision.request(self.s3_credentials() if obj.storage == "s3" else None)
            call = self.client.process_media(request, invocation.call_deadline())
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


    def _batch(self, decision: Submission, result: ObjectResult, invocation: Invocation, where: dict[str, Any]
               ) -> ObjectResult:
        """BatchProcessMedia for one object, exactly once through its claim (:mod:`mps_triggers.claims`)."""
        sid, route, deadline = decision.session_id, decision.route, invocation.call_deadline()
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


@functools.lru_cache(maxsize=1)
def default_job() -> SubmitJob:
    """The container's job, configured from the environment on first call (raises ConfigError if invalid)."""
    return SubmitJob(load_settings())


def run(event: Any, context: Any = None) -> SubmitReport:
    """Run the container's :func:`default_job` on one invocation (configuration and shape errors are logged)."""
    return run_job(default_job, event, context)
