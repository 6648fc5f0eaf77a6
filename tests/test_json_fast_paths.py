"""The fast paths of issue 14 give exactly what the plain code gives: orjson against the stdlib's JSON (every float
notation, integers beyond 64 bits, lone surrogates, NaN), and :func:`mps_triggers.redaction.redact_json`'s
member-by-member writing against masking every key, writing the whole document and scrubbing it. Property tests
(hypothesis); the archive lines themselves are held byte for byte by ``test_lines_golden.py``."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_triggers.redaction import REDACTED, mask_keys, redact_json, register_secret, scrub
from mps_triggers.safejson import JsonError, dumps, line_safe, loads
from tests.strategies import examples, hostile_scalars, hostile_text


def stdlib_dumps(value, sort_keys=False):
    """What ``dumps`` wrote before orjson: the stdlib's text, made line-safe."""
    return line_safe(json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys))


def finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [1e-7, 1.5e-5, 0.0001, 1e-4, 9.99e-5, 1e16, 1e15, 1e22, 5e-324, 1.7976931348623157e308, -0.0, 123456789.0])
keys = st.text(max_size=12) | st.sampled_from(["Sign", "Timestamp", "S3SecretKey", "to\u212aen", "TOKEN", "xSignx",
                                               "İsign", "Set-Cookie", "passWD", "credential", "Url", "Message"])
documents = st.recursive(st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | floats |
                         st.text(max_size=20) | st.sampled_from(["\ud800", "a\u2028b", "0.0000", "1e-5", "e-",
                                                                 "https://x/?X-Amz-Signature=abc&k=1"]),
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
                         max_leaves=30)


@settings(max_examples=examples(300), deadline=None)
@given(documents, st.booleans())
def test_dumps_writes_the_stdlib_text_to_the_byte(value, sort_keys):
    assert dumps(value, sort_keys=sort_keys) == stdlib_dumps(value, sort_keys)


hostile_json = st.recursive(hostile_scalars, lambda inner: st.lists(inner, max_size=4) |
                            st.dictionaries(st.text(max_size=15) | hostile_text, inner, max_size=5), max_leaves=25)


@settings(max_examples=examples(300), deadline=None)
@given(hostile_json)
def test_dumps_writes_non_finite_floats_as_null_and_everything_else_as_the_stdlib(value):
    try:
        expected = stdlib_dumps(finite(value), sort_keys=True)
    except (ValueError, RecursionError) as exc:  # too deep, or an int beyond the int-string limit
        with pytest.raises(type(exc)):
            dumps(value, sort_keys=True)
        return
    text = dumps(value, sort_keys=True)
    assert text == expected
    json.loads(text, parse_constant=strict)  # RFC 8259: no NaN, Infinity or -Infinity


def strict(name):
    raise AssertionError(f"{name} is not JSON")


@settings(max_examples=examples(300), deadline=None)
@given(documents.map(lambda v: json.dumps(v, ensure_ascii=False)) | st.text(max_size=40) |
       st.sampled_from(["NaN", "[Infinity]", "1e400", "12345678901234567890", "-9223372036854775809",
                        '"\\ud800"', "[" * 2000, '{"a":1,"a":2}', "\ufeff1", "01", "1.", "[1,]", '"\x01"']))
def test_loads_reads_what_the_stdlib_reads(text):
    try:
        expected = json.loads(text)
    except (ValueError, RecursionError):
        with pytest.raises(JsonError):
            loads(text)
        return
    got = loads(text)
    assert json.dumps(got) == json.dumps(expected)  # same values, same types (NaN included)
    assert json.dumps(loads(text.encode("utf-8", "surrogatepass"))) == json.dumps(got)  # and from bytes


def reference(doc):
    """The redaction of issue 6: mask every secret-named key, write the whole document, scrub the text."""
    masked = mask_keys(doc)
    text = dumps(masked, sort_keys=True)
    scrubbed = scrub(text)
    return (masked, text) if scrubbed == text else (json.loads(scrubbed), scrubbed)


@settings(max_examples=examples(300), deadline=None)
@given(st.dictionaries(keys, documents, max_size=7))
def test_redact_json_matches_masking_the_whole_document(doc):
    value, text = reference(doc)
    red = redact_json(doc)
    assert red.text == text and red.value == value or json.dumps(red.value) == json.dumps(value)
    without = {k: v for k, v in value.items() if k not in ("Sign", "Timestamp")}
    assert red.text_without(("Sign", "Timestamp")) == dumps(without, sort_keys=True)


def test_a_registered_secret_as_a_member_name_keeps_the_id_text_sorted():
    """The scrub masks a registered secret inside a member name; ``***`` sorts before the other names, so the text the
    line id hashes is written again in sorted order, as the whole-document reference writes it (found by CI: an
    earlier test had registered a secret that the property test then drew as a key)."""
    register_secret("zz-registered-name")
    for doc in ({"0": None, "zz-registered-name": 1}, {"zz-registered-name": 1, "0": None, "Sign": "s"}):
        red = redact_json(doc)
        assert "zz-registered-name" not in red.text
        assert red.text_without(("Sign", "Timestamp")) == '{"***":1,"0":null}'


def test_a_secret_named_key_is_masked_at_any_depth_in_any_case():
    register_secret("registered-secret-value")
    for name in ("S3SecretKey", "to\u212aen", "myPASSWORD", "X-Signature", "credentials", "NotifyKey"):
        for depth in (0, 1, 5, 31):  # 2 levels each: 64 in all at 31
            doc: dict = {name: "leak"}
            for _ in range(depth):
                doc = {"Event": [doc]}
            red = redact_json({"EventType": "X", "Body": doc, "Note": "registered-secret-value"})
            assert "leak" not in red.text and "registered-secret-value" not in red.text and REDACTED in red.text


@pytest.mark.parametrize("levels,ok", [(63, True), (64, False), (200, False)])
def test_nesting_is_measured_without_walking(levels, ok):
    value: object = 1
    for _ in range(levels):
        value = [value]
    doc = {"EventType": "X", "Deep": value, "Brackets": "[[[[{{{{" * 20}  # brackets inside strings do not count
    if ok:
        assert redact_json(doc).text == dumps(doc, sort_keys=True)
    else:
        with pytest.raises(JsonError, match="nested deeper than 64 levels"):
            redact_json(doc)


def test_reading_a_text_leaves_it_its_size():
    """An SQS batch's bodies stay in memory for the whole invocation: reading one must not keep a UTF-8 copy inside
    it (orjson does that to a str it is given; 10 MB more for a batch of 1,000 bodies of 10 KB)."""
    import sys

    text = json.dumps({"Message": "视频" * 3000, "n": 1}, ensure_ascii=False)
    size = sys.getsizeof(text)
    assert loads(text)["n"] == 1
    assert sys.getsizeof(text) == size


def test_names_a_sender_makes_up_are_not_kept_by_a_warm_container():
    """Member names, key names and EventTypes are remembered to decide them once; made-up long ones (each callback a
    new 100 KB name) must not accumulate in a container that lives for hours."""
    import gc
    import tracemalloc

    from mps_triggers.lines import build_line

    def line(i: int) -> None:
        name = f"{i:06d}" + "n" * 100_000
        build_line({"EventType": name, name: {name: 1}, "X" + name: "v"}, "sqs", f"m-{i}", 1795343359.0)

    line(0)  # warm: the caches' own structures exist
    gc.collect()
    tracemalloc.start()
    for i in range(1, 101):
        line(i)
    gc.collect()
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert kept < 2_000_000, f"{kept} bytes kept after 100 callbacks with made-up names (10 MB of names)"
