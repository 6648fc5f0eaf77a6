"""Every benchmark at a reduced size, and one table of their figures against their targets.

    python3 tasks.py bench all [--only NAME,...] [--dry-run] [--format table|json]

Each benchmark runs as ``python3 tasks.py bench NAME`` would, in its own process, with the reduced arguments of
:data:`PLAN` (each single benchmark keeps its full size as its default); its output goes to
``bench/results/all/NAME.log`` and its figures are read back from ``bench/results/NAME.json``. The table lists every
figure with its value, its target and ``pass``/``FAIL`` (``-`` for a figure reported without a target); a benchmark
that exits with an error or writes no results fails all its figures. ``--dry-run`` prints the plan; ``--format json``
prints the rows as JSON on stdout. Progress goes to stderr. Exit status 1 when a figure misses its target.

Reduced sizes measure the same things on fewer objects, so figures that need volume to settle (burst's sustained
fraction, compaction's ratio) are noisier than the README's full-size ones.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BASELINE = "2d88942"
"""The last commit before issue 14: the archive's speed is measured against its code in the same run."""


@dataclass(frozen=True)
class Figure:
    """One figure of a benchmark's results: its label, how to read it, its target and the test of it."""

    label: str
    read: Callable[[dict[str, Any]], Any]
    target: str = ""
    ok: Callable[[Any], bool] | None = None


def at(*path: str) -> Callable[[dict[str, Any]], Any]:
    def read(doc: dict[str, Any]) -> Any:
        for part in path:
            doc = doc[part]
        return doc
    return read


PLAN: dict[str, tuple[list[str], list[Figure]]] = {
    "cold_start": (["--runs", "3"], [
        Figure("submit import / import boto3", at("ratio_submit_import"), "≤ 1.0×", lambda v: v <= 1.0),
        Figure("submit import + first SQS invocation (ms)", at("submit: import + first SQS invocation", "total_ms")),
        Figure("archive import + first URL callback (ms)", at("archive: import + first URL callback", "total_ms")),
    ]),
    "archive": (["--callbacks", "3000", "--rounds", "3", "--rss-batch", "300", "--against", BASELINE], [
        Figure("lines/s, SQS batches of 100", at("throughput", "lines_per_s")),
        Figure(f"lines/s against the code before issue 14 ({BASELINE})", at("baseline", "ratio"),
               "≥ 1.53× (5,000 lines/s where it made 3,263)", lambda v: v >= 1.53),
        Figure("callback ids missing / failures", lambda d: d["throughput"]["missing"] + d["throughput"]["failures"],
               "0", lambda v: v == 0),
        Figure("objects per SQS batch of one event type", lambda d: round(d["throughput"]["objects"] /
                                                                        math.ceil(d["callbacks"] / d["batch"]), 2),
               "≤ 1", lambda v: v <= 1),
        Figure("peak RSS, one batch of 300 callbacks of ~10 KB (MiB)", at("memory", "peak_mib"), "≤ 128",
               lambda v: v <= 128),
    ]),
    "archive_faults": (["--callbacks", "2000"], [
        Figure("callback ids missing, PUT failures and duplicates injected", at("missing"), "0", lambda v: v == 0),
    ]),
    "callback_latency": (["--callbacks", "200"], [
        Figure("Lambda → S3: warm p50 / p99 (ms)", lambda d: f"{d['lambda']['p50_ms']} / {d['lambda']['p99_ms']}"),
        Figure("SCF → COS: warm p50 / p99 (ms)", lambda d: f"{d['scf']['p50_ms']} / {d['scf']['p99_ms']}"),
        Figure("cold, Lambda / SCF (ms)", lambda d: f"{d['lambda']['cold_ms']} / {d['scf']['cold_ms']}"),
        Figure("one object per callback answered 200",
               lambda d: all(p["answered_200"] == p["callbacks"] == p["objects"] for p in (d["lambda"], d["scf"])),
               "yes", bool),
    ]),
    "burst": (["--s3", "3000", "--cos", "600"], [
        Figure("objects lost / submitted twice", lambda d: d["lost"] + d["submitted_twice_or_more"], "0",
               lambda v: v == 0),
        Figure("accepted ProcessMedia/s sustained, of 100/s", at("sustained_fraction"), "≥ 0.95", lambda v: v >= 0.95),
        Figure("MPS requests per submitted object", lambda d: round(d["mps_requests"] / (d["uploads_s3"] +
                                                                                         d["uploads_cos"]), 3),
               "≤ 1.2", lambda v: v <= 1.2),
        Figure("drain time / ideal", lambda d: round(d["seconds"] / d["ideal_seconds"], 2)),
        Figure("seconds at the limit, of seconds with acceptances",
               lambda d: f'{d["seconds_at_limit"]} of {d["seconds_with_acceptances"]}'),
    ]),
    "backfill": (["--objects", "2000", "--listing", "10000"], [
        Figure("objects missing / submitted twice (with a resume)", lambda d: d["run"]["missing"] +
               d["run"]["submitted_twice"] + d["resume"]["missing"] + d["resume"]["submitted_twice"], "0",
               lambda v: v == 0),
        Figure("accepted/s sustained, of --rate", at("run", "sustained_fraction_of_rate"), "≥ 0.9",
               lambda v: v >= 0.9),
        Figure("MPS requests per object", at("run", "requests_per_object")),
    ]),
    "deadline": (["--uploads", "200", "--callbacks", "600", "--http-callbacks", "30"], [
        Figure("longest submit invocation / its timeout (s)", lambda d: f"{d['submit_max_seconds']} / "
               f"{d['submit_timeout']}", "< timeout", lambda v: float(v.split(" / ")[0]) < float(v.split(" / ")[1])),
        Figure("uploads lost / submitted twice / callbacks missing", lambda d: d["uploads_lost"] +
               d["submitted_twice"] + d["callbacks_missing"], "0", lambda v: v == 0),
    ]),
    "batch_latency": (["--runs", "3"], [
        Figure("SQS batch of 10 / single record", at("ratio"), "< 3×", lambda v: v < 3),
    ]),
    "webhook_digest": (["--callbacks", "2000"], [
        Figure("records failed / in the DLQ / callbacks in no digest", lambda d: d["records_failed"] + d["in_dlq"] +
               d["uncovered"] + d["missing_from_archive"], "0", lambda v: v == 0),
        Figure("robot's busiest minute (messages)", at("max_per_minute"), "≤ 20", lambda v: v <= 20),
    ]),
    "compact": (["--objects", "1000", "--rounds", "1"], [
        Figure("lines lost / twice", lambda d: d["lines_lost"] + d["lines_twice"], "0", lambda v: v == 0),
        Figure("objects before / after", lambda d: f"{d['objects_before']} / {d['objects_after']}"),
    ]),
    "report": (["--lines", "50000", "--days", "3", "--rounds", "1"], [
        Figure("report / a bare DuckDB count of the same files", at("report_vs_baseline")),
        Figure("find / the same count", at("find_vs_baseline")),
    ]),
    "vod_poll": (["--files", "200", "--runs", "1"], [
        Figure("VOD events: each file one task, each event one line", lambda d: not d["problems"], "yes", bool),
        Figure("vod function submissions/s, of ProcessMediaByProcedure's 100/s",
               lambda d: round(d["files"] / d["medians"]["function_s"] / 100, 2)),
        Figure("vod function / bare PullEvents+ConfirmEvents (events/s)",
               lambda d: round(d["medians"]["baseline_s"] / d["medians"]["function_s"], 3)),
    ]),
    "scf_cold_start": (["--runs", "3"], [
        Figure("SCF package, submit import with .pyc, Python 3.10 (ms)",
               lambda d: round(d["median_seconds"]["submit pyc"] * 1000, 1)),
        Figure("SCF package, archive import with .pyc, Python 3.10 (ms)",
               lambda d: round(d["median_seconds"]["archive pyc"] * 1000, 1)),
    ]),
}


def run(name: str, args: list[str], log_dir: Path) -> tuple[int, float]:
    """Run one benchmark; returns its exit status and wall seconds. Its output goes to ``log_dir/NAME.log``."""
    (RESULTS / f"{name}.json").unlink(missing_ok=True)  # never read a figure an earlier run left
    started = time.monotonic()
    with open(log_dir / f"{name}.log", "w") as log:
        code = subprocess.call([sys.executable, str(ROOT / "bench" / f"{name}.py"), *args], cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT)
    return code, time.monotonic() - started


def rows_of(name: str, code: int) -> list[dict[str, Any]]:
    """The table rows of one benchmark's figures, read from its results file."""
    path = RESULTS / f"{name}.json"
    doc = json.loads(path.read_text()) if path.exists() else None
    rows = []
    for fig in PLAN[name][1]:
        try:
            value = fig.read(doc) if doc is not None else None
        except (KeyError, TypeError, ZeroDivisionError):
            value = None
        if value is None:
            verdict = "FAIL"
        elif fig.ok is None:
            verdict = "-"
        else:
            verdict = "pass" if fig.ok(value) else "FAIL"
        rows.append({"benchmark": name, "figure": fig.label, "value": value, "target": fig.target,
                     "verdict": verdict, "exit": code})
    if code != 0:  # the benchmark's own checks (loss, duplicates, its exit criteria) failed, or it crashed
        rows.append({"benchmark": name, "figure": "exit status (see its log)", "value": code, "target": "0",
                     "verdict": "FAIL", "exit": code})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="examples:\n  python3 tasks.py bench all\n"
                                        "  python3 tasks.py bench all --only archive,cold_start --format json",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated benchmarks (default: all of them)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
    ap.add_argument("--format", choices=["table", "json"], default="table")
    args = ap.parse_args()
    names = list(PLAN) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in PLAN]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(PLAN)}", file=sys.stderr)
        return 2
    if args.dry_run:
        for name in names:
            print(f"python3 tasks.py bench {name} {' '.join(PLAN[name][0])}")
        return 0
    log_dir = RESULTS / "all"
    log_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] bench {name} {' '.join(PLAN[name][0])}", file=sys.stderr, flush=True)
        code, seconds = run(name, PLAN[name][0], log_dir)
        print(f"        exit {code} in {seconds:.0f} s (log: {log_dir.relative_to(ROOT) / (name + '.log')})",
              file=sys.stderr, flush=True)
        rows.extend(rows_of(name, code))
    failed = sum(r["verdict"] == "FAIL" for r in rows)
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
    else:
        cells = [(r["benchmark"], r["figure"], str(r["value"]), r["target"], r["verdict"]) for r in rows]
        heads = ("benchmark", "figure", "value", "target", "verdict")
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
        for line in (heads, *cells):
            print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        print(f"{len(rows) - failed} of {len(rows)} figures pass or have no target; {failed} FAIL")
    (RESULTS / "all.json").write_text(json.dumps(rows, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
