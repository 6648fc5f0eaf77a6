-- mps-triggers archive on Amazon Athena: one table over the JSON lines (plain .jsonl and compacted .jsonl.gz,
-- which Athena reads by their extension), partitions by projection (no crawler, no MSCK REPAIR), and the view the
-- queries in queries.sql read. Replace ARCHIVE_BUCKET and ARCHIVE_PREFIX (the stack's ArchiveBucket and
-- ArchivePrefix: ARCHIVE_URI = s3://ARCHIVE_BUCKET/ARCHIVE_PREFIX/) and run each statement in the Athena console
-- or with `aws athena start-query-execution`. README "Tables for Athena and DLC".
--
-- Columns are the archive line's fields (README "Archive format"); a field a line lacks is NULL. The partition
-- event_type is the EventType made path-safe ("submissions" is the ledger, "push_failed" undelivered digests);
-- the notification's own EventType is payload's. error and payload are JSON text (json_extract_scalar reads them).

CREATE EXTERNAL TABLE IF NOT EXISTS mps_archive (
  id string,
  received_at string,
  `at` string,
  failed_at string,
  task_id string,
  status string,
  failed boolean,
  error string,
  session_id string,
  object struct<storage:string,bucket:string,key:string,route:string>,
  outputs array<string>,
  result string,
  origin string,
  generation int,
  api string,
  source struct<type:string,id:string>,
  payload string
)
PARTITIONED BY (event_type string, dt string, hour string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')
LOCATION 's3://ARCHIVE_BUCKET/ARCHIVE_PREFIX/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.event_type.type' = 'enum',
  'projection.event_type.values' = 'WorkflowTask,ScheduleTask,EditMediaTask,BatchTask,ExtractBlindWatermark,LiveStreamProcessTask,unknown,submissions,push_failed',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = 's3://ARCHIVE_BUCKET/ARCHIVE_PREFIX/event_type=${event_type}/dt=${dt}/hour=${hour}/'
);

-- One row per line, each id once (a redelivered batch and a compacted copy count once), flat columns.
CREATE OR REPLACE VIEW mps_lines AS
SELECT id, event_type, dt, hour,
       coalesce(received_at, "at", failed_at) AS t,
       task_id, status, failed, session_id,
       object.storage AS storage, object.bucket AS bucket, object.key AS object_key, object.route AS route,
       result, origin, generation,
       coalesce(json_extract_scalar(error, '$.code'), json_extract_scalar(error, '$.subtasks[0].code')) AS error_code,
       coalesce(json_extract_scalar(error, '$.message'), json_extract_scalar(error, '$.subtasks[0].message'))
         AS error_message
FROM (
  SELECT *, row_number() OVER (PARTITION BY id ORDER BY dt, hour) AS copy
  FROM mps_archive
)
WHERE copy = 1;
