"""MPS's rules on what a request may combine (mps_triggers.constraints): each refused at load where the configuration
decides it, otherwise failing only its record with the rule's name, before any request is sent. For each rule the
emulator, with its own table, refuses the request the project would have sent without the rule, so removing a rule
from the project makes one of these tests fail."""
from __future__ import annotations

import json

import pytest

from mps_triggers.config import load_settings
from mps_triggers.constraints import RULES, check_batch_request
from mps_triggers.exceptions import BatchProcessingError, ConfigError, MpsRuleError
from mpslocal.emulator import ApiError, validate_batch_process_media, validate_process_media
from tests.conftest import load_event, s3_body, sqs_event

KEYS = {"MPS_SECRET_ID": "AKIDtest", "MPS_SECRET_KEY": "k", "MPS_S3_SECRET_ID": "AKIATEST", "MPS_S3_SECRET_KEY": "s"}
SQS = {"MPS_NOTIFY_SQS_QUEUE": "mps-callbacks", "MPS_NOTIFY_SQS_REGION": "us-east-1"}
TRANSCODE = {"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 100030}]}}
SUBTITLES = {"SmartSubtitlesTask": {"Definition": 122}}
S3_IN = {"Type": "AWS-S3", "S3InputInfo": {"S3Bucket": "media", "S3Region": "us-east-1", "S3Object": "a.mp4",
                                           "S3SecretId": "A", "S3SecretKey": "B"}}
COS_IN = {"Type": "COS", "CosInputInfo": {"Bucket": "media-1250000000", "Region": "ap-guangzhou", "Object": "/a.mp4"}}
SQS_NOTIFY = {"NotifyType": "AWS-SQS", "AwsSQS": {"SQSRegion": "us-east-1", "SQSQueueName": "q"}}


def emulator_refuses(req: dict) -> str:
    with pytest.raises(ApiError) as info:
        validate_process_media({"OutputDir": "/o/", **req})
    return info.value.code


def test_every_rule_has_a_source():
    assert set(RULES) == {"aws-sqs-notify", "offline-transcoding-only", "s3-input-tasks", "s3-input-regions",
                          "s3-output-region", "url-input-output", "url-input-credentials", "batch-inputs",
                          "batch-url-output", "batch-claims"}
    assert all("(" in text for text in RULES.values())  # each names where it comes from


@pytest.mark.parametrize("routes,env,where,rule", [
    ([{"name": "ai", "tasks": {**TRANSCODE, "AiAnalysisTask": {"Definition": 10}}, "task_type": "Offline"}], {},
     "MPS_ROUTES[ai].task_type", "offline-transcoding-only"),
    ([{"name": "ai", "tasks": {"AiAnalysisTask": {"Definition": 10}}}], {"MPS_TASK_TYPE": "Offline"},
     "MPS_TASK_TYPE/MPS_ROUTES[ai]", "offline-transcoding-only"),
    ([{"name": "subs", "storage": "s3", "tasks": SUBTITLES, "input": "storage"}], {}, "MPS_ROUTES[subs].input",
     "s3-input-tasks"),
    ([{"name": "subs", "storage": "s3", "tasks": SUBTITLES}], {}, "MPS_ROUTES[subs].output_storage",
     "url-input-output"),
    ([{"name": "subs", "storage": "s3", "tasks": TRANSCODE, "input": "url", "output_storage": "cos",
       "output_bucket": "out-1250000000"}], {}, "MPS_ROUTES[subs].output_storage", "url-input-output"),
    ([{"name": "t", "tasks": TRANSCODE, "input": "storage", "output_storage": "cos", "output_bucket": "o-1250000000",
       "output_region": "ap-guangzhou"}], {}, "MPS_ROUTES[t].input", "url-input-output"),
    ([{"name": "cos", "storage": "cos", "schedule_id": 1}], SQS, "MPS_NOTIFY_SQS_QUEUE/MPS_ROUTES[cos]",
     "aws-sqs-notify"),
])
def test_rules_the_configuration_decides_are_refused_at_load(routes, env, where, rule):
    with pytest.raises(ConfigError) as info:
        load_settings({**KEYS, "MPS_ROUTES": json.dumps(routes), **env})
    assert info.value.variable == where and info.value.problem.startswith(rule + ":")


@pytest.mark.parametrize("req,code", [
    ({"InputInfo": COS_IN, **TRANSCODE, "TaskNotifyConfig": SQS_NOTIFY}, "InvalidParameterValue.NotifyType"),
    ({"InputInfo": {**S3_IN, "S3InputInfo": {**S3_IN["S3InputInfo"], "S3Region": "eu-west-3"}}, **TRANSCODE,
      "TaskNotifyConfig": SQS_NOTIFY}, "InvalidParameterValue.NotifyType"),
    ({"InputInfo": COS_IN, **TRANSCODE, "AiAnalysisTask": {"Definition": 10}, "TaskType": "Offline"},
     "InvalidParameterValue.TaskType"),
    ({"InputInfo": S3_IN, **SUBTITLES}, "InvalidParameterValue.InputInfo"),
    ({"InputInfo": {**S3_IN, "S3InputInfo": {**S3_IN["S3InputInfo"], "S3Region": "us-west-2"}}, **TRANSCODE},
     "InvalidParameterValue.S3Region"),
    ({"InputInfo": S3_IN, **TRANSCODE, "OutputStorage": {"Type": "AWS-S3", "S3OutputStorage": {
        "S3Bucket": "out", "S3Region": "eu-west-3"}}}, "InvalidParameterValue.OutputStorage"),
])
def test_the_emulator_refuses_what_each_rule_prevents(req, code):
    assert emulator_refuses(req) == code


def run(handler_env, routes, *bodies, **env):
    app = handler_env(MPS_SCHEDULE_ID=None, MPS_ROUTES=json.dumps(routes), **env)
    return app.handler(sqs_event(*bodies, ids=[f"m{i}" for i in range(len(bodies))]), None)


def body(key, region="us-east-1", bucket="media-in"):
    doc = s3_body(key, bucket=bucket)
    doc["Records"][0]["awsRegion"] = region
    return doc


def failed_with(lines, rule):
    return [ln for ln in lines if ln.get("message") == "submit failed" and rule in ln.get("error", "")]


@pytest.fixture
def submit_log(capsys):
    def lines():
        out = capsys.readouterr().out
        return [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    return lines


def test_s3_inputs_are_refused_where_mps_cannot_read_them_and_only_those_records_fail(handler_env, mps, submit_log):
    routes = [{"name": "subs", "prefix": "subs/", "tasks": SUBTITLES, "input": "storage"},
              {"name": "videos", "tasks": TRANSCODE}]
    result = run(handler_env, routes, body("subs/a.mp4"), body("v/b.mp4", region="us-west-2"), body("v/c.mp4"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    assert [t.body["InputInfo"]["S3InputInfo"]["S3Object"] for t in mps.tasks] == ["v/c.mp4"]
    assert [r.verdict for r in mps.requests] == ["accepted"]  # nothing MPS would refuse was sent
    log = submit_log()
    assert failed_with(log, "s3-input-tasks") and failed_with(log, "s3-input-regions")


def test_a_region_added_by_configuration_is_read(handler_env, mps):
    routes = [{"name": "videos", "tasks": TRANSCODE}]
    assert run(handler_env, routes, body("v/b.mp4", region="ap-northeast-1"),
               MPS_S3_REGIONS="ap-northeast-1")["batchItemFailures"] == [{"itemIdentifier": "m0"}]
    assert mps.requests[0].verdict == "InvalidParameterValue.S3Region"  # the emulator still follows the documents


def test_s3_outputs_in_another_region_fail_the_record(handler_env, mps, submit_log):
    routes = [{"name": "videos", "tasks": TRANSCODE, "output_bucket": "out", "output_region": "eu-west-3"}]
    assert run(handler_env, routes, body("v/a.mp4"))["batchItemFailures"] == [{"itemIdentifier": "m0"}]
    assert not mps.requests and failed_with(submit_log(), "s3-output-region")


def test_sqs_callbacks_only_for_s3_inputs_of_the_queue_region_and_url_for_the_rest(handler_env, mps):
    routes = [{"name": "videos", "tasks": TRANSCODE}]
    env = {**SQS, "MPS_NOTIFY_URL": "https://cb.example.com/mps"}
    assert run(handler_env, routes, body("v/a.mp4"), body("v/b.mp4", region="eu-west-3"), **env) == \
        {"batchItemFailures": []}
    notify = {t.body["InputInfo"]["S3InputInfo"]["S3Object"]: t.body["TaskNotifyConfig"]["NotifyType"]
              for t in mps.tasks}
    assert notify == {"v/a.mp4": "AWS-SQS", "v/b.mp4": "URL"}


def test_sqs_only_fails_inputs_of_another_region(handler_env, mps, submit_log):
    routes = [{"name": "videos", "tasks": TRANSCODE}]
    assert run(handler_env, routes, body("v/a.mp4"), body("v/b.mp4", region="eu-west-3"), **SQS) == \
        {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert len(mps.tasks) == 1 and failed_with(submit_log(), "aws-sqs-notify")


def test_cos_objects_with_only_an_sqs_callback_fail_alone(handler_env, mps):
    app = handler_env(MPS_SCHEDULE_ID=None, MPS_ROUTES=json.dumps([{"name": "any", "tasks": TRANSCODE}]), **SQS)
    with pytest.raises(BatchProcessingError) as info:
        app.main_handler(load_event("cos_put.json"), {"request_id": "r", "time_limit_in_ms": 30000})
    assert "aws-sqs-notify" in str(info.value) and not mps.requests


URL_IN = {"Type": "URL", "UrlInputInfo": {"Url": "https://media.s3.amazonaws.com/a.mp4?X-Amz-Signature=x"}}
COS_OUT = {"Type": "COS", "CosOutputStorage": {"Bucket": "o-1250000000", "Region": "ap-guangzhou"}}


@pytest.mark.parametrize("req,rule,code", [
    ({"InputInfo": [S3_IN], "OutputStorage": COS_OUT, **SUBTITLES}, "batch-inputs", "InvalidParameterValue"),
    ({"InputInfo": [COS_IN], "OutputStorage": COS_OUT, "AiAnalysisTask": {"Definition": 1}}, "batch-inputs",
     "UnknownParameter"),
    ({"InputInfo": [URL_IN], **SUBTITLES}, "batch-url-output", "MissingParameter"),
    ({"InputInfo": [URL_IN], "OutputStorage": {"Type": "AWS-S3", "S3OutputStorage": {}}, **SUBTITLES},
     "batch-url-output", "InvalidParameterValue"),
    ({"InputInfo": [COS_IN], "TaskNotifyConfig": SQS_NOTIFY, **SUBTITLES}, "aws-sqs-notify",
     "InvalidParameterValue.NotifyType"),
])
def test_each_batch_rule_guards_what_the_emulator_refuses(req, rule, code):
    with pytest.raises(MpsRuleError) as info:
        check_batch_request(req)
    assert info.value.rule == rule
    with pytest.raises(ApiError) as refused:
        validate_batch_process_media(req)
    assert refused.value.code == code
    fine = {"InputInfo": [URL_IN], "OutputStorage": COS_OUT, **SUBTITLES}
    check_batch_request(fine)
    validate_batch_process_media(fine)
