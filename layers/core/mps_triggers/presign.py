"""URL input for S3 objects: a presigned S3 GET URL (SigV4) made with the AWS key MPS was given, for the tasks MPS
cannot read from ``AWS-S3`` (:data:`mps_triggers.constraints.S3_INPUT_TASKS`).

Sources: ProcessMedia ``InputInfo.Type=URL`` / ``UrlInputInfo.Url`` (API 2019-06-12; URL input requires an
``OutputStorage``); AWS SigV4 query authentication: ``X-Amz-Expires`` at most 604,800 s (7 days); a URL signed
with temporary credentials stops working when they expire, whatever its ``X-Amz-Expires``. ``TaskType=Offline``
runs "within 3 days" (ProcessMedia), so its URL lives the SigV4 maximum; an Online task's lives one day.

The URL's query carries a signature: it never reaches a log line or the archive (redaction by value drops
``X-Amz-Signature``, ``X-Amz-Credential`` and ``X-Amz-Security-Token``). botocore signs (the well-kept library); it
is imported on the first URL input only, from the runtime's boto3 (Lambda) or the environment.

Example::

    url = presigned_get(obj, S3Credentials("AKIA…", "…"), expires=URL_EXPIRES_ONLINE)
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .exceptions import MpsRuleError
from .uploads import UploadedObject

if TYPE_CHECKING:
    from .routing import S3Credentials

URL_EXPIRES_ONLINE = 24 * 3600
"""Seconds an Online task's input URL is valid."""
URL_EXPIRES_OFFLINE = 7 * 24 * 3600
"""Seconds an Offline task's input URL is valid: SigV4's maximum, past MPS's 3-day window."""

_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def presigned_get(obj: UploadedObject, s3: "S3Credentials", expires: int) -> str:
    """A presigned GET URL of ``obj`` (its version when the event named one), valid ``expires`` seconds.

    Raises :class:`MpsRuleError` (``url-input-credentials``) for temporary credentials (an ``ASIA…`` key or a session
    token): the URL would stop working when they expire, before MPS may fetch it.
    """
    if s3.token or s3.secret_id.startswith("ASIA"):
        raise MpsRuleError("url-input-credentials",
                           "the AWS key given to MPS is temporary (STS): a URL signed with it expires with the key, "
                           "possibly before MPS fetches it; use a long-term IAM user key for MPS_S3_SECRET_ID")
    params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        params["VersionId"] = obj.version_id
    return _client(s3, obj.region).generate_presigned_url("get_object", Params=params, ExpiresIn=expires)


def _client(s3: "S3Credentials", region: str) -> Any:
    key = (s3.secret_id, region)
    with _lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            client = _clients[key] = boto3.session.Session(
                aws_access_key_id=s3.secret_id, aws_secret_access_key=s3.secret_key, region_name=region or None,
            ).client("s3", config=Config(signature_version="s3v4"))
        return client
