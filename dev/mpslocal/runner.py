"""Event-source runners (dev-only): what Lambda's SQS event source mapping, function URLs and SCF's COS trigger do.

:class:`SqsEventSourceMapping` (Lambda "Using Lambda with Amazon SQS", ``ReportBatchItemFailures``): receive up to
``batch_size`` messages, invoke the handler with the Lambda SQS event shape, delete what succeeded, leave failures
for redelivery after the visibility timeout (the queue's RedrivePolicy moves them to the DLQ after
``maxReceiveCount`` receives). A function error, an invalid ``itemIdentifier`` or a malformed response fails the
whole batch, as on Lambda.

:class:`CosTrigger` (SCF COS trigger 583/9707, async retries 583/39851): for an object put into a COS bucket,
build the COS event (key ``/{appid}/{bucket}/{path}``, short region code) and invoke the handler, retrying twice
on error.
"""
from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, quote, urlsplit

from .runtime import LambdaContext

Handler = Callable[[dict[str, Any], Any], Any]

COS_SHORT_REGION = {"ap-guangzhou": "gz", "ap-shanghai": "sh", "ap-beijing": "bj", "ap-chengdu": "cd",
                    "ap-chongqing": "cq", "ap-hongkong": "hk", "ap-singapore": "sgp"}


@dataclass
class MappingStats:
    invocations: int = 0
    received: int = 0
    deleted: int = 0
    reported_failures: int = 0
    function_errors: int = 0
    delete_failures: int = 0
    max_receive_count: int = 0
    max_invocation_seconds: float = 0.0
    invocation_seconds: float = 0.0  # all invocations together: the function's own time, without the queue's
    errors: list[str] = field(default_factory=list)


class SqsEventSourceMapping:
    """Polls ``queue_url`` and feeds ``handler`` like Lambda does. ``timeout`` is the function timeout (s)."""

    def __init__(self, sqs: Any, queue_url: str, handler: Handler, batch_size: int = 10, timeout: float = 60.0,
                 function_name: str = "SubmitFunction", region: str = "us-east-1", batching_window: float = 0.0,
                 duplicate_rate: float = 0.0, seed: int = 5) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.batching_window = batching_window
        self.duplicate_rate = duplicate_rate
        self._rng = random.Random(seed)
        self.duplicated = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.timeout = timeout
        self.function_name = function_name
        self.region = region
        account, name = queue_url.rstrip("/").split("/")[-2:]
        self.queue_arn = f"arn:aws:sqs:{region}:{account}:{name}"
        self.stats = MappingStats()
        self.bodies: list[str] = []  # every message body handed to the function, for redelivery drills

    def poll_once(self, wait: int = 0) -> int:
        """One receive + invoke + delete cycle; returns the number of messages received.

        Batches above 10 are gathered from several receives within ``batching_window`` seconds, as Lambda does
        with ``MaximumBatchingWindowInSeconds``.
        """
        messages: list[dict[str, Any]] = []
        window_end = time.monotonic() + self.batching_window
        while len(messages) < self.batch_size:
            resp = self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=wait if not messages else 0,
                                            MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                                            AttributeNames=["All"], MessageAttributeNames=["All"])
            got = resp.get("Messages", [])
            messages.extend(got)
            if not got and (not messages or time.monotonic() >= window_end):
                break
            if not got:
                time.sleep(0.05)
        if not messages:
            return 0
        self.stats.received += len(messages)
        self.bodies.extend(m["Body"] for m in messages)
        dupes = [m["Body"] for m in messages if self.duplicate_rate and self._rng.random() < self.duplicate_rate]
        if dupes:  # at-least-once: the same message delivered again later (injected)
            self.duplicated += len(dupes)
            self.redeliver(dupes)
        event = {"Records": [self._record(m) for m in messages]}
        failed = self._invoke(event)
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            chunk = done[i:i + 10]
            resp = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(chunk)])
            for f in resp.get("Failed", []):
                self.stats.delete_failures += 1
                self.stats.errors.append(f"delete failed: {f.get('Code')} {f.get('Message')}")
            self.stats.deleted += len(chunk) - len(resp.get("Failed", []))
        self.stats.max_receive_count = max([self.stats.max_receive_count] + [
            int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)) for m in messages])
        return len(messages)

    def drain(self, idle_rounds: int = 3, max_seconds: float = 120.0) -> MappingStats:
        """Poll until the queue has nothing visible or in flight for ``idle_rounds`` polls (or time runs out)."""
        end = time.monotonic() + max_seconds
        idle = 0
        while time.monotonic() < end and idle < idle_rounds:
            if self.poll_once(wait=0):
                idle = 0
                continue
            idle = idle + 1 if self.pending() == 0 else 0
            time.sleep(0.2)
        return self.stats

    def start(self) -> "SqsEventSourceMapping":
        """Poll in the background until :meth:`stop` (as an enabled event source mapping does)."""
        def loop() -> None:
            while not self._stop.is_set():
                if not self.poll_once(wait=0):
                    self._stop.wait(0.1)
        self._thread = threading.Thread(target=loop, name=f"esm-{self.function_name}", daemon=True)
        self._thread.start()
        return self

    def wait_empty(self, idle_rounds: int = 3, interval: float = 0.3) -> None:
        """While started: return once the queue has had nothing visible or in flight for ``idle_rounds`` checks."""
        idle = 0
        while idle < idle_rounds:
            idle = idle + 1 if self.pending() == 0 else 0
            time.sleep(interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def pending(self) -> int:
        """Messages visible or in flight on the queue."""
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def redeliver(self, bodies: list[str]) -> None:
        """Put ``bodies`` on the queue again: what an at-least-once source does when it delivers twice."""
        for i in range(0, len(bodies), 10):
            self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i:i + 10])])

    def _record(self, m: dict[str, Any]) -> dict[str, Any]:
        return {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn, "awsRegion": self.region}

    def _invoke(self, event: dict[str, Any]) -> set[str]:
        """Invoke; return the messageIds to leave on the queue (all of them on a function error)."""
        all_ids = {r["messageId"] for r in event["Records"]}
        self.stats.invocations += 1
        started = time.monotonic()
        try:
            result = self.handler(event, LambdaContext(self.function_name, self.timeout))
        except Exception as exc:
            self.stats.function_errors += 1
            self.stats.errors.append(f"{type(exc).__name__}: {exc}")
            return all_ids
        finally:
            took = time.monotonic() - started
            self.stats.max_invocation_seconds = max(self.stats.max_invocation_seconds, took)
            self.stats.invocation_seconds += took
        if result is None or result == {} or result.get("batchItemFailures") in (None, []):
            return set()
        ids = [f.get("itemIdentifier") for f in result["batchItemFailures"]]
        if any(not i or i not in all_ids for i in ids):  # Lambda fails the whole batch on an invalid identifier
            self.stats.function_errors += 1
            self.stats.errors.append(f"invalid batchItemFailures {ids}")
            return all_ids
        self.stats.reported_failures += len(ids)
        return set(ids)


@dataclass
class CosInvocation:
    key: str
    attempts: int
    result: Any = None
    error: str | None = None


class CosTrigger:
    """Puts objects into a COS bucket with the real COS SDK and invokes ``handler`` as SCF's COS trigger would."""

    def __init__(self, cos: Any, bucket: str, region: str, handler: Handler, retries: int = 2,
                 function_name: str = "mps-submit") -> None:
        self.cos = cos
        self.bucket = bucket
        self.name, _, self.appid = bucket.rpartition("-")
        self.region = region
        self.handler = handler
        self.retries = retries
        self.function_name = function_name
        self.invocations: list[CosInvocation] = []

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        """Upload ``body`` under ``key`` and deliver the trigger event; returns the event that was delivered."""
        self.cos.put_object(Bucket=self.bucket, Key=key, Body=body)
        return self.deliver(key)

    def deliver(self, key: str) -> dict[str, Any]:
        """(Re)deliver the COS event of ``key`` as it now is in the bucket (a redelivery is the same event)."""
        head = self.cos.head_object(Bucket=self.bucket, Key=key)
        event = self.event(key, int(head.get("Content-Length") or 0), head.get("ETag", ""),
                           head.get("x-cos-request-id") or head.get("x-amz-request-id") or uuid.uuid4().hex)
        self.invoke(event, key)
        return event

    def event(self, key: str, size: int, etag: str, request_id: str) -> dict[str, Any]:
        host = f"{self.bucket}.cos.{self.region}.myqcloud.com"
        return {"Records": [{
            "cos": {"cosBucket": {"appid": self.appid, "name": self.name,
                                  "region": COS_SHORT_REGION.get(self.region, self.region)},
                    "cosNotificationId": "unkown", "cosSchemaVersion": "1.0",
                    "cosObject": {"key": f"/{self.appid}/{self.name}/{key}", "size": str(size), "vid": "",
                                  "url": f"http://{host}/{quote(key)}",
                                  "meta": {"Content-Type": "video/mp4", "ETag": etag, "x-cos-request-id": request_id}}},
            "event": {"eventName": "cos:ObjectCreated:Put", "eventSource": "qcs::cos", "eventVersion": "1.0",
                      "eventTime": int(time.time()), "reqid": 566750263, "reservedInfo": "",
                      "eventQueue": f"qcs:0:lambda:{COS_SHORT_REGION.get(self.region, self.region)}:appid/"
                                    f"{self.appid}:{self.function_name}.{self.function_name}.$LATEST",
                      "requestParameters": {"requestHeaders": {"Authorization": ""}, "requestSourceIP": "127.0.0.1"}}}]}

    def invoke(self, event: dict[str, Any], key: str) -> CosInvocation:
        inv = CosInvocation(key, 0)
        for attempt in range(1 + self.retries):
            inv.attempts = attempt + 1
            context = {"request_id": str(uuid.uuid4()), "function_name": self.function_name,
                       "memory_limit_in_mb": 256, "time_limit_in_ms": 60000}
            try:
                inv.result, inv.error = self.handler(event, context), None
                break
            except Exception as exc:
                inv.error = f"{type(exc).__name__}: {exc}"
        self.invocations.append(inv)
        return inv


class FunctionUrlServer:
    """An HTTP endpoint on 127.0.0.1 that hands every request to ``handler`` as a function-URL event and answers
    with the handler's response dict (``statusCode``, ``headers``, ``body``, ``isBase64Encoded``).

    ``platform="lambda"`` builds the Lambda function URL event (payload 2.0); ``"scf"`` the SCF function URL event
    (``httpMethod``, ``queryString``, ``headers`` with ``x-scf-request-id``). A handler error becomes HTTP 502, as
    on Lambda. Every answer is kept in :attr:`answers` as ``(status, body)``, and each invocation's duration in
    :attr:`durations`. ``timeout`` is the function's timeout: the handler gets a Lambda context (or SCF's dict)
    whose remaining time counts down from it; ``name`` is the function's name in that context.
    """

    def __init__(self, handler: Handler, platform: str = "lambda", timeout: float = 30.0, name: str = "archive") -> None:
        self.handler, self.platform, self.timeout, self.name = handler, platform, timeout, name
        self.answers: list[tuple[int, str]] = []
        self.durations: list[float] = []
        outer = self

        class Http(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, data = outer._invoke(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Http)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="function-url", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def event(self, method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        parts = urlsplit(path)
        hdrs = {k.lower(): v for k, v in headers.items()}
        try:
            text, b64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, b64 = base64.b64encode(body).decode(), True
        rid = str(uuid.uuid4())
        if self.platform == "scf":
            return {"httpMethod": method, "path": parts.path or "/", "body": text, "isBase64Encoded": b64,
                    "queryString": dict(parse_qsl(parts.query, keep_blank_values=True)),
                    "headers": {**hdrs, "x-scf-request-id": rid, "x-scf-remote-addr": "127.0.0.1"}}
        return {"version": "2.0", "routeKey": "$default", "rawPath": parts.path or "/", "rawQueryString": parts.query,
                "headers": hdrs, "queryStringParameters": dict(parse_qsl(parts.query)) or None,
                "requestContext": {"accountId": "anonymous", "apiId": "local", "requestId": rid, "routeKey": "$default",
                                   "stage": "$default", "timeEpoch": int(time.time() * 1000),
                                   "http": {"method": method, "path": parts.path or "/", "protocol": "HTTP/1.1",
                                            "sourceIp": "127.0.0.1", "userAgent": hdrs.get("user-agent", "")}},
                "body": text, "isBase64Encoded": b64}

    def _invoke(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        context: Any = (LambdaContext(self.name, self.timeout) if self.platform == "lambda" else
                        {"request_id": str(uuid.uuid4()), "function_name": self.name,
                         "time_limit_in_ms": int(self.timeout * 1000)})
        started = time.monotonic()
        try:
            resp = self.handler(self.event(method, path, headers, body), context)
        except Exception as exc:
            self.answers.append((502, f"{type(exc).__name__}: {exc}"))
            return 502, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}'
        finally:
            self.durations.append(time.monotonic() - started)
        raw = resp.get("body") or ""
        data = base64.b64decode(raw) if resp.get("isBase64Encoded") else raw.encode("utf-8")
        status = int(resp.get("statusCode", 200))
        self.answers.append((status, data.decode("utf-8", "replace")))
        return status, dict(resp.get("headers") or {}), data
