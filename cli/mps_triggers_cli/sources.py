"""Where a backfill's (or a reprocess's) objects come from: a bucket prefix, an inventory manifest, or a list of keys.

SOURCE forms (:func:`open_source`):

- ``s3://bucket/prefix``: ``ListObjectsV2``, or ``ListObjectVersions`` (latest versions) in a versioned bucket, so
  the SessionId names the version exactly as the live S3 event does; the bucket's region from
  ``GetBucketLocation``.
- ``cos://bucket-appid/prefix`` (region from ``--region``, ``COS_REGION`` or ``ARCHIVE_REGION``) or
  ``cos://bucket-appid.cos.<region>.myqcloud.com/prefix``: COS ``GET Bucket`` (1,000 keys a page).
- an inventory ``manifest.json``, as ``s3://…/manifest.json``, ``cos://…/manifest.json`` or a local path: S3
  Inventory (S3 user guide "Amazon S3 Inventory": ``fileFormat`` CSV, ``fileSchema``, ``files[].key``; data files
  gzip CSV in the destination bucket) or COS inventory (COS "Inventory overview" 436/33702: the same fields; CSV keys
  URL-encoded). Rows that are delete markers or not the latest version are left out.
- a file of keys, or ``-`` for stdin: one per line, as ``s3://bucket/key``, ``cos://bucket-appid/key``, a JSON line
  with ``storage``, ``bucket`` and ``key`` (what ``backfill --report`` writes), or a bare key with ``--bucket``.
  Each object is read with HEAD for its size, ETag and version id (the SessionId's material); a missing one is a
  failed item, not a failed run.

Every source yields :class:`Item` with a ``cursor`` (JSON-able) such that :meth:`Source.items` resumed from it
continues after that item: a listing's last key, a manifest's ``[file, row]``, a key file's line number.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import unquote_plus

from mps_triggers.storage import Listed
from mps_triggers.uploads import UploadedObject

from .common import UsageError

_URI = re.compile(r"^(s3|cos)://([^/]+)(?:/(.*))?$", re.DOTALL)
_COS_DOMAIN = re.compile(r"^([a-z0-9-]+-\d+)\.cos\.([a-z0-9-]+)\.myqcloud\.com$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_COS_BUCKET = re.compile(r"^[a-z0-9-]+-\d+$")


@dataclass(frozen=True)
class Place:
    """A bucket (and key or prefix) named by a URI: ``storage`` s3|cos, ``bucket``, ``path``, COS ``region``."""

    storage: str
    bucket: str
    path: str
    region: str | None = None


def parse_uri(uri: str, what: str = "SOURCE") -> Place:
    """``s3://bucket/path`` or ``cos://bucket-appid[.cos.<region>.myqcloud.com]/path`` → :class:`Place`. Raises
    :class:`UsageError` naming ``what`` for anything else."""
    m = _URI.match(uri)
    if not m:
        raise UsageError(what, f"{uri!r}: expected s3://bucket/prefix, cos://bucket-appid/prefix, a manifest.json "
                               f"or a file of keys")
    storage, host, path = m.group(1), m.group(2), m.group(3) or ""
    region = None
    if storage == "cos":
        d = _COS_DOMAIN.match(host)
        if d:
            host, region = d.group(1), d.group(2)
        if not _COS_BUCKET.match(host):
            raise UsageError(what, f"COS bucket {host!r} must be name-appid, e.g. media-1250000000")
    elif not _S3_BUCKET.match(host):
        raise UsageError(what, f"{host!r} is not an S3 bucket name")
    return Place(storage, host, path, region)


@dataclass(frozen=True)
class Item:
    """One listed object (``obj``), or a key that could not be read (``error``), and the cursor after it."""

    cursor: Any
    obj: UploadedObject | None = None
    error: str | None = None
    storage: str = ""
    bucket: str = ""
    key: str = ""


class Stores:
    """Opens S3 and COS buckets for the command (S3 with the standard AWS chain and ``AWS_ENDPOINT_URL``; COS with
    the MPS key of the settings and ``COS_ENDPOINT_URL``), one per bucket."""

    def __init__(self, settings: Any, cos_region: str | None) -> None:
        self.settings, self.cos_region = settings, cos_region
        self._open: dict[tuple[str, str], Any] = {}
        self._regions: dict[tuple[str, str], str] = {}

    def get(self, storage: str, bucket: str, region: str | None = None) -> Any:
        key = (storage, bucket)
        if key not in self._open:
            if storage == "s3":
                from mps_triggers.storage import S3Store
                self._open[key] = S3Store(bucket)
            else:
                from mps_triggers.secrets import mps_credentials
                from mps_triggers.storage import CosStore
                region = region or self.cos_region
                if not region:
                    raise UsageError("--region", f"cos://{bucket}: say the bucket's region (--region ap-guangzhou, "
                                                 f"COS_REGION, or the cos://{bucket}.cos.<region>.myqcloud.com form)")
                creds = mps_credentials(self.settings)
                self._open[key] = CosStore(bucket, region, creds.secret_id, creds.secret_key, creds.token,
                                           os.environ.get("COS_ENDPOINT_URL"))
                self._regions[key] = region
        return self._open[key]

    def region(self, storage: str, bucket: str) -> str:
        """The bucket's region: S3 GetBucketLocation (asked once), COS the region it was opened with."""
        key = (storage, bucket)
        if key not in self._regions:
            store = self.get(storage, bucket)
            self._regions[key] = store.region() if storage == "s3" else (self.cos_region or "")
        return self._regions[key]


def uploaded(storage: str, bucket: str, region: str, listed: Listed) -> UploadedObject:
    """The :class:`UploadedObject` the live event of this object would have given (same SessionId material)."""
    return UploadedObject(storage=storage, bucket=bucket, region=region, key=listed.key, size=listed.size,  # type: ignore[arg-type]
                          etag=listed.etag, version_id=listed.version_id, event_name="backfill")


class Source:
    """A backfill source (see the module docstring). :meth:`items` yields :class:`Item` from ``cursor`` on."""

    description: str

    def items(self, cursor: Any = None) -> Iterator[Item]:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def resumable(self) -> bool:
        return True


class PrefixSource(Source):
    """Every object under a bucket prefix."""

    def __init__(self, place: Place, stores: Stores) -> None:
        self.place, self.stores = place, stores
        self.description = f"{place.storage}://{place.bucket}/{place.path}"

    def items(self, cursor: Any = None) -> Iterator[Item]:
        p = self.place
        store = self.stores.get(p.storage, p.bucket, p.region)
        region = self.stores.region(p.storage, p.bucket)
        for listed in store.list(p.path, start_after=cursor, versions=store.versioned()):
            yield Item(listed.key, uploaded(p.storage, p.bucket, region, listed))


class ManifestSource(Source):
    """The objects of an S3 or COS inventory (``manifest.json``)."""

    def __init__(self, spec: str, stores: Stores) -> None:
        self.stores, self.description = stores, spec
        if spec.startswith(("s3://", "cos://")):
            place = parse_uri(spec)
            raw = stores.get(place.storage, place.bucket, place.region).get(place.path)
            if raw is None:
                raise UsageError("SOURCE", f"{spec}: no such manifest")
            self.data_storage, self.data_bucket, self.data_region = place.storage, place.bucket, place.region
        else:
            try:
                with open(spec, "rb") as f:
                    raw = f.read()
            except OSError as exc:
                raise UsageError("SOURCE", f"{spec}: {exc.strerror}") from None
            self.data_storage, self.data_bucket, self.data_region = "", "", None
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise UsageError("SOURCE", f"{spec}: not an inventory manifest (not JSON: {exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("files"), list) or "fileSchema" not in doc:
            raise UsageError("SOURCE", f"{spec}: not an inventory manifest (needs fileSchema and files[])")
        if str(doc.get("fileFormat", "CSV")).upper() != "CSV":
            raise UsageError("SOURCE", f"{spec}: fileFormat {doc.get('fileFormat')!r}; only CSV inventories are read")
        self.schema = [c.strip() for c in str(doc["fileSchema"]).split(",")]
        if "Key" not in self.schema:
            raise UsageError("SOURCE", f"{spec}: fileSchema has no Key column")
        self.files = [f["key"] for f in doc["files"] if isinstance(f, dict) and isinstance(f.get("key"), str)]
        destination = str(doc.get("destinationBucket") or "")
        self.storage = "cos" if "AppID" in self.schema or destination.startswith("qcs:") or \
            self.data_storage == "cos" else "s3"
        if not self.data_bucket:  # a local manifest: the data files are in its destination bucket
            self.data_storage = self.storage
            self.data_bucket = destination.rsplit(":", 1)[-1].strip("/") if destination else ""
            if not self.data_bucket:
                raise UsageError("SOURCE", f"{spec}: no destinationBucket to read the inventory files from")
        self.source_bucket = str(doc.get("sourceBucket") or "")

    def items(self, cursor: Any = None) -> Iterator[Item]:
        start_file, start_row = cursor if isinstance(cursor, list) and len(cursor) == 2 else (0, -1)
        store = self.stores.get(self.data_storage, self.data_bucket, self.data_region)
        for index in range(start_file, len(self.files)):
            raw = store.get(self.files[index])
            if raw is None:
                raise UsageError("SOURCE", f"inventory file {self.files[index]} is missing from "
                                           f"{self.data_storage}://{self.data_bucket}")
            if self.files[index].endswith(".gz"):
                raw = gzip.decompress(raw)
            reader = csv.reader(io.StringIO(raw.decode("utf-8")))
            for row_number, row in enumerate(reader):
                if index == start_file and row_number <= start_row:
                    continue
                fields = dict(zip(self.schema, row))
                if fields.get("IsDeleteMarker", "").lower() == "true" or fields.get("IsLatest", "true").lower() == "false":
                    continue
                bucket = fields.get("Bucket") or self.source_bucket
                key = unquote_plus(fields.get("Key", ""))
                listed = Listed.of(key, fields.get("Size"), fields.get("ETag"), fields.get("VersionId"))
                region = self.stores.region(self.storage, bucket) if self.storage == "s3" else \
                    (self.stores.cos_region or self.data_region or "")
                yield Item([index, row_number], uploaded(self.storage, bucket, region, listed))


class KeysSource(Source):
    """Objects named one per line in a file or on stdin (see the module docstring), each read with HEAD."""

    def __init__(self, path: str, stores: Stores, bucket: str | None = None, lines: list[str] | None = None) -> None:
        self.path, self.stores, self.given = path, stores, lines
        self.default = parse_uri(bucket, "--bucket") if bucket else None
        self.description = "stdin" if path == "-" else " ".join(lines)[:200] if lines is not None else path
        if lines is None and path != "-" and not os.path.isfile(path):
            raise UsageError("SOURCE", f"{path}: no such file")

    @property
    def resumable(self) -> bool:
        return self.given is not None or self.path != "-"

    def _lines(self) -> Iterator[str]:
        if self.given is not None:
            yield from self.given
        elif self.path == "-":
            yield from sys.stdin
        else:
            with open(self.path, encoding="utf-8") as f:
                yield from f

    def items(self, cursor: Any = None) -> Iterator[Item]:
        start = cursor if isinstance(cursor, int) else -1
        for number, line in enumerate(self._lines()):
            if number <= start:
                continue
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            storage, bucket, key = self.parse_line(line, number + 1)
            yield self.head(number, storage, bucket, key)

    def parse_line(self, line: str, number: int) -> tuple[str, str, str]:
        """``(storage, bucket, key)`` of one line. Raises :class:`UsageError` naming the line."""
        where = f"{self.description} line {number}"
        if line.lstrip().startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise UsageError(where, f"not a JSON line ({exc})") from None
            if not all(isinstance(doc.get(k), str) and doc.get(k) for k in ("storage", "bucket", "key")):
                raise UsageError(where, "a JSON line needs string fields storage, bucket and key")
            return doc["storage"], doc["bucket"], doc["key"]
        if line.startswith(("s3://", "cos://")):
            place = parse_uri(line, where)
            if not place.path:
                raise UsageError(where, f"{line!r} names a bucket, not an object")
            return place.storage, place.bucket, place.path
        if self.default is None:
            raise UsageError(where, f"a bare key ({line[:80]!r}) needs --bucket s3://bucket or cos://bucket-appid")
        return self.default.storage, self.default.bucket, self.default.path + line

    def head(self, number: int, storage: str, bucket: str, key: str) -> Item:
        store = self.stores.get(storage, bucket, self.default.region if self.default else None)
        try:
            listed = store.head(key)
        except Exception as exc:  # StorageError: this object fails, the run goes on
            return Item(number, error=f"HEAD failed: {exc}", storage=storage, bucket=bucket, key=key)
        if listed is None:
            return Item(number, error="no such object", storage=storage, bucket=bucket, key=key)
        return Item(number, uploaded(storage, bucket, self.stores.region(storage, bucket), listed))


class PrefixesSource(Source):
    """Several sources one after another (``reprocess`` with keys and prefixes): cursor ``[part, inner]``."""

    def __init__(self, parts: list[Source]) -> None:
        self.parts = parts
        self.description = ", ".join(p.description for p in parts)

    @property
    def resumable(self) -> bool:
        return all(p.resumable for p in self.parts)

    def items(self, cursor: Any = None) -> Iterator[Item]:
        start, inner = cursor if isinstance(cursor, list) and len(cursor) == 2 else (0, None)
        for index in range(start, len(self.parts)):
            for item in self.parts[index].items(inner if index == start else None):
                yield Item([index, item.cursor], item.obj, item.error, item.storage, item.bucket, item.key)


def open_source(spec: str, stores: Stores, bucket: str | None = None) -> Source:
    """The :class:`Source` SOURCE names (module docstring). Raises :class:`UsageError` for an unknown scheme, a
    manifest that is not one, or a missing file."""
    if spec == "-":
        return KeysSource(spec, stores, bucket)
    if spec.startswith(("s3://", "cos://")):
        place = parse_uri(spec)
        if place.path.endswith("manifest.json"):
            return ManifestSource(spec, stores)
        return PrefixSource(place, stores)
    if "://" in spec:
        raise UsageError("SOURCE", f"{spec!r}: unknown scheme (expected s3://, cos://, a manifest.json, a file of "
                                   f"keys or -)")
    if spec.endswith("manifest.json"):
        return ManifestSource(spec, stores)
    return KeysSource(spec, stores, bucket)
