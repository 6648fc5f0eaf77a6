"""Cold start of each handler in a fresh process, against ``import boto3`` alone (same machine, same run).

    python3 tasks.py bench cold_start [--runs 5] [--importtime N]

Each case runs in a fresh interpreter with the core layer on ``sys.path`` the way Lambda mounts it
(``/opt/python`` → ``layers/core`` here), with ``.pyc`` present (as a built layer ships them). Cases run
interleaved after one warm-up each, so machine noise hits all alike. Measured inside the process: the import time
(interpreter start-up excluded), the first invocation's time (submit: an SQS batch of one record against the MPS
emulator; archive: a signed function-URL callback written to moto S3, both over real HTTP), and peak RSS (VmHWM).
Medians over ``--runs``. Target: submit import ≤ 1.0 × boto3 (issue 14; the configuration's pydantic models are
built by the first invocation, not at import). ``--importtime N`` prints, per first invocation, the N slowest
imports and whether the import or the first call made them (``python -X importtime``). Results also go to ``bench/results/cold_start.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import RESULTS, save  # noqa: E402
PROBE = r"""
import json, sys, time
sys.path[:0] = {paths!r}
t = time.perf_counter()
{stmt}
imported = time.perf_counter() - t
print("--- first invocation ---", file=sys.stderr, flush=True)
first = 0.0
if {event_file!r}:
    event = json.load(open({event_file!r}))
    t = time.perf_counter()
    result = app.handler(event, None)
    first = time.perf_counter() - t
    assert result in ({{"batchItemFailures": []}},) or result.get("statusCode") == 200, result
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(imported, first, int(hwm) / 1024)
"""


def cases(tmp: Path) -> dict[str, tuple[str, list[str], str]]:
    submit = [str(ROOT / "functions" / "submit"), str(ROOT / "layers" / "core")]
    archive = [str(ROOT / "functions" / "archive"), str(ROOT / "layers" / "core")]
    return {
        "boto3": ("import boto3", [], ""),
        "submit app": ("import app", submit, ""),
        "submit: import + first SQS invocation": ("import app", submit, str(tmp / "sqs.json")),
        "archive app": ("import app", archive, ""),
        "archive: import + first URL callback": ("import app", archive, str(tmp / "furl.json")),
    }


def once(stmt: str, paths: list[str], event_file: str, env: dict[str, str]) -> tuple[float, float, float]:
    code = PROBE.format(paths=paths, stmt=stmt, event_file=event_file)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    imported, first, rss = out.stdout.strip().splitlines()[-1].split()  # after the invocation's log and EMF lines
    return float(imported) * 1000, float(first) * 1000, float(rss)


def import_profile(stmt: str, paths: list[str], event_file: str, env: dict[str, str], top: int) -> list[str]:
    """The ``top`` modules by cumulative import time (``python -X importtime``) that ``stmt`` and then the first
    invocation import, as printable lines (a module is counted where it is first imported)."""
    code = PROBE.format(paths=paths, stmt=stmt, event_file=event_file)
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env,
                         cwd="/")
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    phase, rows = "import", []
    for line in out.stderr.splitlines():
        if line.startswith("--- first invocation"):
            phase = "first call"
        elif line.startswith("import time:") and "cumulative" not in line:
            _, cumulative, name = line[len("import time:"):].split("|")
            rows.append((int(cumulative), phase, name.rstrip()))
    return [f"  {c / 1000:8.1f} ms  {phase:<10}  {name}" for c, phase, name in sorted(rows, reverse=True)[:top]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--importtime", type=int, default=0, metavar="N",
                    help="also print, for each first invocation, the N slowest imports (python -X importtime)")
    args = ap.parse_args()
    from mps_triggers.callbacks import expected_sign
    from mpslocal.samples import schedule_cos
    from mpslocal.stack import LocalStack

    results: dict = {}
    with LocalStack(rate_limit=None) as stack:
        tmp = RESULTS / "cold_start_events"
        tmp.mkdir(parents=True, exist_ok=True)
        bucket = f"cold-{uuid.uuid4().hex[:8]}"
        stack.boto3("s3").create_bucket(Bucket=bucket)
        body = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                             "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "cold-in"},
                                                                      "object": {"key": "k.mp4", "size": 1, "eTag": "e"}}}]}
        callback = schedule_cos()
        callback["Timestamp"] = int(time.time()) + 3600
        callback["Sign"] = expected_sign(callback["Timestamp"], "cold-key")
        furl = json.loads((ROOT / "events" / "furl_callback.json").read_text())
        furl["body"] = json.dumps(callback)
        furl["rawQueryString"] = ""
        (tmp / "furl.json").write_text(json.dumps(furl))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update({k: v for k, v in stack.environment().items()})
        env.update({"MPS_SCHEDULE_ID": "1", "MPS_S3_SECRET_ID": "AKIACOLD", "MPS_S3_SECRET_KEY": "cold",
                    "ARCHIVE_URI": f"s3://{bucket}/cb", "MPS_NOTIFY_KEY": "cold-key", "LOG_LEVEL": "warning"})
        table = cases(tmp)
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in table}

        def run(name: str) -> tuple[float, float, float]:
            stmt, paths, event_file = table[name]
            if event_file.endswith("sqs.json"):  # a new object each time: every first call is a real acceptance
                body["Records"][0]["s3"]["object"]["eTag"] = uuid.uuid4().hex
                (tmp / "sqs.json").write_text(json.dumps({"Records": [{
                    "messageId": str(uuid.uuid4()), "receiptHandle": "rh", "body": json.dumps(body), "attributes": {},
                    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads"}]}))
            return once(stmt, paths, event_file, env)

        for name in table:
            run(name)  # warm-up: page cache, .pyc written
        for _ in range(args.runs):
            for name in table:
                samples[name].append(run(name))
        for name, (stmt, paths, event_file) in table.items():
            if args.importtime and event_file:
                run(name)  # a fresh event file
                print(f"{name}: the {args.importtime} slowest imports (cumulative, where first imported)")
                print("\n".join(import_profile(stmt, paths, event_file, env, args.importtime)))
    print(f"cold start, fresh process, median of {args.runs} (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"  {'case':<40}{'import ms':>11}{'1st call ms':>13}{'total ms':>10}{'peak RSS MiB':>14}")
    for name, rows in samples.items():
        imp, first, rss = (statistics.median(col) for col in zip(*rows))
        results[name] = {"import_ms": round(imp, 1), "first_call_ms": round(first, 1), "total_ms": round(imp + first, 1),
                         "peak_rss_mib": round(rss, 1), "import_ms_all": [round(r[0], 1) for r in rows]}
        print(f"  {name:<40}{imp:>11.1f}{first:>13.1f}{imp + first:>10.1f}{rss:>14.1f}")
    base = results["boto3"]["import_ms"]
    ratio = results["submit app"]["import_ms"] / base
    results["ratio_submit_import"] = round(ratio, 2)
    print(f"  submit import / boto3 import: {ratio:.2f}x (target <= 1.0x); "
          f"submit import + first call / boto3 import: {results['submit: import + first SQS invocation']['total_ms'] / base:.2f}x; "
          f"archive: {results['archive: import + first URL callback']['total_ms'] / base:.2f}x")
    save("cold_start", results)
    return 0 if ratio <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
