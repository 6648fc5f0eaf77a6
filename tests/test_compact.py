"""Compaction (functions/compact, `mps-triggers compact`) over archives the archive function wrote in moto: every
closed hour partition becomes one verified gzip object; killed at random points and run again, no line is lost and
none is kept twice; the query commands read compacted and plain objects alike."""
from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mps_triggers import compact
from mps_triggers.lines import parse_key
from tests.conftest import furl_event, load_app, load_event, resign, sqs_event

ROOT = Path(__file__).resolve().parents[1]
SKEW = "86400"  # accept callbacks signed hours ago, so verified Timestamps land in hours that have closed


def callback(n: int, ts: int) -> dict:
    """A ScheduleTask FINISH notification (events/furl_callback.json) of task ``n`` (its own TaskId and SessionId),
    signed with ``ts``."""
    doc = json.loads(load_event("furl_callback.json")["body"])
    doc["ScheduleTaskEvent"]["TaskId"] = f"1250000000-ScheduleTask-{n:032x}tt7"
    doc["SessionId"] = f"mt1-{n:040x}"
    return resign(doc, ts=ts)


def hours_ago(h: int) -> int:
    """A UNIX time inside the hour that began ``h`` hours before this one (its 10th minute)."""
    now = int(time.time())
    return now - now % 3600 - h * 3600 + 600


def objects(stack, bucket: str) -> dict[str, bytes]:
    """Every object of ``bucket`` and its bytes. A listed object gone before its GET is left out: a killed
    compaction's last request (its DeleteObjects, only ever sent once the compacted object was written and read
    back, so listed here too) can still be running in the server when the process is gone."""
    s3 = stack.boto3("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            try:
                out[o["Key"]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            except s3.exceptions.NoSuchKey:
                continue
    return out


def lines_by_partition(stack, bucket: str) -> dict[str, list[str]]:
    """Every line id of every archive object, per partition folder (a copy in two objects counts twice)."""
    out: dict[str, list[str]] = {}
    for key, data in objects(stack, bucket).items():
        k = parse_key(key, key[:key.index("event_type=")])
        if k is None:
            continue
        text = gzip.decompress(data) if k.compressed else data
        folder = k.relative.rsplit("/", 1)[0]
        out.setdefault(folder, []).extend(json.loads(x)["id"] for x in text.splitlines() if x.strip())
    return out


def write_callbacks(app, numbers: range, ts: int) -> None:
    for n in numbers:
        answer = app.handler(furl_event(callback(n, ts + n % 60)), None)
        assert answer["statusCode"] == 200, answer


def test_each_closed_partition_becomes_one_verified_gzip_object_and_open_hours_are_left(archive, stack, capsys):
    app, reader = archive(CALLBACK_CLOCK_SKEW=SKEW)
    bucket = reader.bucket
    write_callbacks(app, range(0, 40), hours_ago(3))
    write_callbacks(app, range(100, 120), hours_ago(2))
    write_callbacks(app, range(0, 5), hours_ago(3))  # MPS sent five again: same ids, same objects
    # an SQS batch in this hour (still open), repeating ten of the 3-hours-ago callbacks
    assert app.handler(sqs_event(*[callback(n, hours_ago(3)) for n in range(10)]), None) == {"batchItemFailures": []}
    stack.boto3("s3").put_object(Bucket=bucket, Key="callbacks/event_type=ScheduleTask/notes.txt", Body=b"keep me")
    before = lines_by_partition(stack, bucket)
    assert len(before) == 3
    capsys.readouterr()
    job = compact.CompactJob(compact_store(bucket), "callbacks/")
    report = job.run_range(None, None)
    summary = report.summary()
    assert summary["partitions"] == 2 and summary["objects_before"] == 60 and summary["objects_after"] == 2
    assert summary["lines"] == 60 and summary["failed"] == 0 and summary["bytes_after"] < summary["bytes_before"]
    after = lines_by_partition(stack, bucket)
    for folder, ids in before.items():
        assert sorted(set(after[folder])) == sorted(set(ids))  # nothing lost
        assert len(after[folder]) == len(set(after[folder]))  # nothing twice
    keys = [k for k in objects(stack, bucket) if "compacted-" in k]
    assert len(keys) == 2 and all(k.endswith(".jsonl.gz") for k in keys)
    data = stack.boto3("s3").get_object(Bucket=bucket, Key=keys[0])
    assert data["ContentType"] == "application/gzip"
    lines = [json.loads(x) for x in gzip.decompress(data["Body"].read()).splitlines()]
    assert [ln["received_at"] for ln in lines] == sorted(ln["received_at"] for ln in lines)
    assert "callbacks/event_type=ScheduleTask/notes.txt" in objects(stack, bucket)  # not an archive object: kept
    open_hour = [k for k in objects(stack, bucket) if parse_key(k, "callbacks/") and "compacted-" not in k]
    assert len(open_hour) == 1  # the SQS batch of this hour waits for its hour to close
    # idempotent: a second run changes nothing
    again = job.run_range(None, None)
    assert again.summary()["partitions"] == 0 and again.summary()["deleted"] == 0


def compact_store(bucket: str):
    from mps_triggers.storage import S3Store

    return S3Store(bucket)


def test_the_function_compacts_on_schedule_and_the_command_plans_and_runs(archive, stack, monkeypatch, capsys,
                                                                          tmp_path):
    app, reader = archive(CALLBACK_CLOCK_SKEW=SKEW)
    write_callbacks(app, range(0, 12), hours_ago(4))
    uri = f"s3://{reader.bucket}/callbacks/"
    from mps_triggers_cli.main import main

    capsys.readouterr()
    assert main(["compact", uri, "--dry-run", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["objects"] == 12 and len(plan["partitions"]) == 1
    assert len(lines_by_partition(stack, reader.bucket)[plan["partitions"][0]["partition"].rstrip("/")]) == 12
    # the scheduled function (EventBridge Scheduler's event, then SCF's timer event: nothing left to do)
    compact.default_job.cache_clear()
    fn = load_app("compact")
    answer = fn.handler(load_event("scheduler_compact.json"), None)
    assert answer["partitions"] == 1 and answer["objects_before"] == 12 and answer["objects_after"] == 1
    assert fn.main_handler(load_event("scf_timer_compact.json"), {})["partitions"] == 0
    compact.default_job.cache_clear()
    # report and find read the compacted object
    capsys.readouterr()
    assert main(["report", uri, "--cache", str(tmp_path / "c"), "--since", "1d", "--format", "json",
                 "--no-progress"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tasks"]["total"] == 12 and doc["range"]["files"] == 1


def test_a_cos_archive_is_compacted_through_the_cos_client(archive, stack):
    app, reader = archive("cos", CALLBACK_CLOCK_SKEW=SKEW)
    write_callbacks(app, range(0, 8), hours_ago(5))
    compact.default_job.cache_clear()
    answer = load_app("compact").main_handler(load_event("scf_timer_compact.json"), {})
    compact.default_job.cache_clear()
    assert answer["objects_before"] == 8 and answer["objects_after"] == 1
    [ids] = lines_by_partition(stack, reader.bucket).values()
    assert len(ids) == len(set(ids)) == 8


@pytest.mark.timeout(900)  # 52 runs of the command, each a fresh process: 80 s here, far more on a loaded host
def test_compaction_killed_at_random_points_never_loses_or_duplicates_a_line(archive, stack, tmp_path):
    """50 runs of `mps-triggers compact`, each killed (SIGKILL) at a random moment, with new callbacks arriving
    between runs; after every kill no line is missing, and after a last run to completion none is kept twice."""
    app, reader = archive(CALLBACK_CLOCK_SKEW=SKEW)
    bucket = reader.bucket
    rng = random.Random(20261122)
    write_callbacks(app, range(0, 30), hours_ago(3))
    write_callbacks(app, range(1000, 1030), hours_ago(4))
    env = {k: v for k, v in os.environ.items()}
    argv = [sys.executable, "-m", "mps_triggers_cli", "compact", f"s3://{bucket}/callbacks/", "--no-progress"]
    t0 = time.monotonic()
    assert subprocess.run(argv, env=env, capture_output=True, timeout=120).returncode == 0
    full = time.monotonic() - t0  # then the shortest run seen to completion: later runs merge fewer objects
    expected = {folder: set(ids) for folder, ids in lines_by_partition(stack, bucket).items()}
    kills = completed = 0
    next_n = 2000
    for i in range(50):
        hour = 3 + i % 2
        numbers = range(next_n, next_n + rng.randint(1, 6))
        next_n = numbers.stop
        write_callbacks(app, numbers, hours_ago(hour))
        for folder, ids in lines_by_partition(stack, bucket).items():
            expected.setdefault(folder, set()).update(ids)
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, full * 1.1))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        else:
            completed += 1
            assert proc.returncode == 0, f"run {i} exited {proc.returncode}"
            full = min(full, time.monotonic() - started)
        proc.wait(30)
        now = lines_by_partition(stack, bucket)
        for folder, ids in expected.items():
            missing = ids - set(now.get(folder, []))
            assert not missing, f"run {i}: {len(missing)} lines lost in {folder}"
    assert kills >= 20, (kills, completed, full)  # most runs really were cut short
    assert subprocess.run(argv, env=env, capture_output=True, timeout=120).returncode == 0
    final = lines_by_partition(stack, bucket)
    for folder, ids in expected.items():
        assert sorted(final[folder]) == sorted(ids), folder  # every line, each once
    counts = Counter(parse_key(k, "callbacks/").partition for k in objects(stack, bucket) if parse_key(k, "callbacks/"))
    assert sum(counts.values()) == len(expected)  # one object per partition


def test_an_input_that_is_not_whole_gzip_fails_its_partition_and_deletes_nothing(archive, stack):
    app, reader = archive(CALLBACK_CLOCK_SKEW=SKEW)
    write_callbacks(app, range(0, 3), hours_ago(3))
    keys = list(objects(stack, reader.bucket))
    folder = keys[0].rsplit("/", 1)[0]
    stack.boto3("s3").put_object(Bucket=reader.bucket, Key=f"{folder}/compacted-{'f' * 32}.jsonl.gz",
                                 Body=gzip.compress(b'{"id":"x"}\n')[:-5])
    report = compact.CompactJob(compact_store(reader.bucket), "callbacks/").run_range(None, None)
    [result] = report.results
    assert result.error and ("gzip" in result.error.lower() or "EOF" in result.error)
    assert set(keys) <= set(objects(stack, reader.bucket))
    with pytest.raises(compact.CompactionError):
        report.respond()
