"""MPS (and VOD) API client: TC3-HMAC-SHA256 signing, the MpsError hierarchy, and which errors are retried.

Source: Tencent Cloud API 3.0 "Signature v3" and the official SDK (``tencentcloud/common/abstract_client.py``,
``sign.py``); ProcessMedia API 2019-06-12 and its error codes; ``common/retry.py`` for what the SDK retries. The
signer is tested byte for byte against the official SDKs (tests/test_signing.py: ``tencentcloud-sdk-python-mps``
and ``-vod``), which stay test-only dependencies: importing one costs 0.2–1.3 s of cold start to send one POST.

One client speaks one service: MPS (``mps``, 2019-06-12, the default) or VOD (:func:`vod_client`: ``vod``,
2018-07-17, ``ProcessMediaByProcedure``, ``ProcessMediaByMPS``, ``PullEvents``, ``ConfirmEvents``). Each action
has its own documented rate (:data:`ACTION_LIMITS`) and is paced apart from the others.

Errors (one base, families with their own base, the API's ``Error.Code`` and transport errors mapped in exactly
one place, :func:`map_error` / :meth:`MpsClient._send`; backoff and deadlines are :mod:`mps_triggers.retries`)::

    MpsError                              code, message, request_id, http_status, maybe_processed
    ├── MpsTransientError                 worth retrying
    │   ├── MpsThrottlingError            RequestLimitExceeded*, LimitExceeded.CreateTask, HTTP 429
    │   │   └── MpsBatchThrottlingError   the same, answered to an action of 20 requests/s (BatchProcessMedia,
    │   │                                 VOD's ProcessMediaByMPS)
    │   ├── MpsServerError                InternalError*, ResourceUnavailable*, FailedOperation.NetWorkError, HTTP 5xx,
    │   │                                 InvalidResponse (not an API 3.0 answer, or neither TaskId nor Error)
    │   └── MpsNetworkError               connection refused/reset/dropped, TLS, DNS
    │       └── MpsTimeoutError           the attempt's total budget spent (Timeout), or not sent: the deadline is
    │                                     too near (DeadlineReached)
    ├── MpsPermanentError                 retrying cannot help
    │   ├── MpsAuthError                  AuthFailure*, UnauthorizedOperation*
    │   ├── MpsInvalidRequestError        InvalidParameter*, MissingParameter*, UnknownParameter*, ...
    │   └── MpsAccountError               ResourceNotFound*, FailedOperation.* (InvalidMpsUser, UserArrears, ...)
    └── MpsDuplicateSessionError          InvalidParameterValue.SessionId: already submitted within 3 days (MPS)
                                          or 7 days (VOD's ProcessMediaByProcedure)

``maybe_processed`` is True when the request may have reached MPS and been acted on without its answer arriving
(a read timeout, a connection lost after sending, HTTP 5xx, an unreadable answer). ProcessMedia retries those
safely under its SessionId (ProcessMediaByProcedure too); BatchProcessMedia and ProcessMediaByMPS have none, so
:meth:`MpsClient.batch_process_media` and :meth:`MpsClient.process_media_by_mps` never retry them and their
callers keep a claim (:mod:`mps_triggers.claims`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from .exceptions import MpsTriggersError
from .redaction import scrub
from .retries import AdaptiveWindow, RateLimiter, Retry, RetryPolicy, retry
from .safejson import JsonError, loads

SERVICE = "mps"
VERSION = "2019-06-12"
VOD_SERVICE = "vod"
VOD_VERSION = "2018-07-17"
"""VOD's API 3.0 service and version (ProcessMediaByProcedure, ProcessMediaByMPS, PullEvents, ConfirmEvents)."""
VOD_ENDPOINT = "vod.tencentcloudapi.com"
CONTENT_TYPE = "application/json"
BATCH_PROCESS_MEDIA = "BatchProcessMedia"
PROCESS_MEDIA_BY_PROCEDURE = "ProcessMediaByProcedure"
PROCESS_MEDIA_BY_MPS = "ProcessMediaByMPS"
BATCH_REQUESTS_PER_SECOND = 20.0
"""BatchProcessMedia's documented limit (API 2019-06-12: "a maximum of 20 requests can be initiated per second")."""
PROCESS_MEDIA_REQUESTS_PER_SECOND = 100.0
"""ProcessMedia's documented limit (API 2019-06-12: "a maximum of 100 requests can be initiated per second")."""
ACTION_LIMITS = {"ProcessMedia": PROCESS_MEDIA_REQUESTS_PER_SECOND, BATCH_PROCESS_MEDIA: BATCH_REQUESTS_PER_SECOND,
                 PROCESS_MEDIA_BY_PROCEDURE: 100.0, PROCESS_MEDIA_BY_MPS: 20.0}
"""Each action's documented requests/s per account, each in a window of its own (the API documents: ProcessMedia and
BatchProcessMedia 2019-06-12; VOD ProcessMediaByProcedure and ProcessMediaByMPS 2018-07-17)."""
PACED_ACTIONS = ("ProcessMedia", PROCESS_MEDIA_BY_PROCEDURE)
"""The idempotent submissions (they carry a SessionId) paced by an :class:`~mps_triggers.retries.AdaptiveWindow`."""
SLOW_ACTIONS = (BATCH_PROCESS_MEDIA, PROCESS_MEDIA_BY_MPS)
"""The submissions of 20 requests/s without a SessionId: paced at 0.9 × their limit, throttling answered as
:class:`MpsBatchThrottlingError`, never retried after ``maybe_processed``."""
BATCH_PACE = 0.9 * BATCH_REQUESTS_PER_SECOND
"""Requests/s one client sends BatchProcessMedia at: under the limit by enough that network jitter (21 requests
then span 1.11 s) does not put a 21st into MPS's one-second window."""


def function_windows(action: str) -> AdaptiveWindow | None:
    """A function container's pacing (:class:`MpsClient` ``windows``): ProcessMedia's (and VOD's
    ProcessMediaByProcedure's) sends in an :class:`~mps_triggers.retries.AdaptiveWindow` from 5 a second up to the
    action's limit (:data:`ACTION_LIMITS`), growing about one a second per container while it binds; other actions
    unpaced."""
    return AdaptiveWindow(ACTION_LIMITS[action]) if action in PACED_ACTIONS else None


def rate_windows(rate: float) -> Callable[[str], AdaptiveWindow | None]:
    """The pacing of one process sending at a chosen ``rate`` (requests/s; ``mps-triggers backfill --rate``):
    ProcessMedia's window starts at ``rate`` and never exceeds it, yields to the functions when MPS's window is full
    (× 0.7) and comes back within about a second (``increase`` of ``rate / 2`` per second)."""
    def windows(action: str) -> AdaptiveWindow | None:
        if action not in PACED_ACTIONS:
            return None
        return AdaptiveWindow(rate, start=rate, increase=rate / 2, floor=min(1.0, rate))
    return windows


# --- errors ------------------------------------------------------------------------------------------------------

class MpsError(MpsTriggersError):
    """Base of every MPS API or transport failure. ``code`` is the API's ``Error.Code`` (or a transport label)."""

    def __init__(self, code: str, message: str, request_id: str | None = None, http_status: int | None = None,
                 maybe_processed: bool = False):
        self.code = code
        self.message = message
        self.request_id = request_id
        self.http_status = http_status
        self.maybe_processed = maybe_processed
        super().__init__(f"{code}: {message}" + (f" (RequestId {request_id})" if request_id else ""))


class MpsTransientError(MpsError):
    """A failure that may pass: retried with backoff inside the invocation's remaining time."""


class MpsThrottlingError(MpsTransientError):
    """MPS refused the request for rate (ProcessMedia allows 100 requests/s per account)."""


class MpsBatchThrottlingError(MpsThrottlingError):
    """The API refused a request of an action of 20 requests/s for rate (:data:`SLOW_ACTIONS`: BatchProcessMedia,
    apart from ProcessMedia's 100, API 2019-06-12; VOD's ProcessMediaByMPS, 2018-07-17); retried with
    :data:`BATCH_RETRY`'s longer backoff."""


class MpsServerError(MpsTransientError):
    """MPS had an internal or dependency error, answered with an HTTP 5xx status, or gave no usable answer."""


class MpsNetworkError(MpsTransientError):
    """The request did not complete: connection refused, reset or dropped, DNS or TLS failure."""


class MpsTimeoutError(MpsNetworkError):
    """No complete answer within the attempt's total budget, or not sent because the invocation's deadline is near."""


class MpsPermanentError(MpsError):
    """A failure retrying cannot fix; the record fails at once with the code in the log."""


class MpsAuthError(MpsPermanentError):
    """The credentials were refused or lack permission (AuthFailure*, UnauthorizedOperation*)."""


class MpsInvalidRequestError(MpsPermanentError):
    """The request was malformed or had an invalid value (InvalidParameter*, MissingParameter, ...)."""


class MpsAccountError(MpsPermanentError):
    """The account or a resource is not usable (ResourceNotFound*, FailedOperation.InvalidMpsUser, arrears, ...)."""


class MpsDuplicateSessionError(MpsError):
    """The API already accepted a request with this SessionId (MPS: in the last 3 days; VOD's
    ProcessMediaByProcedure: 7 days): the object or file was submitted before."""


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


def map_error(code: str, message: str, request_id: str | None = None, http_status: int | None = None,
              action: str = "ProcessMedia") -> MpsError:
    """Translate an API ``Error.Code`` (answered to ``action``) into the MpsError class that says what to do about it.

    Codes not listed are treated as permanent (fail at once, the code in the log): the record then goes back to
    its queue and to the DLQ after ``maxReceiveCount`` receives, where nothing is lost.
    """
    if code == "InvalidParameterValue.SessionId":
        return MpsDuplicateSessionError(code, message, request_id, http_status)
    for table in (_TRANSIENT_PREFIXES, _PERMANENT_PREFIXES):
        for prefix, cls in table:
            if code.startswith(prefix):  # "InvalidParameter" covers InvalidParameterValue.*, as the API's families do
                if cls is MpsThrottlingError and action in SLOW_ACTIONS:
                    cls = MpsBatchThrottlingError
                return cls(code, message, request_id, http_status)
    return MpsPermanentError(code, message, request_id, http_status)


def is_throttling(code: str) -> bool:
    """Whether an answer's ``Error.Code`` (or ``HTTP429``) is a rate limit (:class:`MpsThrottlingError`)."""
    return code == "HTTP429" or isinstance(map_error(code, ""), MpsThrottlingError)


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

BATCH_RETRY = RetryPolicy(max_attempts=4, base=0.25, cap=4.0, max_throttled_attempts=12, min_attempt=0.2)
"""BatchProcessMedia's backoff: a fifth of ProcessMedia's rate, so throttled retries wait longer (0.25 s doubling
to 4 s, full jitter) and give up sooner (the record is delivered again; nothing was submitted)."""

@dataclass(frozen=True)
class Credentials:
    """Tencent Cloud API credentials; ``token`` is the session token of temporary (role) credentials."""

    secret_id: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never print a key
        return f"Credentials(secret_id={self.secret_id[:4]}…, token={'set' if self.token else 'none'})"


@dataclass(frozen=True)
class CallResult:
    """A successful API call: the ``Response`` object, the number of attempts it took, and the errors retried."""

    response: dict[str, Any]
    attempts: int
    retried: tuple[str, ...] = ()


class MpsClient:
    """Signs and sends MPS API 3.0 calls over one reusable HTTP client (thread-safe; create once per container).

    ``endpoint`` is a host (``mps.tencentcloudapi.com``, ``mps.intl.tencentcloudapi.com``) for HTTPS, or a URL
    (``http://127.0.0.1:9000`` for the local emulator). ``credentials`` is a :class:`Credentials` or a callable
    returning one (resolved on first use, e.g. from Secrets Manager). ``timeout`` is the total budget of one
    attempt in seconds (connect, send and every read of the answer, :class:`~mps_triggers.transport.BudgetedClient`),
    cut shorter by the call's ``deadline``. Transient errors are retried by :func:`~mps_triggers.retries.retry`
    under ``retry`` (:class:`~mps_triggers.retries.RetryPolicy`): throttling until the deadline, other transient
    errors up to ``max_attempts``, ``AuthFailure.SignatureExpire`` once (the SDK's remedy: sign again). ``pace``
    (a :class:`~mps_triggers.retries.RateLimiter`, e.g. ``mps-triggers backfill --rate``) spaces every attempt of
    every action, retries included, so the client never sends more than its rate. ``windows(action)`` gives the
    :class:`~mps_triggers.retries.AdaptiveWindow` an action's sends take slots of, or None (default
    :func:`function_windows`: ProcessMedia's, from 5 sends a second up to its limit), so a fleet of containers
    settles under MPS's limit instead of retrying into a full window. ``service`` and ``version`` are what every
    request is signed for and sent as (MPS's by default; :func:`vod_client` for VOD's).

    Example::

        client = MpsClient("mps.tencentcloudapi.com", Credentials("AKID…", "…"))
        task_id = client.process_media({"InputInfo": {...}, "ScheduleId": 12345}).response["TaskId"]
    """

    def __init__(self, endpoint: str, credentials: Credentials | Callable[[], Credentials], region: str | None = None,
                 timeout: float = 10.0, retry: RetryPolicy | None = None, max_connections: int = 20,
                 pace: RateLimiter | None = None,
                 windows: Callable[[str], AdaptiveWindow | None] | None = None, service: str = SERVICE,
                 version: str = VERSION) -> None:
        import httpx  # imported with the first client, not at cold start

        from .transport import BudgetedClient

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
        self._http = BudgetedClient(self.url, max_connections=max_connections)
        self._pacers: dict[str, RateLimiter] = {}
        self.pace = pace
        self._make_window = windows or function_windows
        self._windows: dict[str, AdaptiveWindow | None] = {}
        self.service, self.version = service, version

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
        the last 3 days, a :class:`MpsPermanentError` at once, a :class:`MpsTransientError` when retries ran out
        (an answer with neither ``TaskId`` nor ``Error`` is one: ``InvalidResponse``). ``deadline`` is a
        ``time.monotonic()`` value that no attempt may pass.
        """
        return self.call("ProcessMedia", request, deadline, require="TaskId")

    def batch_process_media(self, request: dict[str, Any], deadline: float | None = None) -> CallResult:
        """Call BatchProcessMedia (API 2019-06-12: ``InputInfo`` list, ``SmartSubtitlesTask``, 20 requests/s).
        Returns the ``Response`` (``TaskId``, a ``…-BatchTask-…`` id).

        The request has no SessionId, so a repeat would be a second task: paced to
        :data:`BATCH_PACE` per client, retried under :data:`BATCH_RETRY` only where MPS surely did
        not act (throttling and other answered errors, a connection never made), never after a failure with
        ``maybe_processed``. Raises an :class:`MpsError` subclass (:class:`MpsBatchThrottlingError` for rate).
        """
        return self.call(BATCH_PROCESS_MEDIA, request, deadline, require="TaskId", idempotent=False)

    def process_media_by_procedure(self, request: dict[str, Any], deadline: float | None = None) -> CallResult:
        """Call VOD's ProcessMediaByProcedure (API 2018-07-17, 100 requests/s): ``ProcedureName``, ``FileId``,
        ``SubAppId``, ``SessionId`` (≤ 50, deduplicated for 7 days), ``SessionContext`` (≤ 1000), ... Returns the
        ``Response`` (``TaskId``). Raises as :meth:`process_media` (a repeat SessionId:
        :class:`MpsDuplicateSessionError`). The client must be a VOD one (:func:`vod_client`)."""
        return self.call(PROCESS_MEDIA_BY_PROCEDURE, request, deadline, require="TaskId")

    def process_media_by_mps(self, request: dict[str, Any], deadline: float | None = None) -> CallResult:
        """Call VOD's ProcessMediaByMPS (API 2018-07-17, 20 requests/s): ``FileId``, ``SubAppId`` and
        ``MPSProcessMediaParams``, a JSON string of MPS ProcessMedia parameters of which VOD reads
        ``AiAnalysisTask`` only. Returns the ``Response`` (``TaskId``). No SessionId: paced at 0.9 × 20/s, never
        retried after a failure with ``maybe_processed`` (as :meth:`batch_process_media`)."""
        return self.call(PROCESS_MEDIA_BY_MPS, request, deadline, require="TaskId", idempotent=False)

    def pull_events(self, sub_app_id: int | None, deadline: float | None = None) -> CallResult:
        """Call VOD's PullEvents (API 2018-07-17; reliable callback): VOD waits up to about 5 s for events and
        answers up to 16 in ``EventSet`` (each with an ``EventHandle`` to confirm within 30 s, or it is delivered
        again). ``sub_app_id`` None pulls the main application's. The answer is returned unchecked
        (:func:`mps_triggers.vod.pulled_events` reads it)."""
        return self.call("PullEvents", {"SubAppId": sub_app_id} if sub_app_id is not None else {}, deadline)

    def confirm_events(self, handles: list[str], sub_app_id: int | None, deadline: float | None = None) -> CallResult:
        """Call VOD's ConfirmEvents (API 2018-07-17) for up to 16 ``EventHandle`` values: those events are done and
        are not delivered again. Raises ValueError for an empty list or more than 16 handles."""
        if not 1 <= len(handles) <= 16:
            raise ValueError(f"ConfirmEvents takes 1 to 16 event handles, got {len(handles)}")
        params: dict[str, Any] = {"EventHandles": list(handles)}
        if sub_app_id is not None:
            params["SubAppId"] = sub_app_id
        return self.call("ConfirmEvents", params, deadline)

    def call(self, action: str, params: dict[str, Any], deadline: float | None = None,
             require: str | None = None, idempotent: bool = True) -> CallResult:
        """Send one API action with retries on transient errors. ``require`` names a field the ``Response`` must
        carry as a non-empty string (else the answer counts as a transient ``InvalidResponse``). A call that is not
        ``idempotent`` is never retried after an error with ``maybe_processed``, is paced by the action's own
        limiter and uses :data:`BATCH_RETRY`.

        An idempotent call whose action has a window (:meth:`window`) waits for a slot of it before each attempt.
        A throttled attempt is sent again at once, without a slot (one random refusal costs no pace); when that
        resend is throttled too, MPS's window is full and the window is cut (``congested``). Every admitted answer
        (a result or a duplicate SessionId) lets a window that held sends back grow. When no slot comes before
        ``deadline``, the call raises the last answer it had, else ``MpsTimeoutError("DeadlineReached")``."""
        payload = json.dumps(params, separators=(",", ":")).encode("ascii")
        if idempotent:
            policy, classify, pace, window = self.retry, _classify, None, self.window(action)
        else:
            policy, classify, pace, window = BATCH_RETRY, _classify_once, self._pacer(action), None
        resend = False  # the next attempt is the immediate resend of a throttled one: it takes no window slot
        last: MpsError | None = None

        def attempt() -> dict[str, Any]:
            nonlocal resend, last
            probe, resend = resend, False
            for limiter in (pace, self.pace, None if probe else window):
                if limiter is not None and not limiter.acquire(deadline):
                    raise _NoSlot
            try:
                response = self._send(action, payload, deadline, require)
            except MpsThrottlingError as exc:
                last = exc
                if window is not None:
                    if probe:
                        window.congested()  # refused twice in a row: MPS's window is full
                    else:
                        resend = True
                raise
            except MpsDuplicateSessionError:
                if window is not None:
                    window.accepted()
                raise
            except MpsError as exc:
                last = exc
                raise
            if window is not None:
                window.accepted()
            return response

        try:
            done = retry(attempt, classify, policy, deadline, paced=window is not None,
                         label=lambda exc: getattr(exc, "code", type(exc).__name__))
        except _NoSlot:  # no slot before the deadline: the last answer says why, if there was one
            if last is not None:
                raise last from None
            raise MpsTimeoutError("DeadlineReached",
                                  f"not sent: no {action} slot before the invocation's deadline") from None
        return CallResult(done.value, done.count, done.retried)

    def window(self, action: str) -> AdaptiveWindow | None:
        """The container's :class:`~mps_triggers.retries.AdaptiveWindow` for ``action`` (None: not paced by one)."""
        with self._credentials_lock:
            if action not in self._windows:
                self._windows[action] = self._make_window(action)
            return self._windows[action]

    def _pacer(self, action: str) -> RateLimiter:
        with self._credentials_lock:
            pacer = self._pacers.get(action)
            if pacer is None:  # 0.9 × the action's limit (BATCH_PACE for BatchProcessMedia)
                pacer = self._pacers[action] = RateLimiter(0.9 * ACTION_LIMITS.get(action, BATCH_REQUESTS_PER_SECOND))
            return pacer

    def _send(self, action: str, payload: bytes, deadline: float | None, require: str | None) -> dict[str, Any]:
        """One signed POST. Every transport and API failure is mapped into MpsError here, and only here. No text
        of the answer other than the API's own ``Error`` (redacted) reaches an error message."""
        httpx = self._httpx
        budget = self.timeout if deadline is None else min(self.timeout, deadline - time.monotonic())
        if budget < self.retry.min_attempt:
            raise MpsTimeoutError("DeadlineReached", "not sent: the invocation's deadline is too near")
        creds = self.credentials()
        headers = tc3_headers(creds.secret_id, creds.secret_key, self.host, action, payload, int(time.time()),
                              region=self.region, token=creds.token, service=self.service, version=self.version)
        try:
            resp = self._http.post(self.url, content=payload, headers=headers, budget=budget)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # no connection: nothing was sent
            raise MpsTimeoutError("Timeout", f"not connected within {budget:.1f} s ({type(exc).__name__})") from None
        except httpx.TimeoutException as exc:
            raise MpsTimeoutError("Timeout", f"no complete answer within {budget:.1f} s ({type(exc).__name__})",
                                  maybe_processed=True) from None
        except httpx.ConnectError as exc:
            raise MpsNetworkError("ConnectError", f"{type(exc).__name__}: {scrub(str(exc))[:200]}") from None
        except httpx.TransportError as exc:
            raise MpsNetworkError("NetworkError", f"{type(exc).__name__}: {scrub(str(exc))[:200]}",
                                  maybe_processed=True) from None
        status = resp.status_code
        if status == 429:
            cls = MpsBatchThrottlingError if action in SLOW_ACTIONS else MpsThrottlingError
            raise cls("HTTP429", "HTTP 429 Too Many Requests", http_status=429)
        if status >= 500:
            raise MpsServerError(f"HTTP{status}", f"HTTP {status} {resp.reason_phrase[:60]}", http_status=status,
                                 maybe_processed=True)
        try:
            response = loads(resp.content).get("Response")
        except (JsonError, AttributeError):
            response = None
        if not isinstance(response, dict):
            raise MpsServerError("InvalidResponse", f"HTTP {status}: the answer is not an API 3.0 JSON document "
                                                    f"({len(resp.content)} bytes, not shown)", http_status=status,
                                 maybe_processed=True)
        request_id = response.get("RequestId") if isinstance(response.get("RequestId"), str) else None
        error = response.get("Error")
        if isinstance(error, dict) and error:
            code, message = error.get("Code"), error.get("Message")
            raise map_error(code[:100] if isinstance(code, str) and code else "Unknown",
                            scrub(message)[:500] if isinstance(message, str) else "", request_id, status, action)
        if status != 200:
            raise map_error(f"HTTP{status}", f"HTTP {status} {resp.reason_phrase[:60]}", request_id, status, action)
        if require and not (isinstance(response.get(require), str) and response[require]):
            raise MpsServerError("InvalidResponse", f"the answer has neither Error nor {require}", request_id, status,
                                 maybe_processed=True)
        return response


def vod_client(endpoint: str, credentials: Credentials | Callable[[], Credentials], **options: Any) -> MpsClient:
    """An :class:`MpsClient` that signs for and speaks VOD (``vod``, API 2018-07-17) at ``endpoint``
    (``vod.tencentcloudapi.com``, ``vod.intl.tencentcloudapi.com``, or the local emulator's URL). ``options`` are
    :class:`MpsClient`'s (``timeout``, ``retry``, ``windows``, ...)."""
    return MpsClient(endpoint, credentials, service=VOD_SERVICE, version=VOD_VERSION, **options)


class _NoSlot(Exception):
    """No pacing slot before the call's deadline (never retried: :meth:`MpsClient.call` raises the last answer)."""


def _classify(exc: Exception, retried: tuple[str, ...]) -> Retry:
    """Throttling is retried until the deadline; other transient errors up to ``max_attempts``; a clock-skew
    ``AuthFailure.SignatureExpire`` once (signed again with a fresh timestamp); everything else fails at once."""
    if isinstance(exc, MpsThrottlingError):
        return Retry.THROTTLED
    if isinstance(exc, MpsTransientError):
        return Retry.AGAIN
    if isinstance(exc, MpsAuthError) and exc.code == "AuthFailure.SignatureExpire" and exc.code not in retried:
        return Retry.AGAIN
    return Retry.FAIL


def _classify_once(exc: Exception, retried: tuple[str, ...]) -> Retry:
    """:func:`_classify` for a request without a SessionId: an error after which MPS may have acted on it
    (``maybe_processed``) is never retried, since a second request would be a second task."""
    if getattr(exc, "maybe_processed", False):
        return Retry.FAIL
    return _classify(exc, retried)
