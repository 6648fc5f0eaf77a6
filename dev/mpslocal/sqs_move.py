"""SQS message move tasks for the local stack: moto 5.2.5 does not implement them (reference/operations.md §2).

WSGI middleware in front of moto that answers the JSON-protocol actions ``AmazonSQS.StartMessageMoveTask``,
``ListMessageMoveTasks`` and ``CancelMessageMoveTask`` with code of its own, following the SQS API reference:

- ``StartMessageMoveTask {SourceArn, DestinationArn?, MaxNumberOfMessagesPerSecond?}`` → ``{TaskHandle}``. The
  source must be a dead-letter queue of an SQS queue (some queue's ``RedrivePolicy.deadLetterTargetArn`` names
  it), else ``InvalidParameterValue``; without ``DestinationArn`` messages go back to that source queue (one source
  queue here: moto does not record which queue a message was dead-lettered from, so several need a destination).
  At most one active task per source queue (``UnsupportedOperation``); the rate is 1 to 500 messages/s (default
  500).
- ``ListMessageMoveTasks {SourceArn, MaxResults?}`` → ``{Results: [{TaskHandle (running only), Status, SourceArn,
  DestinationArn, MaxNumberOfMessagesPerSecond, ApproximateNumberOfMessagesMoved,
  ApproximateNumberOfMessagesToMove, FailureReason, StartedTimestamp}]}``, newest first.
- ``CancelMessageMoveTask {TaskHandle}`` → ``{ApproximateNumberOfMessagesMoved}``.

A task moves what the queue held when it started (``ApproximateNumberOfMessagesToMove``): receive, send to the
destination with the same body and attributes, then delete from the source, so a message is never lost.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

_ACTIONS = {"AmazonSQS.StartMessageMoveTask", "AmazonSQS.ListMessageMoveTasks", "AmazonSQS.CancelMessageMoveTask"}


class _Task:
    def __init__(self, source: str, destination: str, rate: int, to_move: int) -> None:
        self.handle = uuid.uuid4().hex
        self.source, self.destination, self.rate, self.to_move = source, destination, rate, to_move
        self.moved = 0
        self.status = "RUNNING"
        self.failure = ""
        self.started = int(time.time() * 1000)
        self.cancel = threading.Event()

    def doc(self) -> dict[str, Any]:
        d: dict[str, Any] = {"Status": self.status, "SourceArn": self.source, "DestinationArn": self.destination,
                             "MaxNumberOfMessagesPerSecond": self.rate, "ApproximateNumberOfMessagesMoved": self.moved,
                             "ApproximateNumberOfMessagesToMove": self.to_move, "StartedTimestamp": self.started}
        if self.status == "RUNNING":
            d["TaskHandle"] = self.handle
        if self.failure:
            d["FailureReason"] = self.failure
        return d


class MessageMoveTasks:
    """The middleware (see the module docstring); ``app`` is moto's WSGI application."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.tasks: list[_Task] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target not in _ACTIONS:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            params = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except ValueError:
            params = {}
        try:
            status, body = 200, getattr(self, "_" + target.split(".", 1)[1])(params)
        except _SqsError as exc:
            status, body = 400, {"__type": f"com.amazonaws.sqs#{exc.code}", "message": exc.message}
            data = json.dumps(body).encode()
            start_response(f"{status} Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                                      ("x-amzn-query-error", f"AWS.SimpleQueueService.{exc.code};Sender"),
                                                      ("Content-Length", str(len(data)))])
            return [data]
        data = json.dumps(body).encode()
        start_response(f"{status} OK", [("Content-Type", "application/x-amz-json-1.0"),
                                        ("Content-Length", str(len(data)))])
        return [data]

    # --- the actions ---------------------------------------------------------------------------------------------

    def _StartMessageMoveTask(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 (the API's name)
        backend, source = self._queue(p.get("SourceArn"), "SourceArn")
        origins = [q for q in backend.queues.values() if _dlq_arn(q) == source.queue_arn]
        if not origins:
            raise _SqsError("InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue.")
        if p.get("DestinationArn"):
            _, destination = self._queue(p["DestinationArn"], "DestinationArn")
        elif len(origins) == 1:
            destination = origins[0]
        else:
            raise _SqsError("InvalidParameterValue", "the DLQ has several source queues: give DestinationArn "
                                                     "(the local stack does not record each message's origin)")
        rate = p.get("MaxNumberOfMessagesPerSecond", 500)
        if not isinstance(rate, int) or not 1 <= rate <= 500:
            raise _SqsError("InvalidParameterValue", "MaxNumberOfMessagesPerSecond must be between 1 and 500")
        with self._lock:
            if any(t.source == source.queue_arn and t.status == "RUNNING" for t in self.tasks):
                raise _SqsError("UnsupportedOperation", "There is already a task running. Only one active task is "
                                                        "allowed for a source queue arn at a given time.")
            task = _Task(source.queue_arn, destination.queue_arn, rate,
                         int(source.approximate_number_of_messages))
            self.tasks.append(task)
        threading.Thread(target=self._move, args=(backend, source, destination, task), daemon=True,
                         name="sqs-move").start()
        return {"TaskHandle": task.handle}

    def _ListMessageMoveTasks(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        _, source = self._queue(p.get("SourceArn"), "SourceArn")
        limit = p.get("MaxResults", 1)
        with self._lock:
            mine = [t.doc() for t in reversed(self.tasks) if t.source == source.queue_arn]
        return {"Results": mine[: max(1, min(int(limit), 10))]}

    def _CancelMessageMoveTask(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        with self._lock:
            task = next((t for t in self.tasks if t.handle == p.get("TaskHandle") and t.status == "RUNNING"), None)
        if task is None:
            raise _SqsError("ResourceNotFoundException", "The resource that you specified for the TaskHandle "
                                                         "parameter does not exist.")
        task.status = "CANCELLING"
        task.cancel.set()
        return {"ApproximateNumberOfMessagesMoved": task.moved}

    # --- the work --------------------------------------------------------------------------------------------------

    def _move(self, backend: Any, source: Any, destination: Any, task: _Task) -> None:
        interval, next_slot = 1.0 / task.rate, time.monotonic()
        try:
            while task.moved < task.to_move and not task.cancel.is_set():
                batch = backend.receive_message(source.name, min(10, task.to_move - task.moved), 0, 30)
                if not batch:
                    break
                for message in batch:
                    next_slot = max(next_slot + interval, time.monotonic())
                    time.sleep(max(0.0, next_slot - time.monotonic()))
                    backend.send_message(destination.name, message.body,
                                         message_attributes=message.message_attributes or None,
                                         group_id=getattr(message, "group_id", None),
                                         deduplication_id=getattr(message, "deduplication_id", None),
                                         validate_group_id=False)
                    backend.delete_message(source.name, message.receipt_handle)
                    task.moved += 1
            task.status = "CANCELLED" if task.cancel.is_set() else "COMPLETED"
        except Exception as exc:  # a task that fails says why, as SQS does
            task.status, task.failure = "FAILED", f"{type(exc).__name__}: {exc}"

    @staticmethod
    def _queue(arn: Any, field: str) -> tuple[Any, Any]:
        from moto.sqs.models import sqs_backends

        parts = arn.split(":") if isinstance(arn, str) else []
        if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"]:
            raise _SqsError("InvalidParameterValue", f"{field} is not an SQS queue ARN")
        _, _, _, region, account, name = parts
        backend = sqs_backends[account][region]
        queue = backend.queues.get(name)
        if queue is None:
            raise _SqsError("ResourceNotFoundException", f"The specified queue does not exist: {name}")
        return backend, queue


def _dlq_arn(queue: Any) -> str | None:
    policy = getattr(queue, "redrive_policy", None)
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return None
    return policy.get("deadLetterTargetArn") if isinstance(policy, dict) else None


class _SqsError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
