"""Archive under faults: callbacks through SQS and HTTP, some delivered twice, while archive writes fail.

    python3 tasks.py bench archive_faults [--callbacks 10000] [--sqs-share 0.5] [--write-failure 0.05] [--duplicates 0.10]

Notifications (ScheduleTask and WorkflowTask, signed) reach ``functions/archive/app.py`` through the callback queue
(batches of up to 100, failures redelivered) and through a function URL (refused callbacks sent again, as MPS does),
a share of them twice, while the moto shim answers a share of the archive bucket's PUTs with ``503 SlowDown``.
Reported: callback ids missing from the archive (goal 0), duplicate lines (allowed; readers drop them by id),
objects written, lines/s. Results also go to ``bench/results/archive_faults.json``. Exit status 1 if any id is
missing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import print_rows, save  # noqa: E402
from mpslocal.reliability import run_archive  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--callbacks", type=int, default=10000)
    ap.add_argument("--sqs-share", type=float, default=0.5)
    ap.add_argument("--write-failure", type=float, default=0.05)
    ap.add_argument("--duplicates", type=float, default=0.10)
    args = ap.parse_args()
    r = run_archive(args.callbacks, args.sqs_share, args.write_failure, args.duplicates)
    rows = [
        ("callbacks / deliveries (SQS + HTTP)", f"{r.callbacks} / {r.deliveries} ({r.via_sqs} + {r.via_http})"),
        ("archive PUTs failed by injection / all PUTs", f"{r.injected_put_failures} / {r.object_puts}"),
        ("SQS records failed and redelivered / HTTP callbacks refused and resent",
         f"{r.sqs_record_failures} / {r.http_retries}"),
        ("callback ids missing from the archive (goal 0)", r.missing),
        ("duplicate lines (same id; readers drop them)", r.duplicate_lines),
        ("lines / objects written", f"{r.lines} / {r.objects}"),
        ("messages in the callback DLQ", r.in_dlq),
        ("time, lines/s (unique)", f"{r.seconds} s, {r.lines_per_s}"),
    ]
    print_rows("archive fault benchmark", rows)
    save("archive_faults", {"args": vars(args), **r.as_dict()})
    return 0 if r.missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
