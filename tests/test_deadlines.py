"""Every invocation finishes before its deadline (issue 9): peers that trickle bytes, endpoints that never answer,
deadlines already near. What is not finished is reported (SQS) or answered 503 (HTTP), so only it is redelivered,
and nothing is lost."""
from __future__ import annotations

import time

import pytest

from mps_triggers import archive_job
from mps_triggers.exceptions import BatchProcessingError
from mpslocal.chat import ChatRobot
from mpslocal.runtime import LambdaContext
from tests.conftest import BlackHole, furl_event, load_event, schedule_body


def timed(func, *args):
    start = time.monotonic()
    result = func(*args)
    return result, time.monotonic() - start


def test_a_trickling_mps_endpoint_cannot_hold_the_submit_job_past_its_deadline(handler_env, mps):
    """Each byte comes within any per-read timeout; only a total budget per call stops it."""
    app = handler_env(MPS_TIMEOUT="30")
    mps.inject("trickle:0.2", times=2)  # one per record of the batch
    event = load_event("sqs_s3_put.json")
    resp, took = timed(app.handler, event, LambdaContext("submit", 4.0))
    assert took < 4.0, took
    assert {f["itemIdentifier"] for f in resp["batchItemFailures"]} == {r["messageId"] for r in event["Records"]}
    # MPS did accept both tasks: the redelivery finds them as duplicate sessions, nothing is submitted twice
    assert app.handler(event, LambdaContext("submit", 30.0)) == {"batchItemFailures": []}
    assert len(mps.tasks) == 2


def test_mps_timeout_is_a_total_budget_per_attempt(handler_env, mps, capsys):
    app = handler_env(MPS_TIMEOUT="1", MPS_MAX_ATTEMPTS="1")
    mps.inject("trickle:0.1", times=1)
    resp, took = timed(app.handler, load_event("sqs_eventbridge_s3.json"), None)  # no platform deadline at all
    assert took < 2.0 and len(resp["batchItemFailures"]) == 1
    assert '"code":"Timeout"' in capsys.readouterr().out


def test_a_trickling_webhook_never_delays_or_fails_the_callback(archive):
    with ChatRobot("wecom", trickle=0.25) as robot:
        app, store = archive(WEBHOOK_URL=robot.url, WEBHOOK_FORMAT="wecom", WEBHOOK_TIMEOUT="60")
        resp, took = timed(app.handler, furl_event(schedule_body()), LambdaContext("archive", 6.0))
        assert resp["statusCode"] == 200 and took < 6.0, took
        event = load_event("sqs_callbacks.json")
        resp, took = timed(app.handler, event, LambdaContext("archive", 6.0))
        assert resp == {"batchItemFailures": []} and took < 6.0, took
        failed = [x for k, v in store.objects().items() if "event_type=push_failed" in k for x in v]
        assert len(failed) == 2 and all("no complete answer" in f["reason"] for f in failed)


def test_a_hanging_archive_store_gets_503_and_failed_records_before_the_deadline(archive, monkeypatch):
    hole = BlackHole()
    try:
        app, store = archive()
        monkeypatch.setenv("AWS_ENDPOINT_URL", hole.url)
        resp, took = timed(app.handler, furl_event(schedule_body()), LambdaContext("archive", 5.0))
        assert resp["statusCode"] == 503 and took < 5.0, took
        archive_job.default_job.cache_clear()
        event = load_event("sqs_callbacks.json")
        resp, took = timed(app.handler, event, LambdaContext("archive", 5.0))
        assert len(resp["batchItemFailures"]) == len(event["Records"]) and took < 5.0, took
    finally:
        hole.close()


@pytest.mark.parametrize("seconds_left", [0.5, 2.5])
def test_no_write_starts_when_the_deadline_is_near(archive, seconds_left):
    app, store = archive()
    event = load_event("sqs_callbacks.json")
    resp = app.handler(event, LambdaContext("archive", seconds_left))
    assert len(resp["batchItemFailures"]) == len(event["Records"]) and store.objects() == {}
    assert app.handler(furl_event(schedule_body()), LambdaContext("archive", seconds_left))["statusCode"] == 503
    assert app.handler(event, LambdaContext("archive", 30)) == {"batchItemFailures": []}  # the redelivery: written
    assert len([x for v in store.objects().values() for x in v]) == len(event["Records"])


def test_scf_context_time_limit_is_the_deadline(handler_env, mps):
    app = handler_env()
    mps.inject("trickle:0.2", times=2)
    start = time.monotonic()
    with pytest.raises(BatchProcessingError) as info:
        app.main_handler(load_event("cos_put.json"), {"request_id": "scf-1", "time_limit_in_ms": 3000})
    assert time.monotonic() - start < 3.0 and "Timeout" in str(info.value)
