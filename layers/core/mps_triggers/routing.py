"""Rules → ProcessMedia (or BatchProcessMedia) request; the runtime recursion guard. (SessionId and SessionContext: :mod:`.session`.)

Source: ProcessMedia API 2019-06-12 (``InputInfo``/``MediaInputInfo``, ``OutputStorage``/``TaskOutputStorage``,
``OutputDir``, ``ScheduleId``, ``TaskNotifyConfig``, ``TasksPriority``, ``SessionId`` ≤ 50 characters,
``SessionContext`` ≤ 1000 characters, ``TaskType``), MPS "Using Amazon S3 Buckets with MPS".

Example::

    router = Router(settings)
    decision = router.decide(obj)            # Skip(reason=...) or Submission(route, session_id, request)
    if isinstance(decision, Submission):
        client.process_media(decision.request(s3_credentials))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .constraints import check_batch_request, check_request
from .exceptions import MpsRuleError
from .logs import log
from .outputs import FILE_NAME_ALLOWANCE, MAX_OUTPUT_KEY_BYTES, PathValues, render_task_paths
from .session import session_context, session_id
from .uploads import UploadedObject

if TYPE_CHECKING:  # the pydantic models are built when the configuration is first loaded, not at import
    from .config import Route, Settings


@dataclass(frozen=True)
class S3Credentials:
    """The AWS access key MPS uses to read S3 inputs, write S3 outputs and send AWS-SQS callbacks, and that signs
    the presigned URLs of URL input (``token``: set for temporary credentials, which URL input refuses)."""

    secret_id: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"S3Credentials(secret_id={self.secret_id[:4]}…)"


@dataclass(frozen=True)
class Skip:
    """The object is deliberately not submitted; ``reason`` says why (logged and shown by the demo)."""

    reason: str


@dataclass(frozen=True)
class Submission:
    """One ProcessMedia call to make for ``obj``: built by :meth:`Router.decide`, sent by the submit job."""

    obj: UploadedObject
    route: Route
    session_id: str
    session_context: str
    _settings: Settings
    generation: int = 0

    def request(self, s3: S3Credentials | None = None) -> dict[str, Any]:
        """The route's action's parameters (ProcessMedia, or BatchProcessMedia for a batch route). ``s3``
        credentials are required for S3 inputs (ValueError otherwise)."""
        build = build_batch_request if self.route.batch else build_request
        return build(self.obj, self.route, self._settings, self.session_id, self.session_context, s3)


class Router:
    """Maps an :class:`UploadedObject` to a :class:`Skip` or a :class:`Submission` using the configured routes.

    Order of checks: folder marker, zero-byte object, recursion guard (object under an output dir or the archive
    location), then routes in order (first match wins), else skip "no route matches".
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.routes = settings.routes
        self.guarded = settings.guarded_locations()

    def decide(self, obj: UploadedObject, generation: int = 0) -> Skip | Submission:
        """The decision for ``obj``; ``generation`` ≥ 1 derives a reprocess SessionId
        (:func:`~mps_triggers.session.session_id`) and records it in the SessionContext."""
        if obj.key.endswith("/"):
            return Skip("folder marker (key ends with '/')")
        if obj.size == 0:
            return Skip("zero-byte object")
        for g in self.guarded:
            if g.covers(obj.bucket, obj.key):
                return Skip(f"recursion guard: under {g.setting} ({g.bucket or '<input bucket>'}/{g.prefix})")
        for route in self.routes:
            if route.matches(obj.storage, obj.bucket, obj.key):
                sid = session_id(obj, generation)
                # BatchProcessMedia has no SessionId: the callback finds it in the SessionContext instead
                context = session_context(obj, route.name, sid if route.batch else None, generation)
                return Submission(obj, route, sid, context, self.settings, generation)
        return Skip("no route matches")


def build_request(obj: UploadedObject, route: Route, settings: Settings, sid: str, context: str,
                  s3: S3Credentials | None = None) -> dict[str, Any]:
    """Build ProcessMedia parameters for ``obj`` under ``route``.

    COS objects become ``InputInfo.Type=COS`` with ``CosInputInfo.Object`` = ``/key``; S3 objects become
    ``InputInfo.Type=AWS-S3`` with ``S3InputInfo`` carrying ``s3`` credentials (required: ValueError otherwise), or
    ``InputInfo.Type=URL`` with a presigned GET URL (:func:`input_mode`, :mod:`.presign`) and the route's COS
    ``OutputStorage`` (``MpsRuleError`` ``url-input-output`` without one). Output storage otherwise follows the
    input's cloud; bucket and region default to the input's. ``OutputDir`` is the
    route's output dir plus its ``output_path`` rendered for ``obj`` (:mod:`mps_triggers.outputs`); our variables in
    inline tasks' ``…ObjectPath``/``…ObjectName`` are rendered too. Raises
    :class:`~mps_triggers.exceptions.MpsRuleError` when the request breaks a rule of :mod:`mps_triggers.constraints`.
    """
    mode = input_mode(obj, route, settings)
    input_info, output = source_and_output(obj, route, settings, mode, s3)
    values = PathValues.of(obj, route.name, sid)
    req: dict[str, Any] = {
        "InputInfo": input_info,
        "OutputStorage": output,
        "OutputDir": output_dir(obj, route, settings, values),
    }
    if route.schedule_id is not None:
        req["ScheduleId"] = route.schedule_id
    else:
        req.update(render_task_paths(route.tasks or {}, values))  # a deep copy: requests never share mutable config
    _add_notify_and_priority(req, obj, route, settings, s3, mode)
    task_type = route.task_type or settings.mps_task_type
    if task_type:
        req["TaskType"] = task_type
    req["SessionId"] = sid
    req["SessionContext"] = context
    check_request(req, settings.s3_regions, settings.s3_input_tasks)
    return req


def build_batch_request(obj: UploadedObject, route: Route, settings: Settings, sid: str, context: str,
                        s3: S3Credentials | None = None) -> dict[str, Any]:
    """Build BatchProcessMedia parameters (API 2019-06-12) for ``obj`` under a ``"api": "BatchProcessMedia"`` route.

    One object per request: ``InputInfo`` is a one-element list, COS (``/key``) for COS objects, a presigned URL
    for S3 objects (``s3`` credentials required), with the COS ``OutputStorage`` the API requires for URL input;
    ``OutputDir`` and ``SmartSubtitlesTask`` paths as for ProcessMedia, ``TaskNotifyConfig`` (URL: AWS-SQS is for
    AWS-S3 inputs), ``TasksPriority``, and ``SessionContext`` carrying the SessionId (the API has no SessionId
    parameter; exactly-once comes from :mod:`mps_triggers.claims`). Raises
    :class:`~mps_triggers.exceptions.MpsRuleError` for a ``batch-*`` rule of :mod:`mps_triggers.constraints`.
    """
    mode = input_mode(obj, route, settings)
    if obj.storage == "s3" and mode != "url":
        raise MpsRuleError("batch-inputs", "BatchProcessMedia reads S3 objects by presigned URL only: give route "
                                           f"{route.name!r} \"input\": \"url\" or \"auto\"")
    input_info, output = source_and_output(obj, route, settings, mode, s3)
    values = PathValues.of(obj, route.name, sid)
    req: dict[str, Any] = {"InputInfo": [input_info], "OutputStorage": output,
                           "OutputDir": output_dir(obj, route, settings, values)}
    req.update(render_task_paths(route.tasks or {}, values))
    _add_notify_and_priority(req, obj, route, settings, s3, mode)
    req["SessionContext"] = context
    check_batch_request(req)
    return req


def _add_notify_and_priority(req: dict[str, Any], obj: UploadedObject, route: Route, settings: Settings,
                             s3: S3Credentials | None, mode: str) -> None:
    """``TaskNotifyConfig`` (:func:`task_notify_config`) and ``TasksPriority`` (the route's, else the setting's)."""
    notify = task_notify_config(settings, s3, obj, mode)
    if notify:
        req["TaskNotifyConfig"] = notify
    priority = route.tasks_priority if route.tasks_priority is not None else settings.mps_tasks_priority
    if priority is not None:
        req["TasksPriority"] = priority


def source_and_output(obj: UploadedObject, route: Route, settings: Settings, mode: str,
                      s3: S3Credentials | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(InputInfo, OutputStorage)`` of ``obj``: COS from COS; from S3 either AWS-S3 (``mode`` "storage", with the
    ``s3`` key) or a presigned URL (``mode`` "url") with the route's COS output. Raises ValueError without S3
    credentials for an S3 object, MpsRuleError ``url-input-output`` for URL input without a COS output."""
    out_bucket = settings.output_bucket_for(route) or obj.bucket
    out_region = route.output_region or settings.mps_output_region or obj.region
    if obj.storage == "cos":
        return ({"Type": "COS", "CosInputInfo": {"Bucket": obj.bucket, "Region": obj.region, "Object": "/" + obj.key}},
                {"Type": "COS", "CosOutputStorage": {"Bucket": out_bucket, "Region": out_region}})
    if s3 is None:
        raise ValueError("S3 inputs need the S3 credentials MPS reads with (MPS_S3_SECRET_ID/MPS_S3_SECRET_KEY "
                         "or MPS_S3_CREDENTIALS_SECRET_ARN)")
    if mode == "url":
        if route.output_storage != "cos" or not route.output_bucket or not route.output_region:
            raise MpsRuleError("url-input-output", f"MPS reads this S3 object through a URL (its tasks cannot read "
                                                   f"AWS-S3), and URL input needs a COS OutputStorage: give route "
                                                   f"{route.name!r} output_storage \"cos\", output_bucket and "
                                                   f"output_region")
        from .presign import URL_EXPIRES_OFFLINE, URL_EXPIRES_ONLINE, presigned_get
        offline = (route.task_type or settings.mps_task_type) == "Offline" and not route.batch
        url = presigned_get(obj, s3, URL_EXPIRES_OFFLINE if offline else URL_EXPIRES_ONLINE)
        return ({"Type": "URL", "UrlInputInfo": {"Url": url}},
                {"Type": "COS", "CosOutputStorage": {"Bucket": route.output_bucket, "Region": route.output_region}})
    return ({"Type": "AWS-S3", "S3InputInfo": {
                "S3Bucket": obj.bucket, "S3Region": obj.region, "S3Object": obj.key,
                "S3SecretId": s3.secret_id, "S3SecretKey": s3.secret_key}},
            {"Type": "AWS-S3", "S3OutputStorage": {
                "S3Bucket": out_bucket, "S3Region": out_region, "S3SecretId": s3.secret_id,
                "S3SecretKey": s3.secret_key}})


def output_dir(obj: UploadedObject, route: Route, settings: Settings, values: PathValues) -> str:
    """``OutputDir`` for ``obj``: the route's output dir plus its template rendered. When that folder and MPS's file
    name (which repeats the input's name: ``{inputName}_transcode_{definition}.{format}``) would pass the
    1,024-byte key limit, the folder is ``{session_id}/`` instead (logged), so a long key is still processed."""
    base = settings.output_dir_for(route)
    out_dir = base + settings.output_template_for(route).render(values)
    name_bytes = len(obj.key.rpartition("/")[2].encode("utf-8", "surrogatepass"))
    if len(out_dir.encode("utf-8", "surrogatepass")) + name_bytes + FILE_NAME_ALLOWANCE <= MAX_OUTPUT_KEY_BYTES:
        return out_dir
    log("warning", "output folder too long: using the SessionId folder", route=route.name, bucket=obj.bucket,
        key=obj.key, output_dir=base + values.session_id + "/")
    return base + values.session_id + "/"


def input_mode(obj: UploadedObject, route: Route, settings: Settings) -> str:
    """How MPS reads ``obj``: ``"storage"`` (COS, or AWS-S3 with the S3 key) or ``"url"`` (a presigned S3 URL).

    COS objects always come from storage; S3 objects as :meth:`~mps_triggers.config.Settings.s3_input_mode` says
    (the rule the load-time check uses too).
    """
    return settings.s3_input_mode(route) if obj.storage == "s3" else "storage"


def task_notify_config(settings: Settings, s3: S3Credentials | None, obj: UploadedObject, mode: str = "storage"
                       ) -> dict[str, Any] | None:
    """TaskNotifyConfig from MPS_NOTIFY_*: NotifyType AWS-SQS for S3 inputs in the queue's region, URL for the rest
    (MPS sends AWS-SQS callbacks only for AWS tasks of the same region: :mod:`mps_triggers.constraints`), or None
    when neither is set (MPS then uses the orchestration's own, or its default TDMQ-CMQ)."""
    sqs_fits = obj.storage == "s3" and mode == "storage" and obj.region == settings.mps_notify_sqs_region
    if settings.mps_notify_sqs_queue and (sqs_fits or not settings.mps_notify_url):
        sqs: dict[str, Any] = {"SQSRegion": settings.mps_notify_sqs_region, "SQSQueueName": settings.mps_notify_sqs_queue}
        if s3 is not None:
            sqs.update(S3SecretId=s3.secret_id, S3SecretKey=s3.secret_key)
        cfg: dict[str, Any] = {"NotifyType": "AWS-SQS", "AwsSQS": sqs}
    elif settings.mps_notify_url:
        cfg = {"NotifyType": "URL", "NotifyUrl": notify_url(settings)}
    else:
        return None
    cfg["NotifyMode"] = settings.mps_notify_mode
    if settings.mps_notify_key:
        cfg["NotifyKey"] = settings.mps_notify_key.get_secret_value()
    return cfg


def notify_url(settings: Settings) -> str | None:
    """``MPS_NOTIFY_URL`` with ``token=<CALLBACK_TOKEN>`` appended, URL-encoded (a ``+`` or ``/`` from
    ``openssl rand -base64`` arrives intact: the archive job compares the decoded value)."""
    url = settings.mps_notify_url
    if not url or not settings.callback_token:
        return url
    return with_token(url, settings.callback_token.get_secret_value())


def with_token(url: str, token: str) -> str:
    """``url`` with ``token=<token>`` appended, URL-encoded (kept before a ``#fragment``)."""
    token = quote(token, safe="")
    base, _, fragment = url.partition("#")
    sep = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    return f"{base}{sep}token={token}" + (f"#{fragment}" if fragment else "")
