"""Routing: first match wins, runtime recursion guard, SessionId/SessionContext, and request bodies that the
official SDK's ProcessMediaRequest accepts without an unknown field."""
from __future__ import annotations

import dataclasses
import json

import pytest

from mps_triggers.config import load_settings
from mps_triggers.routing import Router, S3Credentials, Skip, Submission
from mps_triggers.session import read_session_context, session_context, session_id
from mps_triggers.uploads import UploadedObject
from mpslocal.emulator import ApiError, unknown_fields, validate_process_media

KEYS = {"MPS_SECRET_ID": "AKIDtest", "MPS_SECRET_KEY": "k"}
S3 = S3Credentials("AKIATEST", "s3-secret")
ROUTES = [
    {"name": "cos-inline", "storage": "cos", "prefix": "inline/", "suffixes": [".mp4"],
     "tasks": {"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 100030}]}}, "task_type": "Offline"},
    {"name": "podcasts", "bucket": "pods", "suffixes": [".MP3", ".m4a"], "schedule_id": 7, "output_bucket": "pods-out",
     "output_dir": "/derived/"},
    {"name": "videos", "suffixes": [".mp4", ".mov"], "schedule_id": 20001},
]


def settings(**extra):
    return load_settings({**KEYS, "MPS_ROUTES": json.dumps(ROUTES), **extra})


def obj(key, storage="s3", bucket="in", size=100, etag="e1", **kw):
    region = "ap-guangzhou" if storage == "cos" else "us-east-1"
    return UploadedObject(storage, bucket, region, key, size=size, etag=etag, **kw)


@pytest.mark.parametrize("o,expected", [
    (obj("inline/a.mp4", "cos", "in-1250000000"), "cos-inline"),
    (obj("inline/a.mp4"), "videos"),                     # storage condition: s3 is not cos
    (obj("show/ep1.mp3", bucket="pods"), "podcasts"),    # suffix is case-insensitive
    (obj("show/ep1.mp3", bucket="other"), None),
    (obj("x/Movie.MOV"), "videos"),
    (obj("x/readme.txt"), None),
])
def test_first_matching_route_wins(o, expected):
    d = Router(settings()).decide(o)
    assert (d.route.name if isinstance(d, Submission) else None) == expected
    if expected is None:
        assert d == Skip("no route matches")


@pytest.mark.parametrize("o,reason", [
    (obj("uploads/"), "folder marker"),
    (obj("uploads/a.mp4", size=0), "zero-byte"),
    (obj("mps-output/uploads/a_100030.mp4"), "recursion guard"),
    (obj("derived/ep1.mp3", bucket="pods-out"), "recursion guard"),
    (obj("mps/archive/event_type=X/a.mp4", bucket="logs"), "recursion guard"),
])
def test_skips_with_reasons(o, reason):
    d = Router(settings(ARCHIVE_URI="s3://logs/mps/archive/")).decide(o)
    assert isinstance(d, Skip) and d.reason.startswith(reason)


def test_session_id_is_deterministic_short_and_version_sensitive():
    a = obj("uploads/a.mp4")
    assert session_id(a) == session_id(dataclasses.replace(a, event_time="later", sequencer="x"))
    assert len(session_id(a)) <= 50
    variants = [dataclasses.replace(a, **{f: v}) for f, v in [
        ("key", "uploads/b.mp4"), ("bucket", "in2"), ("storage", "cos"), ("etag", "e2"), ("size", 101),
        ("version_id", "v2")]]
    assert len({session_id(v) for v in variants} | {session_id(a)}) == len(variants) + 1


def test_session_id_falls_back_to_upload_request_id():
    a = obj("k.mp4", "cos", "b-1", etag=None, upload_id="req-1")
    assert session_id(a) != session_id(dataclasses.replace(a, upload_id="req-2"))


def test_session_context_compact_and_readable():
    route = settings().routes[2]
    text = session_context(obj("uploads/视频.mp4"), route.name)
    assert text == '{"v":1,"src":"s3","b":"in","k":"uploads/视频.mp4","r":"videos"}'
    assert read_session_context(text) == {"v": 1, "src": "s3", "b": "in", "k": "uploads/视频.mp4", "r": "videos"}
    assert read_session_context('{"other": 1}') is None and read_session_context(None) is None


@pytest.mark.parametrize("key", ["视" * 400, "a" * 1024, "\x01" * 300, "é/" * 400])
def test_session_context_long_keys_fit_1000_bytes_and_carry_key_hash(key):
    text = session_context(obj(key), settings().routes[2].name)
    assert len(text.encode("utf-8")) <= 1000
    doc = json.loads(text)
    assert doc["kt"] == 1 and len(doc["kh"]) == 16 and key.startswith(doc["k"]) and doc["k"]


def test_cos_request_shape():
    d = Router(settings(MPS_NOTIFY_URL="https://cb.example.com/mps?token=t", MPS_NOTIFY_KEY="nk",
                        MPS_NOTIFY_MODE="Change")).decide(obj("inline/a b.mp4", "cos", "in-1250000000"))
    req = d.request()
    assert req["InputInfo"] == {"Type": "COS", "CosInputInfo": {"Bucket": "in-1250000000", "Region": "ap-guangzhou",
                                                                 "Object": "/inline/a b.mp4"}}
    assert req["OutputStorage"] == {"Type": "COS", "CosOutputStorage": {"Bucket": "in-1250000000",
                                                                         "Region": "ap-guangzhou"}}
    assert req["OutputDir"] == "/mps-output/inline/a b.mp4/" and req["TaskType"] == "Offline"
    assert req["MediaProcessTask"] == {"TranscodeTaskSet": [{"Definition": 100030}]}
    assert req["TaskNotifyConfig"] == {"NotifyType": "URL", "NotifyUrl": "https://cb.example.com/mps?token=t",
                                       "NotifyMode": "Change", "NotifyKey": "nk"}
    assert req["SessionId"] == d.session_id and "ScheduleId" not in req


def test_s3_request_shape_carries_credentials_and_sqs_notify():
    s = settings(MPS_NOTIFY_SQS_QUEUE="mps-callbacks", MPS_NOTIFY_SQS_REGION="us-east-1", MPS_S3_SECRET_ID="AKIATEST",
                 MPS_S3_SECRET_KEY="s3-secret", MPS_TASKS_PRIORITY="3", MPS_NOTIFY_URL="https://cb.example.com/x")
    req = Router(s).decide(obj("show/ep1.mp3", bucket="pods")).request(S3)
    assert req["InputInfo"] == {"Type": "AWS-S3", "S3InputInfo": {
        "S3Bucket": "pods", "S3Region": "us-east-1", "S3Object": "show/ep1.mp3", "S3SecretId": "AKIATEST",
        "S3SecretKey": "s3-secret"}}
    assert req["OutputStorage"]["S3OutputStorage"]["S3Bucket"] == "pods-out" and req["OutputDir"] == "/derived/pods/show/ep1.mp3/"
    assert req["ScheduleId"] == 7 and req["TasksPriority"] == 3
    assert req["TaskNotifyConfig"] == {"NotifyType": "AWS-SQS", "NotifyMode": "Finish", "AwsSQS": {
        "SQSRegion": "us-east-1", "SQSQueueName": "mps-callbacks", "S3SecretId": "AKIATEST", "S3SecretKey": "s3-secret"}}


def test_s3_input_without_credentials_is_an_error():
    with pytest.raises(ValueError, match="MPS_S3_SECRET_ID"):
        Router(settings()).decide(obj("a.mp4")).request(None)


def test_requests_do_not_share_mutable_task_config():
    r = Router(settings())
    a = r.decide(obj("inline/a.mp4", "cos", "in-1250000000")).request()
    a["MediaProcessTask"]["TranscodeTaskSet"].append({"Definition": 1})
    b = r.decide(obj("inline/b.mp4", "cos", "in-1250000000")).request()
    assert b["MediaProcessTask"] == {"TranscodeTaskSet": [{"Definition": 100030}]}


CONFIGS = [
    {},
    {"MPS_NOTIFY_URL": "https://cb.example.com/x", "MPS_NOTIFY_KEY": "k", "MPS_NOTIFY_MODE": "Change"},
    {"MPS_NOTIFY_SQS_QUEUE": "q", "MPS_NOTIFY_SQS_REGION": "us-east-1", "MPS_S3_SECRET_ID": "A", "MPS_S3_SECRET_KEY": "B",
     "MPS_NOTIFY_URL": "https://cb.example.com/x"},
    {"MPS_TASKS_PRIORITY": "-10", "MPS_TASK_TYPE": "Online", "MPS_OUTPUT_BUCKET": "out"},
]
OBJECTS = [obj("inline/a.mp4", "cos", "in-1250000000"), obj("show/x.m4a", bucket="pods"), obj("v/x.mov"),
           obj("v/" + "視" * 300 + ".mp4", "cos", "in-1250000000")]


@pytest.mark.parametrize("extra", CONFIGS)
@pytest.mark.parametrize("o", OBJECTS, ids=lambda o: o.key[:20])
def test_every_request_body_fits_the_sdk_model_and_the_api_rules(extra, o):
    """Every body we build deserializes into the SDK's ProcessMediaRequest without an unknown field."""
    from tencentcloud.mps.v20190612 import models

    req = Router(settings(**extra)).decide(o).request(S3)
    assert unknown_fields(req) == []
    validate_process_media(req)  # types, enums, lengths, '/' rules
    sdk = models.ProcessMediaRequest()
    sdk.from_json_string(json.dumps(req))
    assert sdk.SessionId == req["SessionId"] and sdk.InputInfo.Type == req["InputInfo"]["Type"]
    assert json.loads(sdk.to_json_string())["SessionContext"] == req["SessionContext"]


def test_unknown_fields_found_at_any_depth():
    body = {"InputInfo": {"Type": "COS", "CosInputInfo": {"Bucket": "b-1", "Region": "r", "Object": "/o", "Typo": 1}},
            "MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 1}, {"Definitoin": 2}]}, "Sessionid": "x"}
    assert sorted(unknown_fields(body)) == ["InputInfo.CosInputInfo.Typo", "MediaProcessTask.TranscodeTaskSet[1].Definitoin",
                                            "Sessionid"]
    with pytest.raises(ApiError) as info:
        validate_process_media(body)
    assert info.value.code == "UnknownParameter"
