"""Make ``tests/data/golden_lines.jsonl``: archive lines of a fixed corpus, as the code of the day builds them.

    .venv/bin/python dev/golden_lines.py [--check]

The file was written once, by the line code before issue 14's speed-up (commit 2d88942), and
``tests/test_lines_golden.py`` holds every later version of :func:`mps_triggers.lines.build_line` to it: same ids,
same bytes. Regenerate it only when the line format changes on purpose, and say so in the commit. ``--check``
compares instead of writing (exit 1 on the first difference).

The corpus (deterministic): every callback under ``events/``; the benchmark's notifications (ScheduleTask,
WorkflowTask, EditMediaTask, with failed subtasks, AI results); BatchTask; odd values (lone surrogates, U+2028,
integers beyond 64 bits, floats in every notation, control characters); secrets under every key net (nested
``S3SecretKey``, ``token`` spelled with the Kelvin sign, presigned S3 and COS URLs, access key ids); nesting up to
64 levels; and 400 seeded random notification-shaped documents. Non-finite floats are not in it: lines write
them as ``null`` since issue 14 (RFC 8259 has no NaN or Infinity).
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "golden_lines.jsonl"
RECEIVED_AT = 1795343359.25


def corpus() -> list[tuple[dict, bool]]:
    """``(payload, verified)`` pairs."""
    sys.path[:0] = [str(ROOT / "dev"), str(ROOT / "bench"), str(ROOT / "layers" / "core")]
    from mpslocal.notifications import edit_media_event, notification, task_event

    docs: list[tuple[dict, bool]] = []
    for path in sorted((ROOT / "events").glob("*.json")):
        ev = json.loads(path.read_text())
        body = ev.get("body") if isinstance(ev, dict) else None
        if isinstance(body, str) and not ev.get("isBase64Encoded"):
            try:
                doc = json.loads(body)
            except ValueError:
                continue
            if isinstance(doc, dict):
                docs.append((doc, True))
        for rec in ev.get("Records", []) if isinstance(ev, dict) else []:
            if isinstance(rec, dict) and isinstance(rec.get("body"), str) and "EventType" in rec["body"]:
                docs.append((json.loads(rec["body"]), False))
        if isinstance(ev, dict) and "EventType" in ev:
            docs.append((ev, False))
    rnd = random.Random(14)
    for i in range(60):
        key = f"uploads/golden/{i:04d} 视频.mp4"
        info = {"Type": "COS", "CosInputInfo": {"Bucket": "media-1250000000", "Region": "ap-guangzhou",
                                               "Object": "/" + key}}
        ctx = json.dumps({"v": 1, "src": "cos", "b": "media-1250000000", "k": key, "r": "videos"}, ensure_ascii=False)
        kind = ("ScheduleTask", "WorkflowTask", "EditMediaTask")[i % 3]
        tid = f"1250000000-{kind}-{rnd.getrandbits(128):032x}tt7"
        if kind == "EditMediaTask":
            et, ev = "EditMediaTask", edit_media_event(tid, f"/mps-output/edit_{i}.mp4", "media-1250000000",
                                                        "ap-guangzhou")
        else:
            req = {"InputInfo": info, "OutputDir": "/mps-output/",
                   **({"ScheduleId": 20001} if kind == "ScheduleTask" else
                      {"MediaProcessTask": {"TranscodeTaskSet": [{"Definition": 100030}]}})}
            et, ev = task_event(req, tid, ("FINISH", "FAIL", "PROCESSING")[i % 3 if i % 5 else 0],
                                -1 if i % 4 == 0 else None)
        body = notification(et, ev, f"mt1-{rnd.getrandbits(160):040x}", ctx, "golden-notify-key")
        body["Timestamp"], body["Sign"] = 1795343000 + i, f"{rnd.getrandbits(128):032x}"  # not signed: fixed
        if i % 7 == 0:
            body[f"{et}Event"]["AiAnalysisResultSet"] = [{"Type": "Tag", "TagTask": {
                "Status": "SUCCESS", "ErrCode": 0, "Message": "", "Output": {"TagSet": [
                    {"Tag": f"tag-{j}", "Confidence": rnd.random(), "Segments": [j, j + 1.5]} for j in range(20)]}}}]
        docs.append((body, i % 2 == 0))
    base = docs[-1][0]
    odd_values = ["bad\ud800text", "a\u2028b\u2029c\u0085d", "\x00\x1f\x7f", 2**64 + 1, -(2**70), 2**63, 10**30,
                  1e-7, 1.5e-5, 0.0001, 1e16, 1e15, 1e22, 5e-324, 1.7976931348623157e308, -0.0, 12345678.9, 0.1,
                  "0.0000", "1e-5", True, None, "", "视" * 50, "https://b.s3.amazonaws.com/a.mp4?X-Amz-Signature=ab"
                  "c&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP%2F20260101&x=1",
                  "https://m-1250000000.cos.ap-guangzhou.myqcloud.com/a.mp4?q-ak=AKIDabcdefghijklmnop&q-signature=z",
                  "key AKIAABCDEFGHIJKLMNOP and AKIDxyzxyzxyzxyzxyzxyz in text", "https://x/?sign=1&token=2&k=3"]
    for n, value in enumerate(odd_values):
        doc = json.loads(json.dumps(base))
        doc["ScheduleTaskEvent" if "ScheduleTaskEvent" in doc else "EventType"] = doc.get("ScheduleTaskEvent", {})
        doc["Message"] = value
        doc.setdefault("ScheduleTaskEvent", {})["Extra"] = {"Nested": [value, {"v": value}]}
        docs.append((doc, n % 2 == 0))
    secrets = {"S3SecretKey": "s3-secret-value", "S3SecretId": "AKIAABCDEFGHIJKLMNOP", "Token": "t" * 20,
               "to\u212aen": "kelvin", "myPassword": "p", "Authorization": "Bearer x", "Cookie": "c=1",
               "NotifyKey": "nk", "Sign": "", "credentials": {"a": 1}, "SIGNATURE": None, "plain": "keep",
               "Url": "https://b.s3.amazonaws.com/a?X-Amz-Security-Token=zzz&ok=1"}
    for depth in (1, 3, 10, 40):
        doc = {"EventType": "WorkflowTask", "WorkflowTaskEvent": {"TaskId": f"t-{depth}", "Status": "FINISH"}}
        node = doc["WorkflowTaskEvent"]
        for _ in range(depth):
            node["Deeper"] = {"List": [dict(secrets)]}
            node = node["Deeper"]
        docs.append((doc, False))
    for depth in (60, 63):
        value: object = {"S3SecretKey": "deep"}
        for _ in range(depth - 1):
            value = [value]
        docs.append(({"EventType": "Deep", "X": value}, False))
    kinds = ["EventType", "WorkflowTaskEvent", "ScheduleTaskEvent", "EditMediaTaskEvent", "BatchTaskEvent",
             "SessionId", "SessionContext", "Timestamp", "Sign", "TaskId", "Status", "ErrCode", "ErrCodeExt",
             "Message", "InputInfo", "Output", "MediaProcessResultSet", "ActivityResultSet", "ActivityResItem",
             "ActivityType", "TranscodeTask", "Path", "OutputFilePath", "PicInfoSet", "CosInputInfo", "S3InputInfo",
             "AiAnalysisResultSet", "Type", "InputInfos", "SmartSubtitlesTaskResult", "Outputs", "secretThing", "ü"]

    def value(level: int) -> object:
        r = rnd.random()
        if level > 4 or r < 0.45:
            return rnd.choice([None, True, False, 0, -1, 30010, rnd.randint(-10**6, 10**6), rnd.random() * 1e3,
                               rnd.choice(odd_values), "FINISH", "FAIL", "SUCCESS", "/out/a.mp4", "", "x" * 5])
        if r < 0.7:
            return [value(level + 1) for _ in range(rnd.randint(0, 4))]
        return {rnd.choice(kinds): value(level + 1) for _ in range(rnd.randint(0, 6))}

    for i in range(400):
        et = rnd.choice(["WorkflowTask", "ScheduleTask", "EditMediaTask", "BatchTask", "Other", 5, None])
        doc = {"EventType": et, f"{et}Event": value(1), "SessionId": rnd.choice([None, "", "mt1-" + "a" * 40, 7]),
               "SessionContext": rnd.choice([None, "", "{}", '{"v":1,"src":"s3","b":"b","k":"k"}', "[",
                                             json.dumps(value(3))]),
               "Timestamp": rnd.choice([1795343000, "1795343000", None, 10**20, "²"]), "Sign": "0" * 32}
        if rnd.random() < 0.3:
            doc[rnd.choice(kinds)] = value(1)
        docs.append((doc, rnd.random() < 0.5))
    return docs


def build(doc: dict, verified: bool, n: int) -> str:
    from mps_triggers.lines import build_line, callback_id

    line = build_line(doc, "sqs", f"golden-{n}", RECEIVED_AT, verified=verified)
    assert callback_id(doc) == line.id
    return line.data.decode("utf-8")


def main() -> int:
    rows = []
    for n, (doc, verified) in enumerate(corpus()):
        text = json.dumps(doc, ensure_ascii=True, allow_nan=False)
        rows.append({"n": n, "in": text, "verified": verified, "line": build(json.loads(text), verified, n)})
    if "--check" in sys.argv:  # the stored inputs, built by today's code
        old = [json.loads(x) for x in OUT.read_text().splitlines()]
        for row in old:
            line = build(json.loads(row["in"]), row["verified"], row["n"])
            if line != row["line"]:
                print(f"line {row['n']} differs:\n  {row['line'][:300]}\n  {line[:300]}")
                return 1
        print(f"{len(old)} lines identical")
        return 0
    OUT.write_text("".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows))
    print(f"{len(rows)} lines → {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
