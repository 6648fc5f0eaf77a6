"""MPS task notifications in the documented shapes (dev-only): what the emulator sends when a task completes.

Shapes: ParseNotification (API 2019-06-12) and the SCF MPS trigger sample (reference/tencent.md §2-3):
``{"EventType", "<Type>Event": {...}, "SessionId", "SessionContext", "Timestamp", "Sign"}``. ScheduleId requests
produce ``ScheduleTask`` events (``ActivityResultSet[].ActivityResItem``), inline tasks ``WorkflowTask`` events
(``MediaProcessResultSet[]`` with ``Type`` + ``…Task``, ``AiAnalysisResultSet``), mixed SUCCESS/FAIL subtasks
included. ``Timestamp`` is the expiry (send time + 10 minutes) and ``Sign = md5(Timestamp + NotifyKey)``; both are
left out when the request had no NotifyKey.
"""
from __future__ import annotations

import hashlib
import posixpath
import re
import time
from typing import Any
from urllib.parse import unquote, urlsplit

META = {"Size": 5412, "Container": "mov,mp4,m4a,3gp,3g2,mj2", "Duration": 1.0, "Bitrate": 43296, "Height": 120,
        "Width": 160, "Rotate": 0,
        "VideoStreamSet": [{"Bitrate": 39000, "Height": 120, "Width": 160, "Codec": "h264", "Fps": 10}],
        "AudioStreamSet": [], "VideoDuration": 1.0, "AudioDuration": 0}


def _input_path(request: dict[str, Any]) -> str:
    info = request.get("InputInfo", {})
    url = (info.get("UrlInputInfo") or {}).get("Url")
    if url:
        return unquote(urlsplit(url).path)  # the path of the URL: never its query (a presigned signature)
    obj = (info.get("CosInputInfo") or {}).get("Object") or (info.get("S3InputInfo") or {}).get("S3Object") or "input"
    return obj if obj.startswith("/") else "/" + obj


def _input_dir(path: str) -> str:
    return posixpath.dirname(path).rstrip("/") + "/"


def _out_dir(request: dict[str, Any]) -> str:
    """OutputDir, else the input's own folder (the SDK model: "if not filled, the directory of the triggering file,
    i.e. {inputDir}")."""
    return request.get("OutputDir") or _input_dir(_input_path(request))


def render_path(template: str, request: dict[str, Any], task_id: str, definition: Any, fmt: str,
                number: int | None = None) -> str:
    """An output object's path as MPS renders it: the variables of "Filename Variable" (``{inputName}``,
    ``{inputFormat}``, ``{number}``, ``{taskId}``, ``{rand}``, ``{streamId}``, ``{format}``, ``{definition}``)
    and the SDK's ``{inputDir}``; a relative result goes under OutputDir. (Adaptive streaming, whose
    ``{subStreamNumber}``/``{segmentNumber}`` name its sub-streams, is not emulated.) Independent of the project's
    own renderer (mps_triggers.outputs)."""
    source = _input_path(request)
    base, ext = posixpath.splitext(posixpath.basename(source))
    values = {"inputName": base, "inputFormat": ext.lstrip("."), "number": "" if number is None else str(number),
              "taskId": task_id, "rand": task_id[-8:], "streamId": "", "format": fmt, "definition": str(definition),
              "inputDir": _input_dir(source)}
    path = re.sub(r"\{([A-Za-z]+)\}", lambda m: values.get(m.group(1), m.group()), template)
    return path if path.startswith("/") else _out_dir(request) + path


def output_paths(request: dict[str, Any], task_id: str) -> list[tuple[str, str]]:
    """Every ``(bucket, path)`` an accepted request makes MPS write (:func:`task_event`'s outputs)."""
    out: list[tuple[str, str]] = []
    for _, _, sub in _activities(request, "FINISH", None, task_id):
        o = sub.get("Output") or {}
        storage = o.get("OutputStorage") or o.get("Storage") or {}
        bucket = (storage.get("CosOutputStorage") or {}).get("Bucket") or \
            (storage.get("S3OutputStorage") or {}).get("S3Bucket") or ""
        paths = [o.get("Path")] + [p.get("Path") for p in o.get("PicInfoSet", [])] + o.get("ImagePathSet", []) + \
            [o.get("WebVttPath")]
        out.extend((bucket, p) for p in paths if p)
    return out


def _storage(request: dict[str, Any]) -> dict[str, Any]:
    out = request.get("OutputStorage")
    if out:
        return out
    info = request.get("InputInfo", {})
    if info.get("Type") == "AWS-S3":
        s3 = info["S3InputInfo"]
        return {"Type": "AWS-S3", "S3OutputStorage": {k: v for k, v in s3.items() if k != "S3Object"}}
    cos = info.get("CosInputInfo", {})
    return {"Type": "COS", "CosOutputStorage": {"Bucket": cos.get("Bucket"), "Region": cos.get("Region")}}


def _subtask(status: str, output: dict[str, Any] | None, input_: dict[str, Any], fail: bool) -> dict[str, Any]:
    if status == "PROCESSING":
        return {"Status": "PROCESSING", "ErrCodeExt": "", "ErrCode": 0, "Message": "", "Input": input_,
                "Output": None, "Progress": 40}
    if fail:
        return {"Status": "FAIL", "ErrCodeExt": "InternalError", "ErrCode": 30010,
                "Message": "TencentVodPlatErr Or Unkown", "Input": input_, "Output": None, "Progress": 0}
    return {"Status": "SUCCESS", "ErrCodeExt": "", "ErrCode": 0, "Message": "SUCCESS", "Input": input_,
            "Output": output, "Progress": 100}


def _activities(request: dict[str, Any], status: str, fail_index: int | None, task_id: str = ""
                ) -> list[tuple[str, str, dict]]:
    """(type, task field, subtask) for what the request asks: inline tasks, or a typical orchestration. Output paths
    follow the tasks' ``OutputObjectPath`` or MPS's default names, rendered by :func:`render_path`."""
    storage = _storage(request)
    todo: list[tuple[str, str, dict, dict]] = []
    mpt = request.get("MediaProcessTask") or ({} if "ScheduleId" not in request else {
        "TranscodeTaskSet": [{"Definition": 100030}], "SnapshotByTimeOffsetTaskSet": [{"Definition": 10}],
        "AnimatedGraphicTaskSet": [{"Definition": 20000, "StartTimeOffset": 0, "EndTimeOffset": 1}]})

    def path(t: dict[str, Any], default: str, fmt: str, number: int | None = None) -> str:
        return render_path(t.get("OutputObjectPath") or default, request, task_id, t.get("Definition"), fmt, number)

    for t in mpt.get("TranscodeTaskSet", []):
        d = t.get("Definition")
        p = path(t, "{inputName}_transcode_{definition}.{format}", "mp4")
        todo.append(("Transcode", "TranscodeTask", {"Definition": d, "OutputStorage": storage},
                     {"OutputStorage": storage, "Path": p, "Definition": d, "Bitrate": 39000, "Height": 120,
                      "Width": 160, "Size": 4011, "Duration": 1.0, "Container": "mp4",
                      "Md5": hashlib.md5(p.encode()).hexdigest()}))
    for t in mpt.get("SnapshotByTimeOffsetTaskSet", []):
        d = t.get("Definition")
        p = path(t, "{inputName}_snapshotByTimeOffset_{definition}_{number}.{format}", "jpg", 0)
        todo.append(("SnapshotByTimeOffset", "SnapshotByTimeOffsetTask", {"Definition": d},
                     {"Definition": d, "Storage": storage, "PicInfoSet": [{"TimeOffset": 0, "Path": p}]}))
    for t in mpt.get("AnimatedGraphicTaskSet", []):
        d = t.get("Definition")
        todo.append(("AnimatedGraphics", "AnimatedGraphicTask", {"Definition": d},
                     {"Storage": storage, "Path": path(t, "{inputName}_animatedGraphic_{definition}.{format}", "gif"),
                      "Definition": d, "Container": "gif", "Height": 120, "Width": 160, "Size": 2048}))
    for t in mpt.get("ImageSpriteTaskSet", []):
        d = t.get("Definition")
        vtt = render_path(t.get("WebVttObjectName") or "{inputName}_imageSprite_{definition}.{format}", request,
                          task_id, d, "vtt")
        todo.append(("ImageSprites", "ImageSpriteTask", {"Definition": d},
                     {"Definition": d, "Storage": storage,
                      "ImagePathSet": [path(t, "{inputName}_imageSprite_{definition}_{number}.{format}", "jpg", 0)],
                      "WebVttPath": vtt, "TotalCount": 1}))
    if fail_index is not None and fail_index < 0:
        fail_index += len(todo)
    return [(kind, field, _subtask(status, out, inp, i == fail_index)) for i, (kind, field, inp, out) in enumerate(todo)]


def task_event(request: dict[str, Any], task_id: str, status: str = "FINISH", fail_index: int | None = None
               ) -> tuple[str, dict[str, Any]]:
    """``(EventType, event)`` for an accepted ProcessMedia ``request`` (``ScheduleTask`` or ``WorkflowTask``).

    ``fail_index`` makes that subtask FAIL (negative: counted from the end) while the others succeed; the task
    still FINISHes with ErrCode 0, as MPS reports it.
    """
    head = {"TaskId": task_id, "Status": status, "ErrCode": 0, "Message": "", "InputInfo": request.get("InputInfo"),
            "MetaData": META if status == "FINISH" else None}
    acts = _activities(request, status, fail_index, task_id)
    if "ScheduleId" in request:
        return "ScheduleTask", {**head, "ActivityResultSet": [
            {"ActivityType": kind, "ActivityResItem": {field: sub}} for kind, field, sub in acts]}
    results = [{"Type": kind, "TranscodeTask": None, "AnimatedGraphicTask": None, "SnapshotByTimeOffsetTask": None,
                "SampleSnapshotTask": None, "ImageSpriteTask": None, field: sub} for kind, field, sub in acts]
    event: dict[str, Any] = {**head, "MediaProcessResultSet": results, "AiContentReviewResultSet": [],
                             "AiRecognitionResultSet": [], "AiAnalysisResultSet": []}
    if request.get("AiAnalysisTask"):
        d = request["AiAnalysisTask"].get("Definition")
        event["AiAnalysisResultSet"] = [{"Type": "Classification", "ClassificationTask": _subtask(
            status, {"ClassificationSet": [{"Classification": "video", "Confidence": 0.93}]}, {"Definition": d},
            False)}]
    return "WorkflowTask", event


def edit_media_event(task_id: str, output_path: str, bucket: str, region: str, fail: bool = False) -> dict[str, Any]:
    """An ``EditMediaTaskEvent`` (EditMedia API: clip/splice), for samples."""
    return {"TaskId": task_id, "Status": "FINISH", "ErrCode": 30010 if fail else 0,
            "Message": "source file error" if fail else "SUCCESS",
            "Input": {"FileInfoSet": [{"InputInfo": {"Type": "COS", "CosInputInfo": {
                "Bucket": bucket, "Region": region, "Object": "/uploads/part1.mp4"}}, "StartTimeOffset": 0,
                "EndTimeOffset": 10}], "OutputStorage": {"Type": "COS", "CosOutputStorage": {
                    "Bucket": bucket, "Region": region}}, "OutputObjectPath": output_path},
            "Output": None if fail else {"OutputStorage": {"Type": "COS", "CosOutputStorage": {
                "Bucket": bucket, "Region": region}}, "Path": output_path, "MetaData": META}}


def notification(event_type: str, event: dict[str, Any], session_id: str = "", session_context: str = "",
                 notify_key: str | None = None, now: float | None = None, ttl: int = 600) -> dict[str, Any]:
    """The ParseNotification body: EventType, the event under its key, SessionId, SessionContext, and
    ``Timestamp``/``Sign`` when a NotifyKey was configured."""
    key = {"ScheduleTask": "ScheduleTaskEvent", "WorkflowTask": "WorkflowTaskEvent",
           "EditMediaTask": "EditMediaTaskEvent", "BatchTask": "BatchTaskEvent"}.get(event_type, f"{event_type}Event")
    body: dict[str, Any] = {"EventType": event_type, key: event, "SessionId": session_id,
                            "SessionContext": session_context}
    if notify_key:
        ts = int((time.time() if now is None else now) + ttl)
        body["Timestamp"] = ts
        body["Sign"] = hashlib.md5(f"{ts}{notify_key}".encode()).hexdigest()
    return body


def _batch_outputs(request: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """``(input, bucket, subtitle path)`` per input of a BatchProcessMedia request: the SmartSubtitlesTask's
    ``OutputObjectPath`` or a default name, rendered against that input, under OutputDir (else the input's folder)."""
    task = request.get("SmartSubtitlesTask") or {}
    raw = task.get("RawParameter") or {}
    fmt = raw.get("SubtitleFormat") or "vtt"
    storage = request.get("OutputStorage") or {}
    out: list[tuple[dict[str, Any], str, str]] = []
    for info in request.get("InputInfo") or []:
        one = {**request, "InputInfo": info}
        bucket = (storage.get("CosOutputStorage") or {}).get("Bucket") or (info.get("CosInputInfo") or {}).get("Bucket")
        path = render_path(task.get("OutputObjectPath") or "{inputName}_smartSubtitle_{definition}.{format}", one, "",
                           task.get("Definition", 0), fmt)
        out.append((info, bucket or "", path))
    return out


def batch_output_paths(request: dict[str, Any]) -> list[tuple[str, str]]:
    """Every ``(bucket, path)`` an accepted BatchProcessMedia request makes MPS write."""
    return [(bucket, path) for _, bucket, path in _batch_outputs(request)]


def batch_task_event(request: dict[str, Any], status: str = "FINISH", fail: bool = False) -> dict[str, Any]:
    """A ``BatchTaskEvent`` for an accepted BatchProcessMedia ``request``, shaped as the SDK's ``BatchSubTaskResult``
    (``InputInfos``, ``Metadatas``, ``SmartSubtitlesTaskResult{Input, Outputs[SmartSubtitleTaskBatchOutput]}``): no
    TaskId and no task status, as documented. ``fail`` makes the last output FAIL."""
    task = request.get("SmartSubtitlesTask") or {}
    storage = request.get("OutputStorage")
    made = _batch_outputs(request)
    outputs = []
    for i, (_, _, path) in enumerate(made):
        if status != "FINISH":
            outputs.append({"Progress": 40, "Status": "PROCESSING", "ErrCodeExt": "", "Message": ""})
        elif fail and i == len(made) - 1:
            outputs.append({"Progress": 0, "Status": "FAIL", "ErrCodeExt": "FailedOperation.AsrFailed",
                            "Message": "speech recognition failed"})
        else:
            outputs.append({"Progress": 100, "Status": "SUCCESS", "ErrCodeExt": "", "Message": "SUCCESS",
                            "AsrFullTextTask": {"SegmentSet": [{"Confidence": 0.9, "StartTimeOffset": 0.0,
                                                                "EndTimeOffset": 1.0, "Text": "hello"}],
                                                "Path": path, "SubtitlePath": path, "OutputStorage": storage}})
    return {"InputInfos": request.get("InputInfo") or [],
            "Metadatas": [META if status == "FINISH" else None for _ in made],
            "SmartSubtitlesTaskResult": {"Input": {"Definition": task.get("Definition", 0),
                                                   "RawParameter": task.get("RawParameter")},
                                         "Outputs": outputs}}
