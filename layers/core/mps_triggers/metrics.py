"""Metrics as CloudWatch Embedded Metric Format (EMF) lines: one per invocation, written to stdout by the project.

EMF ("Specification: Embedded metric format", CloudWatch user guide) is a JSON log line with an ``_aws`` member::

    {"_aws": {"Timestamp": 1795342200123,
              "CloudWatchMetrics": [{"Namespace": "MpsTriggers", "Dimensions": [["function"]],
                                     "Metrics": [{"Name": "Submitted", "Unit": "Count"}, ...]}]},
     "function": "submit", "Submitted": 3, "Duplicate": 1, ...}

Lambda's log pipeline turns each such line into metrics (no agent, no API call, no permission); on SCF the same line
is a searchable JSON line in CLS (``_aws.CloudWatchMetrics.0.Namespace:MpsTriggers AND function:submit``). Every
metric of the function is in its line, zeros included, so a graph of a quiet hour reads 0 rather than nothing.

The submit job adds one line per route that had an object in the invocation (dimensions ``function`` and ``route``,
at most :data:`ROUTE_LINES`), so each route's submissions and failures can be graphed and alarmed on alone.

Metrics (unit Count), by function:

- submit: ``Records`` (records in the event), ``Submitted``, ``Duplicate`` (MPS refused a repeated SessionId:
  the exactly-once guard at work), ``Skipped`` (recursion guard, filters, size), ``SubmitFailed`` (objects whose
  submission failed; their records return to the platform), ``RecordsFailed`` (records reported failed:
  ``batchItemFailures`` or the invocation's error), ``Throttled`` (MPS answers ``RequestLimitExceeded*``,
  ``LimitExceeded.CreateTask`` or HTTP 429, retried or not), ``Congested`` (throttled resends: MPS's window was
  full, and the container's allowance was cut), ``DeadlineReached`` (records failed because the invocation's
  deadline came first), and ``MpsAllowance`` (unit Count/Second, once the container has an MPS client: how many
  ProcessMedia requests it lets into any second, :class:`~mps_triggers.retries.AdaptiveWindow`);
- archive: ``Records``, ``Archived`` (lines written), ``ArchiveObjects`` (objects written), ``Rejected`` (callbacks
  refused: a bad signature, token, size or body), ``RecordsFailed``, ``Pushed`` / ``PushFailed`` (chat digests),
  ``DeadlineReached``;
- compact: ``Compacted`` (partitions), ``CompactFailed``, ``CompactPending`` (left for the next run at the
  deadline), ``ObjectsBefore``, ``ObjectsAfter``;
- vod: ``Records`` (events), ``Archived``, ``Pulled`` (events PullEvents handed out), ``Confirmed`` (events
  ConfirmEvents acknowledged), ``Submitted``, ``Duplicate``, ``Skipped`` (the upload started a task flow, or no
  route), ``SubmitFailed``, ``RecordsFailed`` (events not done: bad, not archived or not submitted; never
  confirmed), ``DeadlineReached``;
- every function: ``InvocationFailed`` (1 when the invocation raised: bad configuration, an unknown event shape, an
  unexpected error).

The namespace is ``MpsTriggers`` (``POWERTOOLS_METRICS_NAMESPACE`` overrides it); ``POWERTOOLS_METRICS_DISABLED``
= ``true`` turns the lines off, as for AWS Lambda Powertools' Metrics.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Mapping

from .safejson import dumps

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "MpsTriggers"
ROUTE_LINES = 20
"""Most per-route lines one invocation writes (routes beyond it count in the function's line only)."""
MAX_METRICS = 100
"""Most metrics one EMF directive may declare (the EMF specification's limit)."""
UNITS = {"MpsAllowance": "Count/Second"}
"""Metrics whose CloudWatch unit is not Count (a gauge of requests per second)."""


def enabled() -> bool:
    """False when ``POWERTOOLS_METRICS_DISABLED`` is ``true`` (or ``1``)."""
    return (os.environ.get("POWERTOOLS_METRICS_DISABLED") or "").strip().lower() not in ("true", "1")


def emf(counts: Mapping[str, int | float], dimensions: Mapping[str, str], timestamp: float | None = None
        ) -> dict[str, Any]:
    """One EMF document: ``counts`` (metric name → value, unit Count unless :data:`UNITS` says) under one
    dimension set ``dimensions`` (name → value), stamped ``timestamp`` (UNIX seconds; now by default). Raises
    ValueError for more than :data:`MAX_METRICS` metrics, a metric named like a dimension, or a value that is not a
    finite number."""
    if len(counts) > MAX_METRICS:
        raise ValueError(f"{len(counts)} metrics: EMF allows {MAX_METRICS} per directive")
    for name, value in counts.items():
        if name in dimensions or name == "_aws":
            raise ValueError(f"metric {name!r}: the name is taken by a dimension")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or \
                value in (float("inf"), float("-inf")):
            raise ValueError(f"metric {name!r}: {value!r} is not a finite number")
    when = time.time() if timestamp is None else timestamp
    return {"_aws": {"Timestamp": int(when * 1000),
                     "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [list(dimensions)],
                                            "Metrics": [{"Name": n, "Unit": UNITS.get(n, "Count")}
                                                        for n in counts]}]},
            **{k: str(v)[:1024] or "-" for k, v in dimensions.items()}, **counts}  # EMF: 1 to 1,024 characters


def emit(function: str, counts: Mapping[str, int | float],
         by_route: Mapping[str, Mapping[str, int | float]] | None = None) -> None:
    """Write the invocation's EMF line for ``function`` (``submit``, ``archive``, ``compact``) and, for
    ``by_route``, one line per route (at most :data:`ROUTE_LINES`). Never raises: a metric must not fail an
    invocation (a line that cannot be written is dropped)."""
    if not enabled():
        return
    try:
        now = time.time()
        lines = [emf(counts, {"function": function}, now)]
        for route, route_counts in list((by_route or {}).items())[:ROUTE_LINES]:
            lines.append(emf(route_counts, {"function": function, "route": route}, now))
        sys.stdout.write("".join(dumps(doc) + "\n" for doc in lines))
    except Exception as exc:  # a metric must never fail an invocation: say so in the log instead
        from .logs import log

        log("warning", "metrics not written", function=function, error=f"{type(exc).__name__}: {exc}"[:300])
