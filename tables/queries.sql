-- The questions of `mps-triggers report`, in SQL for Athena (athena.sql) and DLC's Presto engine (dlc.sql): both
-- define the view mps_lines these read. Replace SINCE and UNTIL with UTC times ('2026-11-20T00:00:00'; line times
-- are ISO 8601 strings, so they compare as text) and, in mps_tasks, '6' HOUR with your stuck-after span.
-- Each statement starts with a "-- name:" line; tests/test_archive_report.py runs every one on DuckDB over an archive the
-- local stack wrote, with the same schema, and checks its answers.

-- name: mps_tasks
-- One row per task (a SessionId; a callback without one is its own task by TaskId): when it was first seen, its
-- submission, first PROCESSING and first FINISH, and its state.
CREATE OR REPLACE VIEW mps_tasks AS
WITH sub AS (
  SELECT session_id AS k, min(t) AS submitted_at, min(route) AS route, min(storage) AS storage,
         min(bucket) AS bucket, min(object_key) AS object_key
  FROM mps_lines
  WHERE event_type = 'submissions' AND result IN ('submitted', 'duplicate') AND session_id IS NOT NULL
  GROUP BY session_id
), cb AS (
  SELECT coalesce(session_id, task_id) AS k, min(t) AS first_callback, min(task_id) AS task_id,
         min(CASE WHEN upper(status) = 'PROCESSING' THEN t END) AS processing_at,
         min(CASE WHEN upper(status) = 'FINISH' THEN t END) AS finished_at,
         max(CASE WHEN upper(status) = 'FINISH' AND failed THEN 1 ELSE 0 END) AS failed,
         min(route) AS route, min(storage) AS storage, min(bucket) AS bucket, min(object_key) AS object_key
  FROM mps_lines
  WHERE event_type NOT IN ('submissions', 'push_failed') AND status IS NOT NULL
    AND coalesce(session_id, task_id) IS NOT NULL
  GROUP BY coalesce(session_id, task_id)
)
SELECT coalesce(sub.k, cb.k) AS k, cb.task_id, coalesce(sub.route, cb.route) AS route,
       coalesce(sub.storage, cb.storage) AS storage, coalesce(sub.bucket, cb.bucket) AS bucket,
       coalesce(sub.object_key, cb.object_key) AS object_key,
       coalesce(sub.submitted_at, cb.first_callback) AS first_seen, sub.submitted_at, cb.processing_at,
       cb.finished_at,
       CASE WHEN cb.finished_at IS NOT NULL THEN (CASE WHEN cb.failed = 1 THEN 'failed' ELSE 'succeeded' END)
            WHEN from_iso8601_timestamp(coalesce(sub.submitted_at, cb.first_callback))
                 <= current_timestamp - INTERVAL '6' HOUR THEN 'stuck'
            ELSE 'running' END AS state
FROM sub FULL OUTER JOIN cb ON sub.k = cb.k;

-- name: tasks_by_day_and_state
SELECT substr(first_seen, 1, 10) AS day, state, count(*) AS tasks
FROM mps_tasks
WHERE first_seen >= 'SINCE' AND first_seen < 'UNTIL'
GROUP BY substr(first_seen, 1, 10), state
ORDER BY day, state;

-- name: failures_by_code
-- Failed tasks by the error of their FINISH callback (the task's own, else its first failed subtask's).
SELECT l.error_code, l.error_message, count(DISTINCT t.k) AS tasks, min(t.task_id) AS example_task
FROM mps_tasks t
JOIN mps_lines l ON coalesce(l.session_id, l.task_id) = t.k
WHERE t.state = 'failed' AND upper(l.status) = 'FINISH' AND l.failed
  AND t.first_seen >= 'SINCE' AND t.first_seen < 'UNTIL'
GROUP BY l.error_code, l.error_message
ORDER BY tasks DESC, l.error_code;

-- name: durations_by_route
-- Seconds from submission to the first FINISH callback, per route.
SELECT route, count(*) AS tasks,
       approx_percentile(seconds, 0.5) AS p50, approx_percentile(seconds, 0.9) AS p90,
       approx_percentile(seconds, 0.99) AS p99, max(seconds) AS max_seconds
FROM (
  SELECT route, date_diff('millisecond', from_iso8601_timestamp(submitted_at),
                          from_iso8601_timestamp(finished_at)) / 1000.0 AS seconds
  FROM mps_tasks
  WHERE finished_at IS NOT NULL AND submitted_at IS NOT NULL AND finished_at >= submitted_at
    AND first_seen >= 'SINCE' AND first_seen < 'UNTIL'
) d
GROUP BY route
ORDER BY route;

-- name: stuck
SELECT k AS session_id, task_id, route, storage, bucket, object_key, first_seen
FROM mps_tasks
WHERE state = 'stuck' AND first_seen >= 'SINCE' AND first_seen < 'UNTIL'
ORDER BY first_seen;

-- name: submit_failures
-- Objects whose latest ledger line says failed (a later success clears it).
SELECT t, origin, storage, bucket, object_key, route, error_code, error_message
FROM (
  SELECT l.*, row_number() OVER (PARTITION BY storage, bucket, object_key ORDER BY t DESC) AS n
  FROM mps_lines l
  WHERE event_type = 'submissions'
) latest
WHERE n = 1 AND result = 'failed' AND t >= 'SINCE' AND t < 'UNTIL'
ORDER BY t;

-- name: objects_per_route
SELECT route, count(DISTINCT concat(storage, '/', bucket, '/', object_key)) AS objects
FROM mps_lines
WHERE object_key IS NOT NULL AND event_type = 'submissions' AND t >= 'SINCE' AND t < 'UNTIL'
GROUP BY route
ORDER BY route;
