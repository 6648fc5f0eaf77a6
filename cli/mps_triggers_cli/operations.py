"""``mps-triggers redrive`` (a DLQ's messages back to their queue) and ``replay`` (archived callbacks sent again).

Redrive (SQS API reference: ``StartMessageMoveTask``, ``ListMessageMoveTasks``, ``ListDeadLetterSourceQueues``):
when the DLQ is the dead-letter queue of an SQS queue, SQS itself moves the messages
(``StartMessageMoveTask`` at ``--rate`` messages/s, at most 500), and the command follows the task to its end.
Otherwise (a Lambda or SNS failure destination, ``--to`` another queue, ``--manual``, or an SQS that does not know
the action) it moves them itself: receive (10 at a time, hidden for 60 s) → ``SendMessageBatch`` to the destination
→ ``DeleteMessageBatch`` of exactly the entries that were sent, at ``--rate`` messages/s; a message is never
deleted before its copy was sent, and one that could not be sent reappears in the DLQ. ``--dry-run`` prints the
count and a sample of what the messages hold (object keys of S3 notifications, TaskIds of MPS callbacks), read with
a visibility timeout of 0 so nothing is hidden.

Replay: the archive's callback lines (``ARCHIVE_URI``, or ``--archive``) selected by partition hour
(``--since``/``--until``), ``--event-type``, ``--status``, ``--failed``, ``--task-id``, ``--session-id``, each
notification once (lines deduplicated by ``id``), oldest first. ``--to URL`` POSTs each payload as MPS would
(ParseNotification JSON), signed again with ``MPS_NOTIFY_KEY`` and a fresh ``Timestamp`` (now + 600 s, MPS's
expiry) when one is configured, and with ``?token=`` from ``CALLBACK_TOKEN`` when the URL has none; the archive
job's line ``id`` leaves out ``Timestamp`` and ``Sign``, so replaying into the archive endpoint adds no new ids.
``--push`` sends digests of the selected callbacks to ``WEBHOOK_URL`` (``WEBHOOK_FORMAT``, paced as the function
paces), and ``--failed-pushes`` sends again the digests recorded under ``event_type=push_failed``. ``--dry-run``
prints the count and a sample; the count is what a run sends.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from .common import Progress, UsageError, emit_json, note, table

EPILOG_REDRIVE = """\
examples:
  # how many messages, and what they hold
  mps-triggers redrive https://sqs.us-east-1.amazonaws.com/123456789012/mps-triggers-UploadDLQ --dry-run
  # back to the upload queue at 20 messages/s (SQS StartMessageMoveTask), following the task to its end
  mps-triggers redrive arn:aws:sqs:us-east-1:123456789012:mps-triggers-UploadDLQ --rate 20
  # a Lambda failure destination (no source queue): receive, send, delete into the queue you name
  mps-triggers redrive https://sqs.../submit-failures --to https://sqs.../mps-triggers-UploadQueue --rate 10
"""

EPILOG_REPLAY = """\
examples:
  # what would be sent: yesterday's failed tasks
  mps-triggers replay --since 2026-11-20 --until 2026-11-21 --failed --to https://hooks.example.com/mps --dry-run
  # every callback of one task, to the archive function URL (MPS_NOTIFY_URL by default), re-signed with
  # MPS_NOTIFY_KEY: the archive gains no new line ids
  mps-triggers replay --task-id 1250000000-WorkflowTask-a1b2
  # the chat digests that could not be delivered in an hour, again
  mps-triggers replay --since 2026-11-21T09 --until 2026-11-21T10 --failed-pushes
"""

SAMPLE = 5
"""Messages or callbacks shown by ``--dry-run``."""
NOTIFY_TTL = 600
"""Seconds a re-signed notification stays valid (MPS: send time + 10 minutes)."""


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``redrive`` and ``replay`` to the subcommands."""
    r = sub.add_parser("redrive", help="move a DLQ's messages back to their queue", epilog=EPILOG_REDRIVE,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Move the messages of a dead-letter queue (URL or ARN) back to their source "
                                   "queue: with SQS StartMessageMoveTask when the DLQ belongs to an SQS queue, else "
                                   "receive → send → delete (never deleting a message before its copy was sent).")
    r.add_argument("queue", metavar="QUEUE", help="the DLQ's URL or ARN")
    r.add_argument("--to", metavar="QUEUE", help="the destination queue (URL or ARN); default: the DLQ's source queue")
    r.add_argument("--rate", type=float, default=10.0, metavar="N",
                   help="messages per second (default 10; SQS move tasks allow up to 500)")
    r.add_argument("--manual", action="store_true", help="receive → send → delete even where SQS could move them")
    r.add_argument("--dry-run", action="store_true", help="move nothing; print the count and a sample")
    common(r)

    p = sub.add_parser("replay", help="send archived callbacks again", epilog=EPILOG_REPLAY,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Send archived MPS callbacks again: to a URL as MPS would (re-signed), or as chat "
                                   "digests to WEBHOOK_URL. Selection by partition hour and by the lines' fields.")
    p.add_argument("--archive", metavar="URI", help="the archive (default ARCHIVE_URI)")
    p.add_argument("--since", metavar="TIME", help="UTC date (2026-11-20) or hour (2026-11-20T09), inclusive")
    p.add_argument("--until", metavar="TIME", help="UTC date or hour, exclusive")
    p.add_argument("--event-type", action="append", default=[], metavar="TYPE", help="e.g. WorkflowTask (repeatable)")
    p.add_argument("--status", action="append", default=[], metavar="STATUS", help="e.g. FINISH (repeatable)")
    p.add_argument("--failed", action="store_true", help="only callbacks whose task or a subtask failed")
    p.add_argument("--task-id", action="append", default=[], metavar="ID", help="repeatable")
    p.add_argument("--session-id", action="append", default=[], metavar="ID", help="repeatable")
    to = p.add_mutually_exclusive_group()
    to.add_argument("--to", metavar="URL", help="POST each notification to URL, as MPS would (default: "
                                                 "MPS_NOTIFY_URL, the archive function's URL)")
    to.add_argument("--push", action="store_true", help="send digests of the selected callbacks to WEBHOOK_URL")
    to.add_argument("--failed-pushes", action="store_true",
                    help="send again the digests recorded under event_type=push_failed")
    p.add_argument("--rate", type=float, default=5.0, metavar="N", help="requests per second (default 5)")
    p.add_argument("--digest-size", type=int, default=20, metavar="N", help="callbacks per digest with --push")
    p.add_argument("--dry-run", action="store_true", help="send nothing; print the count and a sample")
    common(p)


# --- redrive -----------------------------------------------------------------------------------------------------

def sqs_client(queue: str) -> Any:
    """A boto3 SQS client in the region a queue URL or ARN names (the environment's region otherwise)."""
    import boto3

    m = re.search(r"(?:sqs[.-]|:sqs:)([a-z]{2}(?:-[a-z]+){1,2}-\d)", queue)
    return boto3.client("sqs", region_name=m.group(1) if m else None)


def _queue_url(sqs: Any, queue: str, what: str) -> tuple[str, str]:
    """``(url, arn)`` of a queue given by URL or ARN. Raises :class:`UsageError` when it does not exist."""
    try:
        if queue.startswith("arn:"):
            parts = queue.split(":")
            if len(parts) != 6 or parts[2] != "sqs":
                raise UsageError(what, f"{queue!r} is not an SQS queue ARN")
            url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        elif queue.startswith(("https://", "http://")):
            url = queue
        else:
            raise UsageError(what, f"{queue!r}: expected a queue URL (https://sqs...) or ARN (arn:aws:sqs:...)")
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    except UsageError:
        raise
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
            raise UsageError(what, f"no such queue: {queue}") from None
        raise UsageError(what, f"{queue}: {type(exc).__name__}: {exc}") from None
    return url, arn


def describe_message(body: str) -> str:
    """What a queued message is about: the object keys of an S3 notification (any envelope the submit function
    reads), the TaskId of an MPS callback, else the start of the body with secrets masked."""
    from mps_triggers.uploads import parse_upload_event

    try:
        parsed = parse_upload_event({"Records": [{"messageId": "m", "body": body, "eventSource": "aws:sqs"}]})
        objects = [o for r in parsed.records for o in r.objects]
        if objects:
            return ", ".join(o.uri for o in objects)
    except Exception:
        pass
    try:
        doc = json.loads(body)
        if isinstance(doc, dict):
            for value in doc.values():
                if isinstance(value, dict) and isinstance(value.get("TaskId"), str):
                    return f"callback {doc.get('EventType')} TaskId {value['TaskId']}"
    except ValueError:
        pass
    from mps_triggers.redaction import scrub

    return scrub(body[:80]) + ("…" if len(body) > 80 else "")


def run_redrive(args: argparse.Namespace) -> int:
    from mps_triggers.retries import RateLimiter

    if not args.rate > 0:
        raise UsageError("--rate", "must be more than 0")
    sqs = sqs_client(args.queue)
    url, arn = _queue_url(sqs, args.queue, "QUEUE")
    sources = sqs.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", [])
    count = int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                ["Attributes"]["ApproximateNumberOfMessages"])
    destination = _queue_url(sqs, args.to, "--to") if args.to else None
    if destination is None and len(sources) == 1:
        destination = _queue_url(sqs, sources[0], "source queue")
    use_task = not args.manual and bool(sources) and (args.to is None or destination[0] in sources)  # type: ignore[index]
    if destination is None:
        raise UsageError("--to", f"{url} is not the DLQ of exactly one SQS queue ({len(sources)} found): name the "
                                 f"destination queue")
    plan = {"queue": url, "messages": count, "destination": destination[0],
            "method": "StartMessageMoveTask" if use_task else "receive-send-delete", "rate": args.rate}
    if args.dry_run:
        sample = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=SAMPLE, VisibilityTimeout=0).get("Messages", [])
        plan["sample"] = [describe_message(m["Body"]) for m in sample]
        if args.fmt == "json":
            emit_json({**plan, "dry_run": True})
        else:
            print(f"Plan: redrive {url} (dry run: nothing is moved)")
            table(["", ""], [["messages", count], ["to", destination[0]], ["with", plan["method"]],
                             ["at", f"{args.rate:g} messages/s"]])
            for line in plan["sample"]:
                print(f"  sample: {line}")
        return 0
    if use_task:
        try:
            moved, failed, status = _move_task(sqs, arn, destination[1] if args.to else None, args, count)
        except _NoMoveTask as exc:
            note(f"StartMessageMoveTask not available here ({exc}): moving the messages with receive → send → delete")
            moved, failed, status = _move_manually(sqs, url, destination[0], RateLimiter(args.rate), count, args)
            plan["method"] = "receive-send-delete"
    else:
        moved, failed, status = _move_manually(sqs, url, destination[0], RateLimiter(args.rate), count, args)
    result = {**plan, "moved": moved, "failed": failed, "status": status}
    if args.fmt == "json":
        emit_json(result)
    else:
        print(f"redrive {url}: {status}")
        table(["", ""], [["moved", moved], ["failed", failed], ["to", destination[0]], ["with", plan["method"]]])
    return 0 if status == "COMPLETED" and not failed else 1


class _NoMoveTask(Exception):
    pass


def _move_task(sqs: Any, arn: str, destination_arn: str | None, args: argparse.Namespace,
               count: int) -> tuple[int, int, str]:
    params: dict[str, Any] = {"SourceArn": arn, "MaxNumberOfMessagesPerSecond": max(1, min(500, int(args.rate)))}
    if destination_arn:
        params["DestinationArn"] = destination_arn
    try:
        sqs.start_message_move_task(**params)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("InvalidAction", "UnknownOperationException", "NotImplemented", "UnsupportedOperation") \
                and "already" not in str(exc):
            raise _NoMoveTask(code) from None
        raise UsageError("QUEUE", f"StartMessageMoveTask: {exc}") from None
    with Progress("redrive", count, ("moved",), enabled=not args.no_progress) as progress:
        while True:
            time.sleep(1.0)
            [task] = sqs.list_message_move_tasks(SourceArn=arn, MaxResults=1)["Results"][:1] or [{}]
            moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
            progress.update(moved - progress.done, moved=moved - progress.counts["moved"])
            if task.get("Status") not in ("RUNNING", "CANCELLING"):
                if task.get("FailureReason"):
                    note(f"move task failed: {task['FailureReason']}")
                return moved, 0, str(task.get("Status", "UNKNOWN"))


def _move_manually(sqs: Any, url: str, destination: str, pace: Any, count: int,
                   args: argparse.Namespace) -> tuple[int, int, str]:
    fifo = destination.endswith(".fifo")
    moved = failed = empty = 0
    with Progress("redrive", count, ("moved", "failed"), enabled=not args.no_progress) as progress:
        while moved + failed < count and empty < 2:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60,
                                        MessageAttributeNames=["All"],
                                        MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"]
                                        ).get("Messages", [])
            if not batch:
                empty += 1
                continue
            empty = 0
            entries = []
            for i, m in enumerate(batch):
                pace.acquire()
                entry: dict[str, Any] = {"Id": str(i), "MessageBody": m["Body"]}
                if m.get("MessageAttributes"):
                    entry["MessageAttributes"] = m["MessageAttributes"]
                if fifo:
                    attrs = m.get("Attributes", {})
                    entry["MessageGroupId"] = attrs.get("MessageGroupId", "redrive")
                    entry["MessageDeduplicationId"] = attrs.get("MessageDeduplicationId") or \
                        hashlib.sha256(m["MessageId"].encode()).hexdigest()
                entries.append(entry)
            try:
                sent = sqs.send_message_batch(QueueUrl=destination, Entries=entries)
            except Exception as exc:  # nothing was sent: every message of the batch reappears in the DLQ
                note(f"send failed: {exc}")
                failed += len(batch)
                progress.update(len(batch), failed=len(batch))
                continue
            ok = [int(e["Id"]) for e in sent.get("Successful", [])]
            if ok:
                sqs.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": batch[i]["ReceiptHandle"]} for i in ok])
            bad = len(batch) - len(ok)
            moved, failed = moved + len(ok), failed + bad
            progress.update(len(batch), moved=len(ok), failed=bad)
    return moved, failed, "COMPLETED"


# --- replay ------------------------------------------------------------------------------------------------------

def parse_time(text: str | None, what: str) -> datetime | None:
    """``2026-11-20`` or ``2026-11-20T09`` (or with minutes) as UTC. Raises :class:`UsageError`."""
    if text is None:
        return None
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text.rstrip("Z"), fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise UsageError(what, f"{text!r}: expected a UTC date (2026-11-20) or hour (2026-11-20T09)")


class ArchiveReader:
    """Reads an archive's lines (``s3://``/``cos://``) through the project's stores, pruned by partition."""

    def __init__(self, settings: Any) -> None:
        from mps_triggers.archive_job import ArchiveJob

        self.job = ArchiveJob(settings)  # the archive function's own store (S3 with the AWS chain, COS with the key)
        self.location = self.job.location
        self.store = self.job.store
        self.uri = self.job.archive_uri

    def keys(self, partitions: set[str] | None, exclude: set[str], since: datetime | None,
             until: datetime | None) -> Iterator[str]:
        from mps_triggers.lines import parse_key

        from .archive import in_range

        for listed in self.store.list(self.location.prefix):  # type: ignore[attr-defined]
            key = parse_key(listed.key, self.location.prefix)  # plain and compacted (.jsonl.gz) objects
            if key is None or not in_range(key, since, until):
                continue
            if key.partition in exclude or (partitions is not None and key.partition not in partitions):
                continue
            yield listed.key

    def lines(self, keys: list[str], threads: int = 16) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(key, line)`` for every line of ``keys``, each ``id`` once."""
        seen: set[str] = set()

        from mps_triggers.lines import object_lines

        def read(key: str) -> list[tuple[str, dict[str, Any]]]:
            out = []
            for raw in object_lines(self.store.get(key) or b"", key.endswith(".gz")):  # type: ignore[attr-defined]
                try:
                    out.append((key, json.loads(raw)))
                except ValueError:
                    continue
            return out

        with cf.ThreadPoolExecutor(threads) as pool:
            for batch in pool.map(read, keys):
                for key, line in batch:
                    lid = line.get("id") if isinstance(line, dict) else None
                    if isinstance(lid, str) and lid not in seen:
                        seen.add(lid)
                        yield key, line


def _selected(line: dict[str, Any], args: argparse.Namespace) -> bool:
    if args.event_type and line.get("event_type") not in args.event_type:
        return False
    if args.status and line.get("status") not in args.status:
        return False
    if args.failed and not line.get("failed"):
        return False
    if args.task_id and line.get("task_id") not in args.task_id:
        return False
    if args.session_id and line.get("session_id") not in args.session_id:
        return False
    return isinstance(line.get("payload"), dict)


def resign(payload: dict[str, Any], notify_key: str | None, now: float | None = None) -> dict[str, Any]:
    """The notification as MPS would send it now: ``Timestamp`` = now + 600 s and ``Sign`` =
    md5(Timestamp + NotifyKey) (ParseNotification) with a NotifyKey; without one, neither field."""
    from mps_triggers.callbacks import expected_sign

    body = {k: v for k, v in payload.items() if k not in ("Timestamp", "Sign")}
    if notify_key:
        ts = int((time.time() if now is None else now) + NOTIFY_TTL)
        body["Timestamp"] = ts
        body["Sign"] = expected_sign(ts, notify_key)
    return body


def run_replay(args: argparse.Namespace) -> int:
    import os

    from mps_triggers.config import load_archive_settings
    from mps_triggers.retries import RateLimiter

    if args.archive:
        os.environ["ARCHIVE_URI"] = args.archive
    settings = load_archive_settings()
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    if since and until and until <= since:
        raise UsageError("--until", "must be after --since")
    if not args.rate > 0:
        raise UsageError("--rate", "must be more than 0")
    target = args.to or (None if args.push or args.failed_pushes else os.environ.get("MPS_NOTIFY_URL"))
    if not (target or args.push or args.failed_pushes):
        raise UsageError("--to", "say where to send: --to URL (or MPS_NOTIFY_URL), --push or --failed-pushes")
    if target:
        if not target.startswith(("https://", "http://")):
            raise UsageError("--to", f"{target!r} is not an http(s) URL")
        if settings.callback_token and "token=" not in target:
            from mps_triggers.routing import with_token
            target = with_token(target, settings.callback_token.get_secret_value())
    if (args.push or args.failed_pushes) and not settings.webhook_url:
        raise UsageError("WEBHOOK_URL", "--push and --failed-pushes send to the configured webhook")
    reader = ArchiveReader(settings)
    if args.failed_pushes:
        keys = list(reader.keys({"push_failed"}, set(), since, until))
        items = [(k, ln) for k, ln in reader.lines(keys) if isinstance(ln.get("body"), dict)]
    else:
        keys = list(reader.keys(None, {"submissions", "push_failed"}, since, until))
        items = [(k, ln) for k, ln in reader.lines(keys) if _selected(ln, args)]
    items.sort(key=lambda kl: str(kl[1].get("received_at") or kl[1].get("failed_at") or ""))
    sends = _push_bodies(items, reader, settings, args) if (args.push or args.failed_pushes) else \
        [(ln, None) for _, ln in items]
    what = "digests" if args.push else "recorded pushes" if args.failed_pushes else "callbacks"
    if args.dry_run:
        sample = [_describe_line(ln) for _, ln in items[:SAMPLE]]
        doc = {"dry_run": True, "archive": reader.uri, "objects_read": len(keys), "callbacks": len(items),
               "to_send": len(sends), "what": what, "sample": sample}
        if args.fmt == "json":
            emit_json(doc)
        else:
            print(f"Plan: replay {len(sends):,} {what} ({len(items):,} lines selected from {len(keys):,} archive "
                  f"objects) to {'the webhook' if args.push or args.failed_pushes else _shown(target)} (dry run)")
            for line in sample:
                print(f"  sample: {line}")
        return 0
    pace = RateLimiter(args.rate)
    sent = failed = 0
    errors: list[str] = []
    notify_key = settings.mps_notify_key.get_secret_value() if settings.mps_notify_key else None
    with Progress("replay", len(sends), ("sent", "failed"), enabled=not args.no_progress) as progress:
        if target:
            import httpx

            with httpx.Client(timeout=10.0) as client:
                for line, _ in sends:
                    pace.acquire()
                    body = json.dumps(resign(line["payload"], notify_key), ensure_ascii=False).encode("utf-8")
                    try:
                        resp = client.post(target, content=body, headers={"Content-Type": "application/json"})
                        ok = 200 <= resp.status_code < 300
                        reason = f"HTTP {resp.status_code}"
                    except httpx.HTTPError as exc:
                        ok, reason = False, type(exc).__name__
                    sent, failed = sent + ok, failed + (not ok)
                    if not ok and len(errors) < 10:
                        errors.append(f"{line.get('task_id')}: {reason}")
                    progress.update(sent=int(ok), failed=int(not ok))
        else:
            from mps_triggers.webhook import WebhookError

            client = reader.job.webhook
            assert client is not None
            for _, body in sends:
                pace.acquire()
                try:
                    _push_paced(client, body)  # type: ignore[arg-type]
                    sent += 1
                    progress.update(sent=1)
                except WebhookError as exc:
                    failed += 1
                    if len(errors) < 10:
                        errors.append(str(exc))
                    progress.update(failed=1)
    doc = {"archive": reader.uri, "what": what, "selected": len(items), "sent": sent, "failed": failed,
           "errors": errors}
    if args.fmt == "json":
        emit_json(doc)
    else:
        print(f"replay: {sent:,} {what} sent, {failed:,} failed")
        for e in errors:
            print(f"  failed: {e}")
    return 1 if failed else 0


def _push_paced(client: Any, body: dict[str, Any]) -> None:
    """Push ``body``, waiting (up to a minute) while the webhook's own pace is full (WeCom: 20 a minute): a replay
    is not a live digest, it can wait for the robot rather than fail."""
    from mps_triggers.webhook import WebhookRateLimitedError

    deadline = time.monotonic() + 65.0
    while True:
        try:
            client.push(body)
            return
        except WebhookRateLimitedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def _push_bodies(items: list[tuple[str, dict[str, Any]]], reader: ArchiveReader, settings: Any,
                 args: argparse.Namespace) -> list[tuple[dict[str, Any] | None, dict[str, Any]]]:
    """The request bodies to push: the recorded ones (``--failed-pushes``), or digests of ``--digest-size``
    callbacks rendered as the archive function renders them (``--push``)."""
    if args.failed_pushes:
        return [(None, ln["body"]) for _, ln in items]
    from mps_triggers.notifications import normalize
    from mps_triggers.webhook import Digest, DigestItem

    size = max(1, args.digest_size)
    out = []
    for start in range(0, len(items), size):
        chunk = [DigestItem(ln["id"], normalize(ln["payload"]), key) for key, ln in items[start:start + size]]
        out.append((None, Digest(chunk, reader.uri).render(settings.webhook_format)))
    return out


def _shown(url: str | None) -> str:
    """A URL without its query (a token never reaches the terminal)."""
    return (url or "").split("?", 1)[0]


def _describe_line(line: dict[str, Any]) -> str:
    if line.get("event_type") == "push_failed":
        return f"push_failed {line.get('failed_at')} covering {len(line.get('covers') or [])} callbacks"
    obj = line.get("object") or {}
    where = f" {obj.get('storage')}://{obj.get('bucket')}/{obj.get('key')}" if obj else ""
    return (f"{line.get('received_at')} {line.get('event_type')} {line.get('task_id')} {line.get('status')}"
            f"{' FAILED' if line.get('failed') else ''}{where}")


COMMANDS = {"redrive": run_redrive, "replay": run_replay}
