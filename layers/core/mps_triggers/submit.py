"""The submit job: upload event → normalize → guard → route → ProcessMedia (idempotent SessionId).

``functions/submit/app.py`` is ``return submit.run(event, context).respond()``: SQS batches get
``{"batchItemFailures": [...]}`` with exactly the failed messages; direct S3/EventBridge/SNS/COS invocations get a
summary, or :class:`~mps_triggers.exceptions.BatchProcessingError` so the platform retries (objects already accepted
are rejected by MPS as duplicate sessions).

Rules (DESIGN.md): a record is successful only after MPS accepted each of its objects or reported it a duplicate,
or it was deliberately skipped; one bad record never fails the others (each record runs under the spine's record
guard); every ProcessMedia attempt ends before the invocation's deadline less the safety margin
(:mod:`mps_triggers.invocation`), and a record that could not be tried in time fails, to be delivered again.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import Settings, load_settings
from .exceptions import ConfigError, MpsTriggersError
from .invocation import Invocation, RecordRunner, Report, run_job
from .logs import log
from .mps import MpsClient, MpsDuplicateSessionError, MpsError
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
        self._lock = threading.Lock()

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


@functools.lru_cache(maxsize=1)
def default_job() -> SubmitJob:
    """The container's job, configured from the environment on first call (raises ConfigError if invalid)."""
    return SubmitJob(load_settings())


def run(event: Any, context: Any = None) -> SubmitReport:
    """Run the container's :func:`default_job` on one invocation (configuration and shape errors are logged)."""
    return run_job(default_job, event, context)
