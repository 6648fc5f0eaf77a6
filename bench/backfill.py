"""Backfill: `mps-triggers backfill` of a bucket against the emulator's 100 ProcessMedia requests/s, with throttling.

    python3 tasks.py bench backfill [--objects 10000] [--rate 95] [--throttle 0.05] [--listing 100000]

Three runs of the installed command (a subprocess, as an operator runs it), moto in its own process:

1. ``--objects`` objects, ``backfill --rate R`` with ``--throttle`` of the requests answered RequestLimitExceeded
   (injected, before the emulator's own 100/s window). Reported from the emulator's request records: objects
   submitted exactly once / twice or more / missing, the sustained accepted rate (central 90 % of acceptances) as a
   fraction of ``--rate``, MPS requests per submitted object (the floor with injected throttling is
   1 / (1 - throttle)), requests refused by the 100/s window, and the busiest one-second window on arrival at the
   emulator, of all requests and of those MPS's limit counts (the injected refusals are answered before it). The
   command releases at most ``--rate`` requests in any second by construction
   (:class:`mps_triggers.retries.RateLimiter`); arrival adds the jitter of signing, the connection pool and thread
   scheduling on a machine shared with moto and the emulator.
2. The same on a fresh bucket, ``kill -9`` when half the objects are accepted, then ``--resume``: objects submitted
   twice and missing, and the repeats the resume sent (MPS answers them as duplicates).
3. ``--dry-run`` over ``--listing`` keys: objects listed and planned per second, against a bare boto3
   ``list_objects_v2`` pagination of the same bucket in the same script (the baseline).

Results go to ``bench/results/backfill.json``. Exit status 1 when an object is submitted twice or missing.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import print_rows, save  # noqa: E402
from mpslocal.emulator import FaultPlan  # noqa: E402
from mpslocal.stack import AWS_KEYS, LocalStack  # noqa: E402


def fill(s3, bucket: str, n: int, prefix: str = "old/") -> list[str]:
    keys = [f"{prefix}{i // 1000:03d}/clip {i:06d}.mp4" for i in range(n)]
    s3.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"v"), keys))
    return keys


def command(stack, archive: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPS_", "ARCHIVE_"))}
    env.update(stack.environment())
    env.update(AWS_KEYS)
    env.update({"MPS_SCHEDULE_ID": "20001", "MPS_S3_SECRET_ID": "AKIABENCHMPSREADER01",
                "MPS_S3_SECRET_KEY": "bench-s3-secret", "ARCHIVE_URI": f"s3://{archive}/callbacks"})
    return [sys.executable, "-m", "mps_triggers_cli", "backfill"], env


def windows(times: list[float]) -> int:
    """The most requests in any one-second window (sliding)."""
    times, best, start = sorted(times), 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def per_object(mps, bucket: str, keys: list[str]) -> tuple[int, int, int]:
    """(exactly once, twice or more, missing) of ``bucket``'s ``keys`` by the emulator's accepted tasks."""
    counts: dict[str, int] = {}
    for t in mps.tasks:
        s3 = t.body["InputInfo"]["S3InputInfo"]
        if s3["S3Bucket"] == bucket:
            counts[s3["S3Object"]] = counts.get(s3["S3Object"], 0) + 1
    once = sum(1 for k in keys if counts.get(k) == 1)
    twice = sum(1 for k in keys if counts.get(k, 0) > 1)
    return once, twice, len(keys) - once - twice


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=95.0)
    ap.add_argument("--throttle", type=float, default=0.05)
    ap.add_argument("--listing", type=int, default=100000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=1, help="listing rounds (each: boto3 listing, then the dry run)")
    args = ap.parse_args()
    out: dict = {"objects": args.objects, "rate": args.rate, "throttle": args.throttle}
    bad = False
    with LocalStack(rate_limit=100, moto_process=True) as stack, tempfile.TemporaryDirectory() as tmp:
        s3 = stack.boto3("s3")
        archive = f"bench-archive-{uuid.uuid4().hex[:6]}"
        s3.create_bucket(Bucket=archive)
        argv, env = command(stack, archive)

        if args.objects:
            bad |= run_and_resume(stack, s3, argv, env, args, tmp, out)
            report(out, args)
        if args.listing:
            listing(stack, s3, argv, env, args, out)
            report(out, args)
    return 1 if bad else 0


def run_and_resume(stack, s3, argv: list[str], env: dict[str, str], args, tmp: str, out: dict) -> bool:
    """Phases 1 and 2 (module docstring); True when an object was submitted twice or is missing."""
    bad = False
    # 1. the run
    bucket = f"bench-backfill-{uuid.uuid4().hex[:6]}"
    keys = fill(s3, bucket, args.objects)
    stack.mps.plan = FaultPlan(throttle=args.throttle, seed=11)
    t0 = time.monotonic()
    done = subprocess.run([*argv, f"s3://{bucket}/", "--rate", str(args.rate), "--concurrency",
                           str(args.concurrency), "--no-progress", "--format", "json", "--state-dir", tmp],
                          env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    result = json.loads(done.stdout)
    reqs = [r for r in stack.mps.requests if r.action == "ProcessMedia"]
    accepted = sorted(r.at for r in reqs if r.verdict == "accepted")
    lo, hi = accepted[len(accepted) // 20], accepted[len(accepted) * 19 // 20 - 1]
    sustained = (len(accepted) * 0.9) / (hi - lo) if hi > lo else 0.0
    once, twice, missing = per_object(stack.mps, bucket, keys)
    bad |= bool(twice or missing)
    out["run"] = {
        "exit": done.returncode, "seconds": round(seconds, 1), "submitted_once": once, "submitted_twice": twice,
        "missing": missing, "sustained_accepted_per_s": round(sustained, 1),
        "sustained_fraction_of_rate": round(sustained / args.rate, 3),
        "requests": len(reqs), "requests_per_object": round(len(reqs) / max(1, once + twice), 4),
        "requests_per_object_floor": round(1 / (1 - args.throttle), 4),
        "injected_throttles": sum(r.verdict == "injected:RequestLimitExceeded" for r in reqs),
        "refused_by_100_per_s": sum(r.verdict == "RequestLimitExceeded" for r in reqs),
        "busiest_second": windows([r.at for r in reqs]),
        "busiest_second_counted_by_mps": windows([r.at for r in reqs if not r.verdict.startswith("injected:")]),
        "ideal_seconds": round(args.objects / args.rate, 1),
        "results": result["results"]}

    # 2. kill -9 half way, then --resume
    stack.mps.plan = None
    bucket2 = f"bench-resume-{uuid.uuid4().hex[:6]}"
    keys2 = fill(s3, bucket2, args.objects)
    before = len(stack.mps.tasks)
    run2 = [*argv, f"s3://{bucket2}/", "--rate", str(args.rate), "--concurrency", str(args.concurrency),
            "--no-progress", "--format", "json", "--state-dir", tmp]
    proc = subprocess.Popen(run2, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(stack.mps.tasks) - before < args.objects // 2 and proc.poll() is None:
        time.sleep(0.01)
    killed_at = len(stack.mps.tasks) - before
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    requests_before = len(stack.mps.requests)
    resumed = subprocess.run([*run2, "--resume"], env=env, capture_output=True, text=True)
    repeats = sum(r.verdict == "InvalidParameterValue.SessionId" for r in stack.mps.requests[requests_before:])
    once2, twice2, missing2 = per_object(stack.mps, bucket2, keys2)
    bad |= bool(twice2 or missing2)
    out["resume"] = {"killed_after_accepted": killed_at, "exit": resumed.returncode, "submitted_once": once2,
                     "submitted_twice": twice2, "missing": missing2, "repeats_answered_duplicate": repeats}
    return bad


def listing(stack, s3, argv: list[str], env: dict[str, str], args, out: dict) -> None:
    """Phase 3 (module docstring): rounds of --dry-run against bare boto3 pagination, alternating."""
    bucket3 = f"bench-listing-{uuid.uuid4().hex[:6]}"
    fill(s3, bucket3, args.listing)
    ratios, rates, bases = [], [], []
    for _ in range(args.rounds):
        t0 = time.monotonic()
        n = sum(len(p.get("Contents", [])) for p in
                s3.get_paginator("list_objects_v2").paginate(Bucket=bucket3))
        base = n / (time.monotonic() - t0)
        plan = subprocess.run([*argv, f"s3://{bucket3}/", "--dry-run", "--no-progress", "--format", "json"],
                              env=env, capture_output=True, text=True)
        rate = json.loads(plan.stdout)["listed_per_second"]
        rates.append(rate)
        bases.append(base)
        ratios.append(rate / base)
    out["listing"] = {"keys": args.listing, "planned_per_s_median": round(statistics.median(rates)),
                      "boto3_listed_per_s_median": round(statistics.median(bases)),
                      "ratio_median": round(statistics.median(ratios), 3)}


def report(out: dict, args) -> None:
    """Print what was measured so far and save it."""
    rows: list = []
    if "run" in out:
        r, z = out["run"], out["resume"]
        rows += [
            ("objects submitted exactly once / twice / missing", f"{r['submitted_once']} / {r['submitted_twice']} / {r['missing']}"),
            ("sustained accepted rate (fraction of --rate)", f"{r['sustained_accepted_per_s']}/s ({r['sustained_fraction_of_rate']})"),
            ("MPS requests per submitted object (floor)", f"{r['requests_per_object']} ({r['requests_per_object_floor']})"),
            ("injected throttles / refused by the 100/s window", f"{r['injected_throttles']} / {r['refused_by_100_per_s']}"),
            ("busiest one-second window at the emulator: all requests / counted by MPS's limit",
             f"{r['busiest_second']} / {r['busiest_second_counted_by_mps']}"),
            ("drain time vs ideal at --rate", f"{r['seconds']} s vs {r['ideal_seconds']} s"),
            ("kill -9 after accepted; resume: once / twice / missing",
             f"{z['killed_after_accepted']}; {z['submitted_once']} / {z['submitted_twice']} / {z['missing']}"),
            ("repeats sent by the resume (answered duplicate)", z["repeats_answered_duplicate"]),
        ]
    if "listing" in out:
        li = out["listing"]
        rows.append((f"--dry-run over {li['keys']} keys: planned/s vs boto3 listing/s (ratio)",
                     f"{li['planned_per_s_median']} vs {li['boto3_listed_per_s_median']} ({li['ratio_median']})"))
    print_rows(f"backfill: {args.objects} objects at --rate {args.rate:g}, {args.throttle:.0%} throttling injected", rows)
    print(f"saved {save('backfill' if args.objects else 'backfill_listing', out)}")


if __name__ == "__main__":
    sys.exit(main())
