"""Work is never lost at the edges (issue 9): each class of hostile or odd input, through functions/*/app.py and
the local stack (MPS emulator over HTTP, moto S3).

- one poison record among 999 good ones fails alone, on both jobs; odd-but-readable callbacks are archived
- HTTP callbacks get 400/401/405/413, never an exception
- no acknowledged line is ever missing (partition names that collide, long EventTypes), keys ≤ 1,024 bytes
- S3's versionId "null" is no version; the token survives '+' and '/'; Sign is redacted; only verified
  Timestamps choose a partition; unauthenticated deployments are warned about at cold start
- lines stay one line for every reader; secrets stay out of logs and error messages; the log context is reset
"""
from __future__ import annotations

import copy
import json
import logging
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from mps_triggers import archive_job
from mps_triggers.exceptions import BatchProcessingError, ConfigError
from mpslocal.runner import FunctionUrlServer
from mpslocal.runtime import LambdaContext
from tests.conftest import NOTIFY_KEY_EVENTS, S3_SECRET, LocalEndpoint, furl_event, load_event, resign, schedule_body

GOOD_S3 = json.loads(load_event("sqs_s3_put.json")["Records"][0]["body"])
GOOD_EB = json.loads(load_event("sqs_eventbridge_s3.json")["Records"][0]["body"])
GOOD_CALLBACK = json.loads(load_event("furl_callback.json")["body"])


def sqs_record(message_id: str, body) -> dict:
    rec = copy.deepcopy(load_event("sqs_s3_put.json")["Records"][0])
    rec["messageId"], rec["body"] = message_id, body
    return rec


def s3_body(key: str, **obj) -> str:
    doc = copy.deepcopy(GOOD_S3)
    doc["Records"][0]["s3"]["object"].update(key=key, **obj)
    return json.dumps(doc)


def eventbridge_body(key: str) -> str:
    doc = copy.deepcopy(GOOD_EB)
    doc["detail"]["object"]["key"] = key
    return json.dumps(doc, ensure_ascii=False)


DEEP = "[" * 300 + "]" * 300

# Each class of the issue, as the body of one SQS record of the submit job.
UPLOAD_POISON = {
    "lone surrogate in an EventBridge key": eventbridge_body("uploads/a\ud800.mp4"),
    "digit-like size '²'": s3_body("uploads/p1.mp4", size="²"),
    "5,000-digit size": s3_body("uploads/p2.mp4", size="9" * 5000),
    "valid JSON 300 levels deep": json.dumps({"Records": json.loads(DEEP)}),
    "100 KB of '['": "[" * 100_000,
    "non-string body": {"Records": []},
}


def test_one_poison_record_of_each_class_among_999_good_ones_fails_alone_on_submit(handler_env, mps):
    app = handler_env()
    records = [sqs_record(f"good-{i}", s3_body(f"uploads/batch/{i:04d}.mp4")) for i in range(999)]
    for n, (name, body) in enumerate(UPLOAD_POISON.items()):
        records.insert(100 * (n + 1), sqs_record(f"poison-{n}", body))
    resp = app.handler({"Records": records}, LambdaContext("submit", 60))
    assert sorted(f["itemIdentifier"] for f in resp["batchItemFailures"]) == [f"poison-{n}" for n in range(6)]
    assert len(mps.tasks) == 999


@pytest.mark.parametrize("name", UPLOAD_POISON)
def test_each_upload_class_fails_its_record_with_a_named_field(handler_env, mps, capsys, name):
    app = handler_env()
    resp = app.handler({"Records": [sqs_record("good", s3_body("uploads/ok.mp4")),
                                    sqs_record("poison", UPLOAD_POISON[name])]}, None)
    assert resp == {"batchItemFailures": [{"itemIdentifier": "poison"}]} and len(mps.tasks) == 1
    [bad] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"bad record"' in x]
    assert bad["record"] == "poison" and bad["field"].startswith("body") and bad["level"] == "ERROR"


def test_s3_version_id_null_is_no_version(handler_env, mps):
    """Versioning suspended: S3 says versionId "null"; new bytes under the same key and size are a new upload."""
    app = handler_env()
    first = s3_body("uploads/same.mp4", versionId="null", eTag="aaaa1111")
    second = s3_body("uploads/same.mp4", versionId="null", eTag="bbbb2222")
    app.handler({"Records": [sqs_record("m1", first)]}, None)
    app.handler({"Records": [sqs_record("m2", second)]}, None)
    assert len(mps.tasks) == 2 and mps.tasks[0].session_id != mps.tasks[1].session_id


# --- the archive job ------------------------------------------------------------------------------------------------

def callback(i: int, **extra) -> dict:
    doc = copy.deepcopy(GOOD_CALLBACK)
    doc["ScheduleTaskEvent"]["TaskId"] = f"1250000000-ScheduleTask-{i:06d}tt7"
    doc.update(extra)
    return doc


ARCHIVABLE = {  # odd but readable: archived and acknowledged, one line each
    "lone surrogate": callback(1001, Message="bad\ud800text"),
    "digit-like Timestamp": callback(1002, Timestamp="²", Sign="x"),
    "5,000-digit Timestamp": callback(1003, Timestamp="1" * 5000),
    "U+2028, U+2029, U+0085 in a message": callback(1004, Message="a\u2028b\u2029c\u0085d"),
    "ErrCode Infinity": callback(1005, ScheduleTaskEvent={"TaskId": "t-inf", "ErrCode": float("inf")}),
}
UNARCHIVABLE = {  # not a notification this job can read: the record fails alone, with the field named
    "valid JSON 300 levels deep": json.dumps({"EventType": "ScheduleTask", "X": json.loads(DEEP)}),
    "100 KB of '['": "[" * 100_000,
    "not JSON": "{truncated",
    "a JSON array": "[1, 2]",
    "non-string body": {"EventType": "ScheduleTask"},
}


def test_one_poison_record_of_each_class_among_999_good_ones_on_archive(archive):
    app, store = archive()
    records = [sqs_record(f"good-{i}", json.dumps(callback(i))) for i in range(999)]
    for n, doc in enumerate(ARCHIVABLE.values()):
        records.insert(50 + 100 * n, sqs_record(f"odd-{n}", json.dumps(doc)))
    for n, body in enumerate(UNARCHIVABLE.values()):
        records.insert(100 * (n + 1), sqs_record(f"poison-{n}", body))
    resp = app.handler({"Records": records}, LambdaContext("archive", 30))
    assert sorted(f["itemIdentifier"] for f in resp["batchItemFailures"]) == [f"poison-{n}" for n in range(5)]
    lines = [x for v in store.objects().values() for x in v]
    assert {x["source"]["id"] for x in lines} == {r["messageId"] for r in records} - {f"poison-{n}" for n in range(5)}
    odd = {x["source"]["id"]: x for x in lines if x["source"]["id"].startswith("odd-")}
    assert odd["odd-0"]["payload"]["Message"] == "bad\ud800text"           # kept as sent (escaped in the file)
    assert odd["odd-3"]["payload"]["Message"] == "a\u2028b\u2029c\u0085d"
    assert odd["odd-4"]["failed"] is True                                     # an unreadable ErrCode is a failure


@pytest.mark.parametrize("body,status,reason", [
    (json.dumps(resign({}))[:-1] + ', "a": ' + "[" * 900 + "]" * 900 + "}", 400, "nested deeper than 64 levels"),
    (json.dumps({"a": json.loads("[" * 900 + "]" * 900)}), 401, "Timestamp or Sign missing"),  # unsigned: not read
    ("[" * 100_000, 400, "nested deeper than 64 levels"),
    ('{"EventType": "ScheduleTask", "Message": "\ud800"}', 400, "not valid Unicode"),
    (json.dumps(callback(1, Timestamp="²", Sign="0" * 32)), 401, "Timestamp is not an integer"),
    (json.dumps(callback(1, Timestamp="9" * 5000, Sign="0" * 32)), 401, "Timestamp is not an integer"),
    ("[]", 400, "not a JSON object"),
])
def test_http_hostile_bodies_get_a_status_never_an_exception(archive, body, status, reason):
    app, store = archive(CALLBACK_TOKEN="t0ken")
    ev = furl_event("{}", rawQueryString="token=t0ken")
    ev["body"] = body
    resp = app.handler(ev, None)
    assert resp["statusCode"] == status and reason in json.loads(resp["body"])["error"]
    assert store.objects() == {}


@pytest.mark.parametrize("mutate,status", [
    (lambda ev: ev.update(isBase64Encoded=True, body="not base64!"), 400),           # base64 lies
    (lambda ev: ev.update(isBase64Encoded=True, body="AAAA" * 400_000), 413),        # too big, not decoded
    (lambda ev: ev.update(isBase64Encoded=False, body="eyJFdmVudFR5cGUiOiAiWCJ9"), 400),  # base64 said plain
    (lambda ev: ev.update(body=12345), 400),                                           # a number as the body
    (lambda ev: ev.update(rawQueryString={"token": "t0ken"}), 401),                    # non-string query
    (lambda ev: ev.update(headers=["not", "a", "dict"]), 200),
    (lambda ev: ev["requestContext"]["http"].update(method=None), 405),
])
def test_http_malformed_invocations_get_a_status(archive, mutate, status):
    app, store = archive(CALLBACK_TOKEN="t0ken", CALLBACK_MAX_BYTES="1048576")
    ev = furl_event(schedule_body(), rawQueryString="token=t0ken")
    mutate(ev)
    assert app.handler(ev, None)["statusCode"] == status


def test_mps_trigger_too_deep_fails_with_the_field_named(archive):
    app, store = archive(MPS_NOTIFY_KEY=None)
    with pytest.raises(BatchProcessingError) as info:
        app.main_handler(callback(1, X=json.loads(DEEP)), {"request_id": "trig-1"})
    assert "field body: nested deeper than 64 levels" in str(info.value) and store.objects() == {}


def test_event_types_sharing_a_partition_never_replace_each_other(archive):
    app, store = archive()
    types = ["Foo.Bar", "Foo_Bar", "事件一", "事件二", "E" * 2000, "E" * 2000 + "x", "push_failed", "a/../../b"]
    records = [sqs_record(f"m{i}", json.dumps({"EventType": t, "TaskId": f"t{i}"}, ensure_ascii=False))
               for i, t in enumerate(types)]
    assert app.handler({"Records": records}, None) == {"batchItemFailures": []}
    objects = store.objects()
    assert sorted(x["source"]["id"] for v in objects.values() for x in v) == sorted(r["messageId"] for r in records)
    assert all(len(k.encode()) <= 1024 and "/../" not in k for k in objects)
    partitions = {k.split("/")[1] for k in objects}
    assert "event_type=push_failed" not in partitions and "event_type=x-push_failed" in partitions
    assert len([p for p in partitions if p.startswith("event_type=EEEE")]) == 2  # long names stay apart


def test_sign_is_redacted_and_only_a_verified_timestamp_chooses_the_partition(archive):
    later = int(time.time()) + 3 * 3600  # a valid expiry three hours ahead: its hour is not the arrival's
    hour = time.strftime("hour=%H", time.gmtime(later))
    app, store = archive()                              # NotifyKey set: verified
    assert app.handler(furl_event(schedule_body(ts=later)), None)["statusCode"] == 200
    [(key, [line])] = store.objects().items()
    assert f"/{hour}/" in key and line["payload"]["Sign"] == "***" and line["payload"]["Timestamp"] == later

    app, store = archive(MPS_NOTIFY_KEY=None, CALLBACK_TOKEN="tok-1234")  # unverified: arrival time decides
    resp = app.handler(furl_event(schedule_body(ts=later + 86400 * 30), rawQueryString="token=tok-1234"), None)
    [key] = store.objects()
    assert json.loads(resp["body"])["key"] == key and time.strftime("dt=%Y-%m-%d/hour=%H", time.gmtime()) in key


@pytest.mark.parametrize("token", ["a+b/c=", "Zm9v+YmFy/YmF6==", "with space & ampersand", "中文+%2B"])
def test_token_with_reserved_characters_survives_the_round_trip(handler_env, mps, archive, token):
    """The submit job URL-encodes CALLBACK_TOKEN into NotifyUrl; MPS calls that URL; the archive accepts it."""
    app, store = archive(CALLBACK_TOKEN=token)
    archive_job.default_job()  # the archive container starts now, before the submit job's environment replaces it
    server = FunctionUrlServer(app.handler)
    try:
        submit = handler_env(MPS_NOTIFY_URL=server.url, CALLBACK_TOKEN=token, MPS_NOTIFY_KEY=NOTIFY_KEY_EVENTS)
        submit.handler(load_event("sqs_s3_put.json"), None)
        url = mps.tasks[0].body["TaskNotifyConfig"]["NotifyUrl"]
        assert parse_qs(urlsplit(url).query)["token"] == [token]
        import httpx

        resp = httpx.post(url, content=json.dumps(resign(GOOD_CALLBACK)), timeout=10)
        assert resp.status_code == 200, resp.text
        wrong = url.replace("token=", "token=x")
        assert httpx.post(wrong, content=json.dumps(resign(GOOD_CALLBACK)), timeout=10).status_code == 401
    finally:
        server.stop()


def test_token_given_twice_is_a_configuration_error(handler_env):
    app = handler_env(MPS_NOTIFY_URL="https://cb.example.com/?token=abc", CALLBACK_TOKEN="abc")
    with pytest.raises(ConfigError) as info:
        app.handler(load_event("sqs_s3_put.json"), None)
    assert info.value.variable == "MPS_NOTIFY_URL/CALLBACK_TOKEN"


def test_cold_start_warns_when_callbacks_are_not_authenticated(archive, capsys):
    app, _ = archive(MPS_NOTIFY_KEY=None)
    app.handler(load_event("sqs_callbacks.json"), None)
    warnings = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "not authenticated" in x]
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING"
    app, _ = archive(CALLBACK_TOKEN="tok-1234")
    app.handler(load_event("sqs_callbacks.json"), None)
    assert "not authenticated" not in capsys.readouterr().out


def test_secrets_in_values_are_redacted_from_the_archive(archive):
    app, store = archive()
    presigned = ("https://in.s3.amazonaws.com/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7"
                 "EXAMPLE%2F20261121%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=9f2e6bsecretsig&"
                 "X-Amz-Security-Token=FQoGZXIvYXdzEBYsessiontoken&x-id=GetObject")
    cos = "https://b-1250000000.cos.ap-guangzhou.myqcloud.com/a.mp4?q-sign-algorithm=sha1&q-ak=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE&q-signature=cosSIGNATUREvalue"
    doc = resign(callback(7, Message=f"see {presigned} and {cos}",
                          Extra={"Url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=robotkey123456"}))
    assert app.handler(furl_event(doc), None)["statusCode"] == 200
    raw = store.raw()
    for secret in ("9f2e6bsecretsig", "FQoGZXIvYXdzEBYsessiontoken", "AKIAIOSFODNN7EXAMPLE", "cosSIGNATUREvalue",
                   "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "robotkey123456"):
        assert secret not in raw
    assert "X-Amz-Signature=***" in raw and "x-id=GetObject" in raw and "q-sign-algorithm=sha1" in raw


# --- lines every reader splits where we meant ---------------------------------------------------------------------

def test_log_lines_stay_one_line_and_utf8(handler_env, mps, capsys):
    app = handler_env(MPS_ROUTES=json.dumps([{"name": "only-mov", "suffixes": [".mov"], "schedule_id": 1}]),
                      MPS_SCHEDULE_ID=None)
    app.handler({"Records": [sqs_record("m1", eventbridge_body("uploads/a\u2028b\u0085c.mp4"))]}, None)
    out = capsys.readouterr().out
    assert out.encode("utf-8") and out.splitlines() == out.rstrip("\n").split("\n")
    [skipped] = [json.loads(x) for x in out.splitlines() if '"skipped"' in x]
    assert skipped["key"] == "uploads/a\u2028b\u0085c.mp4"


def test_log_context_is_reset_at_the_start_of_every_invocation(handler_env, mps, capsys, monkeypatch):
    app = handler_env()
    app.handler(load_event("sqs_s3_put.json"), {"request_id": "first-request"})
    assert '"function_request_id":"first-request"' in capsys.readouterr().out
    monkeypatch.setenv("MPS_ROUTES", "not json")
    from mps_triggers import submit

    submit.default_job.cache_clear()
    with pytest.raises(ConfigError):
        app.handler(load_event("sqs_s3_put.json"), {"request_id": "second-request"})
    [line, metrics] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["message"] == "invalid configuration" and line["function_request_id"] == "second-request"
    assert metrics["InvocationFailed"] == 1 and "_aws" in metrics  # the invocation's EMF line


# --- secrets never in a log line or an error message ----------------------------------------------------------------

def test_configuration_errors_never_quote_a_url_that_may_hold_a_key(archive, capsys):
    app, _ = archive(WEBHOOK_URL="not-a-url?key=wecom-robot-key-9876")
    with pytest.raises(ConfigError) as info:
        app.handler(load_event("sqs_callbacks.json"), None)
    assert "wecom-robot-key-9876" not in str(info.value) + capsys.readouterr().out


@pytest.mark.parametrize("status,answer", [(502, None), (200, None), (400, None), (200, b'{"Response": {}}')])
def test_mps_answers_never_reach_logs_or_errors_raw(handler_env, capsys, status, answer):
    # a front end in front of nothing: it echoes the request (S3 keys included) back in its answer
    echo = LocalEndpoint(lambda body: (status, answer if answer is not None else b"<html>echo: " + body + b"</html>"),
                         path="")
    try:
        app = handler_env(MPS_ENDPOINT=echo.url, MPS_MAX_ATTEMPTS="2")
        with pytest.raises(BatchProcessingError) as info:
            app.handler(load_event("s3_put.json"), None)
        text = str(info.value) + capsys.readouterr().out
        assert S3_SECRET not in text and "echo:" not in text and "<html>" not in text
        if answer == b'{"Response": {}}':  # neither TaskId nor Error: transient, retried, never "submitted"
            assert "InvalidResponse" in text and len(echo.bodies) == 2 and '"submitted"' not in text
    finally:
        echo.close()


def test_third_party_loggers_are_held_at_warning_when_the_root_logger_says_info(handler_env, mps):
    """Lambda's JSON log format puts the root logger at INFO: httpx would print each request URL there."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    root = logging.getLogger()
    keep, level = Keep(level=logging.DEBUG), root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    try:
        app = handler_env()
        app.handler(load_event("sqs_s3_put.json"), None)
    finally:
        root.removeHandler(keep)
        root.setLevel(level)
    noisy = [r for r in records if r.name.split(".")[0] in ("httpx", "httpcore", "urllib3", "botocore", "qcloud_cos")]
    assert [r for r in noisy if r.levelno < logging.WARNING] == []
    assert not re.search(r"https?://\S+\?\S*=", " ".join(r.getMessage() for r in records))
