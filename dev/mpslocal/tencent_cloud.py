"""A local SCF and CAM API (dev-only): what ``mps-triggers deploy scf`` talks to in the tests, over real HTTP.

One server answers both services at TencentCloud API 3.0's shape (POST ``/``, JSON body, ``X-TC-Action``,
``X-TC-Version``, TC3-HMAC-SHA256 signed; checked by :func:`mpslocal.emulator.verify_tc3`), keeps state, and checks
what it is sent with the official models (tccli's ``api.json`` extract, :mod:`mpslocal.tccli_models`), not with the
project's code:

- every request against the action's request model (unknown fields → ``UnknownParameter``, missing ones →
  ``MissingParameter``, wrong types → ``InvalidParameterValue``), and every answer it gives against the response
  model (a wrong answer is this fake's bug: recorded in :attr:`own_errors` and answered ``InternalError``);
- the state rules the deployment depends on, with the API's own error codes (the official SDKs' ``errorcodes.py``):
  ``ResourceNotFound.Function``, ``ResourceInUse.Function`` (create twice), ``ResourceInUse.TriggerName``,
  ``ResourceNotFound.Trigger``, ``InvalidParameter.RoleNotExist``, ``InvalidParameter.RoleNameInUse``,
  ``FailedOperation.PolicyNameInUse``, ``InvalidParameter.PolicyIdNotExist``; a function's ``Role`` and ``Layers``
  must exist.

State: CAM roles (trust policy), policies (versions, the default one), attachments; SCF layers (versions, with the
sha256 of their content), functions (configuration, code sha256), triggers (a function URL trigger gets
``https://<appid>-<id>.<region>.tencentscf.com`` in its ``TriggerDesc``, as ListTriggers shows it), reserved
concurrency and async invocation settings. :attr:`calls` lists every accepted request (service, action, payload) in
order; ``mutations()`` the ones that changed something.

Example::

    with TencentCloudApi() as api:            # api.url, api.secret_id, api.secret_key
        ...                                  # point the official SDK's HttpProfile at api.host, protocol http
        assert api.state.functions["default/mps-triggers-submit"]["Timeout"] == 60
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from . import tccli_models
from .emulator import ApiError, verify_tc3

READ_ACTIONS = frozenset({"GetFunction", "GetFunctionAddress", "ListTriggers", "ListLayerVersions",
                          "GetReservedConcurrencyConfig", "GetFunctionEventInvokeConfig", "GetRole", "ListPolicies",
                          "GetPolicy", "ListAttachedRolePolicies"})
"""Actions that change nothing."""


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class CloudState:
    """What the fake keeps (keys: role and policy names, ``namespace/function``, layer names)."""

    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[int, dict[str, Any]] = field(default_factory=dict)
    attached: dict[str, set[int]] = field(default_factory=dict)
    layers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)


class TencentCloudApi:
    """The local SCF (2018-04-16) and CAM (2019-01-16) API. ``app_id`` and ``region`` make function URLs;
    ``cos_objects`` (optional) answers whether a COS object named in ``Code``/``Content`` exists: a callable
    ``(bucket, key) -> bytes | None`` (for instance reading moto), else any named object is taken as present."""

    def __init__(self, app_id: str = "1250000000", region: str = "ap-guangzhou", host: str = "127.0.0.1",
                 port: int = 0, cos_objects: Callable[[str, str], bytes | None] | None = None) -> None:
        self.secret_id, self.secret_key = "AKIDlocalDEPLOYER0001", "local-deployer-secret-key"
        self.credentials: dict[str, tuple[str, str | None]] = {self.secret_id: (self.secret_key, None)}
        self.app_id, self.region, self.cos_objects = app_id, region, cos_objects
        self.models = tccli_models.load()
        self.state = CloudState()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.own_errors: list[str] = []  # answers of this fake that did not match the response models
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="tencent-cloud-api", daemon=True)

    # --- lifecycle -----------------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the SDK's ``HttpProfile(endpoint=…)``."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> "TencentCloudApi":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "TencentCloudApi":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def mutations(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The accepted calls that may change state (every action not in :data:`READ_ACTIONS`)."""
        return [c for c in self.calls if c[1] not in READ_ACTIONS]

    # --- one request ---------------------------------------------------------------------------------------------

    def handle(self, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """The answer document ``{"Response": {...}}`` for one request (errors inside it, as the API does)."""
        request_id = str(uuid.uuid4())
        try:
            service = (headers.get("authorization", "").split("Credential=", 1)[-1].split("/") + ["", "", ""])[2]
            if service not in ("scf", "cam"):
                raise ApiError("AuthFailure.InvalidAuthorization", f"service {service!r} is not served here")
            version = self.models[service]["version"]
            verify_tc3(headers, body, self.credentials, service, version)
            action = headers.get("x-tc-action", "")
            if action not in self.models[service]["actions"]:
                raise ApiError("InvalidAction", f"{service} has no action {action!r} here")
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                raise ApiError("InvalidParameter", "the body is not JSON") from None
            if not isinstance(params, dict):
                raise ApiError("InvalidParameter", "the body is not a JSON object")
            errors = tccli_models.validate(self.models, service, action, params)
            if errors:
                code = ("UnknownParameter" if "not a field" in errors[0] else
                        "MissingParameter" if "missing" in errors[0] else "InvalidParameterValue")
                raise ApiError(code, "; ".join(errors))
            with self._lock:
                response = getattr(self, f"_{service}_{action}")(params)
                self.calls.append((service, action, params))
        except ApiError as exc:
            return {"Response": {"Error": {"Code": exc.code, "Message": exc.message}, "RequestId": request_id}}
        response["RequestId"] = request_id
        wrong = tccli_models.validate_response(self.models, service, action, response)
        if wrong:  # the fake's own bug: recorded for the tests to fail on, answered as the API's internal error
            self.own_errors.append(f"{service} {action}: {wrong}")
            return {"Response": {"Error": {"Code": "InternalError", "Message": "; ".join(wrong)},
                                 "RequestId": request_id}}
        return {"Response": response}

    def _skeleton(self, service: str, action: str) -> dict[str, Any]:
        return tccli_models.skeleton(self.models, service, self.models[service]["actions"][action]["output"])

    # --- CAM -----------------------------------------------------------------------------------------------------

    def _role(self, name: str) -> dict[str, Any]:
        role = self.state.roles.get(name)
        if role is None:
            raise ApiError("InvalidParameter.RoleNotExist", f"role {name} does not exist")
        return role

    def _policy(self, policy_id: int) -> dict[str, Any]:
        policy = self.state.policies.get(policy_id)
        if policy is None:
            raise ApiError("InvalidParameter.PolicyIdNotExist", f"policy {policy_id} does not exist")
        return policy

    def _cam_GetRole(self, p: dict[str, Any]) -> dict[str, Any]:
        role = self._role(p.get("RoleName") or "")
        info = tccli_models.skeleton(self.models, "cam", "RoleInfo")
        info.update({k: role[k] for k in ("RoleId", "RoleName", "PolicyDocument", "Description", "AddTime",
                                          "UpdateTime")}, RoleType="user", SessionDuration=43200)
        return {"RoleInfo": info}

    def _cam_CreateRole(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["RoleName"]
        if name in self.state.roles:
            raise ApiError("InvalidParameter.RoleNameInUse", f"role {name} exists")
        _json_document(p["PolicyDocument"])
        role_id = str(4611686018427387904 + next(self._ids))
        self.state.roles[name] = {"RoleId": role_id, "RoleName": name, "PolicyDocument": p["PolicyDocument"],
                                  "Description": p.get("Description", ""), "AddTime": _now(), "UpdateTime": _now()}
        return {"RoleId": role_id}

    def _cam_UpdateAssumeRolePolicy(self, p: dict[str, Any]) -> dict[str, Any]:
        role = self._role(p.get("RoleName") or "")
        _json_document(p["PolicyDocument"])
        role.update(PolicyDocument=p["PolicyDocument"], UpdateTime=_now())
        return {}

    def _cam_ListPolicies(self, p: dict[str, Any]) -> dict[str, Any]:
        keyword = p.get("Keyword") or ""
        rows = []
        for pid, policy in sorted(self.state.policies.items()):
            if keyword in policy["PolicyName"]:
                row = tccli_models.skeleton(self.models, "cam", "StrategyInfo")
                row.update(PolicyId=pid, PolicyName=policy["PolicyName"], AddTime=policy["AddTime"], Type=1,
                           Description=policy["Description"], CreateMode=1, UpdateTime=policy["UpdateTime"],
                           Attachments=sum(pid in s for s in self.state.attached.values()))
                rows.append(row)
        return {"List": rows, "TotalNum": len(rows), "ServiceTypeList": []}

    def _cam_GetPolicy(self, p: dict[str, Any]) -> dict[str, Any]:
        policy = self._policy(p["PolicyId"])
        return {"PolicyName": policy["PolicyName"], "Description": policy["Description"], "Type": 1,
                "AddTime": policy["AddTime"], "UpdateTime": policy["UpdateTime"],
                "PolicyDocument": policy["versions"][policy["default"]], "PresetAlias": "",
                "IsServiceLinkedRolePolicy": 0}

    def _cam_CreatePolicy(self, p: dict[str, Any]) -> dict[str, Any]:
        if any(x["PolicyName"] == p["PolicyName"] for x in self.state.policies.values()):
            raise ApiError("FailedOperation.PolicyNameInUse", f"policy {p['PolicyName']} exists")
        _json_document(p["PolicyDocument"])
        pid = 100000000 + next(self._ids)
        self.state.policies[pid] = {"PolicyName": p["PolicyName"], "Description": p.get("Description", ""),
                                    "versions": {1: p["PolicyDocument"]}, "default": 1, "AddTime": _now(),
                                    "UpdateTime": _now()}
        return {"PolicyId": pid}

    def _cam_CreatePolicyVersion(self, p: dict[str, Any]) -> dict[str, Any]:
        policy = self._policy(p["PolicyId"])
        _json_document(p["PolicyDocument"])
        version = max(policy["versions"]) + 1
        policy["versions"][version] = p["PolicyDocument"]
        if p.get("SetAsDefault"):
            policy["default"] = version
        policy["UpdateTime"] = _now()
        return {"VersionId": version}

    def _cam_ListAttachedRolePolicies(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p.get("RoleName") or ""
        self._role(name)
        rows = []
        for pid in sorted(self.state.attached.get(name, set())):
            row = tccli_models.skeleton(self.models, "cam", "AttachedPolicyOfRole")
            row.update(PolicyId=pid, PolicyName=self.state.policies[pid]["PolicyName"], AddTime=_now(),
                       PolicyType="User", CreateMode=1)
            rows.append(row)
        return {"List": rows, "TotalNum": len(rows)}

    def _cam_AttachRolePolicy(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p.get("AttachRoleName") or ""
        self._role(name)
        pid = p.get("PolicyId")
        if pid is None:
            pid = next((i for i, x in self.state.policies.items() if x["PolicyName"] == p.get("PolicyName")), None)
        self._policy(pid if pid is not None else -1)
        self.state.attached.setdefault(name, set()).add(pid)
        return {}

    # --- SCF: layers ---------------------------------------------------------------------------------------------

    def _content_sha256(self, content: dict[str, Any]) -> str:
        """The sha256 of a ``Code``/``Content``: its ZipFile, or the COS object it names (which must exist)."""
        if content.get("ZipFile"):
            return hashlib.sha256(base64.b64decode(content["ZipFile"])).hexdigest()
        bucket, key = content.get("CosBucketName"), content.get("CosObjectName")
        if not bucket or not key:
            raise ApiError("InvalidParameterValue.Code", "Code needs ZipFile or CosBucketName and CosObjectName")
        data = self.cos_objects(bucket, key.lstrip("/")) if self.cos_objects else f"{bucket}/{key}".encode()
        if data is None:
            raise ApiError("ResourceNotFound.CosObject", f"cos://{bucket}/{key} does not exist")
        return hashlib.sha256(data).hexdigest()

    def _scf_ListLayerVersions(self, p: dict[str, Any]) -> dict[str, Any]:
        versions = self.state.layers.get(p["LayerName"])
        if versions is None:
            raise ApiError("ResourceNotFound.Layer", f"layer {p['LayerName']} does not exist")
        rows = []
        for v in reversed(versions):  # newest first, as the console lists them
            row = tccli_models.skeleton(self.models, "scf", "LayerVersionInfo")
            row.update({k: v[k] for k in ("CompatibleRuntimes", "AddTime", "Description", "LayerVersion")},
                       LayerName=p["LayerName"], Status="Active", LicenseInfo="", Stamp="")
            rows.append(row)
        return {"LayerVersions": rows}

    def _scf_PublishLayerVersion(self, p: dict[str, Any]) -> dict[str, Any]:
        versions = self.state.layers.setdefault(p["LayerName"], [])
        number = len(versions) + 1
        versions.append({"LayerVersion": number, "CompatibleRuntimes": p["CompatibleRuntimes"],
                         "Description": p.get("Description", ""), "AddTime": _now(),
                         "sha256": self._content_sha256(p["Content"])})
        return {"LayerVersion": number}

    # --- SCF: functions ------------------------------------------------------------------------------------------

    def _key(self, p: dict[str, Any]) -> str:
        return f"{p.get('Namespace') or 'default'}/{p['FunctionName']}"

    def _function(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self.state.functions.get(self._key(p))
        if fn is None:
            raise ApiError("ResourceNotFound.Function", f"function {self._key(p)} does not exist")
        return fn

    def _check_refs(self, p: dict[str, Any]) -> None:
        role = p.get("Role")
        if role:
            self._role(role)
        for layer in p.get("Layers") or []:
            versions = self.state.layers.get(layer["LayerName"], [])
            if not any(v["LayerVersion"] == layer["LayerVersion"] for v in versions):
                raise ApiError("ResourceNotFound.Layer", f"layer {layer['LayerName']} v{layer['LayerVersion']}")

    CONFIG = ("Description", "MemorySize", "Timeout", "Runtime", "Handler", "Role", "Environment", "Layers",
              "DeadLetterConfig")
    """The configuration members the fake keeps (what the deployment sets)."""

    def _scf_CreateFunction(self, p: dict[str, Any]) -> dict[str, Any]:
        key = self._key(p)
        if key in self.state.functions:
            raise ApiError("ResourceInUse.Function", f"function {key} exists")
        self._check_refs(p)
        fn = {"FunctionName": p["FunctionName"], "Namespace": p.get("Namespace") or "default",
              "FunctionId": f"lam-{uuid.uuid4().hex[:8]}", "AddTime": _now(), "ModTime": _now(),
              "Description": "", "MemorySize": 128, "Timeout": 3, "Runtime": "Python3.6",
              "Handler": "index.main_handler",
              "Role": "", "Environment": {"Variables": []}, "Layers": [],
              "DeadLetterConfig": {"Type": "", "Name": "", "FilterType": ""},
              "CodeSha256": self._content_sha256(p["Code"]), "triggers": {}, "reserved_mem": None,
              "async": {"RetryConfig": [{"RetryNum": 2}], "MsgTTL": 86400}}
        fn.update({k: p[k] for k in self.CONFIG if k in p})
        self.state.functions[key] = fn
        return {}

    def _scf_GetFunction(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        out = self._skeleton("scf", "GetFunction")
        out.update({k: fn[k] for k in ("FunctionName", "Namespace", "FunctionId", "AddTime", "ModTime",
                                       "Description", "MemorySize", "Timeout", "Runtime", "Handler", "Role")})
        out["Environment"] = {"Variables": fn["Environment"].get("Variables", [])}
        out["Layers"] = [self._layer_info(layer) for layer in fn["Layers"]]
        out["DeadLetterConfig"] = {**{"Type": "", "Name": "", "FilterType": ""}, **fn["DeadLetterConfig"]}
        out.update(Status="Active", AvailableStatus="Available", Qualifier="$LATEST", FunctionVersion="$LATEST",
                   Type="Event", CodeResult="success", Triggers=[self._trigger_row(t) for t in fn["triggers"].values()])
        return out

    def _layer_info(self, layer: dict[str, Any]) -> dict[str, Any]:
        row = tccli_models.skeleton(self.models, "scf", "LayerVersionInfo")
        version = next(v for v in self.state.layers[layer["LayerName"]] if v["LayerVersion"] == layer["LayerVersion"])
        row.update({k: version[k] for k in ("CompatibleRuntimes", "AddTime", "Description", "LayerVersion")},
                   LayerName=layer["LayerName"], Status="Active")
        return row

    def _scf_GetFunctionAddress(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        return {"Url": f"https://scf-code-{self.app_id}.cos.{self.region}.myqcloud.com/{fn['FunctionId']}.zip",
                "CodeSha256": fn["CodeSha256"]}

    def _scf_UpdateFunctionConfiguration(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        self._check_refs(p)
        fn.update({k: p[k] for k in self.CONFIG if k in p}, ModTime=_now())
        return {}

    def _scf_UpdateFunctionCode(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        code = p.get("Code") or {k: p[k] for k in ("ZipFile", "CosBucketName", "CosObjectName") if k in p}
        fn.update(CodeSha256=self._content_sha256(code), ModTime=_now())
        if p.get("Handler"):
            fn["Handler"] = p["Handler"]
        return {}

    # --- SCF: triggers, concurrency, async -------------------------------------------------------------------------

    def _trigger_row(self, t: dict[str, Any], model: str = "Trigger") -> dict[str, Any]:
        row = tccli_models.skeleton(self.models, "scf", model)
        row.update({k: t[k] for k in ("Type", "TriggerName", "TriggerDesc", "AddTime", "ModTime", "Description")},
                   Enable=1, Qualifier="$DEFAULT", AvailableStatus="Available", BindStatus="on",
                   TriggerAttribute="single", CustomArgument=t.get("CustomArgument", ""), ResourceId=t["ResourceId"])
        return row

    def _scf_ListTriggers(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        rows = [self._trigger_row(t) for t in fn["triggers"].values()]
        return {"Triggers": rows, "TotalCount": len(rows)}

    def _scf_CreateTrigger(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        name, kind = p["TriggerName"], p["Type"]
        if name in fn["triggers"]:
            raise ApiError("ResourceInUse.TriggerName", f"trigger {name} exists on {fn['FunctionName']}")
        desc = p.get("TriggerDesc") or ""
        if kind == "http":  # a function URL: the API fills in its addresses (ListTriggers shows them)
            doc = _json_document(desc)
            url_id = uuid.uuid4().hex[:10]
            net = doc.setdefault("NetConfig", {})
            host = f"{self.app_id}-{url_id}.{self.region}.tencentscf.com"
            net.update(ExtranetUrl=f"https://{host}" if net.get("EnableExtranet") else "",
                       IntranetUrl=f"https://{self.app_id}-{url_id}.in.{self.region}.tencentscf.com"
                       if net.get("EnableIntranet") else "")
            desc = json.dumps(doc, separators=(",", ":"))
        elif kind == "cos":
            _json_document(desc)
        elif kind != "timer":
            raise ApiError("InvalidParameterValue.Type", f"trigger type {kind} is not served here")
        trigger = {"Type": kind, "TriggerName": name, "TriggerDesc": desc, "AddTime": _now(), "ModTime": _now(),
                   "Description": p.get("Description", ""), "CustomArgument": p.get("CustomArgument", ""),
                   "ResourceId": f"qcs::scf:{self.region}:uin/{self.app_id}:function/{fn['FunctionName']}/{name}"}
        fn["triggers"][name] = trigger
        return {"TriggerInfo": self._trigger_row(trigger, "Trigger")}

    def _scf_DeleteTrigger(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        if fn["triggers"].pop(p["TriggerName"], None) is None:
            raise ApiError("ResourceNotFound.Trigger", f"trigger {p['TriggerName']} does not exist")
        return {}

    def _scf_GetReservedConcurrencyConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        return {"ReservedMem": fn["reserved_mem"] or 0}

    def _scf_PutReservedConcurrencyConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        fn["reserved_mem"] = p["ReservedConcurrencyMem"]
        return {}

    def _scf_GetFunctionEventInvokeConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        return {"AsyncTriggerConfig": json.loads(json.dumps(fn["async"]))}

    def _scf_UpdateFunctionEventInvokeConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        fn = self._function(p)
        fn["async"] = json.loads(json.dumps(p["AsyncTriggerConfig"]))
        return {}


def _json_document(text: Any) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        raise ApiError("InvalidParameterValue", f"not a JSON document: {str(text)[:80]!r}") from None
    if not isinstance(doc, dict):
        raise ApiError("InvalidParameterValue", "the document is not a JSON object")
    return doc


def _handler_for(api: TencentCloudApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            doc = api.handle({k.lower(): v for k, v in self.headers.items()}, body)
            data = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
