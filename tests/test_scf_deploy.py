"""SCF deployment configuration (deploy/scf/), checked offline against the official API models.

- ``deploy/scf/tccli/<service>-<Action>-*.json`` are the request payloads of ``tccli <service> <Action>
  --cli-input-json``: each must conform to the action's request model from tccli's api.json (required fields, types,
  no unknown field; ``tests/data/tccli_models.json``) and to the allowed values and ranges the same model documents
  (runtimes, memory steps, timeout, trigger types, name rules), which are read from its text, not copied here.
- Trigger descriptions follow the documented TriggerDesc shapes (583/39901: COS event + filter; function URL
  AuthType + NetConfig); COS events are those of the COS trigger (583/9707).
- The functions' environment loads with the project's own configuration, SCF's role keys standing in for API keys,
  within SCF's 4 KB per-function limit (quota 583/11637), no value empty (the model: "不可为空字符").
- ``deploy/scf/*/serverless.yml`` (Serverless Framework components scf and layer), resolved with ``.env.example``
  and mapped to CreateFunction / CreateTrigger / PublishLayerVersion as the components do, gives the same requests.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from mps_triggers.config import load_archive_settings, load_settings
from mps_triggers.routing import notify_url
from mpslocal import scf_package, tccli_models

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "scf"
PAYLOADS = sorted((DEPLOY / "tccli").glob("*.json"))
MODELS = tccli_models.load()
COS_EVENTS = {f"cos:ObjectCreated:{e}" for e in ("*", "Put", "Post", "Copy", "CompleteMultipartUpload", "Origin",
                                                 "Replication")} | {
    "cos:ObjectRemove:*", "cos:ObjectRemove:Delete", "cos:ObjectRemove:DeleteMarkerCreated",
    "cos:ObjectRestore:Post", "cos:ObjectRestore:Completed"}
ROLE_KEYS = {"TENCENTCLOUD_SECRETID": "AKIDroleTEMPORARYkey0001", "TENCENTCLOUD_SECRETKEY": "role-temporary-secret",
             "TENCENTCLOUD_SESSIONTOKEN": "role-session-token"}


def payload(name: str) -> dict[str, Any]:
    return json.loads((DEPLOY / "tccli" / name).read_text(encoding="utf-8"))


def action_of(path: Path) -> tuple[str, str]:
    service, action, *_ = path.stem.split("-")
    return service, action


def doc(service: str, obj: str, field: str) -> str:
    return tccli_models.member(MODELS, service, obj, field)["document"]


def env_of(request: dict[str, Any]) -> dict[str, str]:
    return {v["Key"]: v["Value"] for v in request["Environment"]["Variables"]}


# --- the models' own documented rules, read from their text ------------------------------------------------------

def documented_runtimes() -> set[str]:
    return set(re.findall(r"- (\w+[\d.]*)", doc("scf", "CreateFunctionRequest", "Runtime")))


def documented_memory_sizes() -> set[int]:
    m = re.search(r"(\d+)、(\d+)MB-(\d+)MB，并且以 (\d+)MB 为阶梯", doc("scf", "CreateFunctionRequest", "MemorySize"))
    assert m, "the MemorySize rule is no longer stated as expected"
    single, low, high, step = map(int, m.groups())
    return {single, *range(low, high + 1, step)}


def documented_timeout_range() -> range:
    low, high = map(int, re.search(r"(\d+)-(\d+) 秒", doc("scf", "CreateFunctionRequest", "Timeout")).groups())
    return range(low, high + 1)


def documented_trigger_types() -> set[str]:
    return set(re.findall(r"[a-z]+", re.search(r"目前支持(.*?)类型", doc("scf", "CreateTriggerRequest", "Type")).group(1)))


def test_the_models_are_the_official_extract():
    assert MODELS["source"]["package"].startswith("tccli-") and len(MODELS["source"]["sha256"]) == 64
    assert MODELS["scf"]["version"] == "2018-04-16" and MODELS["cam"]["version"] == "2019-01-16"
    assert "Python3.10" in documented_runtimes() and "Python3.11" not in documented_runtimes()
    assert documented_trigger_types() == {"cos", "cls", "timer", "ckafka", "http"}
    assert {64, 128, 256, 512, 3072} <= documented_memory_sizes() and 200 not in documented_memory_sizes()


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: p.name)
def test_every_payload_conforms_to_its_action_model(path):
    service, action = action_of(path)
    assert tccli_models.validate(MODELS, service, action, json.loads(path.read_text(encoding="utf-8"))) == []


def test_the_validator_finds_what_tccli_would_send_wrong():
    bad = {**payload("scf-CreateFunction-submit.json"), "Runtime": 3.10, "Memory": 256}
    del bad["FunctionName"]
    bad["Environment"]["Variables"][0]["Value"] = 20001
    bad["Layers"][0]["LayerVersion"] = "1"
    assert sorted(tccli_models.validate(MODELS, "scf", "CreateFunction", bad)) == [
        "Environment.Variables[0].Value: expected a string, got 20001",
        "FunctionName: required by CreateFunctionRequest, missing",
        "Layers[0].LayerVersion: expected an integer (int64), got '1'",
        "Memory: not a field of CreateFunctionRequest",
        "Runtime: expected a string, got 3.1",
    ]


def test_the_payloads_cover_the_whole_deployment():
    assert {action_of(p) for p in PAYLOADS} == {
        ("cam", "CreateRole"), ("cam", "CreatePolicy"), ("cam", "AttachRolePolicy"), ("scf", "PublishLayerVersion"),
        ("scf", "CreateFunction"), ("scf", "CreateTrigger"), ("scf", "PutReservedConcurrencyConfig")}


@pytest.mark.parametrize("name", ["scf-CreateFunction-submit.json", "scf-CreateFunction-archive.json",
                                  "scf-CreateFunction-vod.json"])
def test_functions_use_documented_values(name):
    request = payload(name)
    assert request["Runtime"] == scf_package.SCF_RUNTIME and request["Runtime"] in documented_runtimes()
    assert request["MemorySize"] in documented_memory_sizes()
    assert request["Timeout"] in documented_timeout_range()
    assert request["Type"] == "Event" and request["Handler"] == "app.main_handler"
    # "名称长度2-60 … 第一个字符只能以字母开头，最后一个字符不能为连接符或者下划线"
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]", request["FunctionName"])
    # "最大支持 1000 个英文字母、数字、空格、逗号、换行符和英文句号"
    assert re.fullmatch(r"[A-Za-z0-9 ,.\n]{1,1000}", request["Description"])
    # Code: "CosBucketName … 不包含-appid", "CosObjectName … 以/开头"; the zip package-scf writes for this function
    assert not re.search(r"-\d+$", request["Code"]["CosBucketName"])
    assert request["Code"]["CosObjectName"].startswith("/")
    assert request["Code"]["CosObjectName"].endswith(f"/mps-triggers-{Path(name).stem.split('-')[-1]}.zip")
    layer = payload("scf-PublishLayerVersion.json")
    assert request["Layers"] == [{"LayerName": layer["LayerName"], "LayerVersion": 1}]
    assert set(layer["CompatibleRuntimes"]) <= documented_runtimes()
    assert layer["Content"]["CosObjectName"].endswith("/mps-triggers-core-layer.zip")


@pytest.mark.parametrize("name", ["scf-CreateFunction-submit.json", "scf-CreateFunction-archive.json",
                                  "scf-CreateFunction-vod.json"])
def test_environment_fits_scf_and_holds_no_api_key(name):
    variables = payload(name)["Environment"]["Variables"]
    assert all(v["Key"] and v["Value"] for v in variables)
    assert sum(len(v["Key"]) + len(v["Value"]) for v in variables) <= 4096
    assert not {v["Key"] for v in variables} & {"MPS_SECRET_ID", "MPS_SECRET_KEY", "TENCENTCLOUD_SECRETID",
                                                  "TENCENTCLOUD_SECRETKEY"}


def test_submit_environment_loads_and_signs_with_the_role_keys_scf_injects():
    env = env_of(payload("scf-CreateFunction-submit.json"))
    settings = load_settings({**env, **ROLE_KEYS})
    assert settings.mps_secret_id.get_secret_value() == ROLE_KEYS["TENCENTCLOUD_SECRETID"]
    assert settings.mps_session_token.get_secret_value() == ROLE_KEYS["TENCENTCLOUD_SESSIONTOKEN"]
    assert settings.mps_notify_url.startswith("https://") and settings.mps_notify_key
    archive = env_of(payload("scf-CreateFunction-archive.json"))
    # the URL callbacks carry the token the archive function wants (added by the job), signed with the key it checks
    assert "token" not in parse_qs(urlsplit(env["MPS_NOTIFY_URL"]).query)
    assert parse_qs(urlsplit(notify_url(settings)).query)["token"] == [archive["CALLBACK_TOKEN"]]
    assert env["MPS_NOTIFY_KEY"] == archive["MPS_NOTIFY_KEY"] and env["ARCHIVE_URI"] == archive["ARCHIVE_URI"]
    # the COS trigger's prefix is never inside the output dir (the load-time loop guard agrees)
    prefix = json.loads(payload("scf-CreateTrigger-submit-cos.json")["TriggerDesc"])["filter"]["Prefix"]
    assert not ("/" + prefix).startswith(env["MPS_OUTPUT_DIR"])


def test_archive_environment_loads_and_writes_cos_with_the_role_keys():
    settings = load_archive_settings({**env_of(payload("scf-CreateFunction-archive.json")), **ROLE_KEYS})
    assert settings.location.storage == "cos" and settings.region == "ap-guangzhou"
    assert settings.callback_token and settings.mps_notify_key


class CosFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Prefix: str = ""
    Suffix: str = ""


class CosTriggerDesc(BaseModel):
    """583/39901 COS trigger: ``event`` (a COS event type) and ``filter`` (CosFilter)."""
    model_config = ConfigDict(extra="forbid")
    event: str
    filter: CosFilter


class NetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    EnableIntranet: bool
    EnableExtranet: bool


class FunctionUrlTriggerDesc(BaseModel):
    """Function URL (CreateTrigger Type http, 583/100227): ``AuthType`` NONE or CAM, ``NetConfig``."""
    model_config = ConfigDict(extra="forbid")
    AuthType: Literal["NONE", "CAM"]
    NetConfig: NetConfig


def test_cos_trigger_watches_the_input_bucket_for_every_created_object():
    trigger = payload("scf-CreateTrigger-submit-cos.json")
    assert trigger["Type"] in documented_trigger_types() and trigger["Enable"] in re.findall(
        r"[A-Z]{4,}", doc("scf", "CreateTriggerRequest", "Enable"))
    desc = CosTriggerDesc.model_validate_json(trigger["TriggerDesc"])
    assert desc.event in COS_EVENTS and desc.event == "cos:ObjectCreated:*"  # Put, Post, Copy, multipart, …
    # "如果是cos触发器，需要是对应cos存储桶适用于XML API的访问域名"
    assert re.fullmatch(r"[a-z0-9-]+-\d+\.cos\.[a-z-]+\.myqcloud\.com", trigger["TriggerName"])
    assert trigger["FunctionName"] == payload("scf-CreateFunction-submit.json")["FunctionName"]
    assert trigger["Qualifier"] == "$DEFAULT"


def test_callbacks_reach_the_archive_through_a_public_function_url():
    trigger = payload("scf-CreateTrigger-archive-url.json")
    assert trigger["Type"] == "http" and trigger["Type"] in documented_trigger_types()
    desc = FunctionUrlTriggerDesc.model_validate_json(trigger["TriggerDesc"])
    # MPS calls from the internet; the callback's Sign and the token are the authentication (as on Lambda)
    assert desc.AuthType == "NONE" and desc.NetConfig.EnableExtranet
    assert trigger["FunctionName"] == payload("scf-CreateFunction-archive.json")["FunctionName"]


def test_submit_concurrency_is_reserved_so_a_backfill_queues_instead_of_flooding_mps():
    """Unlimited, a 10,000-file backfill starts hundreds of instances against MPS's 100 requests/s; with 8 the
    COS trigger's async queue holds the rest (platform retries on throttling) — as MaximumConcurrency 8 on AWS."""
    reserved = payload("scf-PutReservedConcurrencyConfig-submit.json")
    memory = payload("scf-CreateFunction-submit.json")["MemorySize"]
    assert reserved["ReservedConcurrencyMem"] == 8 * memory


def test_roles_trust_scf_and_grant_only_what_each_function_does():
    for fn in ("submit", "archive"):
        role, policy = payload(f"cam-CreateRole-{fn}.json"), payload(f"cam-CreatePolicy-{fn}.json")
        attach = payload(f"cam-AttachRolePolicy-{fn}.json")
        assert role["RoleName"] == payload(f"scf-CreateFunction-{fn}.json")["Role"] == attach["AttachRoleName"]
        assert attach["PolicyName"] == policy["PolicyName"]
        trust = json.loads(role["PolicyDocument"])
        assert trust["statement"] == [{"action": "name/sts:AssumeRole", "effect": "allow",
                                       "principal": {"service": ["scf.qcloud.com"]}}]
        [statement] = json.loads(policy["PolicyDocument"])["statement"]
        assert statement["effect"] == "allow" and not any("*" in a for a in statement["action"])
    [submit] = json.loads(payload("cam-CreatePolicy-submit.json")["PolicyDocument"])["statement"]
    assert submit["action"] == ["mps:ProcessMedia"]
    [archive] = json.loads(payload("cam-CreatePolicy-archive.json")["PolicyDocument"])["statement"]
    location = load_archive_settings({**env_of(payload("scf-CreateFunction-archive.json")), **ROLE_KEYS}).location
    appid = location.bucket.rsplit("-", 1)[1]
    assert archive["action"] == ["cos:PutObject"]
    assert archive["resource"] == [f"qcs::cos:ap-guangzhou:uid/{appid}:{location.bucket}/{location.prefix.strip('/')}/*"]


# --- serverless.yml ------------------------------------------------------------------------------------------------

def dotenv() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (DEPLOY / ".env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def instance(name: str) -> dict[str, Any]:
    """A serverless.yml with ``${env:X}`` from .env.example, ``${name}``/``${stage}``/``${app}`` and the layer's
    ``${output:…version}`` (1, its first version) resolved as the Framework does."""
    raw = yaml.safe_load((DEPLOY / name / "serverless.yml").read_text(encoding="utf-8"))
    env = dotenv()
    scope = {"name": raw["name"], "app": raw["app"], "stage": env["STAGE"]}

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if not isinstance(value, str):
            return value
        value = re.sub(r"\$\{env:(\w+)\}", lambda m: env[m.group(1)], value)
        value = re.sub(r"\$\{(name|app|stage)\}", lambda m: scope[m.group(1)], value)
        if re.fullmatch(r"\$\{output:[^:]+:[^:]+:mps-triggers-layer\.version\}", value):
            return 1
        assert "${" not in value, f"unresolved variable in {name}/serverless.yml: {value}"
        return value

    return resolve(raw)


def component_requests(inst: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """CreateFunction and CreateTrigger requests as the scf component builds them (tencent-component-toolkit:
    modules/scf and modules/triggers/{cos,http}.ts); MPS triggers are bound through MPS, not CreateTrigger."""
    i = inst["inputs"]
    function = {"FunctionName": i["name"], "Namespace": i["namespace"], "Type": "Event", "Description": i["description"],
                "Runtime": i["runtime"], "Handler": i["handler"], "MemorySize": i["memorySize"], "Timeout": i["timeout"],
                "Role": i["role"], "Layers": [{"LayerName": x["name"], "LayerVersion": x["version"]} for x in i["layers"]],
                "Environment": {"Variables": [{"Key": k, "Value": str(v)} for k, v in i["environment"]["variables"].items()]}}
    triggers = []
    for event in i["events"]:
        (kind, spec), = event.items()
        p = spec["parameters"]
        if kind == "cos":
            triggers.append({"FunctionName": i["name"], "Namespace": i["namespace"], "Type": "cos",
                             "TriggerName": p["bucket"], "Qualifier": p["qualifier"],
                             "TriggerDesc": json.dumps({"event": p["events"], "filter": {
                                 "Prefix": p["filter"]["prefix"], "Suffix": p["filter"]["suffix"]}}, separators=(",", ":")),
                             "Enable": "OPEN" if p["enable"] else "CLOSE"})
        elif kind == "timer":
            triggers.append({"FunctionName": i["name"], "Namespace": i["namespace"], "Type": "timer",
                             "TriggerName": p["name"], "TriggerDesc": p["cronExpression"],
                             "CustomArgument": p["argument"], "Qualifier": p["qualifier"],
                             "Enable": "OPEN" if p["enable"] else "CLOSE"})
        elif kind == "http":
            triggers.append({"FunctionName": i["name"], "Namespace": i["namespace"], "Type": "http",
                             "TriggerName": p["name"], "Qualifier": p["qualifier"], "Enable": "OPEN",
                             "TriggerDesc": json.dumps({"AuthType": p["authType"], "NetConfig": {
                                 "EnableIntranet": p["netConfig"]["enableIntranet"],
                                 "EnableExtranet": p["netConfig"]["enableExtranet"]}}, separators=(",", ":"))})
    return function, triggers


@pytest.mark.parametrize("fn, trigger_file", [("submit", "scf-CreateTrigger-submit-cos.json"),
                                              ("archive", "scf-CreateTrigger-archive-url.json"),
                                              ("compact", "scf-CreateTrigger-compact-timer.json"),
                                              ("vod", "scf-CreateTrigger-vod-timer.json")])
def test_serverless_yml_deploys_the_same_function_and_triggers_as_the_tccli_payloads(fn, trigger_file):
    inst = instance(fn)
    assert inst["component"] == "scf" and inst["inputs"]["src"] == f"../../../build/scf/{fn}"
    assert (DEPLOY / fn / inst["inputs"]["src"]).resolve() == ROOT / "build" / "scf" / fn  # where package-scf writes
    assert fn in scf_package.FUNCTIONS
    function, triggers = component_requests(inst)
    assert tccli_models.validate(MODELS, "scf", "CreateFunction", {**function, "Code": {"ZipFile": ""}}) == []
    expected = {k: v for k, v in payload(f"scf-CreateFunction-{fn}.json").items() if k != "Code"}
    assert function == expected
    [trigger] = triggers
    assert tccli_models.validate(MODELS, "scf", "CreateTrigger", trigger) == []
    assert trigger == payload(trigger_file)


def test_serverless_archive_binds_the_mps_trigger_for_both_documented_event_types():
    """583/39163: the MPS trigger pushes WorkflowTask and EditMediaTask events; one function per type per account."""
    mps = [e["mps"]["parameters"] for e in instance("archive")["inputs"]["events"] if "mps" in e]
    assert sorted(p["type"] for p in mps) == ["EditMediaTask", "WorkflowTask"]
    assert all(p["enable"] is True and p["qualifier"] == "$DEFAULT" for p in mps)


def test_serverless_layer_is_the_published_layer():
    inst = instance("layer")
    published = payload("scf-PublishLayerVersion.json")
    assert inst["component"] == "layer" and inst["inputs"]["name"] == published["LayerName"]
    assert inst["inputs"]["runtimes"] == published["CompatibleRuntimes"] == [scf_package.SCF_RUNTIME]
    assert (DEPLOY / "layer" / inst["inputs"]["src"]).resolve() == ROOT / "build" / "scf" / "layer"
    assert tccli_models.validate(MODELS, "scf", "PublishLayerVersion", {
        "LayerName": inst["inputs"]["name"], "CompatibleRuntimes": inst["inputs"]["runtimes"],
        "Content": {"ZipFile": ""}, "Description": inst["inputs"]["description"]}) == []


def test_dotenv_example_has_no_empty_value_scf_would_refuse():
    assert all(dotenv().values())


def test_compaction_runs_hourly_with_list_read_write_delete_in_the_archive_partitions_only():
    role, policy = payload("cam-CreateRole-compact.json"), payload("cam-CreatePolicy-compact.json")
    attach = payload("cam-AttachRolePolicy-compact.json")
    function = payload("scf-CreateFunction-compact.json")
    assert role["RoleName"] == function["Role"] == attach["AttachRoleName"] and attach["PolicyName"] == policy["PolicyName"]
    env = env_of(function)
    location = load_archive_settings({**env, **ROLE_KEYS}).location
    assert env["ARCHIVE_URI"] == env_of(payload("scf-CreateFunction-archive.json"))["ARCHIVE_URI"]
    bucket = f"qcs::cos:ap-guangzhou:uid/{location.bucket.rsplit('-', 1)[1]}:{location.bucket}"
    listing, objects = json.loads(policy["PolicyDocument"])["statement"]
    assert listing["action"] == ["cos:GetBucket"] and listing["resource"] == [f"{bucket}/*"]
    assert listing["condition"]["string_like"]["cos:prefix"] == [location.prefix, f"{location.prefix}event_type=*"]
    assert objects["action"] == ["cos:GetObject", "cos:PutObject", "cos:DeleteObject"]
    assert objects["resource"] == [f"{bucket}/{location.prefix}event_type=*"]  # not the claims, nothing else
    timer = payload("scf-CreateTrigger-compact-timer.json")
    assert timer["Type"] == "timer" and timer["TriggerDesc"].split()[1:3] == ["10", "*"]  # minute 10 of every hour
    assert function["Timeout"] == 900 and "compact" in scf_package.FUNCTIONS


def test_vod_poller_runs_every_minute_one_at_a_time_with_only_the_calls_and_writes_it_makes():
    from mps_triggers.config import load_vod_settings

    function, timer = payload("scf-CreateFunction-vod.json"), payload("scf-CreateTrigger-vod-timer.json")
    assert timer["Type"] == "timer" and timer["TriggerDesc"] == "0 */1 * * * * *"
    reserved = payload("scf-PutReservedConcurrencyConfig-vod.json")
    assert reserved["ReservedConcurrencyMem"] == function["MemorySize"]  # one instance
    settings = load_vod_settings({**env_of(function), **ROLE_KEYS})
    assert settings.vod_sub_app_id == 1500000001 and settings.vod_routes[0].procedure == "hls-720p"
    assert function["Timeout"] >= 60  # a poll takes up to 15 s of reserve plus its long polls
    statements = json.loads(payload("cam-CreatePolicy-vod.json")["PolicyDocument"])["statement"]
    actions = {a for st in statements for a in st["action"]}
    assert actions == {"vod:PullEvents", "vod:ConfirmEvents", "vod:ProcessMediaByProcedure", "vod:ProcessMediaByMPS",
                       "mps:ProcessMedia", "cos:PutObject", "cos:GetObject"}
    location = settings.location
    for st in statements:
        if any(a.startswith("cos:") for a in st["action"]):
            assert all(r.split(":", 5)[-1].startswith(f"{location.bucket}/{location.prefix.strip('/')}/")
                       and ("/event_type=" in r or "/claims/" in r) for r in st["resource"])
