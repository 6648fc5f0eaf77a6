"""``mps-triggers report``, ``find`` and ``archive sync``: the archive answers questions.

``ARCHIVE_URI`` is ``s3://bucket/prefix``, ``cos://bucket-appid/prefix`` or a local folder (a cache, or a copy);
it defaults to the ``ARCHIVE_URI`` variable. A bucket's objects are first copied into the local cache
(:mod:`.archive`: incremental, only the partitions the question needs), then DuckDB answers from the cache
(:mod:`.query`). Times are UTC: ``--since`` is inclusive and ``--until`` exclusive, each a date (``2026-11-20``),
an hour (``2026-11-20T09``) or a span back from now (``36h``, ``7d``).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from .common import UsageError, emit_json, note, table

EPILOG_REPORT = """\
examples:
  # the last 7 days of the deployed archive (copied into .mps-triggers/cache first, only what is new)
  mps-triggers report s3://mps-archive/mps/
  # yesterday, as JSON for a dashboard; tasks without a final callback after 2 hours count as stuck
  mps-triggers report cos://archive-1250000000/mps/ --region ap-guangzhou --since 2026-11-20 --until 2026-11-21 \\
      --stuck-after 2h --format json
  # one self-contained HTML file (tables and charts, no network needed to read it)
  mps-triggers report s3://mps-archive/mps/ --since 30d --format html --output report.html
  # run the failed objects again
  mps-triggers report s3://mps-archive/mps/ --since 1d --failed --format keys | mps-triggers reprocess --from-file -
"""

EPILOG_FIND = """\
examples:
  # everything that happened to one upload: its submissions and every callback of its tasks, in time order
  mps-triggers find s3://mps-archive/mps/ --key "uploads/a/intro.mp4"
  mps-triggers find s3://mps-archive/mps/ --key s3://media-in/uploads/a/intro.mp4 --format json
  # a file uploaded to VOD: its NewFileUpload, its submission and its task flow's events
  mps-triggers find cos://mps-archive-1250000000/vod/ --region ap-guangzhou --key vod://1500000001/5285890781763144364
  # one task, one SessionId, or any line that mentions a text (payload included)
  mps-triggers find s3://mps-archive/mps/ --task-id 1250000000-WorkflowTask-a1b2c3
  mps-triggers find ./archive-copy --session-id mt1-0123abcd... --since 2026-11-01
  mps-triggers find s3://mps-archive/mps/ --text "InvalidInput.Duration" --since 2d
"""

EPILOG_SYNC = """\
examples:
  # copy what is new into the default cache (.mps-triggers/cache/s3/<bucket>/<prefix>)
  mps-triggers archive sync s3://mps-archive/mps/
  # the last 30 days into a folder of your choice; drop cached objects that compaction replaced
  mps-triggers archive sync cos://archive-1250000000/mps/ --region ap-guangzhou --cache ./archive --since 30d --delete
"""

EPILOG_COMPACT = """\
examples:
  # what would be merged: partitions and objects per partition
  mps-triggers compact s3://mps-archive/mps/ --dry-run
  # every closed hour of November (the scheduled function does the last 48 hours every hour)
  mps-triggers compact cos://archive-1250000000/mps/ --region ap-guangzhou --since 2026-11-01 --until 2026-12-01
"""

_SPAN = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    """``90s``, ``30m``, ``6h``, ``2d`` (or a bare number of seconds) → seconds. For argparse."""
    m = _SPAN.match(text.strip())
    if m:
        return float(int(m.group(1)) * _UNIT[m.group(2)])
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a span such as 6h, 30m, 2d or 90s") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def when(text: str | None, what: str, now: datetime) -> datetime | None:
    """A ``--since``/``--until`` value as UTC: a date, an hour, or a span back from ``now`` (``7d``). Raises
    :class:`UsageError` naming ``what``."""
    if text is None:
        return None
    if _SPAN.match(text.strip()):
        return now - timedelta(seconds=seconds(text))
    from .operations import parse_time

    return parse_time(text, what)


def add_parsers(sub: Any, common: Callable[..., None]) -> None:
    """Add ``report``, ``find`` and ``archive`` (``sync``) to the subcommands."""
    r = sub.add_parser("report", help="tasks, failures, durations and stuck tasks from the archive",
                       epilog=EPILOG_REPORT, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Count what the archive holds for a time range: tasks by day and state, failures "
                                   "by error code and message, durations (submission → first PROCESSING → FINISH) "
                                   "per route, tasks without a final callback (stuck), uploads that failed to "
                                   "submit, and objects per route. README \"Archive\" documents every field.")
    _archive_arguments(r)
    r.add_argument("--stuck-after", type=seconds, default=6 * 3600.0, metavar="SPAN",
                   help="a task with no final callback this long after its submission is stuck (default 6h)")
    r.add_argument("--failed", action="store_true",
                   help="only the objects whose task failed or whose submission failed (for reprocess)")
    r.add_argument("--limit", type=int, default=50, metavar="N",
                   help="rows of the stuck and submit-failure lists in a table or HTML (default 50; JSON has all)")
    r.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    common(r, formats=("table", "json", "html", "keys"))

    f = sub.add_parser("find", help="every ledger and callback line of an object or a task, in time order",
                       epilog=EPILOG_FIND, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Print the archive's lines of the objects and tasks named (--key, --task-id, "
                                   "--session-id, --text; each repeatable, any mix), oldest first: a table, or the "
                                   "lines themselves as JSON lines with --format json.")
    _archive_arguments(f, default_since=None)
    f.add_argument("--key", action="append", default=[], metavar="KEY",
                   help="an object key (or s3://bucket/key, cos://bucket-appid/key; a VOD FileId or "
                        "vod://SubAppId/FileId), mapped to its SessionIds")
    f.add_argument("--task-id", action="append", default=[], metavar="ID")
    f.add_argument("--session-id", action="append", default=[], metavar="ID")
    f.add_argument("--text", action="append", default=[], metavar="TEXT",
                   help="free text anywhere in a line, the payload included (case-insensitive)")
    common(f)

    c = sub.add_parser("compact", help="merge each closed hour partition's objects into one gzip object",
                       epilog=EPILOG_COMPACT, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Merge the objects of every closed hour partition (its hour ended --grace ago) "
                                   "into one compacted-<hash>.jsonl.gz, lines deduplicated by id and ordered by "
                                   "time, verified by reading it back before the inputs are deleted. Safe to stop "
                                   "and run again; what the scheduled compaction function runs.")
    c.add_argument("archive", nargs="?", metavar="ARCHIVE_URI", help="s3://bucket/prefix or cos://bucket-appid/prefix "
                                                                     "(default $ARCHIVE_URI)")
    c.add_argument("--since", metavar="TIME", help="UTC date, hour or span back from now; inclusive (default: all)")
    c.add_argument("--until", metavar="TIME", help="UTC date, hour or span back from now; exclusive")
    c.add_argument("--grace", type=seconds, default=None, metavar="SPAN",
                   help="an hour is closed this long after it ended (default COMPACT_GRACE_MINUTES, 60m)")
    c.add_argument("--region", help="a COS archive's region, when the URI does not say (or ARCHIVE_REGION)")
    c.add_argument("--dry-run", action="store_true", help="change nothing; print the partitions that would be merged")
    common(c)

    a = sub.add_parser("archive", help="the archive's local cache",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Work with the local copy that report and find query.")
    asub = a.add_subparsers(dest="archive_command", metavar="COMMAND")
    s = asub.add_parser("sync", help="copy the archive's new objects into the local cache", epilog=EPILOG_SYNC,
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Copy the objects of ARCHIVE_URI (partitions in --since/--until) that the cache "
                                    "does not hold yet, through the project's S3 or COS client. Safe to interrupt "
                                    "and run again.")
    _archive_arguments(s, default_since=None, sync_flag=False)
    s.add_argument("--delete", action="store_true",
                   help="remove cached objects that are gone from the archive (replaced by compaction)")
    common(s)


def _archive_arguments(p: argparse.ArgumentParser, default_since: str | None = "7d", sync_flag: bool = True) -> None:
    p.add_argument("archive", nargs="?", metavar="ARCHIVE_URI",
                   help="s3://bucket/prefix, cos://bucket-appid/prefix or a local folder (default $ARCHIVE_URI)")
    p.add_argument("--since", default=default_since, metavar="TIME",
                   help="UTC date (2026-11-20), hour (2026-11-20T09) or span back from now (7d, 36h); inclusive"
                        + (f" (default {default_since})" if default_since else ""))
    p.add_argument("--until", metavar="TIME", help="UTC date, hour or span back from now; exclusive (default now)")
    p.add_argument("--cache", metavar="DIR", help="the local cache (default .mps-triggers/cache/<storage>/<bucket>/"
                                                  "<prefix>)")
    p.add_argument("--region", help="a COS archive's region, when the URI does not say (or ARCHIVE_REGION)")
    if sync_flag:
        p.add_argument("--no-sync", action="store_true", help="query the cache as it is, without reading the bucket")


def _prepare(args: argparse.Namespace, now: datetime) -> tuple[Any, Path, datetime | None, datetime | None, int]:
    """Open the archive, sync the range the question needs, and return ``(source, cache, since, until, failed)``."""
    from .archive import open_archive, sync
    from .query import LOOKBACK

    since, until = when(args.since, "--since", now), when(args.until, "--until", now)
    if since and until and since >= until:
        raise UsageError("--since/--until", "--since must come before --until")
    source = open_archive(args.archive, args.region)
    cache = Path(args.cache) if args.cache else source.default_cache()
    failed = 0
    if source.local is None and not getattr(args, "no_sync", False):
        result = sync(source, cache, since - LOOKBACK if since else None, None, progress=not args.no_progress)
        note(f"archive sync: {result.fetched:,} new objects ({result.bytes:,} bytes), {result.cached:,} cached, "
             f"into {cache}")
        for key, error in result.failed:
            note(f"archive sync: could not read {key}: {error}")
        failed = len(result.failed)
    return source, cache, since, until, failed


def _write(args: argparse.Namespace, text: str) -> None:
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        note(f"report written to {args.output}")
    else:
        sys.stdout.write(text)


def _unreadable(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Exit 1 with DuckDB's message (it names the file) when the cache holds a file that is not JSON lines."""
    import functools

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        import duckdb

        try:
            return func(args)
        except duckdb.Error as exc:
            note(f"mps-triggers {args.command}: the archive cache could not be read: {str(exc).splitlines()[0]}")
            return 1

    return run


@_unreadable
def run_report(args: argparse.Namespace) -> int:
    from .query import ArchiveQuery

    now = datetime.now(timezone.utc)
    source, cache, since, until, failed = _prepare(args, now)
    since = since or now - timedelta(days=7)
    until = until or now
    query = ArchiveQuery(cache, since)
    if args.failed or args.fmt == "keys":
        objects = query.failed_objects(since, until, args.stuck_after, now)
        if args.fmt == "keys":
            _write(args, "".join(_key_line(o) + "\n" for o in objects))
        elif args.fmt == "json":
            _write(args, json.dumps(objects, ensure_ascii=False, indent=2) + "\n")
        else:
            _write(args, _table_text(["storage", "bucket", "key"], [[o["storage"], o["bucket"], o["key"]]
                                                                     for o in objects]))
        return 1 if failed else 0
    doc = query.report(since, until, args.stuck_after, now, archive=source.uri)
    if args.fmt == "json":
        _write(args, json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    elif args.fmt == "html":
        from .html_report import render

        _write(args, render(doc, limit=args.limit))
    else:
        _write(args, report_text(doc, args.limit))
    return 1 if failed else 0


def _key_line(obj: dict[str, str]) -> str:
    """``s3://bucket/key`` (``cos://…``), or a JSON line where the key holds a line break or would not read back
    as a URI (what ``reprocess --from-file`` accepts)."""
    if any(c in obj["key"] for c in "\r\n\x85\u2028\u2029") or obj["key"].lstrip().startswith("{"):
        return json.dumps(obj, ensure_ascii=False)
    return f"{obj['storage']}://{obj['bucket']}/{obj['key']}"


def _table_text(headers: list[str], rows: list[list[Any]]) -> str:
    import io

    out = io.StringIO()
    table(headers, rows, out)
    return out.getvalue()


def _secs(spread: dict[str, Any] | None, name: str) -> Any:
    return None if spread is None else round(spread[name], 1)


def report_text(doc: dict[str, Any], limit: int = 50) -> str:
    """The report as aligned text tables (the default ``--format table``)."""
    r, t = doc["range"], doc["tasks"]
    parts = [f"archive {r['archive']}  {r['since']} → {r['until']}  ({r['lines']:,} lines in {r['files']:,} "
             f"objects; stuck after {r['stuck_after_seconds'] / 3600:g} h)\n\ntasks\n"]
    parts.append(_table_text(["total", "succeeded", "failed", "running", "stuck", "callbacks", "ledger lines"],
                             [[t["total"], t["succeeded"], t["failed"], t["running"], t["stuck"], t["callbacks"],
                               t["ledger_lines"]]]))
    parts.append("\nby day (first seen)\n")
    parts.append(_table_text(["day", "total", "succeeded", "failed", "running", "stuck"],
                             [[d["day"], d["total"], d["succeeded"], d["failed"], d["running"], d["stuck"]]
                              for d in doc["by_day"]]) if doc["by_day"] else "  (none)\n")
    parts.append("\nfailures\n")
    parts.append(_table_text(["tasks", "code", "message", "example task", "example key"],
                             [[f["tasks"], f["code"], _cut(f["message"]), f["example"]["task_id"],
                               _cut(f["example"]["key"])] for f in doc["failures"]]) if doc["failures"] else
                 "  (none)\n")
    parts.append("\ndurations (seconds: wait = submission → first PROCESSING, run = → FINISH, total)\n")
    from .html_report import route_label

    rows = [[route_label(d["route"]), d["tasks"], _secs(d["wait"], "p50"), _secs(d["wait"], "p90"),
             _secs(d["run"], "p50"),
             _secs(d["run"], "p90"), _secs(d["total"], "p50"), _secs(d["total"], "p90"), _secs(d["total"], "p99"),
             _secs(d["total"], "max")] for d in doc["durations"]]
    parts.append(_table_text(["route", "tasks", "wait p50", "wait p90", "run p50", "run p90", "total p50",
                              "total p90", "total p99", "total max"], rows) if rows else "  (none)\n")
    for title, items, cols in (
            ("stuck (no final callback)", doc["stuck"], ("submitted_at", "route", "key", "task_id", "last_status")),
            ("failed to submit", doc["submit_failures"], ("at", "route", "key", "code", "message"))):
        parts.append(f"\n{title}: {len(items):,}\n")
        shown = items[:limit]
        if shown:
            parts.append(_table_text(list(cols), [[_cut(i.get(c)) for c in cols] for i in shown]))
        if len(items) > len(shown):
            parts.append(f"  … {len(items) - len(shown):,} more (--format json lists all)\n")
    parts.append("\nroutes\n")
    parts.append(_table_text(["route", "objects", "tasks", "succeeded", "failed", "running", "stuck",
                              "submit failed"],
                             [[x["route"] or "(none)", x["objects"], x["tasks"], x["succeeded"], x["failed"],
                               x["running"], x["stuck"], x["submit_failed"]] for x in doc["routes"]])
                 if doc["routes"] else "  (none)\n")
    return "".join(parts)


def _cut(value: Any, width: int = 60) -> Any:
    """One line of at most ``width`` characters (user text: keys, messages)."""
    if not isinstance(value, str):
        return value
    value = " ".join(value.split())
    return value if len(value) <= width else value[:width - 1] + "…"


@_unreadable
def run_find(args: argparse.Namespace) -> int:
    from .query import ArchiveQuery

    if not (args.key or args.task_id or args.session_id or args.text):
        raise UsageError("find", "name what to find: --key, --task-id, --session-id or --text")
    now = datetime.now(timezone.utc)
    _, cache, since, until, failed = _prepare(args, now)
    query = ArchiveQuery(cache, since, with_files=True)
    lines = query.find(task_ids=args.task_id, keys=args.key, session_ids=args.session_id, texts=args.text,
                       since=since, until=until)
    if args.fmt == "json":
        for ln in lines:
            print(json.dumps(ln, ensure_ascii=False))
    else:
        table(["time", "line", "event", "status/result", "task_id", "session_id", "key", "error"],
              [_find_row(ln) for ln in lines])
    note(f"find: {len(lines):,} lines")
    return 1 if failed else 0


def _line_time(line: dict[str, Any]) -> str | None:
    value = line.get("received_at") or line.get("at") or line.get("failed_at")
    return value if isinstance(value, str) else None


def _find_row(ln: dict[str, Any]) -> list[Any]:
    kind = "ledger" if ln.get("event_type") == "submissions" and "result" in ln else \
        "push_failed" if ln.get("event_type") == "push_failed" and "covers" in ln else "callback"
    obj = ln.get("object") if isinstance(ln.get("object"), dict) else {}
    error = ln.get("error")
    if isinstance(error, dict):
        if isinstance(error.get("subtasks"), list) and error["subtasks"]:
            first = error["subtasks"][0] if isinstance(error["subtasks"][0], dict) else {}
            error = f"{first.get('subtask')}: {first.get('code')} {first.get('message') or ''}"
        else:
            error = f"{error.get('code')} {error.get('message') or ''}"
    elif kind == "push_failed":
        error = ln.get("reason")
    state = ln.get("result") if kind == "ledger" else ln.get("status")
    if kind == "callback" and ln.get("failed"):
        state = f"{state} (failed)"
    return [_line_time(ln), kind, _cut(ln.get("event_type"), 24), state, ln.get("task_id"),
            _cut(ln.get("session_id"), 20), _cut(obj.get("key"), 40), _cut(error, 50)]


def run_archive(args: argparse.Namespace) -> int:
    from .archive import open_archive, sync

    if args.archive_command != "sync":
        raise UsageError("archive", "say a command: mps-triggers archive sync ARCHIVE_URI")
    now = datetime.now(timezone.utc)
    since, until = when(args.since, "--since", now), when(args.until, "--until", now)
    source = open_archive(args.archive, args.region)
    if source.local is not None:
        raise UsageError("ARCHIVE_URI", f"{args.archive}: a local folder is already a cache; sync reads s3:// or "
                                        f"cos://")
    cache = Path(args.cache) if args.cache else source.default_cache()
    result = sync(source, cache, since, until, delete=args.delete, progress=not args.no_progress)
    if args.fmt == "json":
        emit_json({"cache": str(cache), **result.as_dict()})
    else:
        table(["listed", "fetched", "bytes", "already cached", "deleted", "failed"],
              [[result.listed, result.fetched, result.bytes, result.cached, result.deleted, len(result.failed)]])
        for key, error in result.failed:
            print(f"failed  {key}  {error}")
        note(f"cache: {cache}")
    return 1 if result.failed else 0


def run_compact(args: argparse.Namespace) -> int:
    import os
    import time

    from mps_triggers.compact import CompactJob

    from .archive import open_archive
    from .common import Progress

    now = datetime.now(timezone.utc)
    since, until = when(args.since, "--since", now), when(args.until, "--until", now)
    source = open_archive(args.archive, args.region)
    if source.local is not None:
        raise UsageError("ARCHIVE_URI", "compact works on the archive itself: s3://bucket/prefix or cos://...")
    grace = args.grace
    if grace is None:
        try:
            grace = float(os.environ.get("COMPACT_GRACE_MINUTES") or 60) * 60
        except ValueError:
            raise UsageError("COMPACT_GRACE_MINUTES", "expected a number of minutes") from None
    job = CompactJob(source.store, source.prefix, grace=grace)
    if args.dry_run:
        plan = list(job.partitions(since, until, time.time()))
        if args.fmt == "json":
            emit_json({"partitions": [{"partition": p, "objects": len(keys)} for p, keys in plan],
                       "objects": sum(len(keys) for _, keys in plan)})
        else:
            table(["partition", "objects"], [[p, len(keys)] for p, keys in plan])
            print(f"{len(plan):,} partitions, {sum(len(keys) for _, keys in plan):,} objects to merge (dry run: "
                  f"nothing changed)")
        return 0
    bar = Progress("compact", None, ("merged", "failed"), enabled=not args.no_progress)
    report = job.run_range(since, until, on_result=lambda r: bar.update(1, merged=int(not r.error),
                                                                          failed=int(bool(r.error))))
    bar.close()
    summary = report.summary()
    if args.fmt == "json":
        emit_json({**summary, "results": [r.as_dict() for r in report.results]})
    else:
        table(["partitions", "objects before", "objects after", "lines", "bytes before", "bytes after", "failed"],
              [[summary["partitions"], summary["objects_before"], summary["objects_after"], summary["lines"],
                summary["bytes_before"], summary["bytes_after"], summary["failed"]]])
        for r in report.failed:
            print(f"failed  {r.folder}  {r.error}")
    return 1 if report.failed else 0


COMMANDS = {"report": run_report, "find": run_find, "archive": run_archive, "compact": run_compact}
