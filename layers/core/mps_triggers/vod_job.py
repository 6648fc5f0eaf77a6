"""The vod job: VOD events → archive lines, and each uploaded file → its processing, exactly once.

``functions/vod/app.py`` is ``return vod_job.run(event, context).respond()``. Two ways in:

- **normal callback** (an HTTP POST from VOD to the function URL / API gateway, one event): **200** only after the
  event's line is written and its work done; **401** wrong ``token`` query parameter or (``VOD_SIGN_KEY``) a bad
  or expired ``Sign``/``T``; **413** too large; **400** not JSON or a bad event (its line is archived all the same,
  :mod:`mps_triggers.vod`); **405** not POST; **503** the write or the submission failed or the deadline came first
  (VOD sends it again). The callback URL may name the application: ``?sub_app_id=1500000001``.
- **reliable callback** (any other invocation: SCF timer, EventBridge Scheduler): ``PullEvents`` for
  ``VOD_SUB_APP_ID`` until VOD has none, ``VOD_PULL_MAX_EVENTS`` were taken or the deadline is
  :data:`PULL_RESERVE` seconds away; each answer's events are archived (one object per partition), submitted, and
  then ``ConfirmEvents`` names exactly the events whose work is done. An event whose line or submission failed, or
  that is bad, is not confirmed: VOD hands it out again after 30 s. Run it with concurrency 1.

Per event: the line (the archive format of :mod:`mps_triggers.lines`; ``source.type`` ``vod-push``/``vod-pull``;
its ``id`` leaves out ``T``/``Sign``, so a redelivered event is the same line). A NewFileUpload is then routed
(``VOD_ROUTES``, :class:`~mps_triggers.config.VodRoute`): skipped when its upload already started a task flow
(``ProcedureTaskId``) or no route matches (logged), else submitted under the file's SessionId
(:func:`~mps_triggers.session.vod_session_id`): ``ProcessMediaByProcedure``, MPS ``ProcessMedia`` with
``InputInfo.Type=VOD``, or ``ProcessMediaByMPS`` (no SessionId: a claim under ``ARCHIVE_URI``,
:mod:`mps_triggers.claims`). A duplicate SessionId answer is a duplicate, not a failure. Each submission is a ledger
line (``origin`` ``vod``) under ``event_type=submissions``.
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .archive_job import MIN_WRITE_SECONDS, archive_store, write_object
from .callbacks import HttpRequest, check_vod_signature, parse_callback_event, read_http_json
from .claims import Claim, ClaimBook, Taken
from .exceptions import DeadlineError, EventError, MpsTriggersError
from .invocation import Invocation, Report, Source, guard, log_failure, run_job
from .lines import ArchiveLine, ArchiveObject, batch_objects, build_line, ledger_object, single_object, \
    submission_line
from .logs import log
from .mps import ACTION_LIMITS, MpsClient, MpsDuplicateSessionError, MpsError, rate_windows, vod_client
from .retries import RetryPolicy
from .safejson import dumps, to_int
from .session import vod_session_context, vod_session_id
from .storage import StorageError
from .vod import SIGNING_FIELDS, VodEvent, check_event, pulled_events, read_event

if TYPE_CHECKING:
    from .config import VodRoute, VodSettings

PULL_RESERVE = 15.0
"""Seconds before the deadline at which the poller stops pulling: one long poll (about 5 s), archiving and
submitting 16 events, and ConfirmEvents must still fit."""
BATCH_SECONDS = 20.0
"""Longest the submissions of one pulled batch may take (seconds after PullEvents answered), so its ConfirmEvents
comes within VOD's 30 s: a submission still throttled then fails, and its event comes back."""


@dataclass
class Outcome:
    """What became of one event: its line (None: not written), the submission's result, and whether it failed."""

    event: VodEvent | None
    line: ArchiveLine | None = None
    written: bool = False
    result: str | None = None  # submitted / duplicate / skipped / failed
    error: MpsTriggersError | None = None

    @property
    def done(self) -> bool:
        """The event's work is done: its line is written, it is good, and its submission (if any) did not fail."""
        return self.written and self.error is None and self.result != "failed"


@dataclass
class VodReport(Report):
    """One vod invocation: events seen, lines archived, submissions by result, events confirmed, objects written."""

    keys: list[str] = field(default_factory=list)
    lines: int = 0
    results: dict[str, int] = field(default_factory=dict)
    pulled: int = 0
    confirmed: int = 0

    def summary(self) -> dict[str, Any]:
        return {"source": self.source.value, "events": len(self.records), "lines": self.lines,
                "pulled": self.pulled, "confirmed": self.confirmed, "results": self.results,
                "failed": len(self.failures), "objects": self.keys}

    def respond(self) -> dict[str, Any] | None:
        """HTTP: the answer; a poll: its :meth:`summary` (failed events are not confirmed, so they come back: the
        invocation itself succeeds and the platform does not retry it)."""
        if self.source is Source.HTTP:
            return super().respond()
        return self.summary()

    def metrics(self) -> dict[str, int]:
        """The records' counts, then ``Archived``, ``Pulled``, ``Confirmed``, and per submission result
        ``Submitted``, ``Duplicate``, ``Skipped``, ``SubmitFailed``."""
        counts = super().metrics()
        counts.update(Archived=self.lines, Pulled=self.pulled, Confirmed=self.confirmed,
                      Submitted=self.results.get("submitted", 0), Duplicate=self.results.get("duplicate", 0),
                      Skipped=self.results.get("skipped", 0), SubmitFailed=self.results.get("failed", 0))
        return counts


class VodJob:
    """Holds what lives for a container: settings, the archive store, the VOD and MPS clients. Create once per
    container (:func:`default_job`); :meth:`run` per invocation. ``store``, ``vod`` and ``mps`` may be injected."""

    def __init__(self, settings: VodSettings, store: Any = None, vod: MpsClient | None = None,
                 mps: MpsClient | None = None) -> None:
        self.settings = settings
        self.location = settings.location
        self._store, self._vod, self._mps = store, vod, mps
        self._warned = False  # a push endpoint without authentication is said once per container
        self._polling = False  # set by the first poll: the container is the application's one poller

    @property
    def store(self) -> Any:
        """The container's store of ``ARCHIVE_URI`` (:func:`~mps_triggers.archive_job.archive_store`)."""
        if self._store is None:
            self._store = archive_store(self.settings)  # type: ignore[arg-type]
        return self._store

    def _client(self, vod: bool) -> MpsClient:
        """The container's VOD (``vod``) or MPS client, made on first use. The poller is the one sender of its
        application (concurrency 1), so it paces each submission API like ``mps-triggers backfill``: from the API's
        limit down when the API's window is full (:func:`~mps_triggers.mps.rate_windows`); pushed events come to
        many containers, each starting low (:func:`~mps_triggers.mps.function_windows`)."""
        s = self.settings
        from .secrets import mps_credentials

        creds = functools.partial(mps_credentials, s)
        options: dict[str, Any] = dict(region=s.mps_region, timeout=s.mps_timeout,
                                       retry=RetryPolicy(max_attempts=s.mps_max_attempts))
        if self._polling:
            options["windows"] = lambda action: rate_windows(ACTION_LIMITS[action])(action) \
                if action in ACTION_LIMITS else None
        if vod:
            if self._vod is None:
                self._vod = vod_client(s.vod_endpoint, creds, **options)
            return self._vod
        if self._mps is None:
            self._mps = MpsClient(s.mps_endpoint, creds, **options)
        return self._mps

    def run(self, event: Any, context: Any = None) -> VodReport:
        """One invocation: an HTTP request is a pushed event, anything else a scheduled poll."""
        invocation = Invocation.of(context)
        context_ = event.get("requestContext") if isinstance(event, dict) else None
        if isinstance(event, dict) and ("httpMethod" in event or (isinstance(context_, dict) and "http" in context_)):
            shape = parse_callback_event(event, invocation.request_id, self.settings.callback_max_bytes)
            report = VodReport(Source.HTTP, invocation)
            outcome = guard(shape.http.request_id or "request", lambda: self._push(shape.http, report))
            if isinstance(outcome, MpsTriggersError):
                report.answer(500, {"error": "internal error, retry later"})
            return report
        return self._poll(invocation)

    # --- normal callback -----------------------------------------------------------------------------------------

    def _push(self, req: HttpRequest, report: VodReport) -> VodReport:
        s = self.settings
        rid = req.request_id or "request"
        report.record(rid)
        if not s.vod_sign_key and not s.callback_token and not self._warned:
            self._warned = True
            log("warning", "VOD callbacks are not authenticated",
                reason="neither VOD_SIGN_KEY nor CALLBACK_TOKEN is set: anyone who learns the callback URL can "
                       "write archive lines and start processing; set both (README, VOD)")

        def reject(status: int, reason: str) -> VodReport:
            log("warning", "VOD callback rejected", status=status, reason=reason, source_id=rid, bytes=req.body_size)
            return report.answer(status, {"error": reason})

        doc, problem = read_http_json(req, s.callback_token.get_secret_value() if s.callback_token else None,
                                      s.callback_max_bytes)
        if problem is not None:
            return reject(*problem)
        if s.vod_sign_key and isinstance(doc, dict):
            why = check_vod_signature(doc, s.vod_sign_key.get_secret_value(), s.callback_clock_skew)
            if why:
                return reject(401, why)
        sub_app_id = s.vod_sub_app_id
        if "sub_app_id" in req.query:
            sub_app_id = to_int(req.query["sub_app_id"], max_digits=12)
            if sub_app_id is None or sub_app_id <= 0:
                return reject(400, "query parameter sub_app_id is not a positive integer")
        outcomes = self._process([(rid, doc)], "vod-push", sub_app_id, report)
        out = outcomes[0]
        if isinstance(out.error, EventError):
            return report.answer(400, {"error": str(out.error), "id": out.line.id if out.line else None})
        if not out.done:
            return report.answer(503, {"error": "not done (archive write or submission failed), retry later"})
        return report.answer(200, {"ok": True, "id": out.line.id if out.line else None, "result": out.result})

    # --- reliable callback ---------------------------------------------------------------------------------------

    def _poll(self, invocation: Invocation) -> VodReport:
        s = self.settings
        report = VodReport(Source.DIRECT, invocation)
        if self._vod is None and self._mps is None:
            self._polling = True
        client = self._client(vod=True)
        pull = 0
        while report.pulled < s.vod_pull_max_events:
            left = invocation.budget()
            if left is not None and left < PULL_RESERVE:
                log("info", "VOD poll stops before the deadline", pulled=report.pulled, seconds_left=round(left, 1))
                break
            try:
                answer = client.pull_events(s.vod_sub_app_id, invocation.call_deadline(reserve=PULL_RESERVE - 6))
                entries = pulled_events(answer.response)
            except (MpsError, EventError) as exc:
                error = exc if isinstance(exc, MpsTriggersError) else EventError("PullEvents", "$", str(exc))
                report.fail(f"PullEvents[{pull}]", error)
                log_failure(f"PullEvents[{pull}]", error)
                break
            if not entries:
                break
            report.pulled += len(entries)
            batch = [(f"PullEvents[{pull}].EventSet[{i}]", entry) for i, entry in enumerate(entries)]
            outcomes = self._process(batch, "vod-pull", s.vod_sub_app_id, report,
                                     until=time.monotonic() + BATCH_SECONDS)
            handles = [o.event.handle for o in outcomes if o.done and o.event is not None and o.event.handle]
            for at in range(0, len(handles), 16):
                chunk = handles[at:at + 16]
                try:
                    client.confirm_events(chunk, s.vod_sub_app_id, invocation.call_deadline())
                    report.confirmed += len(chunk)
                except MpsError as exc:  # not confirmed: VOD hands them out again, and they are absorbed
                    log("error", "ConfirmEvents failed", events=len(chunk), error=str(exc))
                    report.fail(f"ConfirmEvents[{pull}]", exc)
            pull += 1
        log("info", "VOD poll done", **report.summary())
        return report

    # --- one batch of events -----------------------------------------------------------------------------------

    def _process(self, batch: list[tuple[str, Any]], source: str, sub_app_id: int | None,
                 report: VodReport, until: float | None = None) -> list[Outcome]:
        """Archive, then submit, each ``(record id, event document)``; returns their outcomes in order. No
        submission runs past ``until`` (``time.monotonic()``) or the invocation's deadline."""
        now = time.time()
        outcomes: list[Outcome] = []
        for rid, doc in batch:
            report.record(rid)
            out = Outcome(None)
            outcomes.append(out)
            try:
                out.event = read_event(doc, rid)
                if source == "vod-pull" and out.event.handle is None:
                    raise EventError(rid, "EventHandle", "missing: the pulled event cannot be confirmed")
                check_event(out.event, sub_app_id)
            except EventError as exc:  # archived all the same (raw) when it is an object; never confirmed
                out.error = exc
                report.fail(rid, exc)
                log_failure(rid, exc)
                if out.event is None and isinstance(doc, dict):  # no EventType: its line says "unknown"
                    out.event = VodEvent("unknown", None, {k: v for k, v in doc.items() if k != "EventHandle"}, rid)
            if out.event is None:
                continue
            line = guard(rid, lambda: self._line(out.event, source, now))
            if isinstance(line, MpsTriggersError):
                out.error = out.error or line
                report.fail(rid, line)
                continue
            out.line = line
        self._archive([o for o in outcomes if o.line is not None], source, now, report)
        ledger: list[bytes] = []
        for out in outcomes:
            if out.written and out.error is None and out.event is not None and out.event.file is not None:
                failure = guard(out.event.where, lambda: self._submit(out, source, ledger, report, until))
                if isinstance(failure, MpsTriggersError):  # a claim that could not be read or written, ...
                    out.error = failure
                    report.fail(out.event.where, failure)
        if ledger:
            obj = ledger_object(self.location.prefix, ledger, time.time())
            try:
                self._write(obj, source, report.invocation)
                report.keys.append(obj.key)
            except (StorageError, DeadlineError) as exc:  # the submissions stand; redelivery records them again
                for out in outcomes:
                    if out.result in ("submitted", "duplicate", "failed"):
                        out.written = False
                        report.fail(out.event.where if out.event else "ledger", exc)
        return outcomes

    def _line(self, event: VodEvent, source: str, now: float) -> ArchiveLine:
        try:
            return build_line(event.doc, source, event.handle[:256] if event.handle else event.where, now,
                              unsigned=SIGNING_FIELDS)
        except ValueError as exc:
            raise EventError(event.where, "$", f"cannot be archived: {exc}") from None

    def _archive(self, outs: list[Outcome], source: str, now: float, report: VodReport) -> None:
        if not outs:
            return
        if len(outs) == 1:
            objects = [single_object(self.location.prefix, outs[0].line, now, outs[0].event.where)]
        else:
            entries = [(o.event.where, o.line) for o in outs]
            objects = batch_objects(self.location.prefix, entries, [o.line.id for o in outs], now)
        by_where = {o.event.where: o for o in outs}
        for obj in objects:
            try:
                self._write(obj, source, report.invocation)
            except (StorageError, DeadlineError) as exc:
                for rid, _ in obj.entries:
                    report.fail(rid, exc)
                continue
            report.keys.append(obj.key)
            report.lines += len(obj.entries)
            for rid, _ in obj.entries:
                by_where[rid].written = True

    def _submit(self, out: Outcome, source: str, ledger: list[bytes], report: VodReport,
                until: float | None = None) -> None:
        """Route and submit one uploaded file; sets ``out.result`` and adds its ledger line."""
        file, where = out.event.file, out.event.where
        if file.procedure_task_id:
            out.result = "skipped"
            log("info", "VOD file skipped", record=where, file_id=file.file_id,
                reason=f"its upload already started task flow task {file.procedure_task_id}")
        else:
            route = self.settings.route_for(file)
            if route is None:
                out.result = "skipped"
                log("info", "VOD file skipped", record=where, file_id=file.file_id, reason="no VOD route matches")
            else:
                self._call(out, route, source, ledger, report, until)
        report.results[out.result] = report.results.get(out.result, 0) + 1

    def _call(self, out: Outcome, route: VodRoute, source: str, ledger: list[bytes], report: VodReport,
              until: float | None) -> None:
        file, where = out.event.file, out.event.where
        sid = vod_session_id(file)
        deadline = report.invocation.call_deadline(reserve=MIN_WRITE_SECONDS + 3)
        if until is not None:
            deadline = until if deadline is None else min(deadline, until)
        task_id: str | None = None
        code = message = None
        try:
            if route.procedure is not None:
                params: dict[str, Any] = {"ProcedureName": route.procedure, "FileId": file.file_id,
                                          "SessionId": sid, "SessionContext": vod_session_context(file, route.name)}
                if file.sub_app_id is not None:
                    params["SubAppId"] = file.sub_app_id
                if route.tasks_priority is not None:
                    params["TasksPriority"] = route.tasks_priority
                if route.tasks_notify_mode is not None:
                    params["TasksNotifyMode"] = route.tasks_notify_mode
                task_id = self._client(vod=True).process_media_by_procedure(params, deadline).response["TaskId"]
            elif route.mps_params is not None:
                book = ClaimBook(self.store, self.location.prefix, "ProcessMediaByMPS")
                lease = time.time() + max(60.0, report.invocation.remaining() or 60.0)
                claim = book.claim(sid, lease, {"route": route.name, "object": {"storage": "vod",
                                                                               "key": file.file_id}}, deadline)
                if isinstance(claim, Taken):
                    raise MpsDuplicateSessionError("ClaimTaken", "this file's ProcessMediaByMPS was submitted before")
                if not isinstance(claim, Claim):
                    raise MpsError("ClaimBusy", "another invocation holds this file's claim; delivered again later")
                params = {"FileId": file.file_id, "SubAppId": file.sub_app_id or route.sub_app_id,
                          "MPSProcessMediaParams": dumps(route.mps_params)}
                try:
                    answer = self._client(vod=True).process_media_by_mps(params, deadline)
                except MpsError as exc:
                    (book.uncertain if exc.maybe_processed else book.release)(
                        claim, exc.code, report.invocation.call_deadline())
                    raise
                task_id = answer.response["TaskId"]
                book.submitted(claim, task_id, answer.response.get("RequestId"), report.invocation.call_deadline())
            else:
                params = {"InputInfo": {"Type": "VOD", "VODInputInfo": {"FileId": file.file_id, "VodBasic": 1,
                                                                        **({"SubAppId": file.sub_app_id}
                                                                           if file.sub_app_id else {})}},
                          "SessionId": sid, "SessionContext": vod_session_context(file, route.name)}
                if route.schedule_id is not None:
                    params["ScheduleId"] = route.schedule_id
                else:
                    params.update(json.loads(json.dumps(route.tasks)))
                if route.tasks_priority is not None:
                    params["TasksPriority"] = route.tasks_priority
                s = self.settings
                if s.mps_notify_url:
                    notify = {"NotifyType": "URL", "NotifyUrl": s.mps_notify_url, "NotifyMode": "Finish"}
                    if s.mps_notify_key:
                        notify["NotifyKey"] = s.mps_notify_key.get_secret_value()
                    params["TaskNotifyConfig"] = notify
                task_id = self._client(vod=False).process_media(params, deadline).response["TaskId"]
            out.result = "submitted"
            log("info", "VOD file submitted", record=where, file_id=file.file_id, route=route.name, api=route.api,
                session_id=sid, task_id=task_id)
        except MpsDuplicateSessionError as exc:
            out.result, code, message = "duplicate", exc.code, exc.message
            log("info", "VOD file already submitted", record=where, file_id=file.file_id, route=route.name,
                session_id=sid)
        except MpsError as exc:
            out.result, code, message = "failed", exc.code, exc.message
            report.fail(where, exc)
            log("error", "VOD submission failed", record=where, file_id=file.file_id, route=route.name,
                code=exc.code, error=exc.message)
        app = "" if file.sub_app_id is None else str(file.sub_app_id)
        ledger.append(submission_line(
            result=out.result, obj={"storage": "vod", "bucket": app, "key": file.file_id, "route": route.name},
            session_id=sid, task_id=task_id, error_code=code if out.result == "failed" else None,
            error_message=message if out.result == "failed" else None, at=time.time(), origin="vod",
            source_type=source, source_id=out.event.handle[:256] if out.event.handle else where, api=route.api))

    def _write(self, obj: ArchiveObject, source: str, invocation: Invocation) -> None:
        write_object(lambda: self.store, obj, source, invocation)


@functools.lru_cache(maxsize=1)
def default_job() -> VodJob:
    """The container's job, configured from the environment on first call (raises ConfigError if invalid)."""
    from .config import load_vod_settings

    return VodJob(load_vod_settings())


def run(event: Any, context: Any = None) -> VodReport:
    """Run the container's :func:`default_job` on one invocation (configuration errors are logged and raised)."""
    return run_job(default_job, event, context, "vod")
