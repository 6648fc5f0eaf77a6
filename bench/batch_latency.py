"""A batch of 10 SQS records against the MPS emulator with 50 ms added latency, against one single-record call.

    python3 tasks.py bench batch_latency [--latency 0.05] [--runs 7]

Both run in this process through ``functions/submit/app.py:handler`` against the emulator over real HTTP, with
a warm container (client and pool created by a warm-up call). Measured: the handler's wall time for an SQS event
of 1 record and of 10 records (distinct objects, so every call is a real ProcessMedia acceptance), medians over
``--runs``. Target: batch of 10 < 3 × the single call. Results also go to ``bench/results/batch_latency.json``.
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

from _results import save  # noqa: E402
from mpslocal.container import load_app  # noqa: E402
from mpslocal.emulator import MpsEmulator  # noqa: E402


def sqs_event(n: int) -> dict:
    records = []
    for _ in range(n):
        key = f"bench/{uuid.uuid4().hex}.mp4"
        body = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                             "eventTime": "2026-11-21T03:00:00.000Z", "eventName": "ObjectCreated:Put",
                             "s3": {"bucket": {"name": "bench-in"},
                                    "object": {"key": key, "size": 5412, "eTag": uuid.uuid4().hex}}}]}
        records.append({"messageId": str(uuid.uuid4()), "receiptHandle": "rh", "body": json.dumps(body),
                        "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads", "awsRegion": "us-east-1"})
    return {"Records": records}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with MpsEmulator(latency=args.latency, rate_limit=100) as mps:
        os.environ.update({"MPS_ENDPOINT": mps.url, "MPS_SECRET_ID": next(iter(mps.credentials)),
                           "MPS_SECRET_KEY": next(iter(mps.credentials.values()))[0], "MPS_SCHEDULE_ID": "20001",
                           "MPS_S3_SECRET_ID": "AKIABENCH", "MPS_S3_SECRET_KEY": "bench-secret", "LOG_LEVEL": "warning"})
        app = load_app("submit")
        app.handler(sqs_event(10), None)  # warm container: settings, client, connection pool, threads
        single, batch = [], []
        for _ in range(args.runs):
            for n, sink in ((1, single), (10, batch)):
                event = sqs_event(n)
                t = time.perf_counter()
                assert app.handler(event, None) == {"batchItemFailures": []}
                sink.append((time.perf_counter() - t) * 1000)
        accepted = sum(r.verdict == "accepted" for r in mps.requests)
    s, b = statistics.median(single), statistics.median(batch)
    ratio = b / s
    print(f"SQS batch vs single record, emulator latency {args.latency * 1000:.0f} ms, median of {args.runs}")
    print(f"  single record   {s:7.1f} ms")
    print(f"  batch of 10     {b:7.1f} ms   ({ratio:.2f}x the single call; target < 3x; serial would be ~10x)")
    print(f"  MPS requests accepted: {accepted}")
    save("batch_latency", {
        "latency_ms": args.latency * 1000, "runs": args.runs, "single_ms": round(s, 1), "batch10_ms": round(b, 1),
        "ratio": round(ratio, 2), "single_all": [round(x, 1) for x in single], "batch_all": [round(x, 1) for x in batch]})
    return 0 if ratio < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
