"""End to end on the local stack: real S3→SQS notifications from moto, the SQS event-source runner, the COS
trigger runner with the real COS SDK, the submit handler, and the MPS emulator over HTTP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from mpslocal.runner import CosTrigger, SqsEventSourceMapping
from tests.conftest import ROOT

ROUTES = [
    {"name": "broken", "prefix": "broken/", "tasks": {"MediaProcessTask": {"TranscodeTaskSet": [{"Definiton": 1}]}}},
    {"name": "videos", "suffixes": [".mp4", ".mov"], "schedule_id": 20001},
]


def s3_queue(stack, max_receive=3):
    """A fresh bucket with S3→SQS notifications and a DLQ; returns (s3, sqs, bucket, queue_url, dlq_url)."""
    s3, sqs = stack.boto3("s3"), stack.boto3("sqs")
    name = f"it-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    q = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1", "RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    return s3, sqs, name, q, dlq


def count(sqs, url):
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def test_s3_uploads_through_sqs_submitted_exactly_once(stack, mps, handler_env):
    app = handler_env()
    s3, sqs, bucket, q, dlq = s3_queue(stack)
    keys = ["in/a b.mp4", "in/c+d.mp4", "in/100%.MOV", "in/视频.mp4", "in/folder/", "mps-output/in/a b.mp4"]
    for i, k in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=k, Body=b"" if k.endswith("/") else f"clip {i}".encode())
    mapping = SqsEventSourceMapping(sqs, q, app.handler)
    stats = mapping.drain(max_seconds=30)
    submitted = sorted(t.body["InputInfo"]["S3InputInfo"]["S3Object"] for t in mps.tasks)
    assert submitted == sorted(["in/a b.mp4", "in/c+d.mp4", "in/100%.MOV", "in/视频.mp4"])
    assert stats.function_errors == 0 and count(sqs, dlq) == 0

    mapping.redeliver(list(mapping.bodies))     # every message again
    for i, k in enumerate(keys[:4]):              # and the same uploads again
        s3.put_object(Bucket=bucket, Key=k, Body=f"clip {i}".encode())
    mapping.drain(max_seconds=30)
    assert len(mps.tasks) == 4 and count(sqs, dlq) == 0


def test_a_permanently_failing_object_lands_in_the_dlq_and_nothing_else_does(stack, mps, handler_env):
    app = handler_env(MPS_SCHEDULE_ID=None, MPS_ROUTES=json.dumps(ROUTES))
    s3, sqs, bucket, q, dlq = s3_queue(stack, max_receive=3)
    s3.put_object(Bucket=bucket, Key="broken/x.mp4", Body=b"x")
    s3.put_object(Bucket=bucket, Key="ok/y.mp4", Body=b"y")
    stats = SqsEventSourceMapping(sqs, q, app.handler).drain(max_seconds=60)
    assert [t.body["InputInfo"]["S3InputInfo"]["S3Object"] for t in mps.tasks] == ["ok/y.mp4"]
    msgs = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert len(msgs) == 1 and "broken%2Fx.mp4" in msgs[0]["Body"]
    assert stats.reported_failures == 3  # received maxReceiveCount times, reported failed each time


def test_throttled_burst_through_sqs_loses_nothing(stack, mps, handler_env):
    """60 uploads against a 4 requests/s limit, under a new container's first allowance of 5: throttled records retry
    inside the invocation or are redelivered, and the container's pacing settles under the limit."""
    app = handler_env(MPS_MAX_CONCURRENCY="10")
    mps.rate_limit = 4
    s3, sqs, bucket, q, dlq = s3_queue(stack, max_receive=5)
    for i in range(60):
        s3.put_object(Bucket=bucket, Key=f"burst/{i:03d}.mp4", Body=f"clip {i}".encode())
    SqsEventSourceMapping(sqs, q, app.handler).drain(max_seconds=90)
    assert sorted(t.body["InputInfo"]["S3InputInfo"]["S3Object"] for t in mps.tasks) == \
        [f"burst/{i:03d}.mp4" for i in range(60)]
    assert count(sqs, dlq) == 0
    assert any(r.verdict == "RequestLimitExceeded" for r in mps.requests)


def test_cos_trigger_with_the_real_cos_sdk(stack, mps, handler_env):
    app = handler_env()
    bucket = f"it-{uuid.uuid4().hex[:8]}-1250000000"
    stack.boto3("s3").create_bucket(Bucket=bucket)
    trigger = CosTrigger(stack.cos("ap-chengdu"), bucket, "ap-chengdu", app.main_handler)
    for key in ("videos/产品 演示.mp4", "videos/a+b #1.mov", "videos/", "mps-output/videos/x.mp4"):
        trigger.put(key, b"" if key.endswith("/") else key.encode())
    trigger.deliver("videos/产品 演示.mp4")   # SCF redelivers the async event
    inputs = sorted(t.body["InputInfo"]["CosInputInfo"]["Object"] for t in mps.tasks)
    assert inputs == ["/videos/a+b #1.mov", "/videos/产品 演示.mp4"]
    assert all(t.body["InputInfo"]["CosInputInfo"]["Region"] == "ap-chengdu" for t in mps.tasks)
    assert all(inv.error is None and inv.attempts == 1 for inv in trigger.invocations)
    assert stack.moto.shim.cos_requests >= 8  # COS-signed requests really went through moto


def test_cos_trigger_failure_is_raised_so_scf_retries(stack, mps, handler_env):
    app = handler_env(MPS_MAX_ATTEMPTS="1")
    bucket = f"it-{uuid.uuid4().hex[:8]}-1250000000"
    stack.boto3("s3").create_bucket(Bucket=bucket)
    trigger = CosTrigger(stack.cos(), bucket, "ap-guangzhou", app.main_handler)
    mps.inject("InternalError", times=2)
    trigger.put("v/a.mp4", b"clip")
    [inv] = trigger.invocations
    assert inv.attempts == 3 and inv.error is None and len(mps.tasks) == 1


def test_demo_command_passes():
    """The README's main command: the whole loop on the local stack, exit code 0."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env = {k: v for k, v in env.items() if not k.startswith(("MPS_", "AWS_ENDPOINT", "COS_ENDPOINT"))}
    out = subprocess.run([sys.executable, "-m", "mpslocal.demo"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK: every media object was submitted exactly once" in out.stdout
    assert "0 new MPS tasks" in out.stdout
