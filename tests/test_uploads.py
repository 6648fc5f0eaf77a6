"""Upload-event normalizer: every supported shape, key decoding, ignored events, and bad records failing alone."""
from __future__ import annotations

import json

import pytest

from mps_triggers.exceptions import EventError
from mps_triggers.uploads import parse_upload_event
from tests.conftest import load_event


def objects(event):
    return [o for r in parse_upload_event(event).records for o in r.objects]


def test_s3_direct_key_is_url_decoded_and_fields_kept():
    [obj] = objects(load_event("s3_put.json"))
    assert (obj.storage, obj.bucket, obj.region) == ("s3", "media-in-123456789012", "us-east-1")
    assert obj.key == "uploads/red flower +1 视频.mp4"
    assert obj.size == 5412 and obj.etag == "9b2cf535f27731c974343645a3985328"
    assert obj.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY" and obj.sequencer == "0066BCC2D3A4F1E2B8"
    assert obj.event_name == "ObjectCreated:Put" and obj.event_time == "2026-11-21T03:00:01.512Z"


def test_sqs_batch_handles_every_record_with_message_ids():
    ev = parse_upload_event(load_event("sqs_s3_put.json"))
    assert ev.source.value == "sqs"
    assert [r.message_id for r in ev.records] == ["059f36b4-87a3-44ab-83d2-661975830a7d",
                                                  "2e1424d4-f796-459a-8184-9c92662be6da"]
    assert [o.key for r in ev.records for o in r.objects] == ["uploads/2026/clip one.mp4", "uploads/2026/Clip-Two.MOV"]


def test_sns_envelope_inside_sqs_is_unwrapped():
    [obj] = objects(load_event("sqs_sns_s3_put.json"))
    assert obj.key == "uploads/sns/red flower.mp4"


@pytest.mark.parametrize("name", ["eventbridge_s3.json", "sqs_eventbridge_s3.json"])
def test_eventbridge_keys_are_never_unquoted(name):
    [obj] = objects(load_event(name))
    assert obj.key == "uploads/eventbridge/2026-11-21T03:00:00 a+b.mp4"  # '+' stays a plus
    assert obj.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mc8cE" and obj.etag == "b1946ac92492d2347c6235b4d2611184"


def test_test_event_is_ignored_not_failed():
    [rec] = parse_upload_event(load_event("sqs_s3_testevent.json")).records
    assert rec.ignored == ["s3:TestEvent"] and rec.error is None and not rec.objects


def test_cos_trigger_key_bucket_region_and_string_size():
    [obj] = objects(load_event("cos_put.json"))
    assert obj.storage == "cos" and obj.bucket == "media-in-1250000000" and obj.region == "ap-guangzhou"
    assert obj.key == "uploads/产品 演示+1.mp4"
    assert obj.size == 5412 and obj.etag == "9b2cf535f27731c974343645a3985328"
    assert obj.upload_id == "NjU1YjE0ZjBfOTBmYTUwXzE1YzFfMTJhNjQ0Yw=="


@pytest.mark.parametrize("code,region", [("gz", "ap-guangzhou"), ("bj", "ap-beijing"), ("sh", "ap-shanghai"),
                                         ("cd", "ap-chengdu"), ("ap-singapore", "ap-singapore")])
def test_cos_region_short_codes(code, region):
    ev = load_event("cos_put.json")
    ev["Records"][0]["cos"]["cosBucket"]["region"] = code
    ev["Records"][0]["cos"]["cosObject"]["url"] = ""
    assert objects(ev)[0].region == region


def test_cos_unexpected_key_layout_falls_back_to_url_path():
    ev = load_event("cos_put.json")
    ev["Records"][0]["cos"]["cosObject"]["key"] = "uploads/产品 演示+1.mp4"
    assert objects(ev)[0].key == "uploads/产品 演示+1.mp4"


def test_cos_several_records_all_handled():
    ev = load_event("cos_put.json")
    second = json.loads(json.dumps(ev["Records"][0]))
    second["cos"]["cosObject"]["key"] = "/1250000000/media-in/b.mp4"
    ev["Records"].append(second)
    assert [o.key for o in objects(ev)] == ["uploads/产品 演示+1.mp4", "b.mp4"]


def test_non_create_events_are_ignored():
    s3 = load_event("s3_put.json")
    s3["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    cos = load_event("cos_put.json")
    cos["Records"][0]["event"]["eventName"] = "cos:ObjectRemove:Delete"
    eb = load_event("eventbridge_s3.json")
    eb["detail-type"] = "Object Deleted"
    for ev in (s3, cos, eb):
        [rec] = parse_upload_event(ev).records
        assert rec.error is None and not rec.objects and rec.ignored[0].startswith("not an object-created event")


def _sqs(*bodies):
    return {"Records": [{"messageId": f"m{i}", "receiptHandle": "h", "body": b, "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"}
                        for i, b in enumerate(bodies)]}


def test_bad_records_fail_alone_and_name_record_and_field():
    good = json.loads(load_event("sqs_s3_put.json")["Records"][0]["body"])
    no_key = json.loads(json.dumps(good))
    del no_key["Records"][0]["s3"]["object"]["key"]
    no_bucket = json.loads(json.dumps(good))
    no_bucket["Records"][0]["s3"]["bucket"] = {}
    ev = parse_upload_event(_sqs("{not json", json.dumps({"hello": 1}), json.dumps(no_key), json.dumps(no_bucket),
                                 json.dumps(good)))
    errors = [(r.record_id, r.error.field if r.error else None) for r in ev.records]
    assert errors == [("m0", "body"), ("m1", "body"), ("m2", "body.Records[0].s3.object.key"),
                      ("m3", "body.Records[0].s3.bucket.name"), ("m4", None)]
    assert "not JSON" in str(ev.records[0].error) and "record m0" in str(ev.records[0].error)
    assert ev.records[4].objects[0].key == "uploads/2026/clip one.mp4"


def test_bad_size_and_missing_message_id():
    body = json.loads(load_event("sqs_s3_put.json")["Records"][0]["body"])
    body["Records"][0]["s3"]["object"]["size"] = "lots"
    ev = _sqs(json.dumps(body))
    del ev["Records"][0]["messageId"]
    [rec] = parse_upload_event(ev).records
    assert rec.error.field == "messageId"
    [rec] = parse_upload_event(_sqs(json.dumps(body))).records
    assert rec.error.field == "body.Records[0].s3.object.size"


@pytest.mark.parametrize("event", [{}, {"foo": 1}, [], "x", {"Records": [{"eventSource": "aws:kinesis"}]}])
def test_unknown_invocation_shape_raises_event_error(event):
    with pytest.raises(EventError):
        parse_upload_event(event)


def test_moto_generated_notifications_round_trip_awkward_keys(stack):
    """Real S3→SQS notifications from moto (keys quote_plus-encoded, '/' too) decode to the uploaded keys."""
    s3, sqs = stack.boto3("s3"), stack.boto3("sqs")
    s3.create_bucket(Bucket="uploads-roundtrip")
    q = sqs.create_queue(QueueName="roundtrip")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket="uploads-roundtrip", NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    keys = ["a b/c+d é.mp4", "100% real.mp4", "视频/测试 1.mov", "x=y&z.mp4"]
    for k in keys:
        s3.put_object(Bucket="uploads-roundtrip", Key=k, Body=b"data")
    bodies = []
    while True:
        msgs = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            break
        bodies += [m["Body"] for m in msgs]
        sqs.delete_message_batch(QueueUrl=q, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                      for i, m in enumerate(msgs)])
    ev = parse_upload_event(_sqs(*bodies))
    assert sorted(o.key for r in ev.records for o in r.objects) == sorted(keys)
    assert any(r.ignored == ["s3:TestEvent"] for r in ev.records)
    assert all(r.error is None for r in ev.records)
