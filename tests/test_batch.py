"""BatchProcessMedia routes: one batch task per object under redelivery, concurrent duplicates, a crash between
claim and request and a request whose outcome is unknown; its own 20 requests/s; BatchTask callbacks archived with
task id, status, errors and inputs. Everything over real HTTP: the emulator (which checks the API with its own
rules), moto for S3 and COS (whose forbid-overwrite the stack's shim emulates)."""
from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from mps_triggers import storage
from mps_triggers.claims import Busy, Claim, ClaimBook, Taken
from mps_triggers.config import load_settings
from mps_triggers.exceptions import ConfigError
from mps_triggers.mps import Credentials, MpsBatchThrottlingError, MpsClient, RetryPolicy
from mps_triggers.submit import SubmitJob
from mpslocal.container import FunctionContainer
from mpslocal.notifications import batch_task_event, notification
from tests.conftest import (S3_SECRET, BlackHole, Reader, base_env, furl_event, load_event, resign, s3_body,
                            sqs_event, wait_for)

ROOT = Path(__file__).resolve().parents[1]
S3_KEY_ID = "AKIATESTMPSREADER001"
SUBTITLES = {"SmartSubtitlesTask": {"RawParameter": {"SubtitleType": 0, "VideoSrcLanguage": "en",
                                                     "SubtitleFormat": "vtt", "TranslateSwitch": "OFF"}}}
COS_OUT = {"output_storage": "cos", "output_bucket": "subs-out-1250000000", "output_region": "ap-guangzhou"}
ROUTE = {"name": "subs", "api": "BatchProcessMedia", "suffixes": [".mp4"], "tasks": SUBTITLES, **COS_OUT}
CLIP = b"\x00\x00\x00\x18ftypmp42 a clip to subtitle"


@pytest.fixture
def buckets(stack):
    s3 = stack.boto3("s3")
    media, arch = f"media-{uuid.uuid4().hex[:8]}", f"arch-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=media)
    s3.create_bucket(Bucket=arch)
    return s3, media, arch


def upload(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=CLIP)
    return s3_body(quote_plus(key, safe="/"), size=len(CLIP), bucket=bucket)


def batch_env(stack, arch, **extra):
    return {"MPS_SCHEDULE_ID": None, "AWS_ENDPOINT_URL": stack.moto.url, "ARCHIVE_URI": f"s3://{arch}/callbacks",
            "MPS_NOTIFY_URL": "https://callbacks.example.com/mps", "MPS_ROUTES": json.dumps([ROUTE]), **extra}


def claims(s3, arch):
    return {o["Key"].split("/claims/BatchProcessMedia/")[1]: json.loads(
        s3.get_object(Bucket=arch, Key=o["Key"])["Body"].read())
        for o in s3.list_objects_v2(Bucket=arch, Prefix="callbacks/claims/").get("Contents", [])}


def batch_tasks(mps):
    return [t for t in mps.tasks if "-BatchTask-" in t.task_id]


def test_a_batch_route_submits_one_batch_task_and_a_redelivery_finds_it_claimed(handler_env, mps, buckets, stack):
    s3, media, arch = buckets
    mps.aws_keys = {S3_KEY_ID: S3_SECRET}
    app = handler_env(**batch_env(stack, arch))
    event = upload(s3, media, "talks/keynote 产品+1.mp4")
    first = app.handler(event, None)  # a direct S3 invocation answers with every object's outcome
    assert first["submitted"] == 1, first
    [task] = batch_tasks(mps)
    body = task.body
    assert "SessionId" not in body and body["InputInfo"][0]["Type"] == "URL"
    assert task.input_fetch == f"ok: {len(CLIP)} bytes"  # the emulator checked the presigned URL and fetched it
    assert body["OutputStorage"]["CosOutputStorage"]["Bucket"] == "subs-out-1250000000"
    assert body["OutputDir"] == "/mps-output/talks/keynote%20产品+1.mp4/" or body["OutputDir"].startswith("/mps-output/")
    sid = first["objects"][0]["session_id"]
    assert json.loads(body["SessionContext"])["s"] == sid
    # delivered again, and again as an SQS message: the claim says submitted, MPS is not asked
    again = app.handler(event, None)
    assert again.get("duplicate") == 1 and again["objects"][0]["task_id"] == task.task_id
    assert app.handler(sqs_event(event), None) == {"batchItemFailures": []}
    assert len(batch_tasks(mps)) == 1 and len([r for r in mps.requests if r.action == "BatchProcessMedia"]) == 1
    assert claims(s3, arch)[f"{sid}/0000.json"]["state"] == "submitted"
    assert claims(s3, arch)[f"{sid}/0000.json"]["task_id"] == task.task_id


def test_concurrent_duplicates_in_separate_containers_create_one_batch_task(handler_env, mps, buckets, stack):
    s3, media, arch = buckets
    mps.aws_keys = {S3_KEY_ID: S3_SECRET}
    mps.latency = 0.3  # the first request is in flight while the others look at its claim
    handler_env(**batch_env(stack, arch))
    event = upload(s3, media, "a/intro.mp4")
    jobs = [SubmitJob(load_settings()) for _ in range(8)]  # eight containers, one copy of the message each
    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(lambda j: j.run(event).summary(), jobs))
    assert sum(r.get("submitted", 0) for r in reports) == 1, reports
    assert len(batch_tasks(mps)) == 1
    busy = [r for r in reports if r.get("failed")]
    assert all("ClaimBusyError" in o["error"] for r in busy for o in r["objects"])
    # the copies that found the claim busy are delivered again later: now they find it submitted
    again = [jobs[0].run(event).summary() for _ in busy]
    assert all(r.get("duplicate") == 1 for r in again) and len(batch_tasks(mps)) == 1


def test_a_crash_between_claim_and_request_is_submitted_once_after_the_lease(handler_env, mps, buckets, stack,
                                                                             tmp_path):
    s3, media, arch = buckets
    mps.aws_keys = {S3_KEY_ID: S3_SECRET}
    env = {k: v for k, v in base_env(stack, **batch_env(stack, arch)).items()}
    hole = BlackHole()
    crashing = FunctionContainer("submit-crash", ROOT / "functions/submit/app.py",
                                 {**env, "MPS_ENDPOINT": hole.url, "COS_ENDPOINT_URL": stack.moto.url},
                                 tmp_path / "crash.log", timeout=3.0)
    event = sqs_event(upload(s3, media, "crash/talk.mp4"))
    worker = threading.Thread(target=lambda: pytest.raises(Exception, crashing.invoke, event), daemon=True)
    worker.start()
    assert wait_for(lambda: claims(s3, arch), timeout=20), "no claim was written"
    crashing.kill()  # the container dies with the request unanswered
    worker.join(10)
    hole.close()
    [(key, doc)] = claims(s3, arch).items()
    assert doc["state"] == "claimed" and not mps.requests
    app = handler_env(**batch_env(stack, arch))
    # delivered again at once: the claim is held until the dead invocation's deadline (+ clock skew)
    assert app.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert not mps.requests
    time.sleep(max(0.0, doc["lease_until"] - time.time()) + 0.2)
    assert app.handler(event, None) == {"batchItemFailures": []}
    assert len(batch_tasks(mps)) == 1
    states = {k.rsplit("/", 1)[1]: v["state"] for k, v in claims(s3, arch).items()}
    assert states == {"0000.json": "claimed", "0001.json": "submitted"}
    assert app.handler(event, None) == {"batchItemFailures": []} and len(batch_tasks(mps)) == 1


def test_a_refused_request_releases_the_claim_and_the_next_delivery_submits(handler_env, mps, buckets, stack):
    s3, media, arch = buckets
    mps.aws_keys = {S3_KEY_ID: S3_SECRET}
    app = handler_env(**batch_env(stack, arch))
    event = sqs_event(upload(s3, media, "r/a.mp4"))
    mps.inject("InternalError")  # answered: MPS did not create a task; retried once within the call...
    mps.inject("FailedOperation.InvalidMpsUser")  # ...then a permanent refusal
    assert app.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert [c["state"] for c in claims(s3, arch).values()] == ["released"]
    assert app.handler(event, None) == {"batchItemFailures": []}
    assert len(batch_tasks(mps)) == 1
    assert sorted(c["state"] for c in claims(s3, arch).values()) == ["released", "submitted"]


def test_a_timeout_after_sending_is_never_retried_and_holds_the_claim(handler_env, mps, buckets, stack):
    s3, media, arch = buckets
    mps.aws_keys = {S3_KEY_ID: S3_SECRET}
    app = handler_env(**batch_env(stack, arch, MPS_TIMEOUT="1"))
    event = sqs_event(upload(s3, media, "t/a.mp4"))
    mps.inject("sleep:2")  # MPS creates the task, the answer comes after the client gave up
    assert app.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert len(batch_tasks(mps)) == 1  # one task, not one per retry
    [doc] = claims(s3, arch).values()
    assert doc["state"] == "uncertain" and "Timeout" in doc["reason"]
    assert app.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}  # held: busy
    assert len(batch_tasks(mps)) == 1


def test_the_client_keeps_to_twenty_batch_requests_a_second(stack, mps, buckets):
    mps.batch_rate_limit = 20
    creds = next(iter(stack.mps.credentials.items()))
    client = MpsClient(stack.mps.url, Credentials(creds[0], creds[1][0]),
                       retry=RetryPolicy(max_attempts=1, max_throttled_attempts=1))
    req = {"InputInfo": [{"Type": "COS", "CosInputInfo": {"Bucket": "in-1250000000", "Region": "ap-guangzhou",
                                                          "Object": "/a.mp4"}}], **SUBTITLES}
    start = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        done = list(pool.map(lambda _: client.batch_process_media(req).response["TaskId"], range(30)))
    took = time.monotonic() - start
    assert len(set(done)) == 30 and took >= 29 / 18  # paced at 18/s, under the limit of 20
    # at most 2 of 30 refused: the pacer releases at most 18 a second, but the client's threads, moto and the
    # emulator share one process here, and a request released on time can reach the emulator late (once: 2)
    assert len([r for r in mps.requests if r.verdict == "RequestLimitExceeded"]) <= 2
    # unpaced (a plain call), 30 at once: the emulator refuses what passes 20 in a second, in the batch family
    time.sleep(1.0)
    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(lambda _: _try(lambda: client.call("BatchProcessMedia", req, require="TaskId")),
                                 range(30)))
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert refused and all(isinstance(o, MpsBatchThrottlingError) for o in refused)
    client.close()


def _try(func):
    try:
        return func()
    except Exception as exc:
        return exc


def test_the_emulator_holds_batch_requests_to_the_api(stack, mps):
    creds = next(iter(stack.mps.credentials.items()))
    client = MpsClient(stack.mps.url, Credentials(creds[0], creds[1][0]), retry=RetryPolicy(max_attempts=1))
    url_in = {"Type": "URL", "UrlInputInfo": {"Url": "http://127.0.0.1:9/x.mp4"}}
    cos_out = {"Type": "COS", "CosOutputStorage": {"Bucket": "o-1250000000", "Region": "ap-guangzhou"}}
    cases = [({"InputInfo": [url_in], "OutputStorage": cos_out, "SessionId": "x", **SUBTITLES}, "UnknownParameter"),
             ({"InputInfo": [url_in], **SUBTITLES}, "MissingParameter"),
             ({"InputInfo": [], "OutputStorage": cos_out, **SUBTITLES}, "InvalidParameter"),
             ({"InputInfo": [url_in], "OutputStorage": cos_out}, "MissingParameter"),
             ({"InputInfo": [{"Type": "AWS-S3", "S3InputInfo": {}}], "OutputStorage": cos_out, **SUBTITLES},
              "InvalidParameterValue"),
             ({"InputInfo": [url_in], "OutputStorage": {"Type": "AWS-S3", "S3OutputStorage": {}}, **SUBTITLES},
              "InvalidParameterValue"),
             ({"InputInfo": [url_in], "OutputStorage": cos_out, "TaskNotifyConfig": {
                 "NotifyType": "AWS-SQS", "AwsSQS": {"SQSRegion": "us-east-1", "SQSQueueName": "q"}}, **SUBTITLES},
              "InvalidParameterValue.NotifyType")]
    for params, code in cases:
        with pytest.raises(Exception) as info:
            client.batch_process_media(params)
        assert getattr(info.value, "code", None) == code, (params, info.value)
    assert not batch_tasks(mps)
    client.close()


def test_a_batch_task_callback_is_archived_with_task_id_status_errors_and_inputs(handler_env, mps, buckets, stack,
                                                                                archive, capsys):
    s3, media, arch = buckets
    mps.aws_keys = {S3_KEY_ID: S3_SECRET}
    app = handler_env(**batch_env(stack, arch))
    assert app.handler(sqs_event(upload(s3, media, "cb/one.mp4"), upload(s3, media, "cb/two.mp4")), None) == {
        "batchItemFailures": []}
    tasks = batch_tasks(mps)
    assert len(tasks) == 2
    signatures = [t.body["InputInfo"][0]["UrlInputInfo"]["Url"].split("X-Amz-Signature=")[1] for t in tasks]
    archive_app, _ = archive(ARCHIVE_URI=f"s3://{arch}/callbacks")
    bodies = [notification("BatchTask", batch_task_event(t.body, status, fail=i == 1), "", t.body["SessionContext"])
              for i, t in enumerate(tasks) for status in ("PROCESSING", "FINISH")]
    assert archive_app.handler(sqs_event(*bodies), None) == {"batchItemFailures": []}
    lines = [line for ls in Reader(stack, arch).objects().values() for line in ls]
    assert len(lines) == 4 and {line["event_type"] for line in lines} == {"BatchTask"}
    by_task = {(line["task_id"], line["status"]): line for line in lines}
    assert set(by_task) == {(t.task_id, s) for t in tasks for s in ("PROCESSING", "FINISH")}
    done_ok, done_failed = by_task[(tasks[0].task_id, "FINISH")], by_task[(tasks[1].task_id, "FINISH")]
    key_of = {t.task_id: json.loads(t.body["SessionContext"])["k"] for t in tasks}
    assert not done_ok["failed"] and done_ok["outputs"] and done_ok["object"]["key"] == key_of[tasks[0].task_id]
    assert done_ok["outputs"][0].endswith(f"/{key_of[tasks[0].task_id]}/" + key_of[tasks[0].task_id][3:-4]
                                          + "_smartSubtitle_0.vtt")
    assert done_failed["failed"] and done_failed["error"]["subtasks"][0]["code"] == "FailedOperation.AsrFailed"
    assert done_ok["session_id"].startswith("mt1-") and done_ok["inputs"][0]["storage"] == "url"
    text = Reader(stack, arch).raw() + capsys.readouterr().out
    assert not [s for s in signatures if s in text] and S3_KEY_ID not in text


def test_cos_objects_go_as_cos_inputs_and_cos_claims_refuse_overwrites(stack, mps, monkeypatch):
    cos = stack.cos("ap-guangzhou")
    arch = f"arch-{uuid.uuid4().hex[:8]}-1250000000"
    stack.boto3("s3").create_bucket(Bucket=arch)
    monkeypatch.setenv("COS_ENDPOINT_URL", stack.moto.url)
    store = storage.open_store("cos", arch, "ap-guangzhou", "AKIDclaims", "claims-key")
    book = ClaimBook(store, "callbacks/", "BatchProcessMedia")
    sid = "mt1-" + "a" * 40
    first = book.claim(sid, time.time() + 60, {"holder": "one"})
    second = book.claim(sid, time.time() + 60, {"holder": "two"})
    assert isinstance(first, Claim) and isinstance(second, Busy) and second.holder == "one"
    book.submitted(first, "1250000000-BatchTask-abct20", "req-1")
    assert isinstance(book.claim(sid, time.time() + 60), Taken) and book.task_id(sid) == "1250000000-BatchTask-abct20"
    # COS ignores x-cos-forbid-overwrite in a versioned bucket: claims there are refused, not silently doubled
    versioned = f"arch-{uuid.uuid4().hex[:8]}-1250000000"
    s3 = stack.boto3("s3")
    s3.create_bucket(Bucket=versioned)
    s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    vbook = ClaimBook(storage.open_store("cos", versioned, "ap-guangzhou", "AKIDclaims", "claims-key"), "", "B")
    with pytest.raises(storage.StorageError, match="versioning"):
        vbook.claim(sid, time.time() + 60)
    assert cos is not None


def test_batch_routes_are_checked_at_load(stack):
    def load(routes, **extra):
        env = {"MPS_SCHEDULE_ID": None, "MPS_ROUTES": json.dumps(routes), "MPS_NOTIFY_URL": "https://cb.example.com/",
               "ARCHIVE_URI": "s3://arch-x/cb", **extra}
        return load_settings(base_env(stack, **env))
    load([ROUTE])
    for routes, extra, where in [
        ([ROUTE], {"ARCHIVE_URI": None}, "batch-claims"),
        ([{**ROUTE, "tasks": {"AiAnalysisTask": {"Definition": 1}}}], {}, "SmartSubtitlesTask"),
        ([{**ROUTE, "tasks": None, "schedule_id": 5}], {}, "SmartSubtitlesTask"),
        ([{**ROUTE, "task_type": "Offline"}], {}, "TaskType"),
        ([{**ROUTE, "input": "storage"}], {}, "input"),
        ([ROUTE], {"MPS_NOTIFY_URL": None, "MPS_NOTIFY_SQS_QUEUE": "q", "MPS_NOTIFY_SQS_REGION": "us-east-1"},
         "aws-sqs-notify"),
        ([{**ROUTE, "storage": "s3", "output_storage": None}], {}, "url-input-output"),
    ]:
        with pytest.raises(ConfigError, match=where):
            load(routes, **extra)


def test_the_sample_batch_task_callback_is_archived_and_its_task_id_found_in_the_claim(archive, stack):
    sample = json.loads(load_event("furl_batch_task_callback.json")["body"])
    sid = json.loads(sample["SessionContext"])["s"]
    app, reader = archive()
    # no claim yet (another deployment submitted it): archived all the same, task_id unknown
    assert app.handler(furl_event(resign(sample)), None)["statusCode"] == 200
    [first] = [x for ls in reader.objects().values() for x in ls]
    assert first["task_id"] is None
    # the claim of the submit job that sent it: the archive reads the TaskId there. MPS sending the notification
    # again (signed anew) is the same line (same id); the copy written now carries the TaskId
    book = ClaimBook(storage.open_store("s3", reader.bucket, "us-east-1"), "callbacks/", "BatchProcessMedia")
    claim = book.claim(sid, time.time() + 60)
    book.submitted(claim, "1250000000-BatchTask-0123456789abcdef0123456789abcdeft20", "req-1")
    assert app.handler(furl_event(resign(sample, ts=int(time.time()) + 601)), None)["statusCode"] == 200
    lines = [x for ls in reader.objects().values() for x in ls]
    assert {x["id"] for x in lines} == {first["id"]}
    assert "1250000000-BatchTask-0123456789abcdef0123456789abcdeft20" in [x["task_id"] for x in lines]
    line = next(x for x in lines if x["task_id"])
    assert line["event_type"] == "BatchTask" and line["status"] == "FINISH" and line["failed"]
    assert line["error"] == {"subtasks": [{"subtask": "SmartSubtitles:Outputs[0]", "code": "FailedOperation.AsrFailed",
                                           "message": "speech recognition failed"}]}
    assert line["session_id"] == sid and line["object"]["key"] == "talks/keynote 产品+1.mp4"
    assert line["inputs"][0]["storage"] == "url" and "X-Amz-Signature=" in line["inputs"][0]["url"]
    assert "5f0c1e2d3b4a5968" not in reader.raw()  # the presigned URL's signature is redacted everywhere


def test_a_forged_session_id_in_a_callback_never_names_a_claim_key(archive):
    sample = json.loads(load_event("furl_batch_task_callback.json")["body"])
    ctx = json.loads(sample["SessionContext"])
    ctx["s"] = "../../event_type=WorkflowTask/x"
    sample["SessionContext"] = json.dumps(ctx)
    app, reader = archive()
    assert app.handler(furl_event(resign(sample)), None)["statusCode"] == 200
    [line] = [x for ls in reader.objects().values() for x in ls]
    assert line["session_id"] is None and line["task_id"] is None


def test_a_cos_upload_on_scf_is_submitted_as_a_cos_input_with_its_claim_in_a_cos_archive(handler_env, mps, stack):
    arch = f"arch-{uuid.uuid4().hex[:8]}-1250000000"
    stack.boto3("s3").create_bucket(Bucket=arch)
    app = handler_env(MPS_SCHEDULE_ID=None, COS_ENDPOINT_URL=stack.moto.url, ARCHIVE_URI=f"cos://{arch}/callbacks",
                      ARCHIVE_REGION="ap-guangzhou", MPS_NOTIFY_URL="https://callbacks.example.com/mps",
                      MPS_ROUTES=json.dumps([{"name": "subs", "api": "BatchProcessMedia", "tasks": SUBTITLES}]))
    context = {"request_id": "r1", "time_limit_in_ms": 30000}
    assert app.main_handler(load_event("cos_put.json"), context)["submitted"] == 1
    assert app.main_handler(load_event("cos_put.json"), context)["duplicate"] == 1  # the COS trigger retried
    [task] = batch_tasks(mps)
    assert task.body["InputInfo"] == [{"Type": "COS", "CosInputInfo": {
        "Bucket": "media-in-1250000000", "Region": "ap-guangzhou", "Object": "/uploads/产品 演示+1.mp4"}}]
    assert task.body["OutputStorage"]["CosOutputStorage"]["Bucket"] == "media-in-1250000000"
    assert task.body["TaskNotifyConfig"]["NotifyType"] == "URL"
    [doc] = claims(stack.boto3("s3"), arch).values()
    assert doc["state"] == "submitted" and doc["task_id"] == task.task_id
