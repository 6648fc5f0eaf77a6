"""Structured JSON logs, one object per line, with correlation ids (object key, SessionId, TaskId, messageId).

Lambda and SCF both ship stdout to their log services (CloudWatch Logs, CLS) line by line, so one JSON object per
line is queryable there (CloudWatch Logs Insights ``fields session_id, task_id``).

Lines go through the standard library's ``logging``, logger ``mps_triggers`` (:data:`LOGGER_NAME`), which writes to
stdout and does not propagate to the root logger (Lambda's runtime puts its own handler on the root logger; a
propagated line would be printed twice). Attach a handler to that logger to observe every line (the test suite's
secrets scan does, with :class:`JsonFormatter`).

Every line is safe to read:

- field values are redacted (:func:`mps_triggers.redaction.redact`: secret-named fields, secret query parameters in
  URLs, access key ids, every configured secret);
- the text always encodes as UTF-8 and is one line for every reader (:func:`mps_triggers.safejson.dumps`: lone
  surrogates, U+2028, U+2029 and U+0085 escaped);
- third-party loggers that print request URLs, headers or signatures at INFO or DEBUG (httpx, httpcore, the COS
  SDK, urllib3, botocore, boto3, s3transfer, requests) are held at WARNING whatever the root logger's level.

Example::

    log("info", "submitted", key="in/a.mp4", session_id="mt1-…", task_id="2600…-WorkflowTask-…")
    # {"level":"info","msg":"submitted","request_id":"…","key":"in/a.mp4","session_id":"mt1-…","task_id":"…",
    #  "ts":"2026-11-21T09:30:00Z"}

The level threshold comes from ``LOG_LEVEL`` (debug, info, warning, error; default info).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from .redaction import redact, scrub
from .safejson import dumps

LOGGER_NAME = "mps_triggers"
THIRD_PARTY_LOGGERS = ("httpx", "httpcore", "hpack", "qcloud_cos", "urllib3", "requests", "botocore", "boto3",
                       "s3transfer")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_NAMES = {v: k for k, v in _LEVELS.items()}
_context: dict[str, Any] = {}


class JsonFormatter(logging.Formatter):
    """Formats a record of :func:`log` as the project's JSON line (without the trailing newline).

    Shape: ``{"level", "msg", <invocation context>, <fields>, "ts"}``; fields named in the call, ``None`` left out.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"level": _NAMES.get(record.levelno, record.levelname.lower()),
                                "msg": scrub(str(record.msg))}
        line.update(getattr(record, "mps_context", None) or {})
        fields = getattr(record, "mps_fields", None)
        if fields is None and record.args:  # a plain logging call on this logger
            line["args"] = [str(a) for a in record.args] if isinstance(record.args, tuple) else str(record.args)
        try:
            line.update(redact({k: _plain(v) for k, v in (fields or {}).items()}))
        except ValueError:  # a field nested beyond reason: say so rather than drop the line
            line["fields_error"] = "a field was nested too deeply to log"
        line["ts"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        return dumps(line, default=str)


def _plain(value: Any) -> Any:
    """JSON-ready value: containers and scalars as they are, anything else as its ``str``."""
    if value is None or isinstance(value, (str, int, float, bool, dict, list)):
        return value
    if isinstance(value, tuple):
        return list(value)
    return str(value)


class _StdoutHandler(logging.Handler):
    """Writes each line to the *current* ``sys.stdout`` (test runners and the local runtime replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
        except Exception:  # a log line must never fail an invocation
            self.handleError(record)


logger = logging.getLogger(LOGGER_NAME)
logger.propagate = False
if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
    _handler = _StdoutHandler()
    _handler.setFormatter(JsonFormatter())
    logger.addHandler(_handler)
logger.setLevel(_LEVELS.get(os.environ.get("LOG_LEVEL", "info").strip().lower(), logging.INFO))


def hold_third_party_loggers(level: int = logging.WARNING) -> None:
    """Keep the loggers of the libraries we call at ``level`` (WARNING) or above, whatever the root logger says."""
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(level)


hold_third_party_loggers()


def set_level(level: str) -> None:
    """Change the threshold set by ``LOG_LEVEL`` (``debug``, ``info``, ``warning``, ``error``)."""
    logger.setLevel(_LEVELS.get(level.lower(), logging.INFO))


def set_context(**fields: Any) -> None:
    """Replace the per-invocation fields added to every line (e.g. ``request_id``); call at the start of each."""
    _context.clear()
    _context.update({k: v for k, v in fields.items() if v is not None})


def log(level: str, msg: str, **fields: Any) -> None:
    """Write one JSON log line if ``level`` passes ``LOG_LEVEL``. ``None`` fields are left out. Never raises."""
    levelno = _LEVELS.get(level, logging.INFO)
    if not logger.isEnabledFor(levelno):
        return
    logger.log(levelno, msg, extra={"mps_context": dict(_context),
                                    "mps_fields": {k: v for k, v in fields.items() if v is not None}})
