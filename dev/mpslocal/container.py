"""Function containers (dev-only): a handler in its own process, as Lambda and SCF run it.

Each container has its own environment (so an AWS deployment and an SCF deployment can run side by side with
different configuration), imports the function's ``app.py`` once (a cold start), takes one invocation at a time,
and writes the handler's stdout (the JSON log lines) to its own log file. The parent sends one JSON line per
invocation on stdin and reads one JSON line back on a dedicated pipe; the child is :mod:`mpslocal.runtime`.

Example::

    submit = FunctionContainer("submit-aws", ROOT / "functions/submit/app.py", env, OUT / "submit-aws.log")
    result = submit.invoke(event)            # raises InvocationError when the handler raised

    # a built SCF package under SCF's interpreter, with only the package and its layer importable
    scf = FunctionContainer("submit-scf", Path("build/scf/submit/app.py"), env, log, platform="scf",
                            python="/usr/bin/python3.10", layers=[Path("build/scf/layer")])
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from .runtime import load_app  # noqa: F401  (re-exported: tests and benches import it from here)

RUNTIME = Path(__file__).resolve().with_name("runtime.py")

_ISOLATED_PREFIXES = ("MPS_", "ARCHIVE_", "CALLBACK_", "WEBHOOK_", "TENCENTCLOUD_", "COS_ENDPOINT_URL",
                      "AWS_ENDPOINT_URL")


class InvocationError(Exception):
    """The handler raised: ``error_type`` and message as the platform would report them."""

    def __init__(self, error_type: str, message: str) -> None:
        self.error_type = error_type
        super().__init__(f"{error_type}: {message}")


class FunctionContainer:
    """``app_path``'s ``handler`` (``main_handler`` when ``platform="scf"``) in a child process.

    By default the child is this interpreter with the source tree importable. With ``python`` (another
    interpreter, e.g. SCF's Python 3.10) it runs isolated (``-I -S``): only ``app_path``'s folder, the ``layers``
    folders and the standard library are importable, as for a package unpacked on SCF.
    """

    def __init__(self, name: str, app_path: Path, env: dict[str, str], log_path: Path, platform: str = "lambda",
                 timeout: float = 60.0, python: str | None = None, layers: Sequence[Path] = ()) -> None:
        self.name, self.platform, self.timeout = name, platform, timeout
        base = {k: v for k, v in os.environ.items() if not k.startswith(_ISOLATED_PREFIXES)}
        read_fd, write_fd = os.pipe()
        args = [str(app_path), str(log_path), str(write_fd), platform, *map(str, layers)]
        command = [sys.executable, "-m", "mpslocal.runtime"] if python is None else [python, "-I", "-S", str(RUNTIME)]
        self._proc = subprocess.Popen([*command, *args], stdin=subprocess.PIPE, env={**base, **env},
                                      pass_fds=(write_fd,), text=True)
        os.close(write_fd)
        self._results = os.fdopen(read_fd, "r", encoding="utf-8")
        self._lock = threading.Lock()
        self.invocations = 0
        self.busy_seconds = 0.0  # time spent running invocations (the handler's own, not waiting for the container)

    def invoke(self, event: Any, context: Any = None) -> Any:
        """Run the handler on ``event``; returns its result, raises :class:`InvocationError` if it raised."""
        with self._lock:
            started = time.monotonic()
            self.invocations += 1
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps({"event": event, "timeout": self.timeout}) + "\n")
            self._proc.stdin.flush()
            line = self._results.readline()
            self.busy_seconds += time.monotonic() - started
        if not line:
            raise InvocationError("Runtime.ExitError", f"container {self.name} exited ({self._proc.poll()})")
        reply = json.loads(line)
        if reply["ok"]:
            return reply["result"]
        raise InvocationError(reply["error_type"], reply["error"])

    __call__ = invoke

    def kill(self) -> None:
        """Kill the container's process at once (SIGKILL), as a platform does at a hard crash."""
        self._proc.kill()

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._results.close()


