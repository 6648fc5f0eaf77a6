"""The main job, end to end on the local stack: upload → submit → emulated MPS → callback → archive.

Run with ``python3 tasks.py demo``. It starts moto (S3, SQS, COS buckets) and the MPS emulator (which completes
tasks and sends callbacks), and runs two deployments side by side, each function in its own process, then a third
for a VOD application (:mod:`mpslocal.demo_vod`: upload to VOD → NewFileUpload, pushed and pulled → task flow →
every event archived):

- **AWS** (Lambda): S3 input bucket → S3 notification → SQS upload queue (DLQ) → ``functions/submit`` → MPS with
  ``TaskNotifyConfig`` AWS-SQS, ``NotifyMode=Change`` → callback queue → ``functions/archive`` (batches of 100) →
  ``s3://mps-demo-archive/callbacks``.
- **SCF** (Tencent): COS input bucket → COS trigger → ``functions/submit`` (``main_handler``) → MPS with
  ``TaskNotifyConfig`` URL, NotifyKey and a token → an SCF function URL → ``functions/archive`` →
  ``cos://mps-demo-archive-1250000000/callbacks`` through the real COS SDK.

It uploads real MP4 clips under awkward keys (spaces, ``+``, ``%``, ``#``, non-ASCII, a capital ``.MOV``, a
multipart upload) plus a folder marker, a zero-byte file, a text file and objects under the output dir; waits for
every task's callbacks; then uploads and redelivers everything again. It prints object → rule → ScheduleId or
task → SessionId → TaskId, the skipped objects with their reasons, each task's final status and archive object,
and the archive objects with their line counts. It exits non-zero if any object was neither submitted exactly once
nor deliberately skipped, if any accepted task lacks an archived FINISH line, if a redelivery submitted anything,
if anything reached a DLQ, or if a secret leaked into a log or an archive object.
Logs (JSON lines) of each function go to ``.demo/<function>.log``.
"""
from __future__ import annotations

import json
import os
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .container import FunctionContainer
from .media import make_clip
from .runner import CosTrigger, FunctionUrlServer, SqsEventSourceMapping
from .demo_vod import SIGN_KEY, VodRound
from .stack import AWS_REGION, LocalStack

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".demo"
S3_BUCKET, S3_ARCHIVE = "mps-demo-input", "mps-demo-archive"
COS_BUCKET, COS_ARCHIVE, COS_REGION = "mps-demo-1250000000", "mps-demo-archive-1250000000", "ap-guangzhou"
SCHEDULE_ID = 20001
S3_SECRET, NOTIFY_KEY = "demo-s3-secret-key-never-logged", "demo-notify-key-never-logged"
TOKEN = "demo+token/never=logged"  # with the characters openssl rand -base64 makes: the job URL-encodes it
BEFORE_VIDEOS = [f"before/2025/archive clip {i:02d}.mp4" for i in range(12)]
BEFORE = BEFORE_VIDEOS + ["before/2025/", "before/empty.mp4"]  # and a folder marker and a zero-byte file
AWS_ROUTES = [{"name": "videos", "suffixes": [".mp4", ".mov"], "schedule_id": SCHEDULE_ID}]
SCF_ROUTES = [
    {"name": "cos-inline-transcode", "prefix": "inline/", "suffixes": [".mp4"],
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
        Upload("s3", "mps-output/uploads/red flower.mp4/red flower_transcode_100030.mp4", clips[0], "recursion guard"),
        Upload("cos", "uploads/产品 演示.mp4", clips[5], "submit"),
        Upload("cos", "inline/c+d #1.mp4", clips[6], "submit"),
        Upload("cos", "uploads/folder/", b"", "folder marker"),
        Upload("cos", "mps-output/inline/c+d #1.mp4/c+d #1_transcode_100030.mp4", clips[6], "recursion guard"),
    ]


class Demo:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.s3, self.sqs = stack.boto3("s3"), stack.boto3("sqs")
        self.containers: list[FunctionContainer] = []
        self.problems: list[str] = []

    # --- set-up ---------------------------------------------------------------------------------------------

    def queue(self, name: str, visibility: int = 2) -> tuple[str, str]:
        dlq = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = self.sqs.create_queue(QueueName=name, Attributes={
            "VisibilityTimeout": str(visibility),  # short locally, so redeliveries happen within the demo
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
        return url, dlq

    def container(self, name: str, function: str, env: dict[str, str], platform: str = "lambda") -> FunctionContainer:
        c = FunctionContainer(name, ROOT / "functions" / function / "app.py", {**env, "PYTHONPATH": str(ROOT)},
                              OUT / f"{name}.log", platform=platform)
        self.containers.append(c)
        return c

    def setup(self) -> None:
        OUT.mkdir(exist_ok=True)
        for f in OUT.glob("*.log"):
            f.unlink()
        stack, s3 = self.stack, self.s3
        for b in (S3_BUCKET, S3_ARCHIVE, COS_BUCKET, COS_ARCHIVE):
            s3.create_bucket(Bucket=b)
        clip = make_clip(0.5, 7)
        for key in BEFORE:  # in the bucket before the deployment (and its notification) existed: day two's backfill
            s3.put_object(Bucket=S3_BUCKET, Key=key, Body=clip if key in BEFORE_VIDEOS else b"")
        self.upload_q, self.upload_dlq = self.queue("mps-demo-uploads")
        self.callback_q, self.callback_dlq = self.queue("mps-demo-callbacks")
        arn = self.sqs.get_queue_attributes(QueueUrl=self.upload_q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket=S3_BUCKET, NotificationConfiguration={"QueueConfigurations": [
            {"Id": "mps-uploads", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})

        local = {"AWS_ENDPOINT_URL": stack.moto.url, "COS_ENDPOINT_URL": stack.moto.url,
                 "AWS_DEFAULT_REGION": AWS_REGION, "AWS_REGION": AWS_REGION}
        mps_env = {k: v for k, v in stack.environment().items() if k.startswith("MPS_")}
        scf_keys = {"TENCENTCLOUD_SECRETID": mps_env.pop("MPS_SECRET_ID"),
                    "TENCENTCLOUD_SECRETKEY": mps_env.pop("MPS_SECRET_KEY")}  # as SCF injects the role's keys
        aws_keys = {"MPS_SECRET_ID": scf_keys["TENCENTCLOUD_SECRETID"], "MPS_SECRET_KEY": scf_keys["TENCENTCLOUD_SECRETKEY"]}
        # AWS deployment
        archive_aws = self.container("archive-aws", "archive", {**local, "ARCHIVE_URI": f"s3://{S3_ARCHIVE}/callbacks"})
        self.aws_env = {
            **local, **mps_env, **aws_keys, "MPS_ROUTES": json.dumps(AWS_ROUTES), "MPS_OUTPUT_DIR": "/mps-output/",
            "MPS_S3_SECRET_ID": "AKIADEMOMPSREADER0001", "MPS_S3_SECRET_KEY": S3_SECRET,
            "MPS_NOTIFY_SQS_QUEUE": "mps-demo-callbacks", "MPS_NOTIFY_SQS_REGION": AWS_REGION,
            "MPS_NOTIFY_MODE": "Change", "ARCHIVE_URI": f"s3://{S3_ARCHIVE}/callbacks"}
        submit_aws = self.container("submit-aws", "submit", self.aws_env)
        self.upload_esm = SqsEventSourceMapping(self.sqs, self.upload_q, submit_aws, batch_size=10, region=AWS_REGION,
                                                function_name="submit-aws")
        self.callback_esm = SqsEventSourceMapping(self.sqs, self.callback_q, archive_aws, batch_size=100,
                                                  batching_window=0.5, region=AWS_REGION, function_name="archive-aws")
        # SCF deployment
        archive_scf = self.container("archive-scf", "archive", {
            **local, **scf_keys, "ARCHIVE_URI": f"cos://{COS_ARCHIVE}/callbacks", "ARCHIVE_REGION": COS_REGION,
            "MPS_NOTIFY_KEY": NOTIFY_KEY, "CALLBACK_TOKEN": TOKEN}, platform="scf")
        self.function_url = FunctionUrlServer(archive_scf, platform="scf")
        submit_scf = self.container("submit-scf", "submit", {
            **local, **mps_env, **scf_keys, "MPS_ROUTES": json.dumps(SCF_ROUTES), "MPS_OUTPUT_DIR": "/mps-output/",
            "MPS_NOTIFY_URL": self.function_url.url, "CALLBACK_TOKEN": TOKEN, "MPS_NOTIFY_KEY": NOTIFY_KEY,
            "ARCHIVE_URI": f"cos://{COS_ARCHIVE}/callbacks", "ARCHIVE_REGION": COS_REGION}, platform="scf")
        self.cos = CosTrigger(stack.cos(COS_REGION), COS_BUCKET, COS_REGION, submit_scf)

    def close(self) -> None:
        for esm in (self.upload_esm, self.callback_esm):
            esm.stop()
        self.function_url.stop()
        for c in self.containers:
            c.close()

    # --- run ------------------------------------------------------------------------------------------------

    def put(self, up: Upload) -> None:
        if up.storage == "cos":
            self.cos.put(up.key, up.body)
        elif not up.multipart:
            self.s3.put_object(Bucket=S3_BUCKET, Key=up.key, Body=up.body)
        else:
            mpu = self.s3.create_multipart_upload(Bucket=S3_BUCKET, Key=up.key)
            part = self.s3.upload_part(Bucket=S3_BUCKET, Key=up.key, UploadId=mpu["UploadId"], PartNumber=1, Body=up.body)
            self.s3.complete_multipart_upload(Bucket=S3_BUCKET, Key=up.key, UploadId=mpu["UploadId"],
                                              MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})

    def settle(self, timeout: float = 90.0) -> None:
        """Wait until every queue is drained and every accepted task's callbacks were delivered."""
        end = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < end and quiet < 3:
            mps = self.stack.mps
            busy = (self.upload_esm.pending() + self.callback_esm.pending() + mps.pending_notifications()
                    + sum(1 for t in mps.tasks if not any(d.task_id == t.task_id and d.status == "FINISH"
                                                          for d in mps.deliveries)))
            quiet = quiet + 1 if busy == 0 else 0
            time.sleep(0.3)
        if quiet < 3:
            self.problems.append(f"the stack did not settle within {timeout:.0f}s")

    def run(self) -> int:
        self.setup()
        self.upload_esm.start()
        self.callback_esm.start()
        try:
            print("making MP4 clips with ffmpeg ...", flush=True)
            items = uploads()
            print(f"round 1: uploading {len(items)} objects ({sum(u.storage == 's3' for u in items)} to S3, "
                  f"{sum(u.storage == 'cos' for u in items)} to COS) and waiting for every callback ...", flush=True)
            t0 = time.monotonic()
            for up in items:
                self.put(up)
            self.settle()
            seconds = time.monotonic() - t0
            tasks_round1 = len(self.stack.mps.tasks)
            logs_round1 = {c.name: len(self.logs(c.name)) for c in self.containers}
            print("round 2: the same uploads again, every COS event and every round-1 upload message delivered again",
                  flush=True)
            self.upload_esm.redeliver(list(self.upload_esm.bodies))
            for up in items:
                self.put(up)
                if up.storage == "cos":
                    self.cos.deliver(up.key)
            self.settle()
            self.tasks_round2 = len(self.stack.mps.tasks)
            self.backfill()
            self.settle()
            self.archive_questions()
            VodRound(self, COS_ARCHIVE, COS_REGION, TOKEN).run()
        finally:
            self.close()
        return self.report(items, tasks_round1, logs_round1, seconds)

    def backfill(self) -> None:
        """Day two: ``mps-triggers backfill`` of the objects that were in the bucket before the deployment (the
        command itself, as an operator runs it, with the AWS deployment's environment): plan, run, run again."""
        import subprocess

        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MPS_", "ARCHIVE_"))}, **self.aws_env}
        source = f"s3://{S3_BUCKET}/before/"
        self.backfill_runs = []
        for title, extra in (("the plan", ["--dry-run"]),
                             ("the backfill", ["--rate", "20", "--report", str(OUT / "backfill.jsonl")]),
                             ("the same command again: the ledger holds every SessionId", [])):
            print(f"\nday two, {title}: mps-triggers backfill {source} {' '.join(extra)}".rstrip(), flush=True)
            done = subprocess.run([sys.executable, "-m", "mps_triggers_cli", "backfill", source, *extra,
                                   "--state-dir", str(OUT / "state")], env=env, cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE)
            print(done.stdout, end="", flush=True)
            self.backfill_runs.append(done.returncode)

    def archive_questions(self) -> None:
        """Day two, the archive answers: ``mps-triggers report`` (text and the HTML file) and ``find`` of one
        upload, over the S3 archive (copied into a local cache through the project's S3 client first), and a
        report of the COS archive as JSON."""
        import shutil
        import subprocess

        for old in ("cache", "cache-cos"):  # a cache of an earlier run's archive (another moto) would add its lines
            shutil.rmtree(OUT / old, ignore_errors=True)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MPS_", "ARCHIVE_"))}, **self.aws_env}
        cli = [sys.executable, "-m", "mps_triggers_cli"]
        s3_archive, cache = f"s3://{S3_ARCHIVE}/callbacks/", str(OUT / "cache")
        self.questions: dict[str, Any] = {}
        for title, argv in (
                ("the report", ["report", s3_archive, "--since", "1d", "--cache", cache]),
                ("the same as an HTML file", ["report", s3_archive, "--since", "1d", "--cache", cache, "--no-sync",
                                              "--format", "html", "--output", str(OUT / "report.html")]),
                ("everything that happened to one upload", ["find", s3_archive, "--cache", cache, "--no-sync",
                                                            "--key", "uploads/red flower.mp4"]),
                ("as JSON, for a dashboard", ["report", s3_archive, "--since", "1d", "--cache", cache, "--no-sync",
                                              "--format", "json"])):
            print(f"\nday two, {title}: mps-triggers {' '.join(argv)}", flush=True)
            done = subprocess.run([*cli, *argv, "--no-progress"], env=env, cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE)
            if argv[-1] != "json":
                print(done.stdout, end="", flush=True)
            self.questions[title] = (done.returncode, done.stdout)
        cos_env = {**env, "MPS_SECRET_ID": next(iter(self.stack.mps.credentials)),
                   "MPS_SECRET_KEY": next(iter(self.stack.mps.credentials.values()))[0]}
        done = subprocess.run([*cli, "report", f"cos://{COS_ARCHIVE}/callbacks/", "--region", COS_REGION, "--since",
                               "1d", "--cache", str(OUT / "cache-cos"), "--format", "json", "--no-progress"],
                              env=cos_env, cwd=ROOT, text=True, stdout=subprocess.PIPE)
        self.questions["cos"] = (done.returncode, done.stdout)

    def check_questions(self, tasks: list[Any], problems: list[str]) -> None:
        """The report's numbers against the emulator's tasks (per archive: S3 objects in the AWS one, COS objects
        in the SCF one); the HTML file exists; find shows the upload's submission and its callbacks."""
        questions = getattr(self, "questions", {})
        for name, storage in (("as JSON, for a dashboard", "s3"), ("cos", "cos")):
            code, out = questions.get(name, (None, ""))
            expected = sum(1 for t in tasks if (t.session_context or {}).get("src") == storage)
            try:
                got = json.loads(out)["tasks"]["total"] if code == 0 else None
            except ValueError:
                got = None
            if got != expected:
                problems.append(f"report of the {storage} archive: {got} tasks (exit {code}), expected {expected}")
        if not (OUT / "report.html").exists():
            problems.append("report --format html wrote no file")
        code, out = questions.get("everything that happened to one upload", (None, ""))
        if code != 0 or "ledger" not in out or "FINISH" not in out:
            problems.append(f"find --key printed no ledger line and FINISH callback (exit {code})")
        else:
            print(f"\nArchive questions: report, HTML report ({OUT / 'report.html'}) and find answered from the "
                  f"cache {OUT / 'cache'}")

    # --- report ---------------------------------------------------------------------------------------------

    def logs(self, name: str) -> list[dict[str, Any]]:
        path = OUT / f"{name}.log"
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.startswith("{")] \
            if path.exists() else []

    def archive_lines(self, ledger: bool = False) -> dict[str, list[dict[str, Any]]]:
        """Callback objects by URI; with ``ledger``, the submit job's ledger objects (event_type=submissions)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for bucket, scheme in ((S3_ARCHIVE, "s3"), (COS_ARCHIVE, "cos")):
            for o in self.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                if ("event_type=submissions/" in o["Key"]) != ledger:
                    continue
                data = self.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode("utf-8")
                out[f"{scheme}://{bucket}/{o['Key']}"] = [json.loads(x) for x in data.splitlines()]
        return out

    def report(self, items: list[Upload], tasks_round1: int, logs_round1: dict[str, int], seconds: float) -> int:
        problems, mps = self.problems, self.stack.mps
        tasks = mps.tasks
        by_object: dict[tuple[str, str], list[Any]] = {}
        for t in tasks:
            ctx = t.session_context or {}
            by_object.setdefault((ctx.get("b"), ctx.get("k")), []).append(t)
        submit_logs = {n: self.logs(n) for n in ("submit-aws", "submit-scf")}
        first = [ln for n, lines in submit_logs.items() for ln in lines[:logs_round1[n]]]
        second = [ln for n, lines in submit_logs.items() for ln in lines[logs_round1[n]:]]
        outcome = {}
        for ln in first:
            if ln.get("message") in ("submitted", "skipped", "duplicate", "submit failed"):
                outcome.setdefault((ln["bucket"], ln["key"]), ln)
        archive = self.archive_lines()
        finish_line: dict[str, tuple[str, dict[str, Any]]] = {}
        for key, lines in archive.items():
            for ln in lines:
                if ln["status"] == "FINISH":
                    finish_line.setdefault(ln["task_id"], (key, ln))

        rows, finals = [], []
        for up in items:
            got, submitted = outcome.get((up.bucket, up.key)), by_object.get((up.bucket, up.key), [])
            if up.expect != "submit":
                if submitted:
                    problems.append(f"{up.label}: submitted but should have been skipped ({up.expect})")
                if not got or got.get("message") != "skipped" or not got.get("reason", "").startswith(up.expect):
                    problems.append(f"{up.label}: expected skip '{up.expect}', got {got and got.get('reason') or got}")
                continue
            if len(submitted) != 1:
                problems.append(f"{up.label}: submitted {len(submitted)} times, expected exactly once")
            for t in submitted[:1]:
                target = f"ScheduleId {t.body['ScheduleId']}" if "ScheduleId" in t.body else \
                    "+".join(k for k in t.body if k.endswith("Task"))
                rows.append((up.label, (t.session_context or {}).get("r", "?"), target, t.session_id, t.body["OutputDir"]))
                key, line = finish_line.get(t.task_id, (None, None))
                if line is None:
                    problems.append(f"{up.label}: task {t.task_id} has no archived FINISH line")
                    finals.append((up.label, t.task_id, "-", "MISSING"))
                else:
                    state = "FINISH, subtask failed" if line["failed"] else "FINISH"
                    finals.append((up.label, t.task_id, state, f"{key} ({line['id'][:12]}…)"))
        written = [o for t in tasks for o in t.outputs]
        for out in sorted({o for o in written if written.count(o) > 1}):
            problems.append(f"two tasks write the same output {out[0]}:{out[1]}")
        before = BEFORE_VIDEOS
        for key in before:
            got = by_object.pop((S3_BUCKET, key), [])
            if len(got) != 1:
                problems.append(f"backfill: {key} has {len(got)} tasks, expected exactly one")
            elif got[0].task_id not in finish_line:
                problems.append(f"backfill: {key}'s task {got[0].task_id} has no archived FINISH line")
        if getattr(self, "backfill_runs", None) != [0, 0, 0]:
            problems.append(f"backfill runs exited {getattr(self, 'backfill_runs', None)} (expected 0, 0, 0)")
        report = [json.loads(x) for x in (OUT / "backfill.jsonl").read_text().splitlines()] \
            if (OUT / "backfill.jsonl").exists() else []
        if sorted(r["key"] for r in report if r["result"] == "submitted") != sorted(before):
            problems.append("the backfill report does not list every pre-existing video as submitted")
        print(f"\nBackfill: {len(before)} videos that were in the bucket before the deployment, each submitted once "
              f"and archived; report {OUT / 'backfill.jsonl'} ({len(report)} lines)")
        for key, ts in by_object.items():
            if key not in {(u.bucket, u.key) for u in items}:
                problems.append(f"unexpected task for {key}: {[t.task_id for t in ts]}")

        print(f"\nSubmitted ({len(rows)} objects, {len(tasks)} MPS tasks; round 1 with every callback took {seconds:.1f}s):")
        _table(["object", "rule", "ScheduleId / task", "SessionId", "output folder (OutputDir)"], rows)
        skipped = [(f"{ln['storage']}://{ln['bucket']}/{ln['key']}", ln["reason"]) for ln in first if ln.get("message") == "skipped"]
        print(f"\nSkipped ({len(skipped)}):")
        _table(["object", "reason"], skipped)
        ignored = [ln["reason"] for ln in first if ln.get("message") == "ignored"]
        print(f"\nIgnored events: {', '.join(ignored) or '(none)'}")
        if not any(r == "s3:TestEvent" for r in ignored):
            problems.append("the s3:TestEvent message was not acknowledged as ignored")
        dupes1 = [f"{d['storage']}://{d['bucket']}/{d['key']}" for d in first if d.get("message") == "duplicate"]
        if dupes1:
            print(f"Duplicate deliveries in round 1, rejected by SessionId: {', '.join(dupes1)}")

        print("\nTasks and their archived FINISH line:")
        _table(["object", "TaskId", "final status", "archive object (line id)"], finals)
        print(f"\nArchive objects ({sum(len(v) for v in archive.values())} lines in {len(archive)} objects):")
        _table(["object", "lines", "statuses"], [
            (k, len(v), ", ".join(f"{s}×{n}" for s, n in _count(ln["status"] for ln in v).items())) for k, v in sorted(archive.items())])

        ledger = [ln for lines in self.archive_lines(ledger=True).values() for ln in lines]
        print(f"\nSubmission ledger (event_type=submissions): {len(ledger)} lines, "
              f"{', '.join(f'{r}×{n}' for r, n in _count(ln['result'] for ln in ledger).items()) or 'none'}")
        ledgered = {(ln["session_id"], ln["task_id"]) for ln in ledger if ln["result"] == "submitted"}
        for t in tasks:
            if (t.session_id, t.task_id) not in ledgered:
                problems.append(f"task {t.task_id} (SessionId {t.session_id}) has no 'submitted' ledger line")

        new_tasks = getattr(self, "tasks_round2", len(tasks)) - tasks_round1
        dup2 = sum(1 for ln in second if ln.get("message") == "duplicate")
        sub2 = sum(1 for ln in second if ln.get("message") == "submitted")
        print(f"\nRound 2 (same uploads again + redelivered events): {dup2} duplicates rejected by MPS SessionId, "
              f"{sub2} submitted, {new_tasks} new MPS tasks")
        if new_tasks or sub2:
            problems.append(f"redelivery submitted {sub2} objects and created {new_tasks} new tasks (expected 0)")

        all_logs = {c.name: self.logs(c.name) for c in self.containers}
        for name, lines in all_logs.items():
            for ln in lines:
                if ln.get("level") == "ERROR":
                    problems.append(f"{name} logged an error: {ln.get('message')}: {ln.get('error') or ln.get('reason')}")
        for name, dlq in (("upload", self.upload_dlq), ("callback", self.callback_dlq)):
            n = int(self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
                    ["Attributes"]["ApproximateNumberOfMessages"])
            if n:
                problems.append(f"{n} messages in the {name} DLQ")
        reqs = mps.requests
        bad = [r for r in reqs if not r.signed or r.verdict not in ("accepted", "InvalidParameterValue.SessionId")]
        failed_deliveries = [d for d in mps.deliveries if not d.ok]
        print(f"MPS emulator: {len(reqs)} requests, all TC3-signed and valid: {'yes' if not bad else 'NO'}; "
              f"{len(mps.deliveries)} callbacks delivered ({_count(d.transport for d in mps.deliveries)}), "
              f"{len(failed_deliveries)} failed")
        for r in bad:
            problems.append(f"emulator answered {r.verdict} (signed={r.signed})")
        for d in failed_deliveries:
            problems.append(f"callback for {d.task_id} ({d.status}, {d.transport}) failed: {d.error}")
        rejected = [a for a in self.function_url.answers if a[0] != 200]
        if rejected:
            problems.append(f"the function URL answered {len(rejected)} callbacks with an error: {rejected[:3]}")
        self.check_questions(tasks, problems)
        self.leaks(archive)

        print(f"\nFunction logs: {OUT}/{{submit,archive}}-{{aws,scf}}.log")
        if problems:
            print("\nFAILED:")
            for p in problems:
                print(f"  - {p}")
            return 1
        print("\nOK: every media object was submitted exactly once and its FINISH callback archived; every other "
              "object was skipped with a reason.")
        return 0

    def leaks(self, archive: dict[str, list[dict[str, Any]]]) -> None:
        text = json.dumps(archive, ensure_ascii=False) + "".join(
            (OUT / f"{c.name}.log").read_text(encoding="utf-8") for c in self.containers)
        for secret in (S3_SECRET, NOTIFY_KEY, TOKEN, SIGN_KEY, next(iter(self.stack.mps.credentials.values()))[0]):
            if secret in text:
                self.problems.append("a secret appeared in a log line or an archive object")


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _table(header: list[str], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        print("  (none)")
        return
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(header))]
    for n, r in enumerate(cells):
        print("  " + "  ".join(c + " " * (widths[i] - _width(c)) for i, c in enumerate(r)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def main() -> int:
    print("starting the local stack (moto: S3, SQS, COS buckets; MPS emulator) ...", flush=True)
    os.environ.setdefault("AWS_DEFAULT_REGION", AWS_REGION)
    with LocalStack(complete_after=0.5) as stack:
        print(f"  moto {stack.moto.url}   MPS emulator {stack.mps.url}", flush=True)
        return Demo(stack).run()


if __name__ == "__main__":
    sys.exit(main())
