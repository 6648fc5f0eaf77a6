"""Cold import of functions/submit/app.py in a fresh process, against ``import boto3`` alone (same machine, same run).

    python3 tasks.py bench cold_start [--runs 5]

Each statement runs in a fresh interpreter with the core layer on ``sys.path`` the way Lambda mounts it
(``/opt/python`` → ``layers/core`` here), with ``.pyc`` present (as a built layer ships them). Runs are interleaved
(app, boto3, app, boto3, ...) after one warm-up each, so machine noise hits both alike. Reported: the import time
measured inside the process (interpreter start-up excluded), the wall time of the whole process, and peak RSS;
medians over ``--runs``. Target: app ≤ 1.3 × boto3. Results also go to ``bench/results/cold_start.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = r"""
import resource, sys, time
sys.path[:0] = [{paths}]
t = time.perf_counter()
{stmt}
dt = time.perf_counter() - t
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
CASES = {
    "boto3": ("import boto3", []),
    "submit app": ("import app", [str(ROOT / "functions" / "submit"), str(ROOT / "layers" / "core")]),
    "submit app + S3 client": ("import app, boto3; boto3.client('s3', region_name='us-east-1')",
                               [str(ROOT / "functions" / "submit"), str(ROOT / "layers" / "core")]),
    "archive app": ("import app", [str(ROOT / "functions" / "archive"), str(ROOT / "layers" / "core")]),
}


def once(stmt: str, paths: list[str]) -> tuple[float, float, float]:
    code = PROBE.format(paths=", ".join(repr(p) for p in paths), stmt=stmt)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd="/")
    wall = time.perf_counter() - start
    dt, rss = out.stdout.split()
    return float(dt) * 1000, wall * 1000, int(rss) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in CASES}
    for name, (stmt, paths) in CASES.items():
        once(stmt, paths)  # warm-up: page cache, .pyc written
    for _ in range(args.runs):
        for name, (stmt, paths) in CASES.items():
            samples[name].append(once(stmt, paths))
    results = {}
    print(f"cold import, fresh process, median of {args.runs} (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"  {'case':<24}{'import ms':>11}{'wall ms':>10}{'peak RSS MiB':>15}")
    for name, rows in samples.items():
        imp, wall, rss = (statistics.median(col) for col in zip(*rows))
        results[name] = {"import_ms": round(imp, 1), "wall_ms": round(wall, 1), "peak_rss_mib": round(rss, 1),
                         "import_ms_all": [round(r[0], 1) for r in rows]}
        print(f"  {name:<24}{imp:>11.1f}{wall:>10.1f}{rss:>15.1f}")
    ratio = results["submit app"]["import_ms"] / results["boto3"]["import_ms"]
    wall_ratio = results["submit app"]["wall_ms"] / results["boto3"]["wall_ms"]
    results["ratio_import"] = round(ratio, 2)
    results["ratio_wall"] = round(wall_ratio, 2)
    print(f"  submit app / boto3: import {ratio:.2f}x, wall {wall_ratio:.2f}x (target <= 1.3x)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cold_start.json").write_text(json.dumps(results, indent=2))
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
