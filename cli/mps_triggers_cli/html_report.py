"""``report --format html``: one self-contained HTML file, readable without a network.

The same tables as the text report, and two charts drawn as inline SVG (no script, no font, no image, nothing
fetched: the page's Content-Security-Policy forbids every load): tasks per day stacked by state, and the duration
percentiles (p50, p90, p99 of submission → FINISH) per route. Every value from the archive (keys, messages, routes)
is HTML-escaped: a key such as ``<img src=x onerror=…>`` is text. Chart marks carry ``data-*`` attributes with the
numbers they draw, for tests and for anyone reading the source.
"""
from __future__ import annotations

from html import escape
from typing import Any

COLORS = {"succeeded": "#2e7d32", "failed": "#c62828", "running": "#1565c0", "stuck": "#ef6c00"}
PCT_COLORS = {"p50": "#90caf9", "p90": "#1e88e5", "p99": "#0d47a1"}
STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:24px;color:#1a1a1a}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#555;margin-bottom:16px}
table{border-collapse:collapse;margin:4px 0 8px}th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:22px}.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.more{color:#555}
"""


def _e(value: Any) -> str:
    return "" if value is None else escape(str(value), quote=True)


def _n(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else _e(value)


def _table(table_id: str, headers: list[str], rows: list[list[Any]], numeric: set[int]) -> str:
    head = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="n">{_n(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>"
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}">(none)</td></tr>'
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def route_label(route: str) -> str:
    """A durations row's route as shown: ``*`` (every route) as ``all routes``, none as ``(none)``."""
    return "all routes" if route == "*" else route or "(none)"


def _legend(colors: dict[str, str]) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{c}"></i>{_e(k)}</span>'
                                            for k, c in colors.items()) + "</div>"


def day_chart(by_day: list[dict[str, Any]]) -> str:
    """Stacked bars, one per day, of tasks by state (first seen that day)."""
    if not by_day:
        return '<svg id="chart-days" width="10" height="10" role="img" aria-label="no tasks"></svg>'
    height, bar, gap, left, bottom = 200, 18, 6, 48, 40
    top = max(d["total"] for d in by_day) or 1
    width = left + len(by_day) * (bar + gap) + 10
    parts = [f'<svg id="chart-days" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + bottom + 10}"'
             f' role="img" aria-label="tasks per day by state" data-max="{top}">',
             f'<text x="{left - 6}" y="14" text-anchor="end" font-size="11">{top:,}</text>',
             f'<text x="{left - 6}" y="{height + 4}" text-anchor="end" font-size="11">0</text>',
             f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#999"/>']
    for i, d in enumerate(by_day):
        x = left + i * (bar + gap)
        y = float(height)
        for state, color in COLORS.items():
            count = d.get(state, 0)
            if not count:
                continue
            h = (height - 10) * count / top
            y -= h
            parts.append(f'<rect class="bar" x="{x}" y="{y:.2f}" width="{bar}" height="{h:.2f}" fill="{color}" '
                         f'data-day="{_e(d["day"])}" data-state="{state}" data-count="{count}">'
                         f'<title>{_e(d["day"])} {state}: {count:,}</title></rect>')
        parts.append(f'<text x="{x + bar / 2}" y="{height + 12}" font-size="10" text-anchor="end" '
                     f'transform="rotate(-45 {x + bar / 2} {height + 12})">{_e(d["day"][5:])}</text>')
    parts.append("</svg>")
    return "".join(parts) + _legend(COLORS)


def duration_chart(durations: list[dict[str, Any]]) -> str:
    """Horizontal bars per route: total duration p50, p90 and p99 (seconds)."""
    rows = [d for d in durations if d.get("total")]
    if not rows:
        return '<svg id="chart-durations" width="10" height="10" role="img" aria-label="no durations"></svg>'
    label, width, bar = 140, 420, 10
    top = max(d["total"]["p99"] for d in rows) or 1.0
    height = len(rows) * (3 * bar + 14) + 20
    parts = [f'<svg id="chart-durations" xmlns="http://www.w3.org/2000/svg" width="{label + width + 80}" '
             f'height="{height}" role="img" aria-label="duration percentiles per route" data-max="{top}">']
    y = 4
    for d in rows:
        parts.append(f'<text x="{label - 6}" y="{y + 18}" text-anchor="end" font-size="12">'
                     f'{_e(route_label(d["route"]))}</text>')
        for pct, color in PCT_COLORS.items():
            value = d["total"][pct]
            w = width * value / top
            parts.append(f'<rect class="bar" x="{label}" y="{y}" width="{w:.2f}" height="{bar}" fill="{color}" '
                         f'data-route="{_e(d["route"])}" data-pct="{pct}" data-seconds="{value}">'
                         f'<title>{_e(d["route"])} {pct}: {value:,.1f} s</title></rect>'
                         f'<text x="{label + w + 4:.2f}" y="{y + bar - 1}" font-size="10">{value:,.1f} s</text>')
            y += bar
        y += 14
    parts.append("</svg>")
    return "".join(parts) + _legend(PCT_COLORS)


def render(doc: dict[str, Any], limit: int = 50) -> str:
    """The HTML page of a report dict (:meth:`~.query.ArchiveQuery.report`)."""
    r, t = doc["range"], doc["tasks"]
    cards = "".join(f'<div class="card" id="card-{k}">{_e(k)}<b>{_n(t[k])}</b></div>'
                    for k in ("total", "succeeded", "failed", "running", "stuck"))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>mps-triggers report {_e(r['since'][:10])} – {_e(r['until'][:10])}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>mps-triggers archive report</h1>",
        f'<div class="meta">{_e(r["archive"])} · {_e(r["since"])} → {_e(r["until"])} (UTC) · '
        f'{_n(r["lines"])} lines in {_n(r["files"])} objects · stuck after {r["stuck_after_seconds"] / 3600:g} h · '
        f'generated {_e(r["generated_at"])}</div>',
        f'<div class="cards">{cards}</div>',
        "<h2>Tasks per day</h2>", day_chart(doc["by_day"]),
        _table("by-day", ["day", "total", "succeeded", "failed", "running", "stuck"],
               [[d["day"], d["total"], d["succeeded"], d["failed"], d["running"], d["stuck"]] for d in doc["by_day"]],
               {1, 2, 3, 4, 5}),
        "<h2>Failures</h2>",
        _table("failures", ["tasks", "code", "message", "example task", "example key", "route"],
               [[f["tasks"], f["code"], f["message"], f["example"]["task_id"], f["example"]["key"],
                 f["example"]["route"]] for f in doc["failures"]], {0}),
        "<h2>Durations (seconds)</h2>", duration_chart(doc["durations"]),
        _table("durations", ["route", "tasks", "wait p50", "wait p90", "run p50", "run p90", "total p50",
                             "total p90", "total p99", "total max"],
               [[route_label(d["route"]), d["tasks"], *[(d[s] or {}).get(p) for s, p in (
                   ("wait", "p50"), ("wait", "p90"), ("run", "p50"), ("run", "p90"), ("total", "p50"),
                   ("total", "p90"), ("total", "p99"), ("total", "max"))]] for d in doc["durations"]],
               set(range(1, 10))),
    ]
    for title, table_id, items, cols in (
            ("Stuck (no final callback)", "stuck", doc["stuck"],
             ("submitted_at", "route", "key", "task_id", "last_status")),
            ("Failed to submit", "submit-failures", doc["submit_failures"], ("at", "route", "key", "code", "message"))):
        out.append(f"<h2>{title}: {len(items):,}</h2>")
        out.append(_table(table_id, list(cols), [[i.get(c) for c in cols] for i in items[:limit]], set()))
        if len(items) > limit:
            out.append(f'<p class="more">… {len(items) - limit:,} more (--format json lists all)</p>')
    out.append("<h2>Routes</h2>")
    out.append(_table("routes", ["route", "objects", "tasks", "succeeded", "failed", "running", "stuck",
                                 "submit failed"],
                      [[x["route"] or "(none)", x["objects"], x["tasks"], x["succeeded"], x["failed"], x["running"],
                        x["stuck"], x["submit_failed"]] for x in doc["routes"]], set(range(1, 8))))
    out.append("</body></html>\n")
    return "\n".join(out)
