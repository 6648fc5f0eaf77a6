"""Burst: a backfill through the S3 queue and the COS trigger against MPS's 100 requests/s limit, with faults.

    python3 tasks.py bench burst [--s3 10000] [--cos 2000] [--concurrency 4] [--throttle 0.10] [--http5xx 0.02]
                                 [--timeout 0.01] [--drop 0.0]

The S3 objects land first (the upload queue fills, as when a backfill arrives), then ``--concurrency`` submit
containers drain it (Lambda's MaximumConcurrency, batches of 10) while COS uploads invoke ``--concurrency`` SCF
containers. The emulator allows 100 requests/s and injects throttling, HTTP 5xx and timeouts (processed, answered
too late) at the given rates. Reported, by the emulator's SessionId records: objects submitted exactly once, twice
or more (goal 0), lost = neither submitted nor in a DLQ with a reason (goal 0), accepted requests/s as a fraction
of the limit (sustained: central 90 % of acceptances; goal ≥ 0.9), time against the ideal, retries, DLQ count.
Whether MPS's limit or what comes before it bounded the drain: the seconds in which at least 95 requests were
accepted, and the median share of the drain each container spent running invocations (a container that is seldom
busy waits for its queue or its uploads, not for MPS). COS events go to whichever SCF container is idle, as SCF
routes them. Results also go to ``bench/results/burst.json``, with the per-second series of accepted, limit-refused
and injected requests. Exit status 1 on any loss or duplicate.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import print_rows, save  # noqa: E402
from mpslocal.reliability import run_burst  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--s3", type=int, default=10000)
    ap.add_argument("--cos", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8, help="containers per platform (template: MaximumConcurrency 8)")
    ap.add_argument("--throttle", type=float, default=0.10)
    ap.add_argument("--http5xx", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=0.01)
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every MPS answer")
    ap.add_argument("--batch", type=int, default=10, help="SQS batch size of the submit function")
    ap.add_argument("--duplicates", type=float, default=0.0, help="rate of upload messages delivered twice")
    args = ap.parse_args()
    r = run_burst(args.s3, args.cos, args.concurrency, args.throttle, args.http5xx, args.timeout, args.drop,
                  latency=args.latency, batch_size=args.batch, duplicate_uploads=args.duplicates)
    rows = [
        ("uploads (S3 queue / COS trigger)", f"{r.uploads_s3} / {r.uploads_cos}"),
        ("faults injected", f"throttle {args.throttle:.0%}, 5xx {args.http5xx:.0%}, timeout {args.timeout:.0%}, "
                            f"drop {args.drop:.0%} -> {r.injected}"),
        ("submitted exactly once", r.submitted_once),
        ("submitted twice or more (goal 0)", r.submitted_twice_or_more),
        ("lost: not submitted, not in a DLQ (goal 0)", r.lost),
        ("in a DLQ with a reason", r.in_dlq),
        ("accepted/s first to last (fraction of 100/s)", f"{r.accepted_per_s} ({r.limit_fraction})"),
        ("accepted/s sustained, central 90% (goal >= 0.9)", f"{r.sustained_per_s} ({r.sustained_fraction})"),
        ("time to drain vs ideal", f"{r.seconds} s vs {r.ideal_seconds} s (S3 uploads took {r.upload_seconds} s before)"),
        ("seconds at the limit (>= 95 accepted) / with acceptances",
         f"{r.seconds_at_limit} / {r.seconds_with_acceptances}"),
        ("containers busy, median share of the drain (S3 queue / COS trigger)", f"{r.busy_s3} / {r.busy_cos}"),
        ("MPS requests / rejected by the 100/s limit", f"{r.mps_requests} / {r.rejected_by_limit}"),
        ("retries: in-invocation / SQS redeliveries / SCF re-invocations",
         f"{r.client_retries} / {r.sqs_redeliveries} / {r.scf_retries}"),
        ("upload messages delivered twice (injected)", r.duplicated_uploads),
    ]
    print_rows("burst benchmark", rows)
    save("burst", {"args": vars(args), **r.as_dict()})
    return 0 if r.lost == 0 and r.submitted_twice_or_more == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
