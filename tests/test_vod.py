"""The vod function (functions/vod/app.py) against the local VOD emulator over HTTP and a moto archive bucket.

Push (normal callback through a function URL) and pull (a scheduled poller: PullEvents → archive → submit →
ConfirmEvents): each uploaded file submitted exactly once under redelivery, files whose upload started a task flow
skipped, every event archived; a poller killed between its archive write and ConfirmEvents loses nothing and starts
no second task; bad events fail alone and are never confirmed; every VOD request the emulator saw was signed for
``vod``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mps_triggers import storage, vod_job
from mpslocal.runner import FunctionUrlServer
from mpslocal.vod_emulator import VodEmulator

from .conftest import Reader, load_app, wait_for

ROOT = Path(__file__).resolve().parents[1]
SUB = 1500000001
ROUTES = [{"name": "flows", "types": ["mp4", "mov"], "procedure": "hls-720p"},
          {"name": "erase", "name_prefix": "erase/", "mps_params": {"AiAnalysisTask": {"Definition": 25}}}]


@pytest.fixture
def vod(stack):
    """A VOD application (the emulator) that knows the same Tencent Cloud key as the stack's MPS emulator."""
    secret_id, (secret_key, _) = next(iter(stack.mps.credentials.items()))
    with VodEmulator(secret_id, secret_key, sub_app_ids=(SUB,), complete_after=0.1, pull_wait=0.2) as emu:
        yield emu


@pytest.fixture
def vod_env(stack, vod, monkeypatch):
    """Configure functions/vod/app.py against ``vod`` and a fresh moto bucket; returns (app, reader, env)."""
    def apply(**extra):
        for k in list(os.environ):
            if k.startswith(("MPS_", "TENCENTCLOUD_", "ARCHIVE_", "CALLBACK_", "VOD_")):
                monkeypatch.delenv(k)
        bucket = f"vod-{uuid.uuid4().hex[:10]}"
        stack.boto3("s3").create_bucket(Bucket=bucket)
        secret_id, (secret_key, _) = next(iter(vod.credentials.items()))
        env = {"AWS_ENDPOINT_URL": stack.moto.url, "ARCHIVE_URI": f"s3://{bucket}/vod", "VOD_ENDPOINT": vod.url,
               "MPS_ENDPOINT": stack.mps.url, "VOD_SUB_APP_ID": str(SUB), "MPS_SECRET_ID": secret_id,
               "MPS_SECRET_KEY": secret_key,
               "VOD_ROUTES": json.dumps(ROUTES), "CALLBACK_TOKEN": "vod-token-1", "MPS_TIMEOUT": "3"}
        env.update({k: v for k, v in extra.items() if v is not None})
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        vod_job.default_job.cache_clear()
        storage._stores.clear()
        return load_app("vod"), Reader(stack, bucket), env

    yield apply
    vod_job.default_job.cache_clear()
    storage._stores.clear()


def lines(reader: Reader) -> list[dict]:
    return [ln for objs in reader.objects().values() for ln in objs]


def ledger(reader: Reader) -> list[dict]:
    return [ln for objs in reader.objects(ledger=True).values() for ln in objs]


def procedure_tasks(vod: VodEmulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in vod.tasks:
        if t["Api"] == "ProcessMediaByProcedure" and t["SessionId"]:  # ours: the upload's own flows have none
            counts[t["FileId"]] = counts.get(t["FileId"], 0) + 1
    return counts


def timer() -> dict:
    return {"Type": "Timer", "TriggerName": "vod-poll", "Time": "2026-11-22T10:00:00Z", "Message": "vod"}


def scf_context(seconds: float = 60.0) -> dict:
    return {"request_id": str(uuid.uuid4()), "function_name": "vod", "time_limit_in_ms": int(seconds * 1000)}


def poll_until_empty(app, vod, rounds: int = 10) -> list[dict]:
    out = []
    for _ in range(rounds):
        out.append(app.handler(timer(), scf_context()))
        if vod.pending(SUB) == 0:
            break
        time.sleep(0.3)
    return out


def test_push_submits_each_file_once_skips_started_flows_and_archives_every_event(vod_env, vod):
    app, reader, _ = vod_env(VOD_SIGN_KEY="vodSignKey42")
    server = FunctionUrlServer(app.handler, name="vod")
    try:
        vod.configure(SUB, "PUSH", f"{server.url}?token=vod-token-1&sub_app_id={SUB}", "vodSignKey42")
        routed = [vod.upload(f"movie-{i}.mp4", SUB) for i in range(3)]
        started = vod.upload("already.mp4", SUB, procedure="hls-720p")  # the upload signature named a task flow
        other = vod.upload("notes.txt", SUB)  # no route
        assert wait_for(lambda: len([p for p in vod.pushes if p.status == 200]) >= 3 + 1 + 1 + 3 + 1)
        # VOD pushes each NewFileUpload again (a retry after a lost answer): absorbed by the SessionId and line id
        for p in [p for p in vod.pushes if p.event_type == "NewFileUpload" and p.status == 200]:
            vod.emit(SUB, {k: v for k, v in p.body.items() if k not in ("T", "Sign")})  # signed anew
        assert wait_for(lambda: len({ln["id"] for ln in lines(reader)}) == 9 and len(ledger(reader)) == 6)
    finally:
        server.stop()
    assert procedure_tasks(vod) == {f: 1 for f in routed}
    assert started not in procedure_tasks(vod) and other not in procedure_tasks(vod)
    archived = lines(reader)
    assert {ln["event_type"] for ln in archived} == {"NewFileUpload", "ProcedureStateChanged"}
    finished = [ln for ln in archived if ln["event_type"] == "ProcedureStateChanged"]
    assert {ln["object"]["key"] for ln in finished} >= set(routed) and all(ln["status"] == "FINISH" for ln in finished)
    assert all(ln["object"]["route"] == "flows" for ln in finished if ln["session_id"])
    assert all("T" in ln["payload"] and "Sign" in ln["payload"] for ln in archived)  # kept, but outside the id
    results = sorted(ln["result"] for ln in ledger(reader))
    assert results == ["duplicate"] * 3 + ["submitted"] * 3
    assert all(ln["api"] == "ProcessMediaByProcedure" and ln["origin"] == "vod" for ln in ledger(reader))
    vod_requests = [r for r in vod.requests if r.action == "ProcessMediaByProcedure"]
    assert vod_requests and all(r.signed for r in vod_requests)
    assert [r.verdict for r in vod_requests].count("accepted") == 3


def test_push_authenticates_by_token_and_sign(vod_env, vod):
    app, reader, _ = vod_env(VOD_SIGN_KEY="vodSignKey42")
    body = {"EventType": "NewFileUpload", "FileUploadEvent": {"FileId": "1", "MediaBasicInfo": {"Name": "a.mp4"}}}
    server = FunctionUrlServer(app.handler, name="vod")
    try:
        import httpx

        t = int(time.time()) + 600
        import hashlib
        good = {**body, "T": t, "Sign": hashlib.md5(f"vodSignKey42{t}".encode()).hexdigest()}
        assert httpx.post(f"{server.url}?token=wrong", json=good).status_code == 401
        assert httpx.post(f"{server.url}?token=vod-token-1", json={**good, "Sign": "0" * 32}).status_code == 401
        expired = {**body, "T": 1700000000, "Sign": hashlib.md5(b"vodSignKey421700000000").hexdigest()}
        assert httpx.post(f"{server.url}?token=vod-token-1", json=expired).status_code == 401
    finally:
        server.stop()
    assert lines(reader) == [] and vod.tasks == []


def test_poller_killed_between_archive_and_confirm_loses_nothing_and_submits_once(vod_env, vod):
    app, reader, env = vod_env()
    vod.configure(SUB, "PULL")
    vod.visibility = 1.0
    routed = [vod.upload(f"clip-{i}.mov", SUB) for i in range(3)]
    started = vod.upload("signed-upload.mp4", SUB, procedure="hls-720p")
    assert wait_for(lambda: vod.pending(SUB) == 5)  # 4 uploads, and the started flow's ProcedureStateChanged
    vod.confirm_hold.set()  # ConfirmEvents will hang: the poller is killed while it waits
    vod.confirm_arrived.clear()
    code = ("import importlib.util as u; s = u.spec_from_file_location('app', 'functions/vod/app.py'); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); "
            "m.handler({'Type': 'Timer'}, {'request_id': 'killed', 'time_limit_in_ms': 120000})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert vod.confirm_arrived.wait(60), "the poller never reached ConfirmEvents"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        vod.confirm_hold.clear()
    assert procedure_tasks(vod) == {f: 1 for f in routed}  # submitted before the kill
    before = {ln["id"] for ln in lines(reader)}
    assert len(before) == 5  # archived before the kill
    assert wait_for(lambda: vod.pending(SUB) == 5 + 3)  # nothing was confirmed; our 3 flows finished meanwhile
    time.sleep(1.2)  # the events become visible again
    poll_until_empty(app, vod)
    assert wait_for(lambda: (poll_until_empty(app, vod, 2), vod.pending(SUB) == 0 and
                             len({ln["id"] for ln in lines(reader)}) == 8)[1], timeout=20)
    assert procedure_tasks(vod) == {f: 1 for f in routed}  # the redelivered events started no second task
    assert started not in procedure_tasks(vod)
    ids = [ln["id"] for ln in lines(reader)]
    assert set(ids) >= before and len(set(ids)) == 8  # 5 events + 3 ProcedureStateChanged of our flows
    results = [ln["result"] for ln in ledger(reader)]
    assert results.count("submitted") == 3 and results.count("duplicate") == 3
    assert all(r.signed for r in vod.requests)


def test_bad_events_fail_alone_and_are_never_confirmed(vod_env, vod):
    app, reader, _ = vod_env()
    vod.configure(SUB, "PULL")
    vod.visibility = 60.0
    good = vod.upload("fine.mp4", SUB)
    vod.emit(SUB, {"EventType": "NewFileUpload", "FileUploadEvent": {"MediaBasicInfo": {"Name": "nofile.mp4"}}})
    vod.emit(SUB, {"EventType": "SomethingNew", "SomethingNewEvent": {"X": 1}})
    report = app.handler(timer(), scf_context())
    assert report["failed"] == 2 and report["confirmed"] == report["pulled"] - 2
    assert procedure_tasks(vod) == {good: 1}
    assert wait_for(lambda: (app.handler(timer(), scf_context()), vod.pending(SUB) == 2)[1])  # the bad ones stay
    kept = {ln["event_type"]: ln for ln in lines(reader)}
    assert set(kept) == {"NewFileUpload", "SomethingNew", "ProcedureStateChanged"}  # bad ones archived all the same
    assert sum(ln["event_type"] == "NewFileUpload" for ln in lines(reader)) == 2
    assert kept["SomethingNew"]["payload"] == {"EventType": "SomethingNew", "SomethingNewEvent": {"X": 1}}


def test_malformed_pull_answer_fails_the_poll_and_confirms_nothing(vod_env, vod):
    app, reader, _ = vod_env()
    vod.configure(SUB, "PULL")
    vod.upload("fine.mp4", SUB)
    vod.answer_next("PullEvents", {"EventSet": {"not": "a list"}})
    report = app.handler(timer(), scf_context())
    assert report["failed"] == 1 and report["confirmed"] == 0 and report["pulled"] == 0
    assert vod.pending(SUB) == 1 and vod.tasks == [] and lines(reader) == []


def test_the_sample_events_reach_the_function(vod_env, vod):
    """events/: the pushed NewFileUpload (signed again: its T has passed) through the handler, then a poll from the
    Scheduler's and the SCF timer's event."""
    import hashlib

    from .conftest import load_event

    app, reader, _ = vod_env(VOD_SIGN_KEY="events-vod-sign-key", CALLBACK_TOKEN="events-callback-token")
    event = load_event("vod_furl_new_file_upload.json")
    body = json.loads(event["body"])
    vod.add_file(body["FileUploadEvent"]["FileId"], "x.mp4", SUB)  # VOD has the file
    body["T"] = int(time.time()) + 600
    body["Sign"] = hashlib.md5(f"events-vod-sign-key{body['T']}".encode()).hexdigest()
    event["body"] = json.dumps(body, ensure_ascii=False)
    answer = app.handler(event, scf_context())
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["result"] == "submitted"
    assert procedure_tasks(vod) == {body["FileUploadEvent"]["FileId"]: 1}
    vod.configure(SUB, "PULL")
    vod.upload("next.mov", SUB)
    for name in ("scheduler_vod.json", "scf_timer_vod.json"):
        summary = app.handler(load_event(name), scf_context())
        assert summary["failed"] == 0 and summary["confirmed"] == summary["pulled"]
    assert vod.pending(SUB) == 0 and len(procedure_tasks(vod)) == 2


def test_mps_routes_process_the_vod_file_once_by_session_id_or_by_claim(vod_env, vod, mps):
    """A ``schedule_id`` route calls MPS ProcessMedia with the VOD file as input (SessionId); an ``mps_params`` route
    calls VOD's ProcessMediaByMPS, which has no SessionId: the claim under ARCHIVE_URI keeps a redelivery from
    starting a second task."""
    routes = [{"name": "mps", "types": ["mxf"], "schedule_id": 20001},
              {"name": "erase", "name_prefix": "erase/", "mps_params": {"AiAnalysisTask": {"Definition": 25}}}]
    app, reader, _ = vod_env(VOD_ROUTES=json.dumps(routes), MPS_NOTIFY_URL="https://archive.example/cb")
    vod.configure(SUB, "PULL")
    vod.visibility = 0.5
    to_mps = vod.upload("master.mxf", SUB)
    to_erase = vod.upload("erase/logo.mp4", SUB)
    app.handler(timer(), scf_context())
    assert vod.pushes == []  # nothing is pushed in PULL mode
    # VOD delivers both NewFileUpload events again (their confirmation was lost): re-emitted as new events
    for file_id, name in ((to_mps, "master.mxf"), (to_erase, "erase/logo.mp4")):
        vod.emit(SUB, {"EventType": "NewFileUpload", "FileUploadEvent": {
            "FileId": file_id, "ProcedureTaskId": "", "MediaBasicInfo": {"Name": name, "Type": name[-3:]}}})
    assert wait_for(lambda: (app.handler(timer(), scf_context()), vod.pending(SUB) == 0)[1], timeout=20)
    [task] = mps.tasks
    assert task.body["InputInfo"] == {"Type": "VOD", "VODInputInfo": {"FileId": to_mps, "VodBasic": 1,
                                                                     "SubAppId": SUB}}
    assert task.body["ScheduleId"] == 20001 and task.session_id.startswith("mt1-")
    assert task.body["TaskNotifyConfig"]["NotifyUrl"] == "https://archive.example/cb"
    erased = [t for t in vod.tasks if t["Api"] == "ProcessMediaByMPS"]
    assert [t["FileId"] for t in erased] == [to_erase]
    by_api = {}
    for ln in ledger(reader):
        by_api.setdefault(ln["api"], []).append(ln["result"])
    assert sorted(by_api["ProcessMedia"]) == ["duplicate", "submitted"]
    assert sorted(by_api["ProcessMediaByMPS"]) == ["duplicate", "submitted"]
    done = [ln for ln in lines(reader) if ln["event_type"] == "ProcessMediaByMPSComplete"]
    assert [ln["task_id"] for ln in done] == [erased[0]["TaskId"]]


def test_report_and_find_cover_vod_tasks(vod_env, vod, tmp_path, capsys):
    """``mps-triggers report`` counts each file's task flow as a task (the ledger and ProcedureStateChanged joined by
    SessionId; a flow the upload started, by TaskId); ``find --key <FileId>`` shows its NewFileUpload, its
    submission and its task's events, in time order."""
    from mps_triggers_cli.main import main

    app, reader, env = vod_env()
    vod.configure(SUB, "PULL")
    routed = [vod.upload(f"r{i}.mp4", SUB) for i in range(3)]
    vod.upload("started.mp4", SUB, procedure="hls-720p")
    vod.upload("readme.txt", SUB)
    assert wait_for(lambda: (app.handler(timer(), scf_context()), vod.pending(SUB) == 0
                             and len(procedure_tasks(vod)) == 3 and vod.scheduled() == 0)[1], timeout=20)
    app.handler(timer(), scf_context())  # the last ProcedureStateChanged events
    uri = env["ARCHIVE_URI"] + "/"
    capsys.readouterr()
    code = main(["report", uri, "--cache", str(tmp_path / "c"), "--since", "1d", "--format", "json",
                 "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    tasks = json.loads(out)["tasks"]
    assert tasks["total"] == 4 and tasks["succeeded"] == 4  # 3 routed flows + the one the upload started
    assert {r["route"]: r["tasks"] for r in json.loads(out)["routes"]}.get("flows") == 3
    code = main(["find", uri, "--cache", str(tmp_path / "c"), "--key", routed[0], "--format", "json", "--no-sync",
                 "--no-progress"])
    found = [json.loads(x) for x in capsys.readouterr()[0].splitlines()]
    assert code == 0 and [ln["event_type"] for ln in found] == ["NewFileUpload", "submissions",
                                                                "ProcedureStateChanged"]
    assert found[1]["result"] == "submitted" and found[1]["task_id"] == found[2]["task_id"]


def test_a_pulled_event_without_a_handle_and_a_pushed_unknown_event_fail_alone_archived(vod_env, vod):
    """A pulled event VOD gave no EventHandle cannot be confirmed: archived, not submitted, reported failed. A
    pushed event of a type VOD does not document: archived, answered 400 naming the event and the field."""
    import httpx

    app, reader, _ = vod_env()
    vod.configure(SUB, "PULL")
    file_id = vod.upload("kept.mp4", SUB)
    [entry] = [doc for app_id, doc in vod.history if doc["EventType"] == "NewFileUpload"]
    vod.answer_next("PullEvents", {"EventSet": [entry,  # as VOD sent it, but without its EventHandle
                                                {"EventHandle": "h-no-type", "Surprise": {"FileId": "9"}}, 7]})
    report = app.handler(timer(), scf_context())
    # the three odd entries failed; the real delivery, pulled next, was submitted and confirmed: one task
    assert report["failed"] == 3 and report["pulled"] >= 4 and report["confirmed"] == report["pulled"] - 3
    assert [ln["payload"] for ln in lines(reader) if ln["event_type"] == "unknown"] == [{"Surprise": {"FileId": "9"}}]
    assert procedure_tasks(vod) == {file_id: 1}
    uploads = [ln for ln in lines(reader) if ln["event_type"] == "NewFileUpload"]  # in two objects: one line id
    assert {ln["id"] for ln in uploads} == {uploads[0]["id"]} and uploads[0]["object"]["key"] == file_id
    server = FunctionUrlServer(app.handler, name="vod")
    try:
        answer = httpx.post(f"{server.url}?token=vod-token-1", json={"EventType": "Bogus", "BogusEvent": {}})
    finally:
        server.stop()
    assert answer.status_code == 400 and "EventType" in answer.json()["error"] and answer.json()["id"]
    assert any(ln["event_type"] == "Bogus" for ln in lines(reader))
