"""A local chat robot (dev-only): what a WeCom group robot or a Slack incoming webhook accepts, and how it refuses.

WeCom group robot ("群机器人配置说明"): ``POST /cgi-bin/webhook/send?key=KEY`` with ``{"msgtype": "markdown",
"markdown": {"content": ...}}``; the answer is always HTTP 200 with ``{"errcode", "errmsg"}``: 0 delivered, 93000
unknown key, 40058 content over 4,096 bytes of UTF-8, 45009 more than 20 messages in a minute, 40008 not markdown.
It renders ``<@userid>`` as a mention and ``[text](url)`` as a link.

Slack incoming webhook: ``POST /services/...`` with ``{"text": ...}``; ``200 ok``; 400 ``invalid_payload``; 429 with
``Retry-After`` beyond about one message per second; ``<!channel>``, ``<!here>``, ``<@U…>`` and ``<url|text>`` are
control sequences.

The robot applies these rules with its own code (never the project's) and records every request: what it
delivered (:attr:`ChatRobot.delivered`, with the time), what it refused and why, and the mentions and links each
delivered message would have rendered. ``trickle`` (seconds per byte) makes it answer one byte at a time; queued
``statuses`` answer the next requests with those HTTP statuses instead.

Example::

    with ChatRobot("wecom") as robot:
        ...  # WEBHOOK_URL=robot.url
        assert robot.max_per_minute() <= 20
"""
from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

WECOM_LIMIT_BYTES = 4096
WECOM_PER_MINUTE = 20
SLACK_LIMIT_CHARS = 40000
# What each service renders specially: WeCom markdown mentions <@userid> and links [text](url); Slack mrkdwn has
# the control sequences <@U…>, <!channel>/<!here>/<!everyone> and links <url|text>.
_MENTION = {"wecom": re.compile(r"<@([^>]*)>"), "slack": re.compile(r"<[@!]([^>]*)>")}
_LINK = {"wecom": re.compile(r"\[[^\]]*\]\(([^)]*)\)"), "slack": re.compile(r"<(https?://[^|>]+)\|[^>]*>")}


@dataclass
class Message:
    """One request the robot answered: when, what, and whether it was delivered (``errcode``/``status``)."""

    at: float
    body: Any
    delivered: bool
    reason: str = ""
    mentions: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        if isinstance(self.body, dict):
            md = self.body.get("markdown")
            if isinstance(md, dict) and isinstance(md.get("content"), str):
                return md["content"]
            if isinstance(self.body.get("text"), str):
                return self.body["text"]
        return ""


class ChatRobot:
    """A WeCom (``kind="wecom"``) or Slack (``"slack"``) webhook endpoint on 127.0.0.1 (see the module docstring)."""

    def __init__(self, kind: str = "wecom", key: str | None = None, per_minute: int | None = None,
                 trickle: float | None = None) -> None:
        # a key of its own per robot: a robot that gets a port an earlier one used must not share that robot's URL,
        # or the container's pace per URL (webhook.RateLimiter.for_url) would count the earlier robot's messages
        key = key or f"robot-key-0123456789abcdef-{secrets.token_hex(4)}"
        self.kind, self.key, self.trickle = kind, key, trickle
        self.per_minute = per_minute if per_minute is not None else (WECOM_PER_MINUTE if kind == "wecom" else 60)
        self.messages: list[Message] = []
        self.statuses: deque[int] = deque()
        self._window: deque[float] = deque()
        self._lock = threading.Lock()
        robot = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = robot._answer(self.path, body)
                data = answer.encode("utf-8")
                head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: "
                        f"{'application/json' if robot.kind == 'wecom' else 'text/plain'}\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n").encode()
                try:
                    if robot.trickle:
                        for i in range(len(head + data)):
                            self.wfile.write((head + data)[i:i + 1])
                            self.wfile.flush()
                            time.sleep(robot.trickle)
                    else:
                        self.wfile.write(head + data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"chat-{kind}", daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        if self.kind == "wecom":
            return f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key={self.key}"
        return f"http://127.0.0.1:{port}/services/T000/B000/{self.key}"

    def start(self) -> "ChatRobot":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "ChatRobot":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- inspection ---------------------------------------------------------------------------------------------

    @property
    def delivered(self) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.delivered]

    @property
    def refused(self) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if not m.delivered]

    def max_per_minute(self) -> int:
        """Most requests received in any 60-second window (delivered or not: a robot counts what it is sent)."""
        with self._lock:
            times = sorted(m.at for m in self.messages)
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= 60.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    # --- the rules ------------------------------------------------------------------------------------------------

    def _answer(self, path: str, raw: bytes) -> tuple[int, str]:
        now = time.monotonic()
        with self._lock:
            queued = self.statuses.popleft() if self.statuses else None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        if queued is not None:
            return self._record(now, body, False, f"HTTP {queued} (queued)", queued, "queued failure")
        if self.kind == "wecom":
            return self._wecom(now, path, body)
        return self._slack(now, body)

    def _record(self, now: float, body: Any, delivered: bool, reason: str, status: int, answer: str,
                text: str = "") -> tuple[int, str]:
        msg = Message(now, body, delivered, reason)
        if delivered:
            msg.mentions = _MENTION[self.kind].findall(text)
            msg.links = _LINK[self.kind].findall(text)
        with self._lock:
            self.messages.append(msg)
        return status, answer

    def _rate_ok(self, now: float) -> bool:
        with self._lock:
            while self._window and now - self._window[0] >= 60.0:
                self._window.popleft()
            if len(self._window) >= self.per_minute:
                return False
            self._window.append(now)
            return True

    def _wecom(self, now: float, path: str, body: Any) -> tuple[int, str]:
        def err(code: int, msg: str) -> tuple[int, str]:
            return self._record(now, body, False, f"errcode {code}", 200, json.dumps({"errcode": code, "errmsg": msg}))

        if parse_qs(urlsplit(path).query).get("key") != [self.key]:
            return err(93000, "invalid webhook url")
        if not isinstance(body, dict) or body.get("msgtype") != "markdown" or not isinstance(body.get("markdown"), dict):
            return err(40008, "invalid message type")
        content = body["markdown"].get("content")
        if not isinstance(content, str) or not content:
            return err(44004, "empty content")
        if len(content.encode("utf-8")) > WECOM_LIMIT_BYTES:
            return err(40058, f"markdown.content exceed max length {WECOM_LIMIT_BYTES}")
        if not self._rate_ok(now):
            return err(45009, "api freq out of limit")
        return self._record(now, body, True, "", 200, json.dumps({"errcode": 0, "errmsg": "ok"}), content)

    def _slack(self, now: float, body: Any) -> tuple[int, str]:
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text:
            return self._record(now, body, False, "invalid_payload", 400, "invalid_payload")
        if len(text) > SLACK_LIMIT_CHARS:
            return self._record(now, body, False, "msg_too_long", 400, "msg_too_long")
        if not self._rate_ok(now):
            return self._record(now, body, False, "rate_limited", 429, "rate_limited")
        return self._record(now, body, True, "", 200, "ok", text)
