"""Compaction: 10,000 single-callback objects of one day (an HTTP-callback deployment) → one object per hour.

    python3 tasks.py bench compact [--objects 10000] [--rounds 3]

Each object is what the archive function writes for one HTTP callback (``lines.build_line`` + ``single_object`` of
an emulator notification, verified ``Timestamp`` spread over yesterday's 24 hours), put into moto in its own
process. Then the installed command ``mps-triggers compact`` (a subprocess, as an operator runs it) merges every
closed hour. Reported: objects and bytes before and after (the goal is at least 100× fewer objects), lines lost and
kept twice (by id, read back from the bucket), and the command's time against a baseline in the same script: a bare
boto3 listing + GET of every object with 16 threads (what any compaction must at least read). Medians of
``--rounds`` runs, each on a fresh bucket.

Results go to ``bench/results/compact.json``. Exit status 1 when a line is lost or kept twice.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import print_rows, save  # noqa: E402
from mps_triggers import lines as L  # noqa: E402
from mpslocal.notifications import notification, task_event  # noqa: E402
from mpslocal.stack import AWS_KEYS, LocalStack  # noqa: E402


def objects(n: int, day_start: float) -> dict[str, bytes]:
    """``n`` single-callback archive objects (key → content) of the day beginning at ``day_start``."""
    out = {}
    for i in range(n):
        sid, key = f"mt1-{i:040x}", f"uploads/{i % 97:02d}/clip {i:06d}.mp4"
        ctx = json.dumps({"v": 1, "src": "cos", "b": "media-1250000000", "k": key, "r": "videos", "s": sid})
        request = {"InputInfo": {"Type": "COS", "CosInputInfo": {"Bucket": "media-1250000000",
                                                                 "Region": "ap-guangzhou", "Object": "/" + key}},
                   "ScheduleId": 20001, "SessionId": sid, "SessionContext": ctx}
        et, ev = task_event(request, f"1250000000-ScheduleTask-{i:032x}tt7", "FINISH", -1 if i % 9 == 0 else None)
        ts = int(day_start + i * 86400 / n)
        doc = notification(et, ev, sid, ctx, "bench-notify-key")
        doc["Timestamp"] = ts
        line = L.build_line(doc, "http", f"req-{i}", ts - 600, verified=True)
        obj = L.single_object("mps/", line, ts - 600)
        out[obj.key] = obj.data
    return out


def read_back(s3, bucket: str) -> tuple[list[str], int, int]:
    """``(every line id in every object, objects, bytes)`` of the bucket."""
    ids, count, size = [], 0, 0
    keys = [(o["Key"], o["Size"]) for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    for key, length in keys:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        text = gzip.decompress(data) if key.endswith(".gz") else data
        ids.extend(json.loads(x)["id"] for x in text.splitlines() if x.strip())
        count, size = count + 1, size + length
    return ids, count, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    now = time.time()
    day_start = now - now % 86400 - 86400  # yesterday, every hour closed
    made = objects(args.objects, day_start)
    rows: dict = {"objects_written": len(made)}
    runs, baselines, bad = [], [], False
    with LocalStack(rate_limit=None, moto_process=True) as stack:
        s3 = stack.boto3("s3")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MPS_", "ARCHIVE_"))},
               **stack.environment(), **AWS_KEYS}
        for n in range(args.rounds):
            bucket = f"bench-compact-{n}"
            s3.create_bucket(Bucket=bucket)
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), made.items()))
            before_ids, before_objects, before_bytes = read_back(s3, bucket)
            t0 = time.perf_counter()
            keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                    for o in page.get("Contents", [])]
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda k: s3.get_object(Bucket=bucket, Key=k)["Body"].read(), keys))
            baselines.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "mps_triggers_cli", "compact", f"s3://{bucket}/mps/",
                                   "--format", "json", "--no-progress"], env=env, capture_output=True, text=True)
            runs.append(time.perf_counter() - t0)
            if done.returncode:
                print(done.stderr, file=sys.stderr)
                return 1
            after_ids, after_objects, after_bytes = read_back(s3, bucket)
            lost = len(set(before_ids) - set(after_ids))
            twice = len(after_ids) - len(set(after_ids))
            bad = bad or lost > 0 or twice > 0
            rows.update({"objects_before": before_objects, "objects_after": after_objects,
                         "fewer_objects": round(before_objects / after_objects, 1), "bytes_before": before_bytes,
                         "bytes_after": after_bytes, "smaller_bytes": round(before_bytes / after_bytes, 1),
                         "lines": len(set(before_ids)), "lines_lost": lost, "lines_twice": twice})
    rows.update({"compact_seconds_median": round(statistics.median(runs), 2),
                 "baseline_list_get_seconds_median": round(statistics.median(baselines), 2),
                 "compact_vs_baseline": round(statistics.median(runs) / statistics.median(baselines), 2),
                 "rounds": args.rounds})
    print_rows("compaction of one day of single-callback objects", list(rows.items()))
    print(f"saved {save('compact', rows)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
