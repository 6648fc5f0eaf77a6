"""Tencent VOD events: what a VOD application notifies, read for the VOD job (:mod:`mps_triggers.vod_job`).

Sources: VOD API 2018-07-17 and the official SDK's models (``tencentcloud-sdk-python-vod`` 3.1.194,
``v20180717/models.py``): ``EventContent`` (``EventHandle``, ``EventType`` and one member per event type),
``FileUploadTask`` (``FileId``, ``MediaBasicInfo{Name, Type, ClassId, ClassPath, MediaUrl, StorageRegion,
SourceInfo{SourceType, SourceContext}, ...}``, ``ProcedureTaskId``, ``ReviewAudioVideoTaskId``, ``MetaData``),
``ProcedureTask`` (``TaskId``, ``Status``, ``ErrCode``, ``Message``, ``FileId``, ``MediaProcessResultSet``, ...,
``SessionId``, ``SessionContext``), ``PullEventsResponse{EventSet}``, ``ModifyEventConfigRequest{Mode, SignKey}``;
doc "Video Upload Completion" (266/33950).

Delivery: a **normal callback** POSTs one event (no ``EventHandle``) to the application's NotificationUrl; a
**reliable callback** keeps events until ``PullEvents`` hands them out (up to 16, each with an ``EventHandle``) and
``ConfirmEvents`` acknowledges them within 30 s, else they are handed out again. With a ``SignKey`` configured
(``ModifyEventConfig``), VOD adds ``Sign = MD5(SignKey + T)`` and ``T``, the UNIX time the notification expires
(10 minutes after sending by default), to every notification:
:func:`mps_triggers.callbacks.check_vod_signature`.

Example::

    event = read_event(doc, "EventSet[0]")          # VodEvent(event_type="NewFileUpload", handle="…", ...)
    event.file                                       # VodFile(file_id="5285…", name="a.mp4", media_type="mp4", ...)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .exceptions import EventError
from .safejson import to_int

NEW_FILE_UPLOAD = "NewFileUpload"
PROCEDURE_STATE_CHANGED = "ProcedureStateChanged"

EVENT_KEYS: dict[str, str] = {
    "NewFileUpload": "FileUploadEvent",
    "ProcedureStateChanged": "ProcedureStateChangeEvent",
    "FileDeleted": "FileDeleteEvent",
    "PullComplete": "PullCompleteEvent",
    "EditMediaComplete": "EditMediaCompleteEvent",
    "SplitMediaComplete": "SplitMediaCompleteEvent",
    "ComposeMediaComplete": "ComposeMediaCompleteEvent",
    "ClipComplete": "ClipCompleteEvent",
    "TranscodeComplete": "TranscodeCompleteEvent",
    "CreateImageSpriteComplete": "CreateImageSpriteCompleteEvent",
    "ConcatComplete": "ConcatCompleteEvent",
    "CreateSnapshotByTimeOffsetComplete": "SnapshotByTimeOffsetCompleteEvent",
    "WechatPublishComplete": "WechatPublishCompleteEvent",
    "WechatMiniProgramPublishComplete": "WechatMiniProgramPublishCompleteEvent",
    "RemoveWatermark": "RemoveWatermarkCompleteEvent",
    "RestoreMediaComplete": "RestoreMediaCompleteEvent",
    "RebuildMediaComplete": "RebuildMediaCompleteEvent",
    "ExtractTraceWatermarkComplete": "ExtractTraceWatermarkCompleteEvent",
    "ExtractCopyRightWatermarkComplete": "ExtractCopyRightWatermarkCompleteEvent",
    "ReviewAudioVideoComplete": "ReviewAudioVideoCompleteEvent",
    "ReduceMediaBitrateComplete": "ReduceMediaBitrateCompleteEvent",
    "DescribeFileAttributesComplete": "DescribeFileAttributesCompleteEvent",
    "QualityInspectComplete": "QualityInspectCompleteEvent",
    "QualityEnhanceComplete": "QualityEnhanceCompleteEvent",
    "MediaCastStatusChanged": "MediaCastStatusChangedEvent",
    "PersistenceComplete": "PersistenceCompleteEvent",
    "ComplexAdaptiveDynamicStreamingComplete": "ComplexAdaptiveDynamicStreamingCompleteEvent",
    "ProcessMediaByMPSComplete": "ProcessMediaByMPSCompleteEvent",
    "AigcImageTaskComplete": "AigcImageCompleteEvent",
    "AigcVideoTaskComplete": "AigcVideoCompleteEvent",
    "ExtractBlindWatermarkComplete": "ExtractBlindWatermarkComplete",
    "SceneAigcImageCompleteEvent": "SceneAigcImageCompleteEvent",
    "ProcessImageAsyncCompleteEvent": "ProcessImageAsyncCompleteEvent",
    "CreateAigcAdvancedCustomElementCompleteEvent": "CreateAigcAdvancedCustomElementCompleteEvent",
    "CreateAigcCustomVoiceCompleteEvent": "CreateAigcCustomVoiceCompleteEvent",
    "DescribeAigcFaceInfoAsyncComplete": "DescribeAigcFaceInfoAsyncCompleteEvent",
    "AigcHunyuan3DTaskComplete": "AigcHunyuan3DCompleteEvent",
}
"""Every EventType VOD documents (SDK ``EventContent``, 3.1.194) → the member that carries its event. A type not
listed is not VOD's (or newer than this release): its line is archived raw and the event fails, so a pulled one
stays in VOD (never confirmed) until a release that knows it."""

SIGNING_FIELDS = ("T", "Sign")
"""Members VOD sets anew each time it sends a notification (signed with a SignKey): left out of the line ``id``."""
MAX_EVENTS = 16
"""Most events one PullEvents answer holds, and most handles one ConfirmEvents takes (API 2018-07-17)."""


@dataclass(frozen=True)
class VodFile:
    """A file uploaded to a VOD application, from a NewFileUpload event (``FileUploadTask``).

    ``sub_app_id`` is the application the event came from (pulled for, or named by the callback URL's
    ``sub_app_id``), None for the main one; ``media_type`` is ``MediaBasicInfo.Type`` lower-cased (``mp4``);
    ``class_id``/``class_path`` the file's category; ``procedure_task_id`` is set when the upload already started a
    task flow (named in the upload signature), ``review_task_id`` a moderation task.
    """

    file_id: str
    sub_app_id: int | None = None
    name: str = ""
    media_type: str = ""
    class_id: int | None = None
    class_path: str = ""
    procedure_task_id: str = ""
    review_task_id: str = ""
    storage_region: str = ""
    media_url: str = ""

    @property
    def extension(self) -> str:
        """The file name's extension, lower-cased, without the dot (``""`` when it has none)."""
        stem, dot, ext = self.name.rpartition(".")
        return ext.lower() if dot and stem and "/" not in ext else ""


@dataclass
class VodEvent:
    """One VOD event as received: ``event_type``, ``handle`` (its ``EventHandle``, pulled events only), ``doc`` (the
    event without ``EventHandle``: what is archived), ``where`` (how errors name it: ``EventSet[3]`` or the HTTP
    request id) and ``file`` (NewFileUpload)."""

    event_type: str
    handle: str | None
    doc: dict[str, Any]
    where: str
    file: VodFile | None = None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def read_event(doc: Any, where: str) -> VodEvent:
    """Read one VOD event (an ``EventContent``: a pulled ``EventSet`` entry or a normal callback's body).

    Raises :class:`~mps_triggers.exceptions.EventError` naming ``where`` and the field: not an object, no
    ``EventType``, an ``EventHandle`` that is not a string. Does not judge the type (:func:`check_event` does),
    so a bad event can still be archived.
    """
    if not isinstance(doc, dict):
        raise EventError(where, "$", f"a VOD event is a JSON object, got {type(doc).__name__}")
    handle = doc.get("EventHandle")
    if handle is not None and not (isinstance(handle, str) and 0 < len(handle) <= 4096):
        raise EventError(where, "EventHandle", "not a non-empty string of at most 4096 characters")
    event_type = doc.get("EventType")
    if not isinstance(event_type, str) or not event_type:
        raise EventError(where, "EventType", "missing or not a non-empty string")
    body = {k: v for k, v in doc.items() if k != "EventHandle"}
    return VodEvent(event_type, handle, body, where)


def check_event(event: VodEvent, sub_app_id: int | None) -> VodEvent:
    """Judge ``event``: its type must be one VOD documents (:data:`EVENT_KEYS`) and, for NewFileUpload, its
    ``FileUploadEvent`` must name the file. Sets ``event.file``. Raises :class:`EventError` naming the event and
    the field (``EventType``, ``FileUploadEvent``, ``FileUploadEvent.FileId``, ...)."""
    where = event.where
    if event.event_type not in EVENT_KEYS:
        raise EventError(where, "EventType", f"{event.event_type[:64]!r} is not an event type VOD documents "
                                             f"(SDK EventContent): archived raw, not confirmed")
    if event.event_type != NEW_FILE_UPLOAD:
        return event
    upload = event.doc.get("FileUploadEvent")
    if not isinstance(upload, dict):
        raise EventError(where, "FileUploadEvent", "missing or not an object")
    file_id = upload.get("FileId")
    if not isinstance(file_id, str) or not file_id.strip() or len(file_id) > 128:
        raise EventError(where, "FileUploadEvent.FileId", "missing, empty, not a string or over 128 characters")
    info = upload.get("MediaBasicInfo")
    if info is not None and not isinstance(info, dict):
        raise EventError(where, "FileUploadEvent.MediaBasicInfo", "not an object")
    info = info or {}
    class_id = info.get("ClassId")
    if class_id is not None and (isinstance(class_id, bool) or to_int(class_id, max_digits=19) is None):
        raise EventError(where, "FileUploadEvent.MediaBasicInfo.ClassId", "not an integer")
    event.file = VodFile(
        file_id=file_id.strip(), sub_app_id=sub_app_id, name=_str(info.get("Name"))[:1024],
        media_type=_str(info.get("Type")).lower()[:32],
        class_id=None if class_id is None else to_int(class_id, max_digits=19),
        class_path=_str(info.get("ClassPath"))[:1024], procedure_task_id=_str(upload.get("ProcedureTaskId"))[:256],
        review_task_id=_str(upload.get("ReviewAudioVideoTaskId"))[:256],
        storage_region=_str(info.get("StorageRegion"))[:64], media_url=_str(info.get("MediaUrl"))[:4096])
    return event


def pulled_events(response: Any) -> list[Any]:
    """The ``EventSet`` of a PullEvents ``Response``: a list of at most :data:`MAX_EVENTS` entries (each read by
    :func:`read_event`). An absent or null ``EventSet`` is no event. Raises :class:`EventError` (record
    ``PullEvents``) when the answer is not of that shape: nothing in it is confirmed."""
    if not isinstance(response, dict):
        raise EventError("PullEvents", "Response", "not an object")
    events = response.get("EventSet")
    if events is None:
        return []
    if not isinstance(events, list):
        raise EventError("PullEvents", "Response.EventSet", f"not a list ({type(events).__name__})")
    if len(events) > MAX_EVENTS:
        raise EventError("PullEvents", "Response.EventSet", f"{len(events)} events, more than VOD's {MAX_EVENTS}")
    return events
