"""Claims: exactly-once submission for an MPS action that has no SessionId (BatchProcessMedia).

ProcessMedia deduplicates by ``SessionId``; BatchProcessMedia (API 2019-06-12) has no such parameter, so a record
delivered twice would start two tasks. Before it sends the request, the submit job claims the object's SessionId
with a marker object that only one writer can create (:meth:`~mps_triggers.storage.ConditionalStore.create`: S3
``If-None-Match: *``, COS ``x-cos-forbid-overwrite``), under the archive location::

    {archive prefix}claims/{action}/{session_id}/{generation:04d}.json

A marker is JSON: ``{"v": 1, "action", "session_id", "generation", "state", "token", "claimed_at", "lease_until",
"holder", "object", "route", "task_id", "mps_request_id", "reason"}``. Its ``state``:

- ``claimed``: an invocation holds it until ``lease_until`` (UNIX seconds: its own deadline plus
  :data:`CLOCK_SKEW`, after which the platform has stopped it);
- ``submitted``: MPS accepted the request; ``task_id`` is the BatchTask's id (the archive job reads it here, since a
  ``BatchTask`` callback does not carry it);
- ``released``: the request failed and MPS surely did not act on it;
- ``uncertain``: the request may have been acted on (a timeout after sending); held like ``claimed``.

:meth:`ClaimBook.claim` creates generation 0; when that exists it reads it: ``submitted`` → :class:`Taken` (a
duplicate), ``claimed``/``uncertain`` within its lease → :class:`Busy` (the record is delivered again later), and
``released`` or a lease that ran out (the holder crashed between claim and request) → the next generation, which
again only one writer can create. So a redelivered or concurrently duplicated record is submitted once; the one
window left is a crash after MPS accepted and before ``submitted`` was written (one PUT), or an ``uncertain``
outcome: the next delivery after the lease submits again, and says so in the log (at least once, never lost).

Example::

    book = ClaimBook(store, "archive/", "BatchProcessMedia")
    outcome = book.claim(sid, lease_until=time.time() + 60, details={"route": "subs"})
    if isinstance(outcome, Claim):
        book.submitted(outcome, task_id="…-BatchTask-…", request_id="…")     # or book.release(outcome, "InternalError")
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from .exceptions import MpsTriggersError
from .logs import log
from .retries import call_within
from .storage import ConditionalStore, StorageError

CLAIM_DIR = "claims/"
CLOCK_SKEW = 5.0
"""Seconds added to a claimant's deadline before its lease runs out (clocks of two containers may differ)."""
UNBOUNDED_LEASE = 900.0
"""Lease (seconds) of a claim taken without a deadline: Lambda's longest timeout."""
MAX_GENERATIONS = 64
"""Claims of one SessionId before it is refused: each generation is a failed or crashed attempt."""
IO_TIMEOUT = 10.0
"""Longest one claim read or write may take (seconds), within the caller's deadline."""
HELD = ("claimed", "uncertain")


class ClaimError(MpsTriggersError):
    """The claim could not be decided: too many generations, or a marker that is not ours to read."""


@dataclass(frozen=True)
class Claim:
    """This invocation holds the SessionId: send the request, then :meth:`ClaimBook.submitted` or ``release``."""

    session_id: str
    key: str
    generation: int
    doc: dict[str, Any]


@dataclass(frozen=True)
class Taken:
    """The SessionId was submitted before: ``task_id`` (None if the marker lacks it) and the marker's ``key``."""

    session_id: str
    key: str
    task_id: str | None


@dataclass(frozen=True)
class Busy:
    """Another invocation (``holder``) holds the SessionId until ``lease_until`` (UNIX seconds)."""

    session_id: str
    key: str
    lease_until: float
    holder: str | None


class ClaimBook:
    """Claims of one ``action`` in ``store`` under ``prefix`` (the archive prefix: '' or ending in '/').

    Every read and write is bounded by ``deadline`` (``time.monotonic()``) and :data:`IO_TIMEOUT`; failures raise
    :class:`~mps_triggers.storage.StorageError` (or TimeoutError), which fail the record so it is delivered again.
    """

    def __init__(self, store: ConditionalStore, prefix: str, action: str) -> None:
        self.store = store
        self.base = f"{prefix}{CLAIM_DIR}{action}/"
        self.action = action

    def key(self, session_id: str, generation: int) -> str:
        return f"{self.base}{session_id}/{generation:04d}.json"

    # --- submit side --------------------------------------------------------------------------------------------

    def claim(self, session_id: str, lease_until: float, details: dict[str, Any] | None = None,
              deadline: float | None = None) -> Claim | Taken | Busy:
        """Claim ``session_id`` until ``lease_until`` (UNIX seconds). ``details`` (holder, object, route) go into
        the marker. Returns :class:`Claim` (ours), :class:`Taken` or :class:`Busy`; raises :class:`ClaimError`
        after :data:`MAX_GENERATIONS`, StorageError/TimeoutError when the store fails."""
        token = uuid.uuid4().hex
        for generation in range(MAX_GENERATIONS):
            key = self.key(session_id, generation)
            doc = {"v": 1, "action": self.action, "session_id": session_id, "generation": generation,
                   "state": "claimed", "token": token, "claimed_at": time.time(), "lease_until": lease_until,
                   **(details or {})}
            if self._io(lambda: self.store.create(key, _encode(doc)), deadline, "claim"):
                return Claim(session_id, key, generation, doc)
            found = self._read(key, deadline)
            if found is None:  # gone between the two calls (a lifecycle rule): try this generation again, once
                if self._io(lambda: self.store.create(key, _encode(doc)), deadline, "claim"):
                    return Claim(session_id, key, generation, doc)
                found = self._read(key, deadline) or {}
            if found.get("token") == token:  # our own create, retried inside the SDK after a lost answer
                return Claim(session_id, key, generation, doc)
            state = found.get("state")
            if state == "submitted":
                return Taken(session_id, key, found.get("task_id") if isinstance(found.get("task_id"), str) else None)
            lease = _number(found.get("lease_until"))
            if state in HELD and lease is not None and lease > time.time():
                return Busy(session_id, key, lease, str(found.get("holder") or "") or None)
            if state in HELD:
                log("warning", "claim taken over", session_id=session_id, key=key, state=state,
                    reason="the holder's lease ran out without a result: it stopped between claim and answer; "
                           + ("its request may have reached MPS, so this object may be processed twice"
                              if state == "uncertain" else "submitting now"))
            elif state != "released":
                log("warning", "claim unreadable", session_id=session_id, key=key,
                    reason="not a claim marker of this version: taking the next generation")
        raise ClaimError(f"{session_id}: {MAX_GENERATIONS} claims, each released or abandoned: not submitting "
                         f"again (see {self.base}{session_id}/)")

    def submitted(self, claim: Claim, task_id: str | None, request_id: str | None, deadline: float | None = None
                  ) -> None:
        """Mark ``claim`` submitted with the BatchTask's ``task_id``. Raises StorageError/TimeoutError (the caller
        logs it: the task exists either way)."""
        self._write(claim, {"state": "submitted", "task_id": task_id, "mps_request_id": request_id,
                            "submitted_at": time.time()}, deadline)

    def release(self, claim: Claim, reason: str, deadline: float | None = None) -> None:
        """Give ``claim`` up: the request failed and MPS did not act on it, so the next delivery may submit."""
        self._write(claim, {"state": "released", "reason": reason[:500], "released_at": time.time()}, deadline)

    def uncertain(self, claim: Claim, reason: str, deadline: float | None = None) -> None:
        """Keep ``claim`` held until its lease ends: the request may have started a task whose id never came back."""
        self._write(claim, {"state": "uncertain", "reason": reason[:500]}, deadline)

    # --- archive side ------------------------------------------------------------------------------------------

    def task_id(self, session_id: str, deadline: float | None = None) -> str | None:
        """The TaskId of ``session_id``'s submitted claim; None when there is none, or several (a lapsed
        ``uncertain`` claim taken over: which task a callback belongs to cannot be told)."""
        found: list[str] = []
        for generation in range(MAX_GENERATIONS):
            doc = self._read(self.key(session_id, generation), deadline)
            if doc is None:
                break
            if doc.get("state") == "submitted" and isinstance(doc.get("task_id"), str):
                found.append(doc["task_id"])
        return found[0] if len(found) == 1 else None

    # --- I/O ---------------------------------------------------------------------------------------------------

    def _write(self, claim: Claim, changes: dict[str, Any], deadline: float | None) -> None:
        doc = {**claim.doc, **changes}
        self._io(lambda: self.store.put(claim.key, _encode(doc)), deadline, "claim update")

    def _read(self, key: str, deadline: float | None) -> dict[str, Any] | None:
        data = self._io(lambda: self.store.get(key), deadline, "claim read")
        if data is None:
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    @staticmethod
    def _io(func: Callable[[], Any], deadline: float | None, what: str) -> Any:
        timeout = IO_TIMEOUT if deadline is None else min(IO_TIMEOUT, deadline - time.monotonic())
        return call_within(func, timeout, what)


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


__all__ = ["Busy", "Claim", "ClaimBook", "ClaimError", "StorageError", "Taken"]
