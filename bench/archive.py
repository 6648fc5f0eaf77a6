"""Archive job throughput and memory against the local stack (moto S3 server in its own process).

    python3 tasks.py bench archive [--callbacks 10000] [--batch 100] [--mix schedule|mixed] [--rounds 3]
                                   [--against REF] [--rss-batch 1000] [--profile N]

*Throughput*: ``--callbacks`` notifications (the emulator's ScheduleTask shapes, FINISH, some with failed
subtasks; ``--mix mixed`` alternates ScheduleTask/WorkflowTask/EditMediaTask) go through
``functions/archive/app.py:handler`` as SQS batches of ``--batch``, in a fresh process per round (median of
``--rounds``). Reported: lines/s, objects written, and a check that every callback's id is in the archive exactly
once. ``--against REF`` runs the archive code of git commit ``REF`` too, in alternating rounds against the same
moto, and reports this tree's speed as a ratio of it (the machine's speed drifts by 2× from day to day; the ratio
does not). ``--profile N`` prints each round's top N functions (cProfile, own time) on stderr. Targets: ≤ 100
objects for 10,000 callbacks in batches of 100 (one event type); ≥ 5,000 lines/s (issue 14: 3,263 lines/s measured
on the issue's machine before it, so ≥ 1.53× the code before it, 2d88942).

*Memory*: a child process archives one SQS batch of ``--rss-batch`` callbacks of about 10 KB each; its peak RSS is
reported against the same child's RSS right after importing the handler and a bare interpreter's. Target ≤ 128 MB.
Results also go to ``bench/results/archive.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dev"))

from _results import save  # noqa: E402


def notifications(n: int, mix: str, pad_to: int = 0) -> list[str]:
    from mpslocal.notifications import edit_media_event, notification, task_event

    out = []
    for i in range(n):
        key = f"uploads/batch/{i:06d} 视频.mp4"
        info = {"Type": "COS", "CosInputInfo": {"Bucket": "media-1250000000", "Region": "ap-guangzhou", "Object": "/" + key}}
        ctx = json.dumps({"v": 1, "src": "cos", "b": "media-1250000000", "k": key, "r": "videos"}, ensure_ascii=False)
        kind = ("ScheduleTask", "WorkflowTask", "EditMediaTask")[i % 3] if mix == "mixed" else "ScheduleTask"
        tid = f"1250000000-{kind}-{uuid.uuid4().hex}tt7"
        if kind == "EditMediaTask":
            et, ev = "EditMediaTask", edit_media_event(tid, f"/mps-output/edit_{i}.mp4", "media-1250000000", "ap-guangzhou")
        else:
            req = {"InputInfo": info, "OutputDir": "/mps-output/",
                   **({"ScheduleId": 20001} if kind == "ScheduleTask" else
                      {"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 100030}]}})}
            et, ev = task_event(req, tid, "FINISH", -1 if i % 4 == 0 else None)
        body = notification(et, ev, "mt1-" + hashlib.sha256(key.encode()).hexdigest()[:40], ctx, "bench-notify-key")
        if pad_to:  # realistic bulk: AI results carry long segment lists
            body[f"{et}Event"]["AiAnalysisResultSet"] = [{"Type": "Tag", "TagTask": {
                "Status": "SUCCESS", "ErrCode": 0, "Message": "", "Output": {"TagSet": [
                    {"Tag": f"tag-{j}", "Confidence": 0.9, "Segments": [j, j + 1]} for j in range(pad_to // 70)]}}}]
        out.append(json.dumps(body, ensure_ascii=False))
    return out


def sqs_event(bodies: list[str]) -> dict:
    return {"Records": [{"messageId": str(uuid.uuid4()), "receiptHandle": "rh", "body": b, "attributes": {},
                         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:mps-callbacks"} for b in bodies]}


def load_handler():
    from mpslocal.container import load_app

    return load_app("archive").handler


def vm_hwm_mib() -> float:
    """Peak RSS of this process's address space (VmHWM). Unlike ru_maxrss it is not inherited from the parent's
    high-water mark across fork/exec, so a child spawned by a big parent reports its own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(n: int, endpoint: str, bucket: str) -> None:
    """Child process: one batch of n callbacks of ~10 KB; prints RSS figures (MiB) as JSON."""
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "ARCHIVE_URI": f"s3://{bucket}/rss", "LOG_LEVEL": "warning",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    handler = load_handler()
    bodies = notifications(n, "schedule", pad_to=9000)
    avg = sum(len(b.encode()) for b in bodies) / n
    event = sqs_event(bodies)
    del bodies
    before = vm_hwm_mib()
    result = handler(event, None)
    peak = vm_hwm_mib()
    print(json.dumps({"before_mib": round(before, 1), "peak_mib": round(peak, 1), "avg_bytes": round(avg),
                      "failures": len(result["batchItemFailures"])}))


def throughput_child(code: Path, endpoint: str, bucket: str, n: int, batch: int, mix: str, prefix: str,
                     profile: int) -> None:
    """Child process: the archive function of the tree ``code`` (its ``layers/core`` and ``functions/archive``)
    archives ``n`` callbacks in SQS batches of ``batch`` under ``prefix``; prints its figures as JSON."""
    sys.path.insert(0, str(code / "layers" / "core"))
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "ARCHIVE_URI": f"s3://{bucket}/{prefix}", "LOG_LEVEL": "warning",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    from mpslocal.runtime import load_app

    handler = load_app(code / "functions" / "archive" / "app.py").handler
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bodies = notifications(n, mix)
    from mps_triggers.lines import callback_id
    ids = {callback_id(json.loads(b)) for b in bodies}
    events = [sqs_event(bodies[i:i + batch]) for i in range(0, len(bodies), batch)]

    def listing() -> set[str]:
        return {o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
                for o in p.get("Contents", [])}

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # the invocations' EMF lines
        handler(sqs_event(notifications(1, mix)), None)  # warm container (its object is not counted)
        warm = listing()
        profiler = cProfile.Profile() if profile else None
        t = time.perf_counter()
        if profiler:
            profiler.enable()
        failures = sum(len(handler(ev, None)["batchItemFailures"]) for ev in events)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - t
    if profiler:
        print(f"profile of the timed invocations, top {profile} functions by own time:", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(profile)
    keys = sorted(listing() - warm)
    archived: list[str] = []
    for k in keys:
        data = s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode("utf-8")
        archived.extend(json.loads(x)["id"] for x in data.splitlines())
    print(json.dumps({"seconds": seconds, "lines_per_s": n / seconds, "objects": len(keys),
                      "missing": len(ids - set(archived)), "duplicate_lines": len(archived) - len(set(archived)),
                      "failures": failures}))


def baseline_tree(ref: str) -> Path:
    """``layers/`` and ``functions/`` of commit ``ref``, extracted into a temporary folder."""
    out = Path(tempfile.mkdtemp(prefix="bench-archive-baseline-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "layers", "functions"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--callbacks", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--mix", choices=["schedule", "mixed"], default="schedule")
    ap.add_argument("--rounds", type=int, default=3, help="throughput runs, each in a fresh process (median kept)")
    ap.add_argument("--against", metavar="REF",
                    help="also run the archive code of git commit REF, alternating rounds, and report the ratio")
    ap.add_argument("--rss-batch", type=int, default=1000)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="run the timed invocations under cProfile and print the top N functions by own time")
    ap.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--throughput-child", nargs=8, help=argparse.SUPPRESS)
    ap.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        print(vm_hwm_mib())
        return 0
    if args.rss_child:
        rss_child(int(args.rss_child[0]), args.rss_child[1], args.rss_child[2])
        return 0
    if args.throughput_child:
        code, endpoint, bucket, n, batch, mix, prefix, profile = args.throughput_child
        throughput_child(Path(code), endpoint, bucket, int(n), int(batch), mix, prefix, int(profile))
        return 0

    from mpslocal.stack import LocalStack

    trees = {"this tree": ROOT}
    if args.against:
        trees[args.against] = baseline_tree(args.against)
    results: dict = {"callbacks": args.callbacks, "batch": args.batch, "mix": args.mix}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    with LocalStack(rate_limit=None, moto_process=True) as stack:
        s3 = stack.boto3("s3")
        bucket = f"bench-archive-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        print(f"archive throughput: {args.callbacks} callbacks ({args.mix}) in SQS batches of {args.batch}, "
              f"{args.rounds} rounds{' alternating with ' + args.against if args.against else ''}", file=sys.stderr)
        for r in range(args.rounds):
            for name, code in trees.items():
                child = subprocess.run([sys.executable, __file__, "--throughput-child", str(code), stack.moto.url,
                                        bucket, str(args.callbacks), str(args.batch), args.mix, f"r{r}-{len(runs[name])}"
                                        f"-{'base' if code != ROOT else 'tree'}", str(args.profile)],
                                       stdout=subprocess.PIPE, text=True, env=os.environ)
                if child.returncode != 0:
                    return 1
                run = json.loads(child.stdout.strip().splitlines()[-1])
                runs[name].append(run)
                print(f"  round {r + 1} {name}: {run['lines_per_s']:.0f} lines/s, {run['objects']} objects, "
                      f"missing {run['missing']}, failures {run['failures']}", file=sys.stderr)
        child = subprocess.run([sys.executable, __file__, "--rss-child", str(args.rss_batch), stack.moto.url, bucket],
                               capture_output=True, text=True, env=os.environ)
        if child.returncode != 0:
            print(child.stderr)
            return 1
        rss = json.loads(child.stdout.strip().splitlines()[-1])
    bare = subprocess.run([sys.executable, __file__, "--bare"], capture_output=True, text=True)
    rss["bare_python_mib"] = round(float(bare.stdout), 1)
    mine = runs["this tree"]
    median = statistics.median(r["lines_per_s"] for r in mine)
    tp = results["throughput"] = {"lines_per_s": round(median), "rounds": [round(r["lines_per_s"]) for r in mine],
                                  "objects": max(r["objects"] for r in mine), "missing": sum(r["missing"] for r in mine),
                                  "duplicate_lines": sum(r["duplicate_lines"] for r in mine),
                                  "failures": sum(r["failures"] for r in mine)}
    print(f"archive throughput: {args.callbacks} callbacks ({args.mix}) in SQS batches of {args.batch}")
    print(f"  median of {args.rounds}: {tp['lines_per_s']} lines/s (rounds {tp['rounds']}), {tp['objects']} objects "
          f"per run (target <= {-(-args.callbacks // args.batch)}), missing ids {tp['missing']}, failures "
          f"{tp['failures']}")
    if args.against:
        base = statistics.median(r["lines_per_s"] for r in runs[args.against])
        results["baseline"] = {"ref": args.against, "lines_per_s": round(base),
                               "rounds": [round(r["lines_per_s"]) for r in runs[args.against]],
                               "ratio": round(median / base, 2)}
        print(f"  {args.against}, same rounds alternating: {base:.0f} lines/s (rounds "
              f"{results['baseline']['rounds']}): this tree is {median / base:.2f}x")
    results["memory"] = {"batch": args.rss_batch, **rss}
    print(f"archive memory: one SQS batch of {args.rss_batch} callbacks of ~{rss['avg_bytes'] / 1024:.1f} KB")
    print(f"  peak RSS {rss['peak_mib']} MiB (target <= 128); after import + event built {rss['before_mib']} MiB; "
          f"bare python {rss['bare_python_mib']} MiB; failures {rss['failures']}")
    save("archive", results)
    ok = (tp["missing"] == 0 and tp["failures"] == 0 and rss["peak_mib"] <= 128
          and (args.mix != "schedule" or tp["objects"] <= -(-args.callbacks // args.batch)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
