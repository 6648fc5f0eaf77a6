"""Bounded waits and retries: the deadline rules both jobs and both HTTP clients (MPS, webhook) share.

**Retries.** :class:`RetryPolicy` (capped exponential backoff with full jitter, AWS Architecture Blog "Exponential
Backoff And Jitter") and :func:`retry` serve the MPS client and the webhook client alike: ``classify`` tells, for
each error, whether to give up, retry it (counted against ``max_attempts``) or retry it as throttling (counted
against ``max_throttled_attempts``); no retry starts when its wait plus ``min_attempt`` would pass the deadline.

**Bounded SDK calls.** boto3 and the COS SDK take per-operation timeouts and retry inside; :func:`call_within`
runs such a call on a helper thread and stops waiting at the deadline (the call may still finish later; the
caller reports the record as not done and the platform delivers it again, which the archive's deterministic keys
and line ids make harmless).

Example::

    done = retry(lambda: client.send(body), classify, RetryPolicy(max_attempts=3), deadline=invocation.call_deadline())
    call_within(lambda: store.put(key, data), timeout=invocation.within(20.0), what="archive write")
"""
from __future__ import annotations

import random
import threading
from collections import deque
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class Retry(Enum):
    """What to do about one failed attempt (the answer of a ``classify`` function)."""

    FAIL = "fail"            # give up: raise the error
    AGAIN = "again"          # transient: retry, counted against max_attempts
    THROTTLED = "throttled"  # a rate limit that frees within a second: retry, counted against max_throttled_attempts


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter: retry n waits ``uniform(0, min(cap, base * 2**n))`` seconds.

    Retries stop after ``max_attempts`` attempts (throttled ones apart, up to ``max_throttled_attempts``), or
    earlier when the next wait plus ``min_attempt`` seconds would pass the call's deadline.
    """

    max_attempts: int = 6
    base: float = 0.1
    cap: float = 2.0
    max_throttled_attempts: int = 30
    min_attempt: float = 0.1

    def delay(self, retry_number: int) -> float:
        return random.uniform(0, min(self.cap, self.base * (2 ** retry_number)))


@dataclass(frozen=True)
class Attempts:
    """A call that succeeded: its ``value``, the ``count`` of attempts, and the labels of the errors retried."""

    value: Any
    count: int
    retried: tuple[str, ...] = ()


def retry(attempt: Callable[[], T], classify: Callable[[Exception, tuple[str, ...]], Retry],
          policy: RetryPolicy, deadline: float | None = None,
          label: Callable[[Exception], str] = lambda e: type(e).__name__, paced: bool = False) -> Attempts:
    """Call ``attempt`` until it succeeds, ``classify(error, retried_so_far)`` says :attr:`Retry.FAIL`, the
    attempts run out, or the next try would pass ``deadline`` (``time.monotonic()``); then raise the last error.
    Exceptions ``classify`` does not know should be answered with FAIL. ``paced``: ``attempt`` waits for a slot of
    an :class:`AdaptiveWindow` itself, so a throttled attempt is tried again without a backoff of its own."""
    retried: list[str] = []
    count = throttled = 0
    while True:
        count += 1
        try:
            return Attempts(attempt(), count, tuple(retried))
        except Exception as exc:
            verdict = classify(exc, tuple(retried))
            if verdict is Retry.FAIL:
                raise
            throttled += verdict is Retry.THROTTLED
            if count - throttled >= policy.max_attempts or throttled >= policy.max_throttled_attempts:
                raise
            wait = 0.0 if paced and verdict is Retry.THROTTLED else policy.delay(count - 1)
            if deadline is not None and time.monotonic() + wait + policy.min_attempt > deadline:
                raise
            retried.append(label(exc))
            time.sleep(wait)
            if deadline is not None and time.monotonic() + policy.min_attempt > deadline:
                raise  # the sleep overran (a loaded host): the last real error, not an unsent attempt's


class RateLimiter:
    """At most ``rate`` calls per second for one container (thread-safe): a token bucket of depth one. Slots are
    ``1 / rate`` seconds apart, and never more than ``rate`` (rounded down, at least 1) :meth:`acquire` calls return
    within any one second, counted when they return (threads that woke late cannot bunch their calls).

    A container alone cannot exceed a documented API limit this way; the fleet can, and its throttled requests are
    retried with backoff. ``mps-triggers backfill --rate`` paces every request, retries included, with one.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.per_second = max(1, int(rate))
        self._next = 0.0
        self._released: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self, deadline: float | None = None) -> bool:
        """Wait for a slot; False (and no slot taken) when the slot would come after ``deadline``
        (``time.monotonic()``). Slots follow one schedule, ``1 / rate`` apart (a late wake-up does not push the
        later slots back); a release that would be the ``rate + 1``-th within one second waits for the oldest one
        to age out."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            if deadline is not None and slot > deadline:
                return False
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
        while True:
            with self._lock:
                now = time.monotonic()
                while self._released and now - self._released[0] >= 1.0:
                    self._released.popleft()
                if len(self._released) < self.per_second:
                    self._released.append(now)
                    return True
                wait = self._released[0] + 1.0 - now
            if deadline is not None and now + wait > deadline:
                return False
            time.sleep(wait)


class AdaptiveWindow:
    """How many requests of one action this container lets into MPS's one-second window: at most ``allowance`` of
    its own sends in any sliding second, the allowance learned from MPS's answers (thread-safe; one per action per
    container, no shared store).

    MPS counts an action's requests per account in a sliding second (ProcessMedia API 2019-06-12: "a maximum of 100
    requests can be initiated per second"; ``RequestLimitExceeded`` beyond). Each container applies the same rule to
    its own sends, with an allowance set the way TCP sets its window, the second being the round trip:

    - :meth:`congested` (a throttled request whose immediate resend was throttled too: the window is full, not a
      random refusal) multiplies the allowance by ``beta`` (0.7), at most once a second, never below ``floor``;
    - :meth:`accepted` adds ``increase / allowance`` while the allowance bound in the last second (about
      ``increase`` per second per container), never above ``ceiling`` (the action's documented limit).

    A fleet of N containers grows by about N × ``increase`` per second and cuts together when MPS's window is full,
    so it converges under the account's limit without knowing N. The immediate resend that tells congestion from a
    random refusal does not take a slot (the caller skips :meth:`acquire` for it).

    ``start`` is the first allowance (5 for a function's container: five sends in its first second), ``increase``
    in requests per second per second. Raises ``ValueError`` for non-positive settings.
    """

    def __init__(self, ceiling: float, start: float = 5.0, increase: float = 1.0, beta: float = 0.7,
                 floor: float = 1.0) -> None:
        if not (0 < floor <= ceiling and increase > 0 and 0 < beta < 1):
            raise ValueError("need 0 < floor <= ceiling, increase > 0 and 0 < beta < 1")
        self.ceiling, self.increase, self.beta, self.floor = float(ceiling), float(increase), beta, float(floor)
        self.allowance = min(self.ceiling, max(self.floor, float(start)))
        self.congestions = 0
        self._sent: deque[float] = deque()
        self._bound = self._cut = -1e9
        self._lock = threading.Lock()

    def acquire(self, deadline: float | None = None) -> bool:
        """Wait until fewer than ``allowance`` (rounded down, at least 1) of this container's sends are less than a
        second old, then count one more; False (nothing counted) when that would come after ``deadline``
        (``time.monotonic()``)."""
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= 1.0:
                    self._sent.popleft()
                if len(self._sent) < max(1, int(self.allowance)):
                    self._sent.append(now)
                    return True
                self._bound = now
                wait = self._sent[0] + 1.0 - now
            if deadline is not None and now + wait > deadline:
                return False
            time.sleep(wait)

    def accepted(self) -> None:
        """MPS admitted a request (a result, or a duplicate SessionId's error): grow while the allowance is what held
        sends back."""
        with self._lock:
            if time.monotonic() - self._bound < 1.0:
                self.allowance = min(self.ceiling, self.allowance + self.increase / self.allowance)

    def congested(self) -> None:
        """MPS's window was full: cut the allowance by ``beta``, once per second at most (one full window is one
        event however many requests it refused)."""
        with self._lock:
            self.congestions += 1
            now = time.monotonic()
            if now - self._cut >= 1.0:
                self._cut = now
                self.allowance = max(self.floor, self.allowance * self.beta)


def call_within(func: Callable[[], T], timeout: float, what: str = "call") -> T:
    """Run ``func`` on a helper thread and wait at most ``timeout`` seconds for it.

    Returns its value or re-raises its exception; raises :class:`TimeoutError` when it has not finished in time
    (or ``timeout`` ≤ 0: then it is not started). The thread is a daemon: an abandoned call never holds the process.
    """
    if timeout <= 0:
        raise TimeoutError(f"{what} not started: no time left in the invocation")
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"bounded-{what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"{what} did not finish within {timeout:.1f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
