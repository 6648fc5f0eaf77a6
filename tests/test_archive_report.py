"""``mps-triggers report``, ``find`` and ``archive sync`` over an archive the whole loop wrote on the local stack:
the submit function (with its ledger) → the MPS emulator (Change-mode callbacks, some tasks failing, some never
finishing, duplicate and reordered deliveries) → the archive function behind a function URL → moto. Every number
of the report is checked against a count made here from the emulator's own records."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mps_triggers import archive_job
from mps_triggers_cli.main import main
from mpslocal.emulator import FaultPlan
from mpslocal.runner import FunctionUrlServer
from tests.conftest import load_app, s3_body, sqs_event, wait_for

NOTIFY_KEY = "report-notify-key"
TOKEN = "report-token"
STUCK = ["videos/<img src=x onerror=window.pwned=1>.mp4", "clips/never-2.mp4"]
ROUTES = [
    {"name": "broken", "prefix": "broken/", "tasks": {"MediaProcessTask": {"TranscodeTaskSet": [{"Definiton": 1}]}}},
    {"name": "videos", "prefix": "videos/", "schedule_id": 20001},
    {"name": "clips", "prefix": "clips/", "schedule_id": 20002},
]


def _failed_subtasks(body: dict) -> list[tuple[str, str]]:
    """``(ErrCodeExt, Message)`` of every subtask the emulator reported as FAIL in a notification."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            if value.get("Status") == "FAIL":
                found.append((value.get("ErrCodeExt") or str(value.get("ErrCode")), value.get("Message") or ""))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(body)
    return found


@pytest.fixture(scope="module")
def loop_archive(stack, tmp_path_factory):
    """Run the loop once for the module; yields ``(archive URI, expected counts, environment)``."""
    mps = stack.mps
    mp = pytest.MonkeyPatch()
    bucket = f"report-{uuid.uuid4().hex[:10]}"
    stack.boto3("s3").create_bucket(Bucket=bucket)
    for k in list(os.environ):
        if k.startswith(("MPS_", "TENCENTCLOUD_", "ARCHIVE_", "CALLBACK_", "WEBHOOK_")):
            mp.delenv(k)
    archive_job.default_job.cache_clear()
    env = {"AWS_ENDPOINT_URL": stack.moto.url, "ARCHIVE_URI": f"s3://{bucket}/mps/", "MPS_NOTIFY_KEY": NOTIFY_KEY,
           "CALLBACK_TOKEN": TOKEN}
    for k, v in env.items():
        mp.setenv(k, v)
    server = FunctionUrlServer(load_app("archive").handler)
    from tests.conftest import base_env
    from mps_triggers import submit

    sub_env = base_env(stack, MPS_SCHEDULE_ID=None, MPS_ROUTES=json.dumps(ROUTES), MPS_NOTIFY_URL=server.url,
                       MPS_NOTIFY_MODE="Change")
    for k, v in sub_env.items():
        mp.setenv(k, v)
    submit.default_job.cache_clear()
    app = load_app("submit")
    mps.forget_sessions()  # objects earlier tests submitted are new to MPS again
    first_task, first_delivery = len(mps.tasks), len(mps.deliveries)  # what this loop adds comes after these
    mps.plan = FaultPlan(duplicate_callback=0.3, reorder=0.3, seed=7)
    try:
        mps.complete_after = 0.3
        finishing = [f"videos/{i:02d}.mp4" for i in range(14)] + [f"clips/c{i}.mp4" for i in range(6)]
        bodies = [s3_body(k) for k in finishing] + [s3_body("broken/b1.mp4"), s3_body("broken/b2.mp4")]
        assert app.handler(sqs_event(*bodies), None)["batchItemFailures"] == [
            {"itemIdentifier": f"msg-{len(finishing)}"}, {"itemIdentifier": f"msg-{len(finishing) + 1}"}]
        mps.complete_after = None  # the next tasks are accepted and never finish: stuck
        assert app.handler(sqs_event(s3_body(STUCK[0]), s3_body(STUCK[1])),
                           None)["batchItemFailures"] == []
        assert wait_for(lambda: mps.pending_notifications() == 0 and len(
            [d for d in mps.deliveries[first_delivery:] if not d.status.endswith("(duplicate)")]
        ) == 2 * len(finishing), 30)
        settled: list[int] = []  # every delivery answered, duplicates included: the count stays put for a second

        def still() -> bool:
            settled.append(len(mps.deliveries))
            return mps.pending_notifications() == 0 and settled[-20:] == [len(mps.deliveries)] * 20

        assert wait_for(still, 30)
        assert all(d.ok for d in mps.deliveries[first_delivery:])
    finally:
        mps.complete_after = None
        mps.plan = None
        server.stop()
    tasks = mps.tasks[first_task:]
    finals = {d.task_id: d.body for d in mps.deliveries[first_delivery:] if d.status == "FINISH"}
    expected = {"tasks": len(tasks), "stuck": len(tasks) - len(finals), "failed_by_code": {},
                "failed": 0, "failed_keys": set(), "submit_failed": {"broken/b1.mp4", "broken/b2.mp4"},
                "keys": {t.task_id: json.loads(t.body["SessionContext"])["k"] for t in tasks}}
    for task_id, body in finals.items():
        errors = _failed_subtasks(body)
        if errors:
            expected["failed"] += 1
            expected["failed_keys"].add(expected["keys"][task_id])
            for code, message in set(errors):
                expected["failed_by_code"][(code, message)] = expected["failed_by_code"].get((code, message), 0) + 1
    assert expected["failed"] and expected["stuck"] == 2  # the loop made what the tests below count
    yield f"s3://{bucket}/mps/", expected, {**env, **sub_env}
    mp.undo()
    submit.default_job.cache_clear()
    archive_job.default_job.cache_clear()


def run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()  # what the functions logged before
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_counts_equal_the_emulators_records(loop_archive, tmp_path, capsys):
    uri, expected, _ = loop_archive
    code, out, err = run(capsys, "report", uri, "--cache", str(tmp_path / "c"), "--since", "1d",
                         "--stuck-after", "0s", "--format", "json", "--no-progress")
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc)[:8] == ["range", "tasks", "by_day", "failures", "durations", "stuck", "submit_failures",
                             "routes"]
    t = doc["tasks"]
    assert t["total"] == expected["tasks"] and t["stuck"] == expected["stuck"] and t["running"] == 0
    assert t["failed"] == expected["failed"] and t["succeeded"] == expected["tasks"] - expected["failed"] - 2
    assert sum(d["total"] for d in doc["by_day"]) == expected["tasks"]
    assert {(f["code"], f["message"]): f["tasks"] for f in doc["failures"]} == expected["failed_by_code"]
    assert {s["key"] for s in doc["stuck"]} == set(STUCK)
    assert all(s["task_id"] and s["submitted_at"] for s in doc["stuck"])
    assert {f["key"] for f in doc["submit_failures"]} == expected["submit_failed"]
    assert all(f["code"].startswith("UnknownParameter") and f["route"] == "broken" for f in doc["submit_failures"])
    routes = {r["route"]: r for r in doc["routes"]}
    assert routes["broken"]["submit_failed"] == 2 and routes["broken"]["tasks"] == 0
    assert routes["clips"]["objects"] == 7 and routes["videos"]["objects"] == 15
    assert sum(r["tasks"] for r in doc["routes"]) == expected["tasks"]
    every = doc["durations"][0]
    assert every["route"] == "*" and every["tasks"] == expected["tasks"] - 2
    assert 0 < every["total"]["p50"] <= every["total"]["p90"] <= every["total"]["p99"] <= every["total"]["max"] < 30
    assert every["wait"]["count"] > 0 and every["run"]["count"] > 0
    assert {d["route"] for d in doc["durations"]} == {"*", "videos", "clips"}


def test_report_table_and_failed_keys_for_reprocess(loop_archive, tmp_path, capsys):
    uri, expected, _ = loop_archive
    cache = str(tmp_path / "c")
    code, out, err = run(capsys, "report", uri, "--cache", cache, "--since", "1d", "--stuck-after", "0s",
                         "--no-progress")
    assert code == 0 and "new objects" in err
    assert "failures" in out and "InternalError" in out and "stuck (no final callback): 2" in out
    assert "failed to submit: 2" in out
    code, out, err = run(capsys, "report", uri, "--cache", cache, "--since", "1d", "--failed", "--format", "keys",
                         "--no-progress")
    assert code == 0 and "0 new objects" in err  # the second run reads only what is new: nothing
    bucket = "media-in"
    assert out.splitlines() == sorted(f"s3://{bucket}/{k}" for k in expected["failed_keys"] | expected["submit_failed"])


def test_find_by_key_shows_the_submission_and_every_callback_in_time_order(loop_archive, tmp_path, capsys):
    uri, expected, _ = loop_archive
    key = "videos/03.mp4"
    [task_id] = [t for t, k in expected["keys"].items() if k == key]
    code, out, _ = run(capsys, "find", uri, "--cache", str(tmp_path / "c"), "--key", key, "--format", "json",
                       "--no-progress")
    assert code == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[0]["event_type"] == "submissions" and lines[0]["result"] == "submitted"
    assert lines[0]["task_id"] == task_id
    callbacks = lines[1:]
    assert sorted(c["status"] for c in callbacks) == ["FINISH", "PROCESSING"]  # a duplicate delivery counts once
    assert all(c["task_id"] == task_id and c["payload"]["EventType"] for c in callbacks)
    times = [ln.get("received_at") or ln["at"] for ln in lines]
    assert times == sorted(times)
    # the same lines by TaskId, and a table
    code, out, _ = run(capsys, "find", uri, "--cache", str(tmp_path / "c"), "--task-id", task_id, "--no-sync",
                       "--no-progress")
    assert code == 0 and out.count(task_id) == 3 and "ledger" in out and "callback" in out
    # free text inside the payload: the failed subtasks' message
    code, out, _ = run(capsys, "find", uri, "--cache", str(tmp_path / "c"), "--text", "internalerror",
                       "--format", "json", "--no-sync", "--no-progress")
    found = [json.loads(x) for x in out.splitlines()]
    assert {ln["task_id"] for ln in found if ln.get("failed")} >= {
        t for t, k in expected["keys"].items() if k in expected["failed_keys"]}


def test_sync_is_incremental_never_writes_outside_the_cache_and_reads_compacted_objects(loop_archive, tmp_path,
                                                                                       capsys, stack):
    uri, expected, _ = loop_archive
    cache = tmp_path / "c"
    code, out, _ = run(capsys, "archive", "sync", uri, "--cache", str(cache), "--format", "json", "--no-progress")
    first = json.loads(out)
    assert code == 0 and first["fetched"] == first["listed"] > 0 and first["failed"] == []
    bucket, prefix = uri[5:].split("/", 1)
    s3 = stack.boto3("s3")
    # a stray key in the archive bucket that tries to climb out of the cache, and a file that is not an object
    s3.put_object(Bucket=bucket, Key=f"{prefix}event_type=../dt=2026-11-20/hour=00/x.jsonl", Body=b"{}\n")
    s3.put_object(Bucket=bucket, Key=f"{prefix}README.txt", Body=b"hello")
    # a compacted object (gzip JSON lines) holding a copy of lines already cached: counted once
    some = next(cache.glob("event_type=ScheduleTask/dt=*/hour=*/*.jsonl"))
    rel = some.relative_to(cache).parent.as_posix()
    s3.put_object(Bucket=bucket, Key=f"{prefix}{rel}/compacted-{'0' * 32}.jsonl.gz", Body=gzip.compress(
        some.read_bytes()))
    code, out, _ = run(capsys, "archive", "sync", uri, "--cache", str(cache), "--format", "json", "--no-progress")
    second = json.loads(out)
    assert code == 0 and second["fetched"] == 1 and second["cached"] == first["listed"]
    assert not (tmp_path / "dt=2026-11-20").exists() and not list(tmp_path.rglob("x.jsonl"))
    assert not list(tmp_path.rglob("README.txt"))
    code, out, _ = run(capsys, "report", str(cache), "--since", "1d", "--stuck-after", "0s", "--format", "json")
    assert json.loads(out)["tasks"]["total"] == expected["tasks"]
    # an interrupted download leaves a temporary file, never a partial object: it is ignored, then replaced
    victim = next(cache.glob("event_type=submissions/dt=*/hour=*/*.jsonl"))
    (victim.parent / ".tmp-deadbeef").write_bytes(victim.read_bytes()[:10])
    victim.unlink()
    code, out, _ = run(capsys, "archive", "sync", uri, "--cache", str(cache), "--format", "json", "--no-progress")
    assert json.loads(out)["fetched"] == 1 and victim.exists()
    s3.delete_object(Bucket=bucket, Key=f"{prefix}{rel}/compacted-{'0' * 32}.jsonl.gz")
    code, out, _ = run(capsys, "archive", "sync", uri, "--cache", str(cache), "--delete", "--format", "json",
                       "--no-progress")
    assert json.loads(out)["deleted"] == 1
    shutil.rmtree(cache)


def test_html_report_renders_the_tables_and_charts_in_headless_chromium(loop_archive, tmp_path, capsys):
    uri, expected, _ = loop_archive
    page = tmp_path / "report.html"
    code, _, err = run(capsys, "report", uri, "--cache", str(tmp_path / "c"), "--since", "1d", "--stuck-after", "0s",
                       "--format", "html", "--output", str(page), "--no-progress")
    assert code == 0 and page.exists(), err
    from tests.browser import open_page

    with open_page(page) as browser:
        cards = browser.evaluate("Object.fromEntries([...document.querySelectorAll('.card')].map("
                                 "c => [c.id, c.querySelector('b').textContent]))")
        assert cards["card-total"] == str(expected["tasks"]) and cards["card-stuck"] == "2"
        assert cards["card-failed"] == str(expected["failed"])
        bars = browser.evaluate("[...document.querySelectorAll('#chart-days rect.bar')].map(r => ({state: "
                                "r.dataset.state, count: +r.dataset.count, h: r.getBoundingClientRect().height}))")
        assert sum(b["count"] for b in bars) == expected["tasks"]
        assert sum(b["count"] for b in bars if b["state"] == "failed") == expected["failed"]
        per_task = [b["h"] / b["count"] for b in bars]
        assert min(per_task) > 0 and max(per_task) - min(per_task) < 0.05  # drawn to scale
        durations = browser.evaluate("[...document.querySelectorAll('#chart-durations rect.bar')].map(r => ({"
                                     "pct: r.dataset.pct, s: +r.dataset.seconds, "
                                     "w: r.getBoundingClientRect().width}))")
        assert len(durations) == 9 and all(d["w"] > 0 for d in durations)
        widest = max(durations, key=lambda d: d["w"])
        assert widest["s"] == max(d["s"] for d in durations)
        rows = browser.evaluate("[...document.querySelectorAll('#failures tbody tr')].map(tr => "
                                "[...tr.cells].map(c => c.textContent))")
        assert {(r[1], r[2]): int(r[0]) for r in rows} == expected["failed_by_code"]
        keys = browser.evaluate("[...document.querySelectorAll('#stuck tbody tr')].map(tr => tr.cells[2].textContent)")
        assert sorted(keys) == sorted(STUCK)  # the key that is HTML is shown as text, and nothing ran
        assert browser.evaluate("window.pwned === undefined && document.images.length === 0")
        assert browser.requests == [page.as_uri()]  # nothing fetched: readable without a network


def test_report_usage_errors_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARCHIVE_URI", raising=False)
    assert run(capsys, "report")[0] == 2
    assert run(capsys, "report", str(tmp_path / "missing"))[0] == 2
    assert run(capsys, "report", str(tmp_path), "--since", "2026-11-21", "--until", "2026-11-20")[0] == 2
    assert run(capsys, "find", str(tmp_path))[0] == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "--stuck-after", "soon"])
    assert exit_info.value.code == 2
    code, out, _ = run(capsys, "report", str(tmp_path), "--format", "json")  # an empty archive: zeros, not an error
    assert code == 0 and json.loads(out)["tasks"]["total"] == 0
    junk = tmp_path / "event_type=ScheduleTask" / "dt=2026-11-20" / "hour=00" / "junk.jsonl"
    junk.parent.mkdir(parents=True)
    junk.write_text("not json at all\n")
    code, _, err = run(capsys, "report", str(tmp_path), "--since", "2026-11-19")  # a folder someone else filled
    assert code == 1 and "could not be read" in err and "junk.jsonl" in err


def _duckdb_type(hive: str) -> str:
    """A Hive column type of the DDL as DuckDB's (string, boolean, int, struct<...>, array<...>)."""
    hive = hive.strip()
    simple = {"string": "VARCHAR", "boolean": "BOOLEAN", "int": "INTEGER", "bigint": "BIGINT"}
    if hive in simple:
        return simple[hive]
    if hive.startswith("array<"):
        return _duckdb_type(hive[6:-1]) + "[]"
    assert hive.startswith("struct<"), hive
    fields, depth, part = [], 0, ""
    for ch in hive[7:-1] + ",":
        if ch == "," and depth == 0:
            name, kind = part.split(":", 1)
            fields.append(f'"{name}" {_duckdb_type(kind)}')
            part = ""
            continue
        depth += ch == "<"
        depth -= ch == ">"
        part += ch
    return f"STRUCT({', '.join(fields)})"


def test_the_athena_table_view_and_queries_answer_what_the_report_does(loop_archive, tmp_path, capsys):
    """tables/athena.sql's columns as a DuckDB view over the synced archive (partitions by Hive folder, as the
    projection names them), its mps_lines view verbatim, and every query of tables/queries.sql, with Trino's
    function names as DuckDB macros."""
    import duckdb

    uri, expected, _ = loop_archive
    cache = tmp_path / "c"
    assert run(capsys, "archive", "sync", uri, "--cache", str(cache), "--no-progress")[0] == 0
    tables = Path(__file__).resolve().parents[1] / "tables"
    ddl = (tables / "athena.sql").read_text(encoding="utf-8")
    body = ddl.split("CREATE EXTERNAL TABLE IF NOT EXISTS mps_archive (", 1)[1].split("\n)\nPARTITIONED BY", 1)[0]
    columns = {}
    for line in body.strip().splitlines():
        name, kind = line.strip().rstrip(",").split(" ", 1)
        columns[name.strip("`")] = _duckdb_type(kind)
    assert {"id", "at", "object", "error", "payload"} <= set(columns)
    db = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for macro in ("from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)",
                  "json_extract_scalar(j, p) AS json_extract_string(j, p)",
                  "approx_percentile(x, p) AS quantile_cont(x, p)"):
        db.execute(f"CREATE MACRO {macro}")
    spec = "{" + ", ".join(f"'{n}': '{t}'" for n, t in columns.items()) + "}"
    db.execute(f"""CREATE VIEW mps_archive AS SELECT * FROM read_json(
        '{cache}/event_type=*/dt=*/hour=*/*.jsonl*',
        format = 'newline_delimited', columns = {spec}, hive_partitioning = true,
        hive_types = {{'event_type': 'VARCHAR', 'dt': 'VARCHAR', 'hour': 'VARCHAR'}})""")
    db.execute(ddl.split("CREATE OR REPLACE VIEW mps_lines AS", 1)[1].strip().rstrip(";").join(
        ["CREATE OR REPLACE VIEW mps_lines AS ", ""]))
    since = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    until = (datetime.now(timezone.utc) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    answers = {}
    for chunk in (tables / "queries.sql").read_text(encoding="utf-8").split("-- name: ")[1:]:
        name, sql = chunk.split("\n", 1)
        sql = sql.replace("'SINCE'", f"'{since}'").replace("'UNTIL'", f"'{until}'").replace("'6' HOUR", "'0' HOUR")
        answers[name.strip()] = db.execute(sql.strip().rstrip(";")).fetchall() if "SELECT" in sql else None
    states: dict[str, int] = {}
    for _, state, n in answers["tasks_by_day_and_state"]:
        states[state] = states.get(state, 0) + n
    assert states == {"failed": expected["failed"], "stuck": 2,
                      "succeeded": expected["tasks"] - expected["failed"] - 2}
    assert {(code, message): n for code, message, n, _ in answers["failures_by_code"]} == expected["failed_by_code"]
    assert sorted(row[5] for row in answers["stuck"]) == sorted(STUCK)
    assert {row[4] for row in answers["submit_failures"]} == expected["submit_failed"]
    assert dict(answers["objects_per_route"]) == {"broken": 2, "clips": 7, "videos": 15}
    durations = {route: (n, p50, p99) for route, n, p50, _, p99, _ in answers["durations_by_route"]}
    assert sum(n for n, _, _ in durations.values()) == expected["tasks"] - 2
    assert all(0 < p50 <= p99 < 30 for _, p50, p99 in durations.values())
