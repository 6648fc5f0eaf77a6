"""Shared fixtures: sample events, the local stack (moto server + MPS emulator over real HTTP), handler loading."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import settings as hypothesis_settings

from mps_triggers import submit
from mps_triggers.config import load_settings
from mps_triggers.mps import Credentials, MpsClient, RetryPolicy
from mps_triggers.submit import SubmitJob
from mpslocal.container import load_app
from mpslocal.stack import LocalStack

# CI explores the same cases every run (reproducible, no surprise red build at landing); local runs explore new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

S3_SECRET = "test-s3-secret-key-0123456789"
NOTIFY_KEY = "test-notify-key-abcdef"


def wait_for(cond: Callable[[], Any], timeout: float = 15.0) -> bool:
    """Poll ``cond`` every 50 ms until it is true (→ True) or ``timeout`` seconds pass (→ False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def stack() -> Any:
    with LocalStack(rate_limit=None) as s:
        yield s


@pytest.fixture
def mps(stack: LocalStack) -> Any:
    """The emulator, reset: no tasks, no sessions, no faults, no rate limit unless a test sets one."""
    emu = stack.mps
    with emu._lock:
        emu.state.tasks.clear()
        emu.state.requests.clear()
        emu.state.sessions.clear()
        emu.state.faults.clear()
        emu.state.window.clear()
        emu.state.max_inflight = 0
    emu.rate_limit = None
    emu.latency = 0.0
    yield emu
    emu.rate_limit = None
    emu.latency = 0.0
    emu.state.faults.clear()


def base_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    env = {
        "MPS_ENDPOINT": stack.mps.url,
        "MPS_SECRET_ID": next(iter(stack.mps.credentials)),
        "MPS_SECRET_KEY": next(iter(stack.mps.credentials.values()))[0],
        "MPS_S3_SECRET_ID": "AKIATESTMPSREADER001",
        "MPS_S3_SECRET_KEY": S3_SECRET,
        "MPS_SCHEDULE_ID": "20001",
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


@pytest.fixture
def make_job(stack: LocalStack, mps: Any) -> Callable[..., SubmitJob]:
    """Build a SubmitJob from an environment (base_env plus overrides; ``None`` removes a variable)."""
    jobs: list[SubmitJob] = []

    def factory(retry: RetryPolicy | None = None, timeout: float = 5.0, **extra: Any) -> SubmitJob:
        settings = load_settings(base_env(stack, **extra))
        client = MpsClient(settings.mps_endpoint, Credentials(settings.mps_secret_id.get_secret_value(),
                                                              settings.mps_secret_key.get_secret_value()),
                           timeout=timeout, retry=retry or RetryPolicy(base=0.01, cap=0.05))
        job = SubmitJob(settings, client)
        jobs.append(job)
        return job

    yield factory
    for j in jobs:
        j.client.close()


@pytest.fixture
def handler_env(stack: LocalStack, mps: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Set the environment for functions/submit/app.py and return its module (fresh container each call)."""

    def apply(**extra: Any) -> Any:
        for k in list(os.environ):
            if k.startswith(("MPS_", "TENCENTCLOUD_", "ARCHIVE_")):
                monkeypatch.delenv(k)
        for k, v in base_env(stack, **extra).items():
            monkeypatch.setenv(k, v)
        submit.default_job.cache_clear()
        return load_app("submit")

    yield apply
    submit.default_job.cache_clear()
