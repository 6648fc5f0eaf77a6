"""A local Tencent VOD endpoint (dev-only): a VOD application's files and events, over the real API 3.0 protocol.

What it does and checks, with its own code (VOD API 2018-07-17; the official SDK's models, test-only):

- TC3-HMAC-SHA256 for service ``vod`` and ``X-TC-Version: 2018-07-17`` (:func:`mpslocal.emulator.verify_tc3`);
  every body field must exist in the SDK's request model of the action (``UnknownParameter``), required fields
  present and typed (``MissingParameter``/``InvalidParameter``).
- ``ProcessMediaByProcedure`` (100 requests/s): ``ProcedureName`` must be a task flow of the application
  (``InvalidParameterValue.ProcedureName``), ``FileId`` a file of it (``ResourceNotFound.FileNotExist``),
  ``SessionId`` ≤ 50 characters and refused when seen in the last 7 days (``InvalidParameterValue.SessionId``),
  ``SessionContext`` ≤ 1000, ``TasksNotifyMode`` Finish/Change/None. The task flow completes after
  ``complete_after`` seconds with a ``ProcedureStateChanged`` event (FINISH, a transcode result), unless
  ``TasksNotifyMode`` is None.
- ``ProcessMediaByMPS`` (20 requests/s, no SessionId): ``FileId``, ``SubAppId``, ``MPSProcessMediaParams`` a JSON
  string holding ``AiAnalysisTask``; completes with ``ProcessMediaByMPSComplete``.
- Events: :meth:`VodEmulator.upload` adds a file and its ``NewFileUpload`` (with ``ProcedureTaskId`` when the
  upload names a task flow, which then runs). Per application, ``ModifyEventConfig`` ``Mode`` ``PUSH`` POSTs each
  event to ``NotificationUrl`` (with ``Sign = MD5(SignKey + T)`` and ``T`` when a ``SignKey`` is set; retried twice
  on failure, every attempt kept in :attr:`VodEmulator.pushes`) and ``PULL`` keeps it for ``PullEvents``: up to 16
  visible events, each with a fresh ``EventHandle``, hidden for ``visibility`` seconds (30) and handed out again
  unless ``ConfirmEvents`` names that handle (a handle older than the event's current one confirms nothing).
  :attr:`VodEmulator.confirm_hold` set holds every ConfirmEvents and drops it unapplied (a sender killed while it
  waits for the answer), :attr:`VodEmulator.confirm_arrived` says one came.
  PullEvents waits up to ``pull_wait`` seconds for an event (VOD's long poll: about 5 s).

Every request is kept (:attr:`VodEmulator.requests`: action, verdict, signed, SessionId).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .emulator import ApiError, RequestRecord, _need, _parse, _typed, unknown_fields, verify_tc3

VOD_SESSION_TTL = 7 * 24 * 3600
LIMITS = {"ProcessMediaByProcedure": 100, "ProcessMediaByMPS": 20, "PullEvents": 100, "ConfirmEvents": 100,
          "ModifyEventConfig": 20, "DescribeEventConfig": 20}
REQUIRED = {"ProcessMediaByProcedure": ("ProcedureName",), "ProcessMediaByMPS": ("FileId", "SubAppId",
                                                                                 "MPSProcessMediaParams"),
            "ConfirmEvents": ("EventHandles",), "PullEvents": (), "ModifyEventConfig": (), "DescribeEventConfig": ()}
MAIN_APP = 0


@dataclass
class QueuedEvent:
    """An event of an application kept for pulling: its body, current handle, and when it is visible again."""

    doc: dict[str, Any]
    handle: str | None = None
    visible_at: float = 0.0
    deliveries: int = 0


@dataclass
class Push:
    """One normal-callback attempt: the event, HTTP status (None: no answer) and error."""

    event_type: str
    status: int | None
    error: str | None
    body: dict[str, Any]


@dataclass
class App:
    mode: str = "PUSH"
    url: str | None = None
    sign_key: str | None = None
    queue: list[QueuedEvent] = field(default_factory=list)


class VodEmulator:
    """Local VOD endpoint. ``procedures`` are the task flows the applications have; ``sub_app_ids`` the
    applications besides the main one. Use as a context manager or :meth:`start`/:meth:`stop`."""

    def __init__(self, secret_id: str = "AKIDlocalEMULATOR", secret_key: str = "local-emulator-secret-key",
                 token: str | None = None, app_id: str = "1250000000", sub_app_ids: tuple[int, ...] = (1500000001,),
                 procedures: tuple[str, ...] = ("hls-720p",), complete_after: float = 0.2, visibility: float = 30.0,
                 pull_wait: float = 0.5, host: str = "127.0.0.1", port: int = 0) -> None:
        self.credentials = {secret_id: (secret_key, token)}
        self.app_id = app_id
        self.procedures = set(procedures)
        self.complete_after = complete_after
        self.visibility = visibility
        self.pull_wait = pull_wait
        self.apps: dict[int, App] = {MAIN_APP: App(), **{s: App() for s in sub_app_ids}}
        self.files: dict[str, dict[str, Any]] = {}
        self.tasks: list[dict[str, Any]] = []
        self.requests: list[RequestRecord] = []
        self.pushes: list[Push] = []
        self.sessions: dict[str, float] = {}
        self.history: list[tuple[int, dict[str, Any]]] = []  # (application, event) of every event emitted
        self.confirm_hold = threading.Event()  # set: ConfirmEvents never arrives (the sender is killed meanwhile)
        self.confirm_arrived = threading.Event()
        self._windows: dict[str, deque] = {}
        self._answers: dict[str, deque] = {}
        self._lock = threading.Condition()
        self._timers: list[threading.Timer] = []
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "VodEmulator":
        threading.Thread(target=self._server.serve_forever, name="vod-emulator", daemon=True).start()
        return self

    def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        self.confirm_hold.clear()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "VodEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- the application -----------------------------------------------------------------------------------------

    def configure(self, sub_app_id: int | None, mode: str, url: str | None = None, sign_key: str | None = None) -> None:
        """ModifyEventConfig in process: ``mode`` PUSH (to ``url``) or PULL."""
        with self._lock:
            app = self.apps[sub_app_id or MAIN_APP]
            app.mode, app.url, app.sign_key = mode, url, sign_key

    def upload(self, name: str, sub_app_id: int | None = None, media_type: str | None = None, class_id: int = 0,
               class_path: str = "", procedure: str | None = None) -> str:
        """A file uploaded to the application: returns its FileId; emits NewFileUpload (and runs ``procedure``,
        as an upload signature naming a task flow does)."""
        file_id = str(5285890780000000000 + len(self.files) * 7919 + int(uuid.uuid4().int % 7919))
        mtype = media_type or name.rpartition(".")[2].lower()
        with self._lock:
            self.files[file_id] = {"sub_app_id": sub_app_id or MAIN_APP, "name": name}
        task_id = self._start_procedure(file_id, procedure, None, None, "Finish") if procedure else ""
        self.emit(sub_app_id, {"EventType": "NewFileUpload", "FileUploadEvent": {
            "FileId": file_id, "ProcedureTaskId": task_id, "ReviewAudioVideoTaskId": "",
            "MediaBasicInfo": {"Name": name, "Type": mtype, "ClassId": class_id, "ClassPath": class_path,
                               "ClassName": class_path.rpartition("/")[2], "StorageRegion": "ap-guangzhou",
                               "MediaUrl": f"https://{self.app_id}.vod2.myqcloud.com/x/{file_id}/{name}",
                               "SourceInfo": {"SourceType": "Upload", "SourceContext": ""}},
            "MetaData": {"Size": 1048576, "Duration": 12.0, "Container": mtype}}})
        return file_id

    def add_file(self, file_id: str, name: str, sub_app_id: int | None = None) -> None:
        """A file already in the application (uploaded earlier, no event now)."""
        with self._lock:
            self.files[file_id] = {"sub_app_id": sub_app_id or MAIN_APP, "name": name}

    def redeliver(self, event_type: str) -> int:
        """Deliver every event of ``event_type`` sent so far once more, the same body (VOD delivers at least once);
        returns how many."""
        with self._lock:
            again = [(app, doc) for app, doc in self.history if doc.get("EventType") == event_type]
        for app, doc in again:
            self.emit(app or None, doc, again=True)
        return len(again)

    def emit(self, sub_app_id: int | None, doc: dict[str, Any], again: bool = False) -> None:
        """Deliver an event as the application is configured: pushed now, or kept for PullEvents."""
        with self._lock:
            if not again:
                self.history.append((sub_app_id or MAIN_APP, doc))
            app = self.apps[sub_app_id or MAIN_APP]
            if app.mode == "PULL":
                app.queue.append(QueuedEvent(doc))
                self._lock.notify_all()
                return
            url, key = app.url, app.sign_key
        threading.Thread(target=self._push, args=(url, key, doc), daemon=True).start()

    def _push(self, url: str | None, key: str | None, doc: dict[str, Any]) -> None:
        import httpx

        for attempt in range(3):
            body = dict(doc)
            if key:
                t = int(time.time()) + 600
                body["T"], body["Sign"] = t, hashlib.md5(f"{key}{t}".encode()).hexdigest()
            status, error = None, None
            try:
                status = httpx.post(url or "http://127.0.0.1:9/", json=body, timeout=30).status_code
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.pushes.append(Push(doc["EventType"], status, error, body))
            if status == 200:
                return
            time.sleep(0.2 * (attempt + 1))

    def answer_next(self, action: str, response: dict[str, Any]) -> None:
        """Answer the next signed ``action`` request with ``response`` (a malformed answer, say) instead."""
        with self._lock:
            self._answers.setdefault(action, deque()).append(response)

    def scheduled(self) -> int:
        """Task completions not yet emitted as events."""
        return sum(1 for t in self._timers if t.is_alive())

    def pending(self, sub_app_id: int | None = None) -> int:
        """Events of the application not yet confirmed."""
        with self._lock:
            return len(self.apps[sub_app_id or MAIN_APP].queue)

    # --- protocol --------------------------------------------------------------------------------------------------

    def handle(self, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        action = headers.get("x-tc-action", "")
        record = RequestRecord(at=time.time(), action=action, verdict="accepted")
        try:
            verify_tc3(headers, body, self.credentials, "vod", "2018-07-17")
            record.signed = True
            _need(action in REQUIRED, "InvalidAction", f"action {action!r} is not supported by this emulator")
            params = _parse(body)
            unknown = unknown_fields(params, f"{action}Request", "vod")
            _need(not unknown, "UnknownParameter", f"unknown parameter(s): {', '.join(unknown)}")
            for name in REQUIRED[action]:
                _need(params.get(name) not in (None, ""), "MissingParameter", f"{name} is required")
            self._admit(action)
            record.session_id = params.get("SessionId") or None
            with self._lock:
                canned = self._answers.get(action)
                override = canned.popleft() if canned else None
            response = {**(override if override is not None else getattr(self, f"_{action}")(params)),
                        "RequestId": request_id}
        except ApiError as exc:
            record.verdict = exc.code
            response = {"Error": {"Code": exc.code, "Message": exc.message}, "RequestId": request_id}
        with self._lock:
            self.requests.append(record)
        return {"Response": response}

    def _admit(self, action: str) -> None:
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(action, deque())
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= LIMITS[action]:
                raise ApiError("RequestLimitExceeded", f"{action} request rate over {LIMITS[action]}/s")
            window.append(now)

    def _app_of(self, params: dict[str, Any]) -> int:
        sub = _typed(params, "SubAppId", int, "")
        _need(sub is None or sub in self.apps, "InvalidParameterValue.SubAppId", f"SubAppId {sub} does not exist")
        return sub or MAIN_APP

    def _file(self, params: dict[str, Any], app: int) -> str:
        file_id = _typed(params, "FileId", str, "", required=True)
        f = self.files.get(file_id)
        _need(f is not None and f["sub_app_id"] == app, "ResourceNotFound.FileNotExist",
              f"file {file_id} does not exist in application {app or 'main'}")
        return file_id

    def _ProcessMediaByProcedure(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        app = self._app_of(params)
        name = _typed(params, "ProcedureName", str, "", required=True)
        _need(name in self.procedures, "InvalidParameterValue.ProcedureName", f"task flow {name!r} does not exist")
        file_id = self._file(params, app)
        sid = _typed(params, "SessionId", str, "")
        ctx = _typed(params, "SessionContext", str, "")
        _need(sid is None or len(sid) <= 50, "InvalidParameterValue.SessionIdTooLong", "SessionId over 50")
        _need(ctx is None or len(ctx) <= 1000, "InvalidParameterValue.SessionContextTooLong",
              "SessionContext over 1000")
        mode = _typed(params, "TasksNotifyMode", str, "") or "Finish"
        _need(mode in ("Finish", "Change", "None"), "InvalidParameterValue.TasksNotifyMode", f"{mode!r}")
        prio = _typed(params, "TasksPriority", int, "")
        _need(prio is None or -10 <= prio <= 10, "InvalidParameterValue.TasksPriority", "must be in [-10, 10]")
        with self._lock:
            if sid:
                seen = self.sessions.get(sid)
                if seen is not None and time.time() - seen < VOD_SESSION_TTL:
                    raise ApiError("InvalidParameterValue.SessionId",
                                   "Duplicate recognition code, request deduplicated")
                self.sessions[sid] = time.time()
        return {"TaskId": self._start_procedure(file_id, name, sid, ctx, mode)}

    def _start_procedure(self, file_id: str, name: str, sid: str | None, ctx: str | None, mode: str) -> str:
        task_id = f"{self.app_id}-Procedure-{uuid.uuid4().hex}t0"
        f = self.files[file_id]
        with self._lock:
            self.tasks.append({"TaskId": task_id, "Api": "ProcessMediaByProcedure", "FileId": file_id,
                               "ProcedureName": name, "SessionId": sid, "SessionContext": ctx})
        if mode != "None":
            event = {"EventType": "ProcedureStateChanged", "ProcedureStateChangeEvent": {
                "TaskId": task_id, "Status": "FINISH", "ErrCode": 0, "Message": "SUCCESS", "FileId": file_id,
                "FileName": f["name"], "SessionId": sid or "", "SessionContext": ctx or "", "TasksNotifyMode": mode,
                "MediaProcessResultSet": [{"Type": "Transcode", "TranscodeTask": {
                    "Status": "SUCCESS", "ErrCode": 0, "ErrCodeExt": "", "Message": "SUCCESS",
                    "Input": {"Definition": 100030},
                    "Output": {"Url": f"https://{self.app_id}.vod2.myqcloud.com/x/{file_id}/v.f100030.mp4",
                               "Definition": 100030, "Size": 409600, "Container": "mp4"}}}]}}
            self._later(f["sub_app_id"], event)
        return task_id

    def _ProcessMediaByMPS(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        app = self._app_of(params)
        file_id = self._file(params, app)
        raw = _typed(params, "MPSProcessMediaParams", str, "", required=True)
        try:
            mps = json.loads(raw)
        except ValueError:
            raise ApiError("InvalidParameterValue.MPSProcessMediaParams", "not a JSON string") from None
        _need(isinstance(mps, dict) and isinstance(mps.get("AiAnalysisTask"), dict),
              "InvalidParameterValue.MPSProcessMediaParams", "AiAnalysisTask is required")
        task_id = f"{self.app_id}-ProcessMediaByMPS-{uuid.uuid4().hex}"
        with self._lock:
            self.tasks.append({"TaskId": task_id, "Api": "ProcessMediaByMPS", "FileId": file_id})
        self._later(app, {"EventType": "ProcessMediaByMPSComplete", "ProcessMediaByMPSCompleteEvent": {
            "TaskId": task_id, "Status": "FINISH", "ErrCode": 0, "Message": "SUCCESS", "FileId": file_id}})
        return {"TaskId": task_id}

    def _later(self, app: int, event: dict[str, Any]) -> None:
        timer = threading.Timer(self.complete_after, self.emit, args=(app or None, event))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _PullEvents(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        app = self.apps[self._app_of(params)]
        end = time.monotonic() + self.pull_wait
        with self._lock:
            while True:
                now = time.monotonic()
                ready = [e for e in app.queue if e.visible_at <= now][:16]
                if ready or now >= end:
                    break
                self._lock.wait(timeout=min(0.05, end - now))
            out = []
            for e in ready:
                e.handle, e.visible_at, e.deliveries = uuid.uuid4().hex, now + self.visibility, e.deliveries + 1
                out.append({"EventHandle": e.handle, **e.doc})
        return {"EventSet": out}

    def _ConfirmEvents(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        handles = _typed(params, "EventHandles", list, "", required=True)
        _need(1 <= len(handles) <= 16 and all(isinstance(h, str) for h in handles),
              "InvalidParameterValue.EventHandles", "1 to 16 event handles")
        if self.confirm_hold.is_set():  # the request is held, then dropped unapplied: it never reached VOD
            self.confirm_arrived.set()
            while self.confirm_hold.is_set():
                time.sleep(0.05)
            raise ApiError("InternalError", "ConfirmEvents held by the test and not applied")
        app = self.apps[self._app_of(params)]
        with self._lock:
            app.queue = [e for e in app.queue if e.handle not in set(handles)]
        return {}

    def _ModifyEventConfig(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        sub = self._app_of(params)
        app = self.apps[sub]
        mode = _typed(params, "Mode", str, "") or app.mode
        _need(mode in ("PUSH", "PULL"), "InvalidParameterValue.Mode", "PUSH or PULL")
        self.configure(sub or None, mode, _typed(params, "NotificationUrl", str, "") or app.url,
                       _typed(params, "SignKey", str, "") or app.sign_key)
        return {}

    def _DescribeEventConfig(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        app = self.apps[self._app_of(params)]
        return {"Mode": app.mode, "NotificationUrl": app.url or ""}


def _handler_for(emulator: VodEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "vod-emulator"
        disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            doc = emulator.handle({k.lower(): v for k, v in self.headers.items()}, body)
            data = json.dumps(doc).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
