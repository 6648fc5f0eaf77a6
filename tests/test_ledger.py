"""The submit job's ledger: one object per invocation under event_type=submissions, one line per object submitted,
found duplicate or failed (README "Archive format"), read back from moto over HTTP."""
from __future__ import annotations

import json
import uuid

from tests.conftest import Reader, s3_body, sqs_event

ROUTES = [
    {"name": "broken", "prefix": "broken/", "tasks": {"MediaProcessTask": {"TranscodeTaskSet": [{"Definiton": 1}]}}},
    {"name": "videos", "suffixes": [".mp4"], "schedule_id": 20001},
]


def _archive(stack) -> str:
    bucket = f"ledger-{uuid.uuid4().hex[:10]}"
    stack.boto3("s3").create_bucket(Bucket=bucket)
    return bucket


def _env(stack, bucket, **extra):
    return {"ARCHIVE_URI": f"s3://{bucket}/mps/", "AWS_ENDPOINT_URL": stack.moto.url, **extra}


def test_each_invocation_writes_one_ledger_object_with_a_line_per_submitted_duplicate_or_failed_record(
        handler_env, mps, stack):
    bucket = _archive(stack)
    app = handler_env(**_env(stack, bucket, MPS_SCHEDULE_ID=None, MPS_ROUTES=json.dumps(ROUTES)))
    event = sqs_event(s3_body("in/a.mp4"), s3_body("broken/b.mp4"), s3_body("in/folder/"), "{malformed",
                      s3_body("in/notes.txt"), ids=["ok", "refused", "folder", "malformed", "unrouted"])
    assert app.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "malformed"},
                                                              {"itemIdentifier": "refused"}]}
    reader = Reader(stack, bucket)
    [(key, lines)] = reader.objects(ledger=True).items()
    assert key.startswith("mps/event_type=submissions/dt=") and "/hour=" in key
    by_source = {ln["source"]["id"]: ln for ln in lines}
    assert set(by_source) == {"ok", "refused", "malformed"}  # skips (folder marker, no route) are only logged
    [task] = mps.tasks
    ok = by_source["ok"]
    assert ok["result"] == "submitted" and ok["task_id"] == task.task_id and ok["session_id"] == task.session_id
    assert ok["object"] == {"storage": "s3", "bucket": "media-in", "key": "in/a.mp4", "route": "videos"}
    assert ok["origin"] == "submit" and ok["source"]["type"] == "sqs" and ok["api"] == "ProcessMedia"
    assert ok["generation"] == 0 and ok["error"] is None and ok["at"].endswith("Z")
    refused = by_source["refused"]
    assert refused["result"] == "failed" and refused["task_id"] is None and refused["object"]["route"] == "broken"
    assert refused["error"]["code"].startswith("UnknownParameter") and refused["session_id"].startswith("mt1-")
    malformed = by_source["malformed"]
    assert malformed["result"] == "failed" and malformed["object"] is None and malformed["error"]["code"] == "EventError"
    assert "body" in malformed["error"]["message"]
    assert len({ln["id"] for ln in lines}) == 3

    # delivered again: one more object, the repeat recorded as a duplicate of the same SessionId
    assert app.handler(sqs_event(s3_body("in/a.mp4"), ids=["again"]), None) == {"batchItemFailures": []}
    second = [ln for ln in reader.ledger() if ln["source"]["id"] == "again"]
    assert [(ln["result"], ln["session_id"]) for ln in second] == [("duplicate", task.session_id)]
    assert len(reader.objects(ledger=True)) == 2 and len(mps.tasks) == 1


def test_an_invocation_that_only_skips_writes_no_ledger_object(handler_env, mps, stack):
    bucket = _archive(stack)
    app = handler_env(**_env(stack, bucket))
    assert app.handler(sqs_event(s3_body("in/folder/"), s3_body("in/empty.mp4", size=0)), None) == {
        "batchItemFailures": []}
    assert Reader(stack, bucket).objects(ledger=True) == {} and mps.requests == []


def test_a_ledger_that_cannot_be_written_fails_the_records_it_covers_and_the_retry_is_a_duplicate(
        handler_env, mps, stack, capsys):
    bucket = f"ledger-missing-{uuid.uuid4().hex[:8]}"  # not created yet: every PUT is refused (NoSuchBucket)
    app = handler_env(**_env(stack, bucket))
    event = sqs_event(s3_body("in/a.mp4"), s3_body("in/b.mp4"), s3_body("in/folder/"))
    assert app.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "msg-0"},
                                                              {"itemIdentifier": "msg-1"}]}
    assert len(mps.tasks) == 2  # MPS has the tasks; only their record is missing
    logged = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert any(x["message"] == "ledger write failed" and x["records_failed"] == 2 for x in logged)
    stack.boto3("s3").create_bucket(Bucket=bucket)
    assert app.handler(event, None) == {"batchItemFailures": []}
    lines = Reader(stack, bucket).ledger()
    assert sorted(ln["result"] for ln in lines) == ["duplicate", "duplicate"] and len(mps.tasks) == 2
    assert {ln["session_id"] for ln in lines} == {t.session_id for t in mps.tasks}


def test_a_callback_claiming_the_ledger_partition_is_kept_apart(archive):
    from mpslocal.notifications import notification

    app, reader = archive()
    body = notification("submissions", {"TaskId": "t-1", "Status": "FINISH"}, "", "")
    assert app.handler(sqs_event(body), None) == {"batchItemFailures": []}
    keys = list(reader.objects())
    assert keys and all("/event_type=x-submissions/" in k for k in keys) and reader.objects(ledger=True) == {}
