"""The invocation spine both jobs run on: context, source, SQS envelope, record guard, report and response.

A handler is one line, ``return job.run(event, context).respond()``; everything between the platform and a job's
rules lives here, once:

- :class:`Invocation` adapts the platform's context: Lambda's object (``aws_request_id``,
  ``get_remaining_time_in_millis()``) or SCF's dict (``request_id``, ``time_limit_in_ms``; SCF Python docs
  583/40324) into a request id and a deadline (``time.monotonic()``), with the :data:`SAFETY_MARGIN` kept free at
  the end of every invocation for answering the platform.
- :class:`Source` says how the platform wants its answer: ``SQS`` (``batchItemFailures``), ``HTTP`` (a status and
  a body), ``DIRECT`` (a summary, or an exception so the platform retries the invocation).
- :func:`sqs_records` turns an SQS event (Lambda "Using Lambda with Amazon SQS") into records with their
  ``messageId``; a record without one cannot be named in ``batchItemFailures``.
- :func:`guard` is the record guard: any exception raised while handling one record (RecursionError,
  UnicodeError, OverflowError, ValueError, anything) becomes that record's typed failure, logged with its reason,
  never the batch's. :class:`RecordRunner` runs records concurrently under it.
- :class:`Report` is the outcome of one invocation, with one :meth:`Report.respond` for every source.
- :func:`run_job` resets the log context, builds the container's job and runs it.

Example::

    def handler(event, context):
        return archive_job.run(event, context).respond()
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Sequence, TypeVar

from .exceptions import BatchProcessingError, ConfigError, DeadlineError, EventError, MpsTriggersError, RecordError
from .logs import invocation_context, log, set_context
from .redaction import scrub
from .safejson import dumps

T = TypeVar("T")
R = TypeVar("R")

_cold_start = True  # until the container's first invocation starts

SAFETY_MARGIN = 1.0
"""Seconds kept free at the end of every invocation: no network call may run into them, so the function always
answers the platform (with the records it could not finish reported as failed) before it is killed."""


class Source(str, Enum):
    """How the platform delivered the invocation, hence how it wants the answer."""

    SQS = "sqs"        # Lambda SQS event source mapping: {"batchItemFailures": [...]}
    HTTP = "http"      # function URL / API gateway: {"statusCode", "headers", "body", "isBase64Encoded"}
    DIRECT = "direct"  # S3, SNS, EventBridge, COS trigger, MPS trigger: a summary, or raise so the platform retries


# --- the context -------------------------------------------------------------------------------------------------

def request_id_of(context: Any) -> str | None:
    """The invocation's request id: Lambda's ``context.aws_request_id`` or SCF's ``context["request_id"]``."""
    value = context.get("request_id") if isinstance(context, dict) else getattr(context, "aws_request_id", None)
    return value if isinstance(value, str) and value else None


def _remaining_seconds(context: Any) -> float | None:
    """Lambda's remaining time, or SCF's ``time_limit_in_ms`` (the function's timeout), in seconds."""
    ms: Any = None
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if callable(getter):
        ms = getter()
    elif isinstance(context, dict):
        ms = context.get("time_limit_in_ms")
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms != ms or ms <= 0:
        return None
    return float(ms) / 1000.0


@dataclass(frozen=True)
class Invocation:
    """One invocation's identity and clock. ``deadline`` is a ``time.monotonic()`` value, None when unbounded."""

    request_id: str | None = None
    deadline: float | None = None

    @classmethod
    def of(cls, context: Any) -> "Invocation":
        """From a Lambda context object, an SCF context dict, None (no deadline), or an Invocation (itself)."""
        if isinstance(context, Invocation):
            return context
        remaining = _remaining_seconds(context)
        return cls(request_id_of(context), None if remaining is None else time.monotonic() + remaining)

    def remaining(self) -> float | None:
        """Seconds until the platform's deadline (may be negative), None when unbounded."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def budget(self, reserve: float = 0.0) -> float | None:
        """Seconds a network call may still take: the remaining time less :data:`SAFETY_MARGIN` and ``reserve``
        (time kept for work that must follow). None when unbounded."""
        left = self.remaining()
        return None if left is None else left - SAFETY_MARGIN - reserve

    def within(self, limit: float, reserve: float = 0.0) -> float:
        """``limit`` seconds, or less if the budget (after ``reserve``) is smaller; ≤ 0 means no time is left."""
        budget = self.budget(reserve)
        return limit if budget is None else min(limit, budget)

    def call_deadline(self, reserve: float = 0.0) -> float | None:
        """The ``time.monotonic()`` by which a call (and its retries) must have ended, or None."""
        return None if self.deadline is None else self.deadline - SAFETY_MARGIN - reserve


# --- SQS envelope -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SqsRecord:
    """One record of an SQS event, in arrival order.

    ``record_id`` is the ``messageId`` (or ``Records[i]`` when the record has none: it cannot be named in
    ``batchItemFailures``, so only retrying the whole batch brings it back, as Lambda itself would); ``body`` is the
    message body, or None with ``error`` saying what is wrong with the record.
    """

    record_id: str
    message_id: str | None
    body: str | None
    error: EventError | None = None


def is_sqs_event(event: Any) -> bool:
    """True for a Lambda SQS event: ``{"Records": [{"eventSource": "aws:sqs", ...}, ...]}``."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (isinstance(records, list) and bool(records) and isinstance(records[0], dict)
            and records[0].get("eventSource") == "aws:sqs")


def sqs_records(event: dict[str, Any]) -> list[SqsRecord]:
    """The records of an SQS event (the envelope of Lambda "Using Lambda with Amazon SQS"), in order.

    A record without a string ``messageId`` gets the error ``messageId: missing``; one whose ``body`` is not a
    string keeps its ``messageId`` (so it fails alone) with the error ``body: expected a string``.
    """
    out: list[SqsRecord] = []
    for i, rec in enumerate(event.get("Records") or []):
        mid = rec.get("messageId") if isinstance(rec, dict) else None
        if not isinstance(mid, str) or not mid:
            rid = f"Records[{i}]"
            out.append(SqsRecord(rid, None, None, EventError(rid, "messageId", "missing, empty or not a string")))
        elif not isinstance(rec.get("body"), str):
            error = EventError(mid, "body", f"expected a string, got {type(rec.get('body')).__name__}")
            out.append(SqsRecord(mid, mid, None, error))
        else:
            out.append(SqsRecord(mid, mid, rec["body"]))
    return out


# --- the record guard -------------------------------------------------------------------------------------------

def as_record_failure(record_id: str, exc: BaseException) -> MpsTriggersError:
    """The project's typed error for ``exc`` raised while handling ``record_id`` (typed errors pass through)."""
    if isinstance(exc, MpsTriggersError):
        return exc
    return RecordError(record_id, type(exc).__name__, scrub(str(exc))[:300])


def log_failure(record_id: str, error: MpsTriggersError, exc: BaseException | None = None) -> None:
    """One error line for a failed record: the record, the field (bad input) or the reason, and for an unexpected
    error (``exc`` not one of the project's typed errors) its ``exception`` traceback."""
    if isinstance(error, EventError):
        log("error", "bad record", record=error.record, field=error.field, error=error.problem)
    elif isinstance(error, RecordError):  # unexpected: the traceback goes with it
        log("error", "record failed", exc=exc, record=record_id, error_type=error.error_type, error=error.problem)
    else:
        log("error", "record failed", record=record_id, error_type=type(error).__name__, error=str(error))


def guard(record_id: str, func: Callable[[], T]) -> T | MpsTriggersError:
    """Run ``func`` for one record; any exception becomes that record's typed failure (logged), never raised.

    ``KeyboardInterrupt`` and ``SystemExit`` (not ``Exception``) still propagate.
    """
    try:
        return func()
    except Exception as exc:  # the record guard: whatever a record does, it fails alone
        failure = as_record_failure(record_id, exc)
        log_failure(record_id, failure, exc)
        return failure


class RecordRunner:
    """Runs one function per item on at most ``limit`` threads, each under :func:`guard`; create once per container.

    Results come back in item order: the function's value, or the item's typed failure.
    """

    def __init__(self, limit: int, name: str = "mps-records") -> None:
        self.limit = limit
        self.name = name
        self._pool: ThreadPoolExecutor | None = None

    def map(self, func: Callable[[T], R], items: Sequence[T],
            record_id: Callable[[T], str]) -> list[R | MpsTriggersError]:
        def one(item: T) -> R | MpsTriggersError:
            return guard(record_id(item), lambda: func(item))

        if len(items) <= 1 or self.limit == 1:
            return [one(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix=self.name)
        return list(self._pool.map(one, items))


# --- the report -------------------------------------------------------------------------------------------------

@dataclass
class Report:
    """The outcome of one invocation: its records (with SQS message ids), their failures, an HTTP answer.

    Jobs subclass it (adding what they did) and override :meth:`summary`.
    """

    source: Source
    invocation: Invocation = field(default_factory=Invocation)
    records: dict[str, str | None] = field(default_factory=dict)
    failures: dict[str, MpsTriggersError] = field(default_factory=dict)
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)

    def record(self, record_id: str, message_id: str | None = None) -> None:
        """Register a record (in arrival order); ``message_id`` for SQS messages."""
        self.records.setdefault(record_id, message_id)

    def fail(self, record_id: str, error: MpsTriggersError) -> None:
        """Mark ``record_id`` failed (the first error of a record is kept)."""
        self.records.setdefault(record_id, None)
        self.failures.setdefault(record_id, error)

    def answer(self, status: int, body: dict[str, Any]) -> "Report":
        """Set the HTTP answer (HTTP invocations)."""
        self.status, self.body = status, body
        return self

    def respond(self) -> dict[str, Any] | None:
        """The platform's answer.

        - SQS: ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`` for exactly the failed messages.
          Raises :class:`BatchProcessingError` if a failed record has no messageId (only retrying the whole batch
          can bring it back; Lambda itself fails a batch on an empty identifier).
        - HTTP: ``{"statusCode", "headers", "body", "isBase64Encoded": False}`` (also SCF's integration response).
        - DIRECT: :meth:`summary`, or :class:`BatchProcessingError` listing every failed record so the platform
          retries the invocation.
        """
        if self.source is Source.HTTP:
            return {"statusCode": self.status, "headers": {"Content-Type": "application/json"},
                    "body": dumps(self.body), "isBase64Encoded": False}
        if self.source is Source.SQS:
            if any(not self.records.get(rid) for rid in self.failures):
                raise BatchProcessingError(dict(self.failures), len(self.records))
            ids = list(dict.fromkeys(self.records[rid] for rid in self.failures))
            return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
        if self.failures:
            raise BatchProcessingError(dict(self.failures), max(1, len(self.records)))
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """What a direct invocation returns when nothing failed."""
        return {"source": self.source.value, "records": len(self.records), "failed": len(self.failures)}

    def metrics(self) -> dict[str, int]:
        """The invocation's metric counts (:mod:`mps_triggers.metrics`): ``Records``, ``RecordsFailed``,
        ``DeadlineReached`` (failed records whose error is the invocation's deadline), ``InvocationFailed`` (0: it
        answered); jobs add their own."""
        deadline = sum(1 for e in self.failures.values()
                       if isinstance(e, DeadlineError) or getattr(e, "code", None) == "DeadlineReached")
        return {"Records": len(self.records), "RecordsFailed": len(self.failures), "DeadlineReached": deadline,
                "InvocationFailed": 0}

    def route_metrics(self) -> dict[str, dict[str, int]]:
        """Counts per route (route name → metric counts), for jobs that route; none by default."""
        return {}


# --- running a job ------------------------------------------------------------------------------------------------

def run_job(job_factory: Callable[[], Any], event: Any, context: Any, function: str) -> Any:
    """Reset the log context, get the container's job (``job_factory``), run it on one invocation and write the
    invocation's metrics (:func:`mps_triggers.metrics.emit` with ``function``: ``submit``, ``archive``,
    ``compact``; the report's ``metrics()`` and ``route_metrics()``).

    A :class:`ConfigError` (bad environment) or an :class:`EventError` (an event of no known shape) is logged with
    what it names, then re-raised, so the platform reports the invocation as failed and nothing is acknowledged;
    its metrics line says ``InvocationFailed`` 1.
    """
    global _cold_start
    invocation = Invocation.of(context)
    # first: no line may carry the previous invocation's id
    set_context(**invocation_context(context, invocation.request_id, _cold_start))
    _cold_start = False
    from . import metrics

    try:
        job = job_factory()
    except ConfigError as exc:
        log("error", "invalid configuration", variable=exc.variable, error=exc.problem)
        metrics.emit(function, {"InvocationFailed": 1})
        raise
    try:
        report = job.run(event, invocation)
    except EventError as exc:
        log("error", "unknown event shape", record=exc.record, field=exc.field, error=exc.problem)
        metrics.emit(function, {"InvocationFailed": 1})
        raise
    except Exception as exc:
        log_failure("invocation", as_record_failure("invocation", exc), exc)
        metrics.emit(function, {"InvocationFailed": 1})
        raise
    metrics.emit(function, report.metrics(), report.route_metrics())
    return report
