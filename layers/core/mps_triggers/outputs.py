"""Where MPS writes a task's outputs: the route's ``output_path`` template → ``OutputDir`` (and our variables in
inline tasks' ``…ObjectPath``/``…ObjectName``), one folder per input object by default.

Source: ProcessMedia API 2019-06-12 (``OutputDir``: "must start and end with /"; ``OutputObjectPath`` relative to
``OutputDir`` or absolute), MPS "Filename Variable" (``{inputName}``, ``{inputFormat}``, ``{number}``, ``{taskId}``,
``{rand}``, ``{streamId}``, ``{format}``, ``{definition}``: rendered by MPS in output object paths).

Our variables, rendered here before the request is sent (each value is *path-safe*, see :func:`path_safe`):

=============== ==========================================================================================
``{dir}``       the key's folder with its trailing ``/`` (``uploads/a/``; empty for a key at the root)
``{file}``      the key's last segment (``intro.mp4``)
``{name}``      ``{file}`` without its extension (``intro``)
``{ext}``       the extension without its dot (``mp4``; empty when there is none)
``{bucket}``    the input bucket
``{route}``     the route's name
``{date}``      the upload's UTC date, ``YYYY-MM-DD`` (the event time; the submission time when absent)
``{session_id}`` the object version's SessionId (:func:`mps_triggers.session.session_id`)
=============== ==========================================================================================

The default template is ``{dir}{file}/`` (``OutputDir = /mps-output/uploads/a/intro.mp4/``) when outputs go to the
input's own bucket, ``{bucket}/{dir}{file}/`` when they go to a separate output bucket (objects of two input
buckets may share a key). :meth:`OutputTemplate.per_object` decides at load whether a template gives every object
its own folder; :func:`heads_overlap` whether two routes' templates can meet in one location.

Example::

    t = OutputTemplate.parse("{route}/{dir}{name}/")
    t.render(PathValues.of(obj, "videos", sid))      # 'videos/uploads/a/intro/'
"""
from __future__ import annotations

import re
import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

from .uploads import UploadedObject

OUR_VARIABLES = ("dir", "file", "name", "ext", "bucket", "route", "date", "session_id")
MPS_VARIABLES = ("inputName", "inputFormat", "number", "taskId", "rand", "streamId", "format", "definition",
                 "subStreamNumber", "segmentNumber", "inputDir")
"""MPS's own filename variables: "Filename Variable", plus ``{subStreamNumber}``/``{segmentNumber}`` (ProcessMedia's
adaptive-streaming example) and ``{inputDir}`` (the SDK model's OutputDir default). Passed to MPS untouched."""
DEFAULT_TEMPLATE = "{dir}{file}/"
DEFAULT_TEMPLATE_OUTPUT_BUCKET = "{bucket}/{dir}{file}/"
MAX_OUTPUT_KEY_BYTES = 1024
"""S3's (and COS's documented) longest object key."""
FILE_NAME_ALLOWANCE = 64
"""Bytes left after ``OutputDir`` and the input's name for what MPS adds to it (``_transcode_100030.mp4``,
``_adaptiveDynamicStreaming_100210_0_12.ts``)."""

_TOKEN = re.compile(r"\{([A-Za-z_]+)\}")
_UNSAFE = re.compile(r"[%/\x00-\x1f\x7f]")


def path_safe(segment: str) -> str:
    """One path segment made safe and unambiguous for an object key: ``%``, ``/`` (a route name may hold one) and
    control characters percent-encoded (``%25``, ``%2F``, ``%0A``); a segment that is ``.`` or ``..`` written
    ``%2E`` / ``%2E%2E`` (MPS and browsers fold them), an empty one (from ``a//b``) ``%2F``. Injective: two
    different segments never give the same text."""
    if segment == "":
        return "%2F"
    if segment in (".", ".."):
        return "%2E" * len(segment)
    return _inner(segment)


def path_safe_key(key: str) -> str:
    """Every segment of ``key`` through :func:`path_safe`, joined by ``/``."""
    return "/".join(path_safe(s) for s in key.split("/"))


@dataclass(frozen=True)
class PathValues:
    """The values of our variables for one object (already path-safe)."""

    dir: str
    file: str
    name: str
    ext: str
    bucket: str
    route: str
    date: str
    session_id: str

    @classmethod
    def of(cls, obj: UploadedObject, route: str, session_id: str, now: datetime | None = None) -> "PathValues":
        folder, _, file = obj.key.rpartition("/")
        stem, dot, ext = file.rpartition(".")
        if not dot or not stem.strip("."):  # "intro" (no extension), ".hidden", "..mp4": the whole name is the stem
            stem, ext = file, ""
        return cls(dir=path_safe_key(folder) + "/" if "/" in obj.key else "",
                   file=path_safe(file), name=path_safe(stem), ext=_inner(ext), bucket=path_safe(obj.bucket),
                   route=path_safe(route), date=_date(obj.event_time, now), session_id=path_safe(session_id))


def _inner(value: str) -> str:
    """A value that is part of a segment, never a whole one by itself in a valid template: only escaped."""
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", value)


def _date(event_time: Any, now: datetime | None) -> str:
    if isinstance(event_time, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", event_time):
        try:
            parsed = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(timezone.utc)
            return parsed.strftime("%Y-%m-%d")
        except ValueError:
            pass
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class OutputTemplate:
    """A parsed ``output_path``: a folder relative to the route's output dir, ending in ``/``, made of literal
    text and our variables. Build with :meth:`parse` (ValueError naming the problem)."""

    text: str
    parts: tuple[tuple[str, str], ...]  # ("lit", text) | ("var", name)

    @classmethod
    def parse(cls, text: str, mps_variables: bool = False) -> "OutputTemplate":
        """Raises ValueError when ``text`` starts with ``/``, does not end with ``/``, names an unknown variable or one
        of MPS's (MPS renders those in ``OutputObjectPath``, not in ``OutputDir``; allowed, as opaque text, with
        ``mps_variables`` for the folder part of a task's absolute path), or has a literal ``..`` segment."""
        if not isinstance(text, str) or not text.endswith("/"):
            raise ValueError("must end with '/' (it names a folder under the output dir: MPS OutputDir)")
        if text.startswith("/"):
            raise ValueError("is relative to the route's output dir: no leading '/'")
        parts = tuple(_parts(text))
        for kind, value in parts:
            if kind == "var" and value in MPS_VARIABLES and not mps_variables:
                raise ValueError(f"{{{value}}} is MPS's own filename variable: MPS renders it in a task's "
                                 f"OutputObjectPath, not in OutputDir; ours are {_ours()}")
            if kind == "var" and value not in OUR_VARIABLES and value not in MPS_VARIABLES:
                raise ValueError(f"unknown variable {{{value}}}; ours are {_ours()}")
        literal_only = "".join(v if k == "lit" else "x" for k, v in parts)
        if any(seg in (".", "..") for seg in literal_only.split("/")) or "//" in literal_only:
            raise ValueError("may not have '.', '..' or empty segments")
        return cls(text, parts)

    def render(self, values: PathValues) -> str:
        """The folder for one object (relative, ending in ``/``)."""
        return "".join(v if k == "lit" else getattr(values, v) for k, v in self.parts)

    def per_object(self) -> bool:
        """True when no two different objects (storage, bucket, key, version) can be given the same folder by this
        template: it holds ``{session_id}`` or ``{dir}{file}/``, and everything before that is literal text,
        ``{date}`` (fixed length), or ``{route}``/``{bucket}`` each followed by ``/`` (they never hold one). The key
        part alone separates objects of one bucket; :meth:`has_bucket` says whether buckets are kept apart too."""
        parts = self.parts
        for i, (kind, value) in enumerate(parts):
            if kind == "lit":
                continue
            if value == "session_id":
                return True
            if value == "dir" and parts[i + 1:i + 2] == (("var", "file"),) and i + 2 < len(parts) \
                    and parts[i + 2][0] == "lit" and parts[i + 2][1].startswith("/"):
                return True
            if value == "date":
                continue
            if value in ("route", "bucket") and i + 1 < len(parts) and parts[i + 1][0] == "lit" \
                    and parts[i + 1][1].startswith("/"):
                continue
            return False
        return False

    def has_bucket(self) -> bool:
        """Whether objects of different buckets get different folders (``{bucket}`` or ``{session_id}``)."""
        return any(k == "var" and v in ("bucket", "session_id") for k, v in self.parts)

    def head(self, route: str) -> str:
        """The literal start of every folder this template renders for ``route`` (``{route}`` filled in)."""
        out = []
        for kind, value in self.parts:
            if kind == "lit":
                out.append(value)
            elif value == "route":
                out.append(path_safe(route))
            else:
                break
        return "".join(out)


def heads_overlap(a: str, b: str) -> bool:
    """True when folders starting with ``a`` and with ``b`` may coincide (one literal start begins the other)."""
    return a.startswith(b) or b.startswith(a)


def _parts(text: str) -> Iterator[tuple[str, str]]:
    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() > pos:
            yield "lit", text[pos:m.start()]
        yield "var", m.group(1)
        pos = m.end()
    if pos < len(text):
        yield "lit", text[pos:]
    lits = _TOKEN.sub("", text)
    if "{" in lits or "}" in lits:
        raise ValueError("has a '{' or '}' that is not part of a {variable}")


def _ours() -> str:
    return ", ".join(f"{{{v}}}" for v in OUR_VARIABLES)


PATH_FIELD_SUFFIXES = ("ObjectPath", "ObjectName")
"""Inline task fields that name an output path (``OutputObjectPath``, ``SegmentObjectName``, ...): our variables in
them are rendered, MPS's passed through."""


def render_task_paths(tasks: dict[str, Any], values: PathValues) -> dict[str, Any]:
    """A deep copy of inline task parameters with our variables rendered in every ``…ObjectPath``/``…ObjectName``
    string; anything else (and MPS's own variables) is copied as it is."""
    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and key.endswith(PATH_FIELD_SUFFIXES) and "{" in value:
            return _TOKEN.sub(lambda m: getattr(values, m.group(1)) if m.group(1) in OUR_VARIABLES else m.group(),
                              value)
        return value
    return walk(tasks)


template = functools.lru_cache(maxsize=256)(OutputTemplate.parse)
""":meth:`OutputTemplate.parse` of a configured template, parsed once per container (ValueError is not cached)."""
