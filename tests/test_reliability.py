"""Reduced versions of the burst and archive fault benchmarks (bench/burst.py, bench/archive_faults.py): CI fails
on any object lost or submitted twice, or any callback missing from the archive. The full runs are documented
commands (README, Reliability)."""
from __future__ import annotations

from mpslocal.reliability import run_archive, run_burst


def test_burst_under_faults_loses_nothing_and_submits_nothing_twice(tmp_path):
    """500 uploads through the S3 queue and 100 through the COS trigger, against 100 requests/s with 10 %
    throttling, 2 % HTTP 5xx, 1 % timeouts, 2 % dropped connections and 5 % of upload messages delivered twice."""
    r = run_burst(s3_uploads=500, cos_uploads=100, concurrency=4, throttle=0.10, http5xx=0.02, timeout=0.01,
                  drop=0.02, duplicate_uploads=0.05, log_dir=tmp_path, max_seconds=240)
    assert r.lost == 0, r.lost_examples
    assert r.submitted_twice_or_more == 0
    assert r.submitted_once + r.in_dlq == 600
    assert r.duplicated_uploads > 0 and sum(r.injected.values()) > 0  # the faults really happened


def test_archive_under_write_failures_and_duplicates_misses_no_callback():
    """1,000 callbacks, half through SQS and half through HTTP, 10 % delivered twice, 30 % of archive PUTs failing
    (enough to get past the SDK's own retries, so records fail and are delivered again)."""
    r = run_archive(callbacks=1000, sqs_share=0.5, write_failure=0.30, duplicate=0.10)
    assert r.missing == 0
    assert r.injected_put_failures > 0
    assert r.sqs_record_failures + r.http_retries > 0  # the record-level redelivery path was exercised
    assert r.in_dlq == 0
