"""MPS task callbacks: invocation shapes → one HTTP request, SQS records or a notification; Sign and token checks.

Invocation shapes (samples in ``events/``):

- Lambda function URL and API Gateway HTTP API, payload 2.0 (``requestContext.http``, ``rawQueryString``,
  ``isBase64Encoded``); API Gateway REST/payload 1.0 (``httpMethod``, ``queryStringParameters``)
- SCF API gateway trigger (``requestContext.serviceId``, ``queryString``, ``headerParameters``) and SCF function
  URL (``httpMethod``, ``queryString``, ``x-scf-request-id``), answered with the integration-response dict
- SQS batches (``Records[].eventSource == "aws:sqs"``, the spine's envelope) whose bodies are notifications
  (NotifyType AWS-SQS)
- the SCF MPS trigger: the bare notification dict

Notification (MPS ``ParseNotification`` output, API 2019-06-12): ``Timestamp`` (UNIX seconds, the *expiry* of the
message) and ``Sign = md5(str(Timestamp) + NotifyKey)``; an optional ``{"Response": {...}}`` wrapper is unwrapped
(:func:`unwrap`). The fields themselves are read by :mod:`mps_triggers.notifications`.

Example::

    shape = parse_callback_event(event, "req-1")        # CallbackInvocation(source=Source.HTTP, http=HttpRequest(...))
    check_signature(doc, notify_key, skew=300)          # None, or why the callback is not authentic
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, unquote_plus

from .exceptions import EventError
from .invocation import SqsRecord, Source, is_sqs_event, sqs_records
from .safejson import MAX_DEPTH, JsonError, depth_exceeds, dumps, loads, to_int

# --- invocation shapes -------------------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    """One HTTP callback as the function saw it.

    ``body`` is the raw bytes (base64 already decoded), or None with ``body_problem`` saying why it could not be
    read (``isBase64Encoded`` true but the body is not base64; a body longer than ``max_bytes`` is not decoded).
    ``query`` holds decoded parameters; ``raw_query`` the query string as sent (Lambda payload 2.0), or None.
    """

    method: str
    headers: dict[str, str]
    query: dict[str, str]
    raw_query: str | None
    body: bytes | None
    body_size: int
    request_id: str
    platform: str  # "lambda" (function URL / API Gateway) or "scf" (API gateway / function URL)
    body_problem: str | None = None


@dataclass
class CallbackInvocation:
    """A parsed archive invocation: ``http`` (HTTP), ``records`` (SQS) or ``notification`` (DIRECT) is set."""

    source: Source
    http: HttpRequest | None = None
    records: list[SqsRecord] = field(default_factory=list)
    notification: dict[str, Any] | None = None


def parse_callback_event(event: Any, request_id: str | None = None, max_bytes: int = 6 * 1024 * 1024
                         ) -> CallbackInvocation:
    """Recognise the invocation shape. Raises :class:`EventError` when it is none of the supported ones.

    ``max_bytes`` bounds the HTTP body that is decoded (a longer one is only measured: the job answers 413).
    """
    if not isinstance(event, dict):
        raise EventError("event", "$", f"expected a JSON object, got {type(event).__name__}")
    if is_sqs_event(event):
        return CallbackInvocation(Source.SQS, records=sqs_records(event))
    context = event.get("requestContext")
    if "httpMethod" in event or (isinstance(context, dict) and "http" in context):
        return CallbackInvocation(Source.HTTP, http=_http_request(event, request_id, max_bytes))
    inner = event.get("Response") if isinstance(event.get("Response"), dict) else event
    if "EventType" in inner:
        return CallbackInvocation(Source.DIRECT, notification=event)
    raise EventError("event", "$", "unknown invocation: not an HTTP request, SQS batch or MPS notification")


def _text(value: Any, limit: int = 256) -> str:
    """A header/method/id value as a short string that always encodes as UTF-8."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return text[:limit].encode("utf-8", "replace").decode("utf-8")


def _http_request(event: dict[str, Any], request_id: str | None, max_bytes: int) -> HttpRequest:
    ctx = event.get("requestContext") if isinstance(event.get("requestContext"), dict) else {}
    raw_headers = event.get("headers") if isinstance(event.get("headers"), dict) else {}
    headers = {_text(k).lower(): _text(v, 1024) for k, v in list(raw_headers.items())[:200]}
    raw_query: str | None = None
    if isinstance(ctx.get("http"), dict):  # Lambda function URL / HTTP API payload 2.0
        method = ctx["http"].get("method")
        raw_query = event.get("rawQueryString") if isinstance(event.get("rawQueryString"), str) else ""
        query = dict(parse_qsl(raw_query[:8192], keep_blank_values=True))
        platform = "lambda"
        rid = ctx.get("requestId")
    else:  # API Gateway payload 1.0, SCF API gateway, SCF function URL
        method = event.get("httpMethod") or ctx.get("httpMethod")
        given = event.get("queryStringParameters") or event.get("queryString") or {}
        query = {_text(k): _first(v) for k, v in list(given.items())[:100]} if isinstance(given, dict) else {}
        scf = "serviceId" in ctx or "queryString" in event or "x-scf-request-id" in headers
        platform = "scf" if scf else "lambda"
        rid = ctx.get("requestId") or headers.get("x-scf-request-id") or headers.get("x-api-requestid")
    body, size, problem = _body(event, max_bytes)
    return HttpRequest(_text(method).upper(), headers, query, raw_query, body, size, _text(rid or request_id or ""),
                       platform, problem)


def _body(event: dict[str, Any], max_bytes: int) -> tuple[bytes | None, int, str | None]:
    """``(bytes, size, problem)`` of the request body; a body over ``max_bytes`` is measured, not decoded."""
    body = event.get("body")
    if body is None:
        return b"", 0, None
    if isinstance(body, (dict, list)):  # some gateways hand over parsed JSON
        if depth_exceeds(body):
            return None, 0, f"body nested deeper than {MAX_DEPTH} levels"
        try:
            raw = dumps(body).encode("utf-8")
        except ValueError:
            return None, 0, "body holds a value JSON cannot carry"
        return (raw, len(raw), None) if len(raw) <= max_bytes else (None, len(raw), None)
    if not isinstance(body, str):
        return None, 0, f"body is a JSON {type(body).__name__}, not a string"
    if event.get("isBase64Encoded") is True:
        size = len(body) * 3 // 4
        if size > max_bytes:
            return None, size, None
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None, size, "isBase64Encoded is true but the body is not base64"
        return raw, len(raw), None
    try:
        raw = body.encode("utf-8")
    except UnicodeEncodeError:
        return None, len(body), "body is not valid Unicode (a lone UTF-16 surrogate)"
    return (raw, len(raw), None) if len(raw) <= max_bytes else (None, len(raw), None)


def _first(value: Any) -> str:
    """SCF ``queryString`` values may be a string, a list (repeated key) or ``true`` (bare key)."""
    if isinstance(value, list):
        return _text(value[0], 1024) if value else ""
    if value is True:
        return ""
    return _text(value, 1024)


def unwrap(doc: Any) -> Any:
    """Drop an optional ``{"Response": {...}}`` wrapper (ParseNotification's API response shape)."""
    if isinstance(doc, dict) and set(doc) <= {"Response"} and isinstance(doc.get("Response"), dict):
        return doc["Response"]
    if isinstance(doc, dict) and isinstance(doc.get("Response"), dict) and "EventType" in doc["Response"]:
        return doc["Response"]
    return doc


# --- authenticity ------------------------------------------------------------------------------------------------

def expected_sign(timestamp: Any, notify_key: str) -> str:
    """``md5(str(Timestamp) + NotifyKey)`` in lower-case hex (ParseNotification ``Sign``)."""
    return hashlib.md5(f"{timestamp}{notify_key}".encode("utf-8", "surrogatepass")).hexdigest()


def check_signature(doc: dict[str, Any], notify_key: str, skew: int = 300, now: float | None = None) -> str | None:
    """Why the notification fails authentication, or None if ``Sign`` is right and ``Timestamp`` not expired.

    ``Timestamp`` is the expiry time MPS set (send time + 10 minutes by default), an integer or a string of ASCII
    digits; ``skew`` seconds of clock difference are tolerated. Compared in constant time.
    """
    return _sign_problem(doc, "Timestamp", lambda t: expected_sign(t, notify_key), "md5(Timestamp + NotifyKey)",
                         "NotifyKey", skew, now)


def expected_vod_sign(t: Any, sign_key: str) -> str:
    """``MD5(SignKey + T)`` as lower-case hex (VOD ModifyEventConfig ``SignKey``: "Sign = MD5(SignKey + T)")."""
    return hashlib.md5(f"{sign_key}{t}".encode("utf-8", "surrogatepass")).hexdigest()


def check_vod_signature(doc: dict[str, Any], sign_key: str, skew: int = 300, now: float | None = None) -> str | None:
    """Why a VOD event notification fails authentication, or None when its ``Sign`` is ``MD5(SignKey + T)`` and
    ``T`` (the UNIX time it expires, 10 minutes after sending by default) has not passed, ``skew`` seconds of
    clock difference allowed (VOD API 2018-07-17, ModifyEventConfig ``SignKey``). Compared in constant time. The
    key goes first, where MPS's ``Sign`` puts it last."""
    return _sign_problem(doc, "T", lambda t: expected_vod_sign(t, sign_key), "MD5(SignKey + T)", "VOD_SIGN_KEY",
                         skew, now)


def _sign_problem(doc: dict[str, Any], time_field: str, expected: Callable[[Any], str], formula: str, key_name: str,
                  skew: int, now: float | None) -> str | None:
    ts, sign = doc.get(time_field), doc.get("Sign")
    if ts is None or sign is None:
        return f"{time_field} or Sign missing ({key_name} is configured)"
    seconds = to_int(ts, max_digits=12)
    if seconds is None or (isinstance(ts, str) and ts.startswith("-")):
        return f"{time_field} is not an integer"
    if not isinstance(sign, str) or not hmac.compare_digest(expected(ts).encode(),
                                                            sign.lower().encode("utf-8", "replace")):
        return f"Sign does not match {formula}"
    if (time.time() if now is None else now) > seconds + skew:
        return f"expired: {time_field} {seconds} is in the past (skew {skew}s)"
    return None


def read_http_json(req: HttpRequest, token: str | None, max_bytes: int) -> tuple[Any, tuple[int, str] | None]:
    """A callback request's JSON body, or the ``(HTTP status, reason)`` it is refused with: 405 not POST, 401 the
    ``token`` query parameter missing or wrong (when ``token`` is set; checked before the body is read), 413 a body
    over ``max_bytes``, 400 no readable body (bad base64) or not JSON (nested too deep included). Returns
    ``(document, None)`` or ``(None, (status, reason))``. Shared by the archive and vod jobs."""
    if req.method != "POST":
        return None, (405, f"method {req.method[:16] or '?'} not allowed, use POST")
    if token and not token_matches(req, token):
        return None, (401, "token query parameter missing or wrong")
    if req.body_size > max_bytes:
        return None, (413, f"body of {req.body_size} bytes exceeds {max_bytes}")
    if req.body is None:
        return None, (400, req.body_problem or "body missing")
    try:
        return loads(req.body), None
    except JsonError as exc:
        return None, (400, f"body is {exc}" if str(exc).startswith("not") else f"body {exc}")


def token_matches(req: HttpRequest, token: str) -> bool:
    """True when the request's ``token`` query parameter, decoded, equals ``token`` (constant-time).

    The raw query (payload 2.0) is read both as RFC 3986 (``%2B`` is ``+``, ``+`` stays ``+``) and as a form
    (``+`` is a space), so a token with ``+`` or ``/`` matches whether the URL was encoded by the submit job or
    typed by hand. Gateways that decode the query themselves (SCF, payload 1.0) are compared as given and decoded.
    """
    candidates: list[str] = []
    if req.raw_query is not None:
        for part in req.raw_query.split("&"):
            name, _, value = part.partition("=")
            if unquote_plus(name) == "token":
                candidates += [unquote(value), unquote_plus(value)]
                break
    elif "token" in req.query:
        value = req.query["token"]
        candidates += [value, unquote(value), unquote_plus(value)]
    expected = token.encode("utf-8", "surrogatepass")
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode("utf-8", "replace"), expected)
    return matched
