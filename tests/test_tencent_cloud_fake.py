"""The local SCF/CAM API (dev/mpslocal/tencent_cloud.py) that `mps-triggers deploy scf` is tested against: driven
here by the official Tencent Cloud SDK (tencentcloud-sdk-python-common's CommonClient, TC3-signed, over HTTP), it
refuses what the official request models refuse, answers in the official response models, and keeps state with
the API's own error codes."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from mpslocal.tencent_cloud import TencentCloudApi

TRUST = json.dumps({"version": "2.0", "statement": [{"action": "name/sts:AssumeRole", "effect": "allow",
                                                    "principal": {"service": "scf.qcloud.com"}}]})
ZIP = b"PK\x05\x06" + b"\x00" * 18  # an empty zip archive


@pytest.fixture
def api():
    with TencentCloudApi() as fake:
        yield fake
        assert not fake.own_errors


def client(api: TencentCloudApi, service: str, secret_key: str | None = None) -> CommonClient:
    version = {"scf": "2018-04-16", "cam": "2019-01-16"}[service]
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=api.host, protocol="http"))
    cred = credential.Credential(api.secret_id, secret_key or api.secret_key)
    return CommonClient(service, version, cred, "ap-guangzhou", profile=profile)


def call(api, service, action, params, **kw):
    return client(api, service, **kw).call_json(action, params)["Response"]


def error_of(api, service, action, params, **kw) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        call(api, service, action, params, **kw)
    return info.value.code


def test_a_deployment_sequence_keeps_state_and_answers_in_the_official_models(api):
    assert error_of(api, "cam", "GetRole", {"RoleName": "fn-role"}) == "InvalidParameter.RoleNotExist"
    call(api, "cam", "CreateRole", {"RoleName": "fn-role", "PolicyDocument": TRUST})
    assert error_of(api, "cam", "CreateRole", {"RoleName": "fn-role", "PolicyDocument": TRUST}) == \
        "InvalidParameter.RoleNameInUse"
    pid = call(api, "cam", "CreatePolicy", {"PolicyName": "fn-policy", "PolicyDocument": TRUST})["PolicyId"]
    assert call(api, "cam", "CreatePolicyVersion", {"PolicyId": pid, "PolicyDocument": TRUST.replace("2.0", "2.0 "),
                                                    "SetAsDefault": True})["VersionId"] == 2
    call(api, "cam", "AttachRolePolicy", {"AttachRoleName": "fn-role", "PolicyId": pid})
    attached = call(api, "cam", "ListAttachedRolePolicies", {"RoleName": "fn-role", "Page": 1, "Rp": 20})
    assert [p["PolicyName"] for p in attached["List"]] == ["fn-policy"]
    layer = call(api, "scf", "PublishLayerVersion", {
        "LayerName": "core", "CompatibleRuntimes": ["Python3.10"], "Description": "sha256:x",
        "Content": {"ZipFile": base64.b64encode(ZIP).decode()}})
    assert layer["LayerVersion"] == 1
    create = {"FunctionName": "fn", "Runtime": "Python3.10", "Handler": "app.main_handler", "Role": "fn-role",
              "Code": {"ZipFile": base64.b64encode(ZIP).decode()}, "Layers": [{"LayerName": "core", "LayerVersion": 1}],
              "Environment": {"Variables": [{"Key": "A", "Value": "1"}]}, "Timeout": 60, "MemorySize": 256}
    call(api, "scf", "CreateFunction", create)
    assert error_of(api, "scf", "CreateFunction", create) == "ResourceInUse.Function"
    got = call(api, "scf", "GetFunction", {"FunctionName": "fn"})
    assert (got["Timeout"], got["Role"], got["Layers"][0]["LayerVersion"]) == (60, "fn-role", 1)
    address = call(api, "scf", "GetFunctionAddress", {"FunctionName": "fn"})
    assert address["CodeSha256"] == hashlib.sha256(ZIP).hexdigest()
    url = call(api, "scf", "CreateTrigger", {"FunctionName": "fn", "TriggerName": "url", "Type": "http",
                                             "TriggerDesc": json.dumps({"AuthType": "NONE", "NetConfig": {
                                                 "EnableIntranet": False, "EnableExtranet": True}})})
    desc = json.loads(url["TriggerInfo"]["TriggerDesc"])
    assert desc["NetConfig"]["ExtranetUrl"].startswith("https://1250000000-")
    [listed] = call(api, "scf", "ListTriggers", {"FunctionName": "fn"})["Triggers"]
    assert json.loads(listed["TriggerDesc"]) == desc
    assert error_of(api, "scf", "GetFunction", {"FunctionName": "nope"}) == "ResourceNotFound.Function"
    assert error_of(api, "scf", "UpdateFunctionConfiguration", {"FunctionName": "fn", "Role": "missing"}) == \
        "InvalidParameter.RoleNotExist"
    assert [a for _, a, _ in api.mutations()] == ["CreateRole", "CreatePolicy", "CreatePolicyVersion",
                                                  "AttachRolePolicy", "PublishLayerVersion", "CreateFunction",
                                                  "CreateTrigger"]


def test_requests_the_official_models_refuse_are_refused_and_signatures_are_checked(api):
    assert error_of(api, "scf", "GetFunction", {"FunctionName": "fn", "Colour": "red"}) == "UnknownParameter"
    assert error_of(api, "scf", "PutReservedConcurrencyConfig", {"FunctionName": "fn"}) == "MissingParameter"
    assert error_of(api, "scf", "CreateFunction", {"FunctionName": "fn", "Timeout": "60",
                                                   "Code": {}}) == "InvalidParameterValue"
    assert error_of(api, "cam", "GetRole", {"RoleName": "r"}, secret_key="wrong") == "AuthFailure.SignatureFailure"
    assert not api.calls
