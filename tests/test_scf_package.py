"""The SCF build (``python3 tasks.py package-scf``): zip packages for SCF's Python3.10 runtime on x86_64.

The packages are built once per module (both layouts, about 15 s each: pip fetches the manylinux wheels) and then
checked as SCF would meet them: what is inside, bytecode compiled by 3.10 that SCF can use from a read-only folder,
and the two functions run from the unpacked packages under a CPython 3.10 interpreter in isolated mode (nothing
but the package, its layer and the standard library importable) against the local stack. Needs a CPython 3.10
interpreter (``python3.10`` on PATH or pyenv's); without one these tests are skipped, saying so.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

from mpslocal.container import FunctionContainer
from mpslocal.media import make_clip
from mpslocal.runner import CosTrigger, FunctionUrlServer
from mpslocal.scf_package import (FORBIDDEN, MiB, Package, BuildError, build, check_interpreter, check_limits, tidy,
                                  write_zip)
from tasks import find_python
from tests.conftest import wait_for

PY310 = find_python("3.10")
pytestmark = pytest.mark.skipif(PY310 is None, reason="no CPython 3.10 interpreter (SCF's runtime) on PATH or in "
                                                      "pyenv: the SCF packages cannot be compiled or run here")
NEVER_PACKAGED = {"boto3", "botocore", "s3transfer", "moto", "mpslocal", "tencentcloud", "pytest", "hypothesis",
                  "cfnlint", "samtranslator", "yaml", "imageio_ffmpeg"}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> tuple[Path, list[Package]]:
    out = tmp_path_factory.mktemp("scf") / "bundled"
    return out, build(out, PY310)


@pytest.fixture(scope="module")
def layered(tmp_path_factory) -> tuple[Path, list[Package]]:
    out = tmp_path_factory.mktemp("scf") / "layered"
    return out, build(out, PY310, layer=True)


def magic_310() -> bytes:
    out = subprocess.run([PY310, "-I", "-c", "import importlib.util,sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
                         capture_output=True, text=True, check=True)
    return bytes.fromhex(out.stdout)


def test_each_function_package_holds_its_code_the_core_and_wheels_for_cpython310_x86_64(bundled):
    out, packages = bundled
    assert [p.path.name for p in packages] == ["mps-triggers-submit.zip", "mps-triggers-archive.zip",
                                               "mps-triggers-compact.zip", "mps-triggers-vod.zip"]
    for package in packages:
        with zipfile.ZipFile(package.path) as zf:
            names = zf.namelist()
            assert "app.py" in names and "mps_triggers/__init__.py" in names and "qcloud_cos/__init__.py" in names
            assert "pydantic_core/_pydantic_core.cpython-310-x86_64-linux-gnu.so" in names
            assert "crcmod/_crcfunpy.py" in names  # crcmod's pure-Python fallback (it ships no wheel)
            assert not {n.split("/")[0].split("-")[0] for n in names} & NEVER_PACKAGED
            # installed metadata lists only what is in the package (no console scripts with this machine's paths)
            for record in (n for n in names if n.endswith(".dist-info/RECORD")):
                listed = {line.split(",", 1)[0] for line in zf.read(record).decode().splitlines()}
                assert listed <= set(names), f"{record} lists files outside the package: {listed - set(names)}"
            for so in (n for n in names if n.endswith(".so")):
                assert so.endswith((".abi3.so", ".cpython-310-x86_64-linux-gnu.so")), so
                header = zf.read(so)[:20]
                assert header[:4] == b"\x7fELF" and struct.unpack("<H", header[18:20])[0] == 0x3E, f"{so}: not x86_64"
        assert package.zipped < 50 * MiB and package.unpacked < 500 * MiB
    assert (out / "submit" / "app.py").read_bytes() == (Path("functions/submit/app.py")).read_bytes()


def test_every_module_has_310_bytecode_that_never_needs_its_source_checked(bundled):
    """SCF's code folder is read-only and zip timestamps are not trusted: a timestamp .pyc whose source looks newer
    is recompiled in memory on every cold start. Ours are hash-based and unchecked (PEP 552 flags 0b01)."""
    out, packages = bundled
    magic = magic_310()
    with zipfile.ZipFile(packages[0].path) as zf:
        names = set(zf.namelist())
        sources = [n for n in names if n.endswith(".py")]
        assert len(sources) > 500
        for src in sources:
            folder, _, file = src.rpartition("/")
            pyc = f"{folder + '/' if folder else ''}__pycache__/{file[:-3]}.cpython-310.pyc"
            assert pyc in names, f"{src} has no 3.10 bytecode"
        for pyc in [n for n in names if n.endswith(".pyc")][:200]:
            header = zf.read(pyc)[:8]
            assert header[:4] == magic and struct.unpack("<I", header[4:8])[0] == 0b01, pyc
        assert not [n for n in names if n.endswith(".pyc") and ".cpython-310." not in n]


def test_packaged_functions_run_under_python310_from_cos_upload_to_cos_archive(layered, stack, mps, tmp_path):
    """The layered build, unpacked as SCF does (function at /var/user, layer at /opt), runs under CPython 3.10 with
    nothing else importable: a COS upload is submitted with SCF's role keys (TENCENTCLOUD_*), MPS calls back to the
    archive function's URL (signed, with the token), and the FINISH line lands in the COS archive."""
    out, _ = layered
    cos = stack.cos()
    bucket, archive = f"pkg-{uuid.uuid4().hex[:8]}-1250000000", f"pkgarc-{uuid.uuid4().hex[:8]}-1250000000"
    for b in (bucket, archive):
        cos.create_bucket(Bucket=b)
    env = stack.environment()
    role = {"TENCENTCLOUD_SECRETID": env["MPS_SECRET_ID"], "TENCENTCLOUD_SECRETKEY": env["MPS_SECRET_KEY"],
            **({"TENCENTCLOUD_SESSIONTOKEN": env["MPS_SESSION_TOKEN"]} if "MPS_SESSION_TOKEN" in env else {})}
    common = {**role, "COS_ENDPOINT_URL": stack.moto.url, "MPS_NOTIFY_KEY": "pkg-notify-key",
              "ARCHIVE_URI": f"cos://{archive}/callbacks", "ARCHIVE_REGION": "ap-guangzhou"}
    archive_fn = FunctionContainer("archive-pkg", out / "archive" / "app.py", {**common, "CALLBACK_TOKEN": "pkg-token"},
                                   tmp_path / "archive.log", platform="scf", python=PY310, layers=[out / "layer"])
    server = FunctionUrlServer(archive_fn, platform="scf")
    submit_fn = FunctionContainer("submit-pkg", out / "submit" / "app.py", {
        **common, "MPS_ENDPOINT": env["MPS_ENDPOINT"], "MPS_SCHEDULE_ID": "20001",
        "MPS_NOTIFY_URL": f"{server.url}?token=pkg-token"}, tmp_path / "submit.log", platform="scf", python=PY310,
        layers=[out / "layer"])
    mps.complete_after = 0.1
    mps.deliveries.clear()
    try:
        for fn in (submit_fn, archive_fn):  # really SCF's interpreter, not this one
            assert os.path.realpath(f"/proc/{fn._proc.pid}/exe") == os.path.realpath(PY310)
        trigger = CosTrigger(cos, bucket, "ap-guangzhou", submit_fn)
        trigger.put("uploads/clip 1.mp4", make_clip(1.0, 3))
        [task] = mps.state.tasks
        assert task.body["InputInfo"]["CosInputInfo"] == {"Bucket": bucket, "Region": "ap-guangzhou",
                                                          "Object": "/uploads/clip 1.mp4"}
        assert wait_for(lambda: any(d.ok for d in mps.deliveries))
        keys = [o["Key"] for o in cos.list_objects(Bucket=archive).get("Contents", [])]
        lines = [json.loads(x) for k in keys
                 for x in cos.get_object(Bucket=archive, Key=k)["Body"].get_raw_stream().read().decode().splitlines()]
        callbacks = [x for x in lines if x["event_type"] != "submissions"]
        assert [(x["status"], x["object"]["key"]) for x in callbacks] == [("FINISH", "uploads/clip 1.mp4")]
        # the submit function's ledger, in the COS archive with the role's key
        assert [(x["result"], x["task_id"], x["session_id"]) for x in lines if x["event_type"] == "submissions"] \
            == [("submitted", task.task_id, callbacks[0]["session_id"])]
        log = (tmp_path / "submit.log").read_text()
        assert "TENCENTCLOUD" not in log and env["MPS_SECRET_KEY"] not in log
    finally:
        mps.complete_after = None
        server.stop()
        submit_fn.close()
        archive_fn.close()


def test_packaged_function_cannot_see_anything_outside_its_package(layered, tmp_path):
    """The isolation is real: without its layer the function fails to import its core, as it would on SCF."""
    out, _ = layered
    fn = FunctionContainer("no-layer", out / "submit" / "app.py", {}, tmp_path / "x.log", platform="scf", python=PY310)
    try:
        with pytest.raises(Exception):
            fn.invoke({"Records": []})
    finally:
        fn.close()


def test_layer_layout_puts_everything_in_the_layer_and_only_app_in_the_functions(layered):
    out, packages = layered
    assert [p.path.name for p in packages] == ["mps-triggers-core-layer.zip", "mps-triggers-submit.zip",
                                               "mps-triggers-archive.zip", "mps-triggers-compact.zip",
                                               "mps-triggers-vod.zip"]
    with zipfile.ZipFile(packages[0].path) as zf:
        assert "mps_triggers/config.py" in zf.namelist() and "app.py" not in zf.namelist()
    for p in packages[1:]:
        assert sorted(zipfile.ZipFile(p.path).namelist()) == ["__pycache__/app.cpython-310.pyc", "app.py"]


def test_zips_are_byte_for_byte_reproducible(layered, tmp_path):
    out, packages = layered
    again = write_zip(out / "submit", tmp_path / "again.zip")
    os.utime(out / "submit" / "app.py", (1, 1))  # file times do not reach the zip
    third = write_zip(out / "submit", tmp_path / "third.zip")
    assert again.sha256 == third.sha256 == packages[1].sha256


def test_size_limits_name_the_package_and_the_limit(bundled, layered):
    _, bundled_packages = bundled
    _, layered_packages = layered
    assert check_limits(bundled_packages, layer=False) == [] and check_limits(layered_packages, layer=True) == []
    [problem, *_] = check_limits(bundled_packages, layer=False, zip_limit=MiB)
    assert "mps-triggers-submit.zip" in problem and "above SCF's 1.00 MiB upload limit" in problem
    problems = check_limits(layered_packages, layer=True, unpacked_limit=10 * MiB)
    assert len(problems) == len(layered_packages) - 1 and all("with its layer" in p and "10.00 MiB" in p for p in problems)


def test_the_command_fails_over_the_limit_and_prints_the_sizes(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mpslocal.scf_package", "--python", PY310, "--out",
                           str(tmp_path / "out"), "--zip-limit-mb", "1"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "mps-triggers-submit.zip" in done.stdout and "MiB" in done.stdout
    assert "above SCF's 1.00 MiB upload limit" in done.stderr


def test_forbidden_packages_are_refused(tmp_path):
    for name in ("mps_triggers", "boto3", "boto3-1.44.5.dist-info"):
        (tmp_path / name).mkdir()
    with pytest.raises(BuildError, match="forbidden packages in an SCF package: boto3"):
        tidy(tmp_path)
    assert "boto3" in FORBIDDEN and "moto" in FORBIDDEN


def test_only_a_310_interpreter_may_compile_the_packages():
    other = sys.executable if sys.version_info[:2] != (3, 10) else find_python("3.11")
    if other is None:
        pytest.skip("no interpreter other than 3.10 to try")
    with pytest.raises(BuildError, match="needs .pyc files compiled by CPython 3.10"):
        check_interpreter(other)
