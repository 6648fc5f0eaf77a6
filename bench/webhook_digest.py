"""Chat digests under a WeCom robot's limits: no callback redelivered or lost because of the push.

    python3 tasks.py bench webhook_digest [--callbacks 10000] [--batch 100] [--per-second 0]

``--callbacks`` signed notifications (one in three with a failed subtask, keys with CJK characters and ``<…>``) go
through the callback queue to ``functions/archive/app.py`` in SQS batches of ``--batch``, all at once
(``--per-second 0``) or at a steady rate. A local WeCom group robot (``mpslocal.chat``) enforces 20 messages a minute
and 4,096 bytes of markdown with its own code. Reported: records failed and redelivered (goal 0), messages in the
DLQ (goal 0), the robot's busiest minute (goal ≤ 20) and largest message, digests delivered or recorded under
push_failed, and every task id either in an archive object a delivered digest names or in a push_failed record
(goal: 0 in neither). Results also go to ``bench/results/webhook_digest.json``. Exit status 1 if a goal is missed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import print_rows, save  # noqa: E402
from mpslocal.reliability import run_webhook_digest  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--callbacks", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--per-second", type=float, default=0.0)
    args = ap.parse_args()
    r = run_webhook_digest(args.callbacks, args.batch, args.per_second)
    rows = [
        ("callbacks / SQS batches", f"{r.callbacks} / {r.batches}"),
        ("records failed and redelivered (goal 0), max receive count", f"{r.records_failed}, {r.max_receive_count}"),
        ("messages in the callback DLQ (goal 0)", r.in_dlq),
        ("digests delivered / refused by the robot", f"{r.delivered} / {r.refused}"),
        ("robot's busiest minute (goal ≤ 20), largest markdown", f"{r.max_per_minute}, {r.largest_bytes} bytes"),
        ("digests recorded under push_failed", r.push_failed),
        ("task ids in a delivered digest's objects / in push_failed / in neither (goal 0)",
         f"{r.covered_by_delivered} / {r.covered_by_recorded} / {r.uncovered}"),
        ("task ids missing from the archive (goal 0)", r.missing_from_archive),
        ("time: run / the archive function's own, lines/s of its own time",
         f"{r.seconds} s / {r.handler_seconds} s, {r.lines_per_s}"),
    ]
    print_rows("webhook digest benchmark", rows)
    save("webhook_digest", {"args": vars(args), **r.as_dict()})
    ok = (r.records_failed == 0 and r.in_dlq == 0 and r.max_per_minute <= 20 and r.uncovered == 0
          and r.missing_from_archive == 0 and r.largest_bytes <= 4096)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
