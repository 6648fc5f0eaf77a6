"""`mps-triggers redrive` and `replay` as the installed command (a subprocess) against moto over HTTP (SQS, with
the local stack's StartMessageMoveTask), the archive function behind a local function URL, and a chat robot."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from mpslocal.chat import ChatRobot
from mpslocal.runner import FunctionUrlServer
from mpslocal.stack import AWS_KEYS
from tests.conftest import NOTIFY_KEY_EVENTS, s3_body
from tests.test_digest import callbacks, push_failures


def command_env(stack, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MPS_", "ARCHIVE_", "TENCENTCLOUD_", "WEBHOOK_", "CALLBACK_"))}
    env.update(AWS_KEYS)
    env.update({"AWS_ENDPOINT_URL": stack.moto.url, "COS_ENDPOINT_URL": stack.moto.url,
                "AWS_DEFAULT_REGION": "us-east-1"})
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def run(env, *args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mps_triggers_cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def queues(sqs, with_source: bool = True):
    name = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dlq-{name}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attrs = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})} if with_source else {}
    source = sqs.create_queue(QueueName=f"uploads-{name}", Attributes=attrs)["QueueUrl"]
    return dlq, dlq_arn, source


def bodies(sqs, url) -> list[str]:
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        if not got:
            return out
        out.extend(m["Body"] for m in got)


def depth(sqs, url) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])


def test_redrive_dry_run_then_a_message_move_task_back_to_the_source_queue(stack, tmp_path):
    sqs = stack.boto3("sqs")
    dlq, dlq_arn, source = queues(sqs)
    sent = [json.dumps(s3_body(f"failed/{i} red+flower.mp4")) for i in range(30)]
    for body in sent:
        sqs.send_message(QueueUrl=dlq, MessageBody=body)
    env = command_env(stack)
    plan = run(env, "redrive", dlq, "--dry-run", "--format", "json", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    assert doc["messages"] == 30 and doc["method"] == "StartMessageMoveTask" and doc["destination"] == source
    assert doc["sample"] and all(s.startswith("s3://media-in/failed/") and "red flower" in s for s in doc["sample"])
    assert depth(sqs, dlq) == 30 and depth(sqs, source) == 0  # a dry run hides nothing, moves nothing
    done = run(env, "redrive", dlq_arn, "--rate", "100", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["moved"] == 30 and result["status"] == "COMPLETED" and result["method"] == "StartMessageMoveTask"
    assert sorted(bodies(sqs, source)) == sorted(sent) and depth(sqs, dlq) == 0


def test_redrive_of_a_queue_without_an_sqs_source_receives_sends_and_deletes(stack, tmp_path):
    sqs = stack.boto3("sqs")
    failures, _, destination = queues(sqs, with_source=False)  # e.g. a Lambda OnFailure destination
    sent = [json.dumps({"n": i}) for i in range(23)]
    for body in sent:
        sqs.send_message(QueueUrl=failures, MessageBody=body,
                         MessageAttributes={"origin": {"DataType": "String", "StringValue": "lambda"}})
    env = command_env(stack)
    refused = run(env, "redrive", failures, cwd=tmp_path)
    assert refused.returncode == 2 and "--to" in refused.stderr and depth(sqs, failures) == 23
    done = run(env, "redrive", failures, "--to", destination, "--rate", "200", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["method"] == "receive-send-delete" and result["moved"] == 23 and result["failed"] == 0
    got = sqs.receive_message(QueueUrl=destination, MaxNumberOfMessages=1, MessageAttributeNames=["All"])["Messages"]
    assert got[0]["MessageAttributes"]["origin"]["StringValue"] == "lambda"
    assert sorted([got[0]["Body"], *bodies(sqs, destination)]) == sorted(sent) and depth(sqs, failures) == 0


def test_redrive_manual_path_on_a_real_dlq_and_an_unknown_queue(stack, tmp_path):
    sqs = stack.boto3("sqs")
    dlq, _, source = queues(sqs)
    for i in range(5):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"m{i}")
    env = command_env(stack)
    done = run(env, "redrive", dlq, "--manual", "--format", "json", cwd=tmp_path)
    assert json.loads(done.stdout)["method"] == "receive-send-delete"
    # received, not counted: moto's ApproximateNumberOfMessages right after SendMessageBatch reads 0 now and then
    assert sorted(bodies(sqs, source)) == [f"m{i}" for i in range(5)] and depth(sqs, dlq) == 0
    unknown = run(env, "redrive", f"{stack.moto.url}/123456789012/no-such-queue", cwd=tmp_path)
    assert unknown.returncode == 2 and "no such queue" in unknown.stderr


@pytest.fixture
def archived(archive):
    """An archive holding 6 signed-key callbacks (two failed), and its function behind a local function URL."""
    app, reader = archive()
    event = callbacks([f"uploads/r{i}.mp4" for i in range(6)])
    assert app.handler(event, None) == {"batchItemFailures": []}
    server = FunctionUrlServer(app.handler)
    yield app, reader, server, event
    server.stop()


def test_replay_dry_run_count_is_what_is_sent_and_the_archive_gains_no_new_line_ids(stack, archived, tmp_path):
    app, reader, server, event = archived
    before = {x["id"] for lines in reader.objects().values() for x in lines}
    env = command_env(stack, ARCHIVE_URI=f"s3://{reader.bucket}/callbacks", MPS_NOTIFY_KEY=NOTIFY_KEY_EVENTS)
    plan = run(env, "replay", "--to", server.url, "--dry-run", "--format", "json", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["to_send"] == 6
    failed = run(env, "replay", "--to", server.url, "--failed", "--dry-run", "--format", "json", cwd=tmp_path)
    assert json.loads(failed.stdout)["to_send"] == 2
    done = run(env, "replay", "--to", server.url, "--rate", "50", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sent"] == 6
    assert [status for status, _ in server.answers] == [200] * 6  # signed again: the function accepted each
    after = reader.objects()
    assert len(after) > 1 and {x["id"] for lines in after.values() for x in lines} == before


def test_replay_without_the_notify_key_is_refused_by_the_function(stack, archived, tmp_path):
    _, reader, server, _ = archived
    env = command_env(stack, ARCHIVE_URI=f"s3://{reader.bucket}/callbacks")
    done = run(env, "replay", "--to", server.url, "--task-id", "nope", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["sent"] == 0  # nothing matched, nothing sent
    done = run(env, "replay", "--to", server.url, "--format", "json", cwd=tmp_path)
    assert done.returncode == 1 and json.loads(done.stdout)["failed"] == 6  # unsigned: 401 from the function


def test_replay_push_sends_digests_and_failed_pushes_are_sent_again(stack, archive, tmp_path):
    with ChatRobot("wecom") as robot:
        wrong = robot.url.replace(robot.key, "the-configured-key-000")
        app, reader = archive(WEBHOOK_URL=wrong, WEBHOOK_FORMAT="wecom")
        for b in range(3):
            assert app.handler(callbacks([f"uploads/p{b}-{i}.mp4" for i in range(2)]), None) == {
                "batchItemFailures": []}
        recorded = push_failures(reader)
        assert len(recorded) == 3 and not robot.delivered
        env = command_env(stack, ARCHIVE_URI=f"s3://{reader.bucket}/callbacks", WEBHOOK_URL=robot.url,
                          WEBHOOK_FORMAT="wecom")
        again = run(env, "replay", "--failed-pushes", "--format", "json", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert sorted(m.text for m in robot.delivered) == sorted(f["body"]["markdown"]["content"] for f in recorded)
        push = run(env, "replay", "--push", "--digest-size", "4", "--format", "json", cwd=tmp_path)
        assert push.returncode == 0 and json.loads(push.stdout)["sent"] == 2  # 6 callbacks, 4 per digest
        assert "MPS task callbacks: 4" in robot.delivered[-2].text and "callbacks: 2" in robot.delivered[-1].text


@pytest.mark.parametrize("args,named", [
    (["replay", "--to", "https://x", "--since", "yesterday"], "--since"),
    (["replay", "--push"], "WEBHOOK_URL"),
    (["replay", "--to", "ftp://x"], "--to"),
    (["redrive", "not-a-queue"], "QUEUE"),
])
def test_bad_input_exits_2(stack, tmp_path, args, named):
    env = command_env(stack, ARCHIVE_URI="s3://some-archive/callbacks")
    done = run(env, *args, cwd=tmp_path)
    assert done.returncode == 2 and named in done.stderr, done.stderr


def test_replay_needs_an_archive(stack, tmp_path):
    done = run(command_env(stack), "replay", "--to", "https://x", cwd=tmp_path)
    assert done.returncode == 2 and "ARCHIVE_URI" in done.stderr
