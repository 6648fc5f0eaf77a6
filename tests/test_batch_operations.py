"""S3 Batch Operations LambdaInvoke events (schema 1.0 and 2.0, events/) through functions/submit/app.py, with the
objects in moto and the MPS emulator over HTTP: one result per task, Succeeded / TemporaryFailure /
PermanentFailure, the same SessionId as the live S3 event, a ledger line per task."""
from __future__ import annotations

import copy
import json
import uuid

from mpslocal.runtime import LambdaContext
from tests.conftest import Reader, load_event, sqs_event

BUCKET = "media-in-123456789012"


def _setup(stack, handler_env, **extra):
    s3 = stack.boto3("s3")
    s3.create_bucket(Bucket=BUCKET)
    archive = f"arch-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=archive)
    for key in ("uploads/backfill/red flower +1.mp4", "uploads/backfill/clip one.mp4"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"video")
    s3.delete_object(Bucket=BUCKET, Key="uploads/backfill/gone.mp4")
    app = handler_env(AWS_ENDPOINT_URL=stack.moto.url, ARCHIVE_URI=f"s3://{archive}/mps/", AWS_REGION="us-east-1",
                      **extra)
    return s3, app, archive


def test_schema_1_0_submits_the_task_and_answers_succeeded(stack, mps, handler_env):
    _, app, archive = _setup(stack, handler_env)
    event = load_event("s3_batch_operations_v1.json")
    answer = app.handler(event, LambdaContext("submit", 30))
    assert answer["invocationSchemaVersion"] == "1.0" and answer["invocationId"] == event["invocationId"]
    assert answer["treatMissingKeysAs"] == "PermanentFailure"
    [result] = answer["results"]
    [task] = mps.tasks
    assert result["taskId"] == "dGFza2lkZ29lc2hlcmUK" and result["resultCode"] == "Succeeded"
    assert f"TaskId={task.task_id}" in result["resultString"]
    assert task.body["InputInfo"]["S3InputInfo"]["S3Object"] == "uploads/backfill/red flower +1.mp4"
    assert task.body["InputInfo"]["S3InputInfo"]["S3Region"] == "us-east-1"
    [line] = Reader(stack, archive).ledger()
    assert line["origin"] == "s3-batch-operations" and line["task_id"] == task.task_id
    # the same job task retried (or the object's live S3 event) is a duplicate, still Succeeded
    again = app.handler(event, LambdaContext("submit", 30))
    assert again["results"][0]["resultCode"] == "Succeeded" and again["results"][0]["resultString"].startswith(
        "duplicate") and len(mps.tasks) == 1


def test_the_session_id_is_the_live_events(stack, mps, handler_env):
    s3, app, _ = _setup(stack, handler_env)
    head = s3.head_object(Bucket=BUCKET, Key="uploads/backfill/clip one.mp4")
    live = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                         "eventTime": "2026-11-21T03:00:00.000Z", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": BUCKET}, "object": {
                             "key": "uploads/backfill/clip+one.mp4", "size": head["ContentLength"],
                             "eTag": head["ETag"].strip('"')}}}]}
    assert app.handler(sqs_event(live), None) == {"batchItemFailures": []}
    event = load_event("s3_batch_operations_v2.json")
    event["job"]["userArguments"] = {}
    answer = app.handler(event, LambdaContext("submit", 30))
    assert answer["results"][0]["resultString"].startswith("duplicate") and len(mps.tasks) == 1


def test_schema_2_0_with_a_generation_and_a_missing_key(stack, mps, handler_env):
    _, app, _ = _setup(stack, handler_env)
    event = load_event("s3_batch_operations_v2.json")
    answer = app.handler(event, LambdaContext("submit", 30))
    assert answer["invocationSchemaVersion"] == "2.0"
    ok, gone = answer["results"]
    assert ok["resultCode"] == "Succeeded" and gone["resultCode"] == "PermanentFailure"
    assert "no such object" in gone["resultString"] and "s3Key" in gone["resultString"]
    [task] = mps.tasks
    assert task.session_context["g"] == 1 and task.body["InputInfo"]["S3InputInfo"]["S3Object"] == \
        "uploads/backfill/clip one.mp4"


def test_throttling_is_a_temporary_failure_batch_operations_retries(stack, mps, handler_env):
    _, app, _ = _setup(stack, handler_env, MPS_MAX_ATTEMPTS="2")
    mps.inject("RequestLimitExceeded", times=1000)
    try:
        answer = app.handler(load_event("s3_batch_operations_v1.json"), LambdaContext("submit", 3))
    finally:
        mps.clear_faults()
    assert answer["results"][0]["resultCode"] == "TemporaryFailure", answer


def test_a_bad_task_or_argument_fails_permanently_naming_the_field(stack, mps, handler_env):
    _, app, _ = _setup(stack, handler_env)
    event = load_event("s3_batch_operations_v2.json")
    bad = copy.deepcopy(event)
    bad["tasks"][0]["s3Key"] = ""
    bad["tasks"][1]["s3Bucket"] = 7
    answer = app.handler(bad, LambdaContext("submit", 30))
    assert [r["resultCode"] for r in answer["results"]] == ["PermanentFailure", "PermanentFailure"]
    assert "tasks[0].s3Key" in answer["results"][0]["resultString"]
    assert "tasks[1].s3Bucket" in answer["results"][1]["resultString"]
    event["job"]["userArguments"] = {"generation": "-1"}
    answer = app.handler(event, LambdaContext("submit", 30))
    assert all(r["resultCode"] == "PermanentFailure" and "userArguments.generation" in r["resultString"]
               for r in answer["results"])
    assert mps.requests == []
    assert json.dumps(answer)  # the answer is JSON
