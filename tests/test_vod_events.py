"""VOD events as the vod job reads them (mps_triggers.vod), their archive lines, routes and SessionIds.

Shapes follow the official SDK's models (tencentcloud-sdk-python-vod 3.1.194: EventContent, FileUploadTask,
ProcedureTask, ReviewAudioVideoTask, PullEventsResponse) and the sample in events/vod_furl_new_file_upload.json.
"""
from __future__ import annotations

import copy
import hashlib
import json

import pytest

from mps_triggers.config import load_vod_settings
from mps_triggers.exceptions import ConfigError, EventError
from mps_triggers.lines import build_line
from mps_triggers.session import read_session_context, vod_session_context, vod_session_id
from mps_triggers.callbacks import check_vod_signature
from mps_triggers.vod import EVENT_KEYS, SIGNING_FIELDS, VodFile, check_event, pulled_events, read_event

from .conftest import load_event

SAMPLE = json.loads(load_event("vod_furl_new_file_upload.json")["body"])  # signed with SignKey events-vod-sign-key
UPLOAD = {k: v for k, v in SAMPLE.items() if k not in SIGNING_FIELDS}
PROCEDURE = {"EventType": "ProcedureStateChanged", "ProcedureStateChangeEvent": {
    "TaskId": "1250000000-Procedure-2f4c0d7e9a1b4c3d8e5f6a7b8c9d0e1ft0", "Status": "FINISH", "ErrCode": 0,
    "Message": "SUCCESS", "FileId": "5285890781763144364", "FileName": "a.mp4",
    "SessionId": "mt1-0123456789abcdef0123456789abcdef01234567",
    "SessionContext": '{"v":1,"src":"vod","b":"1500000001","k":"5285890781763144364","r":"flows","n":"a.mp4"}',
    "MediaProcessResultSet": [
        {"Type": "Transcode", "TranscodeTask": {"Status": "SUCCESS", "ErrCode": 0, "ErrCodeExt": "", "Message": "",
                                                "Output": {"Url": "https://x.vod2.myqcloud.com/f.100030.mp4",
                                                           "Definition": 100030}}},
        {"Type": "SampleSnapshot", "SampleSnapshotTask": {"Status": "FAIL", "ErrCode": 30010, "ErrCodeExt": "Fail",
                                                          "Message": "bad", "Output": None}}]}}
REVIEW = {"EventType": "ReviewAudioVideoComplete", "ReviewAudioVideoCompleteEvent": {
    "TaskId": "1250000000-ReviewAudioVideo-aa", "Status": "FINISH", "ErrCodeExt": "InternalError",
    "Message": "review failed", "Input": {"FileId": "5285890781763144364"}, "Output": None, "SessionId": "",
    "SessionContext": ""}}


def test_event_keys_are_the_sdks_event_content_members():
    models = pytest.importorskip("tencentcloud.vod.v20180717.models")
    members = {k[1:] for k in vars(models.EventContent()) if k not in ("_EventHandle", "_EventType")}
    assert set(EVENT_KEYS.values()) == members


def test_new_file_upload_is_read_into_the_file():
    event = check_event(read_event(UPLOAD, "req-1"), 1500000001)
    f = event.file
    assert (f.file_id, f.sub_app_id, f.name, f.media_type, f.class_id, f.class_path, f.extension) == (
        "5285890781763144364", 1500000001, "产品 演示+1.mp4", "mp4", 12, "marketing/launches", "mp4")
    assert f.procedure_task_id == "" and event.handle is None


@pytest.mark.parametrize("doc,field", [
    ([1], "$"),
    ({"FileUploadEvent": {}}, "EventType"),
    ({"EventType": 7}, "EventType"),
    ({"EventType": "NewFileUpload", "EventHandle": 5}, "EventHandle"),
])
def test_unreadable_events_name_the_event_and_the_field(doc, field):
    with pytest.raises(EventError) as err:
        read_event(doc, "PullEvents[0].EventSet[3]")
    assert err.value.record == "PullEvents[0].EventSet[3]" and err.value.field == field


@pytest.mark.parametrize("change,field", [
    (lambda d: d.update(EventType="Bogus"), "EventType"),
    (lambda d: d.pop("FileUploadEvent"), "FileUploadEvent"),
    (lambda d: d["FileUploadEvent"].pop("FileId"), "FileUploadEvent.FileId"),
    (lambda d: d["FileUploadEvent"].update(FileId="  "), "FileUploadEvent.FileId"),
    (lambda d: d["FileUploadEvent"].update(MediaBasicInfo=[]), "FileUploadEvent.MediaBasicInfo"),
    (lambda d: d["FileUploadEvent"]["MediaBasicInfo"].update(ClassId="twelve"),
     "FileUploadEvent.MediaBasicInfo.ClassId"),
])
def test_bad_events_are_refused_naming_the_field(change, field):
    doc = copy.deepcopy(UPLOAD)
    change(doc)
    event = read_event(doc, "EventSet[0]")  # still readable: archived raw
    with pytest.raises(EventError) as err:
        check_event(event, None)
    assert err.value.record == "EventSet[0]" and err.value.field == field


def test_pull_answers_of_the_wrong_shape_are_refused():
    assert pulled_events({"RequestId": "r"}) == [] and pulled_events({"EventSet": None}) == []
    for bad, field in (([], "Response"), ({"EventSet": {}}, "Response.EventSet"),
                       ({"EventSet": [{}] * 17}, "Response.EventSet")):
        with pytest.raises(EventError) as err:
            pulled_events(bad)
        assert err.value.record == "PullEvents" and err.value.field == field


def test_vod_signature_is_md5_of_sign_key_then_t():
    assert check_vod_signature(SAMPLE, "events-vod-sign-key", now=SAMPLE["T"] - 600) is None
    key, now = "vodSignKey42", 1795749000
    doc = {**UPLOAD, "T": now + 600, "Sign": hashlib.md5(f"{key}{now + 600}".encode()).hexdigest()}
    assert check_vod_signature(doc, key, now=now) is None
    assert check_vod_signature({**doc, "Sign": doc["Sign"].upper()}, key, now=now) is None
    assert "does not match" in check_vod_signature(doc, "other", now=now)
    assert "expired" in check_vod_signature(doc, key, skew=0, now=now + 601)
    assert "missing" in check_vod_signature(UPLOAD, key, now=now)
    assert "not an integer" in check_vod_signature({**doc, "T": True}, key, now=now)
    # the other order (MPS's md5(Timestamp + NotifyKey)) is refused
    swapped = {**doc, "Sign": hashlib.md5(f"{now + 600}{key}".encode()).hexdigest()}
    assert check_vod_signature(swapped, key, now=now) is not None


def test_procedure_state_changed_line_reads_task_status_outputs_failures_and_our_session():
    line = json.loads(build_line(PROCEDURE, "vod-pull", "h1", 1795749000.0, unsigned=SIGNING_FIELDS).data)
    assert line["event_type"] == "ProcedureStateChanged" and line["task_id"].endswith("-Procedure-2f4c0d7e9a1b4c3d8e"
                                                                                       "5f6a7b8c9d0e1ft0")
    assert line["status"] == "FINISH" and line["failed"] is True
    assert line["error"] == {"subtasks": [{"subtask": "SampleSnapshot:SampleSnapshotTask", "code": "Fail",
                                           "message": "bad"}]}
    assert line["session_id"] == "mt1-0123456789abcdef0123456789abcdef01234567"
    assert line["object"] == {"storage": "vod", "bucket": "1500000001", "key": "5285890781763144364",
                              "route": "flows"}
    assert line["outputs"] == [] or all(isinstance(o, str) for o in line["outputs"])


def test_review_failure_by_err_code_ext_and_file_from_input():
    line = json.loads(build_line(REVIEW, "vod-push", "r", 1795749000.0).data)
    assert line["failed"] is True and line["error"] == {"code": "InternalError", "message": "review failed"}
    assert line["object"] == {"storage": "vod", "bucket": None, "key": "5285890781763144364"}


def test_new_file_upload_line_names_the_file_and_the_flow_its_upload_started():
    started = copy.deepcopy(UPLOAD)
    started["FileUploadEvent"]["ProcedureTaskId"] = "1250000000-Procedure-bbt0"
    line = json.loads(build_line(started, "vod-push", "r", 1795749000.0, unsigned=SIGNING_FIELDS).data)
    assert line["task_id"] == "1250000000-Procedure-bbt0" and line["object"]["key"] == "5285890781763144364"


def test_the_line_id_leaves_out_t_and_sign():
    a = build_line({**UPLOAD, "T": 1, "Sign": "x"}, "vod-push", "r", 0.0, unsigned=SIGNING_FIELDS)
    b = build_line({**UPLOAD, "T": 2, "Sign": "y"}, "vod-pull", "h", 9.0, unsigned=SIGNING_FIELDS)
    assert a.id == b.id


def test_session_id_is_per_application_and_file_and_context_reads_back():
    f = VodFile("5285890781763144364", 1500000001, "a.mp4")
    assert vod_session_id(f) == vod_session_id(VodFile("5285890781763144364", 1500000001, "other name"))
    assert vod_session_id(f) != vod_session_id(VodFile("5285890781763144364", None, "a.mp4"))
    assert vod_session_id(f) != vod_session_id(f, generation=1)
    assert len(vod_session_id(f)) == 44
    ctx = read_session_context(vod_session_context(VodFile("1", 2, "名" * 2000), "flows"))
    assert ctx["src"] == "vod" and ctx["b"] == "2" and ctx["k"] == "1" and ctx["r"] == "flows"


def _settings(routes):
    return load_vod_settings({"ARCHIVE_URI": "s3://vod-archive/x", "MPS_SECRET_ID": "AKIDx", "MPS_SECRET_KEY": "k",
                              "VOD_ROUTES": json.dumps(routes)})


def test_routes_match_application_class_type_and_name_prefix_first_wins():
    s = _settings([
        {"name": "cls", "sub_app_id": 1500000001, "class_ids": [12], "procedure": "p1"},
        {"name": "path", "class_paths": ["marketing/"], "types": [".MOV"], "procedure": "p2"},
        {"name": "ext", "types": ["mp4"], "name_prefix": "raw/", "procedure": "p3"},
    ])
    def route(**kw):
        r = s.route_for(VodFile("1", **kw))
        return r.name if r else None
    assert route(sub_app_id=1500000001, class_id=12, name="a.mp4") == "cls"
    assert route(sub_app_id=2, class_id=12, class_path="marketing/x", name="a.mov") == "path"
    assert route(class_path="marketing/x", media_type="mov", name="noext") == "path"
    assert route(name="raw/a.MP4") == "ext" and route(name="a.mp4") is None


@pytest.mark.parametrize("route,problem", [
    ({"name": "x"}, "exactly one of"),
    ({"name": "x", "procedure": "p", "schedule_id": 1}, "exactly one of"),
    ({"name": "x", "mps_params": {"MediaProcessTask": {}}}, "AiAnalysisTask only"),
    ({"name": "x", "schedule_id": 1, "tasks_notify_mode": "Finish"}, "task flow"),
    ({"name": "x", "procedure": "p", "colour": "red"}, "Extra inputs"),
])
def test_bad_routes_are_refused_naming_the_route(route, problem):
    with pytest.raises(ConfigError) as err:
        _settings([route])
    assert err.value.variable.startswith("VOD_ROUTES[0] (x)") and problem in str(err.value)


def test_a_process_media_by_mps_route_needs_a_sub_app_id():
    with pytest.raises(ConfigError) as err:
        _settings([{"name": "erase", "mps_params": {"AiAnalysisTask": {"Definition": 25}}}])
    assert err.value.variable == "VOD_ROUTES[0] (erase)" and "SubAppId" in err.value.problem
    assert _settings([{"name": "erase", "sub_app_id": 1500000001,
                       "mps_params": {"AiAnalysisTask": {"Definition": 25}}}]).vod_routes[0].api == "ProcessMediaByMPS"


def test_each_vod_api_has_its_own_rate_and_throttling_family():
    from mps_triggers.mps import (ACTION_LIMITS, MpsBatchThrottlingError, MpsThrottlingError, function_windows,
                                  map_error)

    assert ACTION_LIMITS["ProcessMediaByProcedure"] == 100 and ACTION_LIMITS["ProcessMediaByMPS"] == 20
    assert type(map_error("RequestLimitExceeded", "", action="ProcessMediaByProcedure")) is MpsThrottlingError
    assert type(map_error("RequestLimitExceeded", "", action="ProcessMediaByMPS")) is MpsBatchThrottlingError
    procedure, mps = function_windows("ProcessMediaByProcedure"), function_windows("ProcessMedia")
    assert procedure is not None and mps is not None and procedure is not mps  # a window of its own
    assert function_windows("PullEvents") is None and function_windows("ProcessMediaByMPS") is None
