"""Notifications → the normalized fields every consumer needs (archive line, digest, report).

Notification (MPS ``ParseNotification`` output, API 2019-06-12): ``EventType`` (``WorkflowTask``,
``ScheduleTask``, ``EditMediaTask``, ...), the matching ``…TaskEvent``, ``SessionId``, ``SessionContext``,
``Timestamp`` and ``Sign``. Reading is lenient: MPS adds fields, unknown EventTypes are kept raw, never rejected;
:func:`normalize` never raises on a JSON object (an unreadable one gets ``parse_error``). Each part is read by
:func:`read`: exactly-typed values (every documented notification) by plain code, anything else by pydantic models
of the same fields, which coerce or name the field that cannot be read.

``BatchTask`` events (BatchProcessMedia) follow the SDK's ``BatchSubTaskResult``: ``InputInfos``, ``Metadatas`` and
``SmartSubtitlesTaskResult{Input, Outputs[{Status, ErrCodeExt, Message, Progress, AsrFullTextTask, TransTextTask}]}``;
they carry neither TaskId nor a task status, and an empty ``SessionId``. Normalized: ``status`` is ``PROCESSING``
while an output is WAITING or PROCESSING, else ``FINISH`` (the statuses of DescribeBatchTaskDetail), ``failed`` when
an output FAILed, ``session_id`` from our SessionContext (``"s"``), ``inputs`` from ``InputInfos``; ``task_id`` is
whatever the event carries, else None (the archive job looks it up in the claim, :mod:`mps_triggers.claims`).

VOD events (:mod:`mps_triggers.vod`: ``NewFileUpload``, ``ProcedureStateChanged``, ``ReviewAudioVideoComplete``,
...) are read the same way from their member (:data:`mps_triggers.vod.EVENT_KEYS`): a ``ProcedureTask`` has the head
of an MPS task event; its ``SessionId``/``SessionContext`` are inside the event, and a failed ``ErrCodeExt`` fails
it. ``object`` is the VOD file (``{"storage": "vod", "bucket": <SubAppId or null>, "key": <FileId>}``, from our
SessionContext when it is ours) and a NewFileUpload's ``task_id`` is the task flow its upload started, if any.

Example::

    n = normalize(doc)     # NormalizedCallback(event_type="ScheduleTask", task_id="…", status="FINISH", ...)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Iterator

from .safejson import to_int
from .session import is_session_id, read_session_context
from .vod import EVENT_KEYS as VOD_EVENT_KEYS

# Keys under which MPS puts the event of each EventType (ParseNotificationResponse).
EVENT_KEYS = {"WorkflowTask": "WorkflowTaskEvent", "ScheduleTask": "ScheduleTaskEvent",
              "EditMediaTask": "EditMediaTaskEvent", "BatchTask": "BatchTaskEvent",
              "ExtractBlindWatermark": "ExtractBlindWatermarkTask"}


def _to_code(v: Any) -> Any:
    """ErrCode as an int; a code that cannot be read (``"²"``, ``Infinity``, 5,000 digits) counts as a failure
    (-1), never as success."""
    if v is None or v == "":
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    code = to_int(v.strip() if isinstance(v, str) else v)
    return -1 if code is None else code


# The fields read from each part of a notification, and their kinds: "str" (str or None), "code" (ErrCode:
# :func:`_to_code`), "dict" (an object or None), "dicts" (a list of objects or None), "items" (a list of result
# items or None), "any". The pydantic models (:func:`_models`) declare the same fields with the same types.
SUBTASK = {"Status": "str", "ErrCodeExt": "str", "ErrCode": "code", "Message": "str", "Output": "any"}
"""A subtask result (MediaProcessTaskTranscodeResult, ...SnapshotByTimeOffsetResult, AI task results...)."""
RESULT_ITEM = {"Type": "str", "ActivityType": "str", "ActivityResItem": "dict"}
"""One entry of MediaProcessResultSet (``Type`` + ``TranscodeTask``/...) or ActivityResultSet (``ActivityType`` +
``ActivityResItem``), or of the AI result sets (``Type`` + ``…Task``)."""
RESULT_SETS = ("MediaProcessResultSet", "ActivityResultSet", "AiContentReviewResultSet", "AiAnalysisResultSet",
               "AiRecognitionResultSet")
TASK_EVENT = {"TaskId": "str", "Status": "str", "ErrCode": "code", "ErrCodeExt": "str", "Message": "str",
              "InputInfo": "dict", "Input": "dict", "Output": "any", **{name: "items" for name in RESULT_SETS}}
"""The common head of WorkflowTask, ScheduleTask, EditMediaTask events."""
BATCH_TASK_EVENT = {"TaskId": "str", "Status": "str", "InputInfos": "dicts", "SmartSubtitlesTaskResult": "dict"}
"""``BatchTaskEvent`` (SDK ``BatchSubTaskResult``); ``TaskId``/``Status`` are read if MPS ever adds them."""
NOTIFICATION = {"EventType": "str", "SessionId": "str", "SessionContext": "str", "Timestamp": "any", "Sign": "any"}
"""ParseNotification's output: the body MPS POSTs to NotifyUrl, sends to AWS-SQS or hands the MPS trigger
(``Timestamp``/``Sign`` are checked by :func:`mps_triggers.callbacks.check_signature`, never read here)."""


class Part:
    """A part of a notification as read: one attribute per field of its spec (None when absent) and
    ``model_extra``, the other members, like a lenient pydantic model's."""

    def __init__(self, fields: dict[str, Any], extra: dict[str, Any]) -> None:
        self.__dict__.update(fields)
        self.model_extra = extra


class _Inexact(Exception):
    """A value whose type is not exactly its field's: pydantic decides (coerces, or says what is wrong)."""


def _plain_dict(v: Any) -> bool:
    return type(v) is dict and all(type(k) is str for k in v)


def _read_exact(spec: dict[str, str], value: dict[str, Any]) -> Part:
    fields: dict[str, Any] = dict.fromkeys(spec)
    extra: dict[str, Any] = {}
    for k, v in value.items():
        kind = spec.get(k)
        if kind is None:
            extra[k] = v
        elif kind == "str":
            if type(v) is not str and v is not None:
                raise _Inexact
            fields[k] = v
        elif v is None or kind == "any":
            fields[k] = v
        elif kind == "code":
            fields[k] = _to_code(v)
        elif kind == "dict":
            if not _plain_dict(v):
                raise _Inexact
            fields[k] = v
        elif type(v) is not list or not all(_plain_dict(x) for x in v):
            raise _Inexact
        else:
            fields[k] = v if kind == "dicts" else [_read_exact(RESULT_ITEM, x) for x in v]
    return Part(fields, extra)


def read(spec: dict[str, str], value: dict[str, Any]) -> Any:
    """``value`` read as a part of kind ``spec`` (:data:`TASK_EVENT`, ...). Values of exactly the declared types
    are read here; any other goes through the lenient pydantic model of the same fields (``coerce_numbers_to_str``,
    ``extra="allow"``), built on first need, which coerces it or raises ``ValidationError`` (a ``ValueError``)
    naming the field. Both give the same attributes (and ``model_extra``)."""
    try:
        return _read_exact(spec, value)
    except _Inexact:
        return _models()[id(spec)].model_validate(value)


@functools.lru_cache(maxsize=1)
def _models() -> dict[int, Any]:
    """The pydantic models of the specs, keyed by ``id(spec)`` (built once, on the first inexact value: a
    notification of the documented shapes never needs them, nor does a cold start)."""
    from pydantic import BaseModel, ConfigDict, create_model, field_validator

    class Lenient(BaseModel):
        model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)

    types = {"str": str | None, "code": int | None, "dict": dict[str, Any] | None,
             "dicts": list[dict[str, Any]] | None, "any": Any}
    code = {"_code": field_validator("ErrCode", mode="before")(_to_code)}
    item = create_model("ResultItem", __base__=Lenient, **{k: (types[t], None) for k, t in RESULT_ITEM.items()})
    types["items"] = list[item] | None  # type: ignore[valid-type]
    models = {}
    for name, spec in (("SubtaskResult", SUBTASK), ("TaskEvent", TASK_EVENT), ("BatchTaskEvent", BATCH_TASK_EVENT),
                       ("Notification", NOTIFICATION)):
        models[id(spec)] = create_model(name, __base__=Lenient, __validators__=code if "ErrCode" in spec else None,
                                        **{k: (types[t], None) for k, t in spec.items()})
    models[id(RESULT_ITEM)] = item
    return models


def failed(sub: Any) -> bool:
    """A subtask failed: ``Status == FAIL``, ``ErrCodeExt`` not empty or SUCCESS, or ``ErrCode != 0``."""
    return (sub.Status or "").upper() == "FAIL" or (sub.ErrCodeExt or "SUCCESS").upper() != "SUCCESS" or \
        (sub.ErrCode or 0) != 0


def _item_subtasks(item: Any) -> Iterator[tuple[str, Any]]:
    """``(kind, subtask)`` for every non-null task in a result item."""
    container = item.ActivityResItem if item.ActivityResItem is not None else (item.model_extra or {})
    kind = item.ActivityType or item.Type or "?"
    for name, value in container.items():
        if isinstance(value, dict) and name.endswith("Task"):
            yield f"{kind}:{name}", read(SUBTASK, value)


def _event_subtasks(event: Any) -> Iterator[tuple[str, Any]]:
    """Every subtask of a task event: its result sets' items, then members like AiQualityControlTaskResult or
    SmartEraseTaskResult (an object with a ``Status``)."""
    for name in RESULT_SETS:
        for item in getattr(event, name) or ():
            yield from _item_subtasks(item)
    for name, value in (event.model_extra or {}).items():
        if isinstance(value, dict) and "Status" in value:
            yield name, read(SUBTASK, value)


def _batch_subtasks(event: Any) -> Iterator[tuple[str, Any]]:
    """Each output of a BatchTask's smart subtitle result (SDK ``SmartSubtitleTaskBatchOutput``), as a subtask
    whose ``Output`` is the output itself (its ``AsrFullTextTask``/``TransTextTask`` hold the subtitle paths)."""
    outputs = (event.SmartSubtitlesTaskResult or {}).get("Outputs")
    for i, out in enumerate(outputs if isinstance(outputs, list) else []):
        if isinstance(out, dict):
            yield f"SmartSubtitles:Outputs[{i}]", read(SUBTASK, {**out, "Output": {k: v for k, v in out.items()
                                                                                   if k.endswith("Task")}})


def _batch_status(event: Any) -> str | None:
    if event.Status:
        return event.Status
    statuses = [(sub.Status or "").upper() for _, sub in _batch_subtasks(event)]
    if not statuses:
        return None
    return "PROCESSING" if any(s in ("WAITING", "PROCESSING") for s in statuses) else "FINISH"


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
    if hasattr(exc, "errors"):  # pydantic's ValidationError
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _normalize(doc: dict[str, Any], event_type: str) -> NormalizedCallback:
    note = read(NOTIFICATION, doc)
    if event_type in VOD_EVENT_KEYS:
        return _normalize_vod(note, doc.get(VOD_EVENT_KEYS[event_type]), event_type)
    raw_event = doc.get(EVENT_KEYS.get(event_type, f"{event_type}Event"))
    if event_type == "BatchTask":
        return _normalize_batch(note, raw_event)
    event = read(TASK_EVENT, raw_event) if isinstance(raw_event, dict) else None
    failed_subtasks: list[dict[str, Any]] = []
    outputs: list[str] = []
    if event is not None:
        failed_subtasks, outputs = _results(_event_subtasks(event))  # reads each subtask: may raise ValueError
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


def _normalize_vod(note: Any, raw_event: Any, event_type: str) -> NormalizedCallback:
    """A VOD event (see the module docstring)."""
    raw = raw_event if isinstance(raw_event, dict) else {}
    if event_type == "NewFileUpload":
        info = raw.get("MediaBasicInfo") if isinstance(raw.get("MediaBasicInfo"), dict) else {}
        file_id = raw.get("FileId") if isinstance(raw.get("FileId"), str) else None
        started = raw.get("ProcedureTaskId")
        obj = {"storage": "vod", "bucket": None, "key": file_id,
               "name": info.get("Name") if isinstance(info.get("Name"), str) else None}
        return NormalizedCallback(event_type=event_type, task_id=started if isinstance(started, str) and started
                                  else None, status=None, failed=False, error=None, session_id=None,
                                  source_object=obj if file_id else None, outputs=[])
    event = read(TASK_EVENT, raw)
    failed_subtasks, outputs = _results(_event_subtasks(event))
    if event.Output is not None:
        outputs.extend(_paths(event.Output))
    ext = (event.ErrCodeExt or "SUCCESS").upper()
    task_failed = (event.ErrCode or 0) != 0 or (event.Status or "").upper() == "FAIL" or ext != "SUCCESS"
    error = None
    if task_failed:
        error = {"code": event.ErrCodeExt or event.ErrCode, "message": event.Message}
    elif failed_subtasks:
        error = {"subtasks": failed_subtasks}
    sid = raw.get("SessionId") if isinstance(raw.get("SessionId"), str) and raw.get("SessionId") else note.SessionId
    context = raw.get("SessionContext") if isinstance(raw.get("SessionContext"), str) else note.SessionContext
    file_id = raw.get("FileId")
    if not isinstance(file_id, str) and isinstance(event.Input, dict):
        file_id = event.Input.get("FileId")
    obj = source_object(context, None)
    if obj is None and isinstance(file_id, str) and file_id:
        obj = {"storage": "vod", "bucket": None, "key": file_id}
    return NormalizedCallback(event_type=event_type, task_id=event.TaskId, status=event.Status,
                              failed=task_failed or bool(failed_subtasks), error=error, session_id=sid or None,
                              source_object=obj, outputs=list(dict.fromkeys(outputs)))


def _normalize_batch(note: Any, raw_event: Any) -> NormalizedCallback:
    event = read(BATCH_TASK_EVENT, raw_event if isinstance(raw_event, dict) else {})
    failed_subtasks, outputs = _results(_batch_subtasks(event))
    inputs = [source_object(None, i) for i in event.InputInfos or [] if isinstance(i, dict)]
    ctx = read_session_context(note.SessionContext)
    sid = note.SessionId or (ctx.get("s") if ctx and is_session_id(ctx.get("s")) else None)
    return NormalizedCallback(
        event_type="BatchTask", task_id=event.TaskId, status=_batch_status(event), failed=bool(failed_subtasks),
        error={"subtasks": failed_subtasks} if failed_subtasks else None, session_id=sid or None,
        source_object=source_object(note.SessionContext, (event.InputInfos or [None])[0]),
        outputs=list(dict.fromkeys(outputs)), inputs=[i for i in inputs if i is not None])


def _results(subtasks: Iterator[tuple[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """``(failed subtasks as {subtask, code, message}, output paths of the others)``."""
    failures: list[dict[str, Any]] = []
    outputs: list[str] = []
    for kind, sub in subtasks:
        if failed(sub):
            failures.append({"subtask": kind, "code": sub.ErrCodeExt or sub.ErrCode, "message": sub.Message})
        else:
            outputs.extend(_paths(sub.Output))
    return failures, outputs


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
