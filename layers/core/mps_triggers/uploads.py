"""Upload events → :class:`UploadedObject`: one normalizer for every supported trigger shape.

Shapes (sources: S3 user guide "Event message structure" and "EventBridge event message structure", SNS and SQS
Lambda event formats, Tencent SCF COS trigger 583/9707; samples in ``events/``):

- S3 notification delivered straight to Lambda: ``{"Records": [{"eventSource": "aws:s3", "s3": {...}}]}``
- SQS batch (``Records[].eventSource == "aws:sqs"``) whose ``body`` is an S3 notification, an ``s3:TestEvent``,
  an SNS envelope of either (``{"Type": "Notification", "Message": "<json>"}``) or an EventBridge event
- SNS delivered straight to Lambda: ``{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "<json>"}}]}``
- EventBridge "Object Created" delivered straight to Lambda: ``{"detail-type": ..., "source": "aws.s3", ...}``
- Tencent COS trigger: ``{"Records": [{"cos": {"cosBucket": ..., "cosObject": ...}, "event": {...}}]}``
- S3 Batch Operations ``LambdaInvoke`` (S3 user guide "Invoke AWS Lambda function"): schema 1.0
  ``{"invocationSchemaVersion": "1.0", "invocationId", "job": {"id"}, "tasks": [{"taskId", "s3Key",
  "s3VersionId", "s3BucketArn"}]}`` and 2.0 (``tasks[].s3Bucket``, ``job.userArguments``); keys URL-encoded,
  decoded with ``unquote_plus`` (tested against S3 Batch Operations in aws-powertools-lambda-python #3572: the AWS
  example's ``unquote`` would keep a ``+`` that stands for a space). The
  event has no size or ETag: the submit job reads them with HEAD (:attr:`UploadedObject.needs_head`).

Keys of notification-shaped events are URL-encoded (``red flower.mp4`` arrives as ``red+flower.mp4``) and are
decoded with ``unquote_plus``; EventBridge keys arrive raw and are never decoded; COS keys arrive raw as
``/{appid}/{bucket}/{path}``.

The result is grouped by acknowledgement unit (:class:`UploadRecord`): an SQS message (the envelope is the spine's,
:func:`mps_triggers.invocation.sqs_records`), or one record of a direct invocation. Each record is parsed under the
record guard: a record that cannot be understood carries an :class:`~mps_triggers.exceptions.EventError` naming it
and the field (or a :class:`~mps_triggers.exceptions.RecordError` for anything unexpected), and fails alone;
``s3:TestEvent`` and non-create events are *ignored* (acknowledged, logged).

Hostile input is refused per record: bodies nested deeper than 64 levels or not JSON, keys and bucket names that
are not valid Unicode (a lone UTF-16 surrogate cannot be a UTF-8 S3 or COS key), sizes and times that are not plain
ASCII integers (``"²"``, a 5,000-digit string). S3's ``versionId: "null"`` (versioning suspended) means no version.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import unquote, unquote_plus, urlparse

from .exceptions import EventError, MpsTriggersError
from .invocation import SqsRecord, Source, guard, is_sqs_event, log_failure, sqs_records
from .safejson import JsonError, loads, to_int

Storage = Literal["s3", "cos"]

# COS trigger events may carry a short region code (cosBucket.region = "gz"); see reference/tencent.md §2.
COS_REGION_CODES = {
    "bj": "ap-beijing", "tj": "ap-beijing", "sh": "ap-shanghai", "gz": "ap-guangzhou", "cd": "ap-chengdu",
    "cq": "ap-chongqing", "nj": "ap-nanjing", "hk": "ap-hongkong", "sgp": "ap-singapore", "sg": "ap-singapore",
    "bkk": "ap-bangkok", "th": "ap-bangkok", "jkt": "ap-jakarta", "mum": "ap-mumbai", "in": "ap-mumbai",
    "sel": "ap-seoul", "kr": "ap-seoul", "tky": "ap-tokyo", "jp": "ap-tokyo", "ca": "na-toronto",
    "tor": "na-toronto", "sv": "na-siliconvalley", "va": "na-ashburn", "ge": "eu-frankfurt", "fra": "eu-frankfurt",
    "sao": "sa-saopaulo", "shjr": "ap-shanghai-fsi", "szjr": "ap-shenzhen-fsi", "bjjr": "ap-beijing-fsi",
}
_LONG_REGION = re.compile(r"^[a-z]{2,3}-[a-z]+(?:-[a-z0-9]+)?(?:-\d)?$")
_COS_HOST_REGION = re.compile(r"\.cos\.([a-z0-9-]+)\.myqcloud\.com$|\.cos([a-z]+)\.myqcloud\.com$")


@dataclass(frozen=True)
class UploadedObject:
    """One object that landed in a bucket, whatever the event shape that told us.

    ``storage`` is ``"s3"`` or ``"cos"``; ``bucket`` is the full bucket name (COS: ``name-appid``); ``region`` an
    AWS region (``us-east-1``) or a COS region (``ap-guangzhou``), empty when the event does not say; ``key`` is the
    decoded object key without a leading ``/``; ``size`` is in bytes (None when absent); ``event_time`` is UTC
    ISO 8601. ``version_id``/``etag``/``sequencer`` are passed through when present (quotes stripped from etags).
    ``upload_id`` is the uploading request's id when the event has one (COS ``x-cos-request-id``). ``needs_head``
    says the event gave no size and ETag (S3 Batch Operations): they are read with HEAD before the SessionId is
    derived, so it is the one the live event would give.
    """

    storage: Storage
    bucket: str
    region: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    event_name: str = ""
    event_time: str | None = None
    upload_id: str | None = None
    needs_head: bool = False

    @property
    def uri(self) -> str:
        return f"{self.storage}://{self.bucket}/{self.key}"


@dataclass
class UploadRecord:
    """One acknowledgement unit: an SQS message, or one record of a direct invocation.

    ``record_id`` names it in logs and errors (SQS ``messageId``, ``Records[3]``, the EventBridge ``id``);
    ``message_id`` is set for SQS messages and is what goes into ``batchItemFailures``. Exactly one outcome per
    record: ``error`` set (it failed to parse), or ``objects`` and/or ``ignored`` reasons.
    """

    record_id: str
    message_id: str | None = None
    objects: list[UploadedObject] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    error: MpsTriggersError | None = None


@dataclass
class UploadEvent:
    """A parsed invocation: ``kind`` is ``sqs``, ``s3``, ``sns``, ``eventbridge``, ``cos`` or
    ``s3-batch-operations`` (then ``batch`` holds ``invocationSchemaVersion``, ``invocationId`` and the job's
    ``userArguments``, and each record's id is its ``taskId``)."""

    kind: str
    records: list[UploadRecord]
    batch: dict[str, Any] | None = None

    @property
    def source(self) -> Source:
        """How the platform wants its answer: SQS batches report failures, every other shape is direct."""
        return Source.SQS if self.kind == "sqs" else Source.DIRECT


def parse_upload_event(event: Any) -> UploadEvent:
    """Turn any supported upload invocation into :class:`UploadEvent`.

    Raises :class:`EventError` (record ``event``) only when the invocation as a whole has no known shape; a bad
    record inside a known shape becomes that record's ``error`` instead, so it fails alone.
    """
    if not isinstance(event, dict):
        raise EventError("event", "$", f"expected a JSON object, got {type(event).__name__}")
    if is_sqs_event(event):
        return UploadEvent("sqs", [_sqs_record(r) for r in sqs_records(event)])
    if "invocationSchemaVersion" in event and "tasks" in event:
        return _batch_operations(event)
    records = event.get("Records")
    if isinstance(records, list) and records:
        first = records[0] if isinstance(records[0], dict) else {}
        if "cos" in first:
            return UploadEvent("cos", [_direct(r, i, _cos_object) for i, r in enumerate(records)])
        if first.get("EventSource") == "aws:sns" or "Sns" in first:
            return UploadEvent("sns", [_direct(r, i, _sns_record) for i, r in enumerate(records)])
        if first.get("eventSource") == "aws:s3" or "s3" in first:
            return UploadEvent("s3", [_direct(r, i, _s3_record) for i, r in enumerate(records)])
        raise EventError("Records[0]", "eventSource", "unknown record shape (expected aws:sqs, aws:s3, aws:sns or cos)")
    if "detail-type" in event and "detail" in event:
        rec = UploadRecord(record_id=_opt_str(event.get("id")) or "event")
        _fill(rec, lambda: _eventbridge(event, rec.record_id))
        return UploadEvent("eventbridge", [rec])
    if event.get("Event") == "s3:TestEvent":
        return UploadEvent("s3", [UploadRecord(record_id="event", ignored=["s3:TestEvent"])])
    if isinstance(records, list):
        return UploadEvent("s3", [])
    raise EventError("event", "$", "unknown event shape: no Records, detail-type or s3:TestEvent")


BATCH_SCHEMAS = ("1.0", "2.0")


def _batch_operations(event: dict) -> UploadEvent:
    """An S3 Batch Operations ``LambdaInvoke`` event (schema 1.0 or 2.0) → one record per task."""
    version = event.get("invocationSchemaVersion")
    if version not in BATCH_SCHEMAS:
        raise EventError("event", "invocationSchemaVersion", f"expected 1.0 or 2.0, got {str(version)[:20]!r}")
    invocation_id = event.get("invocationId")
    if not isinstance(invocation_id, str) or not invocation_id:
        raise EventError("event", "invocationId", "missing or not a string")
    tasks = event.get("tasks")
    if not isinstance(tasks, list):
        raise EventError("event", "tasks", "missing or not a list")
    job = event.get("job") if isinstance(event.get("job"), dict) else {}
    arguments = job.get("userArguments")
    meta = {"invocationSchemaVersion": version, "invocationId": invocation_id,
            "userArguments": arguments if isinstance(arguments, dict) else {}}
    records = []
    for i, task in enumerate(tasks):
        tid = task.get("taskId") if isinstance(task, dict) else None
        rec = UploadRecord(record_id=tid if isinstance(tid, str) and tid else f"tasks[{i}]")
        _fill(rec, lambda t=task, r=rec: _batch_task(t, r.record_id, f"tasks[{i}]"))
        records.append(rec)
    return UploadEvent("s3-batch-operations", records, meta)


def _batch_task(task: Any, rid: str, path: str) -> list[UploadedObject | str]:
    if not isinstance(task, dict):
        raise EventError(rid, path, "expected a task object")
    if not isinstance(task.get("taskId"), str) or not task["taskId"]:
        raise EventError(rid, f"{path}.taskId", "missing, empty or not a string")
    if "s3Bucket" in task or "s3BucketArn" not in task:  # schema 2.0 (or neither: name the 2.0 field)
        bucket = _str(task, "s3Bucket", rid, f"{path}.")
    else:
        arn = _str(task, "s3BucketArn", rid, f"{path}.")
        if not arn.startswith("arn:") or ":::" not in arn or not arn.split(":::", 1)[1]:
            raise EventError(rid, f"{path}.s3BucketArn", f"not an S3 bucket ARN: {arn[:80]!r}")
        bucket = arn.split(":::", 1)[1]
    key = _str(task, "s3Key", rid, f"{path}.")
    return [UploadedObject(storage="s3", bucket=bucket, region="",
                           key=unquote_plus(key), version_id=_version(task.get("s3VersionId")),
                           event_name="BatchOperations:LambdaInvoke", needs_head=True)]


# --- one record → objects ------------------------------------------------------------------------------------------

def _fill(rec: UploadRecord, parse) -> None:
    """Run ``parse`` (→ list of UploadedObject | str ignore-reason) into ``rec`` under the record guard: any
    exception becomes the record's error (logged), never the invocation's."""
    outcome = guard(rec.record_id, lambda: list(parse()))
    if isinstance(outcome, MpsTriggersError):
        rec.error = outcome
        return
    for item in outcome:
        if isinstance(item, str):
            rec.ignored.append(item)
        else:
            rec.objects.append(item)


def _direct(raw: Any, index: int, parse_one) -> UploadRecord:
    rec = UploadRecord(record_id=f"Records[{index}]")
    _fill(rec, lambda: parse_one(raw, rec.record_id))
    return rec


def _sqs_record(raw: SqsRecord) -> UploadRecord:
    rec = UploadRecord(record_id=raw.record_id, message_id=raw.message_id, error=raw.error)
    if raw.error is not None:
        log_failure(raw.record_id, raw.error)
    else:
        _fill(rec, lambda: _body(raw.body, rec.record_id, "body"))
    return rec


def _body(body: Any, rid: str, path: str) -> list[UploadedObject | str]:
    """An SQS body or SNS Message: S3 notification, TestEvent, SNS envelope or EventBridge event."""
    if not isinstance(body, str):
        raise EventError(rid, path, f"expected a JSON string, got {type(body).__name__}")
    try:
        doc = loads(body)
    except JsonError as exc:
        raise EventError(rid, path, str(exc)) from None
    if not isinstance(doc, dict):
        raise EventError(rid, path, f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("Event") == "s3:TestEvent":
        return ["s3:TestEvent"]
    if doc.get("Type") == "Notification" and "Message" in doc:
        if path.endswith("Message"):  # SNS wraps an S3 or EventBridge event, never another SNS envelope
            raise EventError(rid, f"{path}.Message", "an SNS envelope inside an SNS envelope")
        return _body(doc["Message"], rid, f"{path}.Message")
    if "detail-type" in doc and "detail" in doc:
        return _eventbridge(doc, rid, path)
    records = doc.get("Records")
    if isinstance(records, list):
        out: list[UploadedObject | str] = []
        for i, r in enumerate(records):
            out.extend(_s3_record(r, rid, f"{path}.Records[{i}]"))
        return out
    raise EventError(rid, path, "unknown body shape: not an S3 notification, s3:TestEvent, SNS envelope or EventBridge event")


def _sns_record(raw: Any, rid: str) -> list[UploadedObject | str]:
    sns = raw.get("Sns") if isinstance(raw, dict) else None
    if not isinstance(sns, dict):
        raise EventError(rid, "Sns", "missing or not an object")
    return _body(sns.get("Message"), rid, "Sns.Message")


def _s3_record(raw: Any, rid: str, path: str = "") -> list[UploadedObject | str]:
    p = f"{path}." if path else ""
    if not isinstance(raw, dict):
        raise EventError(rid, path or "$", "expected an S3 event record object")
    name = raw.get("eventName")
    if not isinstance(name, str):
        raise EventError(rid, f"{p}eventName", "missing or not a string")
    if not name.removeprefix("s3:").startswith("ObjectCreated:"):
        return [f"not an object-created event: {name}"]
    s3 = _obj(raw, "s3", rid, p)
    bucket = _obj(s3, "bucket", rid, f"{p}s3.")
    obj = _obj(s3, "object", rid, f"{p}s3.")
    key = _str(obj, "key", rid, f"{p}s3.object.")
    return [UploadedObject(
        storage="s3",
        bucket=_str(bucket, "name", rid, f"{p}s3.bucket."),
        region=_region(raw.get("awsRegion")),
        key=unquote_plus(key),
        size=_size(obj.get("size"), rid, f"{p}s3.object.size"),
        etag=_etag(obj.get("eTag")),
        version_id=_version(obj.get("versionId")),
        sequencer=_opt_str(obj.get("sequencer")),
        event_name=name,
        event_time=_time(raw.get("eventTime")),
    )]


def _eventbridge(doc: dict, rid: str, path: str = "") -> list[UploadedObject | str]:
    p = f"{path}." if path else ""
    detail_type = doc.get("detail-type")
    if not isinstance(detail_type, str):
        raise EventError(rid, f"{p}detail-type", "missing or not a string")
    if detail_type != "Object Created":
        return [f"not an object-created event: {detail_type}"]
    if doc.get("source") != "aws.s3":
        raise EventError(rid, f"{p}source", f"expected aws.s3, got {doc.get('source')!r}")
    detail = _obj(doc, "detail", rid, p)
    bucket = _obj(detail, "bucket", rid, f"{p}detail.")
    obj = _obj(detail, "object", rid, f"{p}detail.")
    return [UploadedObject(
        storage="s3",
        bucket=_str(bucket, "name", rid, f"{p}detail.bucket."),
        region=_region(doc.get("region")),
        key=_str(obj, "key", rid, f"{p}detail.object."),  # EventBridge keys are raw: never unquote
        size=_size(obj.get("size"), rid, f"{p}detail.object.size"),
        etag=_etag(obj.get("etag")),
        version_id=_version(obj.get("version-id")),
        sequencer=_opt_str(obj.get("sequencer")),
        event_name=f"Object Created:{detail.get('reason') or ''}".rstrip(":"),
        event_time=_time(doc.get("time")),
    )]


def _cos_object(raw: Any, rid: str) -> list[UploadedObject | str]:
    if not isinstance(raw, dict):
        raise EventError(rid, "$", "expected a COS event record object")
    cos = _obj(raw, "cos", rid, "")
    ev = raw.get("event") if isinstance(raw.get("event"), dict) else {}
    name = ev.get("eventName")
    if not isinstance(name, str):
        raise EventError(rid, "event.eventName", "missing or not a string")
    if not name.startswith("cos:ObjectCreated:"):
        return [f"not an object-created event: {name}"]
    b = _obj(cos, "cosBucket", rid, "cos.")
    o = _obj(cos, "cosObject", rid, "cos.")
    short = _str(b, "name", rid, "cos.cosBucket.")
    appid = _opt_str(b.get("appid"))
    if appid is None or to_int(appid) is None:
        raise EventError(rid, "cos.cosBucket.appid", "missing or not a number")
    raw_key = _str(o, "key", rid, "cos.cosObject.")
    url = o.get("url") if isinstance(o.get("url"), str) else ""
    marker = f"/{appid}/{short}/"
    if raw_key.startswith(marker):
        key = raw_key[len(marker):]
    elif url:
        key = unquote(urlparse(url).path.lstrip("/"))
    else:
        raise EventError(rid, "cos.cosObject.key", f"expected /{appid}/{short}/<path>, got {raw_key!r}")
    meta = o.get("meta") if isinstance(o.get("meta"), dict) else {}
    vid = o.get("vid")
    vid = str(vid) if isinstance(vid, (str, int)) and not isinstance(vid, bool) else None
    return [UploadedObject(
        storage="cos",
        bucket=short if short.endswith(f"-{appid}") else f"{short}-{appid}",
        region=_cos_region(b.get("region"), url, rid),
        key=key,
        size=_size(o.get("size"), rid, "cos.cosObject.size"),
        etag=_etag(meta.get("ETag") or meta.get("etag") or meta.get("x-cos-meta-etag")),
        version_id=_version(vid),
        event_name=name,
        event_time=_time(ev.get("eventTime")),
        upload_id=_opt_str(meta.get("x-cos-request-id")) or _opt_str(ev.get("reqid")),
    )]


# --- field helpers -------------------------------------------------------------------------------------------------

def _obj(parent: dict, name: str, rid: str, prefix: str) -> dict:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise EventError(rid, f"{prefix}{name}", "missing or not an object")
    return value


_AWS_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+){1,2}-\d{1,2}", re.ASCII)
_MAX_KEY_BYTES = 1024  # S3 and COS object keys are at most 1,024 bytes of UTF-8


def _str(parent: dict, name: str, rid: str, prefix: str) -> str:
    value = parent.get(name)
    if not isinstance(value, str) or not value:
        raise EventError(rid, f"{prefix}{name}", "missing, empty or not a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise EventError(rid, f"{prefix}{name}", "not valid Unicode (a lone UTF-16 surrogate)") from None
    if size > 4 * _MAX_KEY_BYTES:  # URL-encoded keys are at most 3x; anything longer is not an S3/COS name
        raise EventError(rid, f"{prefix}{name}", f"{size} bytes long, longer than any S3 or COS key")
    return value


def _opt_str(value: Any) -> str | None:
    """An optional identifier (sequencer, request id): kept only as a short, valid, non-empty string or integer."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value) if not isinstance(value, int) or to_int(value) is not None else ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text[:256] or None


def _region(value: Any) -> str:
    """An AWS region name as the event gives it (``us-east-1``), or '' when absent or not region-shaped."""
    return value if isinstance(value, str) and _AWS_REGION.fullmatch(value) else ""


def _version(value: Any) -> str | None:
    """A version id; S3 says ``"null"`` for objects in buckets whose versioning is suspended (or never enabled)."""
    text = _opt_str(value)
    return None if text in (None, "null") else text


def _size(value: Any, rid: str, path: str) -> int | None:
    if value is None or value == "":
        return None
    size = to_int(value)  # COS sends sizes as strings at times; only plain ASCII digits count
    if size is None and isinstance(value, float) and value.is_integer():
        size = to_int(int(value))
    if size is None:
        shown = value if not isinstance(value, str) else value[:40]
        raise EventError(rid, path, f"not a byte count: {shown!r}")
    if size < 0:
        raise EventError(rid, path, f"negative size {size}")
    return size


def _etag(value: Any) -> str | None:
    text = _opt_str(value) if isinstance(value, str) else None
    return text.strip('"') or None if text else None


def _time(value: Any) -> str | None:
    """ISO 8601 string (S3, EventBridge) or epoch seconds (COS, moto's EventBridge) → UTC ISO 8601."""
    seconds = to_int(value, max_digits=12)
    if seconds is None and isinstance(value, float) and value == value and abs(value) < 1e12:
        seconds = int(value)
    if seconds is not None:
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            return None
    return _opt_str(value) if isinstance(value, str) else None


def _cos_region(region: Any, url: str, rid: str) -> str:
    region = region.strip() if isinstance(region, str) else ""
    if _LONG_REGION.match(region) and "-" in region:
        return region
    if url:
        m = _COS_HOST_REGION.search(urlparse(url).hostname or "")
        if m and m.group(1):
            return m.group(1)
        if m and m.group(2):
            region = region or m.group(2)
    if region in COS_REGION_CODES:
        return COS_REGION_CODES[region]
    raise EventError(rid, "cos.cosBucket.region", f"unknown COS region {region[:40]!r}")
