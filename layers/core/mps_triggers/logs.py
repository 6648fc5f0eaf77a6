"""Structured JSON logs, one object per line, with correlation ids (object key, SessionId, TaskId, messageId).

Lambda and SCF both ship stdout to their log services (CloudWatch Logs, CLS) line by line, so one JSON object per
line is queryable there (CloudWatch Logs Insights ``fields session_id, task_id``). Only the fields a call site
passes are written: request bodies and credentials are never handed to :func:`log`.

Example::

    log("info", "submitted", key="in/a.mp4", session_id="mt1-…", task_id="2600…-WorkflowTask-…")
    # {"level":"info","msg":"submitted","key":"in/a.mp4","session_id":"mt1-…","task_id":"…","ts":"…"}

The level threshold comes from ``LOG_LEVEL`` (debug, info, warning, error; default info).
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, TextIO

from .exceptions import ConfigError, EventError


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_threshold = _LEVELS.get(os.environ.get("LOG_LEVEL", "info").lower(), 20)
_context: dict[str, Any] = {}


def set_level(level: str) -> None:
    """Change the threshold set by ``LOG_LEVEL`` (``debug``, ``info``, ``warning``, ``error``)."""
    global _threshold
    _threshold = _LEVELS.get(level.lower(), 20)


def request_id_of(context: Any) -> str | None:
    """The invocation's request id: Lambda's ``context.aws_request_id`` or SCF's ``context["request_id"]``."""
    if isinstance(context, dict):
        return context.get("request_id")
    return getattr(context, "aws_request_id", None)


def set_context(**fields: Any) -> None:
    """Replace the per-invocation fields added to every line (e.g. ``request_id`` of the Lambda/SCF context)."""
    _context.clear()
    _context.update({k: v for k, v in fields.items() if v is not None})


def log(level: str, msg: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one JSON log line to stdout if ``level`` passes ``LOG_LEVEL``. ``None`` fields are left out."""
    if _LEVELS.get(level, 20) < _threshold:
        return
    line: dict[str, Any] = {"level": level, "msg": msg}
    line.update(_context)
    line.update({k: v for k, v in fields.items() if v is not None})
    line["ts"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (stream or sys.stdout).write(json.dumps(line, ensure_ascii=False, default=str) + "\n")


def run_logged(job_factory: Callable[[], Any], event: Any, context: Any) -> Any:
    """Get the container's job (``job_factory``) and run it on one invocation. A :class:`ConfigError` (bad
    environment) or an :class:`EventError` (an event of no known shape) is logged with what it names, then re-raised
    so the platform reports the invocation as failed and nothing is acknowledged."""
    try:
        job = job_factory()
    except ConfigError as exc:
        log("error", "invalid configuration", variable=exc.variable, error=exc.problem)
        raise
    try:
        return job.run(event, context)
    except EventError as exc:
        log("error", "unknown event shape", record=exc.record, field=exc.field, error=exc.problem)
        raise
