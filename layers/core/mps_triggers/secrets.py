"""Credentials: Tencent Cloud keys for the MPS API, and the AWS key MPS uses for S3 and SQS.

From environment variables (validated by :mod:`mps_triggers.config`) or, on Lambda, from AWS Secrets Manager
secrets named by ``MPS_CREDENTIALS_SECRET_ARN`` / ``MPS_S3_CREDENTIALS_SECRET_ARN`` (JSON ``SecretString``):

- MPS secret: ``{"SecretId": "AKID…", "SecretKey": "…"}`` (optional ``"Token"`` for temporary keys)
- S3 secret: ``{"S3SecretId": "AKIA…", "S3SecretKey": "…"}``; ``AccessKeyId``/``SecretAccessKey``/``SessionToken``
  also accepted (a temporary key works for AWS-S3 input only as long as it lives; URL input refuses it)

A secret is fetched once per container, on first use; boto3 is imported only then (cold start). Values never
reach a log line: :class:`~mps_triggers.mps.Credentials` and :class:`~mps_triggers.routing.S3Credentials`
print masked.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .exceptions import SecretError
from .mps import Credentials
from .routing import S3Credentials

if TYPE_CHECKING:  # the pydantic models are built when the configuration is first loaded, not at import
    from .config import Settings


def mps_credentials(settings: Settings) -> Credentials:
    """The MPS API credentials. Raises :class:`SecretError` if the configured secret is unreadable or incomplete."""
    if settings.mps_credentials_secret_arn:
        doc = _secret_json(settings.mps_credentials_secret_arn)
        sid, key = doc.get("SecretId"), doc.get("SecretKey")
        if not (isinstance(sid, str) and sid and isinstance(key, str) and key):
            raise SecretError(f"secret {settings.mps_credentials_secret_arn}: needs string fields SecretId and SecretKey")
        token = doc.get("Token")
        return Credentials(sid, key, token if isinstance(token, str) and token else None)
    assert settings.mps_secret_id and settings.mps_secret_key  # config._check guarantees it
    token = settings.mps_session_token.get_secret_value() if settings.mps_session_token else None
    return Credentials(settings.mps_secret_id.get_secret_value(), settings.mps_secret_key.get_secret_value(), token)


def s3_credentials(settings: Settings) -> S3Credentials | None:
    """The AWS key handed to MPS for S3 inputs/outputs and AWS-SQS callbacks, or None when not configured."""
    if settings.mps_s3_credentials_secret_arn:
        doc = _secret_json(settings.mps_s3_credentials_secret_arn)
        sid = doc.get("S3SecretId") or doc.get("AccessKeyId")
        key = doc.get("S3SecretKey") or doc.get("SecretAccessKey")
        if not (isinstance(sid, str) and sid and isinstance(key, str) and key):
            raise SecretError(f"secret {settings.mps_s3_credentials_secret_arn}: needs string fields "
                              f"S3SecretId and S3SecretKey")
        token = doc.get("SessionToken")
        return S3Credentials(sid, key, token if isinstance(token, str) and token else None)
    if settings.mps_s3_secret_id and settings.mps_s3_secret_key:
        return S3Credentials(settings.mps_s3_secret_id.get_secret_value(), settings.mps_s3_secret_key.get_secret_value())
    return None


def _secret_json(arn: str) -> dict[str, Any]:
    try:
        import boto3  # the Lambda runtime has it; SCF deployments use environment variables instead
    except ImportError:
        raise SecretError(f"secret {arn}: boto3 is not installed (use MPS_* environment variables on SCF)") from None
    try:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=arn)
    except Exception as exc:  # botocore's ClientError, NoCredentialsError, EndpointConnectionError, ...
        raise SecretError(f"secret {arn}: {type(exc).__name__}: {exc}") from None
    try:
        doc = json.loads(value.get("SecretString") or "")
    except ValueError:
        raise SecretError(f"secret {arn}: SecretString is not JSON") from None
    if not isinstance(doc, dict):
        raise SecretError(f"secret {arn}: SecretString is not a JSON object")
    return doc
