"""The archive's lines and keys: one JSON line per notification (and per failed chat push), redacted, partitioned.

Callback line (UTF-8, no ASCII escaping except U+2028, U+2029, U+0085 and lone surrogates, ``\\n``-terminated)::

    {"id": "<sha256 hex of the canonical redacted payload without Timestamp and Sign>",
     "received_at": "2026-11-21T09:30:00.123Z",
     "source": {"type": "http" | "sqs" | "scf-mps-trigger", "id": "<request or message id>"},
     "event_type": "ScheduleTask", "task_id": "…", "status": "FINISH", "failed": false, "error": null,
     "session_id": "mt1-…", "object": {"storage": "s3", "bucket": "…", "key": "…", "route": "videos"},
     "outputs": ["/mps-output/a_transcode_100030.mp4"], "payload": {…the notification, redacted…}}

A ``BatchTask`` line (BatchProcessMedia) has ``inputs`` too (every input, URLs redacted); its ``task_id`` comes from
the object's claim (:mod:`mps_triggers.claims`), since the event carries none, and its ``session_id`` from our
SessionContext.

Push-failed line (a chat digest that could not be delivered; nothing is lost, the callbacks it covers are archived)::

    {"id": "…", "event_type": "push_failed", "failed_at": "…Z", "source": {…}, "format": "wecom",
     "webhook": "<sha256 of the URL, 12 hex>", "reason": "…", "attempts": 1,
     "covers": [{"id": "<line id>", "event_type", "task_id", "status", "failed", "key": "<archive object key>"}],
     "body": {…the request body that was to be sent…}}

Submission line (the submit job's ledger, and ``mps-triggers backfill``/``reprocess``): one per object the job
submitted, found duplicate or failed (skips are only logged), all of one invocation in one object under
``event_type=submissions``, partitioned by the time it was written::

    {"id": "…", "event_type": "submissions", "at": "2026-11-21T09:30:00.123Z", "origin": "submit",
     "source": {"type": "sqs", "id": "<messageId or Records[i]>"}, "result": "submitted" | "duplicate" | "failed",
     "object": {"storage": "s3", "bucket": "…", "key": "…", "route": "videos"}, "session_id": "mt1-…",
     "generation": 0, "api": "ProcessMedia", "task_id": "…" | null,
     "error": {"code": "ResourceNotFound.…", "message": "…"} | null}

``at`` is when the object was decided and its request sent; ``origin`` is ``submit`` (the function),
``s3-batch-operations``, ``backfill`` or ``reprocess``; ``generation`` is the reprocess generation the SessionId was
derived with (:func:`mps_triggers.session.session_id`); ``object`` is null for a record that could not be read at
all (its ``error`` names the field). SessionId joins a submission to its callbacks.

Keys: ``{prefix}event_type={partition}/dt=YYYY-MM-DD/hour=HH/{name}.jsonl`` (UTC, no colons), at most
``len(prefix) + 168`` bytes. ``partition`` is the EventType with every character outside ``[A-Za-z0-9_-]`` made
``_``, cut to 64 characters (a longer one keeps 51 and adds ``-`` and 12 hex of its hash), and never one of the
reserved names (``push_failed``, ``submissions``; a callback claiming one gets ``x-`` in front). Two EventTypes may
share a partition (``Foo.Bar``/``Foo_Bar``): every line carries its own ``event_type``, and a batch writes one object
per *key*, so no line replaces another.

An HTTP or MPS-trigger callback is one object named by its line ``id``; it is partitioned by the notification's
``Timestamp`` only when the callback's ``Sign`` was verified (else the sender would choose the partition), by its
arrival otherwise. An SQS batch is one object per key, named by the digest of the batch's message ids, lines in
arrival order. Readers drop repeated lines by ``id``.
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from .notifications import NormalizedCallback, normalize
from .redaction import name_cache, redact, redact_json, scrub
from .safejson import dumps, to_int

PUSH_FAILED = "push_failed"
SUBMISSIONS = "submissions"
RESERVED_PARTITIONS = frozenset({PUSH_FAILED, SUBMISSIONS})
MAX_PARTITION_CHARS = 64
_TYPE_SAFE = re.compile(r"[^A-Za-z0-9_-]")
_YEAR_2000, _YEAR_2100 = 946684800, 4102444800


SIGNING_FIELDS = ("Timestamp", "Sign")
"""Top-level notification fields a sender sets anew each time it signs (MPS retrying, ``mps-triggers replay``): left
out of a callback line's ``id``, so the same notification signed twice is one line for readers."""


def canonical(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8 (line-safe escapes): the bytes ``id`` hashes."""
    return dumps(value, sort_keys=True).encode("utf-8")


def line_id(payload: Any) -> str:
    """The stable ``id`` of a (redacted) payload: the same notification always gets the same id."""
    return hashlib.sha256(canonical(payload)).hexdigest()


@functools.lru_cache(maxsize=64)  # a batch's lines share their arrival time
def utc_iso(ts: float) -> str:
    """``2026-11-21T09:30:00.123Z`` for UNIX seconds ``ts``."""
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


@name_cache(1024)  # a handful of EventTypes, seen again and again
def partition_name(event_type: str) -> str:
    """The ``event_type=`` partition of a callback's EventType (see the module docstring)."""
    safe = _TYPE_SAFE.sub("_", event_type) or "unknown"
    if len(safe) > MAX_PARTITION_CHARS:
        digest = hashlib.sha256(event_type.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        safe = f"{safe[:MAX_PARTITION_CHARS - 13]}-{digest}"
    return f"x-{safe}" if safe in RESERVED_PARTITIONS else safe


@dataclass
class ArchiveLine:
    """One archived notification: ``id``, ``event_type``, ``partition``, the serialized line (bytes, ``\\n``
    included), what it says (``normalized``), and ``timestamp``: its verified ``Timestamp``, or None."""

    id: str
    event_type: str
    partition: str
    data: bytes
    normalized: NormalizedCallback
    timestamp: int | None = None


def build_line(payload: dict[str, Any], source_type: str, source_id: str | None, received_at: float,
               verified: bool = False, task_id_of: Callable[[str], str | None] | None = None,
               unsigned: tuple[str, ...] = SIGNING_FIELDS) -> ArchiveLine:
    """Redact ``payload`` (a notification), read its fields and serialize its archive line. ``received_at`` is
    UNIX seconds; ``verified`` says its ``Sign`` was checked (only then does its ``Timestamp`` partition it). The
    ``id`` hashes the canonical redacted payload without ``unsigned`` (:data:`SIGNING_FIELDS`; a VOD event's
    are ``T`` and ``Sign``, :data:`mps_triggers.vod.SIGNING_FIELDS`).
    ``task_id_of(session_id)`` finds the TaskId of a notification that carries none (``BatchTask``: the claim);
    it must not raise. A ``BatchTask`` line also has ``inputs``, every input of the batch.

    Raises :class:`~mps_triggers.safejson.JsonError` (a ``ValueError``) for a payload nested deeper than 64 levels,
    ``ValueError`` for a value JSON cannot carry. Never raises for an odd but JSON-shaped notification.
    """
    red = redact_json(payload)  # serialized once: hashed for the id and embedded in the line
    clean, payload_text = red.value, red.text
    normalized = normalize(clean)
    if normalized.task_id is None and normalized.session_id and task_id_of is not None \
            and normalized.event_type == "BatchTask":
        normalized.task_id = task_id_of(normalized.session_id)
    lid = hashlib.sha256(red.text_without(unsigned).encode("utf-8")).hexdigest()
    doc = {
        "id": lid,
        "received_at": utc_iso(received_at),
        "source": {"type": source_type, "id": source_id},
        "event_type": normalized.event_type,
        "task_id": normalized.task_id,
        "status": normalized.status,
        "failed": normalized.failed,
        "error": normalized.error,
        "session_id": normalized.session_id,
        "object": normalized.source_object,
        "outputs": normalized.outputs,
    }
    if normalized.inputs is not None:
        doc["inputs"] = normalized.inputs
    if normalized.parse_error:
        doc["parse_error"] = normalized.parse_error
    head = dumps(doc)
    data = f'{head[:-1]},"payload":{payload_text}}}\n'.encode("utf-8")
    return ArchiveLine(lid, normalized.event_type, partition_name(normalized.event_type), data, normalized,
                       _plausible_time(clean) if verified else None)


def callback_id(payload: Any, unsigned: tuple[str, ...] = SIGNING_FIELDS) -> str:
    """The ``id`` :func:`build_line` gives the line of notification ``payload`` (readers and harnesses use it)."""
    return hashlib.sha256(redact_json(payload).text_without(unsigned).encode("utf-8")).hexdigest()


def _plausible_time(payload: Any) -> int | None:
    """The notification's ``Timestamp`` when it is a UNIX time between 2000 and 2100, else None."""
    ts = to_int(payload.get("Timestamp"), max_digits=12) if isinstance(payload, dict) else None
    return ts if ts is not None and _YEAR_2000 <= ts <= _YEAR_2100 else None


def object_key(prefix: str, partition: str, when: float, name: str) -> str:
    """``{prefix}event_type={partition}/dt=YYYY-MM-DD/hour=HH/{name}.jsonl`` (``prefix`` is '' or ends with '/')."""
    d = datetime.fromtimestamp(when, tz=timezone.utc)
    return f"{prefix}event_type={partition}/dt={d:%Y-%m-%d}/hour={d:%H}/{name}.jsonl"


_KEY = re.compile(r"(?:^|/)event_type=([A-Za-z0-9_-]{1,66})/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/"
                  r"([A-Za-z0-9_-][A-Za-z0-9_.-]{0,127})\.jsonl(\.gz)?$")
COMPACTED = "compacted-"
"""Name prefix of a compacted object (:mod:`mps_triggers.compact`): ``compacted-<32 hex>.jsonl.gz``."""


@dataclass(frozen=True)
class ArchiveKey:
    """What an archive object's key says: ``partition`` (the ``event_type=`` value), ``day`` (``YYYY-MM-DD``),
    ``hour`` (``HH``), ``name`` and ``compressed`` (``.jsonl.gz``: gzip, a compacted object)."""

    key: str
    partition: str
    day: str
    hour: str
    name: str
    compressed: bool

    @property
    def start(self) -> datetime:
        """The partition hour's first instant (UTC)."""
        return datetime.strptime(f"{self.day}T{self.hour}", "%Y-%m-%dT%H").replace(tzinfo=timezone.utc)

    @property
    def relative(self) -> str:
        """The key below the archive prefix: ``event_type=…/dt=…/hour=…/name.jsonl[.gz]``."""
        return (f"event_type={self.partition}/dt={self.day}/hour={self.hour}/{self.name}.jsonl"
                f"{'.gz' if self.compressed else ''}")


def parse_key(key: str, prefix: str = "") -> ArchiveKey | None:
    """The :class:`ArchiveKey` of an object under ``prefix``, or None for any key that is not an archive object
    of this layout (another file, a ``..`` or a path separator inside a part, a day or hour that is no date).
    Readers rely on it to keep a key from naming anything outside its partition folder."""
    if not key.startswith(prefix):
        return None
    m = _KEY.fullmatch(key[len(prefix):])
    if not m or not 0 <= int(m.group(3)) <= 23:
        return None
    try:
        datetime.strptime(m.group(2), "%Y-%m-%d")
    except ValueError:
        return None
    return ArchiveKey(key, m.group(1), m.group(2), m.group(3), m.group(4), bool(m.group(5)))


def object_lines(data: bytes, compressed: bool) -> list[bytes]:
    """The lines of an archive object's content (gunzipped when ``compressed``), each without its ``\\n``; empty
    lines left out. Raises ``OSError``/``EOFError`` for a compressed object that is not whole gzip."""
    if compressed:
        import gzip

        data = gzip.decompress(data)
    return [ln for ln in data.split(b"\n") if ln.strip()]


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
    return ArchiveObject(object_key(prefix, line.partition, when, line.id), line.data, [(record_id, line)])


def batch_objects(prefix: str, lines: list[tuple[str, ArchiveLine]], message_ids: list[str],
                  received_at: float) -> list[ArchiveObject]:
    """Objects of one SQS batch: one per object key (partition), lines in arrival order. ``lines`` are
    ``(record id, line)``. Grouping by the key itself means two event types that share a partition share its
    object, so no PUT of the batch replaces another."""
    name = batch_name(message_ids)
    groups: dict[str, ArchiveObject] = {}
    keys: dict[str, str] = {}  # partition → key: one key per partition, computed once
    for record_id, line in lines:
        key = keys.get(line.partition)
        if key is None:
            key = keys[line.partition] = object_key(prefix, line.partition, received_at, name)
        obj = groups.get(key)
        if obj is None:
            obj = groups[key] = ArchiveObject(key, b"")
        obj.entries.append((record_id, line))
    for obj in groups.values():
        obj.data = b"".join(line.data for _, line in obj.entries)
    return list(groups.values())


def push_failed_object(prefix: str, *, covers: list[dict[str, Any]], body: Any, fmt: str, webhook: str,
                       reason: str, attempts: int, source_type: str, source_id: str | None,
                       failed_at: float) -> ArchiveObject:
    """The record of a chat digest that was not delivered (see the module docstring), as one object under
    ``event_type=push_failed``, named by its id (the covered line ids and the format), partitioned by
    ``failed_at``. ``covers`` lists ``{"id", "event_type", "task_id", "status", "failed", "key"}`` per line."""
    lid = hashlib.sha256(canonical({"covers": sorted(c["id"] for c in covers), "format": fmt,
                                    "webhook": webhook})).hexdigest()
    doc = {"id": lid, "event_type": PUSH_FAILED, "failed_at": utc_iso(failed_at),
           "source": {"type": source_type, "id": source_id}, "format": fmt, "webhook": webhook,
           "reason": reason, "attempts": attempts, "covers": covers, "body": redact(body)}
    return ArchiveObject(object_key(prefix, PUSH_FAILED, failed_at, lid), (dumps(doc) + "\n").encode("utf-8"))


def submission_line(*, result: str, obj: dict[str, Any] | None, session_id: str | None, task_id: str | None,
                    error_code: str | None, error_message: str | None, at: float, origin: str, source_type: str,
                    source_id: str | None, api: str = "ProcessMedia", generation: int = 0) -> bytes:
    """One ledger line (see the module docstring) as UTF-8 bytes ending in ``\\n``. ``obj`` is
    ``{"storage", "bucket", "key", "route"}`` or None; ``at`` is UNIX seconds; the error message is scrubbed of
    secrets and cut to 1,000 characters. The ``id`` hashes everything else, so the same line written twice (a
    retried write) is dropped by readers, while a later attempt of the same object is a line of its own."""
    doc: dict[str, Any] = {
        "event_type": SUBMISSIONS, "at": utc_iso(at), "origin": origin,
        "source": {"type": source_type, "id": source_id}, "result": result, "object": obj,
        "session_id": session_id, "generation": generation, "api": api, "task_id": task_id,
        "error": None if error_code is None and error_message is None
        else {"code": error_code, "message": scrub(error_message or "")[:1000]},
    }
    return (dumps({"id": line_id(doc), **doc}) + "\n").encode("utf-8")


def ledger_object(prefix: str, lines: list[bytes], written_at: float) -> ArchiveObject:
    """The object holding one invocation's (or one backfill flush's) ledger lines: under
    ``event_type=submissions``, partitioned by ``written_at``, named by the digest of its content (a rewrite of the
    same lines replaces the same object)."""
    data = b"".join(lines)
    name = hashlib.sha256(data).hexdigest()[:32]
    return ArchiveObject(object_key(prefix, SUBMISSIONS, written_at, name), data)
