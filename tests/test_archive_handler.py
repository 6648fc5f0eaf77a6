"""functions/archive/app.py with real-shaped callback events, archiving into moto S3 and COS (real COS SDK)."""
from __future__ import annotations

import base64
import json
import time

import pytest

from mps_triggers.exceptions import BatchProcessingError, ConfigError
from tests.conftest import NOTIFY_KEY_EVENTS as NOTIFY_KEY
from tests.conftest import TOKEN_EVENTS as TOKEN
from tests.conftest import furl_event, load_event, resign, schedule_body

SECRETS = ("sample-s3-secret-key-do-not-log", "AKIAEXAMPLESAMPLE001", NOTIFY_KEY, TOKEN)


def test_function_url_callback_is_archived_as_one_line(archive):
    app, store = archive()
    resp = app.handler(furl_event(schedule_body()), None)
    assert resp["statusCode"] == 200 and resp["isBase64Encoded"] is False
    [(key, [line])] = store.objects().items()
    body = json.loads(resp["body"])
    assert key == body["key"] and key.endswith(f"/{line['id']}.jsonl")
    assert key.startswith("callbacks/event_type=ScheduleTask/dt=") and "/hour=" in key and ":" not in key
    assert line["source"] == {"type": "http", "id": "4ee9f7d6-6d9e-4c2e-9d7e-0a1b2c3d4e5f"}
    assert (line["event_type"], line["status"], line["failed"]) == ("ScheduleTask", "FINISH", True)
    assert line["task_id"] == "1250000000-ScheduleTask-2f4c0d7e9a1b4c3d8e5f6a7b8c9d0e1ftt7"
    assert line["object"] == {"storage": "cos", "bucket": "media-in-1250000000", "key": "uploads/产品 演示+1.mp4",
                              "route": "videos"}
    assert line["outputs"] == ["/mps-output/产品 演示+1_transcode_100030.mp4",
                               "/mps-output/产品 演示+1_snapshotByTimeOffset_10_0.jpg"]
    assert line["error"]["subtasks"][0]["subtask"].startswith("AnimatedGraphics")
    assert line["session_id"] == "mt1-f900246eee240ced23e157fa1810c31df7fe2b8d"
    assert line["payload"]["ScheduleTaskEvent"]["TaskId"] == line["task_id"]
    assert line["received_at"].endswith("Z") and "T" in line["received_at"]


def test_base64_body_and_redelivery_add_no_new_object(archive):
    app, store = archive()
    body = schedule_body()
    raw = json.dumps(body, ensure_ascii=False).encode()
    for _ in range(3):
        assert app.handler(furl_event(base64.b64encode(raw).decode(), isBase64Encoded=True), None)["statusCode"] == 200
    assert app.handler(furl_event(body), None)["statusCode"] == 200
    assert len(store.objects()) == 1


@pytest.mark.parametrize("mutate,status,reason", [
    (lambda b: {**b, "Sign": "0" * 32}, 401, "Sign does not match"),
    (lambda b: resign(b, ts=int(time.time()) - 3600), 401, "expired"),
    (lambda b: {k: v for k, v in b.items() if k != "Sign"}, 401, "missing"),
    (lambda b: resign(b, key="another-key"), 401, "Sign does not match"),
])
def test_forged_or_expired_callbacks_are_rejected_and_nothing_is_written(archive, capsys, mutate, status, reason):
    app, store = archive()
    resp = app.handler(furl_event(mutate(schedule_body())), None)
    assert resp["statusCode"] == status and reason in json.loads(resp["body"])["error"]
    assert store.objects() == {}
    log = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert any(x.get("message") == "callback rejected" and reason in x["reason"] for x in log)


def test_clock_skew_is_configurable(archive):
    app, store = archive(CALLBACK_CLOCK_SKEW="7200")
    assert app.handler(furl_event(schedule_body(ts=int(time.time()) - 3600)), None)["statusCode"] == 200


def test_token_oversize_not_json_and_method(archive):
    app, store = archive(CALLBACK_TOKEN=TOKEN, CALLBACK_MAX_BYTES="4096")
    ok = app.handler(furl_event(schedule_body()), None)
    assert ok["statusCode"] == 200
    cases = [
        (furl_event(schedule_body(), rawQueryString="token=nope"), 401),
        (furl_event(schedule_body(), rawQueryString=""), 401),
        (furl_event({**schedule_body(), "Padding": "x" * 5000}), 413),
        (furl_event("{not json"), 400),
        (furl_event("[1, 2]"), 400),
        (furl_event(base64.b64encode(b"\xff\xfe{}").decode(), isBase64Encoded=True), 400),
        (furl_event("not base64 at all!", isBase64Encoded=True), 400),
    ]
    get = furl_event(schedule_body())
    get["requestContext"]["http"]["method"] = "GET"
    cases.append((get, 405))
    for event, status in cases:
        assert app.handler(event, None)["statusCode"] == status
    assert len(store.objects()) == 1


def test_scf_api_gateway_gets_an_integration_response(archive):
    app, store = archive(CALLBACK_TOKEN=TOKEN)
    ev = load_event("scf_apigw_callback.json")
    ev["body"] = json.dumps(schedule_body(), ensure_ascii=False)
    resp = app.main_handler(ev, {"request_id": "scf-req-1"})
    assert resp["statusCode"] == 200 and resp["headers"]["Content-Type"] == "application/json"
    [lines] = store.objects().values()
    assert lines[0]["source"] == {"type": "http", "id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}


def test_sqs_batch_one_object_per_event_type_lines_in_arrival_order(archive):
    app, store = archive()
    event = load_event("sqs_callbacks.json")
    assert app.handler(event, None) == {"batchItemFailures": []}
    objs = store.objects()
    assert sorted(k.split("/")[1] for k in objs) == ["event_type=ScheduleTask", "event_type=WorkflowTask"]
    sched = next(v for k, v in objs.items() if "ScheduleTask" in k)
    assert [x["status"] for x in sched] == ["PROCESSING", "FINISH"]
    assert [x["source"]["id"] for x in sched] == [r["messageId"] for r in event["Records"][:2]]
    names = {k.rsplit("/", 1)[1] for k in objs}
    assert len(names) == 1  # both objects are named by the batch's message-id digest

    assert app.handler(event, None) == {"batchItemFailures": []}  # the same batch again: overwrites
    assert store.objects().keys() == objs.keys()
    partial = {"Records": event["Records"][1:]}                      # a redelivery of part of it
    assert app.handler(partial, None) == {"batchItemFailures": []}
    after = store.objects()
    all_ids = [x["id"] for v in after.values() for x in v]
    assert len(after) == 4 and set(all_ids) == {x["id"] for v in objs.values() for x in v}


def test_sqs_bad_records_fail_alone(archive):
    app, store = archive()
    event = load_event("sqs_callbacks.json")
    event["Records"][0]["body"] = "{truncated"
    event["Records"][1]["body"] = "42"
    resp = app.handler(event, None)
    assert resp == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]},
                                          {"itemIdentifier": event["Records"][1]["messageId"]}]}
    [lines] = store.objects().values()
    assert lines[0]["event_type"] == "WorkflowTask"


@pytest.mark.parametrize("name,event_type,outputs", [
    ("scf_mps_trigger_workflow.json", "WorkflowTask", ["/mps-output/产品 演示+1_transcode_100030.mp4"]),
    ("scf_mps_trigger_schedule.json", "ScheduleTask", ["/mps-output/产品 演示+1_transcode_100030.mp4",
                                                       "/mps-output/产品 演示+1_snapshotByTimeOffset_10_0.jpg"]),
    ("scf_mps_trigger_editmedia.json", "EditMediaTask", ["/mps-output/edited/part1_clip.mp4"]),
])
def test_scf_mps_trigger_every_event_type(archive, name, event_type, outputs):
    app, store = archive(MPS_NOTIFY_KEY=None)
    summary = app.main_handler(load_event(name), {"request_id": "trigger-1"})
    assert summary["lines"] == 1
    app.main_handler(load_event(name), {"request_id": "trigger-2"})  # SCF async retry: same object
    [(key, [line])] = store.objects().items()
    assert f"event_type={event_type}/" in key and line["outputs"] == outputs
    assert line["source"]["type"] == "scf-mps-trigger"


def test_response_wrapper_and_unknown_event_types_are_archived_raw(archive):
    app, store = archive(MPS_NOTIFY_KEY=None)
    app.main_handler({"Response": load_event("scf_mps_trigger_workflow.json")}, None)
    app.main_handler({"EventType": "LiveStreamHighlight", "Whatever": {"TaskId": "x-1", "Deep": [1, 2]}}, None)
    lines = {x["event_type"]: x for v in store.objects().values() for x in v}
    assert lines["WorkflowTask"]["task_id"].startswith("1250000000-WorkflowTask-")
    assert lines["LiveStreamHighlight"]["payload"]["Whatever"] == {"TaskId": "x-1", "Deep": [1, 2]}
    assert lines["LiveStreamHighlight"]["task_id"] == "x-1"


def test_secrets_are_redacted_from_archive_and_logs(archive, capsys):
    app, store = archive(CALLBACK_TOKEN=TOKEN)
    ev = load_event("furl_callback_s3_secrets.json")
    ev["body"] = json.dumps(resign(json.loads(ev["body"])), ensure_ascii=False)
    assert app.handler(ev, None)["statusCode"] == 200
    app.handler(load_event("sqs_callbacks.json"), None)
    text = store.raw() + capsys.readouterr().out
    for secret in SECRETS:
        assert secret not in text
    [line] = [x for v in store.objects().values() for x in v if x["source"]["type"] == "http"]
    info = line["payload"]["WorkflowTaskEvent"]["InputInfo"]["S3InputInfo"]
    assert info["S3SecretKey"] == "***" and info["S3SecretId"] == "***" and info["S3Bucket"] == "media-in-123456789012"


def test_write_failure_is_never_acknowledged(archive, stack):
    app, store = archive()
    stack.boto3("s3").delete_bucket(Bucket=store.bucket)
    assert app.handler(furl_event(schedule_body()), None)["statusCode"] == 503
    event = load_event("sqs_callbacks.json")
    assert len(app.handler(event, None)["batchItemFailures"]) == 3
    with pytest.raises(BatchProcessingError):
        app.main_handler(load_event("scf_mps_trigger_workflow.json"), None)


def test_cos_archive_through_the_cos_sdk(archive, stack):
    app, store = archive("cos", CALLBACK_TOKEN=TOKEN)
    before = stack.moto.shim.cos_requests
    assert app.handler(furl_event(schedule_body()), None)["statusCode"] == 200
    assert app.handler(load_event("sqs_callbacks.json"), None) == {"batchItemFailures": []}
    assert stack.moto.shim.cos_requests == before + 3
    assert sum(len(v) for v in store.objects().values()) == 4


@pytest.mark.parametrize("fmt", ["wecom", "slack", "json"])
def test_webhook_digest_for_every_event_type(archive, webhook, fmt):
    app, store = archive(MPS_NOTIFY_KEY=None, WEBHOOK_URL=webhook.url, WEBHOOK_FORMAT=fmt)
    for name in ("scf_mps_trigger_workflow.json", "scf_mps_trigger_schedule.json", "scf_mps_trigger_editmedia.json"):
        assert app.main_handler(load_event(name), None)["pushed"] is True
    assert len(webhook.posts) == 3
    text = json.dumps(webhook.posts, ensure_ascii=False)
    for needle in ("1250000000-ScheduleTask-", "1250000000-EditMediaTask-", "cos://media-in-1250000000/uploads/产品 演示+1.mp4",
                   "part1_clip.mp4", f"s3://{store.bucket}/callbacks/event_type=ScheduleTask/"):
        assert needle in text
    if fmt == "wecom":
        assert all(p["msgtype"] == "markdown" for p in webhook.posts)
        assert "1 FAILED" in webhook.posts[1]["markdown"]["content"]
    elif fmt == "json":
        digest = webhook.posts[1]
        assert digest["kind"] == "mps-triggers.digest" and digest["counts"] == {"FAILED": 1} and digest["more"] == 0
        [task] = digest["tasks"]
        assert task["failed"] is True and task["archive_key"].startswith("callbacks/event_type=ScheduleTask/")
        assert task["id"] == next(iter(store.objects().values()))[0]["id"] or task["id"] in store.raw()


def push_failures(store) -> list[dict]:
    return [x for k, v in store.objects().items() if "/event_type=push_failed/" in k for x in v]


def test_webhook_failures_never_fail_a_callback_and_are_recorded(archive, webhook):
    app, store = archive(WEBHOOK_URL=webhook.url, WEBHOOK_MAX_ATTEMPTS="3")
    webhook.statuses = [503, 500]
    assert app.handler(furl_event(schedule_body()), None)["statusCode"] == 200  # third attempt went through
    assert len(webhook.posts) == 3 and push_failures(store) == []

    webhook.statuses = [503] * 3                                          # retries run out: still 200, recorded
    resp = app.handler(furl_event(schedule_body()), None)
    assert resp["statusCode"] == 200
    [failed] = push_failures(store)
    assert failed["covers"][0]["id"] == json.loads(resp["body"])["id"] and failed["attempts"] == 3
    assert failed["reason"] == "HTTP 503" and failed["format"] == "json" and webhook.url not in json.dumps(failed)

    event = load_event("sqs_callbacks.json")
    for status in (400, 302):                                             # refused, or a redirect: never delivered
        webhook.statuses = [status]
        assert app.handler(event, None) == {"batchItemFailures": []}
        reasons = {f["reason"] for f in push_failures(store)}
        assert f"HTTP {status} (only 2xx is delivered)" in reasons
    covered = {c["task_id"] for f in push_failures(store) for c in f["covers"]}
    archived = {x["task_id"] for k, v in store.objects().items() if "push_failed" not in k for x in v}
    assert covered == archived  # every archived callback is in a recorded failed push (none was delivered)
    assert len(push_failures(store)) == 2  # the same callbacks failing again overwrite their own record


def test_invalid_archive_configuration_names_the_variable(archive):
    app, _ = archive(ARCHIVE_URI="cos://no-appid/x")
    with pytest.raises(ConfigError) as info:
        app.handler(load_event("sqs_callbacks.json"), None)
    assert info.value.variable == "ARCHIVE_URI"
