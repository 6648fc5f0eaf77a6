"""Property tests (hypothesis) over the upload-event normalizer, the callback parser, the signature check, and both
jobs end to end on hostile input (issue 9: surrogates, digit-like Unicode, huge integers, deep nesting, bracket
floods, non-string bodies, base64 that lies).

- Random and mutated real events never raise anything but the project's typed errors.
- A routed submission never lies outside the routes or inside an output dir or the archive location.
- A rejected callback never writes anything.
- A batch with hostile records fails exactly those records, each with a typed input error (never an internal
  error); every acknowledged callback's line is in a written object, readable as one line.
- An HTTP callback, however hostile, gets 200/400/401/405/413, never 500 and never an exception.

CI runs each property with the example count below, derandomized; ``python3 tasks.py fuzz`` runs 10,000 each.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mps_triggers.archive_job import ArchiveJob
from mps_triggers.callbacks import check_signature, expected_sign, parse_callback_event
from mps_triggers.config import load_archive_settings, load_settings
from mps_triggers.exceptions import EventError, MpsTriggersError, RecordError
from mps_triggers.mps import Credentials, MpsClient
from mps_triggers.retries import RetryPolicy
from mps_triggers.routing import Router, Submission
from mps_triggers.submit import SubmitJob
from mps_triggers.uploads import UploadedObject, parse_upload_event
from tests.conftest import EVENTS, load_event
from tests.strategies import body_texts, examples, hostile_json, http_bodies, json_values, mutate, non_strings

UPLOAD_SAMPLES = ["s3_put.json", "sqs_s3_put.json", "sqs_sns_s3_put.json", "eventbridge_s3.json",
                  "sqs_eventbridge_s3.json", "sqs_s3_testevent.json", "cos_put.json"]
CALLBACK_SAMPLES = [p.name for p in sorted(EVENTS.glob("*.json")) if p.name not in UPLOAD_SAMPLES and p.name != "README.md"]


# --- upload events -----------------------------------------------------------------------------------------------

@settings(max_examples=examples(300), deadline=None)
@given(json_values)
def test_random_upload_events_raise_only_event_errors(event):
    try:
        parse_upload_event(event)
    except EventError:
        pass


@settings(max_examples=examples(600), deadline=None)
@given(st.sampled_from(UPLOAD_SAMPLES), st.data())
def test_mutated_upload_events_fail_only_their_record(name, data):
    event = mutate(load_event(name), data)
    try:
        parsed = parse_upload_event(event)
    except EventError:
        return
    for rec in parsed.records:
        assert rec.error is None or isinstance(rec.error, EventError)
        for obj in rec.objects:
            assert isinstance(obj.key, str) and obj.key and isinstance(obj.bucket, str) and obj.bucket
            assert obj.size is None or obj.size >= 0


ROUTES = [{"name": "videos", "prefix": "in/", "suffixes": [".mp4", ".MOV"], "schedule_id": 1},
          {"name": "cos", "storage": "cos", "bucket": "media-1250000000", "schedule_id": 2}]
ROUTER = Router(load_settings({"MPS_SECRET_ID": "id", "MPS_SECRET_KEY": "k", "MPS_ROUTES": json.dumps(ROUTES),
                               "ARCHIVE_URI": "s3://media/archive/"}))
keys = st.one_of(st.text(min_size=1, max_size=40),
                 st.builds(lambda a, b, c: a + b + c, st.sampled_from(["in/", "mps-output/", "archive/", "", "in/x/"]),
                           st.text(max_size=12), st.sampled_from([".mp4", ".MP4", ".mov", ".txt", "/", ""])))


@settings(max_examples=examples(1000), deadline=None)
@given(st.sampled_from(["s3", "cos"]), st.sampled_from(["media", "media-1250000000", "other"]), keys,
       st.none() | st.integers(min_value=0, max_value=10**12))
def test_nothing_outside_the_routes_or_inside_output_or_archive_is_submitted(storage, bucket, key, size):
    d = ROUTER.decide(UploadedObject(storage, bucket, "ap-guangzhou", key, size=size, etag="e"))
    if isinstance(d, Submission):
        assert not key.startswith("mps-output/"), key
        assert not (bucket == "media" and key.startswith("archive/")), key
        assert not key.endswith("/") and size != 0
        assert d.route.matches(storage, bucket, key)
        assert len(d.session_id) <= 50 and len(d.session_context.encode()) <= 1000


# --- callbacks -------------------------------------------------------------------------------------------------------

@settings(max_examples=examples(300), deadline=None)
@given(json_values)
def test_random_callback_invocations_raise_only_event_errors(event):
    try:
        parse_callback_event(event)
    except EventError:
        pass


class RecordingStore:
    bucket = "fuzz"

    def __init__(self):
        self.puts = []
        self.data = {}

    def put(self, key, data):
        self.puts.append(key)
        self.data[key] = data

    def lines(self) -> list[dict]:
        """Every archived line; each object must be UTF-8 with one record per line for any reader."""
        out = []
        for data in self.data.values():
            text = data.decode("utf-8")
            assert text.endswith("\n") and text.splitlines() == text[:-1].split("\n")
            out += [json.loads(line) for line in text.splitlines()]
        return out


NOTIFY_KEY = "fuzz-notify-key"
JOB_SETTINGS = load_archive_settings({"ARCHIVE_URI": "s3://fuzz/cb", "MPS_NOTIFY_KEY": NOTIFY_KEY,
                                      "CALLBACK_TOKEN": "fuzz-token", "CALLBACK_MAX_BYTES": "65536"})


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CALLBACK_SAMPLES), st.data())
def test_mutated_callbacks_never_crash_and_rejected_ones_never_write(name, data):
    event = load_event(name)
    if "body" in event and isinstance(event.get("body"), str) and not event.get("isBase64Encoded"):
        body = json.loads(event["body"])
        body = json.loads(json.dumps(body))
        if data.draw(st.booleans()):
            body["Timestamp"] = int(time.time()) + 600
            body["Sign"] = expected_sign(body["Timestamp"], NOTIFY_KEY)
        body = mutate(body, data) if data.draw(st.booleans()) else body
        event["body"] = json.dumps(body, ensure_ascii=False)
    event = mutate(event, data) if data.draw(st.booleans()) else event
    store = RecordingStore()
    job = ArchiveJob(JOB_SETTINGS, store=store)
    try:
        report = job.run(event, None)
    except MpsTriggersError:
        assert store.puts == []
        return
    if report.source.value == "http":
        if report.status != 200:
            assert store.puts == []  # rejected: nothing written
        else:
            assert len(store.puts) == 1
            doc = json.loads(event["body"]) if isinstance(event.get("body"), str) and not event.get("isBase64Encoded") else None
            if isinstance(doc, dict):
                doc = doc.get("Response", doc) if isinstance(doc.get("Response"), dict) else doc
                assert check_signature(doc, NOTIFY_KEY, 300) is None  # only authentic callbacks are written


@settings(max_examples=examples(500), deadline=None)
@given(json_values, json_values | st.text(max_size=40), st.text(max_size=20))
def test_signature_check_never_raises_and_accepts_only_the_exact_sign(ts, sign, key):
    assume(key)
    why = check_signature({"Timestamp": ts, "Sign": sign}, key, 300)
    if why is None:
        assert isinstance(sign, str) and sign.lower() == hashlib.md5(f"{ts}{key}".encode()).hexdigest()
        assert int(ts) + 300 >= time.time()


@settings(max_examples=examples(200), deadline=None)
@given(st.integers(min_value=-10, max_value=10**6), st.text(min_size=1, max_size=20))
def test_signature_check_accepts_what_mps_signs(offset, key):
    ts = int(time.time()) + offset  # an expiry from 10 s ago to 11 days ahead, relative to when the example runs
    doc = {"Timestamp": ts, "Sign": expected_sign(ts, key)}
    assert check_signature(copy.deepcopy(doc), key, 300) is None
    assert check_signature({**doc, "Sign": doc["Sign"][:-1] + ("0" if doc["Sign"][-1] != "0" else "1")}, key, 300)


def test_regressions_found_by_fuzzing():
    """Cases hypothesis found: each crashed before its fix."""
    assert check_signature({"Timestamp": 0, "Sign": "\x80"}, "0", 300) is not None  # non-ASCII Sign: 401, not 500
    event = load_event("s3_put.json")
    event["Records"][0]["s3"]["object"]["size"] = float("inf")                   # JSON Infinity as a size
    [rec] = parse_upload_event(event).records
    assert rec.error is not None and rec.error.field == "s3.object.size"


# --- both jobs end to end on hostile input (issue 9) ----------------------------------------------------------------

def sqs_record(message_id: str, body: object) -> dict:
    rec = copy.deepcopy(load_event("sqs_s3_put.json")["Records"][0])
    rec["messageId"], rec["body"] = message_id, body
    return rec


def typed_input_errors(report) -> bool:
    """Every failure is a typed error of the project, none an internal one (RecordError)."""
    return all(isinstance(e, MpsTriggersError) and not isinstance(e, RecordError) for e in report.failures.values())


@pytest.fixture(scope="module")
def submit_job(stack):
    env = {"MPS_ENDPOINT": stack.mps.url, "MPS_SECRET_ID": next(iter(stack.mps.credentials)),
           "MPS_SECRET_KEY": next(iter(stack.mps.credentials.values()))[0], "MPS_SCHEDULE_ID": "20001",
           "MPS_S3_SECRET_ID": "AKIATESTFUZZREADER01", "MPS_S3_SECRET_KEY": "fuzz-s3-secret-key"}
    s = load_settings(env)
    job = SubmitJob(s, MpsClient(s.mps_endpoint, Credentials(env["MPS_SECRET_ID"], env["MPS_SECRET_KEY"]),
                                 timeout=5, retry=RetryPolicy(base=0.01, cap=0.02)))
    yield job
    job.client.close()


def hostile_record(data, i: int, sample: str) -> dict:
    """An SQS record whose body is hostile: a flood, odd text, a non-string, or a real body mutated anywhere."""
    way = data.draw(st.sampled_from(["text", "non-string", "mutated"]))
    if way == "text":
        return sqs_record(f"bad-{i}", data.draw(body_texts))
    if way == "non-string":
        return sqs_record(f"bad-{i}", data.draw(non_strings))
    doc = json.loads(load_event(sample)["Records"][0]["body"]) if sample.startswith("sqs") else \
        json.loads(load_event(sample)["body"])
    return sqs_record(f"bad-{i}", json.dumps(mutate(doc, data, hostile_json), ensure_ascii=False)
                      if data.draw(st.booleans()) else repr(mutate(doc, data, hostile_json)))


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.data_too_large])
@given(st.data())
def test_submit_batches_fail_exactly_their_hostile_records(submit_job, data):
    sample = data.draw(st.sampled_from(["sqs_s3_put.json", "sqs_eventbridge_s3.json", "sqs_sns_s3_put.json"]))
    good = [copy.deepcopy(r) for r in load_event(sample)["Records"]]
    bad = [hostile_record(data, i, sample) for i in range(data.draw(st.integers(1, 3)))]
    records = good + bad
    data.draw(st.randoms()).shuffle(records)
    report = submit_job.run({"Records": records}, None)
    failed = {f["itemIdentifier"] for f in report.respond()["batchItemFailures"]}
    assert not failed & {r["messageId"] for r in good}
    assert typed_input_errors(report)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.data_too_large])
@given(st.data())
def test_archive_batches_never_lose_an_acknowledged_line(data):
    good = [sqs_record(f"good-{i}", load_event("sqs_callbacks.json")["Records"][i]["body"]) for i in range(3)]
    bad = [hostile_record(data, i, "furl_callback.json") for i in range(data.draw(st.integers(1, 4)))]
    records = good + bad
    data.draw(st.randoms()).shuffle(records)
    store = RecordingStore()
    report = ArchiveJob(JOB_SETTINGS, store=store).run({"Records": records}, None)
    failed = {f["itemIdentifier"] for f in report.respond()["batchItemFailures"]}
    stored = {x["source"]["id"] for x in store.lines()}
    assert {r["messageId"] for r in records} - failed <= stored      # acknowledged ⇒ archived
    assert {r["messageId"] for r in good} <= stored - failed
    assert typed_input_errors(report)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.data_too_large])
@given(st.data())
def test_http_callbacks_get_a_status_whatever_the_body(data):
    doc = json.loads(load_event("furl_callback.json")["body"])
    doc["Timestamp"] = int(time.time()) + 600
    doc["Sign"] = expected_sign(doc["Timestamp"], NOTIFY_KEY)
    if data.draw(st.booleans()):
        doc = mutate(doc, data, hostile_json)
    event = load_event("furl_callback.json")
    event["rawQueryString"] = "token=fuzz-token"
    event["body"], event["isBase64Encoded"] = data.draw(http_bodies(doc))
    if data.draw(st.booleans()):
        event = mutate(event, data, hostile_json)
    store = RecordingStore()
    try:
        resp = ArchiveJob(JOB_SETTINGS, store=store).run(event, None).respond()
    except EventError:  # the mutation took away what makes it an HTTP event: an invocation of no known shape
        context = event.get("requestContext")
        assert not (isinstance(context, dict) and "http" in context) and "httpMethod" not in event
        assert store.puts == []
        return
    assert resp["statusCode"] in (200, 400, 401, 405, 413), resp
    assert len(store.puts) == (1 if resp["statusCode"] == 200 else 0)
    store.lines()


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.data_too_large])
@given(st.sampled_from(["scf_mps_trigger_workflow.json", "scf_mps_trigger_schedule.json",
                        "scf_mps_trigger_editmedia.json"]), st.data())
def test_mps_trigger_events_are_archived_or_fail_with_a_typed_error(name, data):
    event = mutate(load_event(name), data, hostile_json)
    store = RecordingStore()
    report = ArchiveJob(JOB_SETTINGS, store=store).run(event, None)
    assert typed_input_errors(report) and len(store.puts) == (0 if report.failures else 1)
    store.lines()


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.data_too_large])
@given(st.sampled_from(UPLOAD_SAMPLES), st.data())
def test_hostile_upload_events_fail_only_their_record_with_a_typed_error(name, data):
    event = mutate(load_event(name), data, hostile_json)
    try:
        parsed = parse_upload_event(event)
    except EventError:
        return
    for rec in parsed.records:
        assert rec.error is None or isinstance(rec.error, EventError), rec.error
        for obj in rec.objects:
            obj.key.encode("utf-8")  # a key is always valid Unicode
            assert obj.size is None or 0 <= obj.size < 10**18
