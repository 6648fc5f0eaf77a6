"""What `pip install .` gives a user: only the library and the operator command (no dev tools), dependency ranges
rather than pins, a license; and the package docstring's example runs as written."""
from __future__ import annotations

import doctest
import email
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import mps_triggers

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_docstring_example_runs():
    result = doctest.testmod(mps_triggers, raise_on_error=False)
    assert result.attempted >= 5 and result.failed == 0


def test_pip_install_gives_the_library_and_the_command_only_with_ranges_and_a_license(tmp_path):
    # built from the files a clone has (not this tree's build/ or egg-info leftovers)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    source = tmp_path / "src"
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "wheel", "--no-deps",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("mps_triggers-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = email.message_from_bytes(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
        license_text = z.read(next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))).decode()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == \
        {"mps_triggers", "mps_triggers_cli"}
    assert "MIT License" in license_text and meta["License-Expression"] == "MIT"
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("httpx") for r in requires) and any("duckdb" in r and "extra" in r for r in requires)
    assert not [r for r in requires if "==" in r.split(";")[0]], requires  # ranges, not pins
    assert "mps-triggers = mps_triggers_cli.main:main" in entry_points
    # installed into a fresh environment (no dependencies fetched): the command is there, the local stack is not
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # this checkout is not on that venv's path
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps",
                    str(wheel)], check=True, timeout=300, env=clean)
    assert (env_dir / "bin" / "mps-triggers").exists()
    probe = "import importlib.util as u; print([u.find_spec(m) is not None for m in ('mps_triggers', 'mpslocal')])"
    out = subprocess.run([str(python), "-I", "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[True, False]"
