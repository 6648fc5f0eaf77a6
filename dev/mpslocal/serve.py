"""A local stack to operate on: ``python -m mpslocal.serve --env-file local.env`` (README "Operate").

Starts moto (S3, SQS, COS buckets, StartMessageMoveTask) and the MPS emulator (100 requests/s, tasks complete and
call back), and sets up what an operator finds on day two, as if the deployment had been running:

- ``s3://media-in`` with 40 videos uploaded before the deployment existed (``old/``), a folder marker, a zero-byte
  file and a text file;
- the archive ``s3://mps-archive/callbacks`` with the callbacks of 6 earlier tasks (two failed), written by the
  archive function (in this process) behind a local function URL, which is also ``MPS_NOTIFY_URL``;
- the upload queue with its DLQ holding 5 S3 notifications that failed after an outage.

It writes every variable the functions and ``mps-triggers`` read (endpoints, keys, routes, ``ARCHIVE_URI``,
``MPS_NOTIFY_KEY``, and ``UPLOAD_DLQ_URL`` for the walkthrough) to ``--env-file`` (dotenv syntax), prints
``ready``, and serves until interrupted.

``--bare`` (``python3 tasks.py stack``) starts the stack alone for ``sam local invoke``: moto on ``--moto-port``
(5055) and the emulator on ``--mps-port`` (5056), listening on ``--host`` (0.0.0.0, so the function containers reach
them), with what ``env.json`` names: the two Secrets Manager secrets (``mps-triggers-local/mps-api``,
``mps-triggers-local/mps-s3``) and the buckets ``media-in`` and ``mps-archive``. It prints the endpoints.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .stack import AWS_REGION, LocalStack

MEDIA, ARCHIVE = "media-in", "mps-archive"
NOTIFY_KEY, S3_KEY_ID, S3_SECRET = "local-notify-key", "AKIALOCALMPSREADER01", "local-s3-secret-key"
ROUTES = [{"name": "videos", "suffixes": [".mp4", ".mov"], "schedule_id": 20001}]


def setup(stack: LocalStack) -> dict[str, str]:
    """Create the buckets, objects, queues and archive; return the environment to write."""
    import httpx

    from .media import make_clip
    from .notifications import notification, task_event
    from .runner import FunctionUrlServer

    s3, sqs = stack.boto3("s3"), stack.boto3("sqs")
    for bucket in (MEDIA, ARCHIVE):
        s3.create_bucket(Bucket=bucket)
    clip = make_clip(0.5, 1)
    for i in range(40):
        s3.put_object(Bucket=MEDIA, Key=f"old/2025/clip {i:02d}.mp4", Body=clip)
    s3.put_object(Bucket=MEDIA, Key="old/2025/", Body=b"")
    s3.put_object(Bucket=MEDIA, Key="old/empty.mp4", Body=b"")
    s3.put_object(Bucket=MEDIA, Key="old/notes.txt", Body=b"not a video")
    dlq = sqs.create_queue(QueueName="mps-triggers-UploadDLQ")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName="mps-triggers-UploadQueue", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})})["QueueUrl"]
    for i in range(5):
        key = f"outage/clip {i}.mp4"
        s3.put_object(Bucket=MEDIA, Key=key, Body=clip)
        head = s3.head_object(Bucket=MEDIA, Key=key)
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": AWS_REGION,
            "eventTime": "2026-11-20T03:00:00.000Z", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": MEDIA}, "object": {"key": key.replace(" ", "+"), "size": len(clip),
                                                          "eTag": head["ETag"].strip('"')}}}]}))
    env = {**stack.environment(), "MPS_ROUTES": json.dumps(ROUTES), "MPS_S3_SECRET_ID": S3_KEY_ID,
           "MPS_S3_SECRET_KEY": S3_SECRET, "ARCHIVE_URI": f"s3://{ARCHIVE}/callbacks", "MPS_NOTIFY_KEY": NOTIFY_KEY,
           "UPLOAD_QUEUE_URL": queue, "UPLOAD_DLQ_URL": dlq}
    os.environ.update(env)  # the archive function below runs in this process, configured as deployed
    from mps_triggers import archive_job

    archive_job.default_job.cache_clear()
    server = FunctionUrlServer(lambda event, context: archive_job.run(event, context).respond())
    env["MPS_NOTIFY_URL"] = server.url
    for i in range(6):
        key = f"old/2024/earlier {i}.mp4"
        req = {"InputInfo": {"Type": "AWS-S3", "S3InputInfo": {"S3Bucket": MEDIA, "S3Object": key,
                                                                "S3Region": AWS_REGION}}, "ScheduleId": 20001}
        event_type, event = task_event(req, f"1250000000-ScheduleTask-earlier{i}tt7", fail_index=0 if i % 3 == 0 else None)
        context = json.dumps({"v": 1, "src": "s3", "b": MEDIA, "k": key, "r": "videos"})
        body = notification(event_type, event, f"mt1-earlier{i}", context, NOTIFY_KEY)
        httpx.post(server.url, json=body, timeout=10).raise_for_status()
    setup.server = server  # type: ignore[attr-defined]  # keep it serving
    return env


def setup_bare(stack: LocalStack) -> dict[str, str]:
    """What ``env.json`` expects of the stack: the secrets it names (MPS_CREDENTIALS_SECRET_ARN takes a name as
    well as an ARN; the emulator's API key, and an AWS key for MPS to read S3 with) and the buckets. Returns the
    endpoints."""
    sm, s3 = stack.boto3("secretsmanager"), stack.boto3("s3")
    secret_id, (secret_key, _token) = next(iter(stack.mps.credentials.items()))
    stack.mps.aws_keys = {S3_KEY_ID: S3_SECRET}
    for name, doc in {"mps-triggers-local/mps-api": {"SecretId": secret_id, "SecretKey": secret_key},
                      "mps-triggers-local/mps-s3": {"S3SecretId": S3_KEY_ID, "S3SecretKey": S3_SECRET}}.items():
        sm.create_secret(Name=name, SecretString=json.dumps(doc))
    for bucket in (MEDIA, ARCHIVE):
        s3.create_bucket(Bucket=bucket)
    return {"AWS_ENDPOINT_URL": stack.moto.url, "MPS_ENDPOINT": stack.mps.url}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mpslocal.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--env-file", default="local.env", help="where to write the environment (default local.env)")
    p.add_argument("--bare", action="store_true", help="the stack alone, for sam local invoke --env-vars env.json")
    p.add_argument("--host", default="0.0.0.0", help="--bare: the address to listen on (default 0.0.0.0)")
    p.add_argument("--moto-port", type=int, default=5055, help="--bare: moto's port (default 5055, as env.json)")
    p.add_argument("--mps-port", type=int, default=5056, help="--bare: the emulator's port (default 5056)")
    args = p.parse_args(argv)
    if args.bare:
        with LocalStack(rate_limit=100, complete_after=0.5, host=args.host, moto_port=args.moto_port,
                        mps_port=args.mps_port) as stack:
            endpoints = setup_bare(stack)
            print(f"ready: moto (S3, SQS, Secrets Manager) {endpoints['AWS_ENDPOINT_URL']}, MPS emulator "
                  f"{endpoints['MPS_ENDPOINT']}, listening on {args.host}", flush=True)
            print("  sam local invoke SubmitFunction --env-vars env.json -e events/s3_put.json "
                  "(Linux: add --add-host host.docker.internal:host-gateway)", flush=True)
            return _serve()
    with LocalStack(rate_limit=100, complete_after=0.5) as stack:
        env = setup(stack)
        with open(args.env_file, "w", encoding="utf-8") as f:
            f.write("# written by python -m mpslocal.serve: the local stack's endpoints and keys\n")
            for k, v in env.items():
                f.write(f"{k}='{v}'\n")
        print(f"ready: moto {stack.moto.url}, MPS emulator {stack.mps.url}; environment in {args.env_file}",
              flush=True)
        return _serve()


def _serve() -> int:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
