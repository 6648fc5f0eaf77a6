"""Shared hypothesis strategies: arbitrary JSON, hostile JSON (the classes of issue 9), real samples mutated anywhere.

``examples(n)``: the number of examples a property runs: ``n`` by default (CI's reduced, derandomized run), or
``FUZZ_EXAMPLES`` when that is larger (``python3 tasks.py fuzz`` sets 10,000).
"""
from __future__ import annotations

import base64
import json
import os

from hypothesis import strategies as st


def examples(n: int) -> int:
    """``n``, or ``$FUZZ_EXAMPLES`` when it asks for more (the thorough run)."""
    return max(n, int(os.environ.get("FUZZ_EXAMPLES") or 0))


scalars = st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64) | \
    st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=15), inner, max_size=5), max_leaves=30)

# The classes of input that broke batches (issue 9), as values that can stand anywhere.
HOSTILE_TEXT = [
    "\ud800", "a\udfffb", "\ud83d",                       # lone UTF-16 surrogates
    "²", "٣", "⑦", "１２", "1_000", " 12 ", "-0",             # digit-like Unicode, int() lookalikes
    "9" * 5000, "-" + "1" * 40, "1e309", "Infinity", "NaN",  # beyond the int-string limit, float lookalikes
    "a\u2028b", "c\u2029d", "e\u0085f", "\x00", "\r\n",      # line breakers, control characters
    "<@all>", "<!channel>", "[x](http://e.example)", "<http://e.example|x>",  # chat control sequences
    "%ED%A0%80", "a+b%2B", "../../x", "/" * 300, "视" * 400,  # encodings, paths, long CJK
]
hostile_text = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=30).map(lambda t: t + "\ud800")
hostile_scalars = scalars | hostile_text | st.sampled_from([10**30, -(10**30), float("inf"), float("-inf")])


def nested(depth: int, kind: str = "list") -> object:
    """A value nested ``depth`` levels (lists, or dicts under key "a")."""
    value: object = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


deep_values = st.builds(nested, st.integers(min_value=60, max_value=1200), st.sampled_from(["list", "dict"]))
hostile_json = st.recursive(hostile_scalars, lambda inner: st.lists(inner, max_size=4) |
                            st.dictionaries(st.text(max_size=15) | hostile_text, inner, max_size=5),
                            max_leaves=25) | deep_values


def _dumps_or_text(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):  # too deep or too big for the encoder: send its repr instead
        return repr(value)[:1000]


body_texts = st.one_of(
    hostile_json.map(_dumps_or_text),
    st.integers(min_value=1000, max_value=120_000).map(lambda n: "[" * n),          # json.loads: RecursionError
    st.integers(min_value=65, max_value=900).map(lambda n: "[" * n + "]" * n),      # valid, too deep
    st.sampled_from(HOSTILE_TEXT),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
"""What an SQS body or an HTTP body may be: hostile JSON, bracket floods, raw odd text."""

non_strings = st.none() | st.integers() | st.lists(st.integers(), max_size=3) | \
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)
"""What a body that should be a string may be instead."""


@st.composite
def http_bodies(draw, doc: dict) -> tuple[object, bool]:
    """``(body, isBase64Encoded)`` for ``doc`` or hostile text, with base64 that lies either way."""
    text = draw(st.just(json.dumps(doc, ensure_ascii=False)) | body_texts)
    way = draw(st.sampled_from(["plain", "base64", "claims base64", "hides base64", "not a string"]))
    if way == "base64":
        return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode(), True
    if way == "claims base64":
        return text, True
    if way == "hides base64":
        return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode(), False
    if way == "not a string":
        return draw(non_strings), draw(st.booleans())
    return text, False


def mutate(doc, data, values=json_values):
    """Replace one value anywhere in ``doc`` (JSON strings inside it included) with a draw from ``values``."""
    paths = []

    def walk(v, path):
        paths.append(path)
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, path + [k])
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, path + [i])
    walk(doc, [])
    path = data.draw(st.sampled_from(paths[1:]))
    target = doc
    for p in path[:-1]:
        target = target[p]
    value = target[path[-1]]
    if isinstance(value, str) and value.startswith("{") and data.draw(st.booleans()):
        inner = json.loads(value)  # an SQS body or SNS Message: mutate inside it
        if isinstance(inner, dict) and len(inner):
            target[path[-1]] = _dumps_or_text(mutate(inner, data, values))
    else:
        target[path[-1]] = data.draw(values)
    return doc
