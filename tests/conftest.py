"""Shared fixtures: sample events, the local stack (moto server + MPS emulator over real HTTP), handler loading."""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import settings as hypothesis_settings

from mps_triggers import archive_job, storage, submit
from mps_triggers.config import load_settings
from mps_triggers.mps import Credentials, MpsClient, RetryPolicy
from mps_triggers.submit import SubmitJob
from mpslocal.container import load_app
from mpslocal.stack import LocalStack

# CI explores the same cases every run (reproducible, no surprise red build at landing); local runs explore new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

S3_SECRET = "test-s3-secret-key-0123456789"
NOTIFY_KEY = "test-notify-key-abcdef"


# --- the secrets scan: every log line and archive object of the whole suite ----------------------------------------

TEST_SECRETS = (
    # every secret value the suite configures (a test that adds one adds it here); none may reach a log line, an
    # error logged, or an archive object
    "test-s3-secret-key-0123456789", "test-notify-key-abcdef", "events-notify-key", "events-callback-token",
    "sample-s3-secret-key-do-not-log", "local-emulator-secret-key", "archive-cos-key", "loop-notify-key-secret",
    "loop-s3-secret-key", "loop-token", "fuzz-s3-secret-key", "fuzz-notify-key", "fuzz-token", "s3-very-secret",
    "notify-very-secret", "role-temporary-secret", "9f2e6bsecretsig", "FQoGZXIvYXdzEBYsessiontoken",
    "cosSIGNATUREvalue", "robotkey123456", "robot-key-0123456789abcdef", "the-configured-key-000",
    "wecom-robot-key-9876",
)
SECRET_SHAPES = re.compile(r'(?i)(S3SecretKey|SecretKey|NotifyKey)"\s*:\s*"(?!\*\*\*)[^"]+"|'
                           r"(X-Amz-Signature|X-Amz-Security-Token|q-signature)=(?!\*\*\*)[^&\s\"]+")


class _Collect(logging.Handler):
    """Keeps every record it sees, formatted as it would be printed."""

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.name}: {self.format(record)}")
        except Exception as exc:  # a line that cannot be formatted is a finding too
            self.lines.append(f"{record.name}: unformattable record: {exc}")


def leaks(text: str) -> list[str]:
    """The test secrets, and redaction-shaped values left unredacted, found in ``text``."""
    found = [s for s in TEST_SECRETS if s in text]
    found += [m.group(0)[:80] for m in SECRET_SHAPES.finditer(text)]
    return found


@pytest.fixture(scope="session", autouse=True)
def _log_capture():
    """Every line of the suite: the project's logger at debug, the root logger at INFO (as Lambda's JSON log format
    sets it), so third-party loggers' INFO lines would be seen too."""
    from mps_triggers import logs

    ours, root = _Collect(logs.JsonFormatter()), _Collect(logging.Formatter("%(levelname)s %(message)s"))
    logs.set_level("debug")
    logging.getLogger(logs.LOGGER_NAME).addHandler(ours)
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.INFO)
    root_logger.addHandler(root)
    yield ours, root
    root_logger.removeHandler(root)
    root_logger.setLevel(level)
    logging.getLogger(logs.LOGGER_NAME).removeHandler(ours)


@pytest.fixture(autouse=True)
def _no_secret_in_logs(_log_capture):
    """After each test: none of the lines it logged holds a secret."""
    ours, root = _log_capture
    start = (len(ours.lines), len(root.lines))
    yield
    lines = ours.lines[start[0]:] + root.lines[start[1]:]
    found = sorted({leak for line in lines for leak in leaks(line)})
    assert not found, f"secrets in this test's log lines: {found}"


def wait_for(cond: Callable[[], Any], timeout: float = 15.0) -> bool:
    """Poll ``cond`` every 50 ms until it is true (→ True) or ``timeout`` seconds pass (→ False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Any:
    """The local stack for the session. At its end, every object in its buckets (archives in S3 and COS) and every
    log file the suite's function containers wrote is scanned for secrets."""
    with LocalStack(rate_limit=None) as s:
        yield s
        found: dict[str, list[str]] = {}
        s3 = s.boto3("s3")
        for bucket in s3.list_buckets().get("Buckets", []):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
                for o in page.get("Contents", []):
                    body = s3.get_object(Bucket=bucket["Name"], Key=o["Key"])["Body"].read()
                    hits = leaks(body.decode("utf-8", "replace"))
                    if hits:
                        found[f"s3://{bucket['Name']}/{o['Key']}"] = hits
        for log in tmp_path_factory.getbasetemp().rglob("*.log"):
            hits = leaks(log.read_text(encoding="utf-8", errors="replace"))
            if hits:
                found[str(log)] = hits
        assert not found, f"secrets in archive objects or container logs: {found}"


@pytest.fixture
def mps(stack: LocalStack) -> Any:
    """The emulator, reset: no tasks, no sessions, no faults, no rate limit unless a test sets one."""
    emu = stack.mps
    with emu._lock:
        emu.state.tasks.clear()
        emu.state.requests.clear()
        emu.state.sessions.clear()
        emu.state.faults.clear()
        emu.state.window.clear()
        emu.state.batch_window.clear()
        emu.state.max_inflight = 0
    emu.rate_limit = None
    emu.latency = 0.0
    yield emu
    emu.rate_limit = None
    emu.latency = 0.0
    emu.state.faults.clear()


def sqs_event(*bodies: Any, ids: list[str] | None = None) -> dict[str, Any]:
    """An SQS event as Lambda delivers it, one record per body (a dict is JSON-encoded, a str sent as it is)."""
    ids = ids or [f"msg-{i}" for i in range(len(bodies))]
    return {"Records": [{"messageId": mid, "receiptHandle": "rh", "body": b if isinstance(b, str) else json.dumps(b),
                         "attributes": {}, "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads", "awsRegion": "us-east-1"}
                        for mid, b in zip(ids, bodies)]}


def s3_body(key: str, etag: str = "e1", size: int = 10, bucket: str = "media-in") -> dict[str, Any]:
    """An S3 ObjectCreated notification (event version 2.1) for one object, as S3 sends it to SQS."""
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                         "eventTime": "2026-11-21T03:00:00.000Z", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "eTag": etag}}}]}


def base_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    env = {
        "MPS_ENDPOINT": stack.mps.url,
        "MPS_SECRET_ID": next(iter(stack.mps.credentials)),
        "MPS_SECRET_KEY": next(iter(stack.mps.credentials.values()))[0],
        "MPS_S3_SECRET_ID": "AKIATESTMPSREADER001",
        "MPS_S3_SECRET_KEY": S3_SECRET,
        "MPS_SCHEDULE_ID": "20001",
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


@pytest.fixture
def make_job(stack: LocalStack, mps: Any) -> Callable[..., SubmitJob]:
    """Build a SubmitJob from an environment (base_env plus overrides; ``None`` removes a variable)."""
    jobs: list[SubmitJob] = []

    def factory(retry: RetryPolicy | None = None, timeout: float = 5.0, **extra: Any) -> SubmitJob:
        settings = load_settings(base_env(stack, **extra))
        client = MpsClient(settings.mps_endpoint, Credentials(settings.mps_secret_id.get_secret_value(),
                                                              settings.mps_secret_key.get_secret_value()),
                           timeout=timeout, retry=retry or RetryPolicy(base=0.01, cap=0.05))
        job = SubmitJob(settings, client)
        jobs.append(job)
        return job

    yield factory
    for j in jobs:
        j.client.close()


@pytest.fixture
def handler_env(stack: LocalStack, mps: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Set the environment for functions/submit/app.py and return its module (fresh container each call)."""

    def apply(**extra: Any) -> Any:
        for k in list(os.environ):
            if k.startswith(("MPS_", "TENCENTCLOUD_", "ARCHIVE_")):
                monkeypatch.delenv(k)
        for k, v in base_env(stack, **extra).items():
            monkeypatch.setenv(k, v)
        submit.default_job.cache_clear()
        return load_app("submit")

    yield apply
    submit.default_job.cache_clear()


# --- the archive function against a fresh moto bucket -------------------------------------------------------------

NOTIFY_KEY_EVENTS = "events-notify-key"
TOKEN_EVENTS = "events-callback-token"


def resign(doc: dict, ts: int | None = None, key: str = NOTIFY_KEY_EVENTS) -> dict:
    doc = copy.deepcopy(doc)
    doc["Timestamp"] = int(time.time()) + 600 if ts is None else ts
    doc["Sign"] = hashlib.md5(f"{doc['Timestamp']}{key}".encode()).hexdigest()
    return doc


def furl_event(body, **kw) -> dict:
    ev = load_event("furl_callback.json")
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body, ensure_ascii=False)
    ev["body"] = raw.decode() if isinstance(raw, bytes) else raw
    ev.update(kw)
    return ev


def schedule_body(**kw) -> dict:
    return resign(json.loads(load_event("furl_callback.json")["body"]), **kw)


@pytest.fixture
def archive(stack, monkeypatch):
    """Configure functions/archive/app.py against a fresh moto bucket; returns (app, reader)."""
    def apply(storage_kind: str = "s3", **extra):
        for k in list(os.environ):
            if k.startswith(("MPS_", "TENCENTCLOUD_", "ARCHIVE_", "CALLBACK_", "WEBHOOK_")):
                monkeypatch.delenv(k)
        bucket = f"arch-{uuid.uuid4().hex[:10]}" + ("-1250000000" if storage_kind == "cos" else "")
        stack.boto3("s3").create_bucket(Bucket=bucket)
        env = {"AWS_ENDPOINT_URL": stack.moto.url, "COS_ENDPOINT_URL": stack.moto.url,
               "ARCHIVE_URI": f"{storage_kind}://{bucket}/callbacks", "MPS_NOTIFY_KEY": NOTIFY_KEY_EVENTS}
        if storage_kind == "cos":
            env.update(ARCHIVE_REGION="ap-guangzhou", MPS_SECRET_ID="AKIDarchive", MPS_SECRET_KEY="archive-cos-key")
        env.update({k: v for k, v in extra.items() if v is not None})
        for k, v in env.items():
            if extra.get(k, "") is not None:
                monkeypatch.setenv(k, v)
        for k, v in extra.items():
            if v is None:
                monkeypatch.delenv(k, raising=False)
        archive_job.default_job.cache_clear()
        storage._stores.clear()
        return load_app("archive"), Reader(stack, bucket)

    yield apply
    archive_job.default_job.cache_clear()
    storage._stores.clear()


ESCAPES = re.compile(r"\\u(?!2028|2029|0085|00[01][0-9a-f]|d[89a-f][0-9a-f]{2})")


class Reader:
    """Reads an archive bucket back, checking the line format: UTF-8, one record per line for any reader
    (``str.splitlines()`` included), no ASCII escaping but for control characters (JSON's own rule),
    line-breaking characters and lone surrogates."""

    def __init__(self, stack, bucket):
        self.s3, self.bucket = stack.boto3("s3"), bucket

    def objects(self, ledger: bool = False) -> dict[str, list[dict]]:
        """Callback (and push_failed) objects by key; with ``ledger``, the submit job's ledger objects instead."""
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for o in page.get("Contents", []):
                if "/claims/" in o["Key"]:  # BatchProcessMedia claim markers, not archive lines
                    continue
                if ("/event_type=submissions/" in f"/{o['Key']}") != ledger:
                    continue
                data = self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
                text = data.decode("utf-8")
                assert data.endswith(b"\n") and text.splitlines() == text[:-1].split("\n")  # one line per record
                assert not ESCAPES.search(text.replace("\\\\", "")), "only line-breaking characters are escaped"
                out[o["Key"]] = [json.loads(x) for x in text.splitlines()]
        return out

    def ledger(self) -> list[dict]:
        """Every ledger line (event_type=submissions), in key order."""
        return [line for lines in self.objects(ledger=True).values() for line in lines]

    def raw(self) -> str:
        return "".join(json.dumps(lines, ensure_ascii=False) for lines in [*self.objects().values(),
                                                                           *self.objects(ledger=True).values()])


class BlackHole:
    """A TCP endpoint that accepts connections and reads, but never answers (a store or an MPS that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


class LocalEndpoint:
    """An HTTP endpoint on 127.0.0.1 for tests: keeps every POST body (:attr:`bodies`, and :attr:`posts` parsed as
    JSON where it is), and answers with ``answer(body) -> (status, bytes)`` (default: 200 and WeCom's
    ``{"errcode":0,"errmsg":"ok"}``), or with the next of the queued :attr:`statuses` (then the same body)."""

    def __init__(self, answer: Callable[[bytes], tuple[int, bytes]] | None = None, path: str = "/hook") -> None:
        self.bodies: list[bytes] = []
        self.statuses: list[int] = []
        self.answer = answer or (lambda body: (200, b'{"errcode":0,"errmsg":"ok"}'))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.bodies.append(body)
                status, data = outer.answer(body)
                if outer.statuses:
                    status = outer.statuses.pop(0)
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    @property
    def posts(self) -> list[Any]:
        out = []
        for body in self.bodies:
            try:
                out.append(json.loads(body))
            except ValueError:
                out.append(body)
        return out

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def webhook():
    """A :class:`LocalEndpoint` answering like a WeCom robot that accepts everything."""
    endpoint = LocalEndpoint()
    yield endpoint
    endpoint.close()
