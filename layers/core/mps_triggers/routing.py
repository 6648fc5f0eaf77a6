"""Rules → ProcessMedia request; the runtime recursion guard; SessionId and SessionContext.

Source: ProcessMedia API 2019-06-12 (``InputInfo``/``MediaInputInfo``, ``OutputStorage``/``TaskOutputStorage``,
``OutputDir``, ``ScheduleId``, ``TaskNotifyConfig``, ``TasksPriority``, ``SessionId`` ≤ 50 characters,
``SessionContext`` ≤ 1000 characters, ``TaskType``), MPS "Using Amazon S3 Buckets with MPS".

Example::

    router = Router(settings)
    decision = router.decide(obj)            # Skip(reason=...) or Submission(route, session_id, request)
    if isinstance(decision, Submission):
        client.process_media(decision.request(s3_credentials))
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .config import Route, Settings
from .uploads import UploadedObject

SESSION_ID_PREFIX = "mt1-"
SESSION_CONTEXT_LIMIT = 1000


@dataclass(frozen=True)
class S3Credentials:
    """The AWS access key MPS uses to read S3 inputs, write S3 outputs and send AWS-SQS callbacks."""

    secret_id: str
    secret_key: str

    def __repr__(self) -> str:
        return f"S3Credentials(secret_id={self.secret_id[:4]}…)"


@dataclass(frozen=True)
class Skip:
    """The object is deliberately not submitted; ``reason`` says why (logged and shown by the demo)."""

    reason: str


@dataclass(frozen=True)
class Submission:
    """One ProcessMedia call to make for ``obj``: built by :meth:`Router.decide`, sent by the submit job."""

    obj: UploadedObject
    route: Route
    session_id: str
    session_context: str
    _settings: Settings

    def request(self, s3: S3Credentials | None = None) -> dict[str, Any]:
        """The ProcessMedia parameters. ``s3`` credentials are required for S3 inputs (ValueError otherwise)."""
        return build_request(self.obj, self.route, self._settings, self.session_id, self.session_context, s3)


def session_id(obj: UploadedObject) -> str:
    """Deterministic MPS SessionId (44 characters) of an object version: storage, bucket, key, version, size.

    The version is the version id, else the ETag, else the uploading request's id (COS events without either),
    so a redelivered event yields the same id and MPS rejects the repeat (``InvalidParameterValue.SessionId``),
    while a new upload of the same key (new version, new content) yields a new one.
    """
    version = obj.version_id or obj.etag or obj.upload_id or ""
    material = "\x1f".join([obj.storage, obj.bucket, obj.key, version, "" if obj.size is None else str(obj.size)])
    return SESSION_ID_PREFIX + hashlib.sha256(material.encode("utf-8")).hexdigest()[:40]


def session_context(obj: UploadedObject, route: Route) -> str:
    """Compact JSON (≤ 1000 UTF-8 bytes) naming the source object and route; MPS echoes it in every callback.

    Shape: ``{"v":1,"src":"s3","b":"bucket","k":"key","r":"route"}``. A key too long to fit is cut, and
    ``"kh"`` (sha256 of the full key, 16 hex) plus ``"kt":1`` mark the cut so the archive can still match it.
    """
    doc: dict[str, Any] = {"v": 1, "src": obj.storage, "b": obj.bucket, "k": obj.key, "r": route.name}
    text = _compact(doc)
    if len(text.encode("utf-8")) <= SESSION_CONTEXT_LIMIT:
        return text
    doc["kh"] = hashlib.sha256(obj.key.encode("utf-8")).hexdigest()[:16]
    doc["kt"] = 1
    key = obj.key
    while True:  # each character takes at most 6 bytes of JSON, so cutting over // 6 always makes progress
        text = _compact({**doc, "k": key})
        over = len(text.encode("utf-8")) - SESSION_CONTEXT_LIMIT
        if over <= 0:
            return text
        key = key[: len(key) - max(1, over // 6)]


def _compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def read_session_context(text: str | None) -> dict[str, Any] | None:
    """Parse a SessionContext written by :func:`session_context`; None when absent or not ours."""
    try:
        doc = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("v") != 1 or not {"src", "b", "k"} <= doc.keys():
        return None
    return doc


class Router:
    """Maps an :class:`UploadedObject` to a :class:`Skip` or a :class:`Submission` using the configured routes.

    Order of checks: folder marker, zero-byte object, recursion guard (object under an output dir or the archive
    location), then routes in order (first match wins), else skip "no route matches".
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.routes = settings.routes
        self.guarded = settings.guarded_locations()

    def decide(self, obj: UploadedObject) -> Skip | Submission:
        if obj.key.endswith("/"):
            return Skip("folder marker (key ends with '/')")
        if obj.size == 0:
            return Skip("zero-byte object")
        for g in self.guarded:
            if g.covers(obj.bucket, obj.key):
                return Skip(f"recursion guard: under {g.setting} ({g.bucket or '<input bucket>'}/{g.prefix})")
        for route in self.routes:
            if route.matches(obj.storage, obj.bucket, obj.key):
                return Submission(obj, route, session_id(obj), session_context(obj, route), self.settings)
        return Skip("no route matches")


def build_request(obj: UploadedObject, route: Route, settings: Settings, sid: str, context: str,
                  s3: S3Credentials | None = None) -> dict[str, Any]:
    """Build ProcessMedia parameters for ``obj`` under ``route``.

    COS objects become ``InputInfo.Type=COS`` with ``CosInputInfo.Object`` = ``/key``; S3 objects become
    ``InputInfo.Type=AWS-S3`` with ``S3InputInfo`` carrying ``s3`` credentials (required: ValueError otherwise).
    Output storage follows the input's cloud; bucket and region default to the input's.
    """
    out_bucket = settings.output_bucket_for(route) or obj.bucket
    out_region = route.output_region or settings.mps_output_region or obj.region
    if obj.storage == "cos":
        input_info: dict[str, Any] = {"Type": "COS", "CosInputInfo": {
            "Bucket": obj.bucket, "Region": obj.region, "Object": "/" + obj.key}}
        output: dict[str, Any] = {"Type": "COS", "CosOutputStorage": {"Bucket": out_bucket, "Region": out_region}}
    else:
        if s3 is None:
            raise ValueError("S3 inputs need the S3 credentials MPS reads with (MPS_S3_SECRET_ID/MPS_S3_SECRET_KEY "
                             "or MPS_S3_CREDENTIALS_SECRET_ARN)")
        input_info = {"Type": "AWS-S3", "S3InputInfo": {
            "S3Bucket": obj.bucket, "S3Region": obj.region, "S3Object": obj.key,
            "S3SecretId": s3.secret_id, "S3SecretKey": s3.secret_key}}
        output = {"Type": "AWS-S3", "S3OutputStorage": {
            "S3Bucket": out_bucket, "S3Region": out_region, "S3SecretId": s3.secret_id, "S3SecretKey": s3.secret_key}}
    req: dict[str, Any] = {
        "InputInfo": input_info,
        "OutputStorage": output,
        "OutputDir": settings.output_dir_for(route),
    }
    if route.schedule_id is not None:
        req["ScheduleId"] = route.schedule_id
    else:
        req.update(json.loads(json.dumps(route.tasks)))  # deep copy: requests never share mutable config
    notify = task_notify_config(settings, s3)
    if notify:
        req["TaskNotifyConfig"] = notify
    priority = route.tasks_priority if route.tasks_priority is not None else settings.mps_tasks_priority
    if priority is not None:
        req["TasksPriority"] = priority
    task_type = route.task_type or settings.mps_task_type
    if task_type:
        req["TaskType"] = task_type
    req["SessionId"] = sid
    req["SessionContext"] = context
    return req


def task_notify_config(settings: Settings, s3: S3Credentials | None) -> dict[str, Any] | None:
    """TaskNotifyConfig from MPS_NOTIFY_*: NotifyType URL or AWS-SQS (set explicitly; MPS defaults to TDMQ-CMQ)."""
    if settings.mps_notify_url:
        cfg: dict[str, Any] = {"NotifyType": "URL", "NotifyUrl": settings.mps_notify_url}
    elif settings.mps_notify_sqs_queue:
        sqs: dict[str, Any] = {"SQSRegion": settings.mps_notify_sqs_region, "SQSQueueName": settings.mps_notify_sqs_queue}
        if s3 is not None:
            sqs.update(S3SecretId=s3.secret_id, S3SecretKey=s3.secret_key)
        cfg = {"NotifyType": "AWS-SQS", "AwsSQS": sqs}
    else:
        return None
    cfg["NotifyMode"] = settings.mps_notify_mode
    if settings.mps_notify_key:
        cfg["NotifyKey"] = settings.mps_notify_key.get_secret_value()
    return cfg
