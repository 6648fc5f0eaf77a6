"""HTTP callback latency: time from a signed MPS callback's request to its 200, archive written, on both platforms.

    python3 tasks.py bench callback_latency [--callbacks 1000]

The archive function runs in its own process (a function container, as Lambda and SCF run it) behind a local
function URL (:class:`mpslocal.runner.FunctionUrlServer`): a Lambda function URL archiving to moto S3 (boto3), and
an SCF function URL archiving to COS through the COS SDK (moto in its own process serves both). Each callback is a
distinct ScheduleTask notification, signed with the NotifyKey (``Sign``), with the URL token; the client is an
``httpx`` client keeping its connection, one request at a time. Reported per platform:

- *cold*: from starting the container (a fresh process: interpreter, import, first invocation) to the first 200;
- *warm*: p50, p90, p99 and max over ``--callbacks`` requests (each answered only after its object is written);
- *objects*: one PUT per callback, so the archive holds one object per callback until compaction merges them
  (checked: the count of objects equals the count of callbacks answered 200).

Results also go to ``bench/results/callback_latency.json``. Exit status 1 when a callback is not answered 200 or the
object count differs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import print_rows, save  # noqa: E402

NOTIFY_KEY = "bench-latency-notify-key"
TOKEN = "bench-latency-token"


def callback(i: int) -> bytes:
    """A distinct signed ScheduleTask notification (FINISH), as MPS POSTs it."""
    from mpslocal.notifications import notification, task_event

    key = f"uploads/latency/{i:06d}.mp4"
    req = {"InputInfo": {"Type": "COS", "CosInputInfo": {"Bucket": "media-1250000000", "Region": "ap-guangzhou",
                                                         "Object": "/" + key}},
           "OutputDir": "/mps-output/", "ScheduleId": 20001}
    et, ev = task_event(req, f"1250000000-ScheduleTask-{uuid.uuid4().hex}tt7", "FINISH", None)
    ctx = json.dumps({"v": 1, "src": "cos", "b": "media-1250000000", "k": key, "r": "videos"})
    return json.dumps(notification(et, ev, f"mt1-{uuid.uuid4().hex}{i:08d}", ctx, NOTIFY_KEY)).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_platform(stack, platform: str, n: int, log_dir: Path) -> dict:
    import httpx

    from mpslocal.container import FunctionContainer
    from mpslocal.runner import FunctionUrlServer

    s3 = stack.boto3("s3")
    run = uuid.uuid4().hex[:6]
    env = {"AWS_ENDPOINT_URL": stack.moto.url, "COS_ENDPOINT_URL": stack.moto.url, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1", "MPS_NOTIFY_KEY": NOTIFY_KEY, "CALLBACK_TOKEN": TOKEN, "LOG_LEVEL": "warning",
           "PYTHONPATH": str(ROOT)}
    if platform == "lambda":
        bucket = f"latency-s3-{run}"
        env["ARCHIVE_URI"] = f"s3://{bucket}/callbacks"
    else:
        bucket = f"latency-cos-{run}-1250000000"
        mps = stack.environment()
        env.update({"ARCHIVE_URI": f"cos://{bucket}/callbacks", "ARCHIVE_REGION": "ap-guangzhou",
                    "TENCENTCLOUD_SECRETID": mps["MPS_SECRET_ID"], "TENCENTCLOUD_SECRETKEY": mps["MPS_SECRET_KEY"]})
    s3.create_bucket(Bucket=bucket)
    bodies = [callback(i) for i in range(n + 1)]
    with httpx.Client(timeout=60) as client:
        started = time.perf_counter()
        container = FunctionContainer(f"archive-{platform}", ROOT / "functions" / "archive" / "app.py", env,
                                      log_dir / f"latency-{platform}.log", platform="scf" if platform == "scf" else
                                      "lambda", timeout=30)
        server = FunctionUrlServer(container, platform=platform)
        try:
            url = f"{server.url}?token={TOKEN}"
            first = client.post(url, content=bodies[0])
            cold = time.perf_counter() - started
            durations, statuses = [], [first.status_code]
            for body in bodies[1:]:
                t = time.perf_counter()
                resp = client.post(url, content=body)
                durations.append(time.perf_counter() - t)
                statuses.append(resp.status_code)
        finally:
            server.stop()
            container.close()
    objects = sum(len(p.get("Contents", [])) for p in
                  s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="callbacks/"))
    ms = [d * 1000 for d in durations]
    return {"platform": platform, "store": "S3 (boto3)" if platform == "lambda" else "COS (cos-python-sdk-v5)",
            "cold_ms": round(cold * 1000, 1), "p50_ms": round(percentile(ms, 0.50), 1),
            "p90_ms": round(percentile(ms, 0.90), 1), "p99_ms": round(percentile(ms, 0.99), 1),
            "max_ms": round(max(ms), 1), "mean_ms": round(statistics.fmean(ms), 1), "callbacks": n + 1,
            "answered_200": statuses.count(200), "objects": objects}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--callbacks", type=int, default=1000, help="warm callbacks per platform (after the cold one)")
    args = ap.parse_args()
    from mpslocal.stack import LocalStack

    log_dir = ROOT / ".demo" / "latency"
    log_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    with LocalStack(rate_limit=None, moto_process=True) as stack:
        for platform in ("lambda", "scf"):
            results[platform] = run_platform(stack, platform, args.callbacks, log_dir)
    rows = []
    for r in results.values():
        rows += [(f"{r['platform']} → {r['store']}: cold (process start to the first 200)", f"{r['cold_ms']} ms"),
                 (f"{r['platform']}: warm p50 / p90 / p99 / max over {args.callbacks}",
                  f"{r['p50_ms']} / {r['p90_ms']} / {r['p99_ms']} / {r['max_ms']} ms"),
                 (f"{r['platform']}: answered 200 / objects written (one PUT each)",
                  f"{r['answered_200']} / {r['objects']} of {r['callbacks']}")]
    print_rows(f"callback latency, signed function-URL callbacks (Python {sys.version.split()[0]}, "
               f"{os.cpu_count()} CPUs)", rows)
    save("callback_latency", {"callbacks": args.callbacks, **results})
    ok = all(r["answered_200"] == r["callbacks"] == r["objects"] for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
