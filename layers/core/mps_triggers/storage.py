"""Object stores for the archive: S3 (boto3) and COS (cos-python-sdk-v5), chosen from ``ARCHIVE_URI``.

Both SDKs are imported only when their store is created, so an SCF build needs no boto3 and a Lambda build needs
no COS SDK unless configured. Clients are created once per container (:func:`open_store` caches).

Local endpoints: boto3 honours the standard ``AWS_ENDPOINT_URL``; ``COS_ENDPOINT_URL`` (``http://127.0.0.1:PORT``)
points the COS client at a local server while keeping the real virtual-host ``Host`` header (CosConfig ``IP``/
``Port``/``Scheme``), which is how the local stack serves COS buckets from moto.

Every SDK failure surfaces as :class:`StorageError` (translated in each backend's methods).

Listing (``list``: paginated, 1,000 keys a page, in key order, resumable after any key; ``head``) serves the
operator command (``mps-triggers backfill`` and the archive readers): S3 ``ListObjectsV2`` or, in a versioned
bucket, ``ListObjectVersions`` (the latest version of each key, so a backfill derives the SessionId the live event
would have, which names the version); COS ``GET Bucket`` with ``marker``.

Besides ``put`` (overwrite), each store has ``get`` (None when the key does not exist) and ``create`` (write only if
the key does not exist; False when it does), the conditional PUT that claims (:mod:`mps_triggers.claims`) are made
of: S3 ``If-None-Match: *`` (S3 user guide "Conditional writes": 412 PreconditionFailed when the key exists, 409
ConditionalRequestConflict while another conditional write of it is in flight) and COS
``x-cos-forbid-overwrite: true`` (COS API "PUT Object": 409 FileAlreadyExists; it has no effect in a bucket whose
versioning was ever enabled, so ``create`` refuses such a bucket).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Protocol
from urllib.parse import urlparse

from .exceptions import MpsTriggersError
from .redaction import scrub

CONTENT_TYPE = "application/x-ndjson; charset=utf-8"
CLAIM_CONTENT_TYPE = "application/json"


class StorageError(MpsTriggersError):
    """Writing an archive object failed (the record is not acknowledged; the platform delivers it again)."""


@dataclass(frozen=True)
class Listed:
    """One object of a listing or a HEAD: ``key``, ``size`` in bytes, ``etag`` (quotes stripped), ``version_id``
    (None when the bucket is not versioned, or for S3's ``"null"`` version)."""

    key: str
    size: int | None
    etag: str | None
    version_id: str | None = None

    @classmethod
    def of(cls, key: str, size: Any, etag: Any, version_id: Any = None) -> "Listed":
        """From an SDK's or an inventory's values: size as a number or digits, ETag with or without its quotes,
        ``"null"`` or ``""`` (S3's and COS's "no version") as no version."""
        vid = str(version_id) if version_id not in (None, "", "null") else None
        return cls(key, _int(size), str(etag).strip('"') or None if etag else None, vid)


class ObjectStore(Protocol):
    """Where archive objects go. ``put`` writes ``data`` under ``key`` (overwriting) or raises StorageError."""

    bucket: str

    def put(self, key: str, data: bytes) -> None: ...


class ConditionalStore(ObjectStore, Protocol):
    """A store that can also read an object and create one only if its key is free (claims)."""

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when ``key`` does not exist. Raises StorageError."""

    def create(self, key: str, data: bytes) -> bool:
        """Write ``data`` under ``key`` only if no object has that key: True when written, False when the key
        exists (or another conditional write of it is in flight). Raises StorageError."""


class S3Store:
    """An S3 bucket through boto3 (the Lambda runtime's). ``region`` None lets boto3 decide (AWS_REGION)."""

    def __init__(self, bucket: str, region: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self._conditional: tuple[Any, dict[str, str]] | None = None
        self._client = boto3.client("s3", region_name=region,
                                    config=Config(retries={"mode": "standard", "max_attempts": 3},
                                                  connect_timeout=5, read_timeout=20))

    def put(self, key: str, data: bytes, content_type: str = CONTENT_TYPE) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except Exception as exc:  # botocore ClientError, EndpointConnectionError, ...: one place to translate
            raise self._error(key, exc) from None

    def prefixes(self, prefix: str) -> list[str]:
        """The folders one level below ``prefix`` (ListObjectsV2 with ``Delimiter`` ``/``: CommonPrefixes), each
        ending in ``/``. Raises StorageError."""
        out: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix,
                                                                              Delimiter="/"):
                out.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        except Exception as exc:
            raise self._error(prefix, exc) from None
        return out

    def delete(self, keys: list[str]) -> None:
        """Delete ``keys`` (DeleteObjects, quiet, 1,000 a request; a key already gone is not an error). Raises
        StorageError naming the first key S3 refused."""
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            try:
                answer = self._client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in chunk], "Quiet": True})
            except Exception as exc:
                raise self._error(chunk[0], exc) from None
            refused = answer.get("Errors") or []
            if refused:
                first = refused[0]
                raise StorageError(f"s3://{self.bucket}/{first.get('Key')}: delete refused: {first.get('Code')} "
                                   f"({len(refused)} keys refused)")

    def get(self, key: str) -> bytes | None:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _s3_code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._error(key, exc) from None

    def create(self, key: str, data: bytes) -> bool:
        client, params = self._creator()
        try:
            client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=CLAIM_CONTENT_TYPE, **params)
        except Exception as exc:
            if _s3_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise self._error(key, exc) from None
        return True

    def versioned(self) -> bool:
        """True when the bucket's versioning is Enabled or Suspended (its objects may have version ids)."""
        try:
            status = self._client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except Exception as exc:
            raise self._error("?versioning", exc) from None
        return status in ("Enabled", "Suspended")

    def list(self, prefix: str = "", start_after: str | None = None, versions: bool = False) -> Iterator[Listed]:
        """Every object under ``prefix`` after key ``start_after``, in key order (``versions``: the latest version
        of each key, delete markers left out). Raises StorageError."""
        try:
            if not versions:
                params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
                if start_after:
                    params["StartAfter"] = start_after
                for page in self._client.get_paginator("list_objects_v2").paginate(**params):
                    for o in page.get("Contents", []):
                        yield Listed.of(o["Key"], o.get("Size"), o.get("ETag"))
                return
            params = {"Bucket": self.bucket, "Prefix": prefix}
            if start_after:
                params["KeyMarker"] = start_after
            for page in self._client.get_paginator("list_object_versions").paginate(**params):
                for o in page.get("Versions", []):
                    if o.get("IsLatest"):
                        yield Listed.of(o["Key"], o.get("Size"), o.get("ETag"), o.get("VersionId"))
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(prefix, exc) from None

    def head(self, key: str) -> Listed | None:
        """The object's size, ETag and version id, or None when it does not exist. Raises StorageError."""
        try:
            h = self._client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _s3_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._error(key, exc) from None
        return Listed.of(key, h.get("ContentLength"), h.get("ETag"), h.get("VersionId"))

    def region(self) -> str:
        """The bucket's region (GetBucketLocation; ``us-east-1`` when S3 says none)."""
        try:
            return self._client.get_bucket_location(Bucket=self.bucket).get("LocationConstraint") or "us-east-1"
        except Exception as exc:
            raise self._error("?location", exc) from None

    def _creator(self) -> tuple[Any, dict[str, str]]:
        """The client and parameters of a conditional create: ``IfNoneMatch="*"`` where this botocore knows the
        parameter (1.35 on); with an older boto3 (a Lambda runtime's), a second client whose every PutObject gets the
        ``If-None-Match: *`` header from an event hook."""
        if self._conditional is None:
            members = self._client.meta.service_model.operation_model("PutObject").input_shape.members
            if "IfNoneMatch" in members:
                self._conditional = (self._client, {"IfNoneMatch": "*"})
            else:
                import boto3

                creator = boto3.client("s3", region_name=self._client.meta.region_name, config=self._client.meta.config)
                creator.meta.events.register("before-sign.s3.PutObject", _add_if_none_match)
                self._conditional = (creator, {})
        return self._conditional

    def _error(self, key: str, exc: Exception) -> StorageError:
        return StorageError(f"s3://{self.bucket}/{key}: {type(exc).__name__}: {scrub(str(exc))[:300]}")


class CosStore:
    """A COS bucket (``name-appid``) through cos-python-sdk-v5, with the Tencent Cloud key (token optional)."""

    def __init__(self, bucket: str, region: str, secret_id: str, secret_key: str, token: str | None = None,
                 endpoint_url: str | None = None) -> None:
        from qcloud_cos import CosConfig, CosS3Client

        self.bucket = bucket
        self._versioning: str | None = None
        kwargs: dict = {"Region": region, "SecretId": secret_id, "SecretKey": secret_key, "Token": token,
                        "Scheme": "https", "Timeout": 20}
        if endpoint_url:
            u = urlparse(endpoint_url)
            kwargs.update(Scheme=u.scheme or "http", IP=u.hostname, Port=u.port or (443 if u.scheme == "https" else 80))
        self._client = CosS3Client(CosConfig(**kwargs), retry=2)

    def put(self, key: str, data: bytes, content_type: str = CONTENT_TYPE) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except Exception as exc:  # CosServiceError, CosClientError, requests errors: one place to translate
            raise self._error(key, exc) from None

    def prefixes(self, prefix: str) -> list[str]:
        """The folders one level below ``prefix`` (COS ``GET Bucket`` with ``delimiter`` ``/``: CommonPrefixes),
        each ending in ``/``. Raises StorageError."""
        out: list[str] = []
        marker = ""
        try:
            while True:
                page = self._client.list_objects(Bucket=self.bucket, Prefix=prefix, Delimiter="/", Marker=marker,
                                                 MaxKeys=1000)
                out.extend(p["Prefix"] for p in _as_list(page.get("CommonPrefixes")))
                marker = page.get("NextMarker") or ""
                if str(page.get("IsTruncated")).lower() != "true" or not marker:
                    return out
        except Exception as exc:
            raise self._error(prefix, exc) from None

    def delete(self, keys: list[str]) -> None:
        """Delete ``keys``, one ``DELETE Object`` each (8 at a time; a key already gone is not an error): a role
        then needs ``cos:DeleteObject`` on the keys' prefix only, where ``DELETE Multiple Objects`` would need a
        permission on the bucket. Raises StorageError naming the first key COS refused."""
        import concurrent.futures as cf

        def one(key: str) -> None:
            try:
                self._client.delete_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if _cos_code(exc) != "NoSuchKey" and _cos_status(exc) != 404:
                    raise self._error(key, exc) from None

        with cf.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, keys))

    def get(self, key: str) -> bytes | None:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].get_raw_stream().read()
        except Exception as exc:
            if _cos_code(exc) == "NoSuchKey" or _cos_status(exc) == 404:
                return None
            raise self._error(key, exc) from None

    def create(self, key: str, data: bytes) -> bool:
        self._check_unversioned()
        try:
            # The SDK has no parameter for this header; ``Metadata`` entries are sent as headers as named.
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=CLAIM_CONTENT_TYPE,
                                    Metadata={"x-cos-forbid-overwrite": "true"})
        except Exception as exc:
            if _cos_code(exc) == "FileAlreadyExists" or _cos_status(exc) == 409:
                return False
            raise self._error(key, exc) from None
        return True

    def list(self, prefix: str = "", start_after: str | None = None, versions: bool = False) -> Iterator[Listed]:
        """Every object under ``prefix`` after key ``start_after``, in key order (COS ``GET Bucket``, 1,000 a page
        with ``marker``; ``versions``: ``GET Bucket versions``, the latest of each key). Raises StorageError."""
        marker = start_after or ""
        try:
            while True:
                if versions:
                    page = self._client.list_objects_versions(Bucket=self.bucket, Prefix=prefix, KeyMarker=marker,
                                                              MaxKeys=1000)
                    items = [o for o in _as_list(page.get("Version")) if str(o.get("IsLatest")).lower() == "true"]
                else:
                    page = self._client.list_objects(Bucket=self.bucket, Prefix=prefix, Marker=marker, MaxKeys=1000)
                    items = _as_list(page.get("Contents"))
                for o in items:
                    yield Listed.of(o["Key"], o.get("Size"), o.get("ETag"), o.get("VersionId") if versions else None)
                if str(page.get("IsTruncated")).lower() != "true":
                    return
                marker = (page.get("NextKeyMarker") if versions else page.get("NextMarker")) or \
                    (items[-1]["Key"] if items else "")
                if not marker:
                    return
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(prefix, exc) from None

    def head(self, key: str) -> Listed | None:
        """The object's size, ETag and version id, or None when it does not exist. Raises StorageError."""
        try:
            h = self._client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _cos_code(exc) in ("NoSuchKey", "NoSuchResource") or _cos_status(exc) == 404:
                return None
            raise self._error(key, exc) from None
        return Listed.of(key, h.get("Content-Length"), h.get("ETag"), h.get("x-cos-version-id"))

    def versioned(self) -> bool:
        """True when the bucket's versioning is Enabled or Suspended."""
        self._versioning_status()
        return self._versioning in ("Enabled", "Suspended")

    def _versioning_status(self) -> None:
        if self._versioning is None:
            try:
                self._versioning = str(self._client.get_bucket_versioning(Bucket=self.bucket).get("Status") or "")
            except Exception as exc:
                raise self._error("?versioning", exc) from None

    def _check_unversioned(self) -> None:
        """COS ignores ``x-cos-forbid-overwrite`` in a bucket whose versioning was ever enabled (Enabled or
        Suspended): asked once per container, and such a bucket is refused for claims."""
        self._versioning_status()
        if self._versioning in ("Enabled", "Suspended"):
            raise StorageError(f"cos://{self.bucket}: versioning is {self._versioning}, and COS then ignores "
                               f"x-cos-forbid-overwrite, so a claim could be taken twice: keep claims (ARCHIVE_URI) "
                               f"in a bucket whose versioning was never enabled")

    def _error(self, key: str, exc: Exception) -> StorageError:
        return StorageError(f"cos://{self.bucket}/{key}: {type(exc).__name__}: {scrub(_cos_message(exc))}")


def _s3_code(exc: Exception) -> str:
    """The S3 error code of a botocore ClientError (``NoSuchKey``, ``PreconditionFailed``, ``404``...), else ''."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code") or "")
    return ""


def _int(value: Any) -> int | None:
    """A byte count from an SDK or an inventory (a number or its digits), or None (absent, negative, not a number)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _as_list(value: Any) -> list[dict[str, Any]]:
    """The COS SDK gives one listed object as a dict and several as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _add_if_none_match(request: Any, **_: Any) -> None:
    """botocore ``before-sign`` hook of the create-only client: every PutObject it sends is conditional."""
    request.headers["If-None-Match"] = "*"


def _cos_code(exc: Exception) -> str:
    get = getattr(exc, "get_error_code", None)
    return str(get() or "") if callable(get) else ""


def _cos_status(exc: Exception) -> int | None:
    get = getattr(exc, "get_status_code", None)
    return get() if callable(get) else None


def _cos_message(exc: Exception) -> str:
    get = getattr(exc, "get_error_code", None)
    if callable(get):
        return f"{get()} {getattr(exc, 'get_error_msg', lambda: '')()}".strip()
    return str(exc)[:300]


_stores: dict[tuple, ObjectStore] = {}
_lock = threading.Lock()


def open_store(storage: str, bucket: str, region: str | None, secret_id: str | None = None,
               secret_key: str | None = None, token: str | None = None) -> ObjectStore:
    """The container's store for ``storage`` (``s3``/``cos``) and ``bucket``, created on first use."""
    key = (storage, bucket, region, secret_id, token)
    with _lock:
        store = _stores.get(key)
        if store is None:
            if storage == "s3":
                store = S3Store(bucket, region)
            else:
                assert region and secret_id and secret_key, "COS needs a region and the Tencent Cloud key"
                store = CosStore(bucket, region, secret_id, secret_key, token, os.environ.get("COS_ENDPOINT_URL"))
            _stores[key] = store
        return store
