"""Environment variables → typed :class:`Settings`, validated once per cold start.

Every variable is documented in the README's configuration table. An invalid value raises
:class:`~mps_triggers.exceptions.ConfigError` naming the variable (``MPS_ROUTES[1].schedule_id: ...``).

Routes (``MPS_ROUTES``) are a JSON list of :class:`Route`; ``MPS_SCHEDULE_ID`` alone means one catch-all route
to that orchestration. Example::

    MPS_ROUTES='[{"name": "videos", "prefix": "uploads/", "suffixes": [".mp4", ".mov"], "schedule_id": 12345},
                 {"name": "audio", "bucket": "podcasts", "suffixes": [".mp3"],
                  "tasks": {"AiAnalysisTask": {"Definition": 10}}}]'

Recursion guard at load (DESIGN.md "Never loop"): an output dir that is the bucket root (``/``) of a routed
bucket, or a route whose prefix lies inside an output dir or the archive location, is refused with an error that
names both settings. What the runtime guard can make safe (outputs under their own dir in the input bucket, even
with a catch-all route) is allowed.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from .constraints import OFFLINE_TASKS, S3_INPUT_TASKS, task_kinds, unsupported
from .exceptions import ConfigError
from .outputs import (DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_OUTPUT_BUCKET, PATH_FIELD_SUFFIXES, OutputTemplate,
                      heads_overlap, template)
from .redaction import is_secret_param, register_secret

# ProcessMedia task parameters a route may set inline (ProcessMedia API 2019-06-12, "Input Parameters").
TASK_FIELDS = frozenset({
    "MediaProcessTask", "AiContentReviewTask", "AiAnalysisTask", "AiRecognitionTask", "AiQualityControlTask",
    "SmartSubtitlesTask", "SmartEraseTask",
})
BATCH_TASK_FIELDS = frozenset({"SmartSubtitlesTask"})
"""Task parameters of BatchProcessMedia (API 2019-06-12: smart subtitles only)."""
DEFAULT_ENDPOINT = "mps.tencentcloudapi.com"
DEFAULT_OUTPUT_DIR = "/mps-output/"
_ARCHIVE_URI = re.compile(r"^(s3|cos)://([^/?#]+)(?:/([^?#]*))?$")
MAX_ARCHIVE_PREFIX_BYTES = 512
"""Longest ``ARCHIVE_URI`` prefix: archive keys add at most 168 bytes to it, and S3/COS keys end at 1,024."""
_COS_BUCKET = re.compile(r"^[a-z0-9-]+-\d+$")
_COS_DOMAIN = re.compile(r"^([a-z0-9-]+-\d+)\.cos\.([a-z0-9-]+)\.myqcloud\.com$")


@dataclass(frozen=True)
class ArchiveLocation:
    """Where callbacks are archived: ``storage`` (s3|cos), ``bucket``, key ``prefix`` ('' or ending in '/'), and
    ``region`` when the URI names it (COS domain form ``cos://b-1250000000.cos.ap-guangzhou.myqcloud.com/p``)."""

    storage: Literal["s3", "cos"]
    bucket: str
    prefix: str
    region: str | None = None


def parse_archive_uri(uri: str) -> ArchiveLocation:
    """``s3://bucket/prefix``, ``cos://bucket-appid/prefix`` or the COS domain form → :class:`ArchiveLocation`.

    Raises ValueError for anything else (a COS bucket must be ``name-appid``; the prefix at most
    :data:`MAX_ARCHIVE_PREFIX_BYTES` bytes of UTF-8, without ``..`` segments).
    """
    m = _ARCHIVE_URI.match(uri.strip())
    if not m:
        raise ValueError("must be s3://bucket/prefix or cos://bucket-appid/prefix")
    storage, host, path = m.group(1), m.group(2), (m.group(3) or "").strip("/")
    region = None
    if storage == "cos":
        dm = _COS_DOMAIN.match(host)
        if dm:
            host, region = dm.group(1), dm.group(2)
        if not re.match(r"^[a-z0-9-]+-\d+$", host):
            raise ValueError(f"COS bucket {host!r} must be name-appid, e.g. media-1250000000")
    elif not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", host):
        raise ValueError(f"{host!r} is not an S3 bucket name")
    if ".." in path.split("/"):
        raise ValueError("the prefix may not contain '..' segments")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_ARCHIVE_PREFIX_BYTES:
        raise ValueError(f"the prefix is longer than {MAX_ARCHIVE_PREFIX_BYTES} bytes: archive keys would pass "
                         f"S3's and COS's 1,024-byte limit")
    return ArchiveLocation(storage, host, f"{path}/" if path else "", region)  # type: ignore[arg-type]


class Route(BaseModel):
    """One routing rule: which objects go to which ProcessMedia request. The first matching route wins.

    Matching: ``storage`` (``s3``/``cos``), ``bucket`` (exact, full COS name ``name-appid``), ``prefix`` (key
    prefix, case-sensitive) and ``suffixes`` (case-insensitive); an omitted condition matches everything.
    Action: exactly one of ``schedule_id`` (orchestration) or ``tasks`` (inline ProcessMedia task parameters keyed
    by their API names, e.g. ``{"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 100030}]}}``).
    ``api`` is the action: ``ProcessMedia`` (default) or ``BatchProcessMedia`` (``tasks`` is then exactly
    ``{"SmartSubtitlesTask": {...}}``; inputs go by COS or, for S3 objects, by presigned URL with a COS output;
    exactly-once by a claim under ``ARCHIVE_URI``, :mod:`mps_triggers.claims`).
    Optional per-route overrides of the output location and task options. ``output_path`` is the folder of each
    object's outputs under the output dir, a template of :mod:`mps_triggers.outputs` variables (default
    ``{dir}{file}/``); a template that can give two objects one folder is refused at load unless
    ``shared_output`` is true.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    api: Literal["ProcessMedia", "BatchProcessMedia"] = "ProcessMedia"
    storage: Literal["s3", "cos"] | None = None
    bucket: str | None = None
    prefix: str = ""
    suffixes: tuple[str, ...] = ()
    schedule_id: int | None = Field(default=None, gt=0)
    tasks: dict[str, Any] | None = None
    output_bucket: str | None = None
    output_region: str | None = None
    output_dir: str | None = None
    output_path: str | None = None
    shared_output: bool = False
    output_storage: Literal["cos"] | None = None
    input: Literal["auto", "storage", "url"] = "auto"
    tasks_priority: int | None = Field(default=None, ge=-10, le=10)
    task_type: Literal["Online", "Offline"] | None = None

    _one_suffix = field_validator("suffixes", mode="before")(lambda v: _one_or_many(v))

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if v.startswith("/"):
            raise ValueError("a key prefix has no leading '/' (keys are 'uploads/a.mp4', not '/uploads/a.mp4')")
        return v

    @field_validator("output_dir")
    @classmethod
    def _dir(cls, v: str | None) -> str | None:
        return _check_dir(v) if v is not None else None

    _path = field_validator("output_path")(lambda v: _check_template(v))

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        unknown = sorted(set(v) - TASK_FIELDS)
        if unknown:
            raise ValueError(f"unknown task parameter(s) {unknown}; allowed: {sorted(TASK_FIELDS)}")
        if not v:
            raise ValueError("must name at least one task parameter")
        for name, value in v.items():
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a JSON object")
        return v

    @model_validator(mode="after")
    def _one_action(self) -> "Route":
        if self.api == "BatchProcessMedia":
            if self.schedule_id is not None or set(self.tasks or {}) != BATCH_TASK_FIELDS:
                raise ValueError('api "BatchProcessMedia" runs smart subtitles only: give tasks '
                                 '{"SmartSubtitlesTask": {...}} and no schedule_id')
            if self.task_type is not None:
                raise ValueError('BatchProcessMedia has no TaskType: remove task_type from this route')
            return self
        if (self.schedule_id is None) == (self.tasks is None):
            raise ValueError("give exactly one of schedule_id (an orchestration) or tasks (inline task parameters)")
        return self

    @property
    def batch(self) -> bool:
        """True when the route's action is BatchProcessMedia."""
        return self.api == "BatchProcessMedia"

    def matches(self, storage: str, bucket: str, key: str) -> bool:
        """True if an object in ``storage``/``bucket`` under ``key`` satisfies every condition of this route."""
        if self.storage is not None and self.storage != storage:
            return False
        if self.bucket is not None and self.bucket != bucket:
            return False
        if not key.startswith(self.prefix):
            return False
        if self.suffixes:
            lower = key.lower()
            return any(lower.endswith(s.lower()) for s in self.suffixes)
        return True


def _check_url(v: str | None) -> str | None:
    """An http(s) URL with a host and no whitespace. The value is never quoted in the error: it may carry a key."""
    if v is not None and not re.fullmatch(r"https?://[^/\s?#]+(?:[/?#]\S*)?", v):
        raise ValueError("must be an http(s) URL with a host and no spaces (value not shown: it may hold a key)")
    return v


def _check_template(v: str | None) -> str | None:
    """An ``output_path`` template (:meth:`OutputTemplate.parse` raises ValueError naming the problem)."""
    if v is not None:
        OutputTemplate.parse(v)
    return v


def _register_url_secrets(url: str | None) -> None:
    """Register the values of secret-named query parameters of ``url`` (a WeCom robot's ``key``, a ``token``)."""
    if url:
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=False):
            if is_secret_param(name):
                register_secret(value)


def _has_dotdot(path: str) -> bool:
    return ".." in path.split("/")


def _check_dir(v: str) -> str:
    if not (v.startswith("/") and v.endswith("/")):
        raise ValueError(f"must start and end with '/' (MPS OutputDir), got {v!r}")
    if _has_dotdot(v):
        raise ValueError(f"may not contain '..' segments, got {v!r}")
    return v


@dataclass(frozen=True)
class GuardedLocation:
    """A place whose objects are never submitted: ``bucket`` (None = any bucket) and key ``prefix`` ('' = all)."""

    bucket: str | None
    prefix: str
    setting: str

    def covers(self, bucket: str, key: str) -> bool:
        return (self.bucket is None or self.bucket == bucket) and key.startswith(self.prefix)


class Settings(BaseModel):
    """Validated configuration. Field ``x_y`` comes from environment variable ``X_Y`` (see README)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mps_endpoint: str = DEFAULT_ENDPOINT
    mps_region: str | None = None
    mps_secret_id: SecretStr | None = None
    mps_secret_key: SecretStr | None = None
    mps_session_token: SecretStr | None = None
    mps_credentials_secret_arn: str | None = None
    mps_schedule_id: int | None = Field(default=None, gt=0)
    mps_routes: tuple[Route, ...] = ()
    mps_output_bucket: str | None = None
    mps_output_region: str | None = None
    mps_output_dir: str = DEFAULT_OUTPUT_DIR
    mps_output_path: str | None = None
    mps_notify_url: str | None = None
    mps_notify_sqs_queue: str | None = None
    mps_notify_sqs_region: str | None = None
    mps_notify_key: SecretStr | None = None
    mps_notify_mode: Literal["Finish", "Change"] = "Finish"
    mps_s3_secret_id: SecretStr | None = None
    mps_s3_secret_key: SecretStr | None = None
    mps_s3_credentials_secret_arn: str | None = None
    mps_s3_regions: str | None = None
    mps_s3_input_tasks: str | None = None
    mps_tasks_priority: int | None = Field(default=None, ge=-10, le=10)
    mps_task_type: Literal["Online", "Offline"] | None = None
    mps_max_concurrency: int = Field(default=10, ge=1, le=100)
    mps_max_attempts: int = Field(default=6, ge=1, le=20)
    mps_timeout: float = Field(default=10.0, gt=0, le=120)
    callback_token: SecretStr | None = None
    archive_uri: str | None = None
    archive_region: str | None = None

    @field_validator("mps_output_dir")
    @classmethod
    def _dir(cls, v: str) -> str:
        return _check_dir(v)

    _url = field_validator("mps_notify_url")(lambda v: _check_url(v))

    _path = field_validator("mps_output_path")(lambda v: _check_template(v))

    @field_validator("archive_uri")
    @classmethod
    def _archive(cls, v: str | None) -> str | None:
        if v is not None:
            parse_archive_uri(v)
        return v

    _unique_names = field_validator("mps_routes")(lambda v: _unique_route_names(v))

    # --- derived --------------------------------------------------------------------------------------------

    @property
    def routes(self) -> tuple[Route, ...]:
        """The effective rules: MPS_ROUTES, or one catch-all ``default`` route to MPS_SCHEDULE_ID."""
        if self.mps_routes:
            return self.mps_routes
        return (Route(name="default", schedule_id=self.mps_schedule_id),)

    def output_dir_for(self, route: Route) -> str:
        return route.output_dir or self.mps_output_dir

    def output_bucket_for(self, route: Route) -> str | None:
        """The route's output bucket, or None when outputs go to the input object's own bucket."""
        return route.output_bucket or self.mps_output_bucket

    def output_template_for(self, route: Route) -> OutputTemplate:
        """The route's ``output_path``, else ``MPS_OUTPUT_PATH``, else the default: ``{dir}{file}/`` into the input's
        own bucket, ``{bucket}/{dir}{file}/`` into a separate output bucket."""
        text = route.output_path or self.mps_output_path
        if text is None:
            text = DEFAULT_TEMPLATE if self.output_bucket_for(route) is None else DEFAULT_TEMPLATE_OUTPUT_BUCKET
        return template(text)

    def output_path_setting(self, route: Route) -> str:
        """The variable that set the route's template (for error messages)."""
        if route.output_path:
            return f"MPS_ROUTES[{route.name}].output_path"
        return "MPS_OUTPUT_PATH" if self.mps_output_path else f"MPS_ROUTES[{route.name}] (default output_path)"

    def s3_input_mode(self, route: Route) -> Literal["storage", "url"]:
        """How MPS reads the route's S3 objects: its ``input`` when set; with ``auto``, by ``url`` when the route
        writes to COS, calls BatchProcessMedia, or has inline tasks MPS cannot run on an AWS-S3 input
        (:mod:`mps_triggers.constraints`), else from ``storage``."""
        if route.input != "auto":
            return route.input
        if route.output_storage == "cos" or route.batch:
            return "url"
        bad = unsupported(task_kinds(route.tasks or {}), [*S3_INPUT_TASKS, *self.s3_input_tasks])
        return "url" if bad else "storage"

    @property
    def s3_regions(self) -> tuple[str, ...]:
        """``MPS_S3_REGIONS``: AWS regions added to :data:`~mps_triggers.constraints.S3_INPUT_REGIONS`."""
        return _csv(self.mps_s3_regions)

    @property
    def s3_input_tasks(self) -> tuple[str, ...]:
        """``MPS_S3_INPUT_TASKS``: task kinds added to :data:`~mps_triggers.constraints.S3_INPUT_TASKS`."""
        return _csv(self.mps_s3_input_tasks)

    @property
    def archive_location(self) -> ArchiveLocation | None:
        return parse_archive_uri(self.archive_uri) if self.archive_uri else None

    def guarded_locations(self) -> tuple[GuardedLocation, ...]:
        """Every place the runtime recursion guard keeps out: each route's output dir, and the archive."""
        out: list[GuardedLocation] = []
        for r in self.routes:
            setting = f"MPS_ROUTES[{r.name}].output_dir" if r.output_dir else "MPS_OUTPUT_DIR"
            bucket = self.output_bucket_for(r) or r.bucket  # None: the input's own bucket, i.e. any routed bucket
            out.append(GuardedLocation(bucket, self.output_dir_for(r).lstrip("/"), setting))
        if self.archive_location:
            out.append(GuardedLocation(self.archive_location.bucket, self.archive_location.prefix, "ARCHIVE_URI"))
        return tuple(dict.fromkeys(out))


def _one_or_many(v: Any) -> Any:
    """A list setting given as one string: that string, as a one-item tuple."""
    return (v,) if isinstance(v, str) else v


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _read_env(model: type[BaseModel], env: Mapping[str, str]) -> dict[str, Any]:
    """Non-empty variables named like ``model``'s fields, with SCF's role credentials as the key fallback."""
    values: dict[str, Any] = {}
    for name in model.model_fields:
        raw = env.get(name.upper())
        if raw is not None and raw.strip() != "":
            values[name] = raw.strip()
    if "mps_secret_id" in model.model_fields and "mps_secret_id" not in values and "mps_secret_key" not in values:
        for field, fallback in (("mps_secret_id", "TENCENTCLOUD_SECRETID"), ("mps_secret_key", "TENCENTCLOUD_SECRETKEY"),
                                ("mps_session_token", "TENCENTCLOUD_SESSIONTOKEN")):
            if env.get(fallback, "").strip():
                values.setdefault(field, env[fallback].strip())
    return values


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the submit job's environment (``os.environ`` by default). Raises :class:`ConfigError`.

    SCF's role credentials ``TENCENTCLOUD_SECRETID``/``TENCENTCLOUD_SECRETKEY``/``TENCENTCLOUD_SESSIONTOKEN``
    are the fallback for ``MPS_SECRET_ID``/``MPS_SECRET_KEY``/``MPS_SESSION_TOKEN``.
    """
    values = _read_env(Settings, os.environ if environ is None else environ)
    if "mps_routes" in values:
        try:
            values["mps_routes"] = json.loads(values["mps_routes"])
        except ValueError as exc:
            raise ConfigError("MPS_ROUTES", f"not valid JSON ({exc})") from None
        if not isinstance(values["mps_routes"], list) or not values["mps_routes"]:
            raise ConfigError("MPS_ROUTES", "must be a non-empty JSON list of route objects")
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise _config_error(exc, values) from None
    _register_secrets(settings)
    _check(settings)
    return settings


def _register_secrets(settings: BaseModel) -> None:
    """Every secret the settings hold is masked wherever it turns up (logs, error messages, archive lines)."""
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
        elif name.endswith("_url") and isinstance(value, str):
            _register_url_secrets(value)


def _config_error(exc: ValidationError, values: dict[str, Any]) -> ConfigError:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        var = str(loc.pop(0)).upper() if loc else "configuration"
        if var in ("MPS_ROUTES", "VOD_ROUTES") and loc and isinstance(loc[0], int):
            index = loc.pop(0)
            routes = values.get(var.lower()) or []
            name = routes[index].get("name") if index < len(routes) and isinstance(routes[index], dict) else None
            var = f"{var}[{index}]" + (f" ({name})" if name else "")
        where = var + "".join(f".{p}" for p in loc if not str(p).startswith("function-"))
        problems.append(f"{where}: {err['msg']}")
    first, _, rest = problems[0].partition(": ")
    return ConfigError(first, rest + ("" if len(problems) == 1 else f" (and: {'; '.join(problems[1:])})"))


def _check(s: Settings) -> None:
    """Cross-field rules: credentials present, one notify target, and the load-time recursion guard."""
    if not s.mps_credentials_secret_arn and not (s.mps_secret_id and s.mps_secret_key):
        raise ConfigError("MPS_SECRET_ID/MPS_SECRET_KEY",
                          "Tencent Cloud credentials are required: set MPS_SECRET_ID and MPS_SECRET_KEY, run on SCF "
                          "with an execution role (TENCENTCLOUD_SECRETID/...), or set MPS_CREDENTIALS_SECRET_ARN")
    if bool(s.mps_secret_id) != bool(s.mps_secret_key):
        raise ConfigError("MPS_SECRET_ID/MPS_SECRET_KEY", "set both or neither")
    if bool(s.mps_s3_secret_id) != bool(s.mps_s3_secret_key):
        raise ConfigError("MPS_S3_SECRET_ID/MPS_S3_SECRET_KEY", "set both or neither")
    if not s.mps_routes and s.mps_schedule_id is None:
        raise ConfigError("MPS_ROUTES/MPS_SCHEDULE_ID", "set MPS_ROUTES (a JSON list of routes) or MPS_SCHEDULE_ID")
    if s.mps_routes and s.mps_schedule_id is not None:
        raise ConfigError("MPS_ROUTES/MPS_SCHEDULE_ID",
                          "set one, not both (give the catch-all route its schedule_id inside MPS_ROUTES)")
    if s.mps_notify_url and s.callback_token and "token" in _query_names(s.mps_notify_url):
        raise ConfigError("MPS_NOTIFY_URL/CALLBACK_TOKEN", "give the token once: set CALLBACK_TOKEN (the job adds it "
                                                           "to NotifyUrl, URL-encoded) and leave it out of the URL")
    if s.mps_notify_sqs_queue and not s.mps_notify_sqs_region:
        raise ConfigError("MPS_NOTIFY_SQS_REGION", "required with MPS_NOTIFY_SQS_QUEUE (the queue's AWS region)")
    if s.mps_notify_sqs_queue and not (s.mps_s3_secret_id or s.mps_s3_credentials_secret_arn):
        raise ConfigError("MPS_NOTIFY_SQS_QUEUE/MPS_S3_SECRET_ID",
                          "an AWS-SQS callback needs the AWS key MPS sends with (MPS_S3_SECRET_ID/MPS_S3_SECRET_KEY "
                          "or MPS_S3_CREDENTIALS_SECRET_ARN)")
    archive = s.archive_location
    _check_output_overlaps(s)
    for r in s.routes:
        rname = f"MPS_ROUTES[{r.name}]" if s.mps_routes else "MPS_SCHEDULE_ID"
        out_dir = s.output_dir_for(r)
        dir_setting = f"MPS_ROUTES[{r.name}].output_dir" if r.output_dir else "MPS_OUTPUT_DIR"
        out_bucket = s.output_bucket_for(r)
        # Outputs at the root of the very bucket the route reads would all be skipped: refuse. A separate output
        # bucket at its root is fine, the guard keeps that whole bucket out.
        if out_dir == "/" and (out_bucket is None or out_bucket == r.bucket):
            raise ConfigError(f"{dir_setting}/{rname}",
                              f"output dir '/' is the root of a routed bucket "
                              f"({out_bucket or r.bucket or 'any input bucket'}): every output would be submitted "
                              f"again; give outputs their own dir, e.g. {DEFAULT_OUTPUT_DIR}")
        same_bucket = out_bucket is None or r.bucket is None or out_bucket == r.bucket
        if same_bucket and ("/" + r.prefix).startswith(out_dir) and r.prefix:
            raise ConfigError(f"{dir_setting}/{rname}",
                              f"route prefix {r.prefix!r} lies inside output dir {out_dir!r} on the same bucket")
        _check_task_paths(r, out_dir, rname, dir_setting)
        _check_output_template(s, r, rname)
        _check_mps_rules(s, r, rname)
        if archive and r.bucket == archive.bucket and r.prefix.startswith(archive.prefix):
            raise ConfigError(f"ARCHIVE_URI/{rname}",
                              f"route prefix {r.prefix!r} lies inside the archive location {s.archive_uri}")


def _check_output_template(s: Settings, r: Route, rname: str) -> None:
    """A route's folders are one per object (see :meth:`OutputTemplate.per_object`) and, when outputs go to a separate
    bucket that several input buckets may feed, kept apart by bucket, unless the route sets ``shared_output``."""
    if r.shared_output:
        return
    template, setting = s.output_template_for(r), s.output_path_setting(r)
    if not template.per_object():
        raise ConfigError(setting, f"{template.text!r} can give two objects the same output folder, so their outputs "
                                   f"would overwrite each other: include {{dir}}{{file}}/ or {{session_id}} (with "
                                   f"only literal text, {{date}}, {{route}}/ or {{bucket}}/ before it), or set "
                                   f'"shared_output": true on {rname} to accept that')
    if s.output_bucket_for(r) is not None and r.bucket is None and not template.has_bucket():
        raise ConfigError(setting, f"{rname} reads any bucket and writes to output bucket {s.output_bucket_for(r)!r}: "
                                   f"objects of two buckets with one key would share a folder; start the template "
                                   f"with {{bucket}}/, give the route a bucket, or set \"shared_output\": true")


def _check_mps_rules(s: Settings, r: Route, rname: str) -> None:
    """The rules of :mod:`mps_triggers.constraints` that the configuration alone decides."""
    kinds = task_kinds(r.tasks or {})
    task_type = r.task_type or s.mps_task_type
    bad = unsupported(kinds, OFFLINE_TASKS)
    if task_type == "Offline" and bad:
        raise ConfigError(f"{rname}.task_type" if r.task_type else f"MPS_TASK_TYPE/{rname}",
                          f"offline-transcoding-only: MPS runs TaskType Offline for transcoding only, not {bad}")
    bad = unsupported(kinds, [*S3_INPUT_TASKS, *s.s3_input_tasks])
    if r.storage == "s3" and bad and r.input == "storage":
        raise ConfigError(f"{rname}.input", f"s3-input-tasks: MPS cannot read AWS-S3 inputs for {bad} (it reads them "
                                            f"for {sorted(S3_INPUT_TASKS)}): use \"input\": \"url\" (or \"auto\"), "
                                            f"or add them to MPS_S3_INPUT_TASKS if MPS does now")
    if r.input == "storage" and r.output_storage == "cos" and r.storage != "cos":
        raise ConfigError(f"{rname}.input", "url-input-output: MPS writes an AWS-S3 input's outputs to S3; a COS "
                                            "output for S3 objects needs \"input\": \"url\" (or \"auto\")")
    if r.storage == "s3" and s.s3_input_mode(r) == "url" and not (r.output_storage == "cos" and r.output_bucket and r.output_region):
        raise ConfigError(f"{rname}.output_storage",
                          "url-input-output: this route's S3 objects are read by MPS through a presigned URL "
                          + (f"(MPS cannot read AWS-S3 inputs for {bad}) " if bad else "")
                          + "and URL input needs a COS OutputStorage: set output_storage \"cos\", output_bucket "
                            "(name-appid) and output_region")
    if r.output_storage == "cos" and r.output_bucket and not _COS_BUCKET.match(r.output_bucket):
        raise ConfigError(f"{rname}.output_bucket", f"{r.output_bucket!r} is not a COS bucket (name-appid)")
    if r.batch:
        _check_batch_route(s, r, rname)
    if r.storage == "cos" and s.mps_notify_sqs_queue and not s.mps_notify_url:
        raise ConfigError(f"MPS_NOTIFY_SQS_QUEUE/{rname}",
                          "aws-sqs-notify: MPS sends AWS-SQS callbacks only for AWS-S3 inputs, and this route reads "
                          "COS; set MPS_NOTIFY_URL too (COS tasks are then called back by URL)")


def _check_batch_route(s: Settings, r: Route, rname: str) -> None:
    """BatchProcessMedia's rules (:data:`mps_triggers.constraints.RULES`): inputs by COS or URL, an AWS-SQS callback
    never fits, and exactly-once needs ARCHIVE_URI for its claims."""
    if r.input == "storage" and r.storage != "cos":
        raise ConfigError(f"{rname}.input", "batch-inputs: BatchProcessMedia reads COS objects or URLs, never "
                                            "AWS-S3: S3 objects go by presigned URL; use \"input\": \"url\" or "
                                            "\"auto\" (or restrict the route with \"storage\": \"cos\")")
    if s.mps_notify_sqs_queue and not s.mps_notify_url:
        raise ConfigError(f"MPS_NOTIFY_SQS_QUEUE/{rname}",
                          "aws-sqs-notify: MPS sends AWS-SQS callbacks only for AWS-S3 inputs, and BatchProcessMedia "
                          "reads COS or URL inputs; set MPS_NOTIFY_URL too (its tasks are then called back by URL)")
    if not s.archive_uri:
        raise ConfigError(f"ARCHIVE_URI/{rname}",
                          "batch-claims: BatchProcessMedia has no SessionId, so each object is claimed once under "
                          "ARCHIVE_URI (claims/...) before it is submitted; set ARCHIVE_URI (the archive the "
                          "callbacks go to)")


def _check_output_overlaps(s: Settings) -> None:
    """Routes whose outputs go to one place (output bucket, or the input's own bucket, and output dir) with different
    templates must have folders that cannot meet: their literal starts (``{route}`` filled in) may not begin one
    another. Routes that pin different buckets into one output bucket need ``{bucket}`` too."""
    routes = [r for r in s.routes if not r.shared_output]
    for i, a in enumerate(routes):
        for b in routes[i + 1:]:
            out_a, out_b = s.output_bucket_for(a), s.output_bucket_for(b)
            if out_a != out_b or s.output_dir_for(a) != s.output_dir_for(b):
                continue
            if out_a is None and a.bucket is not None and b.bucket is not None and a.bucket != b.bucket:
                continue  # each writes into its own input bucket
            ta, tb = s.output_template_for(a), s.output_template_for(b)
            if ta == tb and (out_a is None or ta.has_bucket() or (a.bucket is not None and a.bucket == b.bucket)):
                continue  # one template over distinct keys of one bucket (first matching route wins)
            if not heads_overlap(ta.head(a.name), tb.head(b.name)):
                continue
            raise ConfigError(f"MPS_ROUTES[{a.name}]/MPS_ROUTES[{b.name}]",
                              f"both write to {out_a or 'the input bucket'}:{s.output_dir_for(a)} with output paths "
                              f"{ta.text!r} and {tb.text!r} that can name the same folder; start each with "
                              f"{{route}}/ (or different literal folders), add {{bucket}}/, or set "
                              f'"shared_output": true on one of them')


def _per_object_file(rel: str) -> bool:
    folder = rel[: rel.rfind("/") + 1]
    try:
        return bool(folder) and OutputTemplate.parse(folder, mps_variables=True).per_object()
    except ValueError:
        return False


def _query_names(url: str) -> set[str]:
    return {name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def _check_task_paths(route: Route, out_dir: str, rname: str, dir_setting: str) -> None:
    """Output paths in inline tasks (``…ObjectPath``, ``…ObjectName``, ``…Dir``) may not climb out with ``..``
    segments, and an absolute one must stay under the output dir (else: a loop)."""
    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                is_path = k.endswith(PATH_FIELD_SUFFIXES) or k.endswith("Dir")
                if isinstance(v, str) and is_path and _has_dotdot(v):
                    raise ConfigError(f"{rname}.tasks{path}.{k}",
                                      f"{v!r} has a '..' segment: outputs could land outside {out_dir!r}")
                if isinstance(v, str) and k.endswith(PATH_FIELD_SUFFIXES) and v.startswith("/"):
                    if not v.startswith(out_dir):
                        raise ConfigError(f"{rname}.tasks{path}.{k}/{dir_setting}",
                                          f"absolute path {v!r} escapes output dir {out_dir!r}; outputs there could "
                                          f"be submitted again")
                    if not route.shared_output and not _per_object_file(v[len(out_dir):]):
                        raise ConfigError(f"{rname}.tasks{path}.{k}",
                                          f"absolute path {v!r} is not under a folder of its own per object (it "
                                          f"bypasses OutputDir): put {{dir}}{{file}}/ or {{session_id}}/ in its folder "
                                          f'part, make it relative, or set "shared_output": true')
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
    walk(route.tasks or {}, "")


WEBHOOK_DEFAULT_RATES = {"wecom": 20, "slack": 60, "json": 0}


class ArchiveSettings(BaseModel):
    """The archive job's configuration. Field ``x_y`` comes from environment variable ``X_Y`` (see README).

    ``ARCHIVE_URI`` is required. COS archives are written with the Tencent Cloud key (``MPS_SECRET_ID``/
    ``MPS_SECRET_KEY``, or SCF's role credentials); S3 archives with the function's AWS role.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    archive_uri: str
    archive_region: str | None = None
    mps_notify_key: SecretStr | None = None
    callback_token: SecretStr | None = None
    callback_max_bytes: int = Field(default=1024 * 1024, ge=1024, le=6 * 1024 * 1024)
    callback_clock_skew: int = Field(default=300, ge=0, le=86400)
    webhook_url: str | None = None
    webhook_format: Literal["wecom", "slack", "json"] = "json"
    webhook_timeout: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=3, ge=1, le=10)
    webhook_max_per_minute: int | None = Field(default=None, ge=0, le=6000)
    mps_secret_id: SecretStr | None = None
    mps_secret_key: SecretStr | None = None
    mps_session_token: SecretStr | None = None
    compact_grace_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)
    compact_lookback_hours: int = Field(default=48, ge=1, le=90 * 24)

    _archive = field_validator("archive_uri")(lambda v: (parse_archive_uri(v), v)[1])

    _url = field_validator("webhook_url")(lambda v: _check_url(v))

    @property
    def location(self) -> ArchiveLocation:
        return parse_archive_uri(self.archive_uri)

    @property
    def webhook_rate(self) -> int:
        """Pushes per minute per webhook URL and container (0: unpaced): ``WEBHOOK_MAX_PER_MINUTE``, else the
        documented limit of the format (WeCom group robot 20/min; Slack incoming webhook about 1/s)."""
        if self.webhook_max_per_minute is not None:
            return self.webhook_max_per_minute
        return WEBHOOK_DEFAULT_RATES[self.webhook_format]

    @property
    def region(self) -> str | None:
        """ARCHIVE_REGION, else the region in the URI, else (S3) the function's own region."""
        return _archive_region(self.archive_region, self.location)


def _unique_route_names(routes: tuple[Any, ...]) -> tuple[Any, ...]:
    names = [r.name for r in routes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"route names must be unique, repeated: {dupes}")
    return routes


def _archive_region(archive_region: str | None, location: ArchiveLocation) -> str | None:
    """``ARCHIVE_REGION``, else the region in the URI, else (S3) the function's own region."""
    return archive_region or location.region or (
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") if location.storage == "s3" else None)


def load_archive_settings(environ: Mapping[str, str] | None = None) -> ArchiveSettings:
    """Read and validate the archive job's environment. Raises :class:`ConfigError` naming the variable."""
    values = _read_env(ArchiveSettings, os.environ if environ is None else environ)
    try:
        settings = ArchiveSettings(**values)
    except ValidationError as exc:
        raise _config_error(exc, values) from None
    _register_secrets(settings)
    if settings.location.storage == "cos":
        if not settings.region:
            raise ConfigError("ARCHIVE_REGION", "required for a COS archive (e.g. ap-guangzhou), or use the URI form "
                                                "cos://bucket-appid.cos.ap-guangzhou.myqcloud.com/prefix")
        if not (settings.mps_secret_id and settings.mps_secret_key):
            raise ConfigError("MPS_SECRET_ID/MPS_SECRET_KEY", "a COS archive is written with the Tencent Cloud key: set "
                                                              "both, or run on SCF with an execution role")
    return settings


# --- VOD (the vod job) ------------------------------------------------------------------------------------------------

VOD_ACTIONS = ("procedure", "schedule_id", "tasks", "mps_params")


class VodRoute(BaseModel):
    """One VOD routing rule: which uploaded files start which processing. The first matching route wins; a file no
    route matches is only archived.

    Matching (an omitted condition matches everything): ``sub_app_id`` (the VOD application), ``class_ids`` (the
    file's ``ClassId``), ``class_paths`` (a prefix of its ``ClassPath``), ``types`` (``MediaBasicInfo.Type`` or the
    name's extension, case-insensitive, without a dot: ``["mp4", "mov"]``), ``name_prefix`` (case-sensitive).
    Action, exactly one of: ``procedure`` (a VOD task flow: ProcessMediaByProcedure ``ProcedureName``),
    ``schedule_id`` or ``tasks`` (MPS ProcessMedia on the VOD file, ``InputInfo.Type=VOD``; ``tasks`` keyed by the
    API's task parameter names), ``mps_params`` (VOD's ProcessMediaByMPS: exactly ``{"AiAnalysisTask": {...}}``,
    e.g. smart erase; exactly once by a claim under ``ARCHIVE_URI``). ``tasks_priority`` ([-10, 10]) and, for a task
    flow, ``tasks_notify_mode`` (``Finish``/``Change``/``None``) are passed on.

    Example::

        VOD_ROUTES='[{"name": "flows", "class_ids": [12], "types": ["mp4"], "procedure": "hls-720p"}]'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    sub_app_id: int | None = Field(default=None, gt=0)
    class_ids: tuple[int, ...] = ()
    class_paths: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    name_prefix: str = ""
    procedure: str | None = Field(default=None, min_length=1, max_length=64)
    schedule_id: int | None = Field(default=None, gt=0)
    tasks: dict[str, Any] | None = None
    mps_params: dict[str, Any] | None = None
    tasks_priority: int | None = Field(default=None, ge=-10, le=10)
    tasks_notify_mode: Literal["Finish", "Change", "None"] | None = None

    @field_validator("types", mode="before")
    @classmethod
    def _types(cls, v: Any) -> Any:
        items = (v,) if isinstance(v, str) else v
        return tuple(str(t).lower().lstrip(".") for t in items) if isinstance(items, (list, tuple)) else v

    _paths = field_validator("class_paths", mode="before")(lambda v: _one_or_many(v))

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return Route._tasks(v)

    @field_validator("mps_params")
    @classmethod
    def _mps_params(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and (set(v) != {"AiAnalysisTask"} or not isinstance(v["AiAnalysisTask"], dict)):
            raise ValueError('ProcessMediaByMPS reads AiAnalysisTask only (VOD API 2018-07-17): give exactly '
                             '{"AiAnalysisTask": {...}}')
        return v

    @model_validator(mode="after")
    def _one_action(self) -> "VodRoute":
        given = [a for a in VOD_ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(VOD_ACTIONS)} (got {given or 'none'})")
        if self.tasks_notify_mode is not None and self.procedure is None:
            raise ValueError("tasks_notify_mode is a task flow's (ProcessMediaByProcedure): remove it or use procedure")
        return self

    @property
    def api(self) -> str:
        """The API the route calls: ``ProcessMediaByProcedure``, ``ProcessMedia`` or ``ProcessMediaByMPS``."""
        if self.procedure is not None:
            return "ProcessMediaByProcedure"
        return "ProcessMediaByMPS" if self.mps_params is not None else "ProcessMedia"

    def matches(self, file: Any) -> bool:
        """True if a :class:`~mps_triggers.vod.VodFile` satisfies every condition of this route."""
        if self.sub_app_id is not None and file.sub_app_id != self.sub_app_id:
            return False
        if self.class_ids and file.class_id not in self.class_ids:
            return False
        if self.class_paths and not any(file.class_path.startswith(p) for p in self.class_paths):
            return False
        if self.types and file.media_type not in self.types and file.extension not in self.types:
            return False
        return file.name.startswith(self.name_prefix)


class VodSettings(BaseModel):
    """The vod job's configuration (``functions/vod``). Field ``x_y`` comes from environment variable ``X_Y``.

    ``ARCHIVE_URI`` is required (every event is archived; the ledger and ProcessMediaByMPS claims live there).
    ``VOD_SUB_APP_ID`` is the application pulled from, and the one a pushed event is from unless the callback URL
    says ``sub_app_id=``. Tencent Cloud credentials as the submit job's (``MPS_SECRET_ID``/``MPS_SECRET_KEY``,
    ``MPS_CREDENTIALS_SECRET_ARN``, or SCF's role). ``VOD_SIGN_KEY`` is the application's event ``SignKey``
    (``ModifyEventConfig``): pushed events must then carry a valid ``Sign``/``T``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    archive_uri: str
    archive_region: str | None = None
    vod_endpoint: str = "vod.tencentcloudapi.com"
    vod_sub_app_id: int | None = Field(default=None, gt=0)
    vod_routes: tuple[VodRoute, ...] = ()
    vod_sign_key: SecretStr | None = None
    vod_pull_max_events: int = Field(default=1600, ge=1, le=100000)
    mps_endpoint: str = DEFAULT_ENDPOINT
    mps_region: str | None = None
    mps_secret_id: SecretStr | None = None
    mps_secret_key: SecretStr | None = None
    mps_session_token: SecretStr | None = None
    mps_credentials_secret_arn: str | None = None
    mps_notify_url: str | None = None
    mps_notify_key: SecretStr | None = None
    mps_timeout: float = Field(default=10.0, gt=0, le=120)
    mps_max_attempts: int = Field(default=6, ge=1, le=20)
    callback_token: SecretStr | None = None
    callback_max_bytes: int = Field(default=1024 * 1024, ge=1024, le=6 * 1024 * 1024)
    callback_clock_skew: int = Field(default=300, ge=0, le=86400)

    _archive = field_validator("archive_uri")(lambda v: (parse_archive_uri(v), v)[1])

    _url = field_validator("mps_notify_url")(lambda v: _check_url(v))

    _unique_names = field_validator("vod_routes")(lambda v: _unique_route_names(v))

    @property
    def location(self) -> ArchiveLocation:
        return parse_archive_uri(self.archive_uri)

    @property
    def region(self) -> str | None:
        """ARCHIVE_REGION, else the region in the URI, else (S3) the function's own region."""
        return _archive_region(self.archive_region, self.location)

    def route_for(self, file: Any) -> VodRoute | None:
        """The first route matching the :class:`~mps_triggers.vod.VodFile`, or None."""
        return next((r for r in self.vod_routes if r.matches(file)), None)


def load_vod_settings(environ: Mapping[str, str] | None = None) -> VodSettings:
    """Read and validate the vod job's environment. Raises :class:`ConfigError` naming the variable
    (``VOD_ROUTES[0] (flows): give exactly one of ...``)."""
    values = _read_env(VodSettings, os.environ if environ is None else environ)
    if "vod_routes" in values:
        try:
            values["vod_routes"] = json.loads(values["vod_routes"])
        except ValueError as exc:
            raise ConfigError("VOD_ROUTES", f"not valid JSON ({exc})") from None
        if not isinstance(values["vod_routes"], list):
            raise ConfigError("VOD_ROUTES", "must be a JSON list of route objects")
    try:
        settings = VodSettings(**values)
    except ValidationError as exc:
        raise _config_error(exc, values) from None
    _register_secrets(settings)
    if settings.vod_routes and not settings.mps_credentials_secret_arn and not (
            settings.mps_secret_id and settings.mps_secret_key):
        raise ConfigError("MPS_SECRET_ID/MPS_SECRET_KEY", "VOD_ROUTES submit to VOD and MPS: set both, "
                                                          "MPS_CREDENTIALS_SECRET_ARN, or run on SCF with a role")
    if settings.location.storage == "cos" and not settings.region:
        raise ConfigError("ARCHIVE_REGION", "required for a COS archive (e.g. ap-guangzhou)")
    for i, r in enumerate(settings.vod_routes):
        if r.mps_params is not None and r.sub_app_id is None and settings.vod_sub_app_id is None:
            raise ConfigError(f"VOD_ROUTES[{i}] ({r.name})", "ProcessMediaByMPS needs a SubAppId: give the route "
                                                              "sub_app_id, or set VOD_SUB_APP_ID")
    return settings
