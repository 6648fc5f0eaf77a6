"""``mps-triggers deploy scf``: everything on Tencent SCF from one config file, idempotent, in one run.

The config (``deploy/scf/config.toml``; ``deploy/scf/config.example.toml`` documents every key) names the region,
the appid, the buckets, the functions' settings and environment. One run:

1. CAM: one execution role per function (trust: ``scf.qcloud.com``) and one least-privilege policy each (submit:
   ``mps:ProcessMedia``; archive: ``cos:PutObject`` under the archive prefix; compact: list the archive's
   partitions, read, write and delete in them; vod: VOD's PullEvents, ConfirmEvents, ProcessMediaByProcedure,
   ProcessMediaByMPS and MPS's ProcessMedia, ``cos:PutObject`` in the archive's partitions and its claims), attached.
   A changed policy gets a new default version.
2. The layer (``mps-triggers-core``): published only when the package's sha256 is not the description of an
   existing version; its zip goes to the packages bucket first (COS ``PutObject``, skipped when the
   content-addressed object is already there).
3. The archive function, then its function URL trigger (``http``, ``AuthType NONE``: the MPS signature and the
   token authenticate); the compaction function and its timer; then the submit function, whose ``MPS_NOTIFY_URL``
   is that function URL (the submit job adds ``CALLBACK_TOKEN``, URL-encoded): no second deploy. Each function is
   created, or its configuration and code are updated where they differ (code by ``GetFunctionAddress``'s
   ``CodeSha256``), and waited for until ``Active``.
4. The submit function's COS trigger (prefix/suffix filter), its reserved concurrency (the counterpart of SAM's
   ``MaximumConcurrency``), its async retries and message age (``UpdateFunctionEventInvokeConfig``) and, when
   named, its dead-letter queue.
   With a ``[vod]`` section, the vod function last (its ``MPS_NOTIFY_URL`` is the archive's URL too): ``mode =
   "pull"`` gives it a timer trigger (every minute) and a reserved concurrency of one instance, so one poller runs
   at a time; ``mode = "push"`` a function URL trigger of its own, the VOD application's NotificationUrl.
5. The MPS trigger has no API (CreateTrigger's types are cos, cls, timer, ckafka and http): the run ends with the
   console step.

Reads (``Get*``/``List*``) always run; with ``--dry-run`` every write is printed (service, action, payload; secrets
shown as ``***``) and not sent, and values a write would return (a new layer version, a new function URL) are shown
as ``<Action.Field>``. A real run makes exactly those writes.

Calls go through the official Tencent Cloud SDK (``tencentcloud-sdk-python-common``'s ``CommonClient``, TC3-signed;
SCF ``2018-04-16``, CAM ``2019-01-16``), with the deployer's key from the SDK's default chain
(``TENCENTCLOUD_SECRET_ID``/``TENCENTCLOUD_SECRET_KEY``, ``~/.tencentcloud/credentials``, a CVM role). The SDK is
the operator command's dependency, never the layer's. ``--endpoint HOST`` sends both services' calls to another
host (the tests' local fake API); ``COS_ENDPOINT_URL`` does the same for COS.

The manual path stays: ``--write-tccli DIR`` writes the same requests as ``tccli --cli-input-json`` files, from the
same config (``deploy/scf/tccli/`` is generated from ``config.example.toml``).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .common import UsageError, note

DEFAULT_CONFIG = "deploy/scf/config.toml"
RUNTIME = "Python3.10"
SECRET_VARIABLES = frozenset({"MPS_NOTIFY_KEY", "CALLBACK_TOKEN", "WEBHOOK_URL", "VOD_SIGN_KEY"})
"""Environment variables whose values a printed plan shows as ``***``."""
TRUST = {"version": "2.0", "statement": [{"action": "name/sts:AssumeRole", "effect": "allow",
                                          "principal": {"service": ["scf.qcloud.com"]}}]}
MANUAL_NOTIFY_URL = "https://{app_id}-abcdefgh.{region}.tencentscf.com/"
"""What the generated tccli payloads hold for MPS_NOTIFY_URL (and what the environment check loads): replace it
with the URL CreateTrigger prints."""
ACTIVE_WAIT = 120.0
"""Seconds a created or updated function may take to become ``Active``."""
DESCRIPTIONS = {
    "submit": "Submit job of mps triggers, sends each COS upload to MPS ProcessMedia once.",
    "archive": "Archive job of mps triggers, keeps every MPS task callback as a JSON line in COS.",
    "compact": "Compaction of mps triggers, each closed hour partition of the COS archive becomes one gzip JSON "
               "lines object, hourly.",
    "vod": "VOD job of mps triggers, archives every VOD event and starts each uploaded file processing once.",
}
ROLE_DESCRIPTIONS = {
    "submit": "Execution role of the mps triggers submit function, may call MPS ProcessMedia only.",
    "archive": "Execution role of the mps triggers archive function, may put objects under the archive prefix only.",
    "compact": "Execution role of the mps triggers compaction function: list the archive's partitions, read, write "
               "and delete objects in them only.",
    "vod": "Execution role of the mps triggers vod function: pull and confirm VOD events, start VOD and MPS tasks, "
           "write the archive's partitions and claims only.",
}
VOD_ACTIONS = ["vod:PullEvents", "vod:ConfirmEvents", "vod:ProcessMediaByProcedure", "vod:ProcessMediaByMPS",
               "mps:ProcessMedia"]
MPS_TRIGGER_STEP = ("MPS trigger (tasks MPS starts itself call back there; no API exists for it): console, function "
                    "{archive} -> Triggers -> Create -> MPS trigger -> event type WorkflowTask, then EditMediaTask; "
                    "authorize SCF_QcsRole/MPS_QcsRole when asked. One function per event type per account.")


# --- the config ------------------------------------------------------------------------------------------------

def _secret(value: str) -> str:
    """``env:NAME`` reads the environment variable NAME (keeps secrets out of the file)."""
    if value.startswith("env:"):
        name = value[4:]
        if not os.environ.get(name):
            raise ValueError(f"the environment variable {name} is not set")
        return os.environ[name]
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionSettings(_Model):
    memory_mb: int = Field(ge=64, le=3072)
    timeout_s: int = Field(ge=1, le=900)
    environment: dict[str, str] = {}


class SubmitSettings(FunctionSettings):
    memory_mb: int = Field(256, ge=64, le=3072)
    timeout_s: int = Field(60, ge=1, le=900)
    input_bucket: str = Field(pattern=r"^[a-z0-9-]{1,50}-\d{5,}$")
    prefix: str = ""
    suffix: str = ""
    reserved_concurrency_mb: int = Field(2048, ge=0)
    retries: int = Field(2, ge=0, le=2)
    message_ttl_s: int = Field(86400, ge=60, le=86400)
    dead_letter_queue: str = ""


class ArchiveSettings(FunctionSettings):
    memory_mb: int = Field(512, ge=64, le=3072)
    timeout_s: int = Field(30, ge=1, le=900)
    bucket: str = Field(pattern=r"^[a-z0-9-]{1,50}-\d{5,}$")
    prefix: str = Field("callbacks", pattern=r"^[A-Za-z0-9!_.*'()/-]+$")


class CompactSettings(FunctionSettings):
    memory_mb: int = Field(1024, ge=64, le=3072)
    timeout_s: int = Field(900, ge=1, le=900)
    schedule: str = "0 10 * * * * *"
    grace_minutes: int = Field(60, ge=0)
    lookback_hours: int = Field(48, ge=1)


class VodSettings(FunctionSettings):
    """``[vod]``: the vod function (README "VOD"). ``mode`` ``pull`` (reliable callback: a timer every minute and
    one instance at a time) or ``push`` (normal callback: a function URL); ``sign_key`` the application's event
    SignKey (``env:NAME`` reads it from the environment)."""

    memory_mb: int = Field(256, ge=64, le=3072)
    timeout_s: int = Field(300, ge=30, le=900)
    mode: Literal["pull", "push"] = "pull"
    sub_app_id: int | None = Field(None, gt=0)
    schedule: str = "0 */1 * * * * *"
    sign_key: str = ""

    @field_validator("sign_key")
    @classmethod
    def _resolve(cls, value: str) -> str:
        return _secret(value) if value else value


class PackageSettings(_Model):
    dir: str = "build/scf"
    cos_bucket: str = Field(pattern=r"^[a-z0-9-]{1,50}-\d{5,}$")
    cos_prefix: str = "mps-triggers/"


class ScfDeployConfig(_Model):
    """``deploy/scf/config.toml`` (``config.example.toml`` documents each key). Raises pydantic's ValidationError."""

    region: str = Field(pattern=r"^[a-z]+-[a-z]+(-[a-z0-9]+)*$")
    app_id: str = Field(pattern=r"^\d{5,}$")
    namespace: str = "default"
    name: str = Field("mps-triggers", pattern=r"^[A-Za-z][A-Za-z0-9_-]{1,40}$")
    notify_key: str
    callback_token: str
    packages: PackageSettings
    submit: SubmitSettings
    archive: ArchiveSettings
    compact: CompactSettings = CompactSettings()
    vod: VodSettings | None = None

    @field_validator("notify_key", "callback_token")
    @classmethod
    def _resolve(cls, value: str) -> str:
        value = _secret(value)
        if len(value) < 8:
            raise ValueError("set it (8 characters or more): the function URL is public")
        return value

    def function_name(self, job: str) -> str:
        return f"{self.name}-{job}"

    @property
    def jobs(self) -> tuple[str, ...]:
        """The functions this config deploys: submit, archive, compact, and vod with a ``[vod]`` section."""
        return ("submit", "archive", "compact", "vod") if self.vod is not None else ("submit", "archive", "compact")

    @property
    def layer_name(self) -> str:
        return f"{self.name}-core"

    @property
    def archive_uri(self) -> str:
        return f"cos://{self.archive.bucket}.cos.{self.region}.myqcloud.com/{self.archive.prefix}"

    @property
    def manual_notify_url(self) -> str:
        """:data:`MANUAL_NOTIFY_URL` for this account and region."""
        return MANUAL_NOTIFY_URL.format(app_id=self.app_id, region=self.region)


def load_config(path: str) -> ScfDeployConfig:
    """The config at ``path`` (TOML). Raises :class:`UsageError` naming the file and the key at fault."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError("--config", f"{path}: no such file (copy deploy/scf/config.example.toml)") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError("--config", f"{path}: {exc}") from None
    try:
        return ScfDeployConfig.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise UsageError(f"{path}: {where}", first["msg"]) from None


# --- what the config asks for ----------------------------------------------------------------------------------

def policy_document(config: ScfDeployConfig, job: str) -> dict[str, Any]:
    """The CAM policy of ``job``'s execution role (CAM policy syntax 2.0)."""
    bucket = f"qcs::cos:{config.region}:uid/{config.app_id}:{config.archive.bucket}"
    prefix = config.archive.prefix
    if job == "submit":
        statements = [{"effect": "allow", "action": ["mps:ProcessMedia"], "resource": ["*"]}]
    elif job == "archive":
        statements = [{"effect": "allow", "action": ["cos:PutObject"], "resource": [f"{bucket}/{prefix}/*"]}]
    elif job == "vod":  # the API calls, then lines and ledger in the partitions, ProcessMediaByMPS's claims
        statements = [{"effect": "allow", "action": VOD_ACTIONS, "resource": ["*"]},
                      {"effect": "allow", "action": ["cos:PutObject"],
                       "resource": [f"{bucket}/{prefix}/event_type=*", f"{bucket}/{prefix}/claims/*"]},
                      {"effect": "allow", "action": ["cos:GetObject"], "resource": [f"{bucket}/{prefix}/claims/*"]}]
    else:
        statements = [{"effect": "allow", "action": ["cos:GetBucket"], "resource": [f"{bucket}/*"],
                       "condition": {"string_like": {"cos:prefix": [f"{prefix}/", f"{prefix}/event_type=*"]}}},
                      {"effect": "allow", "action": ["cos:GetObject", "cos:PutObject", "cos:DeleteObject"],
                       "resource": [f"{bucket}/{prefix}/event_type=*"]}]
    return {"version": "2.0", "statement": statements}


def environment(config: ScfDeployConfig, job: str, notify_url: Any = None) -> dict[str, Any]:
    """``job``'s environment variables (the README's table): the config's own ``environment`` first, then what the
    deployment sets (``ARCHIVE_URI``, the NotifyKey and token, ``MPS_NOTIFY_URL`` for submit)."""
    if job == "submit":
        env: dict[str, Any] = {**config.submit.environment, "MPS_NOTIFY_URL": notify_url,
                               "CALLBACK_TOKEN": config.callback_token, "MPS_NOTIFY_KEY": config.notify_key,
                               "ARCHIVE_URI": config.archive_uri}
    elif job == "archive":
        env = {"ARCHIVE_URI": config.archive_uri, "MPS_NOTIFY_KEY": config.notify_key,
               "CALLBACK_TOKEN": config.callback_token, **config.archive.environment}
    elif job == "vod":
        v = config.vod
        assert v is not None
        env = {**v.environment, "ARCHIVE_URI": config.archive_uri, "CALLBACK_TOKEN": config.callback_token,
               "MPS_NOTIFY_URL": notify_url, "MPS_NOTIFY_KEY": config.notify_key}
        if v.sub_app_id is not None:
            env["VOD_SUB_APP_ID"] = str(v.sub_app_id)
        if v.sign_key:
            env["VOD_SIGN_KEY"] = v.sign_key
    else:
        env = {"ARCHIVE_URI": config.archive_uri, "COMPACT_GRACE_MINUTES": str(config.compact.grace_minutes),
               "COMPACT_LOOKBACK_HOURS": str(config.compact.lookback_hours), **config.compact.environment}
    return env


def check_environment(config: ScfDeployConfig) -> None:
    """Load each function's environment with the project's own configuration (SCF's role keys standing in for
    API keys), so a bad value fails here, naming the variable, not in every invocation after the deploy. Raises
    :class:`UsageError`."""
    from mps_triggers.config import load_archive_settings, load_settings, load_vod_settings
    from mps_triggers.exceptions import ConfigError

    role = {"TENCENTCLOUD_SECRETID": "AKIDdeploy", "TENCENTCLOUD_SECRETKEY": "deploy", "TENCENTCLOUD_SESSIONTOKEN": "t"}
    loaders = {"submit": load_settings, "archive": load_archive_settings, "compact": load_archive_settings,
               "vod": load_vod_settings}
    for job in config.jobs:
        loader = loaders[job]
        env = environment(config, job, config.manual_notify_url)
        empty = [k for k, v in env.items() if not v]
        if empty:
            raise UsageError(f"{job}.environment.{empty[0]}", "SCF refuses an empty environment variable; leave it out")
        try:
            loader({**env, **role})
        except ConfigError as exc:
            raise UsageError(f"{job}.environment: {exc.variable}", exc.problem) from None


@dataclass(frozen=True)
class Pending:
    """A value a write of this run returns (``label``: ``Action.Field``); ``value`` once known."""

    label: str
    value: Any = None

    def shown(self) -> str:
        return f"<{self.label}>"


def _resolved(value: Any, show: bool) -> Any:
    if isinstance(value, Pending):
        return value.shown() if show or value.value is None else value.value
    if isinstance(value, dict):
        return {k: _resolved(v, show) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, show) for v in value]
    return value


def _variables(env: dict[str, Any]) -> dict[str, Any]:
    return {"Variables": [{"Key": k, "Value": v} for k, v in env.items()]}


def function_request(config: ScfDeployConfig, job: str, layer_version: Any, notify_url: Any = None
                     ) -> dict[str, Any]:
    """The CreateFunction request of ``job`` (without ``Code``)."""
    settings = getattr(config, job)
    request: dict[str, Any] = {
        "FunctionName": config.function_name(job), "Namespace": config.namespace, "Type": "Event",
        "Description": DESCRIPTIONS[job], "Runtime": RUNTIME, "Handler": "app.main_handler",
        "MemorySize": settings.memory_mb, "Timeout": settings.timeout_s, "Role": config.function_name(job),
        "Layers": [{"LayerName": config.layer_name, "LayerVersion": layer_version}],
        "Environment": _variables(environment(config, job, notify_url))}
    if job == "submit" and config.submit.dead_letter_queue:
        request["DeadLetterConfig"] = {"Type": "CMQ-QUEUE", "Name": config.submit.dead_letter_queue}
    return request


def trigger_requests(config: ScfDeployConfig, job: str) -> list[dict[str, Any]]:
    """The CreateTrigger requests of ``job``: submit's COS trigger, archive's function URL, compact's timer, vod's
    timer (pull) or function URL (push)."""
    base = {"FunctionName": config.function_name(job), "Namespace": config.namespace, "Qualifier": "$DEFAULT",
            "Enable": "OPEN"}
    if job == "submit":
        desc = {"event": "cos:ObjectCreated:*", "filter": {"Prefix": config.submit.prefix,
                                                             "Suffix": config.submit.suffix}}
        return [{**base, "Type": "cos", "TriggerName": f"{config.submit.input_bucket}.cos.{config.region}.myqcloud.com",
                 "TriggerDesc": json.dumps(desc, separators=(",", ":"))}]
    if job == "archive" or (job == "vod" and config.vod is not None and config.vod.mode == "push"):
        desc = {"AuthType": "NONE", "NetConfig": {"EnableIntranet": False, "EnableExtranet": True}}
        return [{**base, "Type": "http", "TriggerName": "mps-callbacks" if job == "archive" else "vod-events",
                 "TriggerDesc": json.dumps(desc, separators=(",", ":"))}]
    if job == "vod" and config.vod is not None:
        return [{**base, "Type": "timer", "TriggerName": "vod-poll", "TriggerDesc": config.vod.schedule,
                 "CustomArgument": "vod-poll"}]
    return [{**base, "Type": "timer", "TriggerName": "compact-hourly", "TriggerDesc": config.compact.schedule,
             "CustomArgument": "compact"}]


def tccli_payloads(config: ScfDeployConfig) -> dict[str, dict[str, Any]]:
    """The manual path: ``tccli <service> <Action> --cli-input-json`` files, by file name, from the same config
    (packages uploaded by hand under ``packages.cos_prefix``; layer version 1; MPS_NOTIFY_URL a placeholder)."""
    bucket = config.packages.cos_bucket.rsplit("-", 1)[0]  # SCF names the bucket without its appid
    out: dict[str, dict[str, Any]] = {}
    for job in config.jobs:
        name = config.function_name(job)
        out[f"cam-CreateRole-{job}.json"] = {"RoleName": name, "PolicyDocument": _compact_json(TRUST),
                                             "Description": ROLE_DESCRIPTIONS[job]}
        out[f"cam-CreatePolicy-{job}.json"] = {"PolicyName": name, "Description": ROLE_DESCRIPTIONS[job],
                                               "PolicyDocument": _compact_json(policy_document(config, job))}
        out[f"cam-AttachRolePolicy-{job}.json"] = {"PolicyName": name, "AttachRoleName": name}
        request = function_request(config, job, 1, config.manual_notify_url)
        request["Code"] = {"CosBucketName": bucket, "CosObjectName": f"/{config.packages.cos_prefix}{name}.zip"}
        out[f"scf-CreateFunction-{job}.json"] = request
        [trigger] = trigger_requests(config, job)
        suffix = {"cos": "cos", "http": "url", "timer": "timer"}[trigger["Type"]]
        out[f"scf-CreateTrigger-{job}-{suffix}.json"] = trigger
    out["scf-PublishLayerVersion.json"] = {
        "LayerName": config.layer_name, "CompatibleRuntimes": [RUNTIME],
        "Content": {"CosBucketName": bucket,
                    "CosObjectName": f"/{config.packages.cos_prefix}{config.layer_name}-layer.zip"},
        "Description": "mps triggers core library and dependencies for Python3.10"}
    for job, mb in reserved_concurrency(config).items():
        out[f"scf-PutReservedConcurrencyConfig-{job}.json"] = {
            "FunctionName": config.function_name(job), "Namespace": config.namespace, "ReservedConcurrencyMem": mb}
    return out


def reserved_concurrency(config: ScfDeployConfig) -> dict[str, int]:
    """MB of reserved concurrency by job: submit's setting, and one instance of the vod poller (``mode = "pull"``:
    one poll at a time, as VOD hands each event to one consumer until it is confirmed or 30 s pass)."""
    out = {"submit": config.submit.reserved_concurrency_mb}
    if config.vod is not None and config.vod.mode == "pull":
        out["vod"] = config.vod.memory_mb
    return out


def _compact_json(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


# --- talking to the APIs ---------------------------------------------------------------------------------------

class CloudError(Exception):
    """An API error answer: ``code`` (``ResourceNotFound.Function``…) and ``message``."""

    def __init__(self, service: str, action: str, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(f"{service} {action}: {code}: {message}")


class Cloud:
    """SCF and CAM through the official SDK's ``CommonClient`` (TC3-signed JSON POST). ``endpoint``: one host for
    both services (``127.0.0.1:PORT`` → plain HTTP), else their public endpoints."""

    VERSIONS = {"scf": "2018-04-16", "cam": "2019-01-16"}

    def __init__(self, region: str, endpoint: str | None = None) -> None:
        from tencentcloud.common.common_client import CommonClient
        from tencentcloud.common.credential import DefaultCredentialProvider
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.common.retry import StandardRetryer

        try:
            self.credential = DefaultCredentialProvider().get_credentials()
        except Exception as exc:  # the SDK's own error when no key is found anywhere
            raise UsageError("TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY",
                             f"no Tencent Cloud key found ({exc}); set them, or ~/.tencentcloud/credentials") from None
        self.clients = {}
        for service, version in self.VERSIONS.items():
            host = endpoint or f"{service}.tencentcloudapi.com"
            local = host.startswith(("127.", "localhost"))
            profile = ClientProfile(httpProfile=HttpProfile(endpoint=host, protocol="http" if local else "https",
                                                            reqTimeout=30),
                                    retryer=StandardRetryer(max_attempts=4))  # network errors, RequestLimitExceeded
            self.clients[service] = CommonClient(service, version, self.credential,
                                                 region if service == "scf" else "", profile=profile)

    def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """The ``Response`` of ``action``; raises :class:`CloudError` for an error answer."""
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

        try:
            return self.clients[service].call_json(action, params)["Response"]
        except TencentCloudSDKException as exc:
            raise CloudError(service, action, exc.code or "ClientError", exc.message or str(exc)) from None


@dataclass
class Change:
    """One resource's outcome: ``created``, ``updated`` (``detail`` says what), ``unchanged``; ``would be created``
    and ``would be updated`` in a dry run."""

    resource: str
    outcome: str
    detail: str = ""


@dataclass
class Write:
    """One write: what was (or would be) sent, with values of this run's earlier writes as ``<Action.Field>``."""

    service: str
    action: str
    shown: dict[str, Any]


@dataclass(frozen=True)
class Package:
    """One zip of ``package-scf``: its ``path``, bytes and sha256 (hex), read once per run."""

    path: Path
    data: bytes
    sha256: str

    @classmethod
    def read(cls, path: Path) -> "Package":
        """Raises :class:`UsageError` when the zip is not there."""
        if not path.is_file():
            raise UsageError("--packages", f"{path}: missing; build it with `python3 tasks.py package-scf --layer`")
        data = path.read_bytes()
        return cls(path, data, hashlib.sha256(data).hexdigest())


@dataclass
class Deployment:
    """One run of ``deploy scf``: the config, the packages, the cloud; :meth:`run` does it."""

    config: ScfDeployConfig
    packages: Path
    cloud: Any
    cos: Any
    dry_run: bool = False
    changes: list[Change] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    urls: dict[str, Any] = field(default_factory=dict)  # function URL by job (archive; vod in push mode)
    created: set[str] = field(default_factory=set)  # functions this run creates: nothing of theirs to read yet
    zips: dict[str, Package] = field(default_factory=dict)  # by file name, read by run() before the first call

    # --- plumbing ---

    def read(self, service: str, action: str, params: dict[str, Any], missing: tuple[str, ...] = ()
             ) -> dict[str, Any] | None:
        """A read; None when the answer's code starts with one of ``missing`` (the resource does not exist)."""
        try:
            return self.cloud.call(service, action, params)
        except CloudError as exc:
            if exc.code.startswith(missing) and missing:
                return None
            raise

    def write(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Record a write and, unless dry-run, send it (None in a dry run)."""
        self.writes.append(Write(service, action, _masked(_resolved(params, show=True))))
        if self.dry_run:
            return None
        return self.cloud.call(service, action, _resolved(params, show=False))

    def changed(self, resource: str, outcome: str, detail: str = "") -> None:
        if self.dry_run and outcome in ("created", "updated"):
            outcome = f"would be {outcome}"
        self.changes.append(Change(resource, outcome, detail))

    # --- the run ---

    @property
    def function_url(self) -> Any:
        """The archive function's URL (MPS_NOTIFY_URL), once known."""
        return self.urls.get("archive")

    def run(self) -> "Deployment":
        check_environment(self.config)
        jobs = self.config.jobs
        names = [f"{self.config.function_name(job)}.zip" for job in jobs]
        for name in [f"{self.config.layer_name}-layer.zip", *names]:  # before the first call: no half deployment
            self.zips[name] = Package.read(self.packages / name)
        for job in jobs:
            self.role_and_policy(job)
        layer = self.layer()
        for job in ("archive", "compact", "submit", "vod"):
            if job not in jobs:
                continue
            self.function(job, layer)
            for trigger in trigger_requests(self.config, job):
                self.trigger(job, trigger)
        self.extras()
        return self

    def role_and_policy(self, job: str) -> None:
        name = self.config.function_name(job)
        role = self.read("cam", "GetRole", {"RoleName": name}, ("InvalidParameter.RoleNotExist", "ResourceNotFound"))
        if role is None:
            self.write("cam", "CreateRole", {"RoleName": name, "PolicyDocument": _compact_json(TRUST),
                                             "Description": ROLE_DESCRIPTIONS[job]})
            self.changed(f"cam role {name}", "created")
        elif _json(role["RoleInfo"]["PolicyDocument"]) != TRUST:
            self.write("cam", "UpdateAssumeRolePolicy", {"RoleName": name, "PolicyDocument": _compact_json(TRUST)})
            self.changed(f"cam role {name}", "updated", "trust policy")
        else:
            self.changed(f"cam role {name}", "unchanged")
        document = policy_document(self.config, job)
        listed = self.read("cam", "ListPolicies", {"Keyword": name, "Scope": "Local", "Rp": 200, "Page": 1})
        found = [p for p in (listed or {}).get("List", []) if p["PolicyName"] == name]
        policy_id: Any
        if not found:
            created = self.write("cam", "CreatePolicy", {"PolicyName": name, "PolicyDocument": _compact_json(document),
                                                         "Description": ROLE_DESCRIPTIONS[job]})
            policy_id = Pending("CreatePolicy.PolicyId", created and created["PolicyId"])
            self.changed(f"cam policy {name}", "created")
        else:
            policy_id = found[0]["PolicyId"]
            current = self.read("cam", "GetPolicy", {"PolicyId": policy_id})
            if _json((current or {}).get("PolicyDocument", "")) != document:
                self.write("cam", "CreatePolicyVersion", {"PolicyId": policy_id, "SetAsDefault": True,
                                                          "PolicyDocument": _compact_json(document)})
                self.changed(f"cam policy {name}", "updated", "a new default version")
            else:
                self.changed(f"cam policy {name}", "unchanged")
        attached = set()
        if role is not None:
            rows = self.read("cam", "ListAttachedRolePolicies", {"RoleName": name, "Page": 1, "Rp": 200})
            attached = {p["PolicyId"] for p in (rows or {}).get("List", [])}
        if isinstance(policy_id, Pending) or policy_id not in attached:
            self.write("cam", "AttachRolePolicy", {"PolicyId": policy_id, "AttachRoleName": name})
            self.changed(f"cam attachment {name}", "created")
        else:
            self.changed(f"cam attachment {name}", "unchanged")

    def upload(self, package: Package) -> str:
        """``package`` in the packages bucket under a content-addressed key (uploaded when missing): its
        ``CosObjectName``."""
        key = f"{self.config.packages.cos_prefix}{package.path.stem}-{package.sha256[:16]}.zip"
        if self.cos.head(key) is None:
            self.writes.append(Write("cos", "PutObject", {"Bucket": self.config.packages.cos_bucket, "Key": key,
                                                           "ContentLength": len(package.data),
                                                           "sha256": package.sha256}))
            if not self.dry_run:
                self.cos.put(key, package.data, content_type="application/zip")
        return "/" + key

    def _code(self, key: str) -> dict[str, Any]:
        return {"CosBucketName": self.config.packages.cos_bucket.rsplit("-", 1)[0], "CosObjectName": key,
                "CosBucketRegion": self.config.region}

    def layer(self) -> Any:
        name = self.config.layer_name
        package = self.zips[f"{name}-layer.zip"]
        sha = package.sha256
        listed = self.read("scf", "ListLayerVersions", {"LayerName": name}, ("ResourceNotFound",))
        for version in (listed or {}).get("LayerVersions", []):
            if f"sha256:{sha}" in version.get("Description", ""):
                self.changed(f"scf layer {name}", "unchanged", f"version {version['LayerVersion']}")
                return version["LayerVersion"]
        key = self.upload(package)
        published = self.write("scf", "PublishLayerVersion", {
            "LayerName": name, "CompatibleRuntimes": [RUNTIME], "Content": self._code(key),
            "Description": f"mps-triggers core for {RUNTIME}, sha256:{sha}"})
        self.changed(f"scf layer {name}", "created", "a new version")
        return Pending("PublishLayerVersion.LayerVersion", published and published["LayerVersion"])

    def function(self, job: str, layer: Any) -> None:
        name = self.config.function_name(job)
        package = self.zips[f"{name}.zip"]
        wanted = function_request(self.config, job, layer, self.function_url if job in ("submit", "vod") else None)
        current = self.read("scf", "GetFunction", {"FunctionName": name, "Namespace": self.config.namespace},
                            ("ResourceNotFound",))
        if current is None:
            key = self.upload(package)
            self.write("scf", "CreateFunction", {**wanted, "Code": self._code(key)})
            self.created.add(name)
            self.changed(f"scf function {name}", "created")
            self.wait_active(name)
            return
        differs = _config_diff(wanted, current)
        if differs:
            update = {"FunctionName": name, "Namespace": self.config.namespace,
                      **{k: wanted.get(k, {"Type": "", "Name": ""}) for k in differs}}
            self.write("scf", "UpdateFunctionConfiguration", update)
            self.wait_active(name)
        address = self.read("scf", "GetFunctionAddress", {"FunctionName": name, "Namespace": self.config.namespace})
        code = (address or {}).get("CodeSha256") != package.sha256
        if code:
            key = self.upload(package)
            self.write("scf", "UpdateFunctionCode", {"FunctionName": name, "Namespace": self.config.namespace,
                                                     "Handler": "app.main_handler", **self._code(key)})
            self.wait_active(name)
        what = ", ".join(differs + (["code"] if code else []))
        self.changed(f"scf function {name}", "updated" if what else "unchanged", what)

    def ensure(self, name: str, what: str, detail: str, get: str, field: str, wanted: Any, put: str,
               params: dict[str, Any]) -> None:
        """One setting of function ``name``: ``put`` with ``params`` when the function is new (its settings are
        written, whatever the platform's defaults are) or ``get``'s ``field`` differs from ``wanted``."""
        namespace = self.config.namespace
        new = name in self.created
        current = None if new else self.read("scf", get, {"FunctionName": name, "Namespace": namespace})
        if new or (current or {}).get(field) != wanted:
            self.write("scf", put, {"FunctionName": name, "Namespace": namespace, **params})
            self.changed(f"scf {what} {name}", "updated", detail)
        else:
            self.changed(f"scf {what} {name}", "unchanged", detail)

    def wait_active(self, name: str) -> None:
        """Wait until the function is ``Active`` (SCF refuses the next change while it is ``Creating`` or
        ``Updating``). Raises :class:`CloudError` for a failed state or after :data:`ACTIVE_WAIT` seconds."""
        if self.dry_run:
            return
        deadline = time.monotonic() + ACTIVE_WAIT
        while True:
            got = self.cloud.call("scf", "GetFunction", {"FunctionName": name, "Namespace": self.config.namespace})
            if got.get("Status") == "Active":
                return
            if "Failed" in str(got.get("Status")) or time.monotonic() > deadline:
                raise CloudError("scf", "GetFunction", "FunctionNotActive",
                                 f"{name} is {got.get('Status')}: {got.get('StatusDesc') or 'no reason given'}")
            time.sleep(2.0)

    def trigger(self, job: str, wanted: dict[str, Any]) -> None:
        name = self.config.function_name(job)
        label = f"scf trigger {name}/{wanted['TriggerName']}"
        listed = None
        if name not in self.created:
            listed = self.read("scf", "ListTriggers", {"FunctionName": name, "Namespace": self.config.namespace,
                                                       "Limit": 100})
        existing = next((t for t in (listed or {}).get("Triggers", []) if t["TriggerName"] == wanted["TriggerName"]),
                        None)
        if existing is not None and _same_trigger(wanted, existing):
            self.changed(label, "unchanged")
            if wanted["Type"] == "http":
                self.urls[job] = _extranet_url(existing["TriggerDesc"])
            return
        if existing is not None:  # changed: SCF updates few trigger settings in place, so delete and create
            self.write("scf", "DeleteTrigger", {"FunctionName": name, "Namespace": self.config.namespace,
                                                "TriggerName": wanted["TriggerName"], "Type": wanted["Type"]})
        answer = self.write("scf", "CreateTrigger", wanted)
        self.changed(label, "updated" if existing is not None else "created", wanted["Type"])
        if wanted["Type"] == "http":
            url = _extranet_url(answer["TriggerInfo"]["TriggerDesc"]) if answer else None
            if answer and not url:
                raise CloudError("scf", "CreateTrigger", "NoFunctionUrl", "the answer holds no ExtranetUrl")
            self.urls[job] = Pending("CreateTrigger.ExtranetUrl", url)

    def extras(self) -> None:
        """Reserved concurrency (submit; the vod poller) and the submit function's async retries and message age."""
        for job, mb in reserved_concurrency(self.config).items():
            self.ensure(self.config.function_name(job), "reserved concurrency", f"{mb} MB",
                        "GetReservedConcurrencyConfig", "ReservedMem", mb, "PutReservedConcurrencyConfig",
                        {"ReservedConcurrencyMem": mb})
        s = self.config.submit
        wanted = {"RetryConfig": [{"RetryNum": s.retries}], "MsgTTL": s.message_ttl_s}
        self.ensure(self.config.function_name("submit"), "async config", f"{s.retries} retries, {s.message_ttl_s} s",
                    "GetFunctionEventInvokeConfig", "AsyncTriggerConfig", wanted, "UpdateFunctionEventInvokeConfig",
                    {"AsyncTriggerConfig": wanted})


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _masked(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the values of secret environment variables shown as ``***``."""
    env = params.get("Environment")
    if not env:
        return params
    variables = [{"Key": v["Key"], "Value": "***" if v["Key"] in SECRET_VARIABLES else v["Value"]}
                 for v in env["Variables"]]
    return {**params, "Environment": {"Variables": variables}}


def _config_diff(wanted: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The configuration members of ``wanted`` (a CreateFunction request) that ``current`` (GetFunction) lacks."""
    out = []
    for key in ("Description", "MemorySize", "Timeout", "Runtime", "Role"):
        if wanted[key] != current.get(key):
            out.append(key)
    have = {v["Key"]: v["Value"] for v in (current.get("Environment") or {}).get("Variables") or []}
    if have != {v["Key"]: v["Value"] for v in _resolved(wanted["Environment"], show=False)["Variables"]}:
        out.append("Environment")
    layers = [(x.get("LayerName"), x.get("LayerVersion")) for x in current.get("Layers") or []]
    if layers != [(x["LayerName"], x["LayerVersion"]) for x in _resolved(wanted["Layers"], show=False)]:
        out.append("Layers")
    dead = current.get("DeadLetterConfig") or {}
    want_dead = wanted.get("DeadLetterConfig") or {"Type": "", "Name": ""}
    if (dead.get("Type") or "", dead.get("Name") or "") != (want_dead["Type"], want_dead["Name"]):
        out.append("DeadLetterConfig")
    return out


def _same_trigger(wanted: dict[str, Any], existing: dict[str, Any]) -> bool:
    if wanted["Type"] != existing.get("Type"):
        return False
    if wanted["Type"] == "timer":
        return _json(existing.get("TriggerDesc")) in ({"cron": wanted["TriggerDesc"]},) or \
            existing.get("TriggerDesc") == wanted["TriggerDesc"]
    have, want = _json(existing.get("TriggerDesc")) or {}, _json(wanted["TriggerDesc"])
    if wanted["Type"] == "http":  # the API adds the addresses to NetConfig
        return have.get("AuthType") == want["AuthType"] and all(
            (have.get("NetConfig") or {}).get(k) == v for k, v in want["NetConfig"].items())
    return have == want


def _extranet_url(desc: str) -> str | None:
    url = ((_json(desc) or {}).get("NetConfig") or {}).get("ExtranetUrl")
    return url or None


# --- the command -----------------------------------------------------------------------------------------------

def run(args: Any) -> int:
    """``mps-triggers deploy scf``: exit 0 deployed (or planned), 1 an API call failed, 2 a config error."""
    config = load_config(args.config)
    if args.write_tccli:
        out = Path(args.write_tccli)
        out.mkdir(parents=True, exist_ok=True)
        for name, payload in tccli_payloads(config).items():
            (out / name).write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        note(f"wrote {len(tccli_payloads(config))} tccli payloads to {out}")
        return 0
    from mps_triggers.storage import CosStore

    cloud = Cloud(config.region, args.endpoint)
    cred = cloud.credential
    cos = CosStore(config.packages.cos_bucket, config.region, cred.secret_id, cred.secret_key,
                   getattr(cred, "token", None) or None, os.environ.get("COS_ENDPOINT_URL"))
    deployment = Deployment(config, Path(args.packages or config.packages.dir), cloud, cos, args.dry_run)
    try:
        deployment.run()
    except CloudError as exc:
        _print(deployment, args.fmt, failed=str(exc))
        return 1
    _print(deployment, args.fmt)
    return 0


def _print(d: Deployment, fmt: str, failed: str | None = None) -> None:
    url = _resolved(d.function_url, show=False)  # a URL this run's write did not return yet: <Action.Field>
    step = MPS_TRIGGER_STEP.format(archive=d.config.function_name("archive"))
    if fmt == "json":
        doc = {"dry_run": d.dry_run, "changes": [c.__dict__ for c in d.changes],
               "writes": [w.__dict__ for w in d.writes], "function_url": url, "console_steps": [step]}
        if "vod" in d.urls:
            doc["vod_function_url"] = _resolved(d.urls["vod"], show=False)
        if failed:
            doc["error"] = failed
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    if d.dry_run:
        print(f"plan: {len(d.writes)} writes (not sent)")
        for w in d.writes:
            print(f"  {w.service} {w.action} {json.dumps(w.shown, ensure_ascii=False)}")
        print()
    width = max((len(c.resource) for c in d.changes), default=10)
    for c in d.changes:
        print(f"{c.resource:<{width}}  {c.outcome:<18} {c.detail}".rstrip())
    print(f"\nfunction URL (MPS_NOTIFY_URL of the submit function): {url}")
    if "vod" in d.urls:
        print(f"vod function URL (the VOD application's NotificationUrl, with ?token= and sub_app_id=): "
              f"{_resolved(d.urls['vod'], show=False)}")
    print(f"still by hand: {step}")
    if failed:
        note(f"mps-triggers deploy scf: failed: {failed}")

