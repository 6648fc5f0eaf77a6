"""Reduced versions of the burst, archive fault, webhook digest and deadline benchmarks (bench/burst.py,
bench/archive_faults.py, bench/webhook_digest.py, bench/deadline.py): CI fails on any object lost or submitted
twice, any callback missing from the archive or redelivered because of a chat push, any invocation past its
deadline. The full runs are documented commands (README, Reliability)."""
from __future__ import annotations

from mpslocal.reliability import run_archive, run_burst, run_deadline, run_webhook_digest


def test_burst_under_faults_loses_nothing_and_submits_nothing_twice(tmp_path):
    """500 uploads through the S3 queue and 100 through the COS trigger, against 100 requests/s with 10 %
    throttling, 2 % HTTP 5xx, 1 % timeouts, 2 % dropped connections and 5 % of upload messages delivered twice."""
    r = run_burst(s3_uploads=500, cos_uploads=100, concurrency=4, throttle=0.10, http5xx=0.02, timeout=0.01,
                  drop=0.02, duplicate_uploads=0.05, log_dir=tmp_path, max_seconds=240)
    assert r.lost == 0, r.lost_examples
    assert r.submitted_twice_or_more == 0
    assert r.submitted_once + r.in_dlq == 600
    assert r.duplicated_uploads > 0 and sum(r.injected.values()) > 0  # the faults really happened
    # the per-second series counts every accepted request, and the containers' busy shares were measured
    assert sum(s[0] for s in r.per_second) >= r.submitted_once
    assert sum(s[1] for s in r.per_second) == r.rejected_by_limit
    assert 0 < r.busy_s3 <= 1 and 0 < r.busy_cos <= 1


def test_archive_under_write_failures_and_duplicates_misses_no_callback():
    """1,000 callbacks, half through SQS and half through HTTP, 10 % delivered twice, 30 % of archive PUTs failing
    (enough to get past the SDK's own retries, so records fail and are delivered again)."""
    r = run_archive(callbacks=1000, sqs_share=0.5, write_failure=0.30, duplicate=0.10)
    assert r.missing == 0
    assert r.injected_put_failures > 0
    assert r.sqs_record_failures + r.http_retries > 0  # the record-level redelivery path was exercised
    assert r.in_dlq == 0


def test_digests_under_the_robots_limits_never_redeliver_a_callback():
    """1,500 callbacks in SQS batches of 50 (30 digests) against a WeCom robot allowing 20 a minute and 4,096 bytes."""
    r = run_webhook_digest(callbacks=1500, batch=50)
    assert (r.records_failed, r.in_dlq, r.max_receive_count) == (0, 0, 1)
    assert r.max_per_minute <= 20 and r.refused == 0 and r.largest_bytes <= 4096
    assert r.push_failed > 0 and r.delivered == 20  # the pacing really held digests back, and they were recorded
    assert r.uncovered == 0 and r.missing_from_archive == 0


def test_trickling_peers_never_hold_an_invocation_past_its_deadline():
    """100 uploads while MPS trickles a tenth of its answers; 300 + 20 callbacks while the webhook trickles all."""
    r = run_deadline(uploads=100, callbacks=300, http_callbacks=20, trickle_rate=0.15)
    assert r.submit_max_seconds < r.submit_timeout and r.trickled_requests > 0
    assert r.archive_sqs_max_seconds < r.archive_timeout and r.archive_http_max_seconds < r.archive_timeout
    assert (r.uploads_lost, r.submitted_twice, r.uploads_in_dlq) == (0, 0, 0) and r.submitted_once == 100
    assert (r.archive_records_failed, r.callbacks_missing) == (0, 0) and r.push_failed > 0
