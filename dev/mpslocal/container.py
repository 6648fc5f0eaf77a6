"""Function containers (dev-only): a handler in its own process, as Lambda and SCF run it.

Each container has its own environment (so an AWS deployment and an SCF deployment can run side by side with
different configuration), imports the function's ``app.py`` once (a cold start), takes one invocation at a time,
and writes the handler's stdout (the JSON log lines) to its own log file. The parent sends one JSON line per
invocation on stdin and reads one JSON line back on a dedicated pipe.

Example::

    submit = FunctionContainer("submit-aws", ROOT / "functions/submit/app.py", env, OUT / "submit-aws.log")
    result = submit.invoke(event)            # raises InvocationError when the handler raised
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from .runner import LambdaContext

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

_ISOLATED_PREFIXES = ("MPS_", "ARCHIVE_", "CALLBACK_", "WEBHOOK_", "TENCENTCLOUD_", "COS_ENDPOINT_URL",
                      "AWS_ENDPOINT_URL")


def load_app(function: str | Path) -> ModuleType:
    """Import a function's ``app.py`` as Lambda and SCF do, the function's folder being its code root: ``function``
    is a name (``"submit"``, ``"archive"``) or a path to the file. Each call makes a fresh module (a new container)."""
    path = Path(function) if str(function).endswith(".py") else FUNCTIONS / str(function) / "app.py"
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class InvocationError(Exception):
    """The handler raised: ``error_type`` and message as the platform would report them."""

    def __init__(self, error_type: str, message: str) -> None:
        self.error_type = error_type
        super().__init__(f"{error_type}: {message}")


class FunctionContainer:
    """``app_path``'s ``handler`` (``main_handler`` when ``platform="scf"``) in a child process."""

    def __init__(self, name: str, app_path: Path, env: dict[str, str], log_path: Path, platform: str = "lambda",
                 timeout: float = 60.0) -> None:
        self.name, self.platform, self.timeout = name, platform, timeout
        base = {k: v for k, v in os.environ.items() if not k.startswith(_ISOLATED_PREFIXES)}
        read_fd, write_fd = os.pipe()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "mpslocal.container", str(app_path), str(log_path), str(write_fd), platform],
            stdin=subprocess.PIPE, env={**base, **env}, pass_fds=(write_fd,), text=True)
        os.close(write_fd)
        self._results = os.fdopen(read_fd, "r", encoding="utf-8")
        self._lock = threading.Lock()
        self.invocations = 0

    def invoke(self, event: Any, context: Any = None) -> Any:
        """Run the handler on ``event``; returns its result, raises :class:`InvocationError` if it raised."""
        with self._lock:
            self.invocations += 1
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps({"event": event, "timeout": self.timeout}) + "\n")
            self._proc.stdin.flush()
            line = self._results.readline()
        if not line:
            raise InvocationError("Runtime.ExitError", f"container {self.name} exited ({self._proc.poll()})")
        reply = json.loads(line)
        if reply["ok"]:
            return reply["result"]
        raise InvocationError(reply["error_type"], reply["error"])

    __call__ = invoke

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._results.close()


def main(argv: list[str]) -> int:
    """Child side: import the app, then answer one invocation per stdin line."""
    app_path, log_path, fd, platform = argv[0], argv[1], int(argv[2]), argv[3]
    results = os.fdopen(fd, "w", encoding="utf-8")
    sys.stdout = open(log_path, "a", encoding="utf-8", buffering=1)
    sys.path.insert(0, str(Path(app_path).parent))
    module = load_app(app_path)
    handler = module.main_handler if platform == "scf" else module.handler
    for line in sys.stdin:
        request = json.loads(line)
        if platform == "scf":
            context: Any = {"request_id": str(uuid.uuid4()), "function_name": Path(app_path).parent.name,
                            "time_limit_in_ms": int(request["timeout"] * 1000), "memory_limit_in_mb": 256,
                            "start_time": time.time()}
        else:
            context = LambdaContext(Path(app_path).parent.name, request["timeout"])
        try:
            reply = {"ok": True, "result": handler(request["event"], context)}
        except Exception as exc:  # reported to the parent as the platform reports a function error
            reply = {"ok": False, "error_type": type(exc).__name__, "error": str(exc)}
        results.write(json.dumps(reply, default=str) + "\n")
        results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
