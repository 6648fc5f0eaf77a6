"""functions/submit/app.py with real-shaped events against the MPS emulator over HTTP."""
from __future__ import annotations

import json

import pytest

from mps_triggers.exceptions import BatchProcessingError, ConfigError, EventError
from tests.conftest import NOTIFY_KEY, S3_SECRET, load_event, s3_body, sqs_event

ROUTES = [
    {"name": "broken", "prefix": "broken/", "tasks": {"MediaProcessTask": {"TranscodeTaskSet": [{"Definiton": 1}]}}},
    {"name": "videos", "suffixes": [".mp4", ".mov"], "schedule_id": 20001},
]


def test_sqs_batch_all_submitted(handler_env, mps):
    app = handler_env()
    assert app.handler(load_event("sqs_s3_put.json"), None) == {"batchItemFailures": []}
    keys = sorted(t.body["InputInfo"]["S3InputInfo"]["S3Object"] for t in mps.tasks)
    assert keys == ["uploads/2026/Clip-Two.MOV", "uploads/2026/clip one.mp4"]
    assert all(t.body["ScheduleId"] == 20001 and t.session_id.startswith("mt1-") for t in mps.tasks)


def test_every_sample_event_is_handled(handler_env, mps):
    app = handler_env()
    for name in ("sqs_sns_s3_put.json", "sqs_eventbridge_s3.json", "sqs_s3_testevent.json"):
        assert app.handler(load_event(name), None) == {"batchItemFailures": []}, name
    for name in ("s3_put.json", "eventbridge_s3.json", "cos_put.json"):
        summary = app.main_handler(load_event(name), {"request_id": "r", "time_limit_in_ms": 30000})
        assert summary.get("submitted", 0) + summary.get("duplicate", 0) == 1, name
    cos = [t for t in mps.tasks if t.body["InputInfo"]["Type"] == "COS"]
    assert cos[0].body["InputInfo"]["CosInputInfo"] == {"Bucket": "media-in-1250000000", "Region": "ap-guangzhou",
                                                        "Object": "/uploads/产品 演示+1.mp4"}
    # sns, eventbridge-in-sqs and eventbridge-direct name the same object twice: one task, one duplicate
    assert len(mps.tasks) == 4


def test_only_bad_records_are_reported(handler_env, mps):
    app = handler_env(MPS_SCHEDULE_ID=None, MPS_ROUTES=json.dumps(ROUTES))
    event = sqs_event(s3_body("ok/a.mp4"), "{malformed", {"unknown": "shape"}, s3_body("broken/b.mp4"),
                      {"Service": "Amazon S3", "Event": "s3:TestEvent"}, s3_body("ok/c.txt"),
                      ids=["good", "malformed", "unknown", "rejected", "test", "unrouted"])
    assert app.handler(event, None) == {"batchItemFailures": [
        {"itemIdentifier": "malformed"}, {"itemIdentifier": "unknown"}, {"itemIdentifier": "rejected"}]}
    assert [t.body["InputInfo"]["S3InputInfo"]["S3Object"] for t in mps.tasks] == ["ok/a.mp4"]


def test_redelivered_batch_submits_nothing_new(handler_env, mps):
    app = handler_env()
    event = load_event("sqs_s3_put.json")
    app.handler(event, None)
    assert app.handler(event, None) == {"batchItemFailures": []}
    assert len(mps.tasks) == 2
    assert [r.verdict for r in mps.requests].count("InvalidParameterValue.SessionId") == 2


def test_direct_invocation_raises_with_every_failed_record(handler_env, mps):
    app = handler_env(MPS_SCHEDULE_ID=None, MPS_ROUTES=json.dumps(ROUTES))
    event = {"Records": [s3_body("ok/a.mp4")["Records"][0], s3_body("broken/b.mp4")["Records"][0],
                         {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "x"}}}]}
    with pytest.raises(BatchProcessingError) as info:
        app.handler(event, None)
    assert set(info.value.errors) == {"Records[1]", "Records[2]"} and info.value.total == 3
    assert "UnknownParameter" in str(info.value) and "s3.object" in str(info.value)
    assert len(mps.tasks) == 1  # the good record was submitted; the platform's retry will be a duplicate


def test_mps_outage_fails_the_records_for_redelivery(handler_env, mps):
    app = handler_env(MPS_MAX_ATTEMPTS="2")
    mps.inject("InternalError", times=100)
    result = app.handler(load_event("sqs_s3_put.json"), None)
    assert {f["itemIdentifier"] for f in result["batchItemFailures"]} == {
        "059f36b4-87a3-44ab-83d2-661975830a7d", "2e1424d4-f796-459a-8184-9c92662be6da"}


def test_missing_s3_credentials_fail_s3_objects_with_the_variable_named(handler_env, mps, capsys):
    app = handler_env(MPS_S3_SECRET_ID=None, MPS_S3_SECRET_KEY=None)
    result = app.handler(load_event("sqs_s3_put.json"), None)
    assert len(result["batchItemFailures"]) == 2 and mps.tasks == []
    assert "MPS_S3_SECRET_ID" in capsys.readouterr().out
    assert app.main_handler(load_event("cos_put.json"), None)["submitted"] == 1  # COS needs no AWS key


def test_invalid_configuration_fails_the_invocation_naming_the_variable(handler_env, capsys):
    app = handler_env(MPS_ROUTES="[{\"name\": \"v\"}]", MPS_SCHEDULE_ID=None)
    with pytest.raises(ConfigError) as info:
        app.handler(load_event("sqs_s3_put.json"), None)
    assert info.value.variable == "MPS_ROUTES[0] (v)"
    [error] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"level":"ERROR"' in x]
    assert error["variable"] == "MPS_ROUTES[0] (v)"


def test_unknown_event_shape_raises(handler_env):
    app = handler_env()
    with pytest.raises(EventError):
        app.handler({"hello": "world"}, None)


def test_batch_records_are_submitted_concurrently_within_the_bound(handler_env, mps):
    app = handler_env(MPS_MAX_CONCURRENCY="4")
    mps.latency = 0.1
    event = sqs_event(*[s3_body(f"c/{i}.mp4", etag=f"e{i}") for i in range(10)])
    assert app.handler(event, None) == {"batchItemFailures": []}
    assert len(mps.tasks) == 10
    assert 1 < mps.state.max_inflight <= 4


def test_secrets_never_reach_the_logs(handler_env, mps, capsys):
    app = handler_env(MPS_SCHEDULE_ID=None, MPS_ROUTES=json.dumps(ROUTES), MPS_NOTIFY_URL="https://cb.example.com/x",
                      MPS_NOTIFY_KEY=NOTIFY_KEY)
    mps.inject("InternalError", times=1)
    app.handler(sqs_event(s3_body("ok/a.mp4"), s3_body("broken/b.mp4"), "{bad"), None)
    app.main_handler(load_event("cos_put.json"), None)
    out = capsys.readouterr().out
    assert out.count("\n") >= 4 and all(json.loads(line) for line in out.splitlines())
    secret_key = next(iter(mps.credentials.values()))[0]
    for secret in (S3_SECRET, NOTIFY_KEY, secret_key):
        assert secret not in out
    assert mps.tasks[0].body["TaskNotifyConfig"]["NotifyKey"] == NOTIFY_KEY  # it went to MPS, only there


def test_log_lines_correlate_key_session_and_task(handler_env, mps, capsys):
    app = handler_env()
    app.handler(load_event("sqs_s3_put.json"), type("Ctx", (), {"aws_request_id": "req-1",
                                                                "get_remaining_time_in_millis": lambda self: 30000})())
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    submitted = [x for x in lines if x.get("message") == "submitted"]
    assert {x["task_id"] for x in submitted} == {t.task_id for t in mps.tasks}
    assert all(x["function_request_id"] == "req-1" and x["session_id"].startswith("mt1-") and x["key"] for x in submitted)


def test_credentials_from_secrets_manager(handler_env, mps, stack, monkeypatch, capsys):
    """On Lambda both keys can come from Secrets Manager (here moto's, found through AWS_ENDPOINT_URL)."""
    sm = stack.boto3("secretsmanager")
    sid, (key, _) = next(iter(mps.credentials.items()))
    api = sm.create_secret(Name=f"mps-api-{mps.url[-5:]}", SecretString=json.dumps({"SecretId": sid, "SecretKey": key}))
    s3 = sm.create_secret(Name=f"mps-s3-{mps.url[-5:]}",
                          SecretString=json.dumps({"S3SecretId": "AKIAFROMSECRET", "S3SecretKey": "from-secret-key"}))
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.moto.url)
    app = handler_env(MPS_SECRET_ID=None, MPS_SECRET_KEY=None, MPS_S3_SECRET_ID=None, MPS_S3_SECRET_KEY=None,
                      MPS_CREDENTIALS_SECRET_ARN=api["ARN"], MPS_S3_CREDENTIALS_SECRET_ARN=s3["ARN"])
    assert app.handler(load_event("sqs_s3_put.json"), None) == {"batchItemFailures": []}
    info = mps.tasks[0].body["InputInfo"]["S3InputInfo"]
    assert (info["S3SecretId"], info["S3SecretKey"]) == ("AKIAFROMSECRET", "from-secret-key")
    assert "from-secret-key" not in capsys.readouterr().out


def test_unreadable_secret_fails_the_records_not_the_container(handler_env, mps, stack, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.moto.url)
    app = handler_env(MPS_SECRET_ID=None, MPS_SECRET_KEY=None,
                      MPS_CREDENTIALS_SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf")
    result = app.handler(load_event("sqs_s3_put.json"), None)
    assert len(result["batchItemFailures"]) == 2 and mps.tasks == []
    assert "SecretError" in capsys.readouterr().out
