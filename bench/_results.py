"""What every benchmark does with its figures: print them as a labelled table, keep them as JSON in bench/results/."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def print_rows(title: str, rows: list[tuple[str, Any]]) -> None:
    """``title``, then one ``label  value`` line per row, labels aligned."""
    width = max(len(label) for label, _ in rows)
    print(title)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def save(name: str, data: Any) -> Path:
    """Write ``data`` to ``bench/results/<name>.json`` and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
