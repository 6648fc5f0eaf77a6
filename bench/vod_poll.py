"""VOD reliable callback: how fast the vod function drains a VOD application's events, against the bare API loop.

    python3 tasks.py bench vod_poll [--files 800] [--runs 3]

A VOD application (the VOD emulator over HTTP) holds ``--files`` NewFileUpload events; each file is routed to a task
flow, whose ProcedureStateChanged event follows 50 ms after it is started, so the application hands out 2 × files
events in all. Two ways to drain it, each run ``--runs`` times on a fresh application, medians reported:

- *baseline*: the bare loop of the same client (:func:`mps_triggers.mps.vod_client`), PullEvents then ConfirmEvents
  of every handle, nothing archived or submitted: the floor the API and the emulator set on this machine;
- *vod function*: ``functions/vod/app.py`` in its own process (a function container, as SCF runs it), invoked by a
  timer until nothing is left: every event archived to moto S3, every file submitted (ProcessMediaByProcedure),
  the ledger written, then ConfirmEvents for the events done.

Reported: events per second of each and their ratio; the vod function's submissions per second against
ProcessMediaByProcedure's documented 100 requests/s (the emulator enforces it: the physical limit of a drain, since
every file is one submission); requests per event (PullEvents, ConfirmEvents, submissions, those refused by the
limit); archive objects per pull; and the checks that each file has exactly one task and every event a line.
Results go to ``bench/results/vod_poll.json``; exit status 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import print_rows, save  # noqa: E402

SUB = 1500000001
ROUTES = [{"name": "flows", "types": ["mp4"], "procedure": "hls-720p"}]


def drain_baseline(vod, files: int) -> float:
    """Seconds the bare PullEvents/ConfirmEvents loop takes to drain ``2 × files`` events."""
    from mps_triggers.mps import Credentials, vod_client

    secret_id, (secret_key, _) = next(iter(vod.credentials.items()))
    client = vod_client(vod.url, Credentials(secret_id, secret_key))
    started, seen = time.monotonic(), 0
    while seen < 2 * files:
        events = client.pull_events(SUB).response.get("EventSet") or []
        handles = [e["EventHandle"] for e in events]
        for at in range(0, len(handles), 16):
            client.confirm_events(handles[at:at + 16], SUB)
        seen += len(events)
        for e in events:  # the flow a NewFileUpload would have started, so the baseline sees as many events
            if e["EventType"] == "NewFileUpload":
                vod.emit(SUB, {"EventType": "ProcedureStateChanged", "ProcedureStateChangeEvent": {
                    "TaskId": f"bench-{uuid.uuid4().hex}", "Status": "FINISH", "ErrCode": 0,
                    "FileId": e["FileUploadEvent"]["FileId"]}})
    client.close()
    return time.monotonic() - started


def drain_function(stack, vod, files: int, out: Path) -> tuple[float, str, int, list[str]]:
    """Seconds the vod function (its own process, timer invocations) takes to drain ``files`` uploads and their
    flows' events, once its container is warm; the archive bucket; invocations; the FileIds."""
    from mpslocal.container import FunctionContainer

    bucket = f"bench-vod-{uuid.uuid4().hex[:8]}"
    stack.boto3("s3").create_bucket(Bucket=bucket)
    secret_id, (secret_key, _) = next(iter(vod.credentials.items()))
    env = {"AWS_ENDPOINT_URL": stack.moto.url, "ARCHIVE_URI": f"s3://{bucket}/vod", "VOD_ENDPOINT": vod.url,
           "VOD_SUB_APP_ID": str(SUB), "VOD_ROUTES": json.dumps(ROUTES), "TENCENTCLOUD_SECRETID": secret_id,
           "TENCENTCLOUD_SECRETKEY": secret_key, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "warning",
           "POWERTOOLS_METRICS_DISABLED": "true"}
    fn = FunctionContainer("vod-bench", ROOT / "functions" / "vod" / "app.py", env, out / "vod-bench.log",
                           platform="scf", timeout=300)
    try:
        fn({"Type": "Timer"})  # the container's cold start and an empty poll: not timed
        ids = [vod.upload(f"clip {i}.mp4", SUB) for i in range(files)]
        started, invocations = time.monotonic(), 0
        while vod.pending(SUB) or vod.scheduled():
            fn({"Type": "Timer", "TriggerName": "vod-poll"})
            invocations += 1
        return time.monotonic() - started, bucket, invocations, ids
    finally:
        fn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=800)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from mpslocal.stack import LocalStack
    from mpslocal.vod_emulator import VodEmulator

    out = Path(tempfile.mkdtemp(prefix="vod-poll-"))  # the function container's log
    runs, problems = [], []
    with LocalStack(rate_limit=None) as stack:
        secret_id, (secret_key, _) = next(iter(stack.mps.credentials.items()))
        for run in range(args.runs):
            with VodEmulator(secret_id, secret_key, sub_app_ids=(SUB,), complete_after=0.05, pull_wait=0.0) as vod:
                vod.configure(SUB, "PULL")
                for i in range(args.files):
                    vod.emit(SUB, {"EventType": "NewFileUpload", "FileUploadEvent": {
                        "FileId": str(1000 + i), "MediaBasicInfo": {"Name": f"f{i}.mp4", "Type": "mp4"}}})
                base = drain_baseline(vod, args.files)
            with VodEmulator(secret_id, secret_key, sub_app_ids=(SUB,), complete_after=0.05, pull_wait=0.0) as vod:
                vod.configure(SUB, "PULL")
                seconds, bucket, invocations, ids = drain_function(stack, vod, args.files, out)
                counts: dict[str, int] = {}
                for r in vod.requests:
                    counts[r.action] = counts.get(r.action, 0) + 1
                    if r.verdict == "RequestLimitExceeded":
                        counts["refused by the limit"] = counts.get("refused by the limit", 0) + 1
                tasks: dict[str, int] = {}
                for t in vod.tasks:
                    tasks[t["FileId"]] = tasks.get(t["FileId"], 0) + 1
                s3 = stack.boto3("s3")
                keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                        for o in page.get("Contents", [])]
                line_ids = set()
                for key in keys:
                    if "event_type=submissions" in key:
                        continue
                    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
                    line_ids |= {json.loads(x)["id"] for x in body.splitlines() if x.strip()}
            events = 2 * args.files
            if sorted(tasks) != sorted(ids) or set(tasks.values()) != {1}:
                problems.append(f"run {run}: not exactly one task per file")
            if len(line_ids) != events:
                problems.append(f"run {run}: {len(line_ids)} lines for {events} events")
            runs.append({"baseline_s": base, "function_s": seconds, "events": events, "invocations": invocations,
                         "requests": counts, "objects": len(keys)})
            print(f"run {run + 1}: baseline {events / base:.0f} events/s, vod function {events / seconds:.0f} "
                  f"events/s ({invocations} invocations)", flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in ("baseline_s", "function_s")}
    events = runs[0]["events"]
    req = {a: statistics.median(r["requests"].get(a, 0) for r in runs) / events
           for a in ("PullEvents", "ConfirmEvents", "ProcessMediaByProcedure", "refused by the limit")}
    pulls = statistics.median(r["requests"].get("PullEvents", 0) for r in runs)
    rows = [("events per run", f"{events} ({args.files} NewFileUpload + their ProcedureStateChanged)"),
            ("baseline (PullEvents + ConfirmEvents only)", f"{events / med['baseline_s']:.0f} events/s"),
            ("vod function (archive, submit, ledger, confirm)", f"{events / med['function_s']:.0f} events/s"),
            ("ratio function / baseline (medians)", f"{med['baseline_s'] / med['function_s']:.2f}"),
            ("submissions/s, of ProcessMediaByProcedure's 100/s",
             f"{args.files / med['function_s']:.1f} ({args.files / med['function_s'] / 100:.2f})"),
            ("requests per event", ", ".join(f"{a} {v:.3f}" for a, v in req.items())),
            ("archive objects per PullEvents", f"{statistics.median(r['objects'] for r in runs) / max(pulls, 1):.2f}"),
            ("checks", "each file one task, every event one line" if not problems else "; ".join(problems))]
    print_rows(f"vod_poll (medians of {args.runs} runs)", rows)
    save("vod_poll", {"files": args.files, "runs": runs, "medians": med, "requests_per_event": req,
                      "problems": problems})
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
