"""The archive: one JSON line per notification, redacted, under query-engine friendly keys.

Line (UTF-8, no ASCII escaping, ``\\n``-terminated)::

    {"id": "<sha256 hex of the canonical redacted payload>", "received_at": "2026-11-21T09:30:00.123Z",
     "source": {"type": "http" | "sqs" | "scf-mps-trigger", "id": "<request or message id>"},
     "event_type": "ScheduleTask", "task_id": "…", "status": "FINISH", "failed": false, "error": null,
     "session_id": "mt1-…", "object": {"storage": "s3", "bucket": "…", "key": "…", "route": "videos"},
     "outputs": ["/mps-output/a_transcode_100030.mp4"], "payload": {…the notification, redacted…}}

Keys: ``{prefix}event_type={type}/dt=YYYY-MM-DD/hour=HH/{name}.jsonl`` (no colons). A single callback (HTTP, MPS
trigger) is one object named by its line ``id``, partitioned by the notification's ``Timestamp`` when it has one,
so a redelivery overwrites itself; an SQS batch is one object per event type named by the digest of its message
ids, lines in arrival order. Readers drop repeated lines by ``id``.

Redaction (before anything is written or logged): ``S3SecretId``, ``S3SecretKey``, ``SecretId``, ``SecretKey``,
``NotifyKey`` and every key whose name contains ``secret``, ``token`` or ``password`` (any case) → ``"***"``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from .callbacks import NormalizedCallback

REDACTED = "***"
_SECRET_KEYS = {"s3secretid", "s3secretkey", "secretid", "secretkey", "notifykey"}
_SECRET_PARTS = ("secret", "token", "password")
_TYPE_SAFE = re.compile(r"[^A-Za-z0-9_-]")
_YEAR_2000, _YEAR_2100 = 946684800, 4102444800


@functools.lru_cache(maxsize=4096)  # key names repeat across every notification: decide each once
def is_secret_key(name: str) -> bool:
    low = name.lower()
    return low in _SECRET_KEYS or any(part in low for part in _SECRET_PARTS)


def redact(value: Any) -> Any:
    """A deep copy of ``value`` with every secret-named key's value replaced by ``"***"``."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k) and v not in (None, ""):
                out[k] = REDACTED
            else:
                out[k] = redact(v) if isinstance(v, (dict, list)) else v
        return out
    if isinstance(value, list):
        return [redact(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def canonical(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8: the bytes ``id`` hashes."""
    return _canonical_text(value).encode("utf-8")


def _canonical_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def line_id(payload: Any) -> str:
    """The stable ``id`` of a (redacted) payload: the same notification always gets the same id."""
    return hashlib.sha256(canonical(payload)).hexdigest()


def utc_iso(ts: float) -> str:
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


@dataclass
class ArchiveLine:
    """One archived notification: its ``id``, ``event_type`` and the serialized line (bytes, ``\\n`` included)."""

    id: str
    event_type: str
    data: bytes
    normalized: NormalizedCallback
    timestamp: int | None = None


def build_line(payload: Any, normalized: NormalizedCallback, source_type: str, source_id: str | None,
               received_at: float) -> ArchiveLine:
    """Redact ``payload`` and serialize the archive line for it. ``received_at`` is UNIX seconds."""
    clean = redact(payload)
    payload_text = _canonical_text(clean)  # serialized once: hashed for the id and embedded in the line
    lid = hashlib.sha256(payload_text.encode("utf-8")).hexdigest()
    doc = {
        "id": lid,
        "received_at": utc_iso(received_at),
        "source": {"type": source_type, "id": source_id},
        "event_type": normalized.event_type,
        "task_id": normalized.task_id,
        "status": normalized.status,
        "failed": normalized.failed,
        "error": redact(normalized.error),
        "session_id": normalized.session_id,
        "object": normalized.source_object,
        "outputs": normalized.outputs,
    }
    if normalized.parse_error:
        doc["parse_error"] = normalized.parse_error
    head = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    data = f'{head[:-1]},"payload":{payload_text}}}\n'.encode("utf-8")
    return ArchiveLine(lid, normalized.event_type, data, normalized, _plausible_time(payload))


def _plausible_time(payload: Any) -> int | None:
    """The notification's ``Timestamp`` when it is a UNIX time between 2000 and 2100, else None."""
    ts = payload.get("Timestamp") if isinstance(payload, dict) else None
    if isinstance(ts, bool) or not (isinstance(ts, int) or (isinstance(ts, str) and ts.isdigit())):
        return None
    ts = int(ts)
    return ts if _YEAR_2000 <= ts <= _YEAR_2100 else None


def object_key(prefix: str, event_type: str, when: float, name: str) -> str:
    """``{prefix}event_type={type}/dt=YYYY-MM-DD/hour=HH/{name}.jsonl`` (``prefix`` is '' or ends with '/')."""
    d = datetime.fromtimestamp(when, tz=timezone.utc)
    safe = _TYPE_SAFE.sub("_", event_type) or "unknown"
    return f"{prefix}event_type={safe}/dt={d:%Y-%m-%d}/hour={d:%H}/{name}.jsonl"


def batch_name(message_ids: Iterable[str]) -> str:
    """Name of an SQS batch's object: sha256 of its sorted message ids (32 hex)."""
    return hashlib.sha256("\n".join(sorted(message_ids)).encode("utf-8")).hexdigest()[:32]


@dataclass
class ArchiveObject:
    """One object to write: its key, content, and the ``(record id, line)`` entries in it, in order."""

    key: str
    data: bytes
    entries: list[tuple[str, ArchiveLine]] = field(default_factory=list)


def single_object(prefix: str, line: ArchiveLine, received_at: float, record_id: str = "") -> ArchiveObject:
    """The object of one HTTP or MPS-trigger callback, named by the line's id (a redelivery overwrites it)."""
    when = line.timestamp if line.timestamp is not None else received_at
    return ArchiveObject(object_key(prefix, line.event_type, when, line.id), line.data, [(record_id, line)])


def batch_objects(prefix: str, lines: list[tuple[str, ArchiveLine]], message_ids: list[str],
                  received_at: float) -> list[ArchiveObject]:
    """Objects of one SQS batch: one per event type, lines in arrival order. ``lines`` are (record id, line)."""
    name = batch_name(message_ids)
    groups: dict[str, ArchiveObject] = {}
    for record_id, line in lines:
        obj = groups.get(line.event_type)
        if obj is None:
            obj = groups[line.event_type] = ArchiveObject(object_key(prefix, line.event_type, received_at, name), b"")
        obj.entries.append((record_id, line))
    for obj in groups.values():
        obj.data = b"".join(line.data for _, line in obj.entries)
    return list(groups.values())
