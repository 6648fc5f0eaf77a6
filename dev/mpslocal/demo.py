"""The main job, end to end on the local stack: uploads to S3 and COS → submit job → MPS emulator.

Run with ``python3 tasks.py demo``. It starts moto (S3, SQS, COS buckets) and the MPS emulator, creates an S3 input
bucket with an S3→SQS notification (and DLQ) and a COS input bucket, uploads real MP4 clips under awkward keys
(spaces, ``+``, ``%``, non-ASCII, capital suffix, multipart) plus a folder marker, a zero-byte file, a text file and
an object under the output dir, and runs ``functions/submit/app.py`` the way Lambda's SQS event source mapping and
SCF's COS trigger would. Then it uploads and redelivers everything again.

It prints object → rule → ScheduleId or task → SessionId → TaskId, the skipped objects with their reasons, and
exits non-zero if any object was neither submitted exactly once nor deliberately skipped, if a redelivery
submitted anything new, if anything reached the DLQ, or if the emulator saw an unsigned or invalid request.
Handler logs (JSON lines) go to ``.demo/submit.log``; the emulator's task records to ``.demo/mps-tasks.json``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .media import make_clip
from .runner import CosTrigger, SqsEventSourceMapping
from .stack import AWS_REGION, LocalStack

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".demo"
S3_BUCKET = "mps-demo-input"
COS_BUCKET = "mps-demo-1250000000"
COS_REGION = "ap-guangzhou"
SCHEDULE_ID = 20001
ROUTES = [
    {"name": "cos-inline-transcode", "storage": "cos", "prefix": "inline/", "suffixes": [".mp4"],
     "tasks": {"MediaProcessTask": {"TranscodeTaskSet": [
         {"Definition": 100030, "OutputObjectPath": "{inputName}_{definition}.{format}"}]}}},
    {"name": "videos", "suffixes": [".mp4", ".mov"], "schedule_id": SCHEDULE_ID},
]


@dataclass
class Upload:
    storage: str
    key: str
    body: bytes
    expect: str  # "submit" or the start of the expected skip reason
    multipart: bool = False

    @property
    def bucket(self) -> str:
        return S3_BUCKET if self.storage == "s3" else COS_BUCKET

    @property
    def label(self) -> str:
        return f"{self.storage}://{self.bucket}/{self.key}"


def uploads() -> list[Upload]:
    clips = [make_clip(1.0, i) for i in range(7)]
    return [
        Upload("s3", "uploads/red flower.mp4", clips[0], "submit"),
        Upload("s3", "uploads/a+b=c 100%.mp4", clips[1], "submit"),
        Upload("s3", "uploads/视频 测试.mp4", clips[2], "submit"),
        Upload("s3", "uploads/Clip Two.MOV", clips[3], "submit"),
        Upload("s3", "uploads/multipart clip.mp4", clips[4], "submit", multipart=True),
        Upload("s3", "uploads/2026/", b"", "folder marker"),
        Upload("s3", "uploads/empty.mp4", b"", "zero-byte"),
        Upload("s3", "uploads/readme.txt", b"not a video\n", "no route"),
        Upload("s3", "mps-output/uploads/red flower_transcode.mp4", clips[0], "recursion guard"),
        Upload("cos", "uploads/产品 演示.mp4", clips[5], "submit"),
        Upload("cos", "inline/c+d #1.mp4", clips[6], "submit"),
        Upload("cos", "uploads/folder/", b"", "folder marker"),
        Upload("cos", "mps-output/inline/c+d #1_100030.mp4", clips[6], "recursion guard"),
    ]


def load_handler(path: Path, name: str) -> Callable[[dict[str, Any], Any], Any]:
    """Import a function's app.py the way Lambda does (its folder is the code root)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


class LogCapture:
    """Sends the handler's JSON log lines to a file and keeps them for the report."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w", encoding="utf-8")
        self.lines: list[dict[str, Any]] = []

    def wrap(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        def invoke(event: dict[str, Any], context: Any) -> Any:
            start = self.file.tell()
            try:
                with contextlib.redirect_stdout(self.file):
                    return handler(event, context)
            finally:
                self.file.flush()
                with open(self.file.name, encoding="utf-8") as f:
                    f.seek(start)
                    self.lines.extend(json.loads(line) for line in f if line.startswith("{"))
        return invoke


def setup_aws(stack: LocalStack) -> tuple[Any, Any, str, str]:
    s3, sqs = stack.boto3("s3"), stack.boto3("sqs")
    s3.create_bucket(Bucket=S3_BUCKET)
    dlq = sqs.create_queue(QueueName="mps-demo-uploads-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName="mps-demo-uploads", Attributes={
        "VisibilityTimeout": "2",  # short locally, so redeliveries happen within the demo
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=S3_BUCKET, NotificationConfiguration={"QueueConfigurations": [
        {"Id": "mps-uploads", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    return s3, sqs, queue, dlq


def put_s3(s3: Any, up: Upload) -> None:
    if not up.multipart:
        s3.put_object(Bucket=S3_BUCKET, Key=up.key, Body=up.body)
        return
    mpu = s3.create_multipart_upload(Bucket=S3_BUCKET, Key=up.key)
    part = s3.upload_part(Bucket=S3_BUCKET, Key=up.key, UploadId=mpu["UploadId"], PartNumber=1, Body=up.body)
    s3.complete_multipart_upload(Bucket=S3_BUCKET, Key=up.key, UploadId=mpu["UploadId"],
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})


def configure(stack: LocalStack) -> None:
    os.environ.update(stack.environment())
    os.environ.update({
        "MPS_ROUTES": json.dumps(ROUTES),
        "MPS_OUTPUT_DIR": "/mps-output/",
        "MPS_S3_SECRET_ID": "AKIADEMOMPSREADER0001",
        "MPS_S3_SECRET_KEY": "demo-s3-secret-key-never-logged",
        "MPS_NOTIFY_KEY": "demo-notify-key-never-logged",
        "MPS_NOTIFY_URL": "https://callbacks.example.invalid/mps",
    })
    os.environ.pop("MPS_SCHEDULE_ID", None)


def run(stack: LocalStack) -> int:
    OUT.mkdir(exist_ok=True)
    configure(stack)
    logs = LogCapture(OUT / "submit.log")
    handler = logs.wrap(load_handler(ROOT / "functions" / "submit" / "app.py", "submit_app"))
    s3, sqs, queue, dlq = setup_aws(stack)
    stack.boto3("s3").create_bucket(Bucket=COS_BUCKET)
    cos = CosTrigger(stack.cos(COS_REGION), COS_BUCKET, COS_REGION, handler)
    mapping = SqsEventSourceMapping(sqs, queue, handler, batch_size=10, timeout=60, region=AWS_REGION)

    print("making MP4 clips with ffmpeg ...", flush=True)
    items = uploads()
    print(f"round 1: uploading {len(items)} objects ({sum(u.storage == 's3' for u in items)} to S3, "
          f"{sum(u.storage == 'cos' for u in items)} to COS)", flush=True)
    t0 = time.monotonic()
    for up in items:
        put_s3(s3, up) if up.storage == "s3" else cos.put(up.key, up.body)
    stats1 = mapping.drain()
    first = len(logs.lines)
    round1 = time.monotonic() - t0
    tasks_after_first = len(stack.mps.tasks)

    print("round 2: the same uploads again, every COS event and every round-1 SQS message delivered again",
          flush=True)
    mapping.redeliver(list(mapping.bodies))
    for up in items:
        put_s3(s3, up) if up.storage == "s3" else cos.put(up.key, up.body)
        if up.storage == "cos":
            cos.deliver(up.key)
    mapping.drain()
    second = logs.lines[first:]

    return report(stack, items, logs.lines[:first], second, tasks_after_first, stats1, sqs, dlq, round1)


def report(stack: LocalStack, items: list[Upload], first: list[dict[str, Any]], second: list[dict[str, Any]],
           tasks_after_first: int, stats: Any, sqs: Any, dlq: str, seconds: float) -> int:
    problems: list[str] = []
    tasks = stack.mps.tasks
    by_object: dict[tuple[str, str], list[Any]] = {}
    for t in tasks:
        ctx = t.session_context or {}
        by_object.setdefault((ctx.get("b"), ctx.get("k")), []).append(t)
    outcome: dict[tuple[str, str], dict[str, Any]] = {}
    for line in first:
        if line.get("msg") in ("submitted", "skipped", "duplicate", "submit failed"):
            outcome.setdefault((line["bucket"], line["key"]), line)

    rows = []
    for up in items:
        key = (up.bucket, up.key)
        got = outcome.get(key)
        submitted = by_object.get(key, [])
        if up.expect == "submit":
            if len(submitted) != 1:
                problems.append(f"{up.label}: submitted {len(submitted)} times, expected exactly once")
            if submitted:
                t = submitted[0]
                target = f"ScheduleId {t.body['ScheduleId']}" if "ScheduleId" in t.body else \
                    "+".join(k for k in t.body if k.endswith("Task"))
                rows.append((up.label, (t.session_context or {}).get("r", "?"), target, t.session_id, t.task_id))
        else:
            if submitted:
                problems.append(f"{up.label}: submitted but should have been skipped ({up.expect})")
            if not got or got.get("msg") != "skipped" or not got.get("reason", "").startswith(up.expect):
                problems.append(f"{up.label}: expected skip '{up.expect}', got {got and got.get('reason') or got}")
    for key, ts in by_object.items():
        if key not in {(u.bucket, u.key) for u in items}:
            problems.append(f"unexpected task for {key}: {[t.task_id for t in ts]}")

    print(f"\nSubmitted ({len(rows)} objects, {len(tasks)} MPS tasks, round 1 took {seconds:.1f}s):")
    _table(["object", "rule", "ScheduleId / task", "SessionId", "TaskId"], rows)
    skipped = [(f"{ln['storage']}://{ln['bucket']}/{ln['key']}", ln["reason"]) for ln in first if ln.get("msg") == "skipped"]
    print(f"\nSkipped ({len(skipped)}):")
    _table(["object", "reason"], skipped)
    ignored = [(ln["record"], ln["reason"]) for ln in first if ln.get("msg") == "ignored"]
    dupes1 = [ln for ln in first if ln.get("msg") == "duplicate"]
    print(f"\nIgnored events ({len(ignored)}): " + ", ".join(f"{r} ({why})" for r, why in ignored))
    if dupes1:
        print(f"Duplicate deliveries in round 1, rejected by SessionId: "
              + ", ".join(f"{d['storage']}://{d['bucket']}/{d['key']}" for d in dupes1))
    if not any(why == "s3:TestEvent" for _, why in ignored):
        problems.append("the s3:TestEvent message was not acknowledged as ignored")

    new_tasks = len(tasks) - tasks_after_first
    dup2 = sum(1 for ln in second if ln.get("msg") == "duplicate")
    sub2 = sum(1 for ln in second if ln.get("msg") == "submitted")
    print(f"\nRound 2 (same uploads again + redelivered events): {dup2} duplicates rejected by MPS SessionId, "
          f"{sub2} submitted, {new_tasks} new MPS tasks")
    if new_tasks or sub2:
        problems.append(f"redelivery submitted {sub2} objects and created {new_tasks} new tasks (expected 0)")

    failed = [ln for ln in first + second if ln.get("msg") in ("submit failed", "bad record", "internal error")]
    for ln in failed:
        problems.append(f"handler reported {ln['msg']}: {ln.get('key') or ln.get('record')}: {ln.get('error')}")
    dlq_count = int(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
                    ["Attributes"]["ApproximateNumberOfMessages"])
    reqs = stack.mps.requests
    bad = [r for r in reqs if not r.signed or r.verdict not in ("accepted", "InvalidParameterValue.SessionId")]
    print(f"SQS: {stats.invocations} invocations, {stats.received} messages received, {stats.deleted} deleted, "
          f"{stats.reported_failures} reported as failed; DLQ holds {dlq_count}")
    print(f"MPS emulator: {len(reqs)} requests, all TC3-signed and valid: {'yes' if not bad else 'NO'} "
          f"({sum(r.verdict == 'accepted' for r in reqs)} accepted, "
          f"{sum(r.verdict == 'InvalidParameterValue.SessionId' for r in reqs)} duplicate SessionId)")
    if dlq_count:
        problems.append(f"{dlq_count} messages in the DLQ")
    for r in bad:
        problems.append(f"emulator answered {r.verdict} (signed={r.signed})")
    _leaks(problems)

    (OUT / "mps-tasks.json").write_text(json.dumps(
        [{"TaskId": t.task_id, "SessionId": t.session_id, "Request": _mask(t.body)} for t in tasks],
        indent=2, ensure_ascii=False))
    print(f"\nHandler logs: {OUT / 'submit.log'}   MPS task records: {OUT / 'mps-tasks.json'}")
    if problems:
        print("\nFAILED:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("\nOK: every media object was submitted exactly once; every other object was skipped with a reason.")
    return 0


def _leaks(problems: list[str]) -> None:
    text = (OUT / "submit.log").read_text(encoding="utf-8")
    for secret in ("demo-s3-secret-key-never-logged", "demo-notify-key-never-logged", os.environ["MPS_SECRET_KEY"]):
        if secret in text:
            problems.append("a secret appeared in the handler logs")


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if ("Secret" in k or k == "NotifyKey") else _mask(v) for k, v in value.items()}
    return [_mask(v) for v in value] if isinstance(value, list) else value


def _table(header: list[str], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        print("  (none)")
        return
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(header))]
    for n, r in enumerate(cells):
        print("  " + "  ".join(c + " " * (widths[i] - _width(c)) for i, c in enumerate(r)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _width(s: str) -> int:
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def main() -> int:
    print("starting the local stack (moto: S3, SQS, COS buckets; MPS emulator) ...", flush=True)
    with LocalStack() as stack:
        print(f"  moto {stack.moto.url}   MPS emulator {stack.mps.url}", flush=True)
        return run(stack)


if __name__ == "__main__":
    sys.exit(main())
