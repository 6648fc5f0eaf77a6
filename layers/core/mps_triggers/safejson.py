"""JSON at the edges: parsing that cannot blow the stack, lines every reader splits where we meant, strict integers.

Everything a user or the network controls passes through here before the rest of the code sees it:

- :func:`loads` parses text; ``json.loads`` raises :class:`RecursionError` (not a ``ValueError``) on ~1,000 nested
  brackets, and that becomes :class:`JsonError` (a ``ValueError``) with a reason. Valid JSON a few hundred levels
  deep would later overflow a recursive walk: every walk of a whole document in this project is bounded at
  :data:`MAX_DEPTH` (64) levels and raises :class:`JsonError` beyond (:func:`mps_triggers.redaction.mask_keys`;
  :func:`depth_exceeds` for values a platform parsed), far above what MPS, S3, SQS, SNS or EventBridge send
  (≤ 12 levels in every documented sample).
- :func:`dumps` writes one compact JSON text that always encodes as UTF-8 and always stays one line for every
  reader: lone UTF-16 surrogates (``"\\ud800"``, which ``str.encode("utf-8")`` refuses) and the characters
  ``str.splitlines()`` breaks on besides ``\\n`` (U+2028, U+2029, U+0085; JSON leaves them raw) are written as
  ``\\uXXXX`` escapes. Everything else stays raw UTF-8 (no ASCII escaping).
  Non-finite floats (which only Python's lenient parser makes, from ``NaN``/``Infinity``/``1e400``) are written as
  ``null``: RFC 8259 has no NaN, and no strict reader (DuckDB, jq, orjson) would read the line.
- Both use orjson (a pinned runtime dependency: about 6× faster to write and 2× faster to read than the stdlib's
  C code here) wherever its result is the stdlib's to the byte, and the stdlib everywhere else, so the bytes never
  depend on which one ran: :func:`loads` hands orjson no text with a 19-digit run (orjson turns integers beyond
  64 bits into floats), and takes whatever orjson refuses (``NaN``, lone surrogate escapes, 1,024 levels) to the
  stdlib; :func:`dumps` takes to the stdlib what orjson cannot write (integers beyond 64 bits, lone surrogates,
  subclasses, unknown types) and every text where orjson writes a float differently (below 1e-4: ``1e-7`` for
  ``1e-07``, ``0.00001`` for ``1e-05``).
- :func:`to_int` reads an integer only from an ``int`` or a short string of ASCII digits: ``"²"`` passes
  ``str.isdigit()`` and then fails ``int()``; ``"1" * 5000`` exceeds Python's int-string limit (ValueError).

Example::

    doc = loads(body)                      # JsonError("nested deeper than 64 levels") for '[' * 100_000
    line = dumps({"k": "a\\u2028b"})        # '{"k":"a\\\\u2028b"}': one line, UTF-8 safe
    to_int("1700000000"), to_int("²")      # 1700000000, None
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

try:
    import orjson
except ImportError:  # a platform without its wheel: the stdlib alone gives the same bytes, slower
    orjson = None  # type: ignore[assignment]

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in any event, body or notification."""

MAX_INT_DIGITS = 18
"""Longest digit string :func:`to_int` reads (fits a signed 64-bit integer)."""

_UNSAFE = re.compile("[\u0085\u2028\u2029\ud800-\udfff]")
_ASCII_INT = re.compile(r"-?[0-9]+", re.ASCII)
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))  # bytes.translate: digits → "0", else " "
_LONG_RUN = b"0" * 19  # the shortest integer literal orjson may read as a float (below -2**63 or above 2**64 - 1)
if orjson is not None:
    _PLAIN = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
    _SORTED = _PLAIN | orjson.OPT_SORT_KEYS


class JsonError(ValueError):
    """The text is not JSON, or not JSON this project accepts (nested deeper than :data:`MAX_DEPTH`)."""


def loads(text: str | bytes, max_depth: int | None = None) -> Any:
    """Parse JSON ``text`` (str, or UTF-8 bytes). Raises :class:`JsonError` naming the problem and its position.

    The C parser's own recursion limit (a flood of ``[``) becomes "nested deeper than 64 levels". With
    ``max_depth``, the parsed value is also measured (iteratively) and refused beyond it.
    """
    # orjson gets UTF-8 bytes, never the str: reading a str, it would keep a UTF-8 copy inside that str for as long
    # as the str lives (an SQS batch's bodies: the whole batch again).
    data = None if orjson is None else text.encode("utf-8", "surrogatepass") if isinstance(text, str) else \
        bytes(text)
    if data is not None and _LONG_RUN not in data.translate(_DIGITS):
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the stdlib decides: it reads what orjson refuses (NaN, lone surrogates) or says why not
        else:
            if max_depth is not None and depth_exceeds(value, max_depth):
                raise JsonError(f"nested deeper than {max_depth} levels")
            return value
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonError(f"nested deeper than {max_depth or MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise JsonError("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise JsonError(f"not JSON ({exc.msg} at char {exc.pos})") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's int-string limit
        raise JsonError(f"not JSON we can read ({str(exc)[:80]})") from None
    if max_depth is not None and depth_exceeds(value, max_depth):
        raise JsonError(f"nested deeper than {max_depth} levels")
    return value


def depth_exceeds(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """True when ``value`` nests arrays/objects more than ``max_depth`` levels (a scalar is depth 0). Iterative."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level + 1 > max_depth:
            return True
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def line_safe(text: str) -> str:
    """``text`` (serialized JSON) with lone surrogates, U+2028, U+2029 and U+0085 written as ``\\uXXXX``.

    Inside JSON text these characters can only stand within strings, where the escape is the same character to
    any JSON reader; the result always encodes as UTF-8 and ``splitlines()`` never cuts it. (The checks before the
    regex are substring searches and one encode, at C speed: most texts have none of these characters.)
    """
    if text.isascii():
        return text
    if "\u2028" in text or "\u2029" in text or "\u0085" in text:
        return _UNSAFE.sub(_escape, text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return _UNSAFE.sub(_escape, text)
    return text


def dumps(value: Any, *, sort_keys: bool = False, default: Any = None) -> str:
    """Compact JSON (``,``/``:`` separators, raw UTF-8), made line-safe by :func:`line_safe`.

    Non-finite floats are written as ``null``. The text is the stdlib's (``json.dumps`` with ``ensure_ascii=False``,
    compact separators) to the byte, whether orjson or the stdlib wrote it.

    Raises ``ValueError`` for values JSON cannot hold (an ``int`` beyond the int-string limit), ``TypeError`` for
    unknown types unless ``default`` converts them.
    """
    if orjson is not None:
        try:
            raw = orjson.dumps(value, option=_SORTED if sort_keys else _PLAIN)
        except orjson.JSONEncodeError:
            pass  # beyond 64 bits, a lone surrogate, a subclass, a type only ``default`` knows: the stdlib writes it
        else:
            if not _orjson_float_differs(raw):
                return line_safe(raw.decode("utf-8"))
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys, default=default,
                          allow_nan=False)
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys,
                          default=default)
    return line_safe(text)


def _orjson_float_differs(raw: bytes) -> bool:
    """True when orjson's text may hold a float written otherwise than ``repr()`` writes it. Comparing both on 8
    million floats of every exponent, each such float is below 1e-4 in magnitude and written ``<digit>e-<one
    digit>`` (``1e-7``, repr ``1e-07``) or ``0.0000…`` (``0.0000152``, repr ``1.52e-05``). Substring searches,
    not a regex: a regex scan of a 3 KB text costs more than orjson's whole serialization."""
    if b"0.0000" in raw:
        return True
    at = raw.find(b"e-")
    while at != -1:
        if at > 0 and 48 <= raw[at - 1] <= 57 and at + 2 < len(raw) and 48 <= raw[at + 2] <= 57 and \
                not (at + 3 < len(raw) and 48 <= raw[at + 3] <= 57):
            return True
        at = raw.find(b"e-", at + 2)
    return False


def _finite(value: Any, _depth: int = 0) -> Any:
    """``value`` with NaN and ±Infinity (anywhere in dicts and lists) replaced by None, as orjson writes them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if _depth > 1000:  # the encoder gives up far sooner (RecursionError); never recurse without bound
        return value
    if isinstance(value, dict):
        return {k: _finite(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, _depth + 1) for v in value]
    return value


def to_int(value: Any, max_digits: int = MAX_INT_DIGITS) -> int | None:
    """An ``int`` (not ``bool``) of at most ``max_digits`` digits, or a string of 1..``max_digits`` ASCII digits
    (optionally after a ``-``), as ``int``; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(10 ** max_digits) < value < 10 ** max_digits else None
    if isinstance(value, str) and 0 < len(value.lstrip("-")) <= max_digits and _ASCII_INT.fullmatch(value):
        return int(value)
    return None
