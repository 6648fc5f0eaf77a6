"""`mps-triggers backfill` and `reprocess`, run as the installed command (a subprocess) against moto over HTTP and
the MPS emulator: plans, results, reports, the ledger, resume after kill -9, exit statuses."""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mpslocal.stack import AWS_KEYS
from tests.conftest import S3_SECRET, Reader

ROUTES = [
    {"name": "broken", "prefix": "broken/", "tasks": {"MediaProcessTask": {"TranscodeTaskSet": [{"Definiton": 1}]}}},
    {"name": "videos", "suffixes": [".mp4", ".mov"], "schedule_id": 20001},
]


def command_env(stack, archive: str | None, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPS_", "ARCHIVE_", "TENCENTCLOUD_"))}
    env.update(AWS_KEYS)
    env.update({"AWS_ENDPOINT_URL": stack.moto.url, "COS_ENDPOINT_URL": stack.moto.url,
                "AWS_DEFAULT_REGION": "us-east-1", "MPS_ENDPOINT": stack.mps.url,
                "MPS_SECRET_ID": next(iter(stack.mps.credentials)),
                "MPS_SECRET_KEY": next(iter(stack.mps.credentials.values()))[0],
                "MPS_S3_SECRET_ID": "AKIATESTMPSREADER001", "MPS_S3_SECRET_KEY": S3_SECRET,
                "MPS_ROUTES": json.dumps(ROUTES)})
    if archive:
        env["ARCHIVE_URI"] = f"s3://{archive}/mps/"
    env.update({k: v for k, v in extra.items() if v is not None})
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
    return env


def run(env, *args, cwd, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mps_triggers_cli", *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def bucket(stack):
    """A fresh input bucket and a fresh archive bucket."""
    s3 = stack.boto3("s3")
    media, archive = f"media-{uuid.uuid4().hex[:8]}", f"arch-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=media)
    s3.create_bucket(Bucket=archive)
    return s3, media, archive


def put(s3, bucket, key, body=b"video-bytes"):
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def report(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_dry_run_prints_the_plan_and_submits_nothing(stack, mps, bucket, tmp_path):
    s3, media, archive = bucket
    for i in range(5):
        put(s3, media, f"old/clip {i}.mp4")
    put(s3, media, "old/folder/", b"")
    put(s3, media, "old/empty.mp4", b"")
    put(s3, media, "old/notes.txt")
    put(s3, media, "mps-output/old/clip 0.mp4/transcode.mp4")
    put(s3, media, "broken/a.mp4")
    done = run(command_env(stack, archive), "backfill", f"s3://{media}/", "--dry-run", "--format", "json",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["listed"] == 10 and plan["to_submit"] == 6 and plan["routes"] == {"videos": 5, "broken": 1}
    assert plan["already_in_ledger"] == 0 and sum(plan["skipped"].values()) == 4
    assert plan["skipped"]["zero-byte object"] == 1 and plan["skipped"]["no route matches"] == 1
    assert plan["skipped"]["folder marker (key ends with '/')"] == 1
    assert any(r.startswith("recursion guard") for r in plan["skipped"])
    assert plan["estimated_seconds"] == pytest.approx(6 / 50, abs=0.01)
    assert mps.requests == [] and not (tmp_path / ".mps-triggers").exists()
    table = run(command_env(stack, archive), "backfill", f"s3://{media}/", "--dry-run", cwd=tmp_path)
    assert table.returncode == 0 and "route videos" in table.stdout and "already in the ledger" in table.stdout


def test_backfill_submits_each_object_once_reports_every_object_and_a_second_run_submits_nothing(
        stack, mps, bucket, tmp_path):
    s3, media, archive = bucket
    for i in range(12):
        put(s3, media, f"old/{i:02d} red+flower.mp4")
    put(s3, media, "broken/b.mp4")
    put(s3, media, "old/readme.txt")
    env = command_env(stack, archive)
    done = run(env, "backfill", f"s3://{media}/", "--rate", "40", "--report", "first.jsonl", "--format", "json",
               cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # the broken route's object failed; the run went on
    result = json.loads(done.stdout)
    assert result["results"] == {"submitted": 12, "duplicate": 0, "skipped": 1, "failed": 1}
    lines = report(tmp_path / "first.jsonl")
    assert len(lines) == 14 and {ln["result"] for ln in lines} == {"submitted", "skipped", "failed"}
    failed = [ln for ln in lines if ln["result"] == "failed"]
    assert failed[0]["key"] == "broken/b.mp4" and failed[0]["reason"].startswith("UnknownParameter")
    tasks = {t.session_id: t for t in mps.tasks}
    assert len(tasks) == 12 and len(mps.tasks) == 12
    for ln in lines:
        if ln["result"] == "submitted":
            task = tasks[ln["session_id"]]
            assert task.task_id == ln["task_id"]
            assert task.body["InputInfo"]["S3InputInfo"]["S3Object"] == ln["key"]
    ledger = Reader(stack, archive).ledger()
    assert sorted(ln["result"] for ln in ledger) == ["failed"] + ["submitted"] * 12
    assert {ln["origin"] for ln in ledger} == {"backfill"}
    assert not (tmp_path / ".mps-triggers").exists() or not list((tmp_path / ".mps-triggers").iterdir())

    again = run(env, "backfill", f"s3://{media}/", "--report", "second.jsonl", "--format", "json", cwd=tmp_path)
    assert json.loads(again.stdout)["results"] == {"submitted": 0, "duplicate": 0, "skipped": 13, "failed": 1}
    assert len(mps.tasks) == 12
    assert sum(ln["reason"].startswith("already in the ledger") for ln in report(tmp_path / "second.jsonl")) == 12


def test_the_same_session_id_as_the_live_event_even_in_a_versioned_bucket(stack, mps, bucket, tmp_path,
                                                                          handler_env):
    """An object the live path already submitted is a duplicate for the backfill (no ledger here): the backfill
    derives the SessionId from the version id, as the S3 event does."""
    from tests.conftest import sqs_event

    s3, media, _ = bucket
    s3.put_bucket_versioning(Bucket=media, VersioningConfiguration={"Status": "Enabled"})
    put(s3, media, "v/a.mp4", b"first")
    head = s3.head_object(Bucket=media, Key="v/a.mp4")
    app = handler_env(AWS_ENDPOINT_URL=stack.moto.url, MPS_SCHEDULE_ID="20001")
    live = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                         "eventTime": "2026-11-21T03:00:00.000Z", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": media}, "object": {
                             "key": "v/a.mp4", "size": 5, "eTag": head["ETag"].strip('"'),
                             "versionId": head["VersionId"]}}}]}
    assert app.handler(sqs_event(live), None) == {"batchItemFailures": []}
    done = run(command_env(stack, None), "backfill", f"s3://{media}/v/", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"]["duplicate"] == 1 and len(mps.tasks) == 1


def test_kill_9_half_way_then_resume_submits_every_object_exactly_once(stack, mps, bucket, tmp_path):
    s3, media, archive = bucket
    keys = [f"many/{i:03d}.mp4" for i in range(60)]
    for k in keys:
        put(s3, media, k)
    env = command_env(stack, archive)
    args = ["backfill", f"s3://{media}/many/", "--rate", "20", "--concurrency", "4", "--report", "r.jsonl",
            "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "mps_triggers_cli", *args], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(mps.tasks) < 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert 25 <= len(mps.tasks) < 60
    plain = run(env, *args, cwd=tmp_path)
    assert plain.returncode == 2 and "--resume" in plain.stderr  # an interrupted run is never silently redone
    resumed = run(env, *args, "--resume", "--format", "json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    per_object: dict[str, int] = {}
    for t in mps.tasks:
        key = t.body["InputInfo"]["S3InputInfo"]["S3Object"]
        per_object[key] = per_object.get(key, 0) + 1
    assert per_object == {k: 1 for k in keys}  # 0 submitted twice, 0 missing
    accepted = [r for r in mps.requests if r.verdict == "accepted"]
    repeats = [r for r in mps.requests if r.verdict == "InvalidParameterValue.SessionId"]
    # at most what was in flight (4) or done since the last checkpoint: one interval (1 s at 20/s) plus the time
    # its own ledger and report writes took (up to half a second on a loaded machine)
    assert len(accepted) == 60 and len(repeats) <= 4 + 20 * 1.5
    reported = {ln["key"] for ln in report(tmp_path / "r.jsonl") if ln["result"] in ("submitted", "duplicate")}
    assert reported == set(keys)


def test_reprocess_of_ten_keys_creates_ten_tasks_and_running_it_again_creates_none(stack, mps, bucket, tmp_path):
    s3, media, archive = bucket
    keys = [f"re/{i}.mp4" for i in range(10)]
    for k in keys:
        put(s3, media, k)
    env = command_env(stack, archive)
    assert run(env, "backfill", f"s3://{media}/re/", cwd=tmp_path).returncode == 0
    first = {t.session_id for t in mps.tasks}
    assert len(first) == 10
    (tmp_path / "keys.txt").write_text("\n".join(keys[:5]) + "\n")
    args = ["reprocess", *[f"s3://{media}/{k}" for k in keys[5:]], "--from-file", "keys.txt", "--bucket",
            f"s3://{media}", "--report", "re.jsonl", "--format", "json"]
    done = run(env, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"]["submitted"] == 10
    new = [t for t in mps.tasks if t.session_id not in first]
    assert len(new) == 10 and all(t.session_context["g"] == 1 for t in new)
    ledger = [ln for ln in Reader(stack, archive).ledger() if ln["origin"] == "reprocess"]
    assert len(ledger) == 10 and {ln["generation"] for ln in ledger} == {1}
    again = run(env, *args, cwd=tmp_path)
    assert again.returncode == 0 and len(mps.tasks) == 20
    assert json.loads(again.stdout)["results"]["skipped"] == 10
    # the report of a backfill feeds a reprocess (JSON lines), and a third run takes a new generation
    third = run(env, "reprocess", "--from-file", "-", "--generation", "2", "--format", "json", cwd=tmp_path,
                stdin=(tmp_path / "re.jsonl").read_text())
    assert json.loads(third.stdout)["results"]["submitted"] == 10 and len(mps.tasks) == 30


def test_an_s3_inventory_manifest_is_a_source(stack, mps, bucket, tmp_path):
    s3, media, archive = bucket
    for k in ("inv/a b.mp4", "inv/c.mp4"):
        put(s3, media, k)
    etags = {k: s3.head_object(Bucket=media, Key=k)["ETag"].strip('"') for k in ("inv/a b.mp4", "inv/c.mp4")}
    rows = [f'"{media}","inv/a+b.mp4","11","{etags["inv/a b.mp4"]}"', f'"{media}","inv/c.mp4","11","{etags["inv/c.mp4"]}"']
    s3.put_object(Bucket=archive, Key="inventory/data/1.csv.gz", Body=gzip.compress(("\n".join(rows) + "\n").encode()))
    manifest = {"sourceBucket": media, "destinationBucket": f"arn:aws:s3:::{archive}", "version": "2016-11-30",
                "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, ETag",
                "files": [{"key": "inventory/data/1.csv.gz", "size": 1, "MD5checksum": "x"}]}
    s3.put_object(Bucket=archive, Key="inventory/manifest.json", Body=json.dumps(manifest).encode())
    done = run(command_env(stack, None), "backfill", f"s3://{archive}/inventory/manifest.json", "--format", "json",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(t.body["InputInfo"]["S3InputInfo"]["S3Object"] for t in mps.tasks) == ["inv/a b.mp4", "inv/c.mp4"]


def test_a_cos_inventory_manifest_is_a_source(stack, mps, tmp_path):
    """COS inventory (436/33702): CSV rows with AppID and a URL-encoded Key, the manifest in the destination
    bucket, read through the COS SDK."""
    cos = stack.cos("ap-guangzhou")
    media, inventory = (f"{n}-{uuid.uuid4().hex[:6]}-1250000000" for n in ("media", "inv"))
    for b in (media, inventory):
        cos.create_bucket(Bucket=b)
    cos.put_object(Bucket=media, Key="cos inv/a.mp4", Body=b"video")
    etag = cos.head_object(Bucket=media, Key="cos inv/a.mp4")["ETag"].strip('"')
    cos.put_object(Bucket=inventory, Key="inv/data/1.csv",
                   Body=f'"1250000000","{media}","cos%20inv/a.mp4","5","2026-11-20T01:00:00.000Z","{etag}"\n'.encode())
    manifest = {"sourceBucket": media, "destinationBucket": f"qcs::cos:ap-guangzhou::{inventory}",
                "fileFormat": "CSV", "fileSchema": "AppID, Bucket, Key, Size, LastModifiedDate, ETag",
                "files": [{"key": "inv/data/1.csv", "size": 1, "MD5checksum": "x"}]}
    cos.put_object(Bucket=inventory, Key="inv/manifest.json", Body=json.dumps(manifest).encode())
    done = run(command_env(stack, None), "backfill", f"cos://{inventory}/inv/manifest.json", "--region",
               "ap-guangzhou", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [task] = mps.tasks
    assert task.body["InputInfo"]["CosInputInfo"] == {"Bucket": media, "Region": "ap-guangzhou",
                                                      "Object": "/cos inv/a.mp4"}


def test_a_cos_prefix_is_a_source(stack, mps, tmp_path):
    s3 = stack.boto3("s3")
    media = f"media-{uuid.uuid4().hex[:6]}-1250000000"
    s3.create_bucket(Bucket=media)
    put(s3, media, "cos/a.mp4")
    done = run(command_env(stack, None), "backfill", f"cos://{media}/cos/", "--region", "ap-guangzhou",
               "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [task] = mps.tasks
    assert task.body["InputInfo"] == {"Type": "COS", "CosInputInfo": {"Bucket": media, "Region": "ap-guangzhou",
                                                                      "Object": "/cos/a.mp4"}}


def test_via_queue_sends_s3_notifications_the_function_submits(stack, mps, bucket, tmp_path, handler_env):
    s3, media, _ = bucket
    for i in range(3):
        put(s3, media, f"q/{i} x.mp4")
    sqs = stack.boto3("sqs")
    queue = sqs.create_queue(QueueName=f"uploads-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    done = run(command_env(stack, None), "backfill", f"s3://{media}/q/", "--via-queue", queue, "--format", "json",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr and mps.requests == []
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 3
    event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                          "attributes": {}, "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads", "awsRegion": "us-east-1"}
                         for m in messages]}
    app = handler_env(AWS_ENDPOINT_URL=stack.moto.url, MPS_SCHEDULE_ID="20001")
    assert app.handler(event, None) == {"batchItemFailures": []}
    assert sorted(t.body["InputInfo"]["S3InputInfo"]["S3Object"] for t in mps.tasks) == [f"q/{i} x.mp4" for i in range(3)]


@pytest.mark.parametrize("args,env_change,named", [
    (["backfill", "ftp://host/x"], {}, "unknown scheme"),
    (["backfill", "no-such-manifest.json"], {}, "manifest.json"),
    (["backfill", "s3://Bad_Bucket/x"], {}, "not an S3 bucket name"),
    (["backfill", "keys.txt"], {}, "no such file"),
    (["backfill", "s3://media/x", "--rate", "150"], {}, "at most 100"),
    (["backfill", "s3://media/x"], {"MPS_SECRET_ID": None, "MPS_SECRET_KEY": None}, "MPS_SECRET_ID"),
    (["backfill", "s3://media/x"], {"MPS_ROUTES": "[{"}, "MPS_ROUTES"),
    (["reprocess"], {}, "name objects"),
    (["backfill", "s3://media/x", "--env-file", "missing.env"], {}, "--env-file"),
    (["backfill", "s3://media/x", "--resume", "--restart"], {}, "--resume/--restart"),
])
def test_bad_input_exits_2_naming_the_argument_or_variable(stack, tmp_path, args, env_change, named):
    done = run(command_env(stack, None, **env_change), *args, cwd=tmp_path)
    assert done.returncode == 2 and named in done.stderr, done.stderr


def test_a_file_that_is_not_a_manifest_exits_2(stack, tmp_path):
    (tmp_path / "manifest.json").write_text('{"files": "nope"}')
    done = run(command_env(stack, None), "backfill", "manifest.json", cwd=tmp_path)
    assert done.returncode == 2 and "not an inventory manifest" in done.stderr
