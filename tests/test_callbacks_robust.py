"""Whatever JSON arrives, normalizing and building its archive line never raises: an odd notification is archived
(raw, with ``parse_error``), never allowed to fail its batch. Property tests with hypothesis."""
from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from mps_triggers.lines import build_line, single_object
from tests.conftest import load_event
from tests.strategies import examples, json_values, mutate, scalars

FIELDS = ["EventType", "WorkflowTaskEvent", "ScheduleTaskEvent", "EditMediaTaskEvent", "SessionId", "SessionContext",
          "Timestamp", "Sign", "TaskId", "Status", "ErrCode", "ErrCodeExt", "Message", "InputInfo", "Output",
          "MediaProcessResultSet", "ActivityResultSet", "ActivityResItem", "ActivityType", "TranscodeTask", "Path",
          "CosInputInfo", "S3InputInfo", "AiAnalysisResultSet", "Type"]
shaped = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) |
                      st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6), max_leaves=30)


def _check(doc) -> None:
    line = build_line(doc, "sqs", "m-1", time.time())
    assert json.loads(line.data)["id"] == line.id
    single_object("cb/", line, time.time())


@settings(max_examples=examples(300), deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_any_json_object_is_archivable(doc):
    _check(doc)


@settings(max_examples=examples(500), deadline=None)
@given(st.sampled_from(["WorkflowTask", "ScheduleTask", "EditMediaTask", "Other"]), shaped, shaped, shaped)
def test_notification_shaped_garbage_is_archivable(event_type, event, ts, ctx):
    key = {"WorkflowTask": "WorkflowTaskEvent", "ScheduleTask": "ScheduleTaskEvent"}.get(event_type, "EditMediaTaskEvent")
    _check({"EventType": event_type, key: event, "Timestamp": ts, "SessionContext": ctx})


@settings(max_examples=examples(300), deadline=None)
@given(st.data())
def test_mutated_real_samples_are_archivable(data):
    """Replace one value anywhere in a real sample with arbitrary JSON."""
    _check(mutate(json.loads(load_event("furl_callback.json")["body"]), data))


def test_absurd_timestamps_partition_by_arrival():
    from datetime import datetime, timezone

    doc = json.loads(load_event("furl_callback.json")["body"])
    arrival = 1795748400.0
    expected = datetime.fromtimestamp(arrival, tz=timezone.utc).strftime("/dt=%Y-%m-%d/hour=%H/")
    for ts in (10**20, -5, "99999999999999999999", 0, True):
        doc["Timestamp"] = ts
        obj = single_object("cb/", build_line(doc, "http", "r", arrival, verified=True), arrival)
        assert expected in obj.key, ts
