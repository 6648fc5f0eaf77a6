"""The demo's third deployment: a Tencent VOD application → ``functions/vod`` → task flows, every event archived.

Two VOD applications (the VOD emulator, :mod:`mpslocal.vod_emulator`), one per way VOD delivers events, each with
its own SCF-style vod function in a child process, both archiving to ``cos://mps-demo-archive-1250000000/vod``
through the real COS SDK:

- **push** (normal callback): SubAppId 1500000001 POSTs each event, signed with a SignKey, to the function's URL
  (``?token=…&sub_app_id=…``);
- **pull** (reliable callback): SubAppId 1500000002 keeps its events; a timer invokes the function, which pulls,
  archives, submits and confirms.

Each application gets clips (routed to the ``hls-720p`` task flow), one upload whose signature already named a task
flow (skipped: it must not run twice) and a text file (no route). Then VOD delivers every NewFileUpload again. The
round checks: each routed file has exactly one task flow task, the others none; every event (the uploads, the
redeliveries, each ProcedureStateChanged) has its line; no pulled event is left unconfirmed; every request VOD saw
was TC3-signed for ``vod`` and valid (or a duplicate SessionId).
"""
from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from .vod_emulator import VodEmulator

PUSH_APP, PULL_APP = 1500000001, 1500000002
SIGN_KEY = "demoVodSignKey0never0logged"
ROUTES = [{"name": "flows", "types": ["mp4", "mov"], "procedure": "hls-720p"}]
FILES = [("launch clip 01.mp4", None), ("产品 演示.mov", None), ("teaser+final.mp4", None),
         ("signed upload.mp4", "hls-720p"), ("notes.txt", None)]


class VodRound:
    """Runs the VOD part of the demo against ``demo`` (a :class:`mpslocal.demo.Demo`): its stack, containers and
    problem list."""

    def __init__(self, demo: Any, archive_bucket: str, region: str, token: str) -> None:
        self.demo, self.bucket, self.region, self.token = demo, archive_bucket, region, token
        secret_id, (secret_key, _) = next(iter(demo.stack.mps.credentials.items()))
        self.keys = {"TENCENTCLOUD_SECRETID": secret_id, "TENCENTCLOUD_SECRETKEY": secret_key}
        self.vod = VodEmulator(secret_id, secret_key, sub_app_ids=(PUSH_APP, PULL_APP), complete_after=0.3,
                               pull_wait=0.3, visibility=3.0).start()
        self.files: dict[str, tuple[int, str, str | None]] = {}  # FileId → (app, name, flow its upload named)

    def env(self, **extra: str) -> dict[str, str]:
        local = {"COS_ENDPOINT_URL": self.demo.stack.moto.url, "AWS_ENDPOINT_URL": self.demo.stack.moto.url}
        return {**local, **self.keys, "ARCHIVE_URI": f"cos://{self.bucket}/vod", "ARCHIVE_REGION": self.region,
                "VOD_ENDPOINT": self.vod.url, "VOD_ROUTES": json.dumps(ROUTES), "CALLBACK_TOKEN": self.token, **extra}

    def run(self) -> None:
        from .runner import FunctionUrlServer

        demo = self.demo
        push = demo.container("vod-push", "vod", self.env(VOD_SIGN_KEY=SIGN_KEY), platform="scf")
        pull = demo.container("vod-pull", "vod", self.env(VOD_SUB_APP_ID=str(PULL_APP)), platform="scf")
        url = FunctionUrlServer(push, platform="scf", name="vod")
        try:
            self.vod.configure(PUSH_APP, "PUSH", f"{url.url}?token={quote(self.token, safe='')}&sub_app_id={PUSH_APP}",
                               SIGN_KEY)
            self.vod.configure(PULL_APP, "PULL")
            print(f"\nVOD: {len(FILES)} uploads to application {PUSH_APP} (push, signed) and {len(FILES)} to "
                  f"{PULL_APP} (pull, a poller every second) ...", flush=True)
            for app in (PUSH_APP, PULL_APP):
                for name, flow in FILES:
                    self.files[self.vod.upload(name, app, procedure=flow)] = (app, name, flow)
            self.settle(pull)
            print("VOD delivers every NewFileUpload again (at least once) ...", flush=True)
            self.vod.redeliver("NewFileUpload")
            self.settle(pull)
        finally:
            url.stop()
            self.vod.stop()
        self.check(url)

    def settle(self, pull: Any, timeout: float = 60.0) -> None:
        """Poll (as the timer would) until VOD has nothing to push or to be pulled, three rounds in a row."""
        end, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < end and quiet < 3:
            pull({"Type": "Timer", "TriggerName": "vod-poll", "Time": "", "Message": "vod-poll"})
            busy = self.vod.pending(PULL_APP) + self.vod.scheduled()
            quiet = quiet + 1 if busy == 0 else 0
            time.sleep(0.3)
        if quiet < 3:
            self.demo.problems.append(f"VOD: events still pending after {timeout:.0f}s")

    def check(self, url: Any) -> None:
        problems, vod = self.demo.problems, self.vod
        lines = self.archive_lines()
        ledger = [ln for ln in lines if ln.get("event_type") == "submissions"]
        events = [ln for ln in lines if ln.get("event_type") != "submissions"]
        rows = []
        for file_id, (app, name, flow) in self.files.items():
            ours = [t for t in vod.tasks if t["FileId"] == file_id and t["SessionId"]]
            expected = 0 if flow or not name.endswith((".mp4", ".mov")) else 1
            if len(ours) != expected:
                problems.append(f"VOD {app}/{name}: {len(ours)} task flow tasks started, expected {expected}")
            done = [ln for ln in events if ln["event_type"] == "ProcedureStateChanged"
                    and ln["task_id"] in {t["TaskId"] for t in vod.tasks if t["FileId"] == file_id}]
            why = "its upload started a task flow" if flow else "no route" if not expected else "flows"
            rows.append((f"{'push' if app == PUSH_APP else 'pull'} {app}", name, file_id, why,
                         ours[0]["TaskId"] if ours else "-", "FINISH archived" if done else "-"))
            if (expected or flow) and not done:
                problems.append(f"VOD {app}/{name}: no archived ProcedureStateChanged of its task flow")
        distinct = {ln["id"] for ln in events}
        expected_events = len(self.files) + sum(1 for t in vod.tasks if t["Api"] == "ProcessMediaByProcedure")
        if len(distinct) != expected_events:  # each NewFileUpload once, each task flow's ProcedureStateChanged once
            problems.append(f"VOD: {len(distinct)} distinct events archived, expected {expected_events}")
        answered: dict[str, bool] = {}  # each pushed event (unsigned) → answered 200 at least once
        for push in vod.pushes:
            body = json.dumps({k: v for k, v in push.body.items() if k not in ("T", "Sign")}, sort_keys=True)
            answered[body] = answered.get(body, False) or push.status == 200
        if not all(answered.values()):
            problems.append(f"VOD: {sum(1 for ok in answered.values() if not ok)} pushed events never answered 200")
        if vod.pending(PULL_APP):
            problems.append(f"VOD: {vod.pending(PULL_APP)} pulled events never confirmed")
        bad = [r for r in vod.requests
               if not r.signed or r.verdict not in ("accepted", "InvalidParameterValue.SessionId")]
        for r in bad:
            problems.append(f"VOD emulator answered {r.action} {r.verdict} (signed={r.signed})")
        results = {}
        for ln in ledger:
            results[ln["result"]] = results.get(ln["result"], 0) + 1
        routed = sum(1 for _, name, flow in self.files.values() if not flow and name.endswith((".mp4", ".mov")))
        if results.get("submitted") != routed or results.get("duplicate") != routed:
            problems.append(f"VOD ledger: {results}, expected {routed} submitted and {routed} duplicates")
        from .demo import _table

        print("\nVOD files and what they started:")
        _table(["application", "file", "FileId", "route / reason", "task flow task", "callback"], rows)
        print(f"VOD events archived: {len(distinct)} distinct events in {len(events)} lines (a redelivered event "
              f"keeps its line id; a pulled batch delivered again rewrites its object) "
              f"({', '.join(f'{t}×{n}' for t, n in sorted(_by(events, 'event_type').items()))}); "
              f"ledger {', '.join(f'{r}×{n}' for r, n in sorted(results.items()))}; "
              f"{len(vod.requests)} VOD requests, all TC3-signed for vod and valid: {'yes' if not bad else 'NO'}; "
              f"{len(vod.pushes)} pushes, {sum(1 for p in vod.pushes if p.status == 200)} answered 200")

    def archive_lines(self) -> list[dict[str, Any]]:
        s3 = self.demo.s3
        out = []
        for o in s3.list_objects_v2(Bucket=self.bucket, Prefix="vod/").get("Contents", []):
            data = s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read().decode("utf-8")
            out.extend(json.loads(x) for x in data.splitlines() if x.strip())
        return out


def _by(lines: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for ln in lines:
        out[ln[key]] = out.get(ln[key], 0) + 1
    return out
