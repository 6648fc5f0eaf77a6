"""Chat digests (issue 9): one message per invocation, within each format's limit in bytes, user text inert, paced
under the robot's rate; whatever is not delivered is recorded under push_failed and never fails a callback.

The robot (``mpslocal.chat.ChatRobot``) applies WeCom's and Slack's documented rules with its own code."""
from __future__ import annotations

import copy
import json
import re

import pytest

from mpslocal.chat import ChatRobot
from mpslocal.runtime import LambdaContext
from tests.conftest import LocalEndpoint, load_event

CALLBACK = json.loads(load_event("furl_callback.json")["body"])


def callbacks(keys: list[str], fail_every: int = 3) -> dict:
    """An SQS batch of ScheduleTask callbacks for ``keys`` (every ``fail_every``-th one failed)."""
    records = []
    for i, key in enumerate(keys):
        doc = copy.deepcopy(CALLBACK)
        doc["ScheduleTaskEvent"]["TaskId"] = f"1250000000-ScheduleTask-{i:05d}{abs(hash(key)) % 10**8:08d}tt7"
        doc["SessionContext"] = json.dumps({"v": 1, "src": "s3", "b": "media", "k": key, "r": "videos"},
                                           ensure_ascii=False)
        if i % fail_every:
            doc["ScheduleTaskEvent"]["ActivityResultSet"] = doc["ScheduleTaskEvent"]["ActivityResultSet"][:1]
        rec = copy.deepcopy(load_event("sqs_callbacks.json")["Records"][0])
        rec["messageId"], rec["body"] = f"m-{i}-{abs(hash(key)) % 10**9}", json.dumps(doc, ensure_ascii=False)
        records.append(rec)
    return {"Records": records}


def task_ids(event: dict) -> set[str]:
    return {json.loads(r["body"])["ScheduleTaskEvent"]["TaskId"] for r in event["Records"]}


def named_objects(text: str) -> list[str]:
    return re.findall(r"(?:s3|cos)://[^\s,()]+?\.jsonl", text)


def push_failures(store) -> list[dict]:
    return [x for k, v in store.objects().items() if "/event_type=push_failed/" in k for x in v]


def test_wecom_digest_fits_4096_bytes_with_long_cjk_keys(archive):
    with ChatRobot("wecom") as robot:
        app, store = archive(WEBHOOK_URL=robot.url, WEBHOOK_FORMAT="wecom")
        event = callbacks([f"uploads/{i}/" + "视频片段" * 100 + ".mp4" for i in range(100)])  # ~1.2 KB per key
        assert app.handler(event, LambdaContext("archive", 30)) == {"batchItemFailures": []}
        [msg] = robot.delivered
        content = msg.text
        assert len(content.encode("utf-8")) <= 4096 and robot.refused == []
        assert content.startswith("**MPS task callbacks: 100** (") and "34 FAILED" in content
        assert re.search(r"\+\d+ more\. Archive: s3://", content)
        first_row = content.splitlines()[1]
        assert "FAILED" in first_row  # failed tasks come first
        for uri in named_objects(content):
            assert uri.split("/", 3)[3] in store.objects()


@pytest.mark.parametrize("kind", ["wecom", "slack"])
def test_keys_and_messages_cannot_mention_link_or_format(archive, kind):
    hostile = ["uploads/<@all>.mp4", "uploads/@all hands.mp4", "uploads/[click](http://evil.example)/a.mp4",
               'uploads/<font color="info">ok</font>.mp4', "uploads/<!channel>.mp4", "uploads/<http://evil|here>.mp4",
               "uploads/line\n# heading\n> quote.mp4", "uploads/`code` **bold** &amp; &lt;@all&gt;.mp4"]
    with ChatRobot(kind) as robot:
        app, store = archive(WEBHOOK_URL=robot.url, WEBHOOK_FORMAT=kind)
        event = callbacks(hostile, fail_every=1)
        for rec in event["Records"]:  # the error message is user-controlled too (MPS echoes what it was given)
            doc = json.loads(rec["body"])
            doc["ScheduleTaskEvent"]["ActivityResultSet"][-1]["ActivityResItem"]["AnimatedGraphicTask"]["Message"] = \
                "<@all> see [docs](http://evil.example) <!here>"
            rec["body"] = json.dumps(doc, ensure_ascii=False)
        assert app.handler(event, None) == {"batchItemFailures": []}
        [msg] = robot.delivered
        assert msg.mentions == [] and msg.links == []
        assert len(msg.text.splitlines()) == 1 + len(hostile) + 1  # head, one row per task, tail: no injected lines
        assert "＜＠all＞" in msg.text if kind == "wecom" else "&lt;!channel&gt;" in msg.text


def test_digests_are_paced_under_the_robots_rate_and_the_rest_is_recorded(archive):
    with ChatRobot("wecom") as robot:
        app, store = archive(WEBHOOK_URL=robot.url, WEBHOOK_FORMAT="wecom")
        events = [callbacks([f"uploads/b{b}/{i}.mp4" for i in range(4)]) for b in range(25)]
        for event in events:
            assert app.handler(event, LambdaContext("archive", 30)) == {"batchItemFailures": []}
        assert robot.max_per_minute() <= 20 and len(robot.delivered) == 20 and robot.refused == []
        failures = push_failures(store)
        assert len(failures) == 5 and all(f["reason"].startswith("paced: 20 messages") for f in failures)
        assert all(f["attempts"] == 1 and f["body"]["msgtype"] == "markdown" for f in failures)
        # every callback is in a delivered digest (by the archive objects it names) or in a recorded failed push
        delivered = {x["task_id"] for m in robot.delivered for uri in named_objects(m.text)
                     for x in store.objects()[uri.split("/", 3)[3]]}
        recorded = {c["task_id"] for f in failures for c in f["covers"]}
        assert delivered | recorded == set().union(*(task_ids(e) for e in events)) and not delivered & recorded


@pytest.mark.parametrize("robot_args,reason", [
    ({"per_minute": 2}, "WeCom errcode 45009: the robot's rate limit"),
    ({"key": "another-key-entirely"}, "WeCom errcode 93000 (only errcode 0 is delivered)"),
])
def test_robot_refusals_are_recorded_and_never_redelivered(archive, robot_args, reason):
    with ChatRobot("wecom", **robot_args) as robot:
        url = robot.url.replace(robot.key, "the-configured-key-000") if "key" in robot_args else robot.url
        app, store = archive(WEBHOOK_URL=url, WEBHOOK_FORMAT="wecom")
        for b in range(3):
            assert app.handler(callbacks([f"uploads/{b}.mp4"]), None) == {"batchItemFailures": []}
        assert [f["reason"] for f in push_failures(store)][-1] == reason
        assert all(url not in json.dumps(f) and "the-configured-key-000" not in json.dumps(f)
                   for f in push_failures(store))


def test_json_digest_stays_within_256_kib_and_counts_the_rest(archive):
    receiver = LocalEndpoint(lambda body: (204, b""))
    try:
        app, store = archive(WEBHOOK_URL=receiver.url, WEBHOOK_FORMAT="json")
        event = callbacks([f"uploads/{i}/" + "k" * 900 + ".mp4" for i in range(1500)])
        assert app.handler(event, LambdaContext("archive", 60)) == {"batchItemFailures": []}
        [raw] = receiver.bodies
        digest = json.loads(raw)
        assert len(raw) <= 256 * 1024 and digest["callbacks"] == 1500
        assert digest["more"] == 1500 - len(digest["tasks"]) > 0 and sum(digest["counts"].values()) == 1500
        assert 0 < len(digest["tasks"]) < 500 and all(t["failed"] for t in digest["tasks"])  # the failed ones first
    finally:
        receiver.close()


def test_a_digest_that_cannot_even_be_rendered_never_fails_the_batch(stack, monkeypatch):
    """Whatever goes wrong on the way to the chat (here: a format the renderer does not know) is recorded under
    push_failed; the callbacks are archived and acknowledged."""
    import uuid

    from mps_triggers.archive_job import ArchiveJob
    from mps_triggers.config import load_archive_settings
    from mps_triggers.storage import S3Store
    from mps_triggers.webhook import WebhookClient

    bucket = f"render-{uuid.uuid4().hex[:8]}"
    s3 = stack.boto3("s3")
    s3.create_bucket(Bucket=bucket)
    settings = load_archive_settings({"ARCHIVE_URI": f"s3://{bucket}/cb", "CALLBACK_TOKEN": "render-token"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.moto.url)
    job = ArchiveJob(settings, store=S3Store(bucket), webhook=WebhookClient("http://127.0.0.1:9/hook", fmt="xml"))
    event = callbacks(["uploads/a.mp4", "uploads/b.mp4"])
    assert job.run(event, None).respond() == {"batchItemFailures": []}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    [failed_key] = [k for k in keys if "/event_type=push_failed/" in k]
    failed = json.loads(s3.get_object(Bucket=bucket, Key=failed_key)["Body"].read())
    assert failed["reason"].startswith("internal error: KeyError") and len(failed["covers"]) == 2
