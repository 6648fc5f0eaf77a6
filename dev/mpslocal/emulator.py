"""A local MPS API emulator speaking the real ProcessMedia protocol over HTTP (dev-only, never in a layer).

What it checks, as MPS does (ProcessMedia API 2019-06-12, API 3.0 "Signature v3", common error codes):

- TC3-HMAC-SHA256 signature, verified independently of the client's signer from the headers actually received
  (SignedHeaders, Host, Content-Type) and the exact body bytes; unknown SecretId → ``AuthFailure.SecretIdNotFound``,
  bad signature → ``AuthFailure.SignatureFailure``, timestamp more than 5 minutes off → ``AuthFailure.SignatureExpire``,
  wrong or missing ``X-TC-Token`` for temporary keys → ``AuthFailure.TokenFailure``.
- The body against the API's shape: every field must exist in the official SDK's ``ProcessMediaRequest`` model
  (``UnknownParameter``), plus the documented value rules (types, enums, ``/`` in ``Object`` and ``OutputDir``,
  required sub-objects, ``SessionId`` ≤ 50, ``SessionContext`` ≤ 1000, ``TasksPriority`` in [-10, 10]; a VOD input
  names its file by ``VODInputInfo.FileId`` with ``VodBasic`` 1, else by ``Bucket``/``Region``/``Object``), and the
  documented limits on combinations, with its own table: AWS-SQS callbacks only for AWS-S3 inputs of the queue's
  region, ``TaskType=Offline`` and AWS-S3 inputs only with transcoding, S3 inputs only from the documented regions,
  S3 outputs only in the input's region.
- 100 requests/s (sliding one-second window) → ``RequestLimitExceeded`` beyond.
- A ``SessionId`` accepted in the last 3 days → ``InvalidParameterValue.SessionId``.
- ``BatchProcessMedia`` too (BatchProcessMedia API 2019-06-12): fields of the SDK's ``BatchProcessMediaRequest``
  only (so no ``SessionId``), ``InputInfo`` a non-empty list of COS or URL inputs, a COS ``OutputStorage`` when an
  input is a URL, ``SmartSubtitlesTask`` required, 20 requests/s in a window of its own. Its tasks are
  ``…-BatchTask-…t20`` and are called back with ``EventType=BatchTask`` and a ``BatchTaskEvent`` shaped as the SDK's
  ``BatchSubTaskResult`` (``InputInfos``, ``Metadatas``, ``SmartSubtitlesTaskResult``: no TaskId, no task status).

Accepted tasks get TaskIds of the real shape (``1250000000-WorkflowTask-<32 hex>tt7``, ``…-ScheduleTask-…``) and
are kept for inspection: :attr:`MpsEmulator.tasks` in process, ``GET /_emulator/tasks`` over HTTP. Each task records
the ``(bucket, path)`` of every output MPS would write (:attr:`Task.outputs`: the task's ``OutputObjectPath`` or MPS's
default name under ``OutputDir``, with every documented filename variable rendered), so a test can assert that no
two tasks write the same object.

With ``complete_after`` set, each accepted task completes after that many seconds and is notified as MPS does,
following its ``TaskNotifyConfig``: ``URL`` (HTTP POST of the JSON body, with ``Timestamp``/``Sign`` when a
NotifyKey was given, retried on failure), ``AWS-SQS`` (a message on the named queue, through ``sqs_endpoint``), or
none (the account's SCF MPS trigger, when :attr:`MpsEmulator.mps_trigger` is set). ``NotifyMode=Change`` sends
PROCESSING, then FINISH. ScheduleId requests produce ScheduleTask events, inline tasks WorkflowTask events; every
``fail_every``-th task has one failed subtask (the task still FINISHes). Every delivery is kept in
:attr:`MpsEmulator.deliveries`.

Example::

    with MpsEmulator(secret_id="AKIDlocal", secret_key="local-secret") as mps:
        os.environ["MPS_ENDPOINT"] = mps.url          # http://127.0.0.1:<port>
"""
from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import re
import threading
import time
import uuid
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from mps_triggers.redaction import redact

from .notifications import batch_output_paths, batch_task_event, notification, output_paths, task_event

SESSION_TTL = 3 * 24 * 3600
TASK_FIELDS = ("MediaProcessTask", "AiContentReviewTask", "AiAnalysisTask", "AiRecognitionTask",
               "AiQualityControlTask", "SmartSubtitlesTask", "SmartEraseTask")
_AUTH = re.compile(r"^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z]+)/tc3_request, "
                   r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


@dataclass
class FaultPlan:
    """Faults injected at random, per request, at the given rates (0..1), from a seeded RNG (reproducible runs).

    Answered before the rate limiter, as a failing proxy or an overloaded front end would, so they do not use up
    the account's 100 requests/s: ``throttle`` (RequestLimitExceeded), ``internal`` (InternalError), ``http5xx``
    (HTTP 503), ``drop`` (connection closed unanswered), ``timeout`` (the request is processed, the answer comes
    ``timeout_seconds`` late: the client gives up on a task MPS did accept), ``trickle`` (the request is processed,
    then the answer, status line and headers included, is sent one byte every ``trickle_seconds``: a peer that
    defeats per-read timeouts). Callback faults: ``duplicate_callback`` sends a notification twice, ``reorder``
    sends FINISH before PROCESSING (NotifyMode Change).
    """

    throttle: float = 0.0
    internal: float = 0.0
    http5xx: float = 0.0
    drop: float = 0.0
    timeout: float = 0.0
    timeout_seconds: float = 2.0
    trickle: float = 0.0
    trickle_seconds: float = 0.5
    duplicate_callback: float = 0.0
    reorder: float = 0.0
    seed: int = 1

    def __post_init__(self) -> None:
        import random

        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def request_fault(self) -> str | None:
        """The fault for one request, or None: one roll decides among all request faults."""
        with self._lock:
            r = self._rng.random()
        for rate, fault in ((self.throttle, "RequestLimitExceeded"), (self.internal, "InternalError"),
                            (self.http5xx, "HTTP503"), (self.drop, "drop"),
                            (self.timeout, f"sleep:{self.timeout_seconds}"),
                            (self.trickle, f"trickle:{self.trickle_seconds}")):
            if r < rate:
                return fault
            r -= rate
        return None


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(f"{code}: {message}")


@dataclass
class Task:
    """An accepted ProcessMedia request."""

    task_id: str
    request_id: str
    received_at: float
    session_id: str | None
    body: dict[str, Any]
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (bucket, path) MPS writes, rendered by MPS's rules
    input_fetch: str | None = None  # URL input: "ok: <bytes> bytes" or why the download failed

    @property
    def session_context(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.body.get("SessionContext") or "")
        except ValueError:
            return None


@dataclass
class RequestRecord:
    """Every request seen, accepted or not: ``verdict`` is ``accepted`` or the error code answered."""

    at: float
    action: str
    verdict: str
    session_id: str | None = None
    signed: bool = False


@dataclass
class Delivery:
    """One notification sent (or not) for a task: transport ``URL``/``AWS-SQS``/``SCF``, and the outcome."""

    task_id: str
    status: str
    transport: str
    ok: bool
    attempts: int
    error: str | None = None
    body: dict[str, Any] | None = None
    scheduled_at: float = 0.0  # time.monotonic() it was due: the order MPS sent it in


@dataclass
class EmulatorState:
    tasks: list[Task] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    sessions: dict[str, float] = field(default_factory=dict)
    window: deque = field(default_factory=deque)
    batch_window: deque = field(default_factory=deque)
    faults: deque = field(default_factory=deque)
    inflight: int = 0
    max_inflight: int = 0


class DropConnection(Exception):
    """Close the connection without answering (an injected fault)."""


class MpsEmulator:
    """Local MPS endpoint. ``credentials`` maps SecretId → (SecretKey, token or None).

    ``rate_limit`` is requests per second (None: unlimited); ``latency`` seconds are added before every answer;
    ``app_id`` goes into TaskIds. Use as a context manager or call :meth:`start`/:meth:`stop`.
    """

    def __init__(self, secret_id: str = "AKIDlocalEMULATOR", secret_key: str = "local-emulator-secret-key",
                 token: str | None = None, app_id: str = "1250000000", rate_limit: int | None = 100,
                 latency: float = 0.0, host: str = "127.0.0.1", port: int = 0, complete_after: float | None = None,
                 sqs_endpoint: str | None = None, fail_every: int = 3, batch_rate_limit: int | None = 20) -> None:
        self.credentials = {secret_id: (secret_key, token)}
        self.aws_keys: dict[str, str] = {}  # AWS AccessKeyId → secret key, to verify presigned S3 URLs (URL input)
        self.app_id = app_id
        self.rate_limit = rate_limit
        self.batch_rate_limit = batch_rate_limit
        self.latency = latency
        self.complete_after = complete_after
        self.sqs_endpoint = sqs_endpoint
        self.fail_every = fail_every
        self.plan: FaultPlan | None = None
        self.mps_trigger: Callable[[dict[str, Any]], Any] | None = None
        self.deliveries: list[Delivery] = []
        self.state = EmulatorState()
        self._lock = threading.Lock()
        self._due: list[tuple[float, int, Task, str, bool]] = []
        self._bodies: dict[tuple[str, str], dict[str, Any]] = {}
        self._due_cv = threading.Condition()
        self._seq = 0
        self._senders = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mps-notify")
        self._stopping = False
        self._scheduler = threading.Thread(target=self._run_scheduler, name="mps-scheduler", daemon=True)
        self._sqs_clients: dict[str, Any] = {}
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"  # listening everywhere

    def start(self) -> "MpsEmulator":
        self._thread = threading.Thread(target=self._server.serve_forever, name="mps-emulator", daemon=True)
        self._thread.start()
        self._scheduler.start()
        return self

    def stop(self) -> None:
        with self._due_cv:
            self._stopping = True
            self._due_cv.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._senders.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "MpsEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- inspection ------------------------------------------------------------------------------------------------

    @property
    def tasks(self) -> list[Task]:
        with self._lock:
            return list(self.state.tasks)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self.state.requests)

    def inject(self, fault: str, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``fault`` instead of processing them.

        ``fault`` is an API error code (``RequestLimitExceeded``, ``InternalError``, ``AuthFailure.SecretIdNotFound``),
        ``HTTP503`` (any status), ``drop`` (close the connection unanswered), ``sleep:SECONDS`` (process the request,
        then answer SECONDS late: a client that times out has in fact been accepted) or ``trickle:SECONDS`` (process
        it, then send the answer one byte every SECONDS).
        """
        with self._lock:
            self.state.faults.extend([fault] * times)

    def clear_faults(self) -> None:
        """Drop the faults :meth:`inject` queued that no request has used yet."""
        with self._lock:
            self.state.faults.clear()

    def forget_sessions(self) -> None:
        """Drop the SessionId memory (as if 3 days had passed)."""
        with self._lock:
            self.state.sessions.clear()

    # --- protocol -------------------------------------------------------------------------------------------------

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any], float]:
        """Answer one POST: ``(http status, JSON document, seconds per byte)``; the last is 0 except for a trickle
        fault. Errors come back as HTTP 200 with ``Error``."""
        with self._lock:
            self.state.inflight += 1
            self.state.max_inflight = max(self.state.max_inflight, self.state.inflight)
        try:
            return self._handle(headers, body)
        finally:
            with self._lock:
                self.state.inflight -= 1

    def _handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any], float]:
        request_id = str(uuid.uuid4())
        action = headers.get("x-tc-action", "")
        record = RequestRecord(at=time.time(), action=action, verdict="accepted")
        with self._lock:
            fault = self.state.faults.popleft() if self.state.faults else None
        if fault is None and self.plan is not None:
            fault = self.plan.request_fault()
        late = trickle = 0.0
        if fault is not None and fault.startswith("sleep:"):
            late, fault = float(fault[6:]), None
        elif fault is not None and fault.startswith("trickle:"):
            trickle, fault = float(fault[8:]), None
        if fault is not None:
            with self._lock:
                self.state.requests.append(RequestRecord(record.at, action, f"injected:{fault}"))
            if fault == "drop":
                raise DropConnection()
            if fault.startswith("HTTP"):
                return int(fault[4:]), {"message": "injected server error"}, 0.0
            return 200, {"Response": {"Error": {"Code": fault, "Message": "injected fault"}, "RequestId": request_id}}, 0.0
        try:
            self._verify(headers, body)
            record.signed = True
            if action not in ("ProcessMedia", "BatchProcessMedia"):
                raise ApiError("InvalidAction", f"action {action!r} is not supported by this emulator")
            self._admit(action)
            params = _parse(body)
            if action == "BatchProcessMedia":
                validate_batch_process_media(params)
                task = self._accept(params, request_id, batch=True)
            else:
                validate_process_media(params)
                record.session_id = params.get("SessionId") or None
                task = self._accept(params, request_id)
            response: dict[str, Any] = {"TaskId": task.task_id, "RequestId": request_id}
        except ApiError as exc:
            record.verdict = exc.code
            response = {"Error": {"Code": exc.code, "Message": exc.message}, "RequestId": request_id}
        with self._lock:
            self.state.requests.append(record)
        if late or trickle:
            with self._lock:
                self.state.requests.append(RequestRecord(record.at, action,
                                                         "injected:timeout" if late else "injected:trickle"))
        if self.latency or late:
            time.sleep(self.latency + late)
        return 200, {"Response": response}, trickle

    def _verify(self, headers: dict[str, str], body: bytes) -> None:
        verify_tc3(headers, body, self.credentials, "mps", "2019-06-12")

    def _admit(self, action: str) -> None:
        """Each API's own limit over a sliding one-second window (ProcessMedia 100/s, BatchProcessMedia 20/s)."""
        batch = action == "BatchProcessMedia"
        limit = self.batch_rate_limit if batch else self.rate_limit
        if limit is None:
            return
        now = time.monotonic()
        with self._lock:
            window = self.state.batch_window if batch else self.state.window
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= limit:
                raise ApiError("RequestLimitExceeded", f"{action} request rate over {limit}/s")
            window.append(now)

    def _accept(self, params: dict[str, Any], request_id: str, batch: bool = False) -> Task:
        sid = params.get("SessionId") or None
        now = time.time()
        kind = "BatchTask" if batch else "ScheduleTask" if params.get("ScheduleId") is not None else "WorkflowTask"
        with self._lock:
            if sid is not None:
                seen = self.state.sessions.get(sid)
                if seen is not None and now - seen < SESSION_TTL:
                    raise ApiError("InvalidParameterValue.SessionId",
                                   "Duplicate recognition code, request deduplicated")
                self.state.sessions[sid] = now
            task_id = f"{self.app_id}-{kind}-{uuid.uuid4().hex}{'t20' if batch else 'tt7'}"
            task = Task(task_id, request_id, now, sid, params,
                        batch_output_paths(params) if batch else output_paths(params, task_id))
        inputs = params["InputInfo"] if batch else [params["InputInfo"]]
        fetched = [self._fetch(i["UrlInputInfo"]["Url"]) for i in inputs if i.get("Type") == "URL"]
        if fetched:  # fetched at once here; MPS downloads when the task starts
            task.input_fetch = "; ".join(fetched)
        with self._lock:
            self.state.tasks.append(task)
        if self.complete_after is not None:
            notify = params.get("TaskNotifyConfig") or {}
            plan = self.plan
            if notify.get("NotifyMode") == "Change":
                swap = plan is not None and plan.roll(plan.reorder)  # FINISH overtakes PROCESSING
                self._schedule(task, "PROCESSING", self.complete_after * (1.2 if swap else 0.5))
            self._schedule(task, "FINISH", self.complete_after)
            if plan is not None and plan.roll(plan.duplicate_callback):
                self._schedule(task, "FINISH", self.complete_after * 1.5, duplicate=True)
        return task

    # --- completion and notification ------------------------------------------------------------------------

    def _schedule(self, task: Task, status: str, delay: float, duplicate: bool = False) -> None:
        with self._due_cv:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._seq, task, status, duplicate))
            self._due_cv.notify()

    def _run_scheduler(self) -> None:
        while True:
            with self._due_cv:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    self._due_cv.wait(timeout=(self._due[0][0] - time.monotonic()) if self._due else None)
                if self._stopping:
                    return
                due, _, task, status, duplicate = heapq.heappop(self._due)
            try:
                self._senders.submit(self._notify, task, status, duplicate, due)
            except RuntimeError:  # shutting down
                return

    def pending_notifications(self) -> int:
        with self._due_cv:
            return len(self._due)

    def _notify(self, task: Task, status: str, duplicate: bool = False, due: float = 0.0) -> None:
        """Build (or, for a duplicate delivery, reuse) the notification of ``task`` at ``status`` and deliver it."""
        params = task.body
        notify = params.get("TaskNotifyConfig") or {}
        with self._lock:
            body = self._bodies.get((task.task_id, status)) if duplicate else None
        if body is None:
            fail_index = None
            if self.fail_every and int(task.task_id.split("-")[-1][:8], 16) % self.fail_every == 0:
                fail_index = -1  # the last subtask fails, the others succeed
            if "-BatchTask-" in task.task_id:
                event_type, event = "BatchTask", batch_task_event(params, status, fail_index is not None)
            else:
                event_type, event = task_event(params, task.task_id, status, fail_index)
            body = notification(event_type, event, params.get("SessionId", ""), params.get("SessionContext", ""),
                                notify.get("NotifyKey"))
            with self._lock:
                self._bodies[(task.task_id, status)] = body
        ntype = notify.get("NotifyType") or ("SCF" if not notify else "TDMQ-CMQ")
        attempts, error = 0, None
        for attempts in range(1, 4):
            try:
                if ntype == "URL":
                    self._post(notify["NotifyUrl"], body)
                elif ntype == "AWS-SQS":
                    self._sqs_send(notify["AwsSQS"], body)
                elif ntype == "SCF" and self.mps_trigger is not None:
                    self.mps_trigger(body)
                else:
                    error = f"NotifyType {ntype} is not deliverable here"
                    break
                error = None
                break
            except Exception as exc:  # the receiver failed: MPS retries a URL callback a few times
                error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2 * attempts)
        with self._lock:
            self.deliveries.append(Delivery(task.task_id, status + (" (duplicate)" if duplicate else ""), ntype,
                                            error is None, attempts, error, body, due))

    def _post(self, url: str, body: dict[str, Any]) -> None:
        import httpx

        resp = httpx.post(url, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
                          timeout=30)
        if resp.status_code // 100 != 2:
            raise RuntimeError(f"callback answered HTTP {resp.status_code}: {resp.text[:200]}")

    def _fetch(self, url: str) -> str:
        """Download a URL input as MPS would; a presigned S3 URL is first verified with :func:`verify_presigned`."""
        import httpx

        if "X-Amz-Signature=" in url:
            try:
                verify_presigned(url, self.aws_keys)
            except ValueError as exc:
                return f"error: presigned URL refused: {exc}"
        try:
            resp = httpx.get(url, timeout=10)
        except httpx.HTTPError as exc:
            return f"error: {type(exc).__name__}"
        if resp.status_code != 200:
            return f"error: HTTP {resp.status_code}"
        return f"ok: {len(resp.content)} bytes"

    def _sqs_send(self, cfg: dict[str, Any], body: dict[str, Any]) -> None:
        import boto3

        region = cfg["SQSRegion"]
        client = self._sqs_clients.get(region)
        if client is None:
            client = self._sqs_clients[region] = boto3.client(
                "sqs", region_name=region, endpoint_url=self.sqs_endpoint,
                aws_access_key_id=cfg.get("S3SecretId") or "testing",
                aws_secret_access_key=cfg.get("S3SecretKey") or "testing")
        url = client.get_queue_url(QueueName=cfg["SQSQueueName"])["QueueUrl"]
        client.send_message(QueueUrl=url, MessageBody=json.dumps(body))


def verify_tc3(headers: dict[str, str], body: bytes, credentials: dict[str, tuple[str, str | None]], service: str,
               version: str) -> None:
    """Check a TencentCloud API 3.0 request's TC3-HMAC-SHA256 signature (POST, JSON body) with this module's own
    code, as the API does: a known SecretId, the credential scope's service, ``X-TC-Version``, a timestamp within
    5 minutes whose UTC date is the scope's, ``content-type`` and ``host`` signed, the signature, and ``X-TC-Token``
    for temporary keys. ``headers`` lower-cased; ``credentials`` SecretId → (SecretKey, token or None). Raises
    :class:`ApiError` with the API's error code."""
    m = _AUTH.match(headers.get("authorization", ""))
    if not m:
        raise ApiError("AuthFailure.InvalidAuthorization", "Authorization header is not TC3-HMAC-SHA256")
    secret_id, date, scope_service, signed_headers, signature = m.groups()
    if secret_id not in credentials:
        raise ApiError("AuthFailure.SecretIdNotFound", "the SecretId is not found")
    secret_key, token = credentials[secret_id]
    if scope_service != service or headers.get("x-tc-version") != version:
        raise ApiError("AuthFailure.InvalidAuthorization", f"service must be {service}, X-TC-Version {version}")
    try:
        ts = int(headers.get("x-tc-timestamp", ""))
    except ValueError:
        raise ApiError("AuthFailure.InvalidAuthorization", "X-TC-Timestamp missing or not an integer") from None
    if abs(time.time() - ts) > 300:
        raise ApiError("AuthFailure.SignatureExpire", "signature expired: timestamp off by more than 5 minutes")
    if datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d") != date:
        raise ApiError("AuthFailure.SignatureFailure", "credential date is not the UTC date of X-TC-Timestamp")
    names = signed_headers.split(";")
    if "content-type" not in names or "host" not in names:
        raise ApiError("AuthFailure.SignatureFailure", "content-type and host must be signed")
    # API 3.0 signature v3: canonical header names and values are lower-cased and trimmed.
    canonical_headers = "".join(f"{n}:{headers.get(n, '').strip().lower()}\n" for n in names)
    canonical = "\n".join(["POST", "/", "", canonical_headers, signed_headers, hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(ts), scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ApiError("AuthFailure.SignatureFailure", "the request signature does not match")
    if token is not None and headers.get("x-tc-token") != token:
        raise ApiError("AuthFailure.TokenFailure", "X-TC-Token is missing or wrong for temporary credentials")


def verify_presigned(url: str, secrets: dict[str, str], now: float | None = None) -> None:
    """Check an S3 presigned GET URL (SigV4 query authentication) as S3 would, with code of its own: algorithm,
    credential scope, ``X-Amz-Expires`` ≤ 604,800 s and not past, ``host`` the only signed header, and the signature
    over the canonical request (``UNSIGNED-PAYLOAD``). Raises ValueError saying what is wrong."""
    from urllib.parse import parse_qsl, quote, urlsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    q = dict(query)
    if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise ValueError("X-Amz-Algorithm is not AWS4-HMAC-SHA256")
    try:
        key_id, date, region, service, terminator = q["X-Amz-Credential"].split("/")
        amz_date, expires = q["X-Amz-Date"], int(q["X-Amz-Expires"])
    except (KeyError, ValueError):
        raise ValueError("X-Amz-Credential, X-Amz-Date or X-Amz-Expires missing or malformed") from None
    if service != "s3" or terminator != "aws4_request" or not amz_date.startswith(date):
        raise ValueError("credential scope is not <date>/<region>/s3/aws4_request of X-Amz-Date")
    if not 1 <= expires <= 604800:
        raise ValueError("X-Amz-Expires must be 1..604800 seconds")
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    if (time.time() if now is None else now) > signed_at + expires:
        raise ValueError("the URL has expired")
    if q.get("X-Amz-SignedHeaders") != "host":
        raise ValueError("only host may be signed for a URL handed to a third party")
    secret = secrets.get(key_id)
    if secret is None:
        raise ValueError("unknown access key")

    def enc(v: str) -> str:
        return quote(v, safe="-_.~")
    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query) if k != "X-Amz-Signature")
    canonical = "\n".join(["GET", parts.path or "/", canonical_query, f"host:{parts.netloc}\n", "host",
                           "UNSIGNED-PAYLOAD"])
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest(), q.get("X-Amz-Signature", "")):
        raise ValueError("SignatureDoesNotMatch")


def _parse(body: bytes) -> dict[str, Any]:
    try:
        params = json.loads(body)
    except ValueError:
        raise ApiError("InvalidParameter", "the request body is not JSON") from None
    if not isinstance(params, dict):
        raise ApiError("InvalidParameter", "the request body is not a JSON object")
    return params


# --- ProcessMedia body validation ------------------------------------------------------------------------------------

_sdk_lock = threading.Lock()


def unknown_fields(params: dict[str, Any], model: str = "ProcessMediaRequest", service: str = "mps") -> list[str]:
    """Paths of fields the official SDK's ``model`` (``ProcessMediaRequest`` by default; of ``service`` ``mps``
    2019-06-12 or ``vod`` 2018-07-17) does not know (``MediaProcessTask.Xx``)."""
    import importlib

    from tencentcloud.common.abstract_model import AbstractModel

    models = importlib.import_module("tencentcloud.vod.v20180717.models" if service == "vod"
                                     else "tencentcloud.mps.v20190612.models")

    request = getattr(models, model)()
    with _sdk_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        request._deserialize(params)
    found: list[str] = []

    def walk(value: Any, model: Any, path: str) -> None:
        if isinstance(value, dict) and isinstance(model, AbstractModel):
            known = vars(model)
            for k, v in value.items():
                if "_" + k not in known:
                    found.append(f"{path}{k}")
                else:
                    walk(v, known["_" + k], f"{path}{k}.")
        elif isinstance(value, list) and isinstance(model, list):
            for i, (v, m) in enumerate(zip(value, model)):
                walk(v, m, f"{path[:-1]}[{i}].")

    walk(params, request, "")
    return found


def _need(cond: bool, code: str, message: str) -> None:
    if not cond:
        raise ApiError(code, message)


def _typed(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], path: str, required: bool = False) -> Any:
    value = obj.get(name)
    if value is None:
        _need(not required, "MissingParameter", f"{path}{name} is required")
        return None
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    _need(ok, "InvalidParameter", f"{path}{name} must be of type {getattr(kind, '__name__', kind)}")
    return value


def validate_process_media(params: dict[str, Any]) -> None:
    """Raise :class:`ApiError` (``UnknownParameter``, ``MissingParameter``, ``InvalidParameter``,
    ``InvalidParameterValue.*``) where ``params`` break the ProcessMedia API's documented shape."""
    unknown = unknown_fields(params)
    _need(not unknown, "UnknownParameter", f"unknown parameter(s): {', '.join(unknown)}")
    info = _typed(params, "InputInfo", dict, "", required=True)
    kind = _typed(info, "Type", str, "InputInfo.", required=True)
    _need(kind in ("COS", "URL", "AWS-S3", "VOD"), "InvalidParameterValue", f"InputInfo.Type {kind!r} is invalid")
    if kind == "COS":
        cos = _typed(info, "CosInputInfo", dict, "InputInfo.", required=True)
        for f in ("Bucket", "Region", "Object"):
            _typed(cos, f, str, "InputInfo.CosInputInfo.", required=True)
        _need(cos["Object"].startswith("/"), "InvalidParameterValue", "InputInfo.CosInputInfo.Object must start with /")
        _need(re.match(r"^[a-z0-9-]+-\d+$", cos["Bucket"]) is not None, "InvalidParameterValue",
              "InputInfo.CosInputInfo.Bucket must be name-appid")
    elif kind == "AWS-S3":
        s3 = _typed(info, "S3InputInfo", dict, "InputInfo.", required=True)
        for f in ("S3Bucket", "S3Region", "S3Object"):
            _typed(s3, f, str, "InputInfo.S3InputInfo.", required=True)
        for f in ("S3SecretId", "S3SecretKey"):
            _typed(s3, f, str, "InputInfo.S3InputInfo.")
    elif kind == "VOD":  # VODInputInfo: a VOD standard-edition file by FileId (VodBasic 1), else Bucket/Region/Object
        vod = _typed(info, "VODInputInfo", dict, "InputInfo.", required=True)
        basic = _typed(vod, "VodBasic", int, "InputInfo.VODInputInfo.")
        _need(basic in (None, 0, 1), "InvalidParameterValue", "InputInfo.VODInputInfo.VodBasic must be 0 or 1")
        _typed(vod, "SubAppId", int, "InputInfo.VODInputInfo.")
        for f in (("FileId",) if basic == 1 else ("Bucket", "Region", "Object")):
            _typed(vod, f, str, "InputInfo.VODInputInfo.", required=True)
    elif kind == "URL":
        _typed(_typed(info, "UrlInputInfo", dict, "InputInfo.", required=True), "Url", str, "InputInfo.UrlInputInfo.",
               required=True)
        _need(isinstance(params.get("OutputStorage"), dict), "MissingParameter",
              "OutputStorage is required when InputInfo.Type is URL")
    out = _typed(params, "OutputStorage", dict, "")
    if out is not None:
        okind = _typed(out, "Type", str, "OutputStorage.", required=True)
        _need(okind in ("COS", "AWS-S3", "VOD"), "InvalidParameterValue", f"OutputStorage.Type {okind!r} is invalid")
        if okind == "COS":
            cos_out = _typed(out, "CosOutputStorage", dict, "OutputStorage.") or {}
            _typed(cos_out, "Bucket", str, "OutputStorage.CosOutputStorage.")
            _typed(cos_out, "Region", str, "OutputStorage.CosOutputStorage.")
        elif okind == "AWS-S3":
            s3o = _typed(out, "S3OutputStorage", dict, "OutputStorage.", required=True)
            _typed(s3o, "S3Bucket", str, "OutputStorage.S3OutputStorage.", required=True)
            _typed(s3o, "S3Region", str, "OutputStorage.S3OutputStorage.", required=True)
    out_dir = _typed(params, "OutputDir", str, "")
    if out_dir is not None:
        _need(out_dir.startswith("/") and out_dir.endswith("/"), "InvalidParameterValue",
              "OutputDir must start and end with /")
    schedule = _typed(params, "ScheduleId", int, "")
    tasks = [name for name in TASK_FIELDS if _typed(params, name, dict, "") is not None]
    _need(schedule is not None or bool(tasks), "MissingParameter",
          "give ScheduleId or at least one task parameter (MediaProcessTask, AiAnalysisTask, ...)")
    notify = _typed(params, "TaskNotifyConfig", dict, "")
    if notify is not None:
        ntype = _typed(notify, "NotifyType", str, "TaskNotifyConfig.") or "TDMQ-CMQ"
        _need(ntype in ("CMQ", "TDMQ-CMQ", "URL", "SCF", "AWS-SQS"), "InvalidParameterValue",
              f"TaskNotifyConfig.NotifyType {ntype!r} is invalid")
        if ntype == "URL":
            url = _typed(notify, "NotifyUrl", str, "TaskNotifyConfig.", required=True)
            _need(url.startswith(("http://", "https://")), "InvalidParameterValue", "NotifyUrl must be http(s)")
        if ntype == "AWS-SQS":
            sqs = _typed(notify, "AwsSQS", dict, "TaskNotifyConfig.", required=True)
            _typed(sqs, "SQSRegion", str, "TaskNotifyConfig.AwsSQS.", required=True)
            _typed(sqs, "SQSQueueName", str, "TaskNotifyConfig.AwsSQS.", required=True)
        mode = _typed(notify, "NotifyMode", str, "TaskNotifyConfig.")
        _need(mode in (None, "Finish", "Change"), "InvalidParameterValue", f"NotifyMode {mode!r} is invalid")
        _typed(notify, "NotifyKey", str, "TaskNotifyConfig.")
    prio = _typed(params, "TasksPriority", int, "")
    _need(prio is None or -10 <= prio <= 10, "InvalidParameterValue", "TasksPriority must be in [-10, 10]")
    ttype = _typed(params, "TaskType", str, "")
    _need(ttype in (None, "Online", "Offline"), "InvalidParameterValue", f"TaskType {ttype!r} is invalid")
    sid = _typed(params, "SessionId", str, "")
    _need(sid is None or len(sid) <= 50, "InvalidParameterValue.SessionIdTooLong", "SessionId is too long")
    ctx = _typed(params, "SessionContext", str, "")
    _need(ctx is None or len(ctx) <= 1000, "InvalidParameterValue.SessionContextTooLong", "SessionContext is too long")
    _combinations(params)


def unknown_batch_fields(params: dict[str, Any]) -> list[str]:
    """Paths of fields the official SDK's ``BatchProcessMediaRequest`` does not know (``SessionId`` is one)."""
    return unknown_fields(params, "BatchProcessMediaRequest")


def _media_input(info: Any, path: str, allowed: tuple[str, ...]) -> str:
    """Check one ``MediaInputInfo``; returns its Type."""
    _need(isinstance(info, dict), "InvalidParameter", f"{path} must be an object")
    kind = _typed(info, "Type", str, f"{path}.", required=True)
    _need(kind in allowed, "InvalidParameterValue", f"{path}.Type {kind!r} is invalid here (allowed: {allowed})")
    if kind == "COS":
        cos = _typed(info, "CosInputInfo", dict, f"{path}.", required=True)
        for f in ("Bucket", "Region", "Object"):
            _typed(cos, f, str, f"{path}.CosInputInfo.", required=True)
        _need(cos["Object"].startswith("/"), "InvalidParameterValue", f"{path}.CosInputInfo.Object must start with /")
    elif kind == "URL":
        _typed(_typed(info, "UrlInputInfo", dict, f"{path}.", required=True), "Url", str, f"{path}.UrlInputInfo.",
               required=True)
    return kind


def validate_batch_process_media(params: dict[str, Any]) -> None:
    """Raise :class:`ApiError` where ``params`` break the BatchProcessMedia API's documented shape: SDK fields only,
    ``InputInfo`` a non-empty list of COS/URL inputs (the API is for URL video links; COS as any MediaInputInfo),
    ``OutputStorage`` COS and required with a URL input ("currently only support COS output"), ``OutputDir``
    ``/…/``, ``SmartSubtitlesTask`` (its only task), ``TaskNotifyConfig`` (AWS-SQS is for AWS-S3 inputs, which this
    API does not take), ``TasksPriority`` in [-10, 10], ``SessionContext`` ≤ 1000."""
    unknown = unknown_batch_fields(params)
    _need(not unknown, "UnknownParameter", f"unknown parameter(s): {', '.join(unknown)}")
    inputs = params.get("InputInfo")
    _need(inputs is not None, "MissingParameter", "InputInfo is required")
    _need(isinstance(inputs, list) and len(inputs) > 0, "InvalidParameter", "InputInfo must be a non-empty list")
    kinds = {_media_input(info, f"InputInfo[{i}]", ("COS", "URL")) for i, info in enumerate(inputs)}
    out = _typed(params, "OutputStorage", dict, "")
    _need("URL" not in kinds or out is not None, "MissingParameter",
          "OutputStorage is required when InputInfo.Type is URL")
    if out is not None:
        _need(_typed(out, "Type", str, "OutputStorage.", required=True) == "COS", "InvalidParameterValue",
              "OutputStorage.Type: only COS output is supported")
        cos_out = _typed(out, "CosOutputStorage", dict, "OutputStorage.", required=True)
        _typed(cos_out, "Bucket", str, "OutputStorage.CosOutputStorage.", required=True)
        _typed(cos_out, "Region", str, "OutputStorage.CosOutputStorage.", required=True)
    out_dir = _typed(params, "OutputDir", str, "")
    _need(out_dir is None or (out_dir.startswith("/") and out_dir.endswith("/")), "InvalidParameterValue",
          "OutputDir must start and end with /")
    subs = _typed(params, "SmartSubtitlesTask", dict, "")
    _need(subs is not None, "MissingParameter", "SmartSubtitlesTask is required (the only task of this API)")
    _need(isinstance(subs.get("Definition"), int) or isinstance(subs.get("RawParameter"), dict),
          "MissingParameter", "SmartSubtitlesTask needs Definition or RawParameter")
    notify = _typed(params, "TaskNotifyConfig", dict, "")
    if notify is not None:
        ntype = _typed(notify, "NotifyType", str, "TaskNotifyConfig.") or "TDMQ-CMQ"
        _need(ntype != "AWS-SQS", "InvalidParameterValue.NotifyType", "AWS-SQS notification is only for AWS tasks")
        if ntype == "URL":
            url = _typed(notify, "NotifyUrl", str, "TaskNotifyConfig.", required=True)
            _need(url.startswith(("http://", "https://")), "InvalidParameterValue", "NotifyUrl must be http(s)")
    prio = _typed(params, "TasksPriority", int, "")
    _need(prio is None or -10 <= prio <= 10, "InvalidParameterValue", "TasksPriority must be in [-10, 10]")
    ctx = _typed(params, "SessionContext", str, "")
    _need(ctx is None or len(ctx) <= 1000, "InvalidParameterValue.SessionContextTooLong", "SessionContext is too long")


# MPS's documented limits on what a request may combine, written here independently of mps_triggers.constraints
# (SDK models: MediaInputInfo.Type "AWS-S3: currently transcoding only", S3InputInfo.S3Region, TaskNotifyConfig
# "AWS-SQS: only for AWS tasks, same region", TaskOutputStorage "AWS-S3: same region"; tutorials: off-peak for
# transcoding nodes only; the S3 tutorial's region).
EMULATED_S3_REGIONS = ("us-east-1", "eu-west-3", "ap-southeast-1")


def _inline_kinds(params: dict[str, Any]) -> set[str]:
    kinds = {name for name in TASK_FIELDS if params.get(name) is not None and name != "MediaProcessTask"}
    mpt = params.get("MediaProcessTask") or {}
    kinds |= {f"MediaProcessTask.{k}" for k, v in mpt.items() if v}
    return kinds


def _combinations(params: dict[str, Any]) -> None:
    info = params["InputInfo"]
    s3 = info.get("S3InputInfo") if info.get("Type") == "AWS-S3" else None
    inline = _inline_kinds(params)
    transcoding_only = inline <= {"MediaProcessTask.TranscodeTaskSet"}
    notify = params.get("TaskNotifyConfig") or {}
    if notify.get("NotifyType") == "AWS-SQS":
        _need(s3 is not None, "InvalidParameterValue.NotifyType", "AWS-SQS notification is only for AWS tasks")
        _need(notify["AwsSQS"]["SQSRegion"] == s3["S3Region"], "InvalidParameterValue.NotifyType",
              "AWS-SQS notification requires the queue in the input's region")
    if params.get("TaskType") == "Offline":
        _need(transcoding_only, "InvalidParameterValue.TaskType", "off-peak processing is for transcoding tasks only")
    if s3 is not None:
        _need(transcoding_only, "InvalidParameterValue.InputInfo", "an AWS-S3 source supports transcoding tasks only")
        _need(s3["S3Region"] in EMULATED_S3_REGIONS, "InvalidParameterValue.S3Region",
              f"AWS-S3 sources are supported in {', '.join(EMULATED_S3_REGIONS)}")
        out = (params.get("OutputStorage") or {}).get("S3OutputStorage")
        _need(out is None or out.get("S3Region") == s3["S3Region"], "InvalidParameterValue.OutputStorage",
              "AWS-S3 output storage must be in the input's region")


# --- HTTP plumbing ---------------------------------------------------------------------------------------------------

def _handler_for(emulator: MpsEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mps-emulator"
        disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, doc, trickle = emulator.handle(headers, body)
            except DropConnection:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self._send(status, doc, trickle)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/_emulator/tasks":
                self._send(200, [{"TaskId": t.task_id, "SessionId": t.session_id, "ReceivedAt": t.received_at,
                                  "Request": redact(t.body), "Outputs": [list(o) for o in t.outputs]}
                                 for t in emulator.tasks])
            elif self.path == "/_emulator/requests":
                self._send(200, [vars(r) for r in emulator.requests])
            else:
                self._send(404, {"error": "not found"})

        def _send(self, status: int, doc: Any, trickle: float = 0.0) -> None:
            data = json.dumps(doc).encode()
            if trickle:  # one byte at a time, from the status line on: each read succeeds, the answer never ends
                raw = (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                       f"\r\n").encode() + data
                try:
                    for i in range(len(raw)):
                        self.wfile.write(raw[i:i + 1])
                        self.wfile.flush()
                        time.sleep(trickle)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True
                return
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout): nothing to answer
                self.close_connection = True

        def log_message(self, *args: Any) -> None:  # keep test and demo output clean
            pass

    return Handler
