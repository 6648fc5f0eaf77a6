"""Regenerate the callback samples in ``events/`` (``python -m mpslocal.samples``).

Bodies come from :mod:`mpslocal.notifications` (the documented shapes); wrappers follow the Lambda function URL
(payload 2.0), SCF API gateway, SQS and SCF MPS trigger event formats. Signed samples use NotifyKey
``events-notify-key`` and Timestamp ``SAMPLE_TS`` (2026-11-21T03:10:00Z, already expired: tests sign again or
pin the clock).
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from .notifications import batch_task_event, edit_media_event, notification, task_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOTIFY_KEY = "events-notify-key"
SAMPLE_TS = 1795749000 - 600  # notification() adds the 600 s TTL
CTX_S3 = '{"v":1,"src":"s3","b":"media-in-123456789012","k":"uploads/red flower +1 视频.mp4","r":"videos"}'
CTX_COS = '{"v":1,"src":"cos","b":"media-in-1250000000","k":"uploads/产品 演示+1.mp4","r":"videos"}'
S3_IN = {"Type": "AWS-S3", "S3InputInfo": {"S3Bucket": "media-in-123456789012", "S3Region": "us-east-1",
                                          "S3Object": "uploads/red flower +1 视频.mp4",
                                          "S3SecretId": "AKIAEXAMPLESAMPLE001", "S3SecretKey": "sample-s3-secret-key-do-not-log"}}
COS_IN = {"Type": "COS", "CosInputInfo": {"Bucket": "media-in-1250000000", "Region": "ap-guangzhou",
                                         "Object": "/uploads/产品 演示+1.mp4"}}


def schedule_cos(status: str = "FINISH") -> dict:
    req = {"InputInfo": COS_IN, "ScheduleId": 20001, "OutputDir": "/mps-output/",
           "OutputStorage": {"Type": "COS", "CosOutputStorage": {"Bucket": "media-in-1250000000", "Region": "ap-guangzhou"}}}
    et, ev = task_event(req, "1250000000-ScheduleTask-2f4c0d7e9a1b4c3d8e5f6a7b8c9d0e1ftt7", status, -1)
    return notification(et, ev, "mt1-f900246eee240ced23e157fa1810c31df7fe2b8d", CTX_COS, NOTIFY_KEY, now=SAMPLE_TS)


def workflow_cos() -> dict:
    req = {"InputInfo": COS_IN, "OutputDir": "/mps-output/", "MediaProcessTask": {
        "TranscodeTaskSet": [{"Definition": 100030}], "SnapshotByTimeOffsetTaskSet": [{"Definition": 10}]}}
    et, ev = task_event(req, "1250000000-WorkflowTask-67771a50b24d08baaf6165da23461e36tt7", "FINISH", -1)
    return notification(et, ev, "mt1-0c1b99f315ca58f97ca6eeb74239016751c6c315", CTX_COS)


def workflow_s3_with_secrets() -> dict:
    """An AWS task whose callback echoes the S3 keys (as the ParseNotification example shows): must be redacted."""
    req = {"InputInfo": S3_IN, "OutputDir": "/mps-output/", "MediaProcessTask": {
        "TranscodeTaskSet": [{"Definition": 100030}]},
        "OutputStorage": {"Type": "AWS-S3", "S3OutputStorage": {"S3Bucket": "media-in-123456789012",
                                                               "S3Region": "us-east-1", "S3SecretId": "AKIAEXAMPLESAMPLE001",
                                                               "S3SecretKey": "sample-s3-secret-key-do-not-log"}}}
    et, ev = task_event(req, "1250000000-WorkflowTask-9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5ett7", "FINISH")
    return notification(et, ev, "mt1-d871c479ab7368496d6e1e51168c32ee0ca02c99", CTX_S3, NOTIFY_KEY, now=SAMPLE_TS)


CTX_BATCH = ('{"v":1,"src":"s3","b":"media-in-123456789012","k":"talks/keynote 产品+1.mp4","r":"subtitles",'
             '"s":"mt1-5d1c0b4a39281706f5e4d3c2b1a09f8e7d6c5b4a"}')
PRESIGNED = ("https://media-in-123456789012.s3.amazonaws.com/talks/keynote%20%E4%BA%A7%E5%93%81%2B1.mp4"
             "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLESAMPLE001%2F20261121%2Fus-east-1%2Fs3"
             "%2Faws4_request&X-Amz-Date=20261121T030000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
             "&X-Amz-Signature=5f0c1e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100")


def batch_url(fail: bool = True) -> dict:
    """A BatchProcessMedia task's callback (EventType BatchTask): an S3 object by presigned URL, smart subtitles
    written to COS; no TaskId, as the SDK's BatchSubTaskResult; the URL's signature must be redacted."""
    req = {"InputInfo": [{"Type": "URL", "UrlInputInfo": {"Url": PRESIGNED}}], "OutputDir": "/mps-output/",
           "OutputStorage": {"Type": "COS", "CosOutputStorage": {"Bucket": "subs-1250000000", "Region": "ap-guangzhou"}},
           "SmartSubtitlesTask": {"RawParameter": {"SubtitleType": 0, "VideoSrcLanguage": "en", "SubtitleFormat": "vtt",
                                                   "TranslateSwitch": "OFF"}}}
    return notification("BatchTask", batch_task_event(req, "FINISH", fail), "", CTX_BATCH, NOTIFY_KEY, now=SAMPLE_TS)


def furl(body: dict, b64: bool = False, query: str = "token=events-callback-token") -> dict:
    raw = json.dumps(body, ensure_ascii=False)
    return {"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": query,
            "headers": {"content-type": "application/json", "content-length": str(len(raw.encode())),
                        "host": "abcdefghijklmnopqrstuvwxyz123456.lambda-url.us-east-1.on.aws",
                        "user-agent": "Go-http-client/1.1", "x-forwarded-for": "203.0.113.30",
                        "x-forwarded-proto": "https", "x-amzn-trace-id": "Root=1-673eb0a8-3c1e6ba42b1f7c0a0f1b2c3d"},
            "queryStringParameters": dict(p.split("=", 1) for p in query.split("&")) if query else None,
            "requestContext": {"accountId": "anonymous", "apiId": "abcdefghijklmnopqrstuvwxyz123456",
                               "domainName": "abcdefghijklmnopqrstuvwxyz123456.lambda-url.us-east-1.on.aws",
                               "domainPrefix": "abcdefghijklmnopqrstuvwxyz123456",
                               "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                                        "sourceIp": "203.0.113.30", "userAgent": "Go-http-client/1.1"},
                               "requestId": "4ee9f7d6-6d9e-4c2e-9d7e-0a1b2c3d4e5f", "routeKey": "$default",
                               "stage": "$default", "time": "21/Nov/2026:03:00:05 +0000", "timeEpoch": 1795748405000},
            "body": base64.b64encode(raw.encode()).decode() if b64 else raw, "isBase64Encoded": b64}


def scf_apigw(body: dict) -> dict:
    raw = json.dumps(body, ensure_ascii=False)
    return {"requestContext": {"serviceId": "service-f94sy04v", "path": "/mps/callback", "httpMethod": "POST",
                               "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "identity": {},
                               "sourceIp": "203.0.113.40", "stage": "release"},
            "headers": {"content-type": "application/json", "host": "service-f94sy04v-1250000000.gz.apigw.tencentcs.com",
                        "user-agent": "Go-http-client/1.1", "x-api-requestid": "9b2c8a1e5d7f3c4b"},
            "body": raw, "pathParameters": {}, "queryStringParameters": {"token": "events-callback-token"},
            "headerParameters": {}, "stageVariables": {"stage": "release"}, "path": "/mps/callback",
            "queryString": {"token": "events-callback-token"}, "httpMethod": "POST"}


def sqs(bodies: list[dict]) -> dict:
    records = []
    for i, body in enumerate(bodies):
        raw = json.dumps(body, ensure_ascii=False)
        records.append({"messageId": f"7d2f1e9c-0b3a-4c5d-8e6f-{i:012d}", "receiptHandle": f"AQEBcallback{i}...",
                        "body": raw, "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795748405000",
                                                    "SenderId": "AIDAIMPSCALLBACKSENDER", "ApproximateFirstReceiveTimestamp": "1795748405010"},
                        "messageAttributes": {}, "md5OfBody": hashlib.md5(raw.encode()).hexdigest(),
                        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:mps-callbacks",
                        "awsRegion": "us-east-1"})
    return {"Records": records}


def main() -> None:
    edit = notification("EditMediaTask", edit_media_event("1250000000-EditMediaTask-5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0btt7",
                                                           "/mps-output/edited/part1_clip.mp4", "media-in-1250000000",
                                                           "ap-guangzhou"))
    files = {
        "furl_callback.json": furl(schedule_cos()),
        "furl_callback_base64.json": furl(schedule_cos(), b64=True),
        "scf_apigw_callback.json": scf_apigw(schedule_cos()),
        "sqs_callbacks.json": sqs([schedule_cos("PROCESSING"), schedule_cos(), workflow_cos()]),
        "scf_mps_trigger_workflow.json": workflow_cos(),
        "scf_mps_trigger_schedule.json": schedule_cos(),
        "scf_mps_trigger_editmedia.json": edit,
        "furl_callback_s3_secrets.json": furl(workflow_s3_with_secrets()),
        "furl_batch_task_callback.json": furl(batch_url()),
    }
    for name, doc in files.items():
        (EVENTS / name).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote events/{name}")


if __name__ == "__main__":
    main()
