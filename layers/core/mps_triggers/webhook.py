"""Webhook push: a short summary of every notification (any EventType) to a chat or an HTTP endpoint.

Formats (``WEBHOOK_FORMAT``):

- ``wecom``: WeCom group robot, ``{"msgtype": "markdown", "markdown": {"content": "..."}}``; the robot answers
  HTTP 200 with ``{"errcode": 0}`` on success (errcode 45009 = rate limited, retried)
- ``slack``: Slack incoming webhook, ``{"text": "..."}`` (mrkdwn)
- ``json``: the summary object itself (:func:`summary`)

The push is sent with httpx and awaited (Tencent's "MPS Webhook" template fired it without waiting and lost it
when the function froze); 5xx, 429, timeouts and network errors are retried with backoff; a push that still
fails raises :class:`WebhookError`, which fails the record so the platform delivers it again.
"""
from __future__ import annotations

import random
import time
from typing import Any

from .callbacks import NormalizedCallback
from .exceptions import MpsTriggersError

MAX_OUTPUTS = 5


class WebhookError(MpsTriggersError):
    """The webhook push failed after its retries (or was refused with a 4xx)."""


def summary(n: NormalizedCallback, archive_key: str | None = None) -> dict[str, Any]:
    """``{event_type, task_id, status, failed, object, outputs (≤ 5), outputs_total, error, session_id,
    archive_key}`` — the ``json`` format, and what the chat formats render."""
    return {"event_type": n.event_type, "task_id": n.task_id, "status": n.status, "failed": n.failed,
            "object": n.source_object, "outputs": n.outputs[:MAX_OUTPUTS], "outputs_total": len(n.outputs),
            "error": n.error, "session_id": n.session_id, "archive_key": archive_key}


def _object_text(obj: dict[str, Any] | None) -> str:
    if not obj:
        return "(unknown source)"
    if obj.get("storage") == "url":
        return str(obj.get("url"))
    return f"{obj.get('storage')}://{obj.get('bucket')}/{obj.get('key')}"


def render(n: NormalizedCallback, fmt: str, archive_key: str | None = None) -> dict[str, Any]:
    """The request body for ``fmt`` (``wecom``, ``slack`` or ``json``)."""
    s = summary(n, archive_key)
    if fmt == "json":
        return s
    state = "FAILED" if n.failed else (n.status or "?")
    if fmt == "wecom":
        colour = "warning" if n.failed else "info"
        lines = [f"**MPS {n.event_type}** <font color=\"{colour}\">{state}</font>",
                 f"> TaskId: {n.task_id}", f"> Source: {_object_text(n.source_object)}"]
    else:
        lines = [f"*MPS {n.event_type}* {state}", f"TaskId: `{n.task_id}`", f"Source: {_object_text(n.source_object)}"]
    if n.error:
        lines.append(f"Error: {_error_text(n.error)}")
    for path in s["outputs"]:
        lines.append(f"Output: {path}")
    if s["outputs_total"] > MAX_OUTPUTS:
        lines.append(f"(+{s['outputs_total'] - MAX_OUTPUTS} more outputs)")
    text = "\n".join(lines)
    if fmt == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text[:4000]}}
    return {"text": text[:3000]}


def _error_text(error: dict[str, Any]) -> str:
    if "subtasks" in error:
        return "; ".join(f"{e['subtask']} {e.get('code')} {e.get('message') or ''}".strip() for e in error["subtasks"])
    return f"{error.get('code')} {error.get('message') or ''}".strip()


class WebhookClient:
    """Pushes rendered summaries to ``url`` with one reusable ``httpx.Client`` (create once per container)."""

    def __init__(self, url: str, fmt: str = "json", timeout: float = 5.0, max_attempts: int = 3) -> None:
        import httpx

        self._httpx = httpx
        self.url, self.fmt, self.max_attempts = url, fmt, max_attempts
        self._http = httpx.Client(timeout=timeout, headers={"User-Agent": "mps-triggers/0.1"})

    def push(self, n: NormalizedCallback, archive_key: str | None = None) -> int:
        """Send the summary of ``n``; returns the attempts it took. Raises :class:`WebhookError`."""
        body = render(n, self.fmt, archive_key)
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            retry, problem = self._send_once(body)
            if not problem:
                return attempt
            if not retry or attempt == self.max_attempts:
                break
            time.sleep(random.uniform(0, min(2.0, 0.2 * 2 ** attempt)))
        raise WebhookError(f"webhook push failed after {attempt} attempt(s): {problem}")

    def _send_once(self, body: dict[str, Any]) -> tuple[bool, str]:
        """One POST: ``(worth retrying, problem)``; problem is '' on success."""
        httpx = self._httpx
        try:
            resp = self._http.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            return True, f"timeout ({type(exc).__name__})"
        except httpx.TransportError as exc:
            return True, f"network error ({type(exc).__name__}: {exc})"
        if resp.status_code >= 500 or resp.status_code == 429:
            return True, f"HTTP {resp.status_code}"
        if resp.status_code >= 400:
            return False, f"HTTP {resp.status_code}: {resp.text[:200]}"
        if self.fmt == "wecom":
            try:
                code = resp.json().get("errcode", 0)
            except ValueError:
                code = 0
            if code:
                return code == 45009, f"WeCom errcode {code}: {resp.text[:200]}"
        return False, ""
