"""Load and fault runs on the local stack (dev-only), shared by ``bench/burst.py``, ``bench/archive_faults.py`` and
the reduced CI versions in ``tests/test_reliability.py``.

:func:`run_burst`: uploads through the S3 queue and through the COS trigger, submitted by several function
containers at once (Lambda's ``MaximumConcurrency``, SCF's concurrent async invocations) against the emulator's
100 requests/s limit with injected throttling, 5xx and timeouts. Counts, by the emulator's SessionId records, what
was submitted exactly once, twice, or never (and then whether it is in a DLQ with a reason).

:func:`run_archive`: notifications delivered through SQS (batches of up to 100) and HTTP (a function URL), a share
of them twice, while a share of the archive bucket's PUTs fail. Counts callback ids missing from the archive,
duplicate lines, objects and lines/s.

Locally the function timeout and the visibility timeout are scaled down (20 s and 40 s instead of 60 s and 360 s),
so redeliveries happen within the run.
"""
from __future__ import annotations

import json
import os
import queue
import re
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from .container import FunctionContainer, load_app
from .emulator import FaultPlan
from .runner import CosTrigger, FunctionUrlServer, SqsEventSourceMapping
from .stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]


def _queue(sqs: Any, name: str, visibility: int, max_receive: int = 5) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive)})})["QueueUrl"]
    return url, dlq


def _send_all(sqs: Any, url: str, bodies: list[str], per_second: float = 0.0) -> None:
    """Send ``bodies`` to the queue in batches of 10, all at once or at ``per_second`` messages a second."""
    for i in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(j), "MessageBody": b}
                                                      for j, b in enumerate(bodies[i:i + 10])])
        if per_second:
            time.sleep(10 / per_second)


def _drain_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        if not got:
            return out
        out.extend(got)
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(got)])


# --- burst ---------------------------------------------------------------------------------------------------------

@dataclass
class BurstResult:
    """What a burst run measured (see :func:`run_burst`)."""

    uploads_s3: int
    uploads_cos: int
    submitted_once: int = 0
    submitted_twice_or_more: int = 0
    lost: int = 0
    in_dlq: int = 0
    upload_seconds: float = 0.0
    seconds: float = 0.0
    ideal_seconds: float = 0.0
    accepted_per_s: float = 0.0
    limit_fraction: float = 0.0
    sustained_per_s: float = 0.0
    sustained_fraction: float = 0.0
    mps_requests: int = 0
    rejected_by_limit: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    client_retries: int = 0
    duplicated_uploads: int = 0
    sqs_redeliveries: int = 0
    scf_retries: int = 0
    lost_examples: list[str] = field(default_factory=list)
    per_second: list[list[int]] = field(default_factory=list)  # [accepted, refused by the limit, injected] each s
    seconds_at_limit: int = 0
    seconds_with_acceptances: int = 0
    busy_s3: float = 0.0
    busy_cos: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ContainerPool:
    """Invokes whichever of ``containers`` is idle, waiting for one when all are busy: SCF hands each event to an
    idle instance of the function, so one slow instance does not hold up the events behind it."""

    def __init__(self, containers: list[FunctionContainer]) -> None:
        self._idle: queue.Queue[FunctionContainer] = queue.Queue()
        for c in containers:
            self._idle.put(c)

    def __call__(self, event: Any, context: Any = None) -> Any:
        container = self._idle.get()
        try:
            return container.invoke(event, context)
        finally:
            self._idle.put(container)


def run_burst(s3_uploads: int = 10000, cos_uploads: int = 2000, concurrency: int = 4, throttle: float = 0.10,
              http5xx: float = 0.02, timeout: float = 0.01, drop: float = 0.0, rate_limit: int = 100,
              max_seconds: float = 900.0, log_dir: Path | None = None, seed: int = 1,
              latency: float = 0.0, batch_size: int = 10, function_timeout: float = 20.0,
              duplicate_uploads: float = 0.0) -> BurstResult:
    """Run a burst; see the module docstring. ``concurrency`` containers per platform; ``latency`` seconds are added
    to every MPS answer (the round trip from an AWS region to MPS)."""
    log_dir = log_dir or ROOT / ".demo" / "burst"
    log_dir.mkdir(parents=True, exist_ok=True)
    for f in log_dir.glob("*.log"):
        f.unlink()
    result = BurstResult(s3_uploads, cos_uploads, ideal_seconds=(s3_uploads + cos_uploads) / rate_limit)
    with LocalStack(rate_limit=rate_limit, moto_process=True, latency=latency) as stack:
        stack.mps.plan = FaultPlan(throttle=throttle, http5xx=http5xx, timeout=timeout, drop=drop,
                                   timeout_seconds=3.0, seed=seed)
        s3, sqs = stack.boto3("s3"), stack.boto3("sqs")
        run_id = uuid.uuid4().hex[:6]
        bucket, cos_bucket = f"burst-in-{run_id}", f"burst-cos-{run_id}-1250000000"
        s3.create_bucket(Bucket=bucket)
        s3.create_bucket(Bucket=cos_bucket)
        queue, dlq = _queue(sqs, f"burst-uploads-{run_id}", visibility=int(function_timeout * 2))
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        env = {k: v for k, v in stack.environment().items() if k.startswith(("MPS_", "AWS_"))}
        env.update({"AWS_ENDPOINT_URL": stack.moto.url, "COS_ENDPOINT_URL": stack.moto.url, "PYTHONPATH": str(ROOT),
                    "MPS_SCHEDULE_ID": "20001", "MPS_S3_SECRET_ID": "AKIABURST", "MPS_S3_SECRET_KEY": "burst-secret",
                    "MPS_TIMEOUT": "2", "MPS_MAX_CONCURRENCY": "10", "MPS_MAX_ATTEMPTS": "8"})
        containers: list[FunctionContainer] = []
        mappings: list[SqsEventSourceMapping] = []
        for i in range(concurrency):
            c = FunctionContainer(f"submit-aws-{i}", ROOT / "functions/submit/app.py", env,
                                  log_dir / f"submit-aws-{i}.log", timeout=function_timeout)
            containers.append(c)
            mappings.append(SqsEventSourceMapping(sqs, queue, c, batch_size=batch_size, timeout=function_timeout,
                                                  function_name=c.name, duplicate_rate=duplicate_uploads, seed=i,
                                                  batching_window=1.0 if batch_size > 10 else 0.0))
        scf = [FunctionContainer(f"submit-scf-{i}", ROOT / "functions/submit/app.py", env,
                                 log_dir / f"submit-scf-{i}.log", platform="scf", timeout=function_timeout)
               for i in range(concurrency)]
        containers.extend(scf)
        cos_client = stack.cos("ap-guangzhou")
        triggers = [CosTrigger(cos_client, cos_bucket, "ap-guangzhou", ContainerPool(scf))]

        # The backfill lands first (the upload queue fills up), then the consumers start: what is measured is how
        # the submit side drains it against the MPS limit, not how fast moto accepts uploads.
        with ThreadPoolExecutor(8) as uploaders:
            t = time.monotonic()
            list(uploaders.map(lambda i: s3.put_object(Bucket=bucket, Key=f"backfill/{i:06d} clip.mp4",
                                                       Body=f"clip {i}".encode()), range(s3_uploads)))
            result.upload_seconds = round(time.monotonic() - t, 1)
        start = time.monotonic()
        for m in mappings:
            m.start()

        def put_cos(i: int) -> None:
            triggers[0].put(f"backfill/{i:06d} 视频.mp4", f"cos clip {i}".encode())

        with ThreadPoolExecutor(concurrency) as cos_workers:  # COS uploads invoke the function as they land
            list(cos_workers.map(put_cos, range(cos_uploads)))
        expected = {(bucket, f"backfill/{i:06d} clip.mp4") for i in range(s3_uploads)} | \
                   {(cos_bucket, f"backfill/{i:06d} 视频.mp4") for i in range(cos_uploads)}
        end = time.monotonic() + max_seconds
        idle = 0
        while time.monotonic() < end and idle < 3:
            pending = mappings[0].pending()
            idle = idle + 1 if pending == 0 else 0
            time.sleep(0.5)
        result.seconds = time.monotonic() - start
        for m in mappings:
            m.stop()
        for c in containers:
            c.close()

        tasks = stack.mps.tasks
        seen: dict[tuple[str, str], int] = {}
        for t in tasks:
            ctx = t.session_context or {}
            seen[(ctx.get("b"), ctx.get("k"))] = seen.get((ctx.get("b"), ctx.get("k")), 0) + 1
        result.submitted_once = sum(1 for k in expected if seen.get(k) == 1)
        result.submitted_twice_or_more = sum(1 for k in expected if seen.get(k, 0) > 1)
        dead = _drain_all(sqs, dlq)
        dead_keys = set()
        for m in dead:
            for r in json.loads(m["Body"]).get("Records", []):
                dead_keys.add((r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"])))
        for t in triggers:
            for inv in t.invocations:
                if inv.error is not None:
                    dead_keys.add((cos_bucket, inv.key))  # SCF would send it to the function's dead-letter queue
        result.in_dlq = len(dead_keys & {k for k in expected if not seen.get(k)})
        lost = [k for k in expected if not seen.get(k) and k not in dead_keys]
        result.lost = len(lost)
        result.lost_examples = [f"{b}/{k}" for b, k in lost[:5]]
        accepted = sorted(t.received_at for t in tasks)
        if len(accepted) > 20:
            span = accepted[-1] - accepted[0]
            result.accepted_per_s = round((len(accepted) - 1) / span, 1) if span > 0 else 0.0
            result.limit_fraction = round(result.accepted_per_s / rate_limit, 3)
            # sustained: the central 90 % of acceptances, without the warm-up and the redelivery tail
            lo, hi = int(len(accepted) * 0.05), int(len(accepted) * 0.95)
            mid = accepted[hi] - accepted[lo]
            result.sustained_per_s = round((hi - lo) / mid, 1) if mid > 0 else 0.0
            result.sustained_fraction = round(result.sustained_per_s / rate_limit, 3)
        reqs = stack.mps.requests
        result.per_second, result.seconds_at_limit = _per_second(reqs, accepted, rate_limit)
        result.seconds_with_acceptances = sum(1 for s in result.per_second if s[0])
        if result.seconds:
            result.busy_s3 = round(statistics.median(c.busy_seconds for c in containers[:concurrency]) /
                                   result.seconds, 2)
            result.busy_cos = round(statistics.median(c.busy_seconds for c in scf) / result.seconds, 2)
        result.mps_requests = len(reqs)
        result.rejected_by_limit = sum(r.verdict == "RequestLimitExceeded" for r in reqs)
        for r in reqs:
            if r.verdict.startswith("injected:"):
                kind = r.verdict.split(":", 1)[1].split(":")[0]
                result.injected[kind] = result.injected.get(kind, 0) + 1
        result.client_retries = sum(len(line.get("retried") or [])
                                    for f in log_dir.glob("submit-*.log") for line in _json_lines(f))
        result.duplicated_uploads = sum(m.duplicated for m in mappings)
        result.sqs_redeliveries = sum(m.stats.received for m in mappings) - (s3_uploads + 1) - result.duplicated_uploads
        result.scf_retries = sum(inv.attempts - 1 for t in triggers for inv in t.invocations)
        result.seconds = round(result.seconds, 1)
        result.ideal_seconds = round(result.ideal_seconds, 1)
    return result


def _per_second(requests: list[Any], accepted: list[float], rate_limit: int) -> tuple[list[list[int]], int]:
    """``[accepted, refused by the limit, injected]`` for each second from the first request, and how many whole
    seconds between the first and last acceptance had at least 95 % of ``rate_limit`` accepted (the limit bound
    the drain then; in the others, something before MPS did)."""
    if not requests:
        return [], 0
    t0 = min(r.at for r in requests)
    series: list[list[int]] = [[0, 0, 0] for _ in range(int(max(r.at for r in requests) - t0) + 1)]
    for r in requests:
        column = 0 if r.verdict == "accepted" else 1 if r.verdict == "RequestLimitExceeded" else \
            2 if r.verdict.startswith("injected:") else None
        if column is not None:
            series[int(r.at - t0)][column] += 1
    at_limit = 0
    if accepted:
        first, last = int(accepted[0] - t0), int(accepted[-1] - t0)
        at_limit = sum(1 for s in series[first + 1:last] if s[0] >= 0.95 * rate_limit)
    return series, at_limit


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.startswith("{")]


# --- archive with faults ---------------------------------------------------------------------------------------------

@dataclass
class ArchiveFaultResult:
    """What an archive fault run measured (see :func:`run_archive`)."""

    callbacks: int
    via_sqs: int = 0
    via_http: int = 0
    deliveries: int = 0
    missing: int = 0
    duplicate_lines: int = 0
    lines: int = 0
    objects: int = 0
    seconds: float = 0.0
    lines_per_s: float = 0.0
    injected_put_failures: int = 0
    object_puts: int = 0
    sqs_record_failures: int = 0
    http_retries: int = 0
    in_dlq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_archive(callbacks: int = 10000, sqs_share: float = 0.5, write_failure: float = 0.05,
                duplicate: float = 0.10, seed: int = 3) -> ArchiveFaultResult:
    """Run an archive fault run; see the module docstring."""
    import random

    import httpx

    from mps_triggers.lines import callback_id

    from .notifications import notification, task_event

    rng = random.Random(seed)
    result = ArchiveFaultResult(callbacks)
    run_id = uuid.uuid4().hex[:6]
    bucket = f"archive-faults-{run_id}"
    notify_key = "faults-notify-key"
    with LocalStack(moto_process=True, write_failures={bucket: write_failure}) as stack:
        s3, sqs = stack.boto3("s3"), stack.boto3("sqs")
        s3.create_bucket(Bucket=bucket)
        queue, dlq = _queue(sqs, f"callbacks-{run_id}", visibility=5)
        with _ArchiveEnv(AWS_ENDPOINT_URL=stack.moto.url, ARCHIVE_URI=f"s3://{bucket}/callbacks",
                         MPS_NOTIFY_KEY=notify_key, LOG_LEVEL="error") as app:
            server = FunctionUrlServer(app.handler)
            try:
                bodies, ids = [], set()
                for i in range(callbacks):
                    kind = i % 2
                    key = f"uploads/{i:06d}.mp4"
                    cos = {"Bucket": "m-1250000000", "Region": "ap-guangzhou", "Object": "/" + key}
                    tasks = {"ScheduleId": 1} if kind == 0 else {
                        "MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 100030}]}}
                    req = {"InputInfo": {"Type": "COS", "CosInputInfo": cos}, "OutputDir": "/mps-output/", **tasks}
                    kind_name = "ScheduleTask" if kind == 0 else "WorkflowTask"
                    et, ev = task_event(req, f"1250000000-{kind_name}-{uuid.uuid4().hex}tt7")
                    context = json.dumps({"v": 1, "src": "cos", "b": "m-1250000000", "k": key})
                    body = notification(et, ev, f"mt1-{i}", context, notify_key)
                    bodies.append(body)
                    ids.add(callback_id(body))
                plan = []
                for body in bodies:
                    times = 2 if rng.random() < duplicate else 1
                    via = "sqs" if rng.random() < sqs_share else "http"
                    plan.extend([(via, body)] * times)
                rng.shuffle(plan)
                result.via_sqs = sum(1 for v, _ in plan if v == "sqs")
                result.via_http = len(plan) - result.via_sqs
                result.deliveries = len(plan)
                mapping = SqsEventSourceMapping(sqs, queue, app.handler, batch_size=100, batching_window=0.2,
                                                function_name="archive", timeout=30)
                http = httpx.Client(timeout=30)
                retries = [0]
                lock = threading.Lock()

                def post(body: dict[str, Any]) -> None:
                    data = json.dumps(body).encode()
                    for attempt in range(6):  # MPS sends a URL callback again when it is not answered 200
                        resp = http.post(server.url, content=data, headers={"Content-Type": "application/json"})
                        if resp.status_code == 200:
                            return
                        with lock:
                            retries[0] += 1
                        time.sleep(0.05 * (attempt + 1))
                    raise RuntimeError(f"callback refused {resp.status_code}: {resp.text}")

                start = time.monotonic()
                mapping.start()
                _send_all(sqs, queue, [json.dumps(b) for v, b in plan if v == "sqs"])
                with ThreadPoolExecutor(4) as senders:
                    list(senders.map(post, [b for v, b in plan if v == "http"]))
                mapping.wait_empty()
                result.seconds = round(time.monotonic() - start, 2)
                mapping.stop()
                http.close()
                result.sqs_record_failures = mapping.stats.reported_failures
                result.http_retries = retries[0]
                result.in_dlq = len(_drain_all(sqs, dlq))
                objects = _archived(s3, bucket)
                keys = list(objects)
                archived = [x["id"] for lines in objects.values() for x in lines]
                result.objects = len(keys)
                result.lines = len(archived)
                result.missing = len(ids - set(archived))
                result.duplicate_lines = len(archived) - len(set(archived))
                result.lines_per_s = round(len(set(archived)) / result.seconds, 1)
                stats = stack.moto.stats()
                result.injected_put_failures, result.object_puts = stats["failed_puts"], stats["object_puts"]
            finally:
                server.stop()
    return result


# --- chat digests under the robot's limits --------------------------------------------------------------------------

@dataclass
class DigestResult:
    """What a webhook-digest run measured (see :func:`run_webhook_digest`)."""

    callbacks: int
    batches: int = 0
    seconds: float = 0.0
    records_failed: int = 0          # records the archive function reported failed (each one redelivered)
    max_receive_count: int = 0       # 1: no message was received twice
    in_dlq: int = 0
    delivered: int = 0               # digests the robot accepted
    refused: int = 0                 # digests the robot refused (rate, size, key)
    max_per_minute: int = 0          # most requests the robot saw in any 60 s
    largest_bytes: int = 0           # the largest markdown content delivered
    push_failed: int = 0             # push_failed records written
    covered_by_delivered: int = 0    # task ids in an archive object a delivered digest names
    covered_by_recorded: int = 0     # task ids in a push_failed record
    uncovered: int = 0               # task ids in neither (goal 0)
    missing_from_archive: int = 0    # task ids with no archived line (goal 0)
    handler_seconds: float = 0.0     # the archive function's own time, all invocations together
    lines_per_s: float = 0.0         # archived lines per second of the function's own time

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _callback_bodies(n: int, notify_key: str, prefix: str = "uploads/digest") -> list[dict[str, Any]]:
    """``n`` signed ScheduleTask notifications, one in three with a failed subtask, keys with CJK characters."""
    from .notifications import notification, task_event

    bodies = []
    for i in range(n):
        key = f"{prefix}/{i:06d} 视频 <{i % 7}>.mp4"
        req = {"InputInfo": {"Type": "COS", "CosInputInfo": {"Bucket": "m-1250000000", "Region": "ap-guangzhou",
                                                              "Object": "/" + key}},
               "OutputDir": "/mps-output/", "ScheduleId": 1}
        et, ev = task_event(req, f"1250000000-ScheduleTask-{uuid.uuid4().hex}tt7", "FINISH", -1 if i % 3 == 0 else None)
        ctx = json.dumps({"v": 1, "src": "cos", "b": "m-1250000000", "k": key, "r": "videos"}, ensure_ascii=False)
        bodies.append(notification(et, ev, f"mt1-{uuid.uuid4().hex[:40]}", ctx, notify_key))
    return bodies


class _ArchiveEnv:
    """The archive function's environment for a run, restored afterwards."""

    NAMES = ("AWS_ENDPOINT_URL", "ARCHIVE_URI", "MPS_NOTIFY_KEY", "CALLBACK_TOKEN", "WEBHOOK_URL", "WEBHOOK_FORMAT",
             "WEBHOOK_TIMEOUT", "LOG_LEVEL")

    def __init__(self, **values: str) -> None:
        self.values = values

    def __enter__(self) -> Any:
        from mps_triggers import archive_job, logs, storage

        self.saved = {k: os.environ.get(k) for k in self.NAMES}
        for k in self.NAMES:
            os.environ.pop(k, None)
        os.environ.update(self.values)
        archive_job.default_job.cache_clear()
        storage._stores.clear()
        logs.set_level(self.values.get("LOG_LEVEL", "error"))
        return load_app("archive")

    def __exit__(self, *exc: Any) -> None:
        from mps_triggers import archive_job, logs, storage

        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        archive_job.default_job.cache_clear()
        storage._stores.clear()
        logs.set_level(os.environ.get("LOG_LEVEL", "info"))


def _archived(s3: Any, bucket: str) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            text = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode("utf-8")
            out[o["Key"]] = [json.loads(x) for x in text.splitlines()]
    return out


def run_webhook_digest(callbacks: int = 10000, batch: int = 100, per_second: float = 0.0) -> DigestResult:
    """Callbacks through the callback queue (batches of ``batch``) while a WeCom robot enforces 20 messages a minute
    and 4,096 bytes. ``per_second`` 0 sends them all at once (a burst), else at that steady rate."""
    from .chat import ChatRobot

    result = DigestResult(callbacks)
    run_id = uuid.uuid4().hex[:6]
    bucket = f"digest-{run_id}"
    notify_key = "digest-notify-key"
    with LocalStack(moto_process=True) as stack, ChatRobot("wecom") as robot:
        s3, sqs = stack.boto3("s3"), stack.boto3("sqs")
        s3.create_bucket(Bucket=bucket)
        queue, dlq = _queue(sqs, f"callbacks-{run_id}", visibility=40)
        with _ArchiveEnv(AWS_ENDPOINT_URL=stack.moto.url, ARCHIVE_URI=f"s3://{bucket}/callbacks",
                         MPS_NOTIFY_KEY=notify_key, WEBHOOK_URL=robot.url, WEBHOOK_FORMAT="wecom") as app:
            bodies = _callback_bodies(callbacks, notify_key)
            task_ids = {b["ScheduleTaskEvent"]["TaskId"] for b in bodies}
            mapping = SqsEventSourceMapping(sqs, queue, app.handler, batch_size=batch, batching_window=1.0,
                                            function_name="archive", timeout=30)
            start = time.monotonic()
            mapping.start()
            _send_all(sqs, queue, [json.dumps(b, ensure_ascii=False) for b in bodies], per_second)
            mapping.wait_empty()
            result.seconds = round(time.monotonic() - start, 2)
            mapping.stop()
        stats = mapping.stats
        result.batches, result.records_failed = stats.invocations, stats.reported_failures
        result.max_receive_count = stats.max_receive_count
        result.in_dlq = len(_drain_all(sqs, dlq))
        delivered, refused = robot.delivered, robot.refused
        result.delivered, result.refused, result.max_per_minute = len(delivered), len(refused), robot.max_per_minute()
        result.largest_bytes = max((len(m.text.encode("utf-8")) for m in delivered), default=0)
        objects = _archived(s3, bucket)
        archived = {x["task_id"] for k, v in objects.items() if "event_type=push_failed" not in k for x in v}
        failed_pushes = [x for k, v in objects.items() if "event_type=push_failed" in k for x in v]
        result.push_failed = len(failed_pushes)
        recorded = {c["task_id"] for f in failed_pushes for c in f["covers"]}
        by_digest = set()
        for m in delivered:
            for uri in re.findall(r"s3://[^\s,()]+?\.jsonl", m.text):
                by_digest |= {x["task_id"] for x in objects.get(uri.split("/", 3)[3], [])}
        result.covered_by_delivered, result.covered_by_recorded = len(by_digest & task_ids), len(recorded & task_ids)
        result.uncovered = len(task_ids - by_digest - recorded)
        result.missing_from_archive = len(task_ids - archived)
        result.handler_seconds = round(stats.invocation_seconds, 2)
        result.lines_per_s = round(len(archived & task_ids) / max(stats.invocation_seconds, 1e-9), 1)
    return result


# --- deadlines against peers that trickle -----------------------------------------------------------------------------

@dataclass
class DeadlineResult:
    """What a deadline run measured (see :func:`run_deadline`)."""

    uploads: int
    submit_timeout: float
    submit_invocations: int = 0
    submit_max_seconds: float = 0.0             # the longest invocation (goal: below submit_timeout)
    submit_reported_unfinished: int = 0         # records reported failed (redelivered)
    trickled_requests: int = 0                  # ProcessMedia answers the emulator trickled
    submitted_once: int = 0
    submitted_twice: int = 0
    uploads_lost: int = 0                       # neither submitted nor in the DLQ (goal 0)
    uploads_in_dlq: int = 0
    callbacks: int = 0
    archive_timeout: float = 0.0
    archive_sqs_invocations: int = 0
    archive_sqs_max_seconds: float = 0.0
    archive_http_max_seconds: float = 0.0
    archive_records_failed: int = 0             # goal 0: the trickling webhook never fails a callback
    callbacks_missing: int = 0                  # goal 0
    push_failed: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_deadline(uploads: int = 500, callbacks: int = 2000, http_callbacks: int = 100, trickle_rate: float = 0.1,
                 trickle_seconds: float = 0.25, submit_timeout: float = 5.0,
                 archive_timeout: float = 6.0) -> DeadlineResult:
    """An MPS endpoint that trickles ``trickle_rate`` of its answers (one byte every ``trickle_seconds``) under the
    submit function (timeout ``submit_timeout``), and a webhook that trickles every answer under the archive
    function (timeout ``archive_timeout``; SQS batches of 100 and function-URL callbacks)."""
    from .chat import ChatRobot

    result = DeadlineResult(uploads, submit_timeout, callbacks=callbacks + http_callbacks,
                            archive_timeout=archive_timeout)
    run_id = uuid.uuid4().hex[:6]
    start = time.monotonic()
    with LocalStack(moto_process=True, rate_limit=None) as stack:
        s3, sqs = stack.boto3("s3"), stack.boto3("sqs")
        # --- submit: the emulator trickles a share of its answers (the task is accepted all the same)
        stack.mps.plan = FaultPlan(trickle=trickle_rate, trickle_seconds=trickle_seconds, seed=11)
        queue, dlq = _queue(sqs, f"uploads-{run_id}", visibility=int(submit_timeout) + 2, max_receive=8)
        env = {k: v for k, v in stack.environment().items() if k.startswith(("MPS_", "AWS_"))}
        env.update({"PYTHONPATH": str(ROOT), "MPS_SCHEDULE_ID": "20001", "MPS_S3_SECRET_ID": "AKIADEADLINEREADER01",
                    "MPS_S3_SECRET_KEY": "deadline-s3-secret", "LOG_LEVEL": "error", "MPS_TIMEOUT": "30"})
        log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
        containers = [FunctionContainer(f"submit-deadline-{n}", ROOT / "functions/submit/app.py", env,
                                        log_dir / f"submit-deadline-{run_id}-{n}.log", timeout=submit_timeout)
                      for n in range(4)]
        try:
            keys = [f"uploads/deadline/{i:05d}.mp4" for i in range(uploads)]
            bodies = [json.dumps({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                                               "eventName": "ObjectCreated:Put", "eventTime": "2026-11-21T00:00:00Z",
                                               "s3": {"bucket": {"name": "deadline-in"},
                                                      "object": {"key": k, "size": 1000 + i, "eTag": f"e{i}"}}}]})
                      for i, k in enumerate(keys)]
            _send_all(sqs, queue, bodies)
            mappings = [SqsEventSourceMapping(sqs, queue, c, batch_size=10, timeout=submit_timeout,
                                              function_name=c.name) for c in containers]
            with ThreadPoolExecutor(len(mappings)) as pool:  # four containers polling at once
                list(pool.map(lambda m: m.drain(idle_rounds=int(submit_timeout * 2) + 6, max_seconds=900), mappings))
            result.submit_invocations = sum(m.stats.invocations for m in mappings)
            result.submit_max_seconds = round(max(m.stats.max_invocation_seconds for m in mappings), 2)
            result.submit_reported_unfinished = sum(m.stats.reported_failures for m in mappings)
            result.uploads_in_dlq = len(_drain_all(sqs, dlq))
            sessions: dict[str, int] = {}
            for t in stack.mps.tasks:
                key = (t.session_context or {}).get("k")
                sessions[key] = sessions.get(key, 0) + 1
            result.submitted_once = sum(1 for k in keys if sessions.get(k) == 1)
            result.submitted_twice = sum(1 for k in keys if sessions.get(k, 0) > 1)
            result.uploads_lost = sum(1 for k in keys if k not in sessions) - result.uploads_in_dlq
            result.trickled_requests = sum(1 for r in stack.mps.requests if r.verdict == "injected:trickle")
        finally:
            for c in containers:
                c.close()
            stack.mps.plan = None
        # --- archive: the webhook trickles every answer
        bucket = f"deadline-{run_id}"
        s3.create_bucket(Bucket=bucket)
        cqueue, cdlq = _queue(sqs, f"callbacks-{run_id}", visibility=int(archive_timeout) + 2)
        with ChatRobot("wecom", trickle=trickle_seconds) as robot, \
                _ArchiveEnv(AWS_ENDPOINT_URL=stack.moto.url, ARCHIVE_URI=f"s3://{bucket}/callbacks",
                            MPS_NOTIFY_KEY="deadline-notify-key", CALLBACK_TOKEN="deadline-token",
                            WEBHOOK_URL=robot.url, WEBHOOK_FORMAT="wecom", WEBHOOK_TIMEOUT="60") as app:
            bodies = _callback_bodies(callbacks + http_callbacks, "deadline-notify-key", prefix="uploads/deadline")
            server = FunctionUrlServer(app.handler, timeout=archive_timeout)
            amap = SqsEventSourceMapping(sqs, cqueue, app.handler, batch_size=100, batching_window=0.5,
                                         function_name="archive", timeout=archive_timeout)
            try:
                _send_all(sqs, cqueue, [json.dumps(b, ensure_ascii=False) for b in bodies[:callbacks]])
                import httpx

                with httpx.Client(timeout=60) as http, ThreadPoolExecutor(4) as pool:
                    posted = pool.map(lambda b: http.post(server.url + "?token=deadline-token",
                                                          content=json.dumps(b).encode()).status_code,
                                      bodies[callbacks:])
                    amap.drain(idle_rounds=4, max_seconds=900)
                    http_statuses = list(posted)
                result.archive_sqs_invocations = amap.stats.invocations
                result.archive_sqs_max_seconds = round(amap.stats.max_invocation_seconds, 2)
                result.archive_http_max_seconds = round(max(server.durations, default=0.0), 2)
                result.archive_records_failed = amap.stats.reported_failures + sum(1 for s in http_statuses if s != 200)
            finally:
                server.stop()
            objects = _archived(s3, bucket)
            archived = {x["task_id"] for k, v in objects.items() if "event_type=push_failed" not in k for x in v}
            result.callbacks_missing = len({b["ScheduleTaskEvent"]["TaskId"] for b in bodies} - archived)
            result.push_failed = sum(len(v) for k, v in objects.items() if "event_type=push_failed" in k)
            _drain_all(sqs, cdlq)
    result.seconds = round(time.monotonic() - start, 2)
    return result
