"""The callback half of the loop on the local stack: the emulator completes tasks and notifies through URL (a
function-URL endpoint), AWS-SQS (the callback queue and the SQS runner) and the SCF MPS trigger; the archive
handler keeps every notification. Plus a scan of every sample event for leaked secrets."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from mps_triggers import archive_job, storage
from mps_triggers.mps import Credentials, MpsClient
from mpslocal.runner import FunctionUrlServer, SqsEventSourceMapping
from tests.conftest import EVENTS, load_app, wait_for

NOTIFY_KEY = "loop-notify-key-secret"
S3_KEY = "loop-s3-secret-key"


@pytest.fixture
def loop(stack, mps, monkeypatch):
    """Archive handler configured against a fresh moto bucket; the emulator completing tasks quickly."""
    bucket = f"loop-{uuid.uuid4().hex[:10]}"
    stack.boto3("s3").create_bucket(Bucket=bucket)
    for k in list(os.environ):
        if k.startswith(("MPS_", "ARCHIVE_", "CALLBACK_", "WEBHOOK_")):
            monkeypatch.delenv(k)
    for k, v in {"AWS_ENDPOINT_URL": stack.moto.url, "ARCHIVE_URI": f"s3://{bucket}/cb",
                 "MPS_NOTIFY_KEY": NOTIFY_KEY, "CALLBACK_TOKEN": "loop-token"}.items():
        monkeypatch.setenv(k, v)
    archive_job.default_job.cache_clear()
    storage._stores.clear()
    mps.complete_after = 0.1
    mps.sqs_endpoint = stack.moto.url
    mps.deliveries.clear()
    sid = next(iter(mps.credentials))
    client = MpsClient(mps.url, Credentials(sid, mps.credentials[sid][0]))
    yield load_app("archive"), bucket, client
    mps.complete_after = None
    mps.mps_trigger = None
    client.close()
    archive_job.default_job.cache_clear()
    storage._stores.clear()


def request(key: str, notify: dict | None, schedule: bool = True) -> dict:
    body = {"InputInfo": {"Type": "AWS-S3", "S3InputInfo": {"S3Bucket": "in", "S3Region": "us-east-1", "S3Object": key,
                                                            "S3SecretId": "AKIALOOP", "S3SecretKey": S3_KEY}},
            "OutputDir": "/mps-output/", "SessionId": f"loop-{uuid.uuid4().hex[:20]}",
            "SessionContext": json.dumps({"v": 1, "src": "s3", "b": "in", "k": key, "r": "videos"})}
    body.update({"ScheduleId": 20001} if schedule else {"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 100030}]}})
    if notify:
        body["TaskNotifyConfig"] = notify
    return body


def archived(stack, bucket) -> list[dict]:
    s3 = stack.boto3("s3")
    lines = []
    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        lines += [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode().splitlines()]
    return lines


def test_url_callbacks_with_sign_change_mode_reach_the_archive(loop, stack, mps):
    app, bucket, client = loop
    server = FunctionUrlServer(app.handler)
    try:
        notify = {"NotifyType": "URL", "NotifyUrl": server.url + "?token=loop-token", "NotifyMode": "Change",
                  "NotifyKey": NOTIFY_KEY}
        tasks = [client.process_media(request(f"v/{i}.mp4", notify)).response["TaskId"] for i in range(3)]
        assert wait_for(lambda: len(mps.deliveries) == 6)
        assert all(d.ok and d.transport == "URL" for d in mps.deliveries)
        lines = archived(stack, bucket)
        assert sorted((x["task_id"], x["status"]) for x in lines) == sorted(
            (t, s) for t in tasks for s in ("PROCESSING", "FINISH"))
        assert all(x["payload"]["Sign"] and x["source"]["type"] == "http" for x in lines)
        assert {x["object"]["key"] for x in lines} == {"v/0.mp4", "v/1.mp4", "v/2.mp4"}
    finally:
        server.stop()


def test_out_of_order_and_duplicate_callbacks_are_all_kept_once_per_id(loop, stack, mps):
    """FINISH overtakes PROCESSING, and every FINISH is delivered twice (the same message): the archive keeps one
    line per notification id, PROCESSING included, and the duplicate overwrites its own object."""
    from mpslocal.emulator import FaultPlan

    app, bucket, client = loop
    server = FunctionUrlServer(app.handler)
    mps.plan = FaultPlan(reorder=1.0, duplicate_callback=1.0)
    try:
        notify = {"NotifyType": "URL", "NotifyUrl": server.url + "?token=loop-token", "NotifyMode": "Change",
                  "NotifyKey": NOTIFY_KEY}
        tasks = [client.process_media(request(f"r/{i}.mp4", notify)).response["TaskId"] for i in range(3)]
        assert wait_for(lambda: len(mps.deliveries) == 9)
        order = [d.status for d in sorted(mps.deliveries, key=lambda d: d.scheduled_at) if d.task_id == tasks[0]]
        assert order == ["FINISH", "PROCESSING", "FINISH (duplicate)"]
        lines = archived(stack, bucket)
        assert sorted((x["task_id"], x["status"]) for x in lines) == sorted(
            (t, s) for t in tasks for s in ("PROCESSING", "FINISH"))
    finally:
        mps.plan = None
        server.stop()


def test_url_callback_with_wrong_notify_key_is_refused_and_retried(loop, stack, mps):
    app, bucket, client = loop
    server = FunctionUrlServer(app.handler)
    try:
        notify = {"NotifyType": "URL", "NotifyUrl": server.url + "?token=loop-token", "NotifyKey": "not-the-key"}
        client.process_media(request("v/forged.mp4", notify))
        assert wait_for(lambda: len(mps.deliveries) == 1)
        [d] = mps.deliveries
        assert not d.ok and d.attempts == 3 and "401" in d.error
        assert archived(stack, bucket) == []
    finally:
        server.stop()


def test_aws_sqs_callbacks_through_the_queue(loop, stack, mps):
    app, bucket, client = loop
    sqs = stack.boto3("sqs")
    queue = sqs.create_queue(QueueName=f"cb-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    notify = {"NotifyType": "AWS-SQS", "AwsSQS": {"SQSRegion": "us-east-1", "SQSQueueName": queue.rsplit("/", 1)[1],
                                                  "S3SecretId": "AKIALOOP", "S3SecretKey": S3_KEY}}
    tasks = [client.process_media(request(f"q/{i}.mp4", notify, schedule=i % 2 == 0)).response["TaskId"]
             for i in range(12)]
    assert wait_for(lambda: len(mps.deliveries) == 12) and all(d.ok for d in mps.deliveries)
    stats = SqsEventSourceMapping(sqs, queue, app.handler, batch_size=100, batching_window=0.3).drain(max_seconds=30)
    assert stats.reported_failures == 0 and stats.function_errors == 0
    lines = archived(stack, bucket)
    assert sorted(x["task_id"] for x in lines) == sorted(tasks)
    assert {x["event_type"] for x in lines} == {"ScheduleTask", "WorkflowTask"}
    assert all(x["source"]["type"] == "sqs" for x in lines)
    assert S3_KEY not in json.dumps(lines)


def test_scf_mps_trigger_delivery(loop, stack, mps):
    app, bucket, client = loop
    mps.mps_trigger = lambda body: app.main_handler(body, {"request_id": str(uuid.uuid4())})
    task = client.process_media(request("t/a.mp4", None, schedule=False)).response["TaskId"]
    assert wait_for(lambda: len(mps.deliveries) == 1)
    [line] = archived(stack, bucket)
    assert line["task_id"] == task and line["source"]["type"] == "scf-mps-trigger" and line["event_type"] == "WorkflowTask"


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in ([v] if isinstance(v, str) and "secret" in k.lower() else _strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, str) and value.startswith("{"):
        try:
            return _strings(json.loads(value))
        except ValueError:
            return []
    return []


def test_no_secret_from_any_sample_reaches_an_archive_object_or_a_log_line(loop, stack, capsys, monkeypatch):
    """Every sample event through the handler it belongs to; then scan the archive and the logs for every secret
    value found in the samples and the configuration."""
    monkeypatch.delenv("CALLBACK_TOKEN")
    monkeypatch.delenv("MPS_NOTIFY_KEY")
    archive_job.default_job.cache_clear()
    app, bucket, _ = loop
    secrets = {NOTIFY_KEY, "loop-token", "events-notify-key", "events-callback-token"}
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        secrets.update(s for s in _strings(event) if len(s) >= 8)
        try:
            if path.name.startswith(("furl_", "scf_apigw", "scf_mps_trigger", "sqs_callbacks")):
                app.handler(event, None)
        except Exception:
            pass
    assert "sample-s3-secret-key-do-not-log" in secrets
    text = json.dumps(archived(stack, bucket), ensure_ascii=False) + capsys.readouterr().out
    # 12 notifications in the samples; the ScheduleTask FINISH sent by function URL (plain and base64), API gateway
    # and MPS trigger is one payload, so one object: 1 + s3-secrets 1 + batch 1 + SQS batch 3 + workflow 1 + edit 1
    assert len(archived(stack, bucket)) == 8
    leaked = [s for s in secrets if s in text]
    assert leaked == []
