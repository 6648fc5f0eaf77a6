"""Deadlines against peers that trickle bytes: every invocation returns in time, unfinished records reported, none lost.

    python3 tasks.py bench deadline [--uploads 500] [--callbacks 2000] [--http-callbacks 100] [--trickle-rate 0.1]
                                    [--trickle-seconds 0.25] [--submit-timeout 5] [--archive-timeout 6]

*Submit*: ``--uploads`` S3 notifications through the upload queue to four submit containers (function timeout
``--submit-timeout`` s, batches of 10), while the MPS emulator sends ``--trickle-rate`` of its answers one byte every
``--trickle-seconds`` (each read succeeds; the answer takes about a minute; the task is accepted all the same).
*Archive*: ``--callbacks`` notifications through the callback queue (batches of 100) and ``--http-callbacks``
through a function URL (timeout ``--archive-timeout`` s), while the WeCom robot trickles every answer.
Reported: the longest invocation of each against its timeout (goal: below), records reported unfinished and
redelivered, uploads submitted once / twice / lost (goal: all once, 0 lost), callbacks missing (goal 0) and archive
records failed because of the push (goal 0). Results also go to ``bench/results/deadline.json``. Exit status 1 if a
goal is missed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import print_rows, save  # noqa: E402
from mpslocal.reliability import run_deadline  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uploads", type=int, default=500)
    ap.add_argument("--callbacks", type=int, default=2000)
    ap.add_argument("--http-callbacks", type=int, default=100)
    ap.add_argument("--trickle-rate", type=float, default=0.1)
    ap.add_argument("--trickle-seconds", type=float, default=0.25)
    ap.add_argument("--submit-timeout", type=float, default=5.0)
    ap.add_argument("--archive-timeout", type=float, default=6.0)
    args = ap.parse_args()
    r = run_deadline(args.uploads, args.callbacks, args.http_callbacks, args.trickle_rate, args.trickle_seconds,
                     args.submit_timeout, args.archive_timeout)
    rows = [
        ("submit: invocations, longest / function timeout", f"{r.submit_invocations}, {r.submit_max_seconds} s / "
                                                              f"{r.submit_timeout} s"),
        ("submit: answers trickled by MPS, records reported unfinished", f"{r.trickled_requests}, "
                                                                         f"{r.submit_reported_unfinished}"),
        ("submit: uploads submitted once / twice / lost / in the DLQ", f"{r.submitted_once} / {r.submitted_twice} / "
                                                                       f"{r.uploads_lost} / {r.uploads_in_dlq}"),
        ("archive: SQS invocations, longest / function timeout", f"{r.archive_sqs_invocations}, "
                                                                  f"{r.archive_sqs_max_seconds} s / {r.archive_timeout} s"),
        ("archive: longest function-URL invocation", f"{r.archive_http_max_seconds} s / {r.archive_timeout} s"),
        ("archive: records failed because of the push (goal 0), callbacks missing (goal 0)",
         f"{r.archive_records_failed}, {r.callbacks_missing}"),
        ("archive: digests recorded under push_failed", r.push_failed),
        ("time", f"{r.seconds} s"),
    ]
    print_rows("deadline benchmark", rows)
    save("deadline", {"args": vars(args), **r.as_dict()})
    ok = (r.submit_max_seconds < r.submit_timeout and r.archive_sqs_max_seconds < r.archive_timeout
          and r.archive_http_max_seconds < r.archive_timeout and r.uploads_lost == 0 and r.submitted_twice == 0
          and r.archive_records_failed == 0 and r.callbacks_missing == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
