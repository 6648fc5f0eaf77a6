"""Build SCF-ready zip packages of the two functions (dev-only tool; ``python3 tasks.py package-scf``).

SCF's newest documented Python runtime is ``Python3.10`` on x86_64 (SCF ``CreateFunction.Runtime``, tccli's
scf api.json). A package is what SCF unpacks to ``/var/user``: the function's ``app.py`` (handler
``app.main_handler``), the core library ``mps_triggers`` and the pinned runtime requirements
(``layers/core/requirements.txt``) resolved for CPython 3.10 on manylinux2014 x86_64 (glibc 2.17) from wheels
only, every module compiled to ``__pycache__/*.cpython-310.pyc`` by a Python 3.10 interpreter with
``unchecked-hash`` invalidation (the code folder is read-only on SCF, and zip timestamps cannot be trusted to match:
a timestamp pyc would be recompiled, in memory, at every cold start). No boto3, moto or dev tool goes in.

Two layouts:

- default: one self-contained zip per function (``mps-triggers-submit.zip``, ``-archive.zip``, ``-compact.zip``,
  ``-vod.zip``);
- ``--layer``: the core library and dependencies once, as an SCF layer (``mps-triggers-core-layer.zip``, unpacked
  to ``/opt``, which SCF's Python runtime puts on ``sys.path``: Layer management 583/37039), and function zips that
  hold only ``app.py``.

Every zip is deterministic (sorted entries, fixed timestamps), so an unchanged build gives identical bytes. The
build imports each function and every runtime dependency from the unpacked tree under the Python 3.10 interpreter
in isolated mode (nothing but the package, its layer and the standard library on ``sys.path``), prints each
package's size, and fails when a zip is above SCF's upload limit (``Code.ZipFile``: 50 MB) or a function with its
layer is above 500 MB unpacked (SCF quota limits 583/11637).

crcmod (required by cos-python-sdk-v5) publishes only a source distribution; its C extension is optional and the
package falls back to its pure-Python implementation (as ``sam build`` does on arm64), which the COS SDK uses only
to check CRC64 of resumable downloads, not on the archive's PUTs. It is copied from the sdist's ``python3`` tree.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "core"
FUNCTIONS = ("submit", "archive", "compact", "vod")
SCF_RUNTIME = "Python3.10"
PYTHON_VERSION = (3, 10)
PLATFORMS = ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")
ABIS = ("cp310", "abi3", "none")
MiB = 1024 * 1024
ZIP_LIMIT = 50 * MiB          # SCF CreateFunction Code.ZipFile: "zip包大小上限为 50MB"
UNPACKED_LIMIT = 500 * MiB    # SCF quota: code of a function version, bound layers included, before compression
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Top-level names that must never reach a package: the AWS SDK (the SCF build has no use for it), the local stack,
# test and IaC tools, the official Tencent SDK (test-only: we sign requests ourselves).
FORBIDDEN = ("boto3", "botocore", "s3transfer", "moto", "mpslocal", "tencentcloud", "pytest", "_pytest",
             "hypothesis", "cfnlint", "samtranslator", "imageio_ffmpeg", "werkzeug", "flask")
# Requirements published only as an sdist, with the folder of their sdist that holds a pure-Python package.
SDIST_ONLY = {"crcmod": "python3/crcmod"}
# Modules the functions import lazily (not at app import): checked too, under the 3.10 interpreter.
RUNTIME_IMPORTS = ("httpx", "pydantic", "pydantic_core._pydantic_core", "qcloud_cos", "requests", "crcmod",
                   "Crypto.Cipher.AES", "xmltodict", "mps_triggers.storage", "mps_triggers.webhook",
                   "mps_triggers.transport", "mps_triggers.secrets")


class BuildError(Exception):
    """The build cannot produce a package SCF would run; the message says which step and why."""


@dataclass
class Package:
    """One zip: ``path``, ``files`` (entries), ``unpacked`` and ``zipped`` sizes in bytes, ``sha256`` of the zip."""

    path: Path
    files: int
    unpacked: int
    zipped: int
    sha256: str


def requirement_pins(path: Path = CORE / "requirements.txt") -> dict[str, str]:
    """``{normalized name: version}`` from a fully pinned requirements file; raises :class:`BuildError` on a line
    that is not ``name==version``."""
    pins: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
        if not m:
            raise BuildError(f"{path.name}:{n}: {line!r} is not pinned as name==version")
        pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def check_interpreter(python: str) -> str:
    """Return ``python``'s version string; raises :class:`BuildError` unless it is CPython 3.10."""
    try:
        out = subprocess.run([python, "-I", "-c", "import sys, platform; print(platform.python_implementation(),"
                              " '%d.%d.%d' % sys.version_info[:3])"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"cannot run {python}: {exc}") from exc
    impl, version = out.stdout.split()
    if impl != "CPython" or tuple(map(int, version.split(".")[:2])) != PYTHON_VERSION:
        raise BuildError(f"{python} is {impl} {version}; SCF's {SCF_RUNTIME} needs .pyc files compiled by CPython "
                         f"{'.'.join(map(str, PYTHON_VERSION))}")
    return version


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise BuildError(f"pip {args[0]} failed:\n{done.stdout}{done.stderr}")


def install_dependencies(target: Path, pins: dict[str, str], work: Path) -> None:
    """Install ``pins`` into ``target`` for CPython 3.10 manylinux2014 x86_64, wheels only, no dependency
    resolution (the file is the whole closure; a missing one fails the import check)."""
    wheels = [f"{name}=={version}" for name, version in sorted(pins.items()) if name not in SDIST_ONLY]
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)] + [a for abi in ABIS for a in ("--abi", abi)]
    _pip("install", "--target", str(target), "--no-deps", "--no-compile", "--only-binary=:all:",
         "--implementation", "cp", "--python-version", ".".join(map(str, PYTHON_VERSION)), *platform_args, *wheels)
    for name, inner in SDIST_ONLY.items():
        if name not in pins:
            continue
        sdists = work / "sdist"
        _pip("download", "--no-deps", "--no-binary=:all:", "-d", str(sdists),
             f"{name}=={pins[name]}")
        (archive,) = sdists.glob(f"{name}-{pins[name]}.tar.gz")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12
        with tarfile.open(archive) as tar:
            tar.extractall(sdists, **safe)
        source = sdists / f"{name}-{pins[name]}" / inner
        shutil.copytree(source, target / source.name, ignore=shutil.ignore_patterns("test.py", "*.c", "*.h"))
        info = target / f"{name}-{pins[name]}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {pins[name]}\n")
        (info / "INSTALLER").write_text("mps-triggers package-scf (pure-Python fallback from the sdist)\n")


def tidy(tree: Path) -> None:
    """Drop what SCF never runs (console scripts, stale bytecode) and refuse any forbidden package."""
    shutil.rmtree(tree / "bin", ignore_errors=True)
    for cache in sorted(tree.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    for pyc in tree.rglob("*.py[co]"):
        pyc.unlink()
    # RECORD lists the console scripts just removed, with hashes of shebangs naming the build's own interpreter: keep
    # only files that are in the package, so the same inputs give the same bytes on any machine.
    for record in tree.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines()
        kept = [line for line in lines if (tree / line.split(",", 1)[0]).resolve().is_relative_to(tree.resolve())]
        record.write_text("".join(f"{line}\n" for line in kept))
    found = sorted({p.name.split("-")[0] for p in tree.iterdir()} & set(FORBIDDEN))
    if found:
        raise BuildError(f"{tree.name}: forbidden packages in an SCF package: {', '.join(found)}")


def compile_tree(python: str, root: Path, mount: str, target: Path | None = None) -> None:
    """Compile ``target`` (a file or folder; all of ``root`` by default) with ``python`` (3.10) into
    ``__pycache__`` with ``unchecked-hash`` invalidation; tracebacks name files as SCF mounts ``root`` (``mount`` =
    ``/var/user`` or ``/opt``)."""
    # Reproducible bytes: not -I (it would ignore PYTHONHASHSEED, and set/frozenset constants marshal in hash order),
    # and one process (-j 1): marshal's back-references depend on what the compiling process has alive, so a
    # worker pool's share-out of files would change the bytes from run to run.
    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    done = subprocess.run([python, "-s", "-m", "compileall", "-q", "-j", "1", "--invalidation-mode",
                           "unchecked-hash", "-s", str(root), "-p", mount, str(target or root)],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        raise BuildError(f"compiling {(target or root).name} with {python} failed:\n{done.stdout}{done.stderr}")


def check_imports(python: str, function_dir: Path, layer_dir: Path | None) -> None:
    """Import ``app`` and every lazily imported runtime dependency under ``python`` in isolated mode, with only
    the package (and its layer) on ``sys.path``; raises :class:`BuildError` naming what failed."""
    paths = [str(function_dir)] + ([str(layer_dir)] if layer_dir else [])
    code = ("import importlib, sys; sys.path[:0] = %r; import app; assert callable(app.main_handler);"
            " [importlib.import_module(m) for m in %r]" % (paths, RUNTIME_IMPORTS))
    done = subprocess.run([python, "-I", "-S", "-B", "-c", code], capture_output=True, text=True,
                          cwd=function_dir, env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"})
    if done.returncode:
        raise BuildError(f"{function_dir.name}: importing the package under {python} failed:\n{done.stderr}")


def write_zip(tree: Path, path: Path) -> Package:
    """Zip ``tree``'s contents (paths relative to it) deterministically: sorted, fixed timestamps, mode 0644."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    unpacked = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for f in files:
            info = zipfile.ZipInfo(f.relative_to(tree).as_posix(), date_time=ZIP_DATE)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = f.read_bytes()
            unpacked += len(data)
            zf.writestr(info, data)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Package(path, len(files), unpacked, path.stat().st_size, digest)


def build(out: Path, python: str, layer: bool = False, zip_limit: int = ZIP_LIMIT,
          unpacked_limit: int = UNPACKED_LIMIT) -> list[Package]:
    """Build the packages into ``out`` (zips, plus the unpacked trees ``out/<name>/`` that Serverless Framework's
    ``src`` can point at). Returns them; raises :class:`BuildError` on any failed step or exceeded limit."""
    check_interpreter(python)
    pins = requirement_pins()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="scf-build-") as tmp:
        work = Path(tmp)
        deps = work / "deps"
        install_dependencies(deps, pins, work)
        shutil.copytree(CORE / "mps_triggers", deps / "mps_triggers")
        tidy(deps)
        compile_tree(python, deps, "/opt" if layer else "/var/user")  # once: the same bytes in every copy
        layer_dir = out / "layer" if layer else None
        if layer_dir:
            shutil.copytree(deps, layer_dir)
        for name in FUNCTIONS:
            target = out / name
            if layer_dir:
                target.mkdir()
            else:
                shutil.copytree(deps, target)
            shutil.copy2(ROOT / "functions" / name / "app.py", target / "app.py")
            compile_tree(python, target, "/var/user", target / "app.py")
            check_imports(python, target, layer_dir)
    packages = [write_zip(out / name, out / f"mps-triggers-{name}.zip") for name in FUNCTIONS]
    if layer_dir:
        packages.insert(0, write_zip(layer_dir, out / "mps-triggers-core-layer.zip"))
    problems = check_limits(packages, layer, zip_limit, unpacked_limit)
    print(report(packages, zip_limit))
    if problems:
        raise BuildError("; ".join(problems))
    return packages


def check_limits(packages: list[Package], layer: bool, zip_limit: int = ZIP_LIMIT,
                 unpacked_limit: int = UNPACKED_LIMIT) -> list[str]:
    """What breaks SCF's limits, one sentence per package: a zip above ``zip_limit``, or a function whose files
    plus its layer's (the first package when ``layer``) are above ``unpacked_limit`` bytes. Empty when all fit."""
    problems = [f"{p.path.name} is {_size(p.zipped)} zipped, above SCF's {_size(zip_limit)} upload limit"
                for p in packages if p.zipped > zip_limit]
    layer_size = packages[0].unpacked if layer else 0
    functions = packages[1:] if layer else packages
    problems += [f"{p.path.name} with its layer is {_size(p.unpacked + layer_size)} unpacked, above SCF's "
                 f"{_size(unpacked_limit)} per function" for p in functions if p.unpacked + layer_size > unpacked_limit]
    return problems


def _size(n: int) -> str:
    return f"{n / MiB:.2f} MiB" if n >= MiB else f"{n / 1024:.1f} KiB"


def report(packages: list[Package], zip_limit: int = ZIP_LIMIT) -> str:
    """A table: each package's entries, unpacked and zipped size, share of the zip limit, sha256 prefix."""
    rows = [f"{'package':<30} {'files':>6} {'unpacked':>11} {'zip':>11} {'of limit':>9}  sha256"]
    for p in packages:
        rows.append(f"{p.path.name:<30} {p.files:>6} {_size(p.unpacked):>11} {_size(p.zipped):>11} "
                    f"{p.zipped / zip_limit:>9.1%}  {p.sha256[:16]}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py package-scf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="a CPython 3.10 interpreter (compiles the .pyc files)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "scf", help="output folder (emptied first)")
    parser.add_argument("--layer", action="store_true", help="core library + dependencies as one SCF layer")
    parser.add_argument("--zip-limit-mb", type=float, default=ZIP_LIMIT / MiB, help="fail above this zip size")
    args = parser.parse_args(argv)
    try:
        packages = build(args.out, args.python, layer=args.layer, zip_limit=int(args.zip_limit_mb * MiB))
    except BuildError as exc:
        print(f"package-scf: {exc}", file=sys.stderr)
        return 1
    print(f"\n{len(packages)} package(s) for SCF {SCF_RUNTIME} (x86_64) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
