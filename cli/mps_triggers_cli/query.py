"""The archive's questions, answered by DuckDB over the cached JSONL (``report`` and ``find``).

DuckDB reads the cache (:mod:`.archive`) with Hive partitioning: ``event_type`` (the partition: ``submissions`` is
the ledger, ``push_failed`` the undelivered digests, every other one callbacks), ``dt`` typed DATE and ``hour``
INTEGER, so a date range prunes whole folders before a file is opened; plain ``.jsonl`` and compacted
``.jsonl.gz`` objects are read alike, and a line repeated (a redelivered batch, a compacted copy still cached next
to its inputs) counts once, by ``id``. No DuckDB extension is loaded or downloaded.

The model the report counts (README "Archive"):

- A **task** is one SessionId (the join key of the ledger and the callbacks; a callback without one, such as a
  task started outside mps-triggers, is its own task by TaskId). It is *in range* when it was first seen (its first
  ``submitted``/``duplicate`` ledger line, else its first callback) within ``[since, until)``.
- Its **state**: ``failed`` when a FINISH callback says the task or a subtask failed; ``succeeded`` when a FINISH
  callback came and none failed; otherwise ``stuck`` when it was first seen at least ``stuck_after`` before now,
  else ``running``. Callbacks after ``until`` still count (a task submitted at 23:59 may finish the next day).
- **Durations** in seconds, from arrival times (``at`` of the ledger line, ``received_at`` of callbacks):
  ``wait`` = first PROCESSING callback − submission (callbacks in ``Change`` mode only), ``run`` = first FINISH −
  first PROCESSING, ``total`` = first FINISH − submission; negative spans (a reordered delivery) are left out.
- **Failures** are grouped by error ``code`` and ``message``: a task's own error, or each failed subtask's, so a
  task whose two subtasks failed differently counts in both groups.
- **Submit failures** are objects whose latest ledger line is ``failed`` (a later submission that succeeded clears
  it), and records the submit job could not read at all (``object`` null).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

COLUMNS = {
    "id": "VARCHAR", "received_at": "TIMESTAMP", "at": "TIMESTAMP", "failed_at": "TIMESTAMP",
    "task_id": "VARCHAR", "status": "VARCHAR", "failed": "BOOLEAN", "error": "JSON", "session_id": "VARCHAR",
    "object": "STRUCT(storage VARCHAR, bucket VARCHAR, key VARCHAR, route VARCHAR)", "result": "VARCHAR",
    "origin": "VARCHAR", "generation": "BIGINT",
}
"""The fields of a line the queries read, typed (README "Archive format"); a field a line lacks is NULL."""

LOOKBACK = timedelta(days=1)
"""How far before ``since`` lines are read: a task first seen in range may have a ledger line a little earlier
(a callback partitioned by its signed Timestamp lands up to 10 minutes off its arrival)."""

REPORT_KEYS = ("range", "tasks", "by_day", "failures", "durations", "stuck", "submit_failures", "routes")
STATES = ("succeeded", "failed", "running", "stuck")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _naive(when: datetime) -> datetime:
    """UTC as DuckDB's TIMESTAMP (no zone) holds it."""
    return when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when


class ArchiveQuery:
    """A DuckDB connection over one cached archive folder. ``lines`` is a table of every line whose partition day
    is on or after ``since − LOOKBACK`` (all with ``since`` None), with ``partition`` and ``t`` (the line's time:
    ``received_at``, ``at`` or ``failed_at``) added, and the ``filename`` it came from with ``with_files``
    (``find`` reads the matching lines back from their files). A line repeated in two objects (a redelivered
    batch, a compacted copy next to its inputs) is a row per copy: every query counts by ``id`` or by task, so each
    counts once, and the table is built without a sort (a window over a million rows cost twice the memory).
    Raises ``duckdb.Error`` for a cache it cannot read (a file that is not JSON lines)."""

    def __init__(self, cache: Path, since: datetime | None = None, with_files: bool = False) -> None:
        import duckdb

        self.cache, self.with_files = Path(cache), with_files
        # no extension is ever installed or loaded; no progress bar on stdout, where the results go
        self.db = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
        self.db.execute("SET enable_progress_bar = false")
        # rows in any order: keeping the files' order buffers every file read (out of memory on 67,000 files)
        self.db.execute("SET preserve_insertion_order = false")
        self.files = 0
        globs = []
        for pattern in ("*.jsonl", "*.jsonl.gz"):
            found = list(self.cache.glob(f"event_type=*/dt=*/hour=*/{pattern}"))
            self.files += len(found)
            if found:
                globs.append(_sql_text(str(self.cache / "event_type=*" / "dt=*" / "hour=*" / pattern)))
        where = ""
        if since is not None:
            where = f"WHERE dt >= DATE '{(_naive(since) - LOOKBACK).date().isoformat()}'"
        if not globs:
            cols = ", ".join(f"NULL::{t} AS \"{n}\"" for n, t in COLUMNS.items())
            self.db.execute(f"CREATE TEMP TABLE lines AS SELECT {cols}, NULL::VARCHAR AS partition, "
                            f"NULL::TIMESTAMP AS t, NULL::VARCHAR AS filename WHERE false")
            return
        columns = "{" + ", ".join(f"{_sql_text(n)}: {_sql_text(t)}" for n, t in COLUMNS.items()) + "}"
        self.db.execute(f"""
            CREATE TEMP TABLE lines AS
            SELECT * EXCLUDE (event_type, dt, hour), event_type AS partition,
                   coalesce(received_at, "at", failed_at) AS t
            FROM read_json([{", ".join(globs)}], format = 'newline_delimited', columns = {columns},
                           hive_partitioning = true, hive_types = {{'dt': 'DATE', 'hour': 'INTEGER'}},
                           hive_types_autocast = false, filename = {str(with_files).lower()},
                           union_by_name = false)
            {where}
        """)

    def count(self) -> int:
        """Lines loaded (each id once)."""
        return self.db.execute("SELECT count(DISTINCT id) FROM lines").fetchone()[0]

    # --- report -----------------------------------------------------------------------------------------------

    def report(self, since: datetime, until: datetime, stuck_after: float, now: datetime | None = None,
               archive: str = "", limit: int | None = None) -> dict[str, Any]:
        """The report of ``[since, until)`` as a JSON-able dict with the keys of :data:`REPORT_KEYS` (README
        "Archive" documents each field). ``stuck_after`` in seconds; ``now`` (UTC) decides stuck.
        ``limit`` caps the ``stuck`` and ``submit_failures`` lists (their counts stay whole)."""
        now = _naive(now or datetime.now(timezone.utc))
        lo, hi = _naive(since), _naive(until)
        db = self.db
        db.execute("""
            CREATE OR REPLACE TEMP TABLE tasks AS
            WITH cb AS (
                SELECT coalesce(session_id, task_id) AS k, * FROM lines
                WHERE partition NOT IN ('submissions', 'push_failed') AND status IS NOT NULL
                  AND coalesce(session_id, task_id) IS NOT NULL),
            c AS (
                SELECT k, min(t) AS first_callback, max(t) AS last_seen, arg_max(status, t) AS last_status,
                       min(t) FILTER (WHERE upper(status) = 'PROCESSING') AS processing_at,
                       min(t) FILTER (WHERE upper(status) = 'FINISH') AS finished_at,
                       bool_or(coalesce(failed, false)) FILTER (WHERE upper(status) = 'FINISH') AS failed,
                       arg_max(error, t) FILTER (WHERE upper(status) = 'FINISH' AND failed) AS error,
                       arg_min(task_id, t) FILTER (WHERE task_id IS NOT NULL) AS task_id,
                       arg_min(object, t) FILTER (WHERE object IS NOT NULL) AS object
                FROM cb GROUP BY k),
            s AS (
                SELECT session_id AS k, min(t) AS submitted_at,
                       arg_min(task_id, t) FILTER (WHERE task_id IS NOT NULL) AS task_id,
                       arg_min(object, t) FILTER (WHERE object IS NOT NULL) AS object
                FROM lines WHERE partition = 'submissions' AND result IN ('submitted', 'duplicate')
                  AND session_id IS NOT NULL GROUP BY session_id)
            SELECT coalesce(s.k, c.k) AS k, s.submitted_at, c.first_callback, c.last_seen, c.last_status,
                   c.processing_at, c.finished_at, c.error,
                   coalesce(s.task_id, c.task_id) AS task_id, coalesce(s.object, c.object) AS object,
                   coalesce(s.submitted_at, c.first_callback) AS first_seen,
                   CASE WHEN c.finished_at IS NOT NULL THEN CASE WHEN c.failed THEN 'failed' ELSE 'succeeded' END
                        WHEN coalesce(s.submitted_at, c.first_callback) <= $now - to_seconds($stuck) THEN 'stuck'
                        ELSE 'running' END AS state
            FROM s FULL OUTER JOIN c ON s.k = c.k
        """, {"now": now, "stuck": float(stuck_after)})
        db.execute("CREATE OR REPLACE TEMP TABLE ranged AS SELECT * FROM tasks WHERE first_seen >= $lo AND "
                   "first_seen < $hi", {"lo": lo, "hi": hi})
        rng = {"lo": lo, "hi": hi}

        counts = dict(zip(STATES, db.execute(
            "SELECT " + ", ".join(f"count(*) FILTER (WHERE state = '{s}')" for s in STATES) + " FROM ranged"
        ).fetchone()))
        callbacks, submissions = db.execute("""
            SELECT count(DISTINCT id) FILTER (WHERE partition NOT IN ('submissions', 'push_failed')),
                   count(DISTINCT id) FILTER (WHERE partition = 'submissions')
            FROM lines WHERE t >= $lo AND t < $hi""", rng).fetchone()
        tasks = {"total": sum(counts.values()), **counts, "callbacks": callbacks, "ledger_lines": submissions}

        by_day = [
            {"day": day.isoformat(), "total": total, **dict(zip(STATES, rest))}
            for day, total, *rest in db.execute(
                "SELECT first_seen::DATE AS day, count(*), " +
                ", ".join(f"count(*) FILTER (WHERE state = '{s}')" for s in STATES) +
                " FROM ranged GROUP BY day ORDER BY day").fetchall()]

        failures = [
            {"code": code, "message": message, "tasks": n,
             "example": {"task_id": task_id, "session_id": k, **_object(obj), "finished_at": _iso(at)}}
            for code, message, n, task_id, k, obj, at in db.execute("""
                WITH f AS (
                    SELECT k, task_id, object, first_seen,
                           unnest(CASE WHEN json_type(error, '$.subtasks') = 'ARRAY'
                                       THEN from_json(error -> '$.subtasks', '[{"code":"VARCHAR","message":"VARCHAR"}]')
                                       ELSE [{'code': error ->> '$.code', 'message': error ->> '$.message'}] END) AS e
                    FROM ranged WHERE state = 'failed')
                SELECT coalesce(e.code, '') AS code, coalesce(e.message, '') AS message, count(DISTINCT k) AS n,
                       arg_min(task_id, first_seen), arg_min(k, first_seen), arg_min(object, first_seen),
                       min(first_seen)
                FROM f GROUP BY ALL ORDER BY n DESC, code, message""").fetchall()]

        durations = []
        for route, n, wait, run, total in db.execute("""
                WITH d AS (
                    SELECT coalesce(object.route, '') AS route,
                           CASE WHEN processing_at >= submitted_at THEN epoch(processing_at - submitted_at) END AS w,
                           CASE WHEN finished_at >= processing_at THEN epoch(finished_at - processing_at) END AS r,
                           CASE WHEN finished_at >= submitted_at THEN epoch(finished_at - submitted_at) END AS tt
                    FROM ranged WHERE finished_at IS NOT NULL)
                SELECT CASE WHEN GROUPING(route) = 1 THEN '*' ELSE route END, count(*),
                       {'q': quantile_cont(w, [0.5, 0.9, 0.99]), 'max': max(w), 'n': count(w)},
                       {'q': quantile_cont(r, [0.5, 0.9, 0.99]), 'max': max(r), 'n': count(r)},
                       {'q': quantile_cont(tt, [0.5, 0.9, 0.99]), 'max': max(tt), 'n': count(tt)}
                FROM d GROUP BY GROUPING SETS ((), (route)) ORDER BY GROUPING(route) DESC, route""").fetchall():
            durations.append({"route": route, "tasks": n, "wait": _spread(wait), "run": _spread(run),
                              "total": _spread(total)})

        stuck_rows = db.execute("""
            SELECT k, task_id, object, submitted_at, first_seen, last_status, last_seen FROM ranged
            WHERE state = 'stuck' ORDER BY first_seen, k""").fetchall()
        stuck = [{"session_id": k, "task_id": task_id, **_object(obj), "submitted_at": _iso(sub),
                  "first_seen": _iso(first), "last_status": status, "last_seen": _iso(seen)}
                 for k, task_id, obj, sub, first, status, seen in stuck_rows]

        submit_rows = db.execute("""
            WITH l AS (
                SELECT *, row_number() OVER (PARTITION BY object.storage, object.bucket, object.key
                                             ORDER BY t DESC, id) AS rn
                FROM (SELECT DISTINCT ON (id) * FROM lines WHERE partition = 'submissions'))
            SELECT t, origin, object, session_id, generation, error ->> '$.code', error ->> '$.message' FROM l
            WHERE result = 'failed' AND (rn = 1 OR object IS NULL) AND t >= $lo AND t < $hi
            ORDER BY t, id""", rng).fetchall()
        submit_failures = [{"at": _iso(at), "origin": origin, **_object(obj), "session_id": sid,
                            "generation": gen, "code": code, "message": message}
                           for at, origin, obj, sid, gen, code, message in submit_rows]

        routes = [
            {"route": route, "objects": objects, "tasks": total, **dict(zip(STATES, rest)), "submit_failed": sf}
            for route, objects, total, *rest, sf in db.execute("""
                WITH o AS (
                    SELECT object, state FROM ranged
                    UNION ALL
                    SELECT object, 'submit_failed' FROM (
                        SELECT object, result, t, row_number() OVER (PARTITION BY object.storage, object.bucket,
                               object.key ORDER BY t DESC, id) AS rn
                        FROM lines WHERE partition = 'submissions' AND object IS NOT NULL)
                    WHERE rn = 1 AND result = 'failed' AND t >= $lo AND t < $hi)
                SELECT coalesce(object.route, '') AS route,
                       count(DISTINCT (object.storage, object.bucket, object.key)),
                       count(*) FILTER (WHERE state <> 'submit_failed'), """ +
                ", ".join(f"count(*) FILTER (WHERE state = '{s}')" for s in STATES) + """,
                       count(*) FILTER (WHERE state = 'submit_failed')
                FROM o GROUP BY route ORDER BY route""", rng).fetchall()]

        return {
            "range": {"since": _iso(lo), "until": _iso(hi), "stuck_after_seconds": stuck_after,
                      "generated_at": _iso(now), "archive": archive, "files": self.files, "lines": self.count()},
            "tasks": tasks,
            "by_day": by_day,
            "failures": failures,
            "durations": durations,
            "stuck": stuck[:limit] if limit is not None else stuck,
            "submit_failures": submit_failures[:limit] if limit is not None else submit_failures,
            "routes": routes,
        } | ({"stuck_count": len(stuck), "submit_failures_count": len(submit_failures)} if limit is not None
             else {})

    def failed_objects(self, since: datetime, until: datetime, stuck_after: float,
                       now: datetime | None = None) -> list[dict[str, str]]:
        """``{"storage", "bucket", "key"}`` of every object in range whose task failed or whose latest
        submission failed, each once, in key order (what ``report --failed --format keys`` prints)."""
        self.report(since, until, stuck_after, now)
        rows = self.db.execute("""
            SELECT DISTINCT object.storage, object.bucket, object.key FROM (
                SELECT object FROM ranged WHERE state = 'failed'
                UNION ALL
                SELECT object FROM (
                    SELECT object, result, t, row_number() OVER (PARTITION BY object.storage, object.bucket,
                           object.key ORDER BY t DESC, id) AS rn
                    FROM lines WHERE partition = 'submissions' AND object IS NOT NULL)
                WHERE rn = 1 AND result = 'failed' AND t >= $lo AND t < $hi)
            WHERE object.key IS NOT NULL AND object.bucket IS NOT NULL
            ORDER BY 1, 2, 3""", {"lo": _naive(since), "hi": _naive(until)}).fetchall()
        return [{"storage": s, "bucket": b, "key": k} for s, b, k in rows]

    # --- find -------------------------------------------------------------------------------------------------

    def find(self, task_ids: list[str] = (), keys: list[str] = (), session_ids: list[str] = (),
             texts: list[str] = (), since: datetime | None = None, until: datetime | None = None
             ) -> list[dict[str, Any]]:
        """Every line (ledger, callback, push_failed) of the objects and tasks named, in time order, as written
        in the archive, whose time is in ``[since, until)``. A key (``s3://bucket/key``, ``cos://bucket/key`` or
        ``vod://SubAppId/FileId`` narrows to one bucket or application) brings in its lines and the SessionIds and
        TaskIds of its lines, a TaskId its SessionIds, a text
        (case-insensitive, anywhere in the line, the payload included) the lines that contain it and their
        tasks. Raises ``duckdb.Error`` for a cache it cannot read."""
        if not self.with_files:
            raise ValueError("find needs ArchiveQuery(..., with_files=True)")
        db = self.db
        db.execute("CREATE OR REPLACE TEMP TABLE wanted_keys (bucket VARCHAR, key VARCHAR)")
        for key in keys:
            bucket, name = _split_key(key)
            db.execute("INSERT INTO wanted_keys VALUES (?, ?)", [bucket, name])
        text_ids: list[str] = []
        if texts and self.files:
            files = [r[0] for r in db.execute("SELECT DISTINCT filename FROM lines").fetchall()]
            conds = " OR ".join("contains(lower(json::VARCHAR), ?)" for _ in texts)
            text_ids = [r[0] for r in db.execute(
                f"SELECT DISTINCT json ->> '$.id' FROM read_ndjson_objects(?, format = 'newline_delimited') "
                f"WHERE {conds}", [files, *[t.lower() for t in texts]]).fetchall()]
        db.execute("CREATE OR REPLACE TEMP TABLE seeds AS SELECT session_id, task_id FROM lines WHERE "
                   "session_id IN (SELECT unnest($s)) OR task_id IN (SELECT unnest($t)) OR id IN (SELECT unnest($i)) "
                   "OR EXISTS (SELECT 1 FROM wanted_keys w WHERE w.key = lines.object.key AND "
                   "(w.bucket IS NULL OR w.bucket = lines.object.bucket))",
                   {"s": list(session_ids), "t": list(task_ids), "i": text_ids})
        where = ("session_id IN (SELECT session_id FROM seeds) OR task_id IN (SELECT task_id FROM seeds) "
                 "OR id IN (SELECT unnest($i)) OR session_id IN (SELECT unnest($s)) OR task_id IN (SELECT unnest($t)) "
                 # the key's own lines too, those of no task (a VOD NewFileUpload whose file started nothing yet)
                 "OR EXISTS (SELECT 1 FROM wanted_keys w WHERE w.key = lines.object.key AND "
                 "(w.bucket IS NULL OR w.bucket = lines.object.bucket))")
        params: dict[str, Any] = {"i": text_ids, "s": list(session_ids), "t": list(task_ids)}
        if since is not None:
            where = f"({where}) AND t >= $since"
            params["since"] = _naive(since)
        if until is not None:
            where = f"({where}) AND t < $until"
            params["until"] = _naive(until)
        found = db.execute(f"SELECT id, filename, t FROM lines WHERE {where} ORDER BY t, id", params).fetchall()
        if not found:
            return []
        order = {lid: n for n, (lid, _, _) in enumerate(found)}
        files = sorted({f for _, f, _ in found})
        raw = db.execute("SELECT DISTINCT ON (json ->> '$.id') json::VARCHAR FROM "
                         "read_ndjson_objects(?, format = 'newline_delimited') WHERE json ->> '$.id' IN "
                         "(SELECT unnest(?))", [files, list(order)]).fetchall()
        lines = [json.loads(r[0]) for r in raw]
        return sorted(lines, key=lambda ln: order.get(ln.get("id"), len(order)))


def _spread(values: dict[str, Any]) -> dict[str, Any] | None:
    quantiles, high, n = values["q"], values["max"], values["n"]
    if not n:
        return None
    p50, p90, p99 = (round(q, 3) for q in quantiles)
    return {"p50": p50, "p90": p90, "p99": p99, "max": round(high, 3), "count": n}


def _object(obj: dict[str, Any] | None) -> dict[str, Any]:
    obj = obj or {}
    return {"storage": obj.get("storage"), "bucket": obj.get("bucket"), "key": obj.get("key"),
            "route": obj.get("route")}


def _split_key(text: str) -> tuple[str | None, str]:
    """``s3://bucket/key`` / ``cos://bucket/key`` / ``vod://SubAppId/FileId`` → ``(bucket, key)``; anything else
    is a bare key (a VOD FileId is one)."""
    for scheme in ("s3://", "cos://", "vod://"):
        if text.startswith(scheme) and "/" in text[len(scheme):]:
            bucket, key = text[len(scheme):].split("/", 1)
            return bucket, key
    return None, text
