"""Upload events → :class:`UploadedObject`: one normalizer for every supported trigger shape.

Shapes (sources: S3 user guide "Event message structure" and "EventBridge event message structure", SNS and SQS
Lambda event formats, Tencent SCF COS trigger 583/9707; samples in ``events/``):

- S3 notification delivered straight to Lambda: ``{"Records": [{"eventSource": "aws:s3", "s3": {...}}]}``
- SQS batch (``Records[].eventSource == "aws:sqs"``) whose ``body`` is an S3 notification, an ``s3:TestEvent``,
  an SNS envelope of either (``{"Type": "Notification", "Message": "<json>"}``) or an EventBridge event
- SNS delivered straight to Lambda: ``{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "<json>"}}]}``
- EventBridge "Object Created" delivered straight to Lambda: ``{"detail-type": ..., "source": "aws.s3", ...}``
- Tencent COS trigger: ``{"Records": [{"cos": {"cosBucket": ..., "cosObject": ...}, "event": {...}}]}``

Keys of notification-shaped events are URL-encoded (``red flower.mp4`` arrives as ``red+flower.mp4``) and are
decoded with ``unquote_plus``; EventBridge keys arrive raw and are never decoded; COS keys arrive raw as
``/{appid}/{bucket}/{path}``.

The result is grouped by acknowledgement unit (:class:`UploadRecord`): an SQS message, or one record of a direct
invocation. A record that cannot be understood carries an :class:`~mps_triggers.exceptions.EventError` naming it
and the field, and fails alone; ``s3:TestEvent`` and non-create events are *ignored* (acknowledged, logged).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import unquote, unquote_plus, urlparse

from .exceptions import EventError

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
    ``upload_id`` is the uploading request's id when the event has one (COS ``x-cos-request-id``).
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
    error: EventError | None = None


@dataclass
class UploadEvent:
    """A parsed invocation: ``source`` is ``sqs``, ``s3``, ``sns``, ``eventbridge`` or ``cos``."""

    source: str
    records: list[UploadRecord]

    @property
    def is_sqs(self) -> bool:
        return self.source == "sqs"


def parse_upload_event(event: Any) -> UploadEvent:
    """Turn any supported upload invocation into :class:`UploadEvent`.

    Raises :class:`EventError` (record ``event``) only when the invocation as a whole has no known shape; a bad
    record inside a known shape becomes that record's ``error`` instead, so it fails alone.
    """
    if not isinstance(event, dict):
        raise EventError("event", "$", f"expected a JSON object, got {type(event).__name__}")
    records = event.get("Records")
    if isinstance(records, list) and records:
        first = records[0] if isinstance(records[0], dict) else {}
        if first.get("eventSource") == "aws:sqs":
            return UploadEvent("sqs", [_sqs_record(r, i) for i, r in enumerate(records)])
        if "cos" in first:
            return UploadEvent("cos", [_direct(r, i, _cos_object) for i, r in enumerate(records)])
        if first.get("EventSource") == "aws:sns" or "Sns" in first:
            return UploadEvent("sns", [_direct(r, i, _sns_record) for i, r in enumerate(records)])
        if first.get("eventSource") == "aws:s3" or "s3" in first:
            return UploadEvent("s3", [_direct(r, i, _s3_record) for i, r in enumerate(records)])
        raise EventError("Records[0]", "eventSource", "unknown record shape (expected aws:sqs, aws:s3, aws:sns or cos)")
    if "detail-type" in event and "detail" in event:
        rec = UploadRecord(record_id=str(event.get("id") or "event"))
        _fill(rec, lambda: _eventbridge(event, rec.record_id))
        return UploadEvent("eventbridge", [rec])
    if event.get("Event") == "s3:TestEvent":
        return UploadEvent("s3", [UploadRecord(record_id="event", ignored=["s3:TestEvent"])])
    if isinstance(records, list):
        return UploadEvent("s3", [])
    raise EventError("event", "$", "unknown event shape: no Records, detail-type or s3:TestEvent")


# --- one record → objects ------------------------------------------------------------------------------------------

def _fill(rec: UploadRecord, parse) -> None:
    """Run ``parse`` (→ list of UploadedObject | str ignore-reason) into ``rec``, keeping an EventError on it."""
    try:
        for item in parse():
            if isinstance(item, str):
                rec.ignored.append(item)
            else:
                rec.objects.append(item)
    except EventError as exc:
        rec.error = exc
        rec.objects.clear()


def _direct(raw: Any, index: int, parse_one) -> UploadRecord:
    rec = UploadRecord(record_id=f"Records[{index}]")
    _fill(rec, lambda: parse_one(raw, rec.record_id))
    return rec


def _sqs_record(raw: Any, index: int) -> UploadRecord:
    if not isinstance(raw, dict) or not isinstance(raw.get("messageId"), str) or not raw["messageId"]:
        # Without a messageId the record cannot be reported in batchItemFailures; the handler fails the batch.
        rec = UploadRecord(record_id=f"Records[{index}]")
        rec.error = EventError(rec.record_id, "messageId", "missing or not a string")
        return rec
    rec = UploadRecord(record_id=raw["messageId"], message_id=raw["messageId"])
    _fill(rec, lambda: _body(raw.get("body"), rec.record_id, "body"))
    return rec


def _body(body: Any, rid: str, path: str) -> list[UploadedObject | str]:
    """An SQS body or SNS Message: S3 notification, TestEvent, SNS envelope or EventBridge event."""
    if not isinstance(body, str):
        raise EventError(rid, path, f"expected a JSON string, got {type(body).__name__}")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise EventError(rid, path, f"not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(doc, dict):
        raise EventError(rid, path, f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("Event") == "s3:TestEvent":
        return ["s3:TestEvent"]
    if doc.get("Type") == "Notification" and "Message" in doc:
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
        region=str(raw.get("awsRegion") or ""),
        key=unquote_plus(key),
        size=_size(obj.get("size"), rid, f"{p}s3.object.size"),
        etag=_etag(obj.get("eTag")),
        version_id=obj.get("versionId") or None,
        sequencer=obj.get("sequencer") or None,
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
        region=str(doc.get("region") or ""),
        key=_str(obj, "key", rid, f"{p}detail.object."),  # EventBridge keys are raw: never unquote
        size=_size(obj.get("size"), rid, f"{p}detail.object.size"),
        etag=_etag(obj.get("etag")),
        version_id=obj.get("version-id") or None,
        sequencer=obj.get("sequencer") or None,
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
    appid = str(b.get("appid") or "")
    if not appid:
        raise EventError(rid, "cos.cosBucket.appid", "missing")
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
    return [UploadedObject(
        storage="cos",
        bucket=short if short.endswith(f"-{appid}") else f"{short}-{appid}",
        region=_cos_region(b.get("region"), url, rid),
        key=key,
        size=_size(o.get("size"), rid, "cos.cosObject.size"),
        etag=_etag(meta.get("ETag") or meta.get("etag") or meta.get("x-cos-meta-etag")),
        version_id=str(vid) if vid not in (None, "", "null") else None,
        event_name=name,
        event_time=_time(ev.get("eventTime")),
        upload_id=str(meta.get("x-cos-request-id") or ev.get("reqid") or "") or None,
    )]


# --- field helpers -------------------------------------------------------------------------------------------------

def _obj(parent: dict, name: str, rid: str, prefix: str) -> dict:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise EventError(rid, f"{prefix}{name}", "missing or not an object")
    return value


def _str(parent: dict, name: str, rid: str, prefix: str) -> str:
    value = parent.get(name)
    if not isinstance(value, str) or not value:
        raise EventError(rid, f"{prefix}{name}", "missing, empty or not a string")
    return value


def _size(value: Any, rid: str, path: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise EventError(rid, path, f"not a byte count: {value!r}")
    try:
        size = int(value)  # COS sends sizes as strings at times
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity
        raise EventError(rid, path, f"not a byte count: {value!r}") from None
    if size < 0:
        raise EventError(rid, path, f"negative size {size}")
    return size


def _etag(value: Any) -> str | None:
    return value.strip('"') or None if isinstance(value, str) else None


def _time(value: Any) -> str | None:
    """ISO 8601 string (S3, EventBridge) or epoch seconds (COS, moto's EventBridge) → UTC ISO 8601."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            return None
    return str(value)


def _cos_region(region: Any, url: str, rid: str) -> str:
    region = str(region or "").strip()
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
    raise EventError(rid, "cos.cosBucket.region", f"unknown COS region {region!r}")
