"""Per-record processing with bounded concurrency, and the SQS partial-batch response.

Source: Lambda "Handling errors for an SQS event source" (``ReportBatchItemFailures``): the response
``{"batchItemFailures": [{"itemIdentifier": "<messageId>"}]}`` lists exactly the messages to redeliver; an empty
list means all succeeded; an empty or unknown ``itemIdentifier`` fails the whole batch, so it is never produced.

Example::

    outcomes = run_bounded(submit_one, objects, limit=10)   # same order as objects; value or exception
    return sqs_response(["059f36b4-87a3-44ab-83d2-661975830a7d"])
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BoundedRunner:
    """Runs a function over items on at most ``limit`` threads; reused across invocations (create once)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pool: ThreadPoolExecutor | None = None

    def map(self, func: Callable[[T], R], items: Sequence[T]) -> list[R | BaseException]:
        """Apply ``func`` to every item; returns results in item order, an item's exception in place of its result.

        A single item runs inline (no thread hop). ``BaseException`` that is not ``Exception`` (KeyboardInterrupt,
        SystemExit) propagates.
        """
        if len(items) <= 1 or self.limit == 1:
            return [_capture(func, item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="mps-submit")
        return list(self._pool.map(lambda item: _capture(func, item), items))


def _capture(func: Callable[[T], R], item: T) -> R | BaseException:
    try:
        return func(item)
    except Exception as exc:  # every record's failure is kept, never raised past its record
        return exc


def run_bounded(func: Callable[[T], R], items: Sequence[T], limit: int) -> list[R | BaseException]:
    """One-off :meth:`BoundedRunner.map` (creates and discards a pool)."""
    runner = BoundedRunner(limit)
    try:
        return runner.map(func, items)
    finally:
        if runner._pool is not None:
            runner._pool.shutdown(wait=True)


def sqs_response(failed_message_ids: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    """``{"batchItemFailures": [{"itemIdentifier": id}, ...]}``, ids de-duplicated in order; empty ids rejected."""
    ids = list(dict.fromkeys(failed_message_ids))
    if any(not isinstance(i, str) or not i for i in ids):
        raise ValueError("batchItemFailures itemIdentifier must be a non-empty messageId")
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
