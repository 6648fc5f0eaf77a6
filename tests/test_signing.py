"""TC3-HMAC-SHA256: our signer equals the official SDKs' byte for byte (tencentcloud-sdk-python-mps and -vod,
test-only).

Method (reference/tooling.md §4): run the SDK's real ProcessMedia with ``time.time`` pinned and the transport
captured, feed the SDK's exact body bytes to our signer, compare every header we produce. Cases: several
timestamps including both sides of a UTC date boundary, temporary credentials (X-TC-Token), a non-ASCII body,
a region, the international endpoint; for VOD (service ``vod``, 2018-07-17) ProcessMediaByProcedure,
ProcessMediaByMPS, PullEvents and ConfirmEvents, through our whole client on the wire. Also: the emulator's
independent verifier accepts the SDK's own requests on the wire, and rejects tampering.
"""
from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import httpx
import pytest

from mps_triggers.mps import tc3_headers

GOLDEN = Path(__file__).parent / "data" / "tc3_golden.json"
SECRET_ID, SECRET_KEY = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
BODY = {"InputInfo": {"Type": "COS", "CosInputInfo": {"Bucket": "in-1250000000", "Region": "ap-guangzhou",
                                                      "Object": "/uploads/a.mp4"}},
        "ScheduleId": 20001, "SessionId": "mt1-0123456789abcdef0123456789abcdef01234567"}
CASES = [
    # (timestamp, token, region, endpoint, SessionContext)
    (1700000000, None, None, "mps.tencentcloudapi.com", '{"k":"a.mp4"}'),
    (1735689599, None, None, "mps.tencentcloudapi.com", '{"k":"a.mp4"}'),         # 2024-12-31T23:59:59Z
    (1735689600, None, None, "mps.tencentcloudapi.com", '{"k":"a.mp4"}'),         # 2025-01-01T00:00:00Z
    (1551113065, "tmp-session-token-Ab12", "ap-guangzhou", "mps.tencentcloudapi.com", '{"k":"视频 测试.mp4"}'),
    (1800000000, None, "ap-singapore", "mps.intl.tencentcloudapi.com", '{"k":"é+%20 ü"}'),
]


def sdk_request(ts: int, token: str | None, region: str | None, endpoint: str, context: str):
    """Run the SDK's ProcessMedia offline; return the RequestInternal it would have sent."""
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.mps.v20190612 import models, mps_client

    client = mps_client.MpsClient(credential.Credential(SECRET_ID, SECRET_KEY, token), region or "",
                                  ClientProfile(httpProfile=HttpProfile(endpoint=endpoint)))
    req = models.ProcessMediaRequest()
    req.from_json_string(json.dumps({**BODY, "SessionContext": context}))
    return offline(client, lambda: client.ProcessMedia(req), ts)


def offline(client, call, ts: int):
    """Run an SDK ``call`` with the clock pinned at ``ts`` and the transport captured; return the request it sent."""
    captured = {}

    def capture(req):
        captured["req"] = req
        return mock.Mock(status_code=200, headers={"Content-Type": "application/json"},
                         content=json.dumps({"Response": {"TaskId": "t", "RequestId": "r"}}).encode())

    with mock.patch("tencentcloud.common.abstract_client.time.time", return_value=ts), \
            mock.patch.object(client.request, "send_request", side_effect=capture):
        call()
    return captured["req"]


@pytest.mark.parametrize("ts,token,region,endpoint,context", CASES)
def test_signature_equals_official_sdk(ts, token, region, endpoint, context):
    pytest.importorskip("tencentcloud.mps.v20190612.mps_client")
    sdk = sdk_request(ts, token, region, endpoint, context)
    payload = sdk.data.encode("utf-8") if isinstance(sdk.data, str) else sdk.data
    ours = tc3_headers(SECRET_ID, SECRET_KEY, endpoint, "ProcessMedia", payload, ts, region=region, token=token)
    assert ours["Authorization"] == sdk.header["Authorization"]
    for name, value in ours.items():
        assert sdk.header[name] == value, name
    if token:
        assert ours["X-TC-Token"] == token
    if "视频" in context:
        assert b"\\u89c6" in payload  # the SDK sends ensure_ascii JSON: non-ASCII goes escaped


def test_golden_vector_without_the_sdk():
    """Vectors captured from the SDK, kept so the signer is checked even where the SDK is absent."""
    for case in json.loads(GOLDEN.read_text()):
        ours = tc3_headers(SECRET_ID, SECRET_KEY, case["host"], "ProcessMedia", case["payload"].encode("utf-8"),
                           case["timestamp"], region=case["region"], token=case["token"])
        assert ours["Authorization"] == case["authorization"]


def test_date_scope_uses_utc_date_of_timestamp():
    before = tc3_headers("id", "key", "h", "ProcessMedia", b"{}", 1735689599)["Authorization"]
    after = tc3_headers("id", "key", "h", "ProcessMedia", b"{}", 1735689600)["Authorization"]
    assert "Credential=id/2024-12-31/mps/tc3_request" in before
    assert "Credential=id/2025-01-01/mps/tc3_request" in after


def test_one_byte_of_body_changes_the_signature():
    a = tc3_headers("id", "key", "h", "ProcessMedia", b'{"a":1}', 1700000000)["Authorization"]
    b = tc3_headers("id", "key", "h", "ProcessMedia", b'{"a": 1}', 1700000000)["Authorization"]
    assert a != b


def test_emulator_accepts_the_official_sdk_on_the_wire(mps):
    """The emulator's verifier (independent of our signer) accepts what the SDK itself sends over HTTP."""
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.mps.v20190612 import models, mps_client

    secret_id = next(iter(mps.credentials))
    client = mps_client.MpsClient(credential.Credential(secret_id, mps.credentials[secret_id][0]), "ap-guangzhou",
                                  ClientProfile(httpProfile=HttpProfile(endpoint=mps.url.split("//")[1],
                                                                        protocol="http")))
    req = models.ProcessMediaRequest()
    req.from_json_string(json.dumps({**BODY, "SessionContext": '{"k":"视频"}'}))
    assert client.ProcessMedia(req).TaskId.startswith("1250000000-ScheduleTask-")
    assert mps.requests[-1].verdict == "accepted" and mps.requests[-1].signed


def test_emulator_rejects_tampered_body_and_wrong_key(mps):
    secret_id = next(iter(mps.credentials))
    key = mps.credentials[secret_id][0]
    payload = json.dumps(BODY).encode()
    host = mps.url.split("//")[1]
    import time
    headers = tc3_headers(secret_id, key, host, "ProcessMedia", payload, int(time.time()))
    codes = []
    for body, hdrs in [(payload.replace(b"20001", b"20002"), headers),
                       (payload, tc3_headers(secret_id, "wrong", host, "ProcessMedia", payload, int(time.time()))),
                       (payload, tc3_headers(secret_id, key, host, "ProcessMedia", payload, int(time.time()) - 3600)),
                       (payload, tc3_headers("AKIDunknown", key, host, "ProcessMedia", payload, int(time.time())))]:
        codes.append(httpx.post(mps.url, content=body, headers=hdrs).json()["Response"]["Error"]["Code"])
    assert codes == ["AuthFailure.SignatureFailure", "AuthFailure.SignatureFailure", "AuthFailure.SignatureExpire",
                     "AuthFailure.SecretIdNotFound"]
    assert mps.tasks == []


# --- VOD (service "vod", API 2018-07-17): the same signer, another service and version ----------------------------

VOD_CASES = [
    # (action, body, timestamp, token, region, endpoint)
    ("ProcessMediaByProcedure", {"ProcedureName": "hls-720p", "FileId": "5285890781763144364", "SubAppId": 1500000001,
                                 "SessionId": "mt1-0123456789abcdef0123456789abcdef01234567",
                                 "SessionContext": '{"k":"视频.mp4"}', "TasksNotifyMode": "Finish"},
     1700000000, None, None, "vod.tencentcloudapi.com"),
    ("ProcessMediaByMPS", {"FileId": "5285890781763144364", "SubAppId": 1500000001,
                           "MPSProcessMediaParams": '{"AiAnalysisTask":{"Definition":25}}'},
     1735689600, "tmp-session-token-Ab12", "ap-guangzhou", "vod.tencentcloudapi.com"),
    ("PullEvents", {"SubAppId": 1500000001}, 1735689599, None, None, "vod.intl.tencentcloudapi.com"),
    ("ConfirmEvents", {"EventHandles": ["h1", "h2"], "SubAppId": 1500000001}, 1800000000, None, "ap-singapore",
     "vod.intl.tencentcloudapi.com"),
]


def vod_sdk_request(action, body, ts, token, region, endpoint):
    """Run the VOD SDK's ``action`` offline; return the RequestInternal it would have sent."""
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.vod.v20180717 import models, vod_client

    client = vod_client.VodClient(credential.Credential(SECRET_ID, SECRET_KEY, token), region or "",
                                  ClientProfile(httpProfile=HttpProfile(endpoint=endpoint)))
    req = getattr(models, f"{action}Request")()
    req.from_json_string(json.dumps(body))
    return offline(client, lambda: getattr(client, action)(req), ts)


@pytest.mark.parametrize("action,body,ts,token,region,endpoint", VOD_CASES)
def test_vod_signature_equals_official_sdk(action, body, ts, token, region, endpoint):
    pytest.importorskip("tencentcloud.vod.v20180717.vod_client")
    sdk = vod_sdk_request(action, body, ts, token, region, endpoint)
    payload = sdk.data.encode("utf-8") if isinstance(sdk.data, str) else sdk.data
    ours = tc3_headers(SECRET_ID, SECRET_KEY, endpoint, action, payload, ts, region=region, token=token,
                       service="vod", version="2018-07-17")
    assert "/vod/tc3_request" in ours["Authorization"]
    for name, value in ours.items():
        assert sdk.header[name] == value, name


@pytest.fixture
def wire():
    """A plain HTTP server on localhost that keeps each request's headers and body and answers like VOD."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((dict(self.headers), body))
            answer = json.dumps({"Response": {"TaskId": "t", "EventSet": [], "RequestId": "r"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("action,body,ts,token,region,endpoint", VOD_CASES)
def test_vod_client_sends_what_the_sdk_sends(wire, action, body, ts, token, region, endpoint):
    """Our whole client (:func:`vod_client`) on the wire: the body it sends means what the SDK's does, and every
    header the SDK signs and sends is the same, byte for byte."""
    from mps_triggers.mps import Credentials, vod_client

    pytest.importorskip("tencentcloud.vod.v20180717.vod_client")
    host, seen = wire
    sdk = vod_sdk_request(action, body, ts, token, region, host)
    client = vod_client(f"http://{host}", Credentials(SECRET_ID, SECRET_KEY, token), region=region)
    with mock.patch("mps_triggers.mps.time.time", return_value=ts):
        if action == "PullEvents":
            client.pull_events(body["SubAppId"])
        elif action == "ConfirmEvents":
            client.confirm_events(body["EventHandles"], body["SubAppId"])
        else:
            client.call(action, body, idempotent=action != "ProcessMediaByMPS")
    headers, sent = seen[-1]
    headers = {k.lower(): v for k, v in headers.items()}
    assert json.loads(sent) == json.loads(sdk.data)
    ours = tc3_headers(SECRET_ID, SECRET_KEY, host, action, sent, ts, region=region, token=token, service="vod",
                       version="2018-07-17")
    for name, value in ours.items():
        assert headers[name.lower()] == value, name
        assert sdk.header[name] == tc3_headers(SECRET_ID, SECRET_KEY, host, action, sdk.data.encode(), ts,
                                               region=region, token=token, service="vod",
                                               version="2018-07-17")[name], name
