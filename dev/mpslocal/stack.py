"""The local stack (dev-only): moto in server mode for S3, SQS and COS buckets, plus the MPS emulator.

moto serves COS through the real COS SDK: ``CosConfig(IP=..., Port=..., Scheme="http")`` keeps the real
virtual-host ``Host: {bucket}.cos.{region}.myqcloud.com`` header, and :class:`CosAuthShim` moves the COS
``Authorization`` header (``q-sign-algorithm=sha1&...``) aside, which moto's SigV4-only dispatcher would otherwise
fail on with HTTP 500 (reference/tooling.md §3a). The signature is kept in ``X-Cos-Authorization`` and counted.

Example::

    with LocalStack() as stack:
        s3 = stack.boto3("s3"); cos = stack.cos("ap-guangzhou")
        os.environ.update(stack.environment())     # AWS_ENDPOINT_URL, COS_ENDPOINT_URL, MPS_ENDPOINT, keys
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from .emulator import MpsEmulator

AWS_REGION = "us-east-1"
AWS_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
COS_KEYS = ("AKIDlocalCOS", "local-cos-secret")


class CosAuthShim:
    """WSGI middleware in front of moto.

    - COS: a COS-signed request keeps its signature in ``HTTP_X_COS_AUTHORIZATION``, and moto sees an empty
      ``Authorization`` (which it treats as an authorised unsigned request).
    - COS ``x-cos-forbid-overwrite: true`` on an object PUT (COS API "PUT Object"), which moto does not know, with
      code of its own: the PUT is refused ``409 FileAlreadyExists`` when the key exists, unless the bucket's
      versioning was ever enabled (COS then ignores the header). Check and write are atomic per shim.
    - Faults: ``write_failures`` maps a bucket name to the rate (0..1) at which object PUTs to it are answered
      ``503 SlowDown`` (S3's and COS's "reduce your request rate"), from a seeded RNG. ``stats`` counts them.
    - ``GET /_shim/stats`` answers the counters as JSON (for a moto running in another process).
    """

    def __init__(self, app: Any, write_failures: dict[str, float] | None = None, seed: int = 7) -> None:
        import random

        self.app = app
        self.cos_requests = 0
        self.write_failures = dict(write_failures or {})
        self.stats = {"object_puts": 0, "failed_puts": 0}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth.startswith("q-sign-algorithm="):
            environ["HTTP_X_COS_AUTHORIZATION"] = auth
            environ["HTTP_AUTHORIZATION"] = ""
            self.cos_requests += 1
        if environ.get("PATH_INFO") == "/_shim/stats":
            body = json.dumps({**self.stats, "cos_requests": self.cos_requests}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        bucket = self._object_put_bucket(environ)
        if bucket is not None and environ.get("HTTP_X_COS_FORBID_OVERWRITE", "").lower() == "true":
            with self._lock:  # one forbid-overwrite PUT at a time: exists-check and write are one step, as in COS
                if self._cos_exists_unversioned(bucket, environ):
                    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>FileAlreadyExists</Code>'
                            b"<Message>The object already exists.</Message></Error>")
                    start_response("409 Conflict", [("Content-Type", "application/xml"),
                                                    ("Content-Length", str(len(body)))])
                    return [body]
                return list(self.app(environ, start_response))
        if bucket is not None:
            with self._lock:
                self.stats["object_puts"] += 1
                fail = self._rng.random() < self.write_failures.get(bucket, 0.0)
                self.stats["failed_puts"] += fail
            if fail:
                body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                        b"<Message>Please reduce your request rate.</Message></Error>")
                start_response("503 Slow Down", [("Content-Type", "application/xml"),
                                                 ("Content-Length", str(len(body)))])
                return [body]
        return self.app(environ, start_response)

    @staticmethod
    def _cos_exists_unversioned(bucket: str, environ: dict[str, Any]) -> bool:
        """True when the PUT's key exists in moto's bucket and the bucket's versioning was never enabled."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        key = environ.get("PATH_INFO", "").lstrip("/").encode("latin-1").decode("utf-8")
        if ".cos." not in environ.get("HTTP_HOST", ""):
            key = key.partition("/")[2]
        try:
            if backend.get_bucket(bucket).versioning_status in ("Enabled", "Suspended"):
                return False
            return backend.get_object(bucket, key) is not None
        except Exception:  # no such bucket: moto answers the PUT itself
            return False

    @staticmethod
    def _object_put_bucket(environ: dict[str, Any]) -> str | None:
        """The bucket of an object PUT (path style ``/bucket/key`` or COS virtual host ``bucket.cos.…/key``)."""
        if environ.get("REQUEST_METHOD") != "PUT":
            return None
        host = environ.get("HTTP_HOST", "")
        path = environ.get("PATH_INFO", "").lstrip("/")
        if ".cos." in host:
            return host.split(".cos.")[0] if path else None
        bucket, _, key = path.partition("/")
        return bucket if key else None


class _VisibleMessages:
    """``Queue.messages`` for moto, lazily: iterating filters a snapshot as it goes (ReceiveMessage stops after 10),
    ``len()`` counts them all (ApproximateNumberOfMessages). moto builds the full list on every receive."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def __iter__(self) -> Any:
        return (m for m in list(self._queue._messages) if m.visible and not m.delayed)

    def __len__(self) -> int:
        return _counts(self._queue)[0]


def _counts(queue: Any) -> tuple[int, int, int]:
    """(visible, not visible, delayed) in one pass, cached for 100 ms per queue: SQS documents these counts as
    approximate, and moto recomputes all three, each a full scan, several times per request."""
    now = time.time() * 1000.0
    cached = getattr(queue, "_mpslocal_counts", None)
    if cached is not None and now - cached[0] < 100:
        return cached[1]
    visible = not_visible = delayed = 0
    for m in list(queue._messages):  # moto's own definitions: Message.visible / Message.delayed
        is_visible, is_delayed = now > m.visible_at, now < m.delayed_until
        visible += is_visible and not is_delayed
        not_visible += not is_visible
        delayed += is_delayed
    counts = (visible, not_visible, delayed)
    queue._mpslocal_counts = (now, counts)
    return counts


def _speed_up_moto_sqs() -> None:
    """Make moto's SQS usable with a 10,000-message backlog and concurrent consumers (dev-only).

    Receives, deletes and visibility changes on one queue are serialized: moto's ``Queue.delete_message`` rebuilds
    the message list and assigns it back without a lock, so of two concurrent deletes one was silently undone and
    its message came back a visibility timeout later (2-4 % of a 10,000-message burst with 8 consumers), which SQS
    never does. Duplicate deliveries are injected on purpose instead (``SqsEventSourceMapping(duplicate_rate=...)``).

    moto works out "now" through two datetime constructions for every queued message on every receive
    (``unix_time_millis()``: 0.9 ms per queued message, so one receive on a 1,000-message backlog took 0.9 s), and
    builds the list of every visible message to return 10. For "now" (no argument) ``unix_time`` is exactly
    ``time.time()``; and ``Queue.messages`` is only iterated (until 10 are found) or counted.
    """
    import moto.sqs.models as sqs_models
    from moto.core import utils

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else utils.unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else utils.unix_time_millis(dt)

    sqs_models.unix_time, sqs_models.unix_time_millis = unix_time, unix_time_millis
    backend = sqs_models.SQSBackend
    if not getattr(backend.receive_message, "_mpslocal", False):
        locks: dict[str, threading.RLock] = {}

        def serialized(method: Any) -> Any:
            def wrapper(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
                with locks.setdefault(queue_name, threading.RLock()):
                    return method(self, queue_name, *args, **kwargs)
            wrapper._mpslocal = True  # type: ignore[attr-defined]
            return wrapper

        for name in ("receive_message", "delete_message", "delete_message_batch", "change_message_visibility"):
            setattr(backend, name, serialized(getattr(backend, name)))
    queue = sqs_models.Queue
    queue.messages = property(_VisibleMessages)  # type: ignore[assignment]
    queue.approximate_number_of_messages = property(lambda q: _counts(q)[0])  # type: ignore[assignment]
    queue.approximate_number_of_messages_not_visible = property(lambda q: _counts(q)[1])  # type: ignore[assignment]
    queue.approximate_number_of_messages_delayed = property(lambda q: _counts(q)[2])  # type: ignore[assignment]


class MotoServer:
    """moto in server mode on 127.0.0.1 (threaded werkzeug server), wrapped in :class:`CosAuthShim` and
    :class:`~mpslocal.sqs_move.MessageMoveTasks` (SQS StartMessageMoveTask, which moto lacks)."""

    def __init__(self, port: int = 0, write_failures: dict[str, float] | None = None, host: str = "127.0.0.1"
                 ) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        _speed_up_moto_sqs()

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:  # keep demo and test output readable
                pass

        from .sqs_move import MessageMoveTasks

        self.move_tasks = MessageMoveTasks(DomainDispatcherApplication(create_backend_app))
        self.shim = CosAuthShim(self.move_tasks, write_failures)
        self._server = make_server(host, port, self.shim, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MotoServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class MotoProcess:
    """The same moto server (with the shim) in a child process: heavy benchmarks keep it off this process's GIL.

    ``stats()`` reads the shim's counters over HTTP.
    """

    def __init__(self, write_failures: dict[str, float] | None = None) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "mpslocal.stack", json.dumps(write_failures or {})],
                                      stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "MotoProcess":
        return self

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)

    def stats(self) -> dict[str, int]:
        import httpx

        return httpx.get(self.url + "/_shim/stats", timeout=10).json()


class LocalStack:
    """moto server + MPS emulator, started together; hands out clients and the handler environment."""

    def __init__(self, rate_limit: int | None = 100, latency: float = 0.0, complete_after: float | None = None,
                 write_failures: dict[str, float] | None = None, moto_process: bool = False,
                 host: str = "127.0.0.1", moto_port: int = 0, mps_port: int = 0) -> None:
        """``host``, ``moto_port`` and ``mps_port``: where the servers listen (0.0.0.0 for containers to reach
        them; port 0 picks a free one). Clients here reach them at 127.0.0.1."""
        for k, v in AWS_KEYS.items():
            os.environ.setdefault(k, v)
        os.environ.setdefault("AWS_DEFAULT_REGION", AWS_REGION)
        self.moto: Any = MotoProcess(write_failures) if moto_process else \
            MotoServer(moto_port, write_failures=write_failures, host=host)
        self.mps = MpsEmulator(rate_limit=rate_limit, latency=latency, complete_after=complete_after,
                               sqs_endpoint=self.moto.url, host=host, port=mps_port)

    def start(self) -> "LocalStack":
        self.moto.start()
        self.mps.start()
        return self

    def stop(self) -> None:
        self.mps.stop()
        self.moto.stop()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def boto3(self, service: str, region: str = AWS_REGION) -> Any:
        import boto3

        return boto3.client(service, region_name=region, endpoint_url=self.moto.url)

    def cos(self, region: str = "ap-guangzhou") -> Any:
        """A real ``qcloud_cos.CosS3Client`` whose requests go to moto (virtual-host Host header kept)."""
        from qcloud_cos import CosConfig, CosS3Client

        return CosS3Client(CosConfig(Region=region, SecretId=COS_KEYS[0], SecretKey=COS_KEYS[1], Scheme="http",
                                     IP="127.0.0.1", Port=self.moto.port))

    def environment(self) -> dict[str, str]:
        """What a handler needs to talk to this stack: local endpoints and the emulator's API keys."""
        secret_id, (secret_key, token) = next(iter(self.mps.credentials.items()))
        env = {"AWS_ENDPOINT_URL": self.moto.url, "COS_ENDPOINT_URL": self.moto.url, "MPS_ENDPOINT": self.mps.url,
               "MPS_SECRET_ID": secret_id, "MPS_SECRET_KEY": secret_key, "AWS_DEFAULT_REGION": AWS_REGION, **AWS_KEYS}
        if token:
            env["MPS_SESSION_TOKEN"] = token
        return env


if __name__ == "__main__":  # the child side of MotoProcess: serve until terminated, print the port first
    server = MotoServer(write_failures=json.loads(sys.argv[1]) if len(sys.argv) > 1 else None).start()
    print(server.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
