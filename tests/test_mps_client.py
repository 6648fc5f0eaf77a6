"""MpsClient against the local MPS emulator over real HTTP: error families, retries, deadlines."""
from __future__ import annotations

import threading
import time

import pytest

from mps_triggers import mps as m
from mps_triggers.mps import Credentials, MpsClient, RetryPolicy, map_error

BODY = {"InputInfo": {"Type": "COS", "CosInputInfo": {"Bucket": "in-1250000000", "Region": "ap-guangzhou",
                                                      "Object": "/a.mp4"}}, "ScheduleId": 1}


@pytest.fixture
def client(mps):
    sid = next(iter(mps.credentials))
    c = MpsClient(mps.url, Credentials(sid, mps.credentials[sid][0]), timeout=2.0,
                  retry=RetryPolicy(max_attempts=4, base=0.01, cap=0.05))
    yield c
    c.close()


def body(sid: str) -> dict:
    return {**BODY, "SessionId": sid}


@pytest.mark.parametrize("code,family", [
    ("RequestLimitExceeded", m.MpsThrottlingError), ("RequestLimitExceeded.UinLimitExceeded", m.MpsThrottlingError),
    ("InternalError", m.MpsServerError), ("InternalError.AccessDBError", m.MpsServerError),
    ("ResourceUnavailable", m.MpsServerError), ("FailedOperation.NetWorkError", m.MpsServerError),
    ("InvalidParameterValue.SessionId", m.MpsDuplicateSessionError),
    ("InvalidParameterValue.SessionIdTooLong", m.MpsInvalidRequestError), ("InvalidParameter", m.MpsInvalidRequestError),
    ("AuthFailure.SignatureFailure", m.MpsAuthError), ("UnauthorizedOperation", m.MpsAuthError),
    ("ResourceNotFound.CosBucketNotExist", m.MpsAccountError), ("FailedOperation.InvalidMpsUser", m.MpsAccountError),
    ("SomethingNew.Entirely", m.MpsPermanentError),
])
def test_error_codes_map_to_families(code, family):
    err = map_error(code, "msg", "rid")
    assert type(err) is family and err.code == code and err.request_id == "rid"
    assert isinstance(err, m.MpsError)


def test_success_returns_task_id_and_request_id(client, mps):
    result = client.process_media(body("s1"))
    assert result.response["TaskId"] == mps.tasks[0].task_id and result.response["RequestId"]
    assert result.attempts == 1


def test_duplicate_session_is_typed_and_not_retried(client, mps):
    client.process_media(body("s2"))
    with pytest.raises(m.MpsDuplicateSessionError) as info:
        client.process_media(body("s2"))
    assert info.value.request_id and len(mps.requests) == 2


@pytest.mark.parametrize("fault", ["RequestLimitExceeded", "InternalError", "HTTP503", "HTTP429", "drop",
                                   "FailedOperation.NetWorkError"])
def test_transient_faults_are_retried_then_succeed(client, mps, fault):
    mps.inject(fault, times=2)
    result = client.process_media(body(f"t-{fault}"))
    assert result.attempts == 3 and len(result.retried) == 2
    assert len(mps.tasks) == 1


def test_permanent_errors_fail_at_once(client, mps):
    mps.inject("AuthFailure.SecretIdNotFound", times=5)
    with pytest.raises(m.MpsAuthError):
        client.process_media(body("p1"))
    assert len(mps.requests) == 1
    mps.state.faults.clear()
    with pytest.raises(m.MpsInvalidRequestError) as info:
        client.process_media({**body("p2"), "OutputDir": "no-slashes"})
    assert info.value.code == "InvalidParameterValue" and len(mps.requests) == 2


def test_transient_errors_give_up_after_max_attempts(client, mps):
    mps.inject("InternalError", times=10)
    with pytest.raises(m.MpsServerError):
        client.process_media(body("g1"))
    assert len(mps.requests) == 4


def test_throttling_is_retried_past_max_attempts_until_its_own_bound(mps):
    """A per-second limit frees within a second: throttles do not use up max_attempts (other errors do)."""
    sid = next(iter(mps.credentials))
    c = MpsClient(mps.url, Credentials(sid, mps.credentials[sid][0]),
                  retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.02, max_throttled_attempts=6))
    mps.inject("RequestLimitExceeded", times=5)
    result = c.process_media(body("th1"))
    assert result.attempts == 6 and result.retried.count("RequestLimitExceeded") == 5
    mps.inject("RequestLimitExceeded", times=10)
    with pytest.raises(m.MpsThrottlingError):
        c.process_media(body("th2"))
    assert len([r for r in mps.requests if r.verdict.startswith("injected")]) == 11
    mps.state.faults.clear()
    mps.inject("RequestLimitExceeded", times=1)
    mps.inject("InternalError", times=2)
    with pytest.raises(m.MpsServerError):  # 2 non-throttling failures exhaust max_attempts=2
        c.process_media(body("th3"))
    c.close()


def test_signature_expire_is_retried_once(client, mps):
    mps.inject("AuthFailure.SignatureExpire", times=1)
    assert client.process_media(body("e1")).attempts == 2
    mps.inject("AuthFailure.SignatureExpire", times=3)
    with pytest.raises(m.MpsAuthError):
        client.process_media(body("e2"))


def test_timeout_then_duplicate_means_accepted_once(mps):
    """The first attempt times out after MPS accepted it; the retry is rejected as a duplicate session."""
    sid = next(iter(mps.credentials))
    c = MpsClient(mps.url, Credentials(sid, mps.credentials[sid][0]), timeout=0.3,
                  retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.02))
    mps.inject("sleep:0.8")
    with pytest.raises(m.MpsDuplicateSessionError):
        c.process_media(body("late"))
    time.sleep(0.6)
    assert len(mps.tasks) == 1
    c.close()


def test_retries_stop_at_the_deadline(mps):
    sid = next(iter(mps.credentials))
    c = MpsClient(mps.url, Credentials(sid, mps.credentials[sid][0]), timeout=2,
                  retry=RetryPolicy(max_attempts=50, base=0.2, cap=0.2))
    mps.inject("RequestLimitExceeded", times=100)
    start = time.monotonic()
    with pytest.raises(m.MpsThrottlingError):
        c.process_media(body("d1"), deadline=time.monotonic() + 1.0)
    assert time.monotonic() - start < 1.0
    c.close()


def test_connection_refused_is_a_network_error_after_which_mps_surely_did_nothing():
    c = MpsClient("http://127.0.0.1:9", Credentials("id", "key"), retry=RetryPolicy(max_attempts=2, base=0.01))
    with pytest.raises(m.MpsNetworkError) as info:
        c.process_media(body("n1"))
    assert info.value.code == "ConnectError" and not info.value.maybe_processed  # safe to send again, even unsessioned


def test_throttled_burst_all_accepted_exactly_once(client, mps):
    """20 concurrent calls against a 3 requests/s limit (a new client's allowance is 5): throttled calls are retried,
    each accepted once."""
    mps.rate_limit = 3
    c = MpsClient(client.url, client.credentials(), timeout=2, retry=RetryPolicy(max_attempts=20, base=0.2, cap=1.0))
    errors: list[Exception] = []

    def go(i: int) -> None:
        try:
            c.process_media(body(f"burst-{i}"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(t.session_id for t in mps.tasks) == sorted(f"burst-{i}" for i in range(20))
    assert any(r.verdict == "RequestLimitExceeded" for r in mps.requests)
    c.close()


def test_credentials_resolved_lazily_once(mps):
    sid = next(iter(mps.credentials))
    calls = []

    def provider():
        calls.append(1)
        return Credentials(sid, mps.credentials[sid][0])

    c = MpsClient(mps.url, provider)
    assert calls == []
    c.process_media(body("lazy1"))
    c.process_media(body("lazy2"))
    assert calls == [1]
    assert "key" not in repr(c.credentials()).lower().replace("secret_id", "")
    c.close()
