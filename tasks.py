#!/usr/bin/env python3
"""Project commands for a fresh machine that has only Python (3.10 or newer).

    python3 tasks.py demo            run the submit job end to end on the local stack
    python3 tasks.py test [ARGS]     run the whole test suite (ARGS go to pytest)
    python3 tasks.py bench NAME      run a benchmark from bench/ (cold_start, batch_latency, archive)

Each command first makes sure `.venv/` exists and holds the pinned runtime and dev requirements
(`layers/core/requirements.txt`, `dev/requirements.txt`); it reinstalls only when those files change.
Standard library only: this file runs before anything is installed.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".requirements.sha256"
INPUTS = ("pyproject.toml", "layers/core/requirements.txt", "dev/requirements.txt")


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _digest() -> str:
    h = hashlib.sha256()
    for name in INPUTS:
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_venv() -> Path:
    """Create `.venv` and install the project with its dev extras when missing or out of date."""
    if sys.version_info < (3, 10):
        sys.exit(f"mps-triggers needs Python 3.10 or newer, this is {sys.version.split()[0]}")
    if not _python().exists():
        print(f"creating {VENV.relative_to(ROOT)} with {sys.executable}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = _digest()
    if not STAMP.exists() or STAMP.read_text().strip() != digest:
        print("installing pinned requirements into .venv (first run takes about a minute)", flush=True)
        pip = [str(_python()), "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "install", "-U", "pip"], check=True)
        subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
        STAMP.write_text(digest)
    return _python()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "bench", "venv"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = str(ensure_venv())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if command == "venv":
        return 0
    if command == "demo":
        return subprocess.call([python, "-m", "mpslocal.demo", *rest], cwd=ROOT, env=env)
    if command == "test":
        return subprocess.call([python, "-m", "pytest", *rest], cwd=ROOT, env=env)
    if not rest:
        print("usage: python3 tasks.py bench {cold_start|batch_latency|archive} [ARGS]")
        return 2
    return subprocess.call([python, str(ROOT / "bench" / f"{rest[0]}.py"), *rest[1:]], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
