"""Typed notification models → the normalized fields every consumer needs (archive line, digest, report).

Notification (MPS ``ParseNotification`` output, API 2019-06-12): ``EventType`` (``WorkflowTask``,
``ScheduleTask``, ``EditMediaTask``, ...), the matching ``…TaskEvent``, ``SessionId``, ``SessionContext``,
``Timestamp`` and ``Sign``. Models are lenient: MPS adds fields, unknown EventTypes are kept raw, never rejected;
:func:`normalize` never raises on a JSON object (an unreadable one gets ``parse_error``).

``BatchTask`` events (BatchProcessMedia) follow the SDK's ``BatchSubTaskResult``: ``InputInfos``, ``Metadatas`` and
``SmartSubtitlesTaskResult{Input, Outputs[{Status, ErrCodeExt, Message, Progress, AsrFullTextTask, TransTextTask}]}``;
they carry neither TaskId nor a task status, and an empty ``SessionId``. Normalized: ``status`` is ``PROCESSING``
while an output is WAITING or PROCESSING, else ``FINISH`` (the statuses of DescribeBatchTaskDetail), ``failed`` when
an output FAILed, ``session_id`` from our SessionContext (``"s"``), ``inputs`` from ``InputInfos``; ``task_id`` is
whatever the event carries, else None (the archive job looks it up in the claim, :mod:`mps_triggers.claims`).

Example::

    n = normalize(doc)     # NormalizedCallback(event_type="ScheduleTask", task_id="…", status="FINISH", ...)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .safejson import to_int
from .session import is_session_id, read_session_context

# Keys under which MPS puts the event of each EventType (ParseNotificationResponse).
EVENT_KEYS = {"WorkflowTask": "WorkflowTaskEvent", "ScheduleTask": "ScheduleTaskEvent",
              "EditMediaTask": "EditMediaTaskEvent", "BatchTask": "BatchTaskEvent",
              "ExtractBlindWatermark": "ExtractBlindWatermarkTask"}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)


def _to_code(v: Any) -> Any:
    """ErrCode as an int; a code that cannot be read (``"²"``, ``Infinity``, 5,000 digits) counts as a failure
    (-1), never as success."""
    if v is None or v == "":
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    code = to_int(v.strip() if isinstance(v, str) else v)
    return -1 if code is None else code


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


class BatchTaskEvent(_Lenient):
    """``BatchTaskEvent`` (SDK ``BatchSubTaskResult``); ``TaskId``/``Status`` are read if MPS ever adds them."""

    TaskId: str | None = None
    Status: str | None = None
    InputInfos: list[dict[str, Any]] | None = None
    SmartSubtitlesTaskResult: dict[str, Any] | None = None

    def subtasks(self) -> Iterator[tuple[str, SubtaskResult]]:
        """Each output of the smart subtitle result (SDK ``SmartSubtitleTaskBatchOutput``), as a subtask whose
        ``Output`` is the output itself (its ``AsrFullTextTask``/``TransTextTask`` hold the subtitle paths)."""
        outputs = (self.SmartSubtitlesTaskResult or {}).get("Outputs")
        for i, out in enumerate(outputs if isinstance(outputs, list) else []):
            if isinstance(out, dict):
                sub = SubtaskResult.model_validate({**out, "Output": {k: v for k, v in out.items()
                                                                     if k.endswith("Task")}})
                yield f"SmartSubtitles:Outputs[{i}]", sub

    @property
    def status(self) -> str | None:
        if self.Status:
            return self.Status
        statuses = [(sub.Status or "").upper() for _, sub in self.subtasks()]
        if not statuses:
            return None
        return "PROCESSING" if any(s in ("WAITING", "PROCESSING") for s in statuses) else "FINISH"


class Notification(_Lenient):
    """ParseNotification's output: the body MPS POSTs to NotifyUrl, sends to AWS-SQS or hands the MPS trigger."""

    EventType: str | None = None
    SessionId: str | None = None
    SessionContext: str | None = None
    Timestamp: Any = None  # checked by callbacks.check_signature, never needed as a model field
    Sign: Any = None


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
    inputs: list[dict[str, Any]] | None = None  # BatchTask: every input of the batch (InputInfos)


def normalize(doc: dict[str, Any]) -> NormalizedCallback:
    """Read the fields every consumer needs from a notification dict (already unwrapped). Never raises: a body
    that does not fit the models is still archived, with ``parse_error`` saying why."""
    raw_type = doc.get("EventType")
    event_type = raw_type if isinstance(raw_type, str) and raw_type else "unknown"
    try:
        return _normalize(doc, event_type)
    except ValueError as exc:  # pydantic's ValidationError, or a number pydantic cannot turn into text
        context = doc.get("SessionContext")
        return NormalizedCallback(
            event_type=event_type, task_id=_task_id_fallback(doc), status=None, failed=False, error=None,
            session_id=doc["SessionId"] if isinstance(doc.get("SessionId"), str) else None,
            source_object=source_object(context if isinstance(context, str) else None, None), outputs=[],
            parse_error=_describe(exc))


def _describe(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _normalize(doc: dict[str, Any], event_type: str) -> NormalizedCallback:
    note = Notification.model_validate(doc)
    raw_event = doc.get(EVENT_KEYS.get(event_type, f"{event_type}Event"))
    if event_type == "BatchTask":
        return _normalize_batch(note, raw_event)
    event = TaskEvent.model_validate(raw_event) if isinstance(raw_event, dict) else None
    failed_subtasks: list[dict[str, Any]] = []
    outputs: list[str] = []
    if event is not None:
        failed_subtasks, outputs = _results(event.subtasks())  # validates each subtask: may raise ValidationError
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


def _normalize_batch(note: Notification, raw_event: Any) -> NormalizedCallback:
    event = BatchTaskEvent.model_validate(raw_event) if isinstance(raw_event, dict) else BatchTaskEvent()
    failed_subtasks, outputs = _results(event.subtasks())
    inputs = [source_object(None, i) for i in event.InputInfos or [] if isinstance(i, dict)]
    ctx = read_session_context(note.SessionContext)
    sid = note.SessionId or (ctx.get("s") if ctx and is_session_id(ctx.get("s")) else None)
    return NormalizedCallback(
        event_type="BatchTask", task_id=event.TaskId, status=event.status, failed=bool(failed_subtasks),
        error={"subtasks": failed_subtasks} if failed_subtasks else None, session_id=sid or None,
        source_object=source_object(note.SessionContext, (event.InputInfos or [None])[0]),
        outputs=list(dict.fromkeys(outputs)), inputs=[i for i in inputs if i is not None])


def _results(subtasks: Iterator[tuple[str, SubtaskResult]]) -> tuple[list[dict[str, Any]], list[str]]:
    """``(failed subtasks as {subtask, code, message}, output paths of the others)``."""
    failed: list[dict[str, Any]] = []
    outputs: list[str] = []
    for kind, sub in subtasks:
        if sub.failed:
            failed.append({"subtask": kind, "code": sub.ErrCodeExt or sub.ErrCode, "message": sub.Message})
        else:
            outputs.extend(_paths(sub.Output))
    return failed, outputs


def _task_id_fallback(doc: dict[str, Any]) -> str | None:
    for value in doc.values():
        if isinstance(value, dict) and isinstance(value.get("TaskId"), str):
            return value["TaskId"]
    return doc.get("TaskId") if isinstance(doc.get("TaskId"), str) else None


def source_object(session_context: str | None, input_info: Any) -> dict[str, Any] | None:
    """The submitted object: from our SessionContext when it is ours, else from the task's InputInfo."""
    ctx = read_session_context(session_context)
    if ctx:
        out = {"storage": ctx["src"], "bucket": ctx["b"], "key": ctx["k"], "route": ctx.get("r")}
        if ctx.get("kt"):
            out["key_truncated"], out["key_sha256_16"] = True, ctx.get("kh")
        return out
    info = input_info if isinstance(input_info, dict) else {}
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
