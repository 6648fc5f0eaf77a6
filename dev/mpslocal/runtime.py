"""Function runtime (dev-only, standard library only): the child side of a function container.

It imports a function's ``app.py`` once (the cold start) and answers one invocation per stdin line, writing the
handler's stdout (the JSON log lines) to a log file and one JSON reply per invocation to a dedicated pipe.

It runs two ways:

- ``python -m mpslocal.runtime APP LOG FD PLATFORM`` for the source tree (``PYTHONPATH`` gives the core);
- ``python3.10 -I -S runtime.py APP LOG FD scf LAYER...`` for a built SCF package, as SCF's Python runtime runs it:
  the function's code folder first on ``sys.path`` (SCF unpacks it to ``/var/user``), then each layer folder (SCF
  unpacks layers to ``/opt``), and nothing else but the standard library: ``-I -S`` drops ``PYTHONPATH``, the
  user's and the interpreter's site-packages, so a package that lacks a dependency fails here as it would on SCF.

The context is what each platform passes: a dict on SCF (``request_id``, ``function_name``,
``time_limit_in_ms``, ``memory_limit_in_mb``; SCF Python docs 583/40324), an object with
``get_remaining_time_in_millis()`` on Lambda.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
FUNCTIONS = HERE.parents[1] / "functions"


class LambdaContext:
    """The parts of the Lambda context object the handlers and their log lines read."""

    def __init__(self, function_name: str, timeout: float) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def scf_context(function_name: str, timeout: float) -> dict[str, Any]:
    """The SCF Python context dict (583/40324): ``time_limit_in_ms`` is the function's timeout."""
    return {"request_id": str(uuid.uuid4()), "function_name": function_name,
            "time_limit_in_ms": int(timeout * 1000), "memory_limit_in_mb": 256, "start_time": time.time()}


def load_app(function: str | Path) -> ModuleType:
    """Import a function's ``app.py`` as Lambda and SCF do, the function's folder being its code root: ``function``
    is a name (``"submit"``, ``"archive"``) or a path to the file. Each call makes a fresh module (a new container)."""
    path = Path(function) if str(function).endswith(".py") else FUNCTIONS / str(function) / "app.py"
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    """Child side: import the app, then answer one invocation per stdin line."""
    app_path, log_path, fd, platform, layers = Path(argv[0]), argv[1], int(argv[2]), argv[3], argv[4:]
    results = os.fdopen(fd, "w", encoding="utf-8")
    sys.stdout = open(log_path, "a", encoding="utf-8", buffering=1)
    # Run as a script, Python puts this file's folder first on sys.path; a function must not see the dev tools.
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != HERE]
    sys.path[0:0] = [str(app_path.parent), *layers]
    module = load_app(app_path)
    handler = module.main_handler if platform == "scf" else module.handler
    name = app_path.parent.name
    for line in sys.stdin:
        request = json.loads(line)
        context: Any = (scf_context(name, request["timeout"]) if platform == "scf"
                        else LambdaContext(name, request["timeout"]))
        try:
            reply = {"ok": True, "result": handler(request["event"], context)}
        except Exception as exc:  # reported to the parent as the platform reports a function error
            reply = {"ok": False, "error_type": type(exc).__name__, "error": str(exc)}
        results.write(json.dumps(reply, default=str) + "\n")
        results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
