"""Compaction entry points: ``handler`` (AWS Lambda, EventBridge Scheduler hourly) and ``main_handler`` (Tencent SCF,
timer trigger), the same function.

Merges every closed hour partition of ``ARCHIVE_URI`` (the last ``COMPACT_LOOKBACK_HOURS``) into one gzip JSON
Lines object, verified before its inputs are deleted (:mod:`mps_triggers.compact`). Returns a summary (partitions,
objects and bytes before and after); raises when a partition failed, so the platform counts the error and the
next run, which is safe to repeat, finishes it. All logic lives in the core layer.
"""
from mps_triggers import compact


def handler(event, context):
    return compact.run(event, context).respond()


main_handler = handler
