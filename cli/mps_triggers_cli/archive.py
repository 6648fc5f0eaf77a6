"""The archive as the operator reads it: an ``s3://``/``cos://`` URI or a local folder, and its local cache.

The query engine (:mod:`.query`, DuckDB) reads local files only: DuckDB's httpfs extension is not in its wheel and
would be downloaded at run time (which fails offline and does not speak COS). So ``archive sync`` copies the
archive's objects through the project's own S3 and COS clients (the archive function's store) into a folder that
mirrors the key layout below the prefix (README "Archive format")::

    CACHE/event_type=ScheduleTask/dt=2026-11-20/hour=09/<name>.jsonl
    CACHE/event_type=ScheduleTask/dt=2026-11-20/hour=09/compacted-<hash>.jsonl.gz

Incremental: an object already cached with the same size is not fetched again (every archive object's content
is fixed by its name: callbacks and ledgers are named by their digest, compacted objects by their content's).
Safe to interrupt: each object is written to a temporary file in its folder and renamed into place, so a cached
file is always whole. ``--delete`` removes cached files whose object is gone (compaction replaced it) once the
listing has completed. Keys that are not archive objects of this layout are never written (a key cannot name a
path outside the cache: :func:`mps_triggers.lines.parse_key`).
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from mps_triggers.lines import ArchiveKey, parse_key

from .common import Progress, UsageError

DEFAULT_CACHE = os.path.join(".mps-triggers", "cache")
"""Where ``report``/``find``/``archive sync`` keep an archive's copy unless ``--cache`` says otherwise: one folder
per archive below it (``s3/<bucket>/<prefix>``)."""


@dataclass(frozen=True)
class ArchiveSource:
    """An archive named on the command line: ``uri`` as given, ``local`` folder (or None), else its store."""

    uri: str
    local: Path | None = None
    store: Any = None
    prefix: str = ""
    storage: str = ""
    bucket: str = ""

    def default_cache(self) -> Path:
        """``.mps-triggers/cache/<storage>/<bucket>/<prefix>`` (a local archive is its own cache)."""
        if self.local is not None:
            return self.local
        safe = re.sub(r"[^A-Za-z0-9_.=-]", "_", self.prefix.strip("/")) or "_"
        return Path(DEFAULT_CACHE) / self.storage / self.bucket / safe


def open_archive(uri: str | None, region: str | None = None) -> ArchiveSource:
    """The archive named by ``uri`` (default ``ARCHIVE_URI``): a local folder, or ``s3://bucket/prefix`` /
    ``cos://bucket-appid/prefix`` opened with the archive function's own store (S3: the AWS chain and
    ``AWS_ENDPOINT_URL``; COS: ``MPS_SECRET_ID``/``MPS_SECRET_KEY``, the region from the URI, ``region``, or
    ``ARCHIVE_REGION``/``COS_REGION``). Raises :class:`UsageError` naming ``ARCHIVE_URI`` or the variable."""
    uri = uri or os.environ.get("ARCHIVE_URI")
    if not uri:
        raise UsageError("ARCHIVE_URI", "name the archive: s3://bucket/prefix, cos://bucket-appid/prefix or a folder")
    if not uri.startswith(("s3://", "cos://")):
        folder = Path(uri)
        if not folder.is_dir():
            raise UsageError("ARCHIVE_URI", f"{uri}: not s3://, cos:// or an existing folder")
        return ArchiveSource(uri, local=folder)
    from mps_triggers.archive_job import archive_store
    from mps_triggers.config import load_archive_settings
    from mps_triggers.exceptions import ConfigError

    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOK_")}  # reading needs no chat settings
    env["ARCHIVE_URI"] = uri
    cos_region = region or env.get("ARCHIVE_REGION") or env.get("COS_REGION")
    if cos_region:
        env["ARCHIVE_REGION"] = cos_region
    try:
        settings = load_archive_settings(env)
    except ConfigError as exc:
        raise UsageError(exc.variable, exc.problem) from None
    loc = settings.location
    return ArchiveSource(uri, store=archive_store(settings), prefix=loc.prefix, storage=loc.storage,
                         bucket=loc.bucket)


@dataclass
class SyncResult:
    """What ``archive sync`` did: objects ``listed`` in range, ``fetched`` (and their ``bytes``), already
    ``cached``, ``deleted`` from the cache, and the keys that ``failed`` (with the reason)."""

    listed: int = 0
    fetched: int = 0
    bytes: int = 0
    cached: int = 0
    deleted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"listed": self.listed, "fetched": self.fetched, "bytes": self.bytes, "cached": self.cached,
                "deleted": self.deleted, "failed": [{"key": k, "error": e} for k, e in self.failed]}


def in_range(key: ArchiveKey, since: datetime | None, until: datetime | None) -> bool:
    """Whether the partition hour of ``key`` can hold lines of ``[since, until)``."""
    start = key.start
    if since is not None and start < since.replace(minute=0, second=0, microsecond=0):
        return False
    return until is None or start < until


def listed_objects(source: ArchiveSource, since: datetime | None, until: datetime | None
                   ) -> Iterator[tuple[ArchiveKey, int | None]]:
    """``(key, size)`` of every archive object of ``source``'s store whose partition hour is in range."""
    for listed in source.store.list(source.prefix):
        key = parse_key(listed.key, source.prefix)
        if key is not None and in_range(key, since, until):
            yield key, listed.size


def sync(source: ArchiveSource, cache: Path, since: datetime | None = None, until: datetime | None = None,
         delete: bool = False, threads: int = 16, progress: bool = True) -> SyncResult:
    """Copy the objects of ``source`` whose partition hour is in ``[since, until)`` into ``cache`` (see the module
    docstring). A failed download is named in the result and leaves nothing behind; the others go on.
    Raises :class:`~mps_triggers.storage.StorageError` when the archive cannot be listed."""
    result = SyncResult()
    if source.local is not None:
        return result
    cache.mkdir(parents=True, exist_ok=True)
    todo: list[tuple[ArchiveKey, int | None]] = []
    present: set[str] = set()
    for key, size in listed_objects(source, since, until):
        result.listed += 1
        present.add(key.relative)
        path = cache / key.relative
        if path.is_file() and (size is None or path.stat().st_size == size):
            result.cached += 1
        else:
            todo.append((key, size))

    def fetch(item: tuple[ArchiveKey, int | None]) -> int:
        key, _ = item
        data = source.store.get(key.key)
        if data is None:
            raise FileNotFoundError("gone before it could be read")
        path = cache / key.relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return len(data)

    bar = Progress("sync", len(todo), ("fetched", "failed"), enabled=progress)
    with cf.ThreadPoolExecutor(threads) as pool:
        futures = {pool.submit(fetch, item): item[0] for item in todo}
        for future in cf.as_completed(futures):
            try:
                result.bytes += future.result()
                result.fetched += 1
                bar.update(1, fetched=1)
            except Exception as exc:  # one object that cannot be read is named; the others go on
                result.failed.append((futures[future].key, f"{type(exc).__name__}: {exc}"[:300]))
                bar.update(1, failed=1)
    bar.close()
    if delete:
        for path in cached_files(cache):
            rel = path.relative_to(cache).as_posix()
            key = parse_key(rel)
            if key is not None and in_range(key, since, until) and rel not in present:
                path.unlink()
                result.deleted += 1
    return result


def cached_files(cache: Path) -> list[Path]:
    """Every archive object file in ``cache`` (temporary files of an interrupted sync left out)."""
    if not cache.is_dir():
        return []
    return [p for p in cache.glob("event_type=*/dt=*/hour=*/*") if p.is_file() and parse_key(p.relative_to(cache)
                                                                                             .as_posix())]
