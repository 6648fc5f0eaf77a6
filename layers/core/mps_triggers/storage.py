"""Object stores for the archive: S3 (boto3) and COS (cos-python-sdk-v5), chosen from ``ARCHIVE_URI``.

Both SDKs are imported only when their store is created, so an SCF build needs no boto3 and a Lambda build needs
no COS SDK unless configured. Clients are created once per container (:func:`open_store` caches).

Local endpoints: boto3 honours the standard ``AWS_ENDPOINT_URL``; ``COS_ENDPOINT_URL`` (``http://127.0.0.1:PORT``)
points the COS client at a local server while keeping the real virtual-host ``Host`` header (CosConfig ``IP``/
``Port``/``Scheme``), which is how the local stack serves COS buckets from moto.

Every SDK failure surfaces as :class:`StorageError` (translated in each backend's ``put``).
"""
from __future__ import annotations

import os
import threading
from typing import Protocol
from urllib.parse import urlparse

from .exceptions import MpsTriggersError
from .redaction import scrub

CONTENT_TYPE = "application/x-ndjson; charset=utf-8"


class StorageError(MpsTriggersError):
    """Writing an archive object failed (the record is not acknowledged; the platform delivers it again)."""


class ObjectStore(Protocol):
    """Where archive objects go. ``put`` writes ``data`` under ``key`` (overwriting) or raises StorageError."""

    bucket: str

    def put(self, key: str, data: bytes) -> None: ...


class S3Store:
    """An S3 bucket through boto3 (the Lambda runtime's). ``region`` None lets boto3 decide (AWS_REGION)."""

    def __init__(self, bucket: str, region: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self._client = boto3.client("s3", region_name=region,
                                    config=Config(retries={"mode": "standard", "max_attempts": 3},
                                                  connect_timeout=5, read_timeout=20))

    def put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=CONTENT_TYPE)
        except Exception as exc:  # botocore ClientError, EndpointConnectionError, ...: one place to translate
            raise StorageError(f"s3://{self.bucket}/{key}: {type(exc).__name__}: {scrub(str(exc))[:300]}") from None


class CosStore:
    """A COS bucket (``name-appid``) through cos-python-sdk-v5, with the Tencent Cloud key (token optional)."""

    def __init__(self, bucket: str, region: str, secret_id: str, secret_key: str, token: str | None = None,
                 endpoint_url: str | None = None) -> None:
        from qcloud_cos import CosConfig, CosS3Client

        self.bucket = bucket
        kwargs: dict = {"Region": region, "SecretId": secret_id, "SecretKey": secret_key, "Token": token,
                        "Scheme": "https", "Timeout": 20}
        if endpoint_url:
            u = urlparse(endpoint_url)
            kwargs.update(Scheme=u.scheme or "http", IP=u.hostname, Port=u.port or (443 if u.scheme == "https" else 80))
        self._client = CosS3Client(CosConfig(**kwargs), retry=2)

    def put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=CONTENT_TYPE)
        except Exception as exc:  # CosServiceError, CosClientError, requests errors: one place to translate
            raise StorageError(f"cos://{self.bucket}/{key}: {type(exc).__name__}: {scrub(_cos_message(exc))}") from None


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
