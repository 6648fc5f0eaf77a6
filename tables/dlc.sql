-- mps-triggers archive on Tencent Cloud Data Lake Compute (DLC, standard Presto engine) over the COS archive: the
-- table (Hive JSON SerDe, as DLC's "Querying JSON Data" shows; .jsonl.gz objects are read as gzip by their
-- extension), its partitions, and the view the queries in queries.sql read, with the same columns as Athena's.
-- Replace ARCHIVE_BUCKET (name-appid) and ARCHIVE_PREFIX (ARCHIVE_URI = cos://ARCHIVE_BUCKET/ARCHIVE_PREFIX/).
-- README "Tables for Athena and DLC".
--
-- DLC registers Hive partitions of an external table when asked: run MSCK REPAIR TABLE after new hours appear
-- (hourly, after compaction, is enough), or ALTER TABLE ... ADD PARTITION for one hour. The partition event_type
-- is the EventType made path-safe ("submissions" is the ledger); error is typed, payload is left out (a
-- notification's free-form body has no fixed type; read it with `mps-triggers find --text`).

CREATE EXTERNAL TABLE IF NOT EXISTS mps_archive (
  id string,
  received_at string,
  `at` string,
  failed_at string,
  task_id string,
  status string,
  failed boolean,
  error struct<code:string,message:string,subtasks:array<struct<subtask:string,code:string,message:string>>>,
  session_id string,
  object struct<storage:string,bucket:string,key:string,route:string>,
  outputs array<string>,
  result string,
  origin string,
  generation int,
  api string,
  source struct<type:string,id:string>
)
PARTITIONED BY (event_type string, dt string, hour string)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
LOCATION 'cosn://ARCHIVE_BUCKET/ARCHIVE_PREFIX/';

MSCK REPAIR TABLE mps_archive;

CREATE OR REPLACE VIEW mps_lines AS
SELECT id, event_type, dt, hour,
       coalesce(received_at, "at", failed_at) AS t,
       task_id, status, failed, session_id,
       object.storage AS storage, object.bucket AS bucket, object.key AS object_key, object.route AS route,
       result, origin, generation,
       coalesce(error.code, element_at(error.subtasks, 1).code) AS error_code,
       coalesce(error.message, element_at(error.subtasks, 1).message) AS error_message
FROM (
  SELECT *, row_number() OVER (PARTITION BY id ORDER BY dt, hour) AS copy
  FROM mps_archive
)
WHERE copy = 1;
