"""Structured JSON logs, one object per line, in the keys of AWS Lambda Powertools' Logger, with this project's
correlation ids (object key, SessionId, TaskId, messageId).

Lambda and SCF both ship stdout to their log services (CloudWatch Logs, CLS) line by line, so one JSON object per
line is queryable there (CloudWatch Logs Insights ``fields message, key, session_id | filter level = "ERROR"``; CLS
``level:ERROR AND session_id:"mt1-…"``). The keys are Powertools' (docs.powertools.aws.dev, Logger, "Standard
structured keys"), so queries and dashboards written for Powertools read these lines as they are:

=====================  ==============================================================================================
``level``              ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``
``location``           ``module.function:line`` of the call
``message``            what happened (a short fixed phrase: ``submitted``, ``archived``, ``callback rejected``…)
``timestamp``          ISO 8601 UTC with milliseconds, ``2026-11-21T09:30:00.123Z``
``service``            ``POWERTOOLS_SERVICE_NAME``, else ``mps-triggers``
``cold_start``         true on the first invocation of a container (from :func:`set_context`)
``function_name``,     from the platform's context (Lambda's object or SCF's dict) when it has them
``function_memory_size``, ``function_arn``
``function_request_id``  the invocation's request id
``xray_trace_id``      the ``Root`` of ``_X_AMZN_TRACE_ID`` when Lambda traces the invocation
``exception``,         the traceback and the exception's class, on lines about an unexpected error
``exception_name``
=====================  ==============================================================================================

then the line's own fields (``key``, ``session_id``, ``task_id``, ``record``, ``error``…), ``None`` left out.

Lines go through the standard library's ``logging``, logger ``mps_triggers`` (:data:`LOGGER_NAME`), which writes to
stdout and does not propagate to the root logger (Lambda's runtime puts its own handler on the root logger; a
propagated line would be printed twice). Attach a handler to that logger to observe every line (the test suite's
secrets scan does, with :class:`JsonFormatter`).

Every line is safe to read:

- field values are redacted (:func:`mps_triggers.redaction.redact`: secret-named fields, secret query parameters in
  URLs, access key ids, every configured secret), tracebacks scrubbed of configured secrets;
- the text always encodes as UTF-8 and is one line for every reader (:func:`mps_triggers.safejson.dumps`: lone
  surrogates, U+2028, U+2029 and U+0085 escaped);
- third-party loggers that print request URLs, headers or signatures at INFO or DEBUG (httpx, httpcore, the COS
  SDK, urllib3, botocore, boto3, s3transfer, requests) are held at WARNING whatever the root logger's level.

Example::

    log("info", "submitted", key="in/a.mp4", session_id="mt1-…", task_id="2600…-WorkflowTask-…")
    # {"level":"INFO","location":"submit._submit:351","message":"submitted","timestamp":"2026-11-21T09:30:00.123Z",
    #  "service":"mps-triggers","cold_start":true,"function_request_id":"…","key":"in/a.mp4","session_id":"mt1-…",
    #  "task_id":"…"}

The level threshold comes from ``LOG_LEVEL`` (debug, info, warning, error; default info; Powertools'
``POWERTOOLS_LOG_LEVEL`` is read too).
"""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from typing import Any

from .redaction import redact, scrub
from .safejson import dumps

LOGGER_NAME = "mps_triggers"
THIRD_PARTY_LOGGERS = ("httpx", "httpcore", "hpack", "qcloud_cos", "urllib3", "requests", "botocore", "boto3",
                       "s3transfer")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_NAMES = {v: k.upper() for k, v in _LEVELS.items()}
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "mps-triggers"
"""The ``service`` key of every line."""
EXCEPTION_LIMIT = 8000
"""Characters of a traceback kept in ``exception`` (its end: the innermost frames and the error)."""
_STANDARD = frozenset({"level", "location", "message", "timestamp", "service", "exception", "exception_name"})
_context: dict[str, Any] = {}


class JsonFormatter(logging.Formatter):
    """Formats a record of :func:`log` as the project's JSON line (without the trailing newline): the keys of the
    module docstring's table, in that order, then the call's fields."""

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        line: dict[str, Any] = {
            "level": _NAMES.get(record.levelno, record.levelname.upper()),
            "location": f"{record.module}.{record.funcName}:{record.lineno}",
            "message": scrub(str(record.msg)),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z",
            "service": SERVICE,
        }
        line.update(getattr(record, "mps_context", None) or {})
        fields = getattr(record, "mps_fields", None)
        if fields is None and record.args:  # a plain logging call on this logger
            line["args"] = [str(a) for a in record.args] if isinstance(record.args, tuple) else str(record.args)
        try:  # a field named like a standard key keeps its value under "<name>_field", never replacing the key
            line.update(redact({(f"{k}_field" if k in _STANDARD else k): _plain(v) for k, v in (fields or {}).items()}))
        except ValueError:  # a field nested beyond reason: say so rather than drop the line
            line["fields_error"] = "a field was nested too deeply to log"
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info))
            line["exception"] = scrub(text if len(text) <= EXCEPTION_LIMIT else "…" + text[-EXCEPTION_LIMIT:])
            line["exception_name"] = type(record.exc_info[1]).__name__
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
logger.setLevel(_LEVELS.get((os.environ.get("LOG_LEVEL") or os.environ.get("POWERTOOLS_LOG_LEVEL") or "info")
                            .strip().lower(), logging.INFO))


def hold_third_party_loggers(level: int = logging.WARNING) -> None:
    """Keep the loggers of the libraries we call at ``level`` (WARNING) or above, whatever the root logger says."""
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(level)


hold_third_party_loggers()


def set_level(level: str) -> None:
    """Change the threshold set by ``LOG_LEVEL`` (``debug``, ``info``, ``warning``, ``error``)."""
    logger.setLevel(_LEVELS.get(level.lower(), logging.INFO))


def set_context(**fields: Any) -> None:
    """Replace the per-invocation keys added to every line (``cold_start``, ``function_name``,
    ``function_request_id``…; see :func:`invocation_context`); call at the start of each invocation."""
    _context.clear()
    _context.update({k: v for k, v in fields.items() if v is not None})


def invocation_context(context: Any, request_id: str | None, cold_start: bool) -> dict[str, Any]:
    """The Powertools keys of one invocation: ``cold_start``, ``function_name``, ``function_memory_size``,
    ``function_arn`` from Lambda's context object (``function_name``, ``memory_limit_in_mb``,
    ``invoked_function_arn``) or SCF's context dict (``function_name``, ``memory_limit_in_mb``; SCF Python docs
    583/40324), ``function_request_id``, and ``xray_trace_id`` (the ``Root=`` of ``_X_AMZN_TRACE_ID``)."""
    if isinstance(context, dict):
        name, memory, arn = context.get("function_name"), context.get("memory_limit_in_mb"), None
    else:
        name, memory = getattr(context, "function_name", None), getattr(context, "memory_limit_in_mb", None)
        arn = getattr(context, "invoked_function_arn", None)
    trace = os.environ.get("_X_AMZN_TRACE_ID") or ""
    root = next((p[5:] for p in trace.split(";") if p.startswith("Root=")), None)
    keys: dict[str, Any] = {"cold_start": cold_start}
    for key, value in (("function_name", name), ("function_memory_size", memory), ("function_arn", arn),
                       ("function_request_id", request_id), ("xray_trace_id", root)):
        if (isinstance(value, str) and value) or (isinstance(value, int) and not isinstance(value, bool)):
            keys[key] = value
    return keys


def log(level: str, msg: str, *, exc: BaseException | None = None, **fields: Any) -> None:
    """Write one JSON log line if ``level`` passes ``LOG_LEVEL``: ``msg`` is its ``message``; ``None`` fields are
    left out; ``exc`` adds ``exception`` (its traceback) and ``exception_name``. Never raises."""
    levelno = _LEVELS.get(level, logging.INFO)
    if not logger.isEnabledFor(levelno):
        return
    logger.log(levelno, msg, exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
               stacklevel=2, extra={"mps_context": dict(_context),
                                    "mps_fields": {k: v for k, v in fields.items() if v is not None}})
