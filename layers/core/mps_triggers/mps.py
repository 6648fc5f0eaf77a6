"""MPS API client: TC3-HMAC-SHA256 signing, the MpsError hierarchy, and the retry policy.

Source: Tencent Cloud API 3.0 "Signature v3" and the official SDK (``tencentcloud/common/abstract_client.py``,
``sign.py``); ProcessMedia API 2019-06-12 and its error codes; ``common/retry.py`` for what the SDK retries. The
signer is tested byte for byte against the official SDK (tests/test_signing.py), which stays a test-only
dependency: importing it costs 0.2–1.3 s of cold start to send one POST.

Errors (one base, families with their own base, the API's ``Error.Code`` and transport errors mapped in exactly
one place, :func:`map_error` / :meth:`MpsClient._send`)::

    MpsError                              code, message, request_id, http_status
    ├── MpsTransientError                 worth retrying
    │   ├── MpsThrottlingError            RequestLimitExceeded*, LimitExceeded.CreateTask, HTTP 429
    │   ├── MpsServerError                InternalError*, ResourceUnavailable*, FailedOperation.NetWorkError, HTTP 5xx
    │   └── MpsNetworkError               connection refused/reset/dropped, TLS, DNS
    │       └── MpsTimeoutError           connect/read/write/pool timeout
    ├── MpsPermanentError                 retrying cannot help
    │   ├── MpsAuthError                  AuthFailure*, UnauthorizedOperation*
    │   ├── MpsInvalidRequestError        InvalidParameter*, MissingParameter*, UnknownParameter*, ...
    │   └── MpsAccountError               ResourceNotFound*, FailedOperation.* (InvalidMpsUser, UserArrears, ...)
    └── MpsDuplicateSessionError          InvalidParameterValue.SessionId: already submitted within 3 days
"""
from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from .exceptions import MpsTriggersError

SERVICE = "mps"
VERSION = "2019-06-12"
CONTENT_TYPE = "application/json"


# --- errors ------------------------------------------------------------------------------------------------------

class MpsError(MpsTriggersError):
    """Base of every MPS API or transport failure. ``code`` is the API's ``Error.Code`` (or a transport label)."""

    def __init__(self, code: str, message: str, request_id: str | None = None, http_status: int | None = None):
        self.code = code
        self.message = message
        self.request_id = request_id
        self.http_status = http_status
        super().__init__(f"{code}: {message}" + (f" (RequestId {request_id})" if request_id else ""))


class MpsTransientError(MpsError):
    """A failure that may pass: retried with backoff inside the invocation's remaining time."""


class MpsThrottlingError(MpsTransientError):
    """MPS refused the request for rate (ProcessMedia allows 100 requests/s per account)."""


class MpsServerError(MpsTransientError):
    """MPS had an internal or dependency error, or answered with an HTTP 5xx status."""


class MpsNetworkError(MpsTransientError):
    """The request did not complete: connection refused, reset or dropped, DNS or TLS failure."""


class MpsTimeoutError(MpsNetworkError):
    """The request timed out (connect, read, write or pool)."""


class MpsPermanentError(MpsError):
    """A failure retrying cannot fix; the record fails at once with the code in the log."""


class MpsAuthError(MpsPermanentError):
    """The credentials were refused or lack permission (AuthFailure*, UnauthorizedOperation*)."""


class MpsInvalidRequestError(MpsPermanentError):
    """The request was malformed or had an invalid value (InvalidParameter*, MissingParameter, ...)."""


class MpsAccountError(MpsPermanentError):
    """The account or a resource is not usable (ResourceNotFound*, FailedOperation.InvalidMpsUser, arrears, ...)."""


class MpsDuplicateSessionError(MpsError):
    """MPS already accepted a request with this SessionId in the last 3 days: the object was submitted before."""


_TRANSIENT_PREFIXES: tuple[tuple[str, type[MpsError]], ...] = (
    ("RequestLimitExceeded", MpsThrottlingError),
    ("LimitExceeded.CreateTask", MpsThrottlingError),
    ("InternalError", MpsServerError),
    ("ResourceUnavailable", MpsServerError),
    ("FailedOperation.NetWorkError", MpsServerError),
    ("ServiceUnavailable", MpsServerError),
)
_PERMANENT_PREFIXES: tuple[tuple[str, type[MpsError]], ...] = (
    ("AuthFailure", MpsAuthError),
    ("UnauthorizedOperation", MpsAuthError),
    ("InvalidParameter", MpsInvalidRequestError),
    ("MissingParameter", MpsInvalidRequestError),
    ("UnknownParameter", MpsInvalidRequestError),
    ("InvalidAction", MpsInvalidRequestError),
    ("UnsupportedOperation", MpsInvalidRequestError),
    ("ResourceNotFound", MpsAccountError),
    ("ResourceInsufficient", MpsAccountError),
    ("FailedOperation", MpsAccountError),
)


def map_error(code: str, message: str, request_id: str | None = None, http_status: int | None = None) -> MpsError:
    """Translate an API ``Error.Code`` into the MpsError class that says what to do about it.

    Codes not listed are treated as permanent (fail at once, the code in the log): the record then goes back to
    its queue and to the DLQ after ``maxReceiveCount`` receives, where nothing is lost.
    """
    if code == "InvalidParameterValue.SessionId":
        return MpsDuplicateSessionError(code, message, request_id, http_status)
    for table in (_TRANSIENT_PREFIXES, _PERMANENT_PREFIXES):
        for prefix, cls in table:
            if code.startswith(prefix):  # "InvalidParameter" covers InvalidParameterValue.*, as the API's families do
                return cls(code, message, request_id, http_status)
    return MpsPermanentError(code, message, request_id, http_status)


# --- signing ------------------------------------------------------------------------------------------------------

def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_headers(secret_id: str, secret_key: str, host: str, action: str, payload: bytes, timestamp: int,
                region: str | None = None, token: str | None = None, service: str = SERVICE,
                version: str = VERSION) -> dict[str, str]:
    """Headers of a TC3-HMAC-SHA256 signed POST of ``payload`` (the exact body bytes) to ``host``.

    ``host`` is what the request's Host header will say (``mps.tencentcloudapi.com`` or ``127.0.0.1:8080``);
    ``timestamp`` is UNIX seconds and its UTC date goes into the credential scope. Signed headers are
    ``content-type;host`` as in the official SDK. Returns ``Authorization``, ``Content-Type``, ``Host``,
    ``X-TC-Action``, ``X-TC-Timestamp``, ``X-TC-Version`` and, when given, ``X-TC-Region`` and ``X-TC-Token``.
    """
    date = datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")
    canonical = (f"POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\n\ncontent-type;host\n"
                 f"{hashlib.sha256(payload).hexdigest()}")
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    k_signing = _hmac(_hmac(_hmac(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    signature = hmac.new(k_signing, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    headers = {
        "Authorization": f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, "
                         f"Signature={signature}",
        "Content-Type": CONTENT_TYPE,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": version,
    }
    if region:
        headers["X-TC-Region"] = region
    if token:
        headers["X-TC-Token"] = token
    return headers


# --- client -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    """Tencent Cloud API credentials; ``token`` is the session token of temporary (role) credentials."""

    secret_id: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never print a key
        return f"Credentials(secret_id={self.secret_id[:4]}…, token={'set' if self.token else 'none'})"


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter: attempt n waits ``uniform(0, min(cap, base * 2**n))`` seconds.

    Retries stop after ``max_attempts`` attempts, or earlier when the next wait plus one request would not fit in
    the time left (the invocation's deadline minus ``safety_margin`` seconds). Throttling (a per-second limit that
    frees within a second) is retried until the deadline, up to ``max_throttled_attempts``: giving up early would
    only send the record back to its queue for a visibility timeout, and the SessionId makes every repeat safe.
    """

    max_attempts: int = 6
    base: float = 0.1
    cap: float = 2.0
    safety_margin: float = 1.0
    max_throttled_attempts: int = 30

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * (2 ** attempt)))


@dataclass(frozen=True)
class CallResult:
    """A successful API call: the ``Response`` object, the number of attempts it took, and the errors retried."""

    response: dict[str, Any]
    attempts: int
    retried: tuple[str, ...] = ()


class MpsClient:
    """Signs and sends MPS API 3.0 calls over one reusable ``httpx.Client`` (thread-safe; create once per container).

    ``endpoint`` is a host (``mps.tencentcloudapi.com``, ``mps.intl.tencentcloudapi.com``) for HTTPS, or a URL
    (``http://127.0.0.1:9000`` for the local emulator). ``credentials`` is a :class:`Credentials` or a callable
    returning one (resolved on first use, e.g. from Secrets Manager). ``timeout`` is per attempt, in seconds.

    Example::

        client = MpsClient("mps.tencentcloudapi.com", Credentials("AKID…", "…"))
        task_id = client.process_media({"InputInfo": {...}, "ScheduleId": 12345})["TaskId"]
    """

    def __init__(self, endpoint: str, credentials: Credentials | Callable[[], Credentials], region: str | None = None,
                 timeout: float = 10.0, retry: RetryPolicy | None = None, max_connections: int = 20,
                 transport: Any = None) -> None:
        import httpx  # imported here so that modules that only parse events do not pay for it

        self._httpx = httpx
        if "://" not in endpoint:
            endpoint = "https://" + endpoint
        self.url = endpoint.rstrip("/") + "/"
        self.host = httpx.URL(self.url).netloc.decode("ascii")
        self.region = region or None
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._credentials = credentials
        self._credentials_lock = threading.Lock()
        self._http = httpx.Client(
            timeout=timeout, transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": "mps-triggers/0.1"},
        )

    def credentials(self) -> Credentials:
        """The credentials, resolving a provider once (thread-safe: the batch's worker threads share the client)."""
        with self._credentials_lock:
            if callable(self._credentials):
                self._credentials = self._credentials()
            return self._credentials  # type: ignore[return-value]

    def close(self) -> None:
        self._http.close()

    def process_media(self, request: dict[str, Any], deadline: float | None = None) -> CallResult:
        """Call ProcessMedia with ``request`` (API parameters as a dict). Returns the ``Response`` (``TaskId``).

        Raises an :class:`MpsError` subclass: :class:`MpsDuplicateSessionError` when the SessionId was seen in
        the last 3 days, a :class:`MpsPermanentError` at once, a :class:`MpsTransientError` when retries ran out.
        ``deadline`` is a ``time.monotonic()`` value that retries must not pass.
        """
        return self.call("ProcessMedia", request, deadline)

    def call(self, action: str, params: dict[str, Any], deadline: float | None = None) -> CallResult:
        """Send one API action with retries on transient errors (see :class:`RetryPolicy`)."""
        payload = json.dumps(params, separators=(",", ":")).encode("ascii")
        retried: list[str] = []
        attempt = throttled = 0
        while True:
            attempt += 1
            try:
                return CallResult(self._send(action, payload, deadline), attempt, tuple(retried))
            except MpsThrottlingError as exc:
                error, throttled = exc, throttled + 1
            except MpsTransientError as exc:
                error = exc
            except MpsAuthError as exc:
                # Clock skew: the SDK's documented remedy is to sign again with a fresh timestamp, once.
                if exc.code != "AuthFailure.SignatureExpire" or "AuthFailure.SignatureExpire" in retried:
                    raise
                error = exc
            if attempt - throttled >= self.retry.max_attempts or throttled >= self.retry.max_throttled_attempts:
                raise error
            wait = self.retry.delay(attempt - 1)
            if deadline is not None and time.monotonic() + wait + self.retry.safety_margin + 0.1 > deadline:
                raise error
            retried.append(error.code)
            time.sleep(wait)

    def _send(self, action: str, payload: bytes, deadline: float | None) -> dict[str, Any]:
        """One signed POST. Every transport and API failure is mapped into MpsError here, and only here."""
        httpx = self._httpx
        creds = self.credentials()
        headers = tc3_headers(creds.secret_id, creds.secret_key, self.host, action, payload, int(time.time()),
                              region=self.region, token=creds.token)
        timeout = self.timeout
        if deadline is not None:
            timeout = max(0.1, min(timeout, deadline - time.monotonic() - self.retry.safety_margin))
        try:
            resp = self._http.post(self.url, content=payload, headers=headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise MpsTimeoutError("Timeout", f"{type(exc).__name__}: {exc}") from None
        except httpx.TransportError as exc:
            raise MpsNetworkError("NetworkError", f"{type(exc).__name__}: {exc}") from None
        if resp.status_code == 429:
            raise MpsThrottlingError("HTTP429", resp.text[:200], http_status=429)
        if resp.status_code >= 500:
            raise MpsServerError(f"HTTP{resp.status_code}", resp.text[:200], http_status=resp.status_code)
        try:
            body = resp.json()
            response = body["Response"]
        except (ValueError, KeyError, TypeError):
            raise MpsServerError("InvalidResponse", f"HTTP {resp.status_code}: {resp.text[:200]!r}",
                                 http_status=resp.status_code) from None
        error = response.get("Error") if isinstance(response, dict) else None
        if error:
            raise map_error(str(error.get("Code", "Unknown")), str(error.get("Message", "")),
                            response.get("RequestId"), resp.status_code)
        if resp.status_code != 200:
            raise map_error(f"HTTP{resp.status_code}", resp.text[:200], response.get("RequestId"), resp.status_code)
        return response
