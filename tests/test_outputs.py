"""Output layout: every object gets its own, predictable output folder; templates that could share one are refused at
load; MPS's own filename variables pass through; the recursion guard still keeps outputs out.

The folder a user expects is computed here from the README's rule ("the output dir, then the key, then /; '%' and
control characters percent-encoded, a '.', '..' or empty segment written %2E, %2E%2E, %2F"), not with the project's
renderer; the emulator renders MPS's variables with its own code and records every path a task writes.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from urllib.parse import quote_plus

import pytest

from mps_triggers.config import load_settings
from mps_triggers.exceptions import ConfigError
from mps_triggers.routing import Router, S3Credentials, Skip, Submission
from mps_triggers.uploads import UploadedObject
from tests.conftest import s3_body, sqs_event

KEYS = {"MPS_SECRET_ID": "AKIDtest", "MPS_SECRET_KEY": "k", "MPS_S3_SECRET_ID": "AKIATEST", "MPS_S3_SECRET_KEY": "s"}
TRANSCODE = {"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 100030}, {"Definition": 100040}]}}


def expected_folder(key: str, output_dir: str = "/mps-output/") -> str:
    """The README's rule, written independently of mps_triggers.outputs."""
    def seg(s: str) -> str:
        if s == "":
            return "%2F"
        if set(s) == {"."} and len(s) <= 2:
            return "%2E" * len(s)
        return "".join(f"%{ord(c):02X}" if c == "%" or ord(c) < 0x20 or ord(c) == 0x7F else c for c in s)
    return output_dir + "/".join(seg(s) for s in key.split("/")) + "/"


def thousand_keys() -> list[str]:
    """1,000 distinct keys with the shapes that used to collide, and the odd ones."""
    rnd = random.Random(10)
    names = ["intro", "产品 演示", "a+b", "x y", "100%", "clip #1", "Ünïcödé", "emoji 🎬", "dots.in.name", "UPPER"]
    keys: set[str] = set()
    for folder in ["", "uploads/", "uploads/a/", "uploads/b/", "深/层/目录/", "with space/", "plus+folder/",
                   "uploads/a/b/c/d/", "odd/../", "odd/./", "double//slash/", "pct%2F/"]:
        for name in names:
            for ext in (".mp4", ".mov", ".MP4"):
                keys.add(f"{folder}{name}{ext}")
    while len(keys) < 1000:
        depth = rnd.randint(0, 3)
        folder = "".join(rnd.choice(["a/", "b/", "c d/", "é/", "x+y/"]) for _ in range(depth))
        keys.add(f"{folder}{rnd.choice(names)}-{rnd.randint(0, 99)}{rnd.choice(['.mp4', '.mov'])}")
    return sorted(keys)[:1000]


def test_a_thousand_keys_get_a_thousand_predictable_folders_and_no_output_collides(handler_env, mps):
    app = handler_env(MPS_SCHEDULE_ID=None, MPS_ROUTES=json.dumps([
        {"name": "videos", "suffixes": [".mp4", ".mov"], "tasks": TRANSCODE}]))
    keys = thousand_keys()
    for i in range(0, len(keys), 10):  # S3 encodes keys in notifications as a form value (space → '+')
        batch = keys[i:i + 10]
        event = sqs_event(*[s3_body(quote_plus(k, safe="/"), etag=f"e{i + j}") for j, k in enumerate(batch)])
        assert app.handler(event, None) == {"batchItemFailures": []}
    by_key = {t.body["InputInfo"]["S3InputInfo"]["S3Object"]: t for t in mps.tasks}
    assert sorted(by_key) == keys
    folders = {k: t.body["OutputDir"] for k, t in by_key.items()}
    assert {k: expected_folder(k) for k in keys} == folders
    assert len(set(folders.values())) == 1000
    outputs = [o for t in mps.tasks for o in t.outputs]
    assert len(outputs) == 2000 and not [o for o, n in Counter(outputs).items() if n > 1]
    # the same base name in two folders, and x.mp4 next to x.mov, now write to different objects
    assert by_key["uploads/a/intro.mp4"].outputs != by_key["uploads/b/intro.mp4"].outputs
    assert by_key["uploads/intro.mp4"].outputs[0][1] == "/mps-output/uploads/intro.mp4/intro_transcode_100030.mp4"
    assert by_key["uploads/intro.mov"].outputs[0][1] == "/mps-output/uploads/intro.mov/intro_transcode_100030.mp4"
    # odd segments never climb out of the output dir, and every output is kept out by the recursion guard
    assert by_key["odd/../intro.mp4"].body["OutputDir"] == "/mps-output/odd/%2E%2E/intro.mp4/"
    router = Router(load_settings({**KEYS, "MPS_ROUTES": json.dumps([{"name": "videos", "suffixes": [".mp4"],
                                                                      "tasks": TRANSCODE}])}))
    for bucket, path in outputs:
        assert path.startswith("/mps-output/") and "/../" not in path and "/./" not in path
        decision = router.decide(UploadedObject("s3", bucket, "us-east-1", path.lstrip("/"), size=10))
        assert isinstance(decision, Skip) and decision.reason.startswith("recursion guard"), path


def obj(key: str, bucket: str = "in", **kw) -> UploadedObject:
    return UploadedObject("s3", bucket, "us-east-1", key, size=10, etag="e", **kw)


def submission(routes: list[dict], o: UploadedObject, **env: str) -> dict:
    d = Router(load_settings({**KEYS, "MPS_ROUTES": json.dumps(routes), **env})).decide(o)
    assert isinstance(d, Submission)
    return d.request(S3Credentials("A", "B"))


def test_templates_render_our_variables_and_pass_mps_variables_through():
    tasks = {"MediaProcessTask": {"TranscodeTaskSet": [
        {"Definition": 100030, "OutputObjectPath": "{name}_{definition}.{format}"},
        {"Definition": 100040, "OutputObjectPath": "/mps-output/{dir}{file}/{inputName}-{ext}.{format}",
         "SegmentObjectName": "{name}_{number}.{format}"}]}}
    req = submission([{"name": "v", "tasks": tasks, "output_path": "{route}/{date}/{dir}{file}/"}],
                     obj("uploads/a b/intro.MP4", event_time="2026-11-20T23:59:59.000Z"))
    assert req["OutputDir"] == "/mps-output/v/2026-11-20/uploads/a b/intro.MP4/"
    first, second = req["MediaProcessTask"]["TranscodeTaskSet"]
    assert first["OutputObjectPath"] == "intro_{definition}.{format}"
    assert second == {"Definition": 100040, "OutputObjectPath": "/mps-output/uploads/a b/intro.MP4/{inputName}-MP4.{format}",
                      "SegmentObjectName": "intro_{number}.{format}"}
    req2 = submission([{"name": "team/a", "schedule_id": 1, "output_path": "{route}/{dir}{file}/"}], obj("x.mp4"))
    assert req2["OutputDir"] == "/mps-output/team%2Fa/x.mp4/"  # a route's '/' never makes a folder of its own
    sid = req["SessionId"]
    req = submission([{"name": "v", "schedule_id": 1, "output_path": "by-session/{session_id}/"}], obj("a.mp4"))
    assert req["OutputDir"] == f"/mps-output/by-session/{req['SessionId']}/" and req["SessionId"] != sid


def test_a_separate_output_bucket_keeps_input_buckets_apart_by_default():
    req = submission([{"name": "v", "schedule_id": 1}], obj("a.mp4", bucket="cams"), MPS_OUTPUT_BUCKET="outputs")
    assert req["OutputDir"] == "/mps-output/cams/a.mp4/"
    assert req["OutputStorage"]["S3OutputStorage"]["S3Bucket"] == "outputs"


def test_a_key_too_long_for_its_folder_falls_back_to_the_session_id():
    key = "deep/" * 80 + "视" * 150 + ".mp4"
    req = submission([{"name": "v", "schedule_id": 1}], obj(key))
    assert req["OutputDir"] == f"/mps-output/{req['SessionId']}/"


@pytest.mark.parametrize("routes,env,where,message", [
    ([{"name": "v", "schedule_id": 1, "output_path": "{route}/"}], {}, "MPS_ROUTES[v].output_path",
     "can give two objects the same output folder"),
    ([{"name": "v", "schedule_id": 1, "output_path": "{dir}{name}/"}], {}, "MPS_ROUTES[v].output_path",
     "same output folder"),                                                    # x.mp4 and x.mov would meet
    ([{"name": "v", "schedule_id": 1, "output_path": "{file}{dir}/"}], {}, "MPS_ROUTES[v].output_path",
     "same output folder"),
    ([{"name": "v", "schedule_id": 1, "output_path": "{name}/{dir}{file}/"}], {}, "MPS_ROUTES[v].output_path",
     "same output folder"),
    ([{"name": "v", "schedule_id": 1}], {"MPS_OUTPUT_PATH": "{dir}{file}/", "MPS_OUTPUT_BUCKET": "out"},
     "MPS_OUTPUT_PATH", "objects of two buckets with one key would share a folder"),
    ([{"name": "v", "schedule_id": 1, "output_path": "{inputName}/"}], {}, "MPS_ROUTES[0] (v).output_path",
     "MPS's own filename variable"),
    ([{"name": "v", "schedule_id": 1, "output_path": "{key}/"}], {}, "MPS_ROUTES[0] (v).output_path",
     "unknown variable {key}"),
    ([{"name": "v", "schedule_id": 1, "output_path": "../{dir}{file}/"}], {}, "MPS_ROUTES[0] (v).output_path",
     "'..'"),
    ([{"name": "v", "schedule_id": 1, "output_path": "{dir}{file}"}], {}, "MPS_ROUTES[0] (v).output_path",
     "must end with '/'"),
    ([{"name": "a", "prefix": "a/", "schedule_id": 1}, {"name": "b", "prefix": "b/", "schedule_id": 2,
                                                        "output_path": "x/{dir}{file}/"}], {},
     "MPS_ROUTES[a]/MPS_ROUTES[b]", "can name the same folder"),             # a's "x/v.mp4" = b's "v.mp4"... in x/
    ([{"name": "a", "bucket": "one", "schedule_id": 1}, {"name": "b", "bucket": "two", "schedule_id": 2}],
     {"MPS_OUTPUT_BUCKET": "out", "MPS_OUTPUT_PATH": "{dir}{file}/"}, "MPS_ROUTES[a]/MPS_ROUTES[b]", "same folder"),
    ([{"name": "v", "tasks": {"MediaProcessTask": {"TranscodeTaskSet": [
        {"Definition": 1, "OutputObjectPath": "/mps-output/{inputName}.{format}"}]}}}], {},
     "MPS_ROUTES[v].tasks.MediaProcessTask.TranscodeTaskSet[0].OutputObjectPath", "not under a folder of its own"),
])
def test_templates_that_can_share_a_folder_are_refused_at_load(routes, env, where, message):
    with pytest.raises(ConfigError) as info:
        load_settings({**KEYS, "MPS_ROUTES": json.dumps(routes), **env})
    assert info.value.variable == where and message in info.value.problem


@pytest.mark.parametrize("routes,env", [
    ([{"name": "v", "schedule_id": 1, "output_path": "{route}/", "shared_output": True}], {}),
    ([{"name": "a", "prefix": "a/", "schedule_id": 1, "output_path": "{route}/{dir}{file}/"},
      {"name": "b", "prefix": "b/", "schedule_id": 2, "output_path": "{route}/{dir}{file}/"}], {}),
    ([{"name": "a", "bucket": "one", "schedule_id": 1}, {"name": "b", "bucket": "two", "schedule_id": 2}],
     {"MPS_OUTPUT_BUCKET": "out"}),                                          # the default adds {bucket}/
    ([{"name": "a", "bucket": "one", "schedule_id": 1, "output_path": "x/{dir}{file}/"},
      {"name": "b", "bucket": "two", "schedule_id": 2}], {}),                 # each writes into its own bucket
    ([{"name": "v", "schedule_id": 1, "output_path": "{date}{dir}{file}/"}], {}),
])
def test_templates_that_keep_objects_apart_are_accepted(routes, env):
    load_settings({**KEYS, "MPS_ROUTES": json.dumps(routes), **env})
