"""Cold import of the built SCF packages under CPython 3.10, with their .pyc against the same tree without.

    python3 tasks.py bench scf_cold_start [--runs 7]

Builds the self-contained packages (``python3 tasks.py package-scf``) into a temporary folder, makes a copy with
every ``__pycache__`` removed, and imports each function in a fresh ``python3.10 -I -S -B`` process (only the
package and the standard library importable, nothing written: SCF's code folder is read-only), timing inside the
process the import of ``app`` plus what its first invocation imports (submit: httpx for the MPS call; archive:
httpx and the COS SDK for the archive). Cases run interleaved, medians over ``--runs``; peak RSS is VmHWM.
Results also go to ``bench/results/scf_cold_start.json``.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "dev"), str(ROOT)]

from _results import print_rows, save  # noqa: E402
from mpslocal.scf_package import build  # noqa: E402
from tasks import find_python  # noqa: E402

PROBE = r"""
import sys, time
sys.path[:0] = [{tree!r}]
t = time.perf_counter()
import app
{extra}
took = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(took, int(hwm) / 1024)
"""
FIRST_INVOCATION_IMPORTS = {"submit": "import httpx", "archive": "import httpx, qcloud_cos"}


def once(python: str, tree: Path, function: str) -> tuple[float, float]:
    code = PROBE.format(tree=str(tree / function), extra=FIRST_INVOCATION_IMPORTS[function])
    out = subprocess.run([python, "-I", "-S", "-B", "-c", code], capture_output=True, text=True, check=True, cwd="/")
    took, hwm = out.stdout.strip().splitlines()[-1].split()  # after the invocation's log and EMF lines
    return float(took), float(hwm)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    python = find_python("3.10")
    if not python:
        print("no CPython 3.10 interpreter (SCF's runtime) found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "pyc"
        build(built, python)
        bare = Path(tmp) / "no-pyc"
        shutil.copytree(built, bare, ignore=shutil.ignore_patterns("__pycache__", "*.zip"))
        cases = {(f, kind): tree for f in FIRST_INVOCATION_IMPORTS for kind, tree in (("pyc", built), ("no pyc", bare))}
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {c: [] for c in cases}
        for case, tree in cases.items():
            once(python, tree, case[0])  # warm the page cache
        for _ in range(args.runs):
            for case, tree in cases.items():
                samples[case].append(once(python, tree, case[0]))
    med = {c: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v)) for c, v in samples.items()}
    rows = []
    for f in FIRST_INVOCATION_IMPORTS:
        (t_pyc, m_pyc), (t_bare, m_bare) = med[(f, "pyc")], med[(f, "no pyc")]
        rows.append((f"{f}: import with .pyc (as built)", f"{t_pyc * 1000:.1f} ms, peak RSS {m_pyc:.1f} MiB"))
        rows.append((f"{f}: same tree without .pyc", f"{t_bare * 1000:.1f} ms, peak RSS {m_bare:.1f} MiB "
                                                      f"({t_bare / t_pyc:.1f}x slower)"))
    print_rows(f"SCF packages under {python}, medians of {args.runs}", rows)
    save("scf_cold_start", {"python": python, "runs": args.runs,
                            "median_seconds": {f"{f} {k}": v[0] for (f, k), v in med.items()},
                            "median_peak_rss_mib": {f"{f} {k}": v[1] for (f, k), v in med.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
