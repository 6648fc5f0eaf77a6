"""MPS's own rules on what a ProcessMedia request may combine, in one table, checked before a request is sent.

The API model accepts requests that MPS then refuses, or runs and fails later, every time. Each rule below is
checked twice: at load (:mod:`mps_triggers.config`), where the configuration alone decides it, naming the route and
the rule; and on the finished request (:func:`check_request`), where it depends on the object (its cloud, its
region), failing only that record with :class:`~mps_triggers.exceptions.MpsRuleError` (permanent: it ends in the DLQ
with the rule's name). A ``ScheduleId`` route's tasks live in MPS and cannot be seen here: only its input and
notification are checked.

Sources (cited per entry; where they disagree the union is kept, and ``MPS_S3_REGIONS`` / ``MPS_S3_INPUT_TASKS`` add
to it):

- SDK ``tencentcloud-sdk-python`` mps 2019-06-12 models: ``MediaInputInfo.Type`` "AWS-S3: AWS source, currently
  transcoding only"; ``S3InputInfo.S3Region`` "currently supports us-east-1, eu-west-3"; ``TaskNotifyConfig.NotifyType``
  "AWS-SQS: AWS queue, only for AWS tasks, and requires the same region"; ``TaskOutputStorage.Type`` "AWS-S3: only for
  AWS tasks, and requires the same region".
- MPS "Using Amazon S3 Buckets with MPS" (ap-southeast-1 in its walk-through).
- MPS tutorials: smart subtitles, smart erase, video splitting and horizontal-to-vertical "do not support AWS S3 as an
  input source"; "Off-peak transcoding is only supported for audio/video transcoding nodes".
- BatchProcessMedia API 2019-06-12: "batch processing tasks for URL video links", smart subtitles only;
  ``OutputStorage`` "required when InputInfo.Type is URL, currently only COS output"; 20 requests/s; no ``SessionId``.
"""
from __future__ import annotations

from typing import Any, Iterable

from .exceptions import MpsRuleError

S3_INPUT_REGIONS: dict[str, str] = {
    "us-east-1": "SDK S3InputInfo.S3Region",
    "eu-west-3": "SDK S3InputInfo.S3Region",
    "ap-southeast-1": "MPS tutorial 'Using Amazon S3 Buckets with MPS'",
}
"""AWS regions MPS reads ``AWS-S3`` inputs from (extend with ``MPS_S3_REGIONS``)."""

S3_INPUT_TASKS: dict[str, str] = {
    "MediaProcessTask.TranscodeTaskSet": "SDK MediaInputInfo.Type: 'AWS-S3: currently transcoding only'",
}
"""Inline task kinds MPS runs on an ``AWS-S3`` input (extend with ``MPS_S3_INPUT_TASKS``). Everything else, e.g.
``SmartSubtitlesTask`` and ``SmartEraseTask`` (tutorials: "AWS S3 is not supported"), needs URL input."""

OFFLINE_TASKS: dict[str, str] = {
    "MediaProcessTask.TranscodeTaskSet": "MPS tutorial 'Off-peak transcoding': audio/video transcoding nodes only",
}
"""Inline task kinds ``TaskType=Offline`` may carry."""

RULES: dict[str, str] = {
    "aws-sqs-notify": "NotifyType AWS-SQS only for AWS-S3 inputs in the queue's region (SDK TaskNotifyConfig)",
    "offline-transcoding-only": "TaskType Offline only with transcoding tasks (tutorial 'Off-peak transcoding')",
    "s3-input-tasks": "AWS-S3 input only for the task kinds of S3_INPUT_TASKS (SDK MediaInputInfo; tutorials)",
    "s3-input-regions": "AWS-S3 input only from the regions of S3_INPUT_REGIONS (SDK S3InputInfo; S3 tutorial)",
    "s3-output-region": "AWS-S3 output only in the input's region (SDK TaskOutputStorage)",
    "url-input-output": "URL input only with an OutputStorage, COS here (ProcessMedia OutputStorage)",
    "url-input-credentials": "a presigned URL only from long-term keys: it dies with temporary ones (AWS SigV4)",
    "batch-inputs": "BatchProcessMedia inputs by COS or URL, SmartSubtitlesTask only (BatchProcessMedia API)",
    "batch-url-output": "BatchProcessMedia with URL input only with a COS OutputStorage (BatchProcessMedia API)",
    "batch-claims": "BatchProcessMedia has no SessionId: exactly once by a claim under ARCHIVE_URI (this project)",
}
"""Every rule by name: what it allows and where it comes from."""

TASK_SETS = ("TranscodeTaskSet", "AnimatedGraphicTaskSet", "SnapshotByTimeOffsetTaskSet", "SampleSnapshotTaskSet",
             "ImageSpriteTaskSet", "AdaptiveDynamicStreamingTaskSet")


def task_kinds(params: dict[str, Any]) -> list[str]:
    """The inline task kinds a request (or a route's ``tasks``) asks for: ``MediaProcessTask.<Set>`` for each
    non-empty set of ``MediaProcessTask``, else the parameter's name (``AiAnalysisTask``, ``SmartSubtitlesTask``)."""
    kinds: list[str] = []
    for name, value in params.items():
        if not name.endswith("Task") or not isinstance(value, dict):
            continue
        if name == "MediaProcessTask":
            sets = [s for s in value if s.endswith("TaskSet") and value[s]]
            kinds.extend(f"{name}.{s}" for s in sets)
            if not sets:
                kinds.append(name)
        else:
            kinds.append(name)
    return kinds


def unsupported(kinds: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The kinds not in ``allowed`` (sorted, for messages)."""
    allowed = set(allowed)
    return sorted({k for k in kinds if k not in allowed})


def check_request(req: dict[str, Any], s3_regions: Iterable[str] = (), s3_tasks: Iterable[str] = ()) -> None:
    """Raise :class:`MpsRuleError` naming the first rule of :data:`RULES` that the ProcessMedia parameters ``req``
    break. ``s3_regions``/``s3_tasks`` extend :data:`S3_INPUT_REGIONS`/:data:`S3_INPUT_TASKS`."""
    info = req.get("InputInfo") or {}
    s3_in = info.get("S3InputInfo") if info.get("Type") == "AWS-S3" else None
    kinds = task_kinds(req)
    notify = req.get("TaskNotifyConfig") or {}
    if notify.get("NotifyType") == "AWS-SQS":
        queue_region = (notify.get("AwsSQS") or {}).get("SQSRegion")
        if s3_in is None:
            raise MpsRuleError("aws-sqs-notify", f"MPS sends AWS-SQS callbacks only for AWS-S3 inputs, not for "
                                                 f"{info.get('Type')} input: configure MPS_NOTIFY_URL for these tasks")
        if s3_in.get("S3Region") != queue_region:
            raise MpsRuleError("aws-sqs-notify", f"the callback queue is in {queue_region} and the input in "
                                                 f"{s3_in.get('S3Region')}: MPS requires the same region; configure "
                                                 f"MPS_NOTIFY_URL for inputs of other regions")
    if req.get("TaskType") == "Offline":
        bad = unsupported(kinds, OFFLINE_TASKS)
        if bad:
            raise MpsRuleError("offline-transcoding-only", f"TaskType Offline runs transcoding only, not {bad}")
    if s3_in is not None:
        bad = unsupported(kinds, [*S3_INPUT_TASKS, *s3_tasks])
        if bad:
            raise MpsRuleError("s3-input-tasks", f"MPS cannot read AWS-S3 inputs for {bad}: use URL input "
                                                 f"(route \"input\": \"url\") or add them to MPS_S3_INPUT_TASKS")
        region = s3_in.get("S3Region")
        if region not in S3_INPUT_REGIONS and region not in set(s3_regions):
            raise MpsRuleError("s3-input-regions", f"MPS reads AWS-S3 inputs in {sorted(S3_INPUT_REGIONS)}, not in "
                                                   f"{region!r}: add it to MPS_S3_REGIONS if MPS supports it now")
        s3_out = (req.get("OutputStorage") or {}).get("S3OutputStorage")
        if s3_out is not None and s3_out.get("S3Region") != region:
            raise MpsRuleError("s3-output-region", f"the output bucket is in {s3_out.get('S3Region')} and the input "
                                                   f"in {region}: MPS writes AWS-S3 outputs in the input's region")


def check_batch_request(req: dict[str, Any]) -> None:
    """Raise :class:`MpsRuleError` where the BatchProcessMedia parameters ``req`` break a ``batch-*`` rule of
    :data:`RULES` (or ``aws-sqs-notify``: its inputs are never AWS-S3)."""
    inputs = req.get("InputInfo") or []
    kinds = {i.get("Type") for i in inputs}
    if not inputs or not kinds <= {"COS", "URL"}:
        raise MpsRuleError("batch-inputs", f"BatchProcessMedia reads COS or URL inputs, not {sorted(map(str, kinds))}")
    bad = unsupported(task_kinds(req), ["SmartSubtitlesTask"])
    if bad or "SmartSubtitlesTask" not in req:
        raise MpsRuleError("batch-inputs", f"BatchProcessMedia runs SmartSubtitlesTask only, not {bad or 'nothing'}")
    if "URL" in kinds and (req.get("OutputStorage") or {}).get("Type") != "COS":
        raise MpsRuleError("batch-url-output", "URL input needs a COS OutputStorage: give the route output_storage "
                                               "\"cos\", output_bucket and output_region")
    if (req.get("TaskNotifyConfig") or {}).get("NotifyType") == "AWS-SQS":
        raise MpsRuleError("aws-sqs-notify", "MPS sends AWS-SQS callbacks only for AWS-S3 inputs: configure "
                                             "MPS_NOTIFY_URL for BatchProcessMedia routes")
