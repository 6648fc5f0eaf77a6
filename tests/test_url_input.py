"""URL input for S3 objects whose tasks MPS cannot read from AWS-S3: a presigned S3 GET URL that the emulator
verifies with its own SigV4 code and fetches from moto, COS output, and a signature that never reaches a log line or
the archive."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

from mpslocal.emulator import verify_presigned
from mpslocal.notifications import notification, task_event
from tests.conftest import S3_SECRET, s3_body, sqs_event

S3_KEY_ID = "AKIATESTMPSREADER001"
SUBTITLES = {"SmartSubtitlesTask": {"Definition": 122}}
COS_OUT = {"output_storage": "cos", "output_bucket": "subs-out-1250000000", "output_region": "ap-guangzhou"}


@pytest.fixture
def media(stack):
    s3 = stack.boto3("s3")
    bucket = f"media-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=bucket)
    return s3, bucket


CLIP = b"\x00\x00\x00\x18ftypmp42 a small clip"


def upload(s3, bucket, key, data=CLIP):
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return s3_body(quote_plus(key, safe="/"), size=len(data), bucket=bucket)


def test_a_smart_subtitle_route_on_s3_sends_a_presigned_url_that_mps_can_fetch(handler_env, mps, media, stack,
                                                                                 capsys, archive):
    s3, bucket = media
    mps.aws_keys = {S3_KEY_ID: S3_SECRET}
    app = handler_env(MPS_SCHEDULE_ID=None, AWS_ENDPOINT_URL=stack.moto.url, MPS_ROUTES=json.dumps(
        [{"name": "subs", "suffixes": [".mp4"], "tasks": SUBTITLES, **COS_OUT}]))
    keys = ["talks/keynote 产品+1.mp4", "talks/a%b.mp4"]
    assert app.handler(sqs_event(*[upload(s3, bucket, k) for k in keys]), None) == {"batchItemFailures": []}
    assert len(mps.tasks) == 2
    for task in mps.tasks:
        info = task.body["InputInfo"]
        assert info["Type"] == "URL" and task.input_fetch == f"ok: {len(CLIP)} bytes", task.input_fetch
        assert task.body["OutputStorage"] == {"Type": "COS", "CosOutputStorage": {
            "Bucket": "subs-out-1250000000", "Region": "ap-guangzhou"}}
        q = parse_qs(urlsplit(info["UrlInputInfo"]["Url"]).query)
        assert q["X-Amz-Expires"] == ["86400"] and q["X-Amz-Credential"][0].startswith(S3_KEY_ID + "/")
    signatures = [parse_qs(urlsplit(t.body["InputInfo"]["UrlInputInfo"]["Url"]).query)["X-Amz-Signature"][0]
                  for t in mps.tasks]
    # the task's callback, archived: the URL's query is redacted, and no log line carries it either
    archive_app, store = archive()
    bodies = [notification(*task_event(t.body, t.task_id), t.body["SessionId"], t.body["SessionContext"])
              for t in mps.tasks]
    assert archive_app.handler(sqs_event(*bodies), None) == {"batchItemFailures": []}
    text = store.raw() + capsys.readouterr().out
    assert text.count('"UrlInputInfo"') == 2
    assert not [s for s in signatures if s in text]
    assert S3_KEY_ID not in text


def test_offline_tasks_get_a_url_that_outlives_mps_three_day_window(handler_env, mps, media, stack):
    s3, bucket = media
    mps.aws_keys = {S3_KEY_ID: S3_SECRET}
    app = handler_env(MPS_SCHEDULE_ID=None, AWS_ENDPOINT_URL=stack.moto.url, MPS_ROUTES=json.dumps(
        [{"name": "t", "tasks": {"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 100030}]}},
          "task_type": "Offline", "input": "url", **COS_OUT}]))
    assert app.handler(sqs_event(upload(s3, bucket, "a.mp4")), None) == {"batchItemFailures": []}
    [task] = mps.tasks
    assert parse_qs(urlsplit(task.body["InputInfo"]["UrlInputInfo"]["Url"]).query)["X-Amz-Expires"] == ["604800"]
    assert task.input_fetch.startswith("ok")


def test_temporary_credentials_are_refused_for_url_input(handler_env, mps, media, stack, capsys):
    s3, bucket = media
    app = handler_env(MPS_SCHEDULE_ID=None, AWS_ENDPOINT_URL=stack.moto.url, MPS_S3_SECRET_ID="ASIATEMPORARY0001",
                      MPS_ROUTES=json.dumps([{"name": "subs", "tasks": SUBTITLES, **COS_OUT}]))
    assert app.handler(sqs_event(upload(s3, bucket, "a.mp4")), None) == {"batchItemFailures": [
        {"itemIdentifier": "msg-0"}]}
    assert not mps.requests and "url-input-credentials" in capsys.readouterr().out


def test_an_s3_object_without_a_cos_output_fails_alone(handler_env, mps, media, stack, capsys):
    s3, bucket = media
    app = handler_env(MPS_SCHEDULE_ID=None, AWS_ENDPOINT_URL=stack.moto.url,
                      MPS_ROUTES=json.dumps([{"name": "subs", "tasks": SUBTITLES}]))  # any storage: COS works
    assert app.handler(sqs_event(upload(s3, bucket, "a.mp4"), upload(s3, bucket, "b.mp4")), None) == {
        "batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-1"}]}
    assert not mps.requests and "url-input-output" in capsys.readouterr().out


def presign(stack, key="a b+c.mp4", expires=60, secret=S3_SECRET):
    import boto3
    from botocore.config import Config

    client = boto3.session.Session(aws_access_key_id=S3_KEY_ID, aws_secret_access_key=secret,
                                   region_name="us-east-1").client("s3", endpoint_url=stack.moto.url,
                                                                   config=Config(signature_version="s3v4"))
    return client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": key}, ExpiresIn=expires)


def test_the_emulator_checks_presigned_urls_with_its_own_code(stack):
    keys = {S3_KEY_ID: S3_SECRET}
    url = presign(stack)
    verify_presigned(url, keys)
    for bad, why in [(presign(stack, secret="wrong"), "SignatureDoesNotMatch"),
                     (url.replace("a%20b", "a%20c"), "SignatureDoesNotMatch"),
                     (url.replace("X-Amz-Expires=60", "X-Amz-Expires=61"), "SignatureDoesNotMatch"),
                     (presign(stack, expires=604801), "604800")]:
        with pytest.raises(ValueError, match=why):
            verify_presigned(bad, keys)
    with pytest.raises(ValueError, match="expired"):
        verify_presigned(url, keys, now=time.time() + 61)
    with pytest.raises(ValueError, match="unknown access key"):
        verify_presigned(url, {})
