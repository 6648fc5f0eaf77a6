"""Chat and webhook digests: one message per invocation summarising its callbacks; a push never decides whether a
callback is acknowledged (that is the archive write's alone).

A :class:`Digest` covers every callback of one invocation (an SQS batch, or one HTTP/MPS-trigger callback): counts
by status, then the failed tasks first with their error, then the others, each with its source object, until the
format's limit; then ``+N more`` and the archive objects that hold every line. Formats (``WEBHOOK_FORMAT``):

- ``wecom``: WeCom group robot ``{"msgtype": "markdown", "markdown": {"content": …}}``, content ≤ 4,096 bytes of
  UTF-8; the robot answers HTTP 200 with ``{"errcode": 0}`` on success, ``45009`` when over its 20 messages per
  minute (WeCom "group robot configuration"). Text from callbacks and keys is made inert: ``< > [ ] @ * & `` and
  backquotes become their full-width forms (``＜ ＞ ［ ］ ＠ ＊ ＆ ｀``), so no key can make a link, a mention
  (``<@all>``) or a font tag; line breaks become spaces.
- ``slack``: Slack incoming webhook ``{"text": …}`` (mrkdwn), ≤ 40,000 characters (longer text is truncated by
  Slack), about one message per second; ``&``, ``<``, ``>`` in user text are escaped as ``&amp;``, ``&lt;``,
  ``&gt;`` (Slack "Formatting text: escaping"), so ``<!channel>`` or ``<url|text>`` in a key stay text.
- ``json``: ``{"kind": "mps-triggers.digest", "callbacks", "counts", "tasks": [summary, …], "more", "archive"}``,
  ≤ 256 KiB.

:class:`WebhookClient` sends with a total budget per attempt (:mod:`mps_triggers.transport`) inside the
invocation's deadline, paced per URL in the container (``WEBHOOK_MAX_PER_MINUTE``; default WeCom 20, Slack 60, json
unpaced), retrying timeouts, network errors and 5xx (:func:`mps_triggers.retries.retry`); only a 2xx answer (and
for WeCom ``errcode`` 0) is delivered. A digest that is not delivered raises :class:`WebhookError`; the archive job
then records it under ``event_type=push_failed`` (:func:`mps_triggers.lines.push_failed_object`).
"""
from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from .exceptions import MpsTriggersError
from .notifications import NormalizedCallback
from .retries import Retry, RetryPolicy, retry
from .safejson import dumps, loads

FORMAT_LIMITS = {"wecom": 4096, "slack": 40000, "json": 256 * 1024}
"""Largest rendered message per format, in bytes: WeCom markdown content, Slack text, the json body."""
FIELD_BYTES = 300
"""Longest rendering of one user-controlled field (a key, an error message, an output path), in bytes."""
MAX_OUTPUTS = 5

_CONTROL = re.compile("[\x00-\x1f\x7f\u0085\u2028\u2029\ud800-\udfff]")
_WECOM = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］", "@": "＠", "*": "＊", "&": "＆", "`": "｀"})
_SLACK = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


# --- errors --------------------------------------------------------------------------------------------------------

class WebhookError(MpsTriggersError):
    """The digest was not delivered (after its retries, or refused): recorded under push_failed, never retried by
    redelivering callbacks. ``attempts`` is the number of POSTs made (0: none was sent)."""

    attempts: int = 0


class WebhookTransientError(WebhookError):
    """A timeout, a network error or an HTTP 5xx: retried within the invocation's deadline."""


class WebhookRateLimitedError(WebhookError):
    """Over the rate: this container's pacing, the robot's ``errcode`` 45009, or HTTP 429. Not retried now."""


class WebhookRefusedError(WebhookError):
    """The endpoint refused the message: an HTTP 3xx or 4xx, or a WeCom ``errcode`` other than 0."""


# --- rendering ------------------------------------------------------------------------------------------------------

def cut(text: str, limit: int = FIELD_BYTES) -> str:
    """``text`` on one line (control characters and line breaks → spaces), at most ``limit`` bytes of UTF-8 (cut
    on a character boundary, ending in ``…``)."""
    text = _CONTROL.sub(" ", text)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def escape(text: str, fmt: str) -> str:
    """``text`` made inert for ``fmt`` (see the module docstring) and cut to :data:`FIELD_BYTES`."""
    text = cut(text)
    if fmt == "wecom":
        return text.translate(_WECOM)
    if fmt == "slack":
        return text.translate(_SLACK)
    return text


@dataclass(frozen=True)
class DigestItem:
    """One archived callback as the digest shows it: what it says, its line ``id`` and its archive object."""

    line_id: str
    callback: NormalizedCallback
    archive_key: str


def _object_text(obj: dict[str, Any] | None) -> str:
    if not obj:
        return "(unknown source)"
    if obj.get("storage") == "url":
        return str(obj.get("url"))
    return f"{obj.get('storage')}://{obj.get('bucket')}/{obj.get('key')}"


def _error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    if isinstance(error.get("subtasks"), list):
        return "; ".join(f"{e.get('subtask')} {e.get('code')} {e.get('message') or ''}".strip()
                         for e in error["subtasks"] if isinstance(e, dict))
    return f"{error.get('code')} {error.get('message') or ''}".strip()


def _state(n: NormalizedCallback) -> str:
    return "FAILED" if n.failed else (n.status or "?")


class Digest:
    """Every callback of one invocation, for one chat message. ``archive`` is the archive's base URI
    (``s3://bucket/``), so the message names where the full lines are."""

    def __init__(self, items: list[DigestItem], archive: str) -> None:
        self.items = items
        self.archive = archive

    def __len__(self) -> int:
        return len(self.items)

    def covers(self) -> list[dict[str, Any]]:
        """What a push-failed line lists: ``{"id", "event_type", "task_id", "status", "failed", "key"}`` each."""
        return [{"id": i.line_id, "event_type": i.callback.event_type, "task_id": i.callback.task_id,
                 "status": i.callback.status, "failed": i.callback.failed, "key": i.archive_key} for i in self.items]

    def counts(self) -> dict[str, int]:
        """Callbacks by state: ``FAILED`` first, then each status in order of appearance."""
        counts: dict[str, int] = {}
        for i in sorted(self.items, key=lambda i: not i.callback.failed):
            state = _state(i.callback)
            counts[state] = counts.get(state, 0) + 1
        return counts

    def objects(self) -> list[str]:
        """The archive objects holding the covered lines, in order, as URIs."""
        return list(dict.fromkeys(self.archive + i.archive_key for i in self.items))

    def ordered(self) -> list[DigestItem]:
        """Failed callbacks first, then the others, each in arrival order."""
        return sorted(self.items, key=lambda i: not i.callback.failed)

    def render(self, fmt: str) -> dict[str, Any]:
        """The request body for ``fmt`` (``wecom``, ``slack``, ``json``), within :data:`FORMAT_LIMITS`."""
        if fmt == "json":
            return self._render_json()
        text = self._render_text(fmt, FORMAT_LIMITS[fmt])
        return {"msgtype": "markdown", "markdown": {"content": text}} if fmt == "wecom" else {"text": text}

    def _render_text(self, fmt: str, limit: int) -> str:
        wecom = fmt == "wecom"
        counts = ", ".join(f'<font color="warning">{n} {s}</font>' if wecom and s == "FAILED" else f"{n} {escape(s, fmt)}"
                           for s, n in self.counts().items())
        head = (f"**MPS task callbacks: {len(self.items)}** ({counts})" if wecom
                else f"*MPS task callbacks: {len(self.items)}* ({counts})")
        rows = [self._row(i.callback, fmt) for i in self.ordered()]
        objects = [escape(o, fmt) for o in self.objects()]

        def tail(more: int) -> str:
            shown = objects[:3]
            where = ", ".join(shown) + (f" (+{len(objects) - 3} more objects)" if len(objects) > 3 else "")
            return (f"+{more} more. " if more else "") + f"Archive: {where}"

        return _fit(head, rows, tail, limit)

    def _row(self, n: NormalizedCallback, fmt: str) -> str:
        state = escape(_state(n), fmt)
        if fmt == "wecom":
            state = f'<font color="warning">{state}</font>' if n.failed else state
        parts = [f"> {escape(n.task_id or '?', fmt)} {state} {escape(_object_text(n.source_object), fmt)}"]
        if n.error:
            parts.append(f"error: {escape(_error_text(n.error), fmt)}")
        elif n.outputs:
            extra = f" (+{len(n.outputs) - 1})" if len(n.outputs) > 1 else ""
            parts.append(f"→ {escape(n.outputs[0], fmt)}{extra}")
        return " ".join(parts)

    def _render_json(self) -> dict[str, Any]:
        limit = FORMAT_LIMITS["json"]
        objects = [cut(o, 1024) for o in self.objects()]
        body: dict[str, Any] = {"kind": "mps-triggers.digest", "callbacks": len(self.items), "counts": self.counts(),
                                "tasks": [], "more": 0, "archive": objects[:100]}
        size = len(dumps(body).encode("utf-8")) + 16  # room for the final value of "more"
        for i in self.ordered():
            task = _summary(i)
            task_size = len(dumps(task).encode("utf-8")) + 1
            if size + task_size > limit:
                break
            body["tasks"].append(task)
            size += task_size
        body["more"] = len(self.items) - len(body["tasks"])
        return body


def _summary(item: DigestItem) -> dict[str, Any]:
    n = item.callback
    return {"id": item.line_id, "event_type": cut(n.event_type), "task_id": cut(n.task_id or ""), "status": n.status,
            "failed": n.failed, "object": _object_text(n.source_object) if n.source_object else None,
            "outputs": [cut(p) for p in n.outputs[:MAX_OUTPUTS]], "outputs_total": len(n.outputs),
            "error": cut(_error_text(n.error)) or None, "session_id": n.session_id, "archive_key": item.archive_key}


def _fit(head: str, rows: list[str], tail: Callable[[int], str], limit: int) -> str:
    """``head``, as many ``rows`` as fit, and ``tail(rows left out)``, joined by newlines, within ``limit`` bytes."""
    size = lambda text: len(text.encode("utf-8"))  # noqa: E731
    head = head if size(head) <= limit // 4 else cut(head, limit // 4)
    worst_tail = size(tail(len(rows))) + 1
    out, used = [head], size(head)
    for row in rows:
        row_size = size(row) + 1
        if used + row_size + worst_tail > limit:
            break
        out.append(row)
        used += row_size
    end = tail(len(rows) - (len(out) - 1))
    text = "\n".join(out + [end])
    if size(text) <= limit:
        return text
    return text.encode("utf-8")[: limit - 3].decode("utf-8", "ignore") + "…"  # never reached: rows were measured


# --- pacing and sending --------------------------------------------------------------------------------------------

class RateLimiter:
    """At most ``per_minute`` acquisitions in any 60-second window (0: unlimited). Thread-safe.

    One per webhook URL per container (:meth:`for_url`): every client of that URL in the container shares it.
    """

    _by_url: dict[str, "RateLimiter"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    @classmethod
    def for_url(cls, url: str, per_minute: int) -> "RateLimiter":
        key = hashlib.sha256(f"{per_minute}\n{url}".encode("utf-8", "surrogatepass")).hexdigest()
        with cls._registry_lock:
            limiter = cls._by_url.get(key)
            if limiter is None:
                limiter = cls._by_url[key] = cls(per_minute)
            return limiter

    def acquire(self, now: float | None = None) -> bool:
        """Take a slot if one is free now; False when ``per_minute`` were taken in the last 60 s."""
        if self.per_minute <= 0:
            return True
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._sent and now - self._sent[0] >= 60.0:
                self._sent.popleft()
            if len(self._sent) >= self.per_minute:
                return False
            self._sent.append(now)
            return True


@dataclass(frozen=True)
class PushResult:
    """A delivered digest: the attempts it took."""

    attempts: int


class WebhookClient:
    """Pushes digests to ``url`` (create once per container). ``timeout`` is the total budget of one attempt in
    seconds; ``max_attempts`` counts attempts of transient failures; ``per_minute`` paces the URL (0: unpaced).

    ``webhook_id`` (12 hex of the URL's sha256) names the webhook in logs and push-failed lines, never the URL.
    """

    def __init__(self, url: str, fmt: str = "json", timeout: float = 5.0, max_attempts: int = 3,
                 per_minute: int = 0) -> None:
        self.url, self.fmt, self.timeout = url, fmt, timeout
        self.policy = RetryPolicy(max_attempts=max_attempts, base=0.2, cap=2.0, max_throttled_attempts=1)
        self.limiter = RateLimiter.for_url(url, per_minute)
        self.webhook_id = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
        self._http: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._http is None:
                from .transport import BudgetedClient  # httpx is imported with the first push, not at cold start

                self._http = BudgetedClient(self.url, max_connections=2)
            return self._http

    def push(self, body: dict[str, Any], deadline: float | None = None) -> PushResult:
        """POST ``body`` (a rendered digest); returns when it was delivered, else raises a :class:`WebhookError`
        carrying the number of ``attempts``.

        ``deadline`` (``time.monotonic()``) bounds every attempt and retry.
        """
        data = dumps(body).encode("utf-8")
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            self._attempt(data, deadline)

        try:
            done = retry(attempt, _classify, self.policy, deadline)
        except WebhookError as exc:
            exc.attempts = attempts
            raise
        return PushResult(done.count)

    def _attempt(self, data: bytes, deadline: float | None) -> None:
        import httpx

        budget = self.timeout if deadline is None else min(self.timeout, deadline - time.monotonic())
        if budget < self.policy.min_attempt:
            raise WebhookTransientError("not sent: no time left in the invocation")
        if not self.limiter.acquire():
            raise WebhookRateLimitedError(f"paced: {self.limiter.per_minute} messages in the last minute from this "
                                          f"container to this webhook")
        try:
            resp = self._client().post(self.url, content=data, headers={"Content-Type": "application/json"},
                                       budget=budget)
        except httpx.TimeoutException as exc:
            raise WebhookTransientError(f"no complete answer within {budget:.1f} s ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise WebhookTransientError(f"network error ({type(exc).__name__})") from None
        status = resp.status_code
        if status == 429:
            raise WebhookRateLimitedError("HTTP 429 Too Many Requests")
        if status >= 500:
            raise WebhookTransientError(f"HTTP {status}")
        if not 200 <= status < 300:
            raise WebhookRefusedError(f"HTTP {status} (only 2xx is delivered)")
        if self.fmt == "wecom":
            try:
                answer = loads(resp.content, max_depth=4)
            except ValueError:
                answer = None
            code = answer.get("errcode") if isinstance(answer, dict) else None
            if code == 45009:
                raise WebhookRateLimitedError("WeCom errcode 45009: the robot's rate limit")
            if code != 0:
                shown = code if isinstance(code, int) and not isinstance(code, bool) else "missing"
                raise WebhookRefusedError(f"WeCom errcode {shown} (only errcode 0 is delivered)")


def _classify(exc: Exception, retried: tuple[str, ...]) -> Retry:
    return Retry.AGAIN if isinstance(exc, WebhookTransientError) else Retry.FAIL
