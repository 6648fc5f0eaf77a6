"""A cold start imports only what the function's code needs before its first invocation (issue 14): importing
``functions/*/app.py`` builds no pydantic model and imports neither pydantic nor an SDK; the configuration is read
and validated once, by the first invocation, and kept for the container. ``bench cold_start`` measures the time."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pydantic", "boto3", "botocore", "httpx", "qcloud_cos")


@pytest.mark.parametrize("function", ["submit", "archive", "compact", "vod"])
def test_importing_a_function_loads_no_configuration_model_and_no_sdk(function):
    code = (f"import sys, json; sys.path[:0] = [{str(ROOT / 'functions' / function)!r}, "
            f"{str(ROOT / 'layers' / 'core')!r}]; import app; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
            f"or m == 'mps_triggers.config')))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_a_bad_setting_still_fails_the_first_invocation_with_the_setting_named():
    """The configuration is read by the first invocation now, and checked before any work as before."""
    code = ("import sys; sys.path[:0] = [%r, %r]; import app\n"
            "try:\n    app.handler({'Records': []}, None)\nexcept Exception as exc:\n"
            "    print('RAISED', type(exc).__name__, exc)\n"
            % (str(ROOT / "functions" / "submit"), str(ROOT / "layers" / "core")))
    env = {"PATH": "/usr/bin:/bin", "MPS_SCHEDULE_ID": "not-a-number", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd="/", env=env)
    raised = [line for line in out.stdout.splitlines() if line.startswith("RAISED")]
    assert raised and raised[0].startswith("RAISED ConfigError MPS_SCHEDULE_ID:"), out.stdout + out.stderr
    logged = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"level"')]
    assert logged[0]["message"] == "invalid configuration" and logged[0]["variable"] == "MPS_SCHEDULE_ID"
