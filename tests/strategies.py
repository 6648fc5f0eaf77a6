"""Shared hypothesis strategies: arbitrary JSON, and real samples mutated anywhere."""
from __future__ import annotations

import json

from hypothesis import strategies as st

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64) | \
    st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=15), inner, max_size=5), max_leaves=30)


def mutate(doc, data):
    """Replace one value anywhere in ``doc`` (JSON strings inside it included) with arbitrary JSON."""
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
        target[path[-1]] = json.dumps(mutate(inner, data)) if isinstance(inner, dict) and len(inner) else value
    else:
        target[path[-1]] = data.draw(json_values)
    return doc
