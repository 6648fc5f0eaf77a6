"""SessionId derivation and the SessionContext codec: written by the submit job, read by the archive job.

Source: ProcessMedia API 2019-06-12: ``SessionId`` ≤ 50 characters, "if a request with the same identification code
was made within the past 3 days, an error will be returned" (``InvalidParameterValue.SessionId``);
``SessionContext`` ≤ 1000 characters, echoed in every task notification (ParseNotification).

Example::

    sid = session_id(obj)                       # "mt1-" + 40 hex: the same object version, the same id
    ctx = session_context(obj, "videos")        # '{"v":1,"src":"s3","b":"media","k":"in/a.mp4","r":"videos"}'
    read_session_context(ctx)                   # {"v": 1, "src": "s3", "b": "media", "k": "in/a.mp4", ...}
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .safejson import JsonError, loads
from .uploads import UploadedObject
from .vod import VodFile

SESSION_ID_PREFIX = "mt1-"
_SESSION_ID = re.compile(r"^mt1-[0-9a-f]{40}$")
SESSION_CONTEXT_LIMIT = 1000


def session_id(obj: UploadedObject, generation: int = 0) -> str:
    """Deterministic MPS SessionId (44 characters) of an object version: storage, bucket, key, version, size, and
    the reprocess ``generation``.

    The version is the version id, else the ETag, else the uploading request's id (COS events without either),
    so a redelivered event yields the same id and MPS rejects the repeat (``InvalidParameterValue.SessionId``),
    while a new upload of the same key (new version, new content) yields a new one. ``generation`` 0 is the live
    path's (the id is unchanged from earlier releases); ``mps-triggers reprocess --generation N`` (N ≥ 1) adds
    ``"\\x1fg<N>"`` to the hashed material, so the same object and generation always give the same id and a
    reprocess is itself idempotent. Raises ValueError for a negative generation.
    """
    if generation < 0:
        raise ValueError(f"generation must be 0 or more, got {generation}")
    version = obj.version_id or obj.etag or obj.upload_id or ""
    parts = [obj.storage, obj.bucket, obj.key, version, "" if obj.size is None else str(obj.size)]
    if generation:
        parts.append(f"g{generation}")
    material = "\x1f".join(parts)
    return SESSION_ID_PREFIX + hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def is_session_id(value: Any) -> bool:
    """True for a SessionId of :func:`session_id`'s form (``mt1-`` + 40 hex): safe in an object key."""
    return isinstance(value, str) and _SESSION_ID.match(value) is not None


def session_context(obj: UploadedObject, route: str, sid: str | None = None, generation: int = 0) -> str:
    """Compact JSON (≤ 1000 UTF-8 bytes) naming the source object and route; MPS echoes it in every callback.

    Shape: ``{"v":1,"src":"s3","b":"bucket","k":"key","r":"route"}``, plus ``"s": sid`` when given (requests
    without a SessionId parameter, BatchProcessMedia, carry it here) and ``"g": generation`` for a reprocess
    (generation ≥ 1). A key too long to fit is cut, and
    ``"kh"`` (sha256 of the full key, 16 hex) plus ``"kt":1`` mark the cut so the archive can still match it.
    """
    doc: dict[str, Any] = {"v": 1, "src": obj.storage, "b": obj.bucket, "k": obj.key, "r": route}
    if sid:
        doc["s"] = sid
    if generation:
        doc["g"] = generation
    text = _compact(doc)
    if len(text.encode("utf-8")) <= SESSION_CONTEXT_LIMIT:
        return text
    doc["kh"] = hashlib.sha256(obj.key.encode("utf-8")).hexdigest()[:16]
    doc["kt"] = 1
    return _cut_to_fit(doc, "k", obj.key)


def vod_session_id(file: VodFile, generation: int = 0) -> str:
    """Deterministic SessionId (``mt1-`` + 40 hex) of a VOD file: its application (``SubAppId``) and ``FileId``,
    plus the reprocess ``generation`` as :func:`session_id`. A FileId names one upload for good, so NewFileUpload
    delivered again (push retried, a pulled event not confirmed in time) gives the same id, and VOD's
    ProcessMediaByProcedure (7 days) or MPS's ProcessMedia (3 days) refuses the repeat. Raises ValueError for a
    negative generation."""
    if generation < 0:
        raise ValueError(f"generation must be 0 or more, got {generation}")
    parts = ["vod", "" if file.sub_app_id is None else str(file.sub_app_id), file.file_id]
    if generation:
        parts.append(f"g{generation}")
    return SESSION_ID_PREFIX + hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:40]


def vod_session_context(file: VodFile, route: str, sid: str | None = None) -> str:
    """The SessionContext of a VOD file's request (≤ 1000 UTF-8 bytes), read back by :func:`read_session_context`:
    ``{"v":1,"src":"vod","b":"<SubAppId or ''>","k":"<FileId>","r":"<route>","n":"<file name, cut to fit>"}``,
    plus ``"s": sid`` for a request without a SessionId parameter (ProcessMediaByMPS)."""
    doc: dict[str, Any] = {"v": 1, "src": "vod", "b": "" if file.sub_app_id is None else str(file.sub_app_id),
                           "k": file.file_id[:128], "r": route}
    if sid:
        doc["s"] = sid
    return _cut_to_fit(doc, "n", file.name) if file.name else _compact(doc)


def _cut_to_fit(doc: dict[str, Any], field: str, value: str) -> str:
    """``doc`` with ``field`` set to ``value``, cut from the end until the compact JSON is at most
    :data:`SESSION_CONTEXT_LIMIT` UTF-8 bytes."""
    while True:  # each character takes at most 6 bytes of JSON, so cutting over // 6 always makes progress
        text = _compact({**doc, field: value})
        over = len(text.encode("utf-8")) - SESSION_CONTEXT_LIMIT
        if over <= 0:
            return text
        value = value[: len(value) - max(1, over // 6)]


def _compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def read_session_context(text: Any) -> dict[str, Any] | None:
    """Parse a SessionContext written by :func:`session_context`; None when absent, not a string or not ours."""
    if not isinstance(text, str) or not text or len(text) > 4 * SESSION_CONTEXT_LIMIT:
        return None
    try:
        doc = loads(text, max_depth=2)
    except JsonError:
        return None
    if not isinstance(doc, dict) or doc.get("v") != 1 or not {"src", "b", "k"} <= doc.keys():
        return None
    if not all(isinstance(doc[k], str) for k in ("src", "b", "k")):
        return None
    return doc
