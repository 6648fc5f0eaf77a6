"""Report: `mps-triggers report` (30 days) and `find --key` over 1,000,000 archive lines; `archive sync` of them.

    python3 tasks.py bench report [--lines 1000000] [--days 30] [--rounds 3] [--sync]

The archive is made with the archive line format of the real code (each kind of line built once by
``mps_triggers.lines`` from the emulator's notifications, then varied per task: ids, TaskIds, SessionIds, keys,
times): per task a ``submitted`` ledger line, a PROCESSING and a FINISH callback (NotifyMode Change), over
``--days`` days; 7 % of tasks fail (five error codes), 2 % never finish (stuck), 1 % fail to submit. Layout as
deployments write it after compaction: one gzip object per partition hour for the SQS-delivered callbacks and the
ledger, and 10 % of the callbacks as single-line HTTP objects.

Timed (fresh processes, medians of ``--rounds``): the installed command's ``report --since <days>d --format json``
and ``find --key`` on the local cache, against a baseline in the same script: DuckDB counting the same files'
lines (``SELECT count(*)`` over ``read_json``), the least any query over them costs. Peak RSS of each command.
With ``--sync``, the objects are also put into moto (in its own process) and ``archive sync`` into an empty cache
is timed, against a bare boto3 listing + GET of every object with 16 threads.

Results go to ``bench/results/report.json``.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import print_rows, save  # noqa: E402
from mps_triggers import lines as L  # noqa: E402
from mpslocal.notifications import notification, task_event  # noqa: E402

CODES = [("InternalError", "TencentVodPlatErr Or Unkown"), ("InvalidInput.Duration", "the media is too short"),
         ("SourceFileError", "source file error"), ("ResourceNotFound.Object", "no such object"),
         ("FailedOperation.AsrFailed", "speech recognition failed")]


def templates() -> dict[str, bytes]:
    """One line of each kind, made by the real code; ``TASKID``, ``SESSIONID``, ``KEYNAME`` and the time are
    replaced per task."""
    sid, key = "mt1-" + "5e" * 20, "uploads/KEYNAME.mp4"
    ctx = json.dumps({"v": 1, "src": "s3", "b": "media-in", "k": key, "r": "videos", "s": sid})
    request = {"InputInfo": {"Type": "AWS-S3", "S3InputInfo": {"S3Bucket": "media-in", "S3Region": "us-east-1",
                                                               "S3Object": key}},
               "ScheduleId": 20001, "OutputDir": "/mps-output/uploads/KEYNAME.mp4/", "SessionId": sid,
               "SessionContext": ctx}
    tid = "1250000000-ScheduleTask-TASKID"
    out = {}
    for name, status, fail in (("processing", "PROCESSING", None), ("finish", "FINISH", None),
                               ("failed", "FINISH", -1)):
        et, ev = task_event(request, tid, status, fail)
        line = L.build_line(notification(et, ev, sid, ctx, None), "sqs", "MSGID", 1795000000.0)
        out[name] = line.data
    obj = {"storage": "s3", "bucket": "media-in", "key": key, "route": "videos"}
    out["submitted"] = L.submission_line(result="submitted", obj=obj, session_id=sid, task_id=tid, error_code=None,
                                         error_message=None, at=1795000000.0, origin="submit", source_type="sqs",
                                         source_id="MSGID")
    out["submit_failed"] = L.submission_line(result="failed", obj=obj, session_id=sid, task_id=None,
                                             error_code="UnknownParameter", error_message="unknown parameter(s)",
                                             at=1795000000.0, origin="submit", source_type="sqs", source_id="MSGID")
    return out


def vary(template: bytes, task: int, when: float, kind: str) -> bytes:
    text = template.decode()
    old_id = json.loads(text)["id"]
    text = text.replace(old_id, hashlib.sha256(f"{task}:{kind}".encode()).hexdigest())
    text = text.replace("5e" * 20, f"{task:040x}").replace("TASKID", f"{task:032x}tt7")
    text = text.replace("KEYNAME", f"{task % 997:03d}/clip {task:07d}").replace(L.utc_iso(1795000000.0),
                                                                                L.utc_iso(when))
    return text.encode()


def make(cache: Path, n_lines: int, days: int, seed: int = 7) -> dict:
    """Write the archive into ``cache`` (the local layout); returns counts."""
    rng = random.Random(seed)
    tpl = templates()
    now = time.time()
    start = now - days * 86400
    groups: dict[str, list[bytes]] = {}
    singles: list[tuple[str, bytes]] = []
    lines = task = 0
    while lines < n_lines:
        task += 1
        t0 = rng.uniform(start, now - 3600)
        roll = rng.random()
        if roll < 0.01:
            kinds = [("submit_failed", t0)]
        elif roll < 0.03:
            kinds = [("submitted", t0)]
        else:
            wait, run = rng.expovariate(1 / 8.0), rng.expovariate(1 / 90.0)
            final = "failed" if roll < 0.10 else "finish"
            kinds = [("submitted", t0), ("processing", t0 + wait), (final, t0 + wait + run)]
        for kind, when in kinds:
            data = vary(tpl[kind], task, when, kind)
            if kind == "failed":
                code, message = CODES[task % len(CODES)]
                data = data.replace(b'"InternalError"', json.dumps(code).encode()).replace(
                    b'"TencentVodPlatErr Or Unkown"', json.dumps(message).encode())
            partition = "submissions" if kind.startswith("submit") else "ScheduleTask"
            key = L.object_key("", partition, when, "x").rsplit("/", 1)[0]
            if partition != "submissions" and rng.random() < 0.10:
                singles.append((key, data))
            else:
                groups.setdefault(key, []).append(data)
            lines += 1
    for folder, group in groups.items():
        path = cache / folder / f"compacted-{hashlib.sha256(folder.encode()).hexdigest()[:32]}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(b"".join(group), compresslevel=6, mtime=0))
    for folder, data in singles:
        path = cache / folder / f"{json.loads(data)['id']}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {"lines": lines, "tasks": task, "objects": len(groups) + len(singles), "single_line_objects": len(singles)}


def child_rss(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """``(seconds, peak RSS MiB, stdout)`` of one fresh process, measured by a wrapper process (its children's
    peak RSS from getrusage)."""
    code = ("import resource,subprocess,sys,time,json;t=time.perf_counter();"
            "p=subprocess.run(sys.argv[1:],stdout=subprocess.PIPE,stderr=subprocess.DEVNULL,text=True);"
            "print(json.dumps([time.perf_counter()-t,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,"
            "p.returncode,p.stdout]))")
    done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, check=True)
    seconds, rss, rc, out = json.loads(done.stdout)
    if rc:
        raise SystemExit(f"{argv} exited {rc}")
    return seconds, rss, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sync", action="store_true", help="also put the archive into moto and time archive sync")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPS_", "ARCHIVE_"))}
    cli = [sys.executable, "-m", "mps_triggers_cli"]
    out: dict = {"lines_requested": args.lines, "days": args.days}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        t0 = time.perf_counter()
        out.update(make(cache, args.lines, args.days))
        out["generate_seconds"] = round(time.perf_counter() - t0, 1)
        out["bytes_on_disk"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
        glob = str(cache / "event_type=*" / "dt=*" / "hour=*" / "*.jsonl*")
        baseline_code = ("import duckdb,sys;db=duckdb.connect();db.execute('SET enable_progress_bar = false');"
                         "print(db.execute(\"SELECT count(*) FROM read_json(?, format='newline_delimited', "
                         "columns={'id':'VARCHAR'})\", [sys.argv[1]]).fetchone()[0])")
        runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "report": [], "find": []}
        answers = {}
        for _ in range(args.rounds):
            s, rss, text = child_rss([sys.executable, "-c", baseline_code, glob], env)
            runs["baseline"].append((s, rss))
            answers["baseline"] = int(text)
            s, rss, text = child_rss([*cli, "report", str(cache), "--since", f"{args.days}d", "--format", "json"], env)
            runs["report"].append((s, rss))
            answers["report"] = json.loads(text)["tasks"]
            key = f"uploads/{12345 % 997:03d}/clip {12345:07d}.mp4"  # task 12345's object (see vary)
            s, rss, text = child_rss([*cli, "find", str(cache), "--key", key,
                                      "--format", "json"], env)
            runs["find"].append((s, rss))
            answers["find"] = len(text.splitlines())
        for name, values in runs.items():
            out[f"{name}_seconds_median"] = round(statistics.median(v[0] for v in values), 2)
            out[f"{name}_peak_rss_mib"] = round(max(v[1] for v in values), 1)
        out["report_vs_baseline"] = round(out["report_seconds_median"] / out["baseline_seconds_median"], 2)
        out["find_vs_baseline"] = round(out["find_seconds_median"] / out["baseline_seconds_median"], 2)
        out["answers"] = answers
        if args.sync:
            out.update(sync_figures(cache, Path(tmp) / "synced", env, cli))
    rows = [(k, v) for k, v in out.items() if k != "answers"] + [("answers", json.dumps(out["answers"]))]
    print_rows("report and find over the archive", rows)
    print(f"saved {save('report', out)}")
    return 0


def sync_figures(cache: Path, target: Path, env: dict[str, str], cli: list[str]) -> dict:
    """Put every object of ``cache`` into moto, then time ``archive sync`` into ``target`` against a bare boto3
    listing + GET of every object (16 threads)."""
    from mpslocal.stack import AWS_KEYS, LocalStack

    files = [p for p in cache.rglob("*") if p.is_file()]
    with LocalStack(rate_limit=None, moto_process=True) as stack:
        s3 = stack.boto3("s3")
        s3.create_bucket(Bucket="bench-archive")
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda p: s3.put_object(Bucket="bench-archive", Key="mps/" + p.relative_to(cache).as_posix(),
                                                  Body=p.read_bytes()), files))
        t0 = time.perf_counter()
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench-archive")
                for o in page.get("Contents", [])]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: s3.get_object(Bucket="bench-archive", Key=k)["Body"].read(), keys))
        bare = time.perf_counter() - t0
        run_env = {**env, **stack.environment(), **AWS_KEYS}
        s, rss, text = child_rss([*cli, "archive", "sync", "s3://bench-archive/mps/", "--cache", str(target),
                                  "--format", "json", "--no-progress"], run_env)
        s2, _, text2 = child_rss([*cli, "archive", "sync", "s3://bench-archive/mps/", "--cache", str(target),
                                  "--format", "json", "--no-progress"], run_env)
    return {"sync_objects": len(files), "sync_seconds": round(s, 1), "sync_baseline_boto3_seconds": round(bare, 1),
            "sync_vs_baseline": round(s / bare, 2), "sync_peak_rss_mib": round(rss, 1),
            "sync_fetched": json.loads(text)["fetched"], "resync_seconds": round(s2, 1),
            "resync_fetched": json.loads(text2)["fetched"]}


if __name__ == "__main__":
    sys.exit(main())
