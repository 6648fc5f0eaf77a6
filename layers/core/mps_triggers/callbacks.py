"""MPS task callbacks: invocation shapes → requests/records, typed notification models, the Sign check.

Invocation shapes (samples in ``events/``):

- Lambda function URL and API Gateway HTTP API, payload 2.0 (``requestContext.http``, ``rawQueryString``,
  ``isBase64Encoded``); API Gateway REST/payload 1.0 (``httpMethod``, ``queryStringParameters``)
- SCF API gateway trigger (``requestContext.serviceId``, ``queryString``, ``headerParameters``) and SCF function
  URL (``httpMethod``, ``queryString``, ``x-scf-request-id``), answered with the integration-response dict
- SQS batches (``Records[].eventSource == "aws:sqs"``) whose bodies are notifications (NotifyType AWS-SQS)
- the SCF MPS trigger: the bare notification dict

Notification (MPS ``ParseNotification`` output, API 2019-06-12): ``EventType`` (``WorkflowTask``,
``ScheduleTask``, ``EditMediaTask``, ...), the matching ``…TaskEvent``, ``SessionId``, ``SessionContext``,
``Timestamp`` (UNIX seconds, the *expiry* of the message) and ``Sign = md5(str(Timestamp) + NotifyKey)``. An
optional ``{"Response": {...}}`` wrapper is unwrapped. Models are lenient: MPS adds fields, unknown EventTypes are
kept raw, never rejected.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .exceptions import EventError
from .routing import read_session_context

# Keys under which MPS puts the event of each EventType (ParseNotificationResponse).
EVENT_KEYS = {"WorkflowTask": "WorkflowTaskEvent", "ScheduleTask": "ScheduleTaskEvent",
              "EditMediaTask": "EditMediaTaskEvent", "BatchTask": "BatchTaskEvent",
              "ExtractBlindWatermark": "ExtractBlindWatermarkTask"}


# --- invocation shapes -------------------------------------------------------------------------------------------

@dataclass
class HttpRequest:
    """One HTTP callback as the function saw it. ``body`` is the raw bytes (base64 already decoded)."""

    method: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    request_id: str
    platform: str  # "lambda" (function URL / API Gateway) or "scf" (API gateway / function URL)


@dataclass
class QueuedCallback:
    """One SQS message carrying a notification: ``message_id`` (for batchItemFailures) and the body."""

    message_id: str
    body: str


@dataclass
class CallbackInvocation:
    """A parsed archive invocation: exactly one of ``http``, ``messages`` or ``notification`` is set."""

    source: str  # "http", "sqs" or "scf-mps-trigger"
    http: HttpRequest | None = None
    messages: list[QueuedCallback] = field(default_factory=list)
    bad_messages: list[EventError] = field(default_factory=list)  # SQS records without a usable messageId/body
    notification: dict[str, Any] | None = None
    request_id: str | None = None


def parse_callback_event(event: Any, request_id: str | None = None) -> CallbackInvocation:
    """Recognise the invocation shape. Raises :class:`EventError` when it is none of the supported ones."""
    if not isinstance(event, dict):
        raise EventError("event", "$", f"expected a JSON object, got {type(event).__name__}")
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict) and \
            records[0].get("eventSource") == "aws:sqs":
        inv = CallbackInvocation("sqs", request_id=request_id)
        for i, rec in enumerate(records):
            mid = rec.get("messageId") if isinstance(rec, dict) else None
            if not isinstance(mid, str) or not mid:
                inv.bad_messages.append(EventError(f"Records[{i}]", "messageId", "missing or not a string"))
            elif not isinstance(rec.get("body"), str):
                inv.bad_messages.append(EventError(mid, "body", "missing or not a string"))
            else:
                inv.messages.append(QueuedCallback(mid, rec["body"]))
        return inv
    if "httpMethod" in event or (isinstance(event.get("requestContext"), dict) and "http" in event["requestContext"]):
        return CallbackInvocation("http", http=_http_request(event, request_id), request_id=request_id)
    inner = event.get("Response") if isinstance(event.get("Response"), dict) else event
    if "EventType" in inner:
        return CallbackInvocation("scf-mps-trigger", notification=event, request_id=request_id)
    raise EventError("event", "$", "unknown invocation: not an HTTP request, SQS batch or MPS notification")


def _http_request(event: dict[str, Any], request_id: str | None) -> HttpRequest:
    ctx = event.get("requestContext") if isinstance(event.get("requestContext"), dict) else {}
    raw_headers = event.get("headers") if isinstance(event.get("headers"), dict) else {}
    headers = {str(k).lower(): str(v) for k, v in raw_headers.items()}
    if isinstance(ctx.get("http"), dict):  # Lambda function URL / HTTP API payload 2.0
        method = ctx["http"].get("method", "")
        raw_query = event.get("rawQueryString")
        query = dict(parse_qsl(raw_query if isinstance(raw_query, str) else "", keep_blank_values=True))
        platform = "lambda"
        rid = ctx.get("requestId")
    else:  # API Gateway payload 1.0, SCF API gateway, SCF function URL
        method = event.get("httpMethod") or ctx.get("httpMethod") or ""
        raw_query = event.get("queryStringParameters") or event.get("queryString") or {}
        query = {str(k): _first(v) for k, v in raw_query.items()} if isinstance(raw_query, dict) else {}
        platform = "scf" if ("serviceId" in ctx or "queryString" in event or "x-scf-request-id" in headers) else "lambda"
        rid = ctx.get("requestId") or headers.get("x-scf-request-id") or headers.get("x-api-requestid")
    body = event.get("body") or ""
    if isinstance(body, (dict, list)):  # some gateways hand over parsed JSON
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    elif event.get("isBase64Encoded") is True:
        try:
            raw = base64.b64decode(str(body), validate=True)
        except (binascii.Error, ValueError):
            raw = b"\x00invalid-base64"
    else:
        raw = str(body).encode("utf-8")
    return HttpRequest(str(method).upper(), headers, query, raw, str(rid or request_id or ""), platform)


def _first(value: Any) -> str:
    """SCF ``queryString`` values may be a string, a list (repeated key) or ``true`` (bare key)."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    if value is True:
        return ""
    return str(value)


def unwrap(doc: Any) -> Any:
    """Drop an optional ``{"Response": {...}}`` wrapper (ParseNotification's API response shape)."""
    if isinstance(doc, dict) and set(doc) <= {"Response"} and isinstance(doc.get("Response"), dict):
        return doc["Response"]
    if isinstance(doc, dict) and isinstance(doc.get("Response"), dict) and "EventType" in doc["Response"]:
        return doc["Response"]
    return doc


# --- authenticity ------------------------------------------------------------------------------------------------

def expected_sign(timestamp: Any, notify_key: str) -> str:
    """``md5(str(Timestamp) + NotifyKey)`` in lower-case hex (ParseNotification ``Sign``)."""
    return hashlib.md5(f"{timestamp}{notify_key}".encode("utf-8")).hexdigest()


def check_signature(doc: dict[str, Any], notify_key: str, skew: int = 300, now: float | None = None) -> str | None:
    """Why the notification fails authentication, or None if ``Sign`` is right and ``Timestamp`` not expired.

    ``Timestamp`` is the expiry time MPS set (send time + 10 minutes by default); ``skew`` seconds of clock
    difference are tolerated. Compared in constant time.
    """
    ts, sign = doc.get("Timestamp"), doc.get("Sign")
    if ts is None or sign is None:
        return "Timestamp or Sign missing (NotifyKey is configured)"
    if isinstance(ts, bool) or not isinstance(ts, (int, str)) or not str(ts).isdigit():
        return "Timestamp is not an integer"
    if not isinstance(sign, str) or not hmac.compare_digest(expected_sign(ts, notify_key).encode(),
                                                            sign.lower().encode("utf-8", "replace")):
        return "Sign does not match md5(Timestamp + NotifyKey)"
    if (time.time() if now is None else now) > int(ts) + skew:
        return f"expired: Timestamp {ts} is in the past (skew {skew}s)"
    return None


# --- notification models -----------------------------------------------------------------------------------------

class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)


def _to_code(v: Any) -> Any:
    """ErrCode as an int; a code that cannot be read counts as a failure (-1), never as success."""
    try:
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return -1


class SubtaskResult(_Lenient):
    """A subtask result (MediaProcessTaskTranscodeResult, ...SnapshotByTimeOffsetResult, AI task results...)."""

    Status: str | None = None
    ErrCodeExt: str | None = None
    ErrCode: int | None = None
    Message: str | None = None
    Output: Any = None

    _code = field_validator("ErrCode", mode="before")(_to_code)

    @property
    def failed(self) -> bool:
        """``Status == FAIL``, ``ErrCodeExt`` not empty or SUCCESS, or ``ErrCode != 0``."""
        return (self.Status or "").upper() == "FAIL" or (self.ErrCodeExt or "SUCCESS").upper() != "SUCCESS" or \
            (self.ErrCode or 0) != 0


class ResultItem(_Lenient):
    """One entry of MediaProcessResultSet (``Type`` + ``TranscodeTask``/...) or ActivityResultSet
    (``ActivityType`` + ``ActivityResItem``), or of the AI result sets (``Type`` + ``…Task``)."""

    Type: str | None = None
    ActivityType: str | None = None
    ActivityResItem: dict[str, Any] | None = None

    def subtasks(self) -> Iterator[tuple[str, SubtaskResult]]:
        """``(kind, result)`` for every non-null task in the item."""
        container = self.ActivityResItem if self.ActivityResItem is not None else (self.model_extra or {})
        kind = self.ActivityType or self.Type or "?"
        for name, value in container.items():
            if isinstance(value, dict) and name.endswith("Task"):
                yield f"{kind}:{name}", SubtaskResult.model_validate(value)


class TaskEvent(_Lenient):
    """The common head of WorkflowTask, ScheduleTask, EditMediaTask events."""

    TaskId: str | None = None
    Status: str | None = None
    ErrCode: int | None = None
    ErrCodeExt: str | None = None
    Message: str | None = None
    InputInfo: dict[str, Any] | None = None
    Input: dict[str, Any] | None = None
    Output: Any = None
    MediaProcessResultSet: list[ResultItem] | None = None
    ActivityResultSet: list[ResultItem] | None = None
    AiContentReviewResultSet: list[ResultItem] | None = None
    AiAnalysisResultSet: list[ResultItem] | None = None
    AiRecognitionResultSet: list[ResultItem] | None = None

    _code = field_validator("ErrCode", mode="before")(_to_code)

    def subtasks(self) -> Iterator[tuple[str, SubtaskResult]]:
        for items in (self.MediaProcessResultSet, self.ActivityResultSet, self.AiContentReviewResultSet,
                      self.AiAnalysisResultSet, self.AiRecognitionResultSet):
            for item in items or ():
                yield from item.subtasks()
        for name, value in (self.model_extra or {}).items():  # AiQualityControlTaskResult, SmartEraseTaskResult, ...
            if isinstance(value, dict) and "Status" in value:
                yield name, SubtaskResult.model_validate(value)


class Notification(_Lenient):
    """ParseNotification's output: the body MPS POSTs to NotifyUrl, sends to AWS-SQS or hands the MPS trigger."""

    EventType: str | None = None
    SessionId: str | None = None
    SessionContext: str | None = None
    Timestamp: int | None = None
    Sign: str | None = None


@dataclass
class NormalizedCallback:
    """What the archive line and the webhook summary say about one notification."""

    event_type: str
    task_id: str | None
    status: str | None
    failed: bool
    error: dict[str, Any] | None
    session_id: str | None
    source_object: dict[str, Any] | None
    outputs: list[str]
    parse_error: str | None = None


def normalize(doc: dict[str, Any]) -> NormalizedCallback:
    """Read the fields every consumer needs from a notification dict (already unwrapped). Never raises: a body
    that does not fit the models is still archived, with ``parse_error`` saying why."""
    event_type = str(doc.get("EventType") or "unknown")
    try:
        return _normalize(doc, event_type)
    except ValidationError as exc:
        context = doc.get("SessionContext")
        return NormalizedCallback(
            event_type=event_type, task_id=_task_id_fallback(doc), status=None, failed=False, error=None,
            session_id=doc["SessionId"] if isinstance(doc.get("SessionId"), str) else None,
            source_object=source_object(context if isinstance(context, str) else None, None), outputs=[],
            parse_error="; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3]))


def _normalize(doc: dict[str, Any], event_type: str) -> NormalizedCallback:
    note = Notification.model_validate(doc)
    raw_event = doc.get(EVENT_KEYS.get(event_type, f"{event_type}Event"))
    event = TaskEvent.model_validate(raw_event) if isinstance(raw_event, dict) else None
    failed_subtasks: list[dict[str, Any]] = []
    outputs: list[str] = []
    if event is not None:
        for kind, sub in event.subtasks():  # validates each subtask: may raise ValidationError
            if sub.failed:
                failed_subtasks.append({"subtask": kind, "code": sub.ErrCodeExt or sub.ErrCode,
                                        "message": sub.Message})
            else:
                outputs.extend(_paths(sub.Output))
        if event.Output is not None:  # EditMediaTask
            outputs.extend(_paths(event.Output))
    task_failed = event is not None and ((event.ErrCode or 0) != 0 or (event.Status or "").upper() == "FAIL")
    error = None
    if task_failed:
        error = {"code": event.ErrCodeExt or event.ErrCode, "message": event.Message}  # type: ignore[union-attr]
    elif failed_subtasks:
        error = {"subtasks": failed_subtasks}
    return NormalizedCallback(
        event_type=event_type,
        task_id=event.TaskId if event else _task_id_fallback(doc),
        status=event.Status if event else None,
        failed=task_failed or bool(failed_subtasks),
        error=error,
        session_id=note.SessionId,
        source_object=source_object(note.SessionContext, event.InputInfo if event else None),
        outputs=list(dict.fromkeys(outputs)),
    )


def _task_id_fallback(doc: dict[str, Any]) -> str | None:
    for value in doc.values():
        if isinstance(value, dict) and isinstance(value.get("TaskId"), str):
            return value["TaskId"]
    return doc.get("TaskId") if isinstance(doc.get("TaskId"), str) else None


def source_object(session_context: str | None, input_info: dict[str, Any] | None) -> dict[str, Any] | None:
    """The submitted object: from our SessionContext when it is ours, else from the task's InputInfo."""
    ctx = read_session_context(session_context)
    if ctx:
        out = {"storage": ctx["src"], "bucket": ctx["b"], "key": ctx["k"], "route": ctx.get("r")}
        if ctx.get("kt"):
            out["key_truncated"], out["key_sha256_16"] = True, ctx.get("kh")
        return out
    info = input_info or {}
    if isinstance(info.get("CosInputInfo"), dict):
        c = info["CosInputInfo"]
        return {"storage": "cos", "bucket": c.get("Bucket"), "key": str(c.get("Object") or "").lstrip("/"),
                "region": c.get("Region")}
    if isinstance(info.get("S3InputInfo"), dict):
        c = info["S3InputInfo"]
        return {"storage": "s3", "bucket": c.get("S3Bucket"), "key": c.get("S3Object"), "region": c.get("S3Region")}
    if isinstance(info.get("UrlInputInfo"), dict):
        return {"storage": "url", "url": info["UrlInputInfo"].get("Url")}
    return None


def _paths(output: Any) -> list[str]:
    """Every output path in a subtask Output: ``Path``, ``…Path`` strings, ``…PathSet`` lists, ``PicInfoSet``."""
    found: list[str] = []
    if isinstance(output, dict):
        for k, v in output.items():
            if isinstance(v, str) and k.endswith("Path") and v:
                found.append(v)
            elif isinstance(v, list) and k.endswith("PathSet"):
                found.extend(x for x in v if isinstance(x, str))
            elif isinstance(v, (dict, list)) and k not in ("OutputStorage", "Storage"):
                found.extend(_paths(v))
    elif isinstance(output, list):
        for v in output:
            found.extend(_paths(v))
    return found
