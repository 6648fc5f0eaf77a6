"""Configuration: typed settings from the environment, errors that name the variable, the load-time loop guard."""
from __future__ import annotations

import json

import pytest

from mps_triggers.config import load_settings
from mps_triggers.exceptions import ConfigError

KEYS = {"MPS_SECRET_ID": "AKIDtest", "MPS_SECRET_KEY": "test-key"}


def env(**kw):
    return {**KEYS, **{k: (json.dumps(v) if k == "MPS_ROUTES" else str(v)) for k, v in kw.items()}}


def error(**kw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(env(**kw))
    return info.value


def test_schedule_id_alone_is_one_catch_all_route():
    s = load_settings(env(MPS_SCHEDULE_ID=12345))
    [route] = s.routes
    assert route.name == "default" and route.schedule_id == 12345 and route.prefix == "" and not route.suffixes
    assert s.mps_endpoint == "mps.tencentcloudapi.com" and s.mps_output_dir == "/mps-output/"


def test_routes_json_parsed_with_defaults():
    s = load_settings(env(MPS_ROUTES=[
        {"name": "v", "prefix": "in/", "suffixes": ".mp4", "schedule_id": 1},
        {"name": "a", "bucket": "b-1250000000", "tasks": {"AiAnalysisTask": {"Definition": 10}}, "tasks_priority": 5}]))
    assert [r.name for r in s.routes] == ["v", "a"]
    assert s.routes[0].suffixes == (".mp4",) and s.routes[1].tasks_priority == 5


def test_scf_role_credentials_are_the_fallback():
    s = load_settings({"MPS_SCHEDULE_ID": "1", "TENCENTCLOUD_SECRETID": "AKIDrole", "TENCENTCLOUD_SECRETKEY": "k",
                       "TENCENTCLOUD_SESSIONTOKEN": "tok"})
    assert s.mps_secret_id.get_secret_value() == "AKIDrole"
    assert s.mps_session_token.get_secret_value() == "tok"


def test_explicit_keys_win_over_scf_role_keys():
    s = load_settings({**env(MPS_SCHEDULE_ID=1), "TENCENTCLOUD_SECRETID": "AKIDrole", "TENCENTCLOUD_SECRETKEY": "k",
                       "TENCENTCLOUD_SESSIONTOKEN": "tok"})
    assert s.mps_secret_id.get_secret_value() == "AKIDtest" and s.mps_session_token is None


def test_secrets_never_appear_in_repr():
    s = load_settings(env(MPS_SCHEDULE_ID=1, MPS_S3_SECRET_ID="AKIAX", MPS_S3_SECRET_KEY="s3-very-secret",
                          MPS_NOTIFY_KEY="notify-very-secret"))
    text = repr(s) + str(s)
    assert "test-key" not in text and "s3-very-secret" not in text and "notify-very-secret" not in text


@pytest.mark.parametrize("kw,variable,words", [
    ({"MPS_ROUTES": "[not json"}, "MPS_ROUTES", "not valid JSON"),
    ({"MPS_ROUTES": []}, "MPS_ROUTES", "non-empty"),
    ({"MPS_ROUTES": [{"name": "x", "schedule_id": "abc"}]}, "MPS_ROUTES[0] (x).schedule_id", "integer"),
    ({"MPS_ROUTES": [{"name": "x"}]}, "MPS_ROUTES[0] (x)", "exactly one of schedule_id"),
    ({"MPS_ROUTES": [{"name": "x", "schedule_id": 1, "colour": "red"}]}, "MPS_ROUTES[0] (x).colour", "Extra"),
    ({"MPS_ROUTES": [{"name": "x", "tasks": {"Transcode": {}}}]}, "MPS_ROUTES[0] (x).tasks", "unknown task"),
    ({"MPS_ROUTES": [{"name": "x", "schedule_id": 1, "prefix": "/in/"}]}, "MPS_ROUTES[0] (x).prefix", "leading"),
    ({"MPS_ROUTES": [{"name": "x", "schedule_id": 1}, {"name": "x", "schedule_id": 2}]}, "MPS_ROUTES", "unique"),
    ({"MPS_SCHEDULE_ID": "twelve"}, "MPS_SCHEDULE_ID", "integer"),
    ({"MPS_SCHEDULE_ID": 1, "MPS_OUTPUT_DIR": "out"}, "MPS_OUTPUT_DIR", "start and end with '/'"),
    ({"MPS_SCHEDULE_ID": 1, "MPS_NOTIFY_MODE": "Always"}, "MPS_NOTIFY_MODE", "Finish"),
    ({"MPS_SCHEDULE_ID": 1, "MPS_TASKS_PRIORITY": 11}, "MPS_TASKS_PRIORITY", "10"),
    ({"MPS_SCHEDULE_ID": 1, "MPS_NOTIFY_URL": "callback"}, "MPS_NOTIFY_URL", "http"),
    ({"MPS_SCHEDULE_ID": 1, "ARCHIVE_URI": "gs://b/p"}, "ARCHIVE_URI", "s3://"),
    ({}, "MPS_ROUTES/MPS_SCHEDULE_ID", "set MPS_ROUTES"),
    ({"MPS_SCHEDULE_ID": 1, "MPS_NOTIFY_SQS_QUEUE": "q"}, "MPS_NOTIFY_SQS_REGION", "required"),
])
def test_invalid_values_name_the_variable(kw, variable, words):
    if isinstance(kw.get("MPS_ROUTES"), str):
        e = error_raw(MPS_ROUTES=kw.pop("MPS_ROUTES"), **kw)
    else:
        e = error(**kw)
    assert e.variable == variable, str(e)
    assert words in e.problem


def error_raw(**kw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings({**KEYS, **{k: str(v) for k, v in kw.items()}})
    return info.value


def test_missing_credentials_named():
    with pytest.raises(ConfigError) as info:
        load_settings({"MPS_SCHEDULE_ID": "1"})
    assert "MPS_SECRET_ID" in info.value.variable


def test_secret_arn_replaces_keys():
    s = load_settings({"MPS_SCHEDULE_ID": "1", "MPS_CREDENTIALS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:m"})
    assert s.mps_secret_id is None


# --- recursion guard at load --------------------------------------------------------------------------------------

def test_output_dir_at_bucket_root_of_routed_bucket_is_refused_naming_both():
    e = error(MPS_SCHEDULE_ID=1, MPS_OUTPUT_DIR="/")
    assert e.variable == "MPS_OUTPUT_DIR/MPS_SCHEDULE_ID"
    e = error(MPS_ROUTES=[{"name": "v", "bucket": "in", "schedule_id": 1, "output_dir": "/"}])
    assert e.variable == "MPS_ROUTES[v].output_dir/MPS_ROUTES[v]"


@pytest.mark.parametrize("route", [{"name": "v", "bucket": "in", "schedule_id": 1}, {"name": "v", "schedule_id": 1}])
def test_output_dir_root_of_another_bucket_is_fine_and_guards_that_whole_bucket(route):
    s = load_settings(env(MPS_ROUTES=[route], MPS_OUTPUT_BUCKET="out", MPS_OUTPUT_DIR="/"))
    [g] = s.guarded_locations()
    assert (g.bucket, g.prefix) == ("out", "")


def test_route_prefix_inside_output_dir_is_refused():
    e = error(MPS_ROUTES=[{"name": "v", "prefix": "mps-output/raw/", "schedule_id": 1}])
    assert e.variable == "MPS_OUTPUT_DIR/MPS_ROUTES[v]" and "inside output dir" in e.problem


def test_route_prefix_inside_archive_is_refused():
    e = error(MPS_ROUTES=[{"name": "v", "bucket": "logs", "prefix": "mps/archive/x", "schedule_id": 1}],
              ARCHIVE_URI="s3://logs/mps/archive")
    assert e.variable == "ARCHIVE_URI/MPS_ROUTES[v]"


def test_absolute_output_path_escaping_output_dir_is_refused():
    tasks = {"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 10, "OutputObjectPath": "/uploads/{inputName}.mp4"}]}}
    e = error(MPS_ROUTES=[{"name": "t", "tasks": tasks}])
    assert "OutputObjectPath" in e.variable and "escapes output dir" in e.problem


def test_same_bucket_with_own_output_dir_and_catch_all_is_allowed_and_guarded():
    s = load_settings(env(MPS_SCHEDULE_ID=1, ARCHIVE_URI="cos://logs-1250000000/mps"))
    guards = {(g.bucket, g.prefix) for g in s.guarded_locations()}
    assert guards == {(None, "mps-output/"), ("logs-1250000000", "mps/")}


@pytest.mark.parametrize("path", ["../uploads/{inputName}.mp4", "sub/../../x.mp4", "/mps-output/../uploads/x.mp4"])
def test_output_paths_climbing_out_with_dotdot_are_refused(path):
    tasks = {"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 10, "OutputObjectPath": path}]}}
    e = error(MPS_ROUTES=[{"name": "t", "tasks": tasks}])
    assert "OutputObjectPath" in e.variable and "'..'" in e.problem


@pytest.mark.parametrize("kw,variable", [({"MPS_OUTPUT_DIR": "/mps-output/../"}, "MPS_OUTPUT_DIR"),
                                         ({"ARCHIVE_URI": "s3://logs/a/../b"}, "ARCHIVE_URI"),
                                         ({"ARCHIVE_URI": "s3://logs/" + "p" * 513}, "ARCHIVE_URI")])
def test_dirs_with_dotdot_and_archive_prefixes_too_long_for_1024_byte_keys_are_refused(kw, variable):
    assert error(MPS_SCHEDULE_ID=1, **kw).variable == variable


def test_invalid_urls_are_refused_without_quoting_them():
    e = error(MPS_SCHEDULE_ID=1, MPS_NOTIFY_URL="ftp://cb.example.com/?token=never-quote-me")
    assert e.variable == "MPS_NOTIFY_URL" and "never-quote-me" not in str(e)
