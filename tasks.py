#!/usr/bin/env python3
"""Project commands for a fresh machine that has only Python (3.10 or newer).

    python3 tasks.py demo                    the whole loop on the local stack (upload → submit → MPS → archive)
    python3 tasks.py test [ARGS]             run the whole test suite (ARGS go to pytest)
    python3 tasks.py test --python PY [ARGS] the same under another interpreter (e.g. 3.10, SCF's runtime)
    python3 tasks.py fuzz [N]                the property tests with N examples each (default 10,000; CI runs
                                             a reduced, derandomized count)
    python3 tasks.py package-scf [--layer]   build SCF zip packages (Python3.10, x86_64) into build/scf/
    python3 tasks.py bench [--python PY] NAME [ARGS]
                                             run a benchmark from bench/ (cold_start, batch_latency, archive,
                                             archive_faults, burst, backfill, scf_cold_start, webhook_digest,
                                             deadline, callback_latency, compact, report, vod_poll), or `all`:
                                             every one at a reduced size and one table of figures against
                                             targets
    python3 tasks.py stack [ARGS]            the local stack alone (moto and the MPS emulator on ports 5055 and
                                             5056, the secrets and buckets env.json names) for
                                             `sam local invoke --env-vars env.json`; prints its endpoints
    python3 tasks.py find-python 3.10        print the path of a CPython 3.10 interpreter, or fail

Each command first makes sure `.venv/` exists and holds the pinned runtime, dev and operator-command requirements
(`layers/core/requirements.txt`, `dev/requirements.txt`, `cli/requirements.txt`) and the `mps-triggers` command
(`.venv/bin/mps-triggers`); it reinstalls only when those files change. With
`--python PY`, the environment is `.venv-<major.minor>/`, made with that interpreter.
Standard library only: this file runs before anything is installed.
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PINS = ("layers/core/requirements.txt", "cli/requirements.txt", "dev/requirements.txt")
INPUTS = ("pyproject.toml", *PINS)
COMMANDS = {"demo", "test", "fuzz", "bench", "venv", "package-scf", "find-python", "stack"}
FUZZ_TESTS = ("tests/test_fuzz.py", "tests/test_callbacks_robust.py")


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-I", "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (int(parts[1]), int(parts[2])) if out.returncode == 0 and parts[:1] == ["cpython"] else None


def find_python(version: str) -> str | None:
    """A CPython ``version`` ("3.10") interpreter: ``$SCF_PYTHON``, ``python3.10`` on PATH, then pyenv's versions
    (``$PYENV_ROOT``, ``~/.pyenv``), newest patch first. None when there is none."""
    wanted = tuple(int(x) for x in version.split("."))
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [os.environ.get("SCF_PYTHON"), shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(str(pyenv / "versions" / f"{version}.*" / "bin" / "python")),
                         key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()], reverse=True)
    for candidate in filter(None, candidates):
        if _version_of(candidate) == wanted:
            return candidate
    return None


def _digest() -> str:
    h = hashlib.sha256()
    for name in INPUTS:
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_venv(interpreter: str | None = None) -> Path:
    """Create the environment (`.venv`, or `.venv-X.Y` for another ``interpreter``) and install the project with
    its dev extras when missing or out of date. Returns its python."""
    version = _version_of(interpreter) if interpreter else sys.version_info[:2]
    if version is None:
        sys.exit(f"{interpreter} is not a CPython interpreter that runs")
    if version < (3, 10):
        sys.exit(f"mps-triggers needs Python 3.10 or newer, {interpreter or sys.executable} is {version}")
    venv_dir = ROOT / (f".venv-{version[0]}.{version[1]}" if interpreter else ".venv")
    python, stamp = _python(venv_dir), venv_dir / ".requirements.sha256"
    if not python.exists():
        print(f"creating {venv_dir.name} with {interpreter or sys.executable}", flush=True)
        if interpreter:
            subprocess.run([interpreter, "-m", "venv", "--clear", str(venv_dir)], check=True)
        else:
            venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    digest = _digest()
    if not stamp.exists() or stamp.read_text().strip() != digest:
        print(f"installing pinned requirements into {venv_dir.name} (first run takes about a minute)", flush=True)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "install", "-U", "pip"], check=True)
        # the exact pins (the layer's, the command's, the dev tools'), then the project itself on top of them
        subprocess.run([*pip, "install", *(a for name in PINS for a in ("-r", str(ROOT / name)))], check=True)
        subprocess.run([*pip, "install", "--no-deps", "-e", str(ROOT)], check=True)
        stamp.write_text(digest)
    _dev_path(python)
    return python


def _dev_path(python: Path) -> None:
    """Put ``dev/`` (the local stack, ``mpslocal``, which the package does not ship) on the environment's path."""
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    pth = Path(purelib) / "mps_triggers_dev.pth"
    wanted = f"{ROOT / 'dev'}\n"
    if not pth.exists() or pth.read_text() != wanted:
        pth.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "find-python":
        found = find_python(rest[0] if rest else "3.10")
        print(found or f"no CPython {rest[0] if rest else '3.10'} found (looked at $SCF_PYTHON, PATH and pyenv)",
              file=sys.stdout if found else sys.stderr)
        return 0 if found else 1
    interpreter = None
    if command in ("test", "bench") and rest[:1] == ["--python"]:
        if len(rest) < 2:
            print(f"usage: python3 tasks.py {command} --python PY [ARGS]")
            return 2
        spec, rest = rest[1], rest[2:]
        interpreter = find_python(spec) if spec[:1].isdigit() else spec  # "3.10" or a path
        if interpreter is None:
            print(f"no CPython {spec} found (looked at $SCF_PYTHON, PATH and pyenv)")
            return 1
    python = str(ensure_venv(interpreter))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if command == "venv":
        return 0
    if command == "demo":
        return subprocess.call([python, "-m", "mpslocal.demo", *rest], cwd=ROOT, env=env)
    if command == "stack":
        try:
            return subprocess.call([python, "-m", "mpslocal.serve", "--bare", *rest], cwd=ROOT, env=env)
        except KeyboardInterrupt:
            return 0
    if command == "test":
        return subprocess.call([python, "-m", "pytest", *rest], cwd=ROOT, env=env)
    if command == "fuzz":
        count = rest[0] if rest and rest[0].isdigit() else "10000"
        env["FUZZ_EXAMPLES"] = count
        print(f"fuzzing: {count} examples per property ({', '.join(FUZZ_TESTS)})", flush=True)
        return subprocess.call([python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--timeout=0", *FUZZ_TESTS,
                                *rest[1 if rest and rest[0].isdigit() else 0:]], cwd=ROOT, env=env)
    if command == "package-scf":
        if "--python" not in rest:
            scf_python = find_python("3.10")
            if not scf_python:
                print("package-scf needs a CPython 3.10 interpreter (SCF's Python3.10 runtime) to compile the .pyc "
                      "files: none on PATH (python3.10) or in pyenv; install one or pass --python PATH")
                return 1
            rest = ["--python", scf_python, *rest]
        return subprocess.call([python, "-m", "mpslocal.scf_package", *rest], cwd=ROOT, env=env)
    if not rest:
        print("usage: python3 tasks.py bench [--python PY] {all|cold_start|batch_latency|archive|archive_faults|burst|backfill|"
              "scf_cold_start|webhook_digest|deadline|callback_latency|report|compact|vod_poll} [ARGS]")
        return 2
    return subprocess.call([python, str(ROOT / "bench" / f"{rest[0]}.py"), *rest[1:]], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
