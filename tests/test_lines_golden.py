"""Archive lines stay byte for byte what readers already hold: 504 notifications (the callbacks under events/,
every notification shape, odd values, secrets under every redaction net, deep nesting, seeded random documents)
and the lines the line code built for them before issue 14's speed-up (``dev/golden_lines.py``). A changed byte
would give an archived callback a second id when MPS retries it or ``replay`` sends it after an upgrade."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mps_triggers.lines import build_line, callback_id

ROWS = [json.loads(x) for x in (Path(__file__).parent / "data" / "golden_lines.jsonl").read_text().splitlines()]
RECEIVED_AT = 1795343359.25


def test_the_corpus_covers_what_it_claims():
    lines = [json.loads(r["line"]) for r in ROWS]
    assert len(ROWS) == 504
    assert {x["event_type"] for x in lines} >= {"WorkflowTask", "ScheduleTask", "EditMediaTask", "BatchTask"}
    assert sum('"***"' in r["line"] for r in ROWS) >= 20 and sum("parse_error" in x for x in lines) >= 10
    assert any("\\ud800" in r["line"] for r in ROWS) and any("e-07" in r["line"] for r in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: str(r["n"]))
def test_line_bytes_and_id_are_unchanged(row):
    doc = json.loads(row["in"])
    line = build_line(doc, "sqs", f"golden-{row['n']}", RECEIVED_AT, verified=row["verified"])
    assert line.data == row["line"].encode("utf-8")
    assert callback_id(doc) == line.id == json.loads(row["line"])["id"]
