"""The README's "Try it on the local stack" walkthrough, line by line, against `python -m mpslocal.serve`."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def walkthrough() -> tuple[str, list[str]]:
    """The serve command and the command lines of the section, as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Try it on the local stack", 1)[1].split("\n### ", 1)[0]
    serve, commands = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)[:2]
    return serve.strip(), [line for line in commands.splitlines() if line.strip()]


def test_the_operate_walkthrough_works_as_written(tmp_path):
    serve, commands = walkthrough()
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPS_", "ARCHIVE_", "AWS_", "COS_"))}
    argv = serve.replace(".venv/bin/python", sys.executable).split()
    # its output (the in-process archive function's log and EMF lines) goes to a file: a pipe nobody reads would
    # fill up and block the stack mid-walkthrough
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(x.startswith("ready") for x in (tmp_path / "serve.log").read_text().splitlines()):
                break
            time.sleep(0.2)
        assert (tmp_path / "local.env").exists(), "the local stack did not start"
        outputs = []
        for command in commands:
            shell = command.replace(".venv/bin/", f"{bin_dir}/")
            done = subprocess.run(["bash", "-c", shell], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            outputs.append(done.stdout)
        plan, first, second, reprocess, redrive_plan, redrive, replay_plan, replay = outputs
        assert "to submit" in plan and re.search(r"submitted\s+40\b", first)
        assert re.search(r"submitted\s+0\b", second) and re.search(r"skipped\s+43\b", second)
        assert re.search(r"submitted\s+2\b", reprocess)
        again = subprocess.run(["bash", "-c", commands[3].replace(".venv/bin/", f"{bin_dir}/") + " --format json"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert json.loads(again.stdout)["results"]["submitted"] == 0
        assert re.search(r"messages\s+5\b", redrive_plan) and re.search(r"moved\s+5\b", redrive)
        count = int(re.search(r"replay (\d+) callbacks", replay_plan).group(1))
        assert count >= 2 and f"{count} callbacks sent, 0 failed" in replay
        report = [json.loads(x) for x in (tmp_path / "backfill.jsonl").read_text().splitlines()]
        assert len(report) == 43 and sum(r["result"] == "submitted" for r in report) == 40
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
