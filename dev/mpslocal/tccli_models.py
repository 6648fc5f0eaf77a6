"""Tencent Cloud API models for offline validation of request payloads (dev-only).

The official machine-readable API models ship inside tccli (PyPI ``tccli``) as ``tccli/services/<service>/<version>/
api.json``: for every action its request object, and for every object its members with ``name``, ``type``
(``string``, ``int``, ``bool``, ``float``, ``object``, ``list``), ``member`` (the element type or object name),
``required`` and ``document`` (the API reference text, where allowed values and ranges are stated).

tccli with the whole Tencent SDK is 663 MB, so the tests use a verbatim extract, ``tests/data/tccli_models.json``:
the actions the deployment payloads and ``mps-triggers deploy scf`` call, their request and response objects and
every object those reach, with the tccli version and the wheel's sha256. Refresh it with::

    pip download --no-deps tccli==3.1.189.1 -d /tmp/tccli
    python -m mpslocal.tccli_models /tmp/tccli/tccli-3.1.189.1-py2.py3-none-any.whl

:func:`validate` checks a payload against an action's request model: unknown fields, missing required fields and
wrong types, at any depth, each error naming the field's path.
"""
from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

MODELS = Path(__file__).resolve().parents[2] / "tests" / "data" / "tccli_models.json"
# service → (API version folder, actions the deployment payloads use)
ACTIONS = {
    "scf": ("v20180416", ("CreateFunction", "CreateTrigger", "PublishLayerVersion", "PutReservedConcurrencyConfig",
                          # what `mps-triggers deploy scf` reads and updates (and the local fake API answers)
                          "GetFunction", "GetFunctionAddress", "UpdateFunctionCode", "UpdateFunctionConfiguration",
                          "ListTriggers", "DeleteTrigger", "ListLayerVersions", "GetReservedConcurrencyConfig",
                          "GetFunctionEventInvokeConfig", "UpdateFunctionEventInvokeConfig")),
    "cam": ("v20190116", ("CreateRole", "CreatePolicy", "AttachRolePolicy",
                          "GetRole", "UpdateAssumeRolePolicy", "ListPolicies", "GetPolicy", "CreatePolicyVersion",
                          "ListAttachedRolePolicies")),
}
INT_RANGES = {"int64": (-(2 ** 63), 2 ** 63 - 1), "uint64": (0, 2 ** 64 - 1)}


def extract(wheel: Path) -> dict[str, Any]:
    """The models of :data:`ACTIONS` from a tccli wheel (request and response objects), copied verbatim."""
    out: dict[str, Any] = {"source": {"package": wheel.name, "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}}
    with zipfile.ZipFile(wheel) as zf:
        for service, (version, actions) in ACTIONS.items():
            api = json.loads(zf.read(f"tccli/services/{service}/{version}/api.json"))
            objects: dict[str, Any] = {}
            todo = [api["actions"][a][io] for a in actions for io in ("input", "output")]
            while todo:
                name = todo.pop()
                if name in objects or name not in api["objects"]:
                    continue
                objects[name] = api["objects"][name]
                todo += [m["member"] for m in objects[name]["members"] if m["type"] in ("object", "list")]
            out[service] = {"version": api["metadata"]["apiVersion"],
                            "actions": {a: api["actions"][a] for a in actions}, "objects": objects}
    return out


def load(path: Path = MODELS) -> dict[str, Any]:
    """The extract written by :func:`extract`: ``{"source": {...}, "scf": {...}, "cam": {...}}``."""
    return json.loads(path.read_text(encoding="utf-8"))


def request_model(models: dict[str, Any], service: str, action: str) -> dict[str, Any]:
    """The request object of ``service``'s ``action`` (``KeyError`` when the action is not in the extract)."""
    api = models[service]
    return api["objects"][api["actions"][action]["input"]]


def member(models: dict[str, Any], service: str, obj: str, name: str) -> dict[str, Any]:
    """One member (``name``, ``type``, ``member``, ``required``, ``document``) of object ``obj``."""
    return next(m for m in models[service]["objects"][obj]["members"] if m["name"] == name)


def _check(models: dict[str, Any], service: str, spec: dict[str, Any], value: Any, path: str,
           output: bool = False) -> list[str]:
    kind, inner = spec["type"], spec.get("member")
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        item = {"type": "object" if inner in models[service]["objects"] else _scalar(inner), "member": inner}
        return [e for i, v in enumerate(value) for e in _check(models, service, item, v, f"{path}[{i}]", output)]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({inner}), got {type(value).__name__}"]
        return validate_object(models, service, inner, value, path, output)
    if kind == "string":
        return [] if isinstance(value, str) else [f"{path}: expected a string, got {value!r}"]
    if kind == "bool":
        return [] if isinstance(value, bool) else [f"{path}: expected a bool, got {value!r}"]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: expected an integer ({inner}), got {value!r}"]
        low, high = INT_RANGES.get(inner, (-(2 ** 63), 2 ** 64))
        return [] if low <= value <= high else [f"{path}: {value} is outside {inner}"]
    if kind == "float":
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [
            f"{path}: expected a number, got {value!r}"]
    return [f"{path}: unknown model type {kind!r}"]


def _scalar(member_type: str) -> str:
    return {"string": "string", "bool": "bool", "float": "float", "double": "float"}.get(
        member_type, "int" if "int" in member_type else member_type)


def validate_object(models: dict[str, Any], service: str, obj: str, value: dict[str, Any], path: str = "",
                    output: bool = False) -> list[str]:
    """Errors of ``value`` against object ``obj``: unknown and missing required fields, wrong types (recursive).
    With ``output`` (a response), a member is required when the model says ``output_required`` and may be null
    only when it says ``value_allowed_null``."""
    members = {m["name"]: m for m in models[service]["objects"][obj]["members"]}
    prefix = f"{path}." if path else ""
    needed = "output_required" if output else "required"
    errors = [f"{prefix}{k}: not a field of {obj}" for k in value if k not in members]
    errors += [f"{prefix}{k}: required by {obj}, missing" for k, m in members.items() if m.get(needed) and k not in value]
    for k, v in value.items():
        if k not in members:
            continue
        if v is None and output:
            if not members[k].get("value_allowed_null"):
                errors.append(f"{prefix}{k}: null, which {obj} does not allow")
            continue
        errors += _check(models, service, members[k], v, f"{prefix}{k}", output)
    return errors


def validate(models: dict[str, Any], service: str, action: str, payload: dict[str, Any]) -> list[str]:
    """Errors of a ``service`` ``action`` request ``payload`` (what ``tccli <service> <action> --cli-input-json``
    sends) against the official model; empty when it conforms."""
    api = models[service]
    return validate_object(models, service, api["actions"][action]["input"], payload)


def validate_response(models: dict[str, Any], service: str, action: str, response: dict[str, Any]) -> list[str]:
    """Errors of the ``Response`` object of a successful ``action`` answer against the official response model."""
    api = models[service]
    return validate_object(models, service, api["actions"][action]["output"], response, output=True)


def skeleton(models: dict[str, Any], service: str, obj: str, depth: int = 0) -> dict[str, Any]:
    """An ``obj`` holding every member a response must have (``output_required``), each at its zero value ("",
    0, False, [], or such an object); a fake API overlays its state on it so its answers conform to the model."""
    out: dict[str, Any] = {}
    for m in models[service]["objects"][obj]["members"]:
        if not m.get("output_required"):
            continue
        if m["type"] == "object" and depth < 8:
            out[m["name"]] = skeleton(models, service, m["member"], depth + 1)
        else:
            out[m["name"]] = {"list": [], "string": "", "bool": False, "int": 0, "float": 0.0}.get(m["type"])
    return out


if __name__ == "__main__":
    MODELS.write_text(json.dumps(extract(Path(sys.argv[1])), ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                      encoding="utf-8")
    print(f"wrote {MODELS}")
