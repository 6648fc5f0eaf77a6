"""What an operator watches: the functions' log lines in AWS Lambda Powertools' Logger keys, and one CloudWatch
Embedded Metric Format (EMF) line per invocation whose counts are the invocation's own, read from the log files of
function containers (a process each, as Lambda and SCF run them) on the local stack."""
from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from mps_triggers import logs
from mpslocal.container import FunctionContainer, InvocationError
from tests.conftest import NOTIFY_KEY_EVENTS, base_env, furl_event, load_event, resign, s3_body

ROOT = Path(__file__).resolve().parents[1]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# the units EMF accepts (CloudWatch MetricDatum.Unit)
UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
         "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
         "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
         "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"}


def check_emf(doc: dict[str, Any]) -> None:
    """The EMF specification's rules (CloudWatch user guide, "Specification: Embedded metric format"), checked
    here with the test's own code: the ``_aws`` metadata, every dimension a string member of the root, every
    metric a number member, the documented limits."""
    meta = doc["_aws"]
    assert isinstance(meta["Timestamp"], int) and abs(meta["Timestamp"] / 1000 - time.time()) < 300
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for d in directives:
        assert isinstance(d["Namespace"], str) and 1 <= len(d["Namespace"]) <= 1024
        assert isinstance(d["Dimensions"], list)
        for dimension_set in d["Dimensions"]:
            assert isinstance(dimension_set, list) and 1 <= len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(doc.get(name), str) and 1 <= len(doc[name]) <= 1024, name
        assert isinstance(d["Metrics"], list) and 1 <= len(d["Metrics"]) <= 100
        for metric in d["Metrics"]:
            assert isinstance(metric["Name"], str) and 1 <= len(metric["Name"]) <= 1024
            assert metric.get("Unit", "None") in UNITS
            value = doc[metric["Name"]]
            assert isinstance(value, (int, float)) and not isinstance(value, bool), metric


def read_log(path: Path, since: int = 0) -> tuple[list[dict], list[dict], int]:
    """(log lines, EMF lines) written to a container's log file after byte ``since``, and the new end."""
    data = path.read_bytes()
    docs = [json.loads(x) for x in data[since:].decode().splitlines() if x.strip()]
    return [d for d in docs if "_aws" not in d], [d for d in docs if "_aws" in d], len(data)


@pytest.fixture
def containers(tmp_path):
    made: list[FunctionContainer] = []

    def make(function: str, env: dict[str, str], platform: str = "lambda") -> tuple[FunctionContainer, Path]:
        log = tmp_path / f"{function}-{len(made)}.log"
        fn = FunctionContainer(f"{function}-obs", ROOT / "functions" / function / "app.py", env, log,
                               platform=platform)
        made.append(fn)
        return fn, log

    yield make
    for fn in made:
        fn.close()


def test_a_submit_invocation_writes_one_emf_line_whose_counts_are_its_report(containers, stack, mps):
    fn, log = containers("submit", base_env(stack))
    records = [s3_body("in/a.mp4", "e1")["Records"][0], s3_body("in/b.mov", "e2")["Records"][0],
               s3_body("mps-output/in/a.mp4/a_transcode.mp4", "e3")["Records"][0],  # MPS's own output: skipped
               s3_body("in/a.mp4", "e1")["Records"][0]]  # S3 delivered it twice: MPS refuses the SessionId
    summary = fn.invoke({"Records": records})
    lines, emf, end = read_log(log)
    function_line, route_line = emf  # the function's totals, then its one route's
    for doc in emf:
        check_emf(doc)
        assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MpsTriggers" and doc["function"] == "submit"
    assert function_line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["function"]]
    assert {k: function_line[k] for k in ("Records", "Submitted", "Duplicate", "Skipped", "SubmitFailed")} == \
        {"Records": summary["records"], "Submitted": summary["submitted"], "Duplicate": summary["duplicate"],
         "Skipped": summary["skipped"], "SubmitFailed": 0} == \
        {"Records": 4, "Submitted": 2, "Duplicate": 1, "Skipped": 1, "SubmitFailed": 0}
    assert function_line["RecordsFailed"] == function_line["Throttled"] == function_line["InvocationFailed"] == 0
    assert function_line["Congested"] == 0 and function_line["MpsAllowance"] == 5.0  # a new container's allowance
    assert route_line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["function", "route"]]
    assert route_line["route"] == "default" and route_line["Submitted"] == 2 and route_line["Duplicate"] == 1
    # the log lines: Powertools' keys, the platform's context, the project's correlation keys
    submitted = [x for x in lines if x["message"] == "submitted"]
    assert len(submitted) == 2
    for line in lines:
        assert list(line)[:5] == ["level", "location", "message", "timestamp", "service"], line
        assert TIMESTAMP.match(line["timestamp"]) and line["service"] == "mps-triggers"
        assert line["cold_start"] is True and line["function_name"] == "submit"
        assert line["function_arn"].endswith(":function:submit") and line["function_memory_size"] == 256
    assert all(x["level"] == "INFO" and x["location"].startswith("submit.") and x["key"].startswith("in/") and
               x["session_id"].startswith("mt1-") and x["task_id"] for x in submitted)
    assert len({x["function_request_id"] for x in lines}) == 1
    # the next invocation of the same container: warm, with its own request id and its own metrics
    again = fn.invoke({"Records": records[:2]})
    lines2, emf2, _ = read_log(log, end)
    assert all(x["cold_start"] is False for x in lines2)
    assert {x["function_request_id"] for x in lines2}.isdisjoint({x["function_request_id"] for x in lines})
    assert emf2[0]["Records"] == 2 and emf2[0]["Duplicate"] == again["duplicate"] == 2 and emf2[0]["Submitted"] == 0


def test_throttled_answers_and_failed_records_are_counted(containers, stack, mps):
    mps.inject("RequestLimitExceeded", times=3)
    fn, log = containers("submit", base_env(stack))
    event = {"Records": [{"messageId": "m-1", "body": json.dumps(s3_body("in/c.mp4", "e9")), "eventSource": "aws:sqs",
                          "receiptHandle": "r", "attributes": {}, "messageAttributes": {}, "md5OfBody": "x",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads", "awsRegion": "us-east-1"},
                         {"messageId": "m-2", "body": "not json", "eventSource": "aws:sqs", "receiptHandle": "r",
                          "attributes": {}, "messageAttributes": {}, "md5OfBody": "x",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads", "awsRegion": "us-east-1"}]}
    answer = fn.invoke(event)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    _, [line, _route], _ = read_log(log)
    check_emf(line)
    assert line["Throttled"] == 3 and line["Submitted"] == 1 and line["RecordsFailed"] == 1 and line["Records"] == 2
    # throttled, resent at once and throttled again: MPS's window was full, so the container's allowance was cut
    assert line["Congested"] == 1 and line["MpsAllowance"] == 3.5
    units = {m["Name"]: m["Unit"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["MpsAllowance"] == "Count/Second" and units["Congested"] == "Count"


def test_an_invocation_that_raises_says_so_in_its_metrics(containers, stack, mps):
    fn, log = containers("submit", {**base_env(stack), "MPS_SCHEDULE_ID": "not-a-number"}, platform="scf")
    with pytest.raises(InvocationError):
        fn.invoke(load_event("cos_put.json"))
    lines, [line], _ = read_log(log)
    check_emf(line)
    assert line["InvocationFailed"] == 1 and line["function"] == "submit"
    [error] = [x for x in lines if x["level"] == "ERROR"]
    assert error["message"] == "invalid configuration" and error["variable"] == "MPS_SCHEDULE_ID"
    assert error["function_name"] == "submit" and "function_arn" not in error  # SCF's context has no ARN


def test_archive_invocations_count_archived_lines_and_rejected_callbacks(containers, stack):
    bucket = f"arch-{uuid.uuid4().hex[:10]}"
    stack.boto3("s3").create_bucket(Bucket=bucket)
    fn, log = containers("archive", {"AWS_ENDPOINT_URL": stack.moto.url, "ARCHIVE_URI": f"s3://{bucket}/callbacks",
                                     "MPS_NOTIFY_KEY": NOTIFY_KEY_EVENTS})
    body = resign(json.loads(load_event("furl_callback.json")["body"]))
    assert fn.invoke(furl_event(body))["statusCode"] == 200
    forged = dict(body, Sign="0" * 32)
    assert fn.invoke(furl_event(forged))["statusCode"] == 401
    lines, emf, _ = read_log(log)
    ok, refused = emf
    for doc in emf:
        check_emf(doc)
        assert doc["function"] == "archive"
    assert (ok["Archived"], ok["ArchiveObjects"], ok["Rejected"], ok["Records"]) == (1, 1, 0, 1)
    assert (refused["Archived"], refused["Rejected"]) == (0, 1)
    assert ok["PushFailed"] == ok["Pushed"] == 0  # no webhook configured
    assert [x["message"] for x in lines if x["level"] == "WARNING"][-1] == "callback rejected"


def test_an_unexpected_error_is_logged_with_its_traceback(capsys):
    def inner() -> None:
        raise KeyError("Records")

    try:
        inner()
    except KeyError as exc:
        logs.log("error", "record failed", exc=exc, record="m-1")
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["level"] == "ERROR" and line["exception_name"] == "KeyError" and line["record"] == "m-1"
    assert line["exception"].startswith("Traceback (most recent call last)") and "in inner" in line["exception"]
    assert line["location"] == "test_observability.test_an_unexpected_error_is_logged_with_its_traceback:" + \
        line["location"].rsplit(":", 1)[1]
    # a field named like a standard key (an MPS error's "message") never replaces it
    logs.log("warning", "submit failed", message="the MPS error text", timestamp="x")
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["message"] == "submit failed" and TIMESTAMP.match(line["timestamp"])
    assert (line["message_field"], line["timestamp_field"]) == ("the MPS error text", "x")
