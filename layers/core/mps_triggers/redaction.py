"""Redaction: secrets never reach a log line, an error message or an archive object.

Three nets, applied together by :func:`redact` (structures), :func:`scrub` (one string, or a JSON text) and
:func:`redact_json` (a document and its canonical JSON text, the text scrubbed in one pass):

1. **By key name** (:func:`is_secret_key`): ``S3SecretId``, ``S3SecretKey``, ``SecretId``, ``SecretKey``,
   ``NotifyKey``, ``Sign``, ``Authorization`` and every key whose name contains ``secret``, ``token``,
   ``password``, ``passwd``, ``signature`` or ``credential`` (any case) → ``"***"``. MPS echoes the S3 keys of AWS
   tasks in callbacks (ParseNotification, API 2019-06-12); ``Sign`` with its ``Timestamp`` lets anyone forge a
   callback for ~15 minutes.
2. **By value** (:func:`scrub`): in any string, URL query parameters (or ``name=value`` pairs after ``?``, ``&``,
   ``;``, ``,``, a space or a quote) whose name is secret-like keep their name and lose their value: presigned S3
   URLs (``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``; AWS SigV4 query auth), COS signed
   URLs (``q-ak``, ``q-signature``, ``x-cos-security-token``; COS "Request signature"), a WeCom robot URL's
   ``key``, ``token``, ``sign``, ``sig``, ``signature``, ``access_token``, ``api_key``. Access key ids
   (``AKIA…``/``ASIA…`` + 16, Tencent ``AKID…``) are masked wherever they appear.
3. **By known value**: every secret the configuration holds is registered (:func:`register_secret`) when it is
   loaded, and masked wherever it turns up, whatever the key or the text around it (a front end that echoes a
   request, an error message quoting a URL).

Example::

    redact({"S3SecretKey": "k", "Url": "https://b.s3.amazonaws.com/a.mp4?X-Amz-Signature=abc&x=1"})
    # {"S3SecretKey": "***", "Url": "https://b.s3.amazonaws.com/a.mp4?X-Amz-Signature=***&x=1"}
"""
from __future__ import annotations

import functools
import json
import re
import threading
from typing import Any, Callable, TypeVar

from .safejson import MAX_DEPTH, JsonError, dumps, loads

REDACTED = "***"
MIN_REGISTERED_LENGTH = 6
"""Shorter configured secrets are not registered (masking every 3-letter run of text would garble logs)."""

_SECRET_KEYS = frozenset({"s3secretid", "s3secretkey", "secretid", "secretkey", "notifykey", "sign",
                          "authorization", "cookie", "set-cookie"})
_SECRET_PARTS = ("secret", "token", "password", "passwd", "signature", "credential")
_SECRET_PARAMS = frozenset({"key", "sign", "sig", "ak", "q-ak", "accesskey", "access_key", "accesskeyid",
                            "apikey", "api_key", "api-key", "x-api-key", "auth", "authorization"})
_PARAM = re.compile(r"""(?:(?<=[?&;,\s"'])|^)([A-Za-z0-9_.\-]{1,64})=([^&#\s"'<>\\]+)""")
_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bAKID[0-9A-Za-z]{13,64}\b")

_registered: set[str] = set()
_registered_list: tuple[str, ...] = ()
_registered_re: re.Pattern[str] | None = None
_lock = threading.Lock()


CACHED_NAME_CHARS = 128
"""Names up to this long are remembered by the caches of this module and :mod:`mps_triggers.lines` (the same
names come in every notification); a longer one, which only a sender making them up would use, is decided each
time, so that no sender can fill a container's memory with its names."""

_T = TypeVar("_T")


def name_cache(maxsize: int) -> Callable[[Callable[[str], _T]], Callable[[str], _T]]:
    """Decorator: remember a function of one name (a JSON key, an EventType) for names of up to
    :data:`CACHED_NAME_CHARS` characters, in an LRU cache of ``maxsize`` entries; a longer name is computed each
    time. The cache then holds at most ``maxsize`` × 128 characters of names, whatever a sender makes up."""
    def wrap(func: Callable[[str], _T]) -> Callable[[str], _T]:
        cached = functools.lru_cache(maxsize=maxsize)(func)

        @functools.wraps(func)
        def call(name: str) -> _T:
            return cached(name) if len(name) <= CACHED_NAME_CHARS else func(name)
        return call
    return wrap


@name_cache(4096)
def is_secret_key(name: str) -> bool:
    """True for a JSON key or log field name whose value is a secret (see the module docstring)."""
    low = name.lower()
    return low in _SECRET_KEYS or any(part in low for part in _SECRET_PARTS)


@functools.lru_cache(maxsize=1024)
def is_secret_param(name: str) -> bool:
    """True for a URL query parameter name whose value is a secret (``key``, ``X-Amz-Signature``, ``q-ak``...)."""
    low = name.lower()
    return low in _SECRET_PARAMS or any(part in low for part in _SECRET_PARTS)


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears from now on (logs, error messages, archive lines). Thread-safe.

    Values shorter than :data:`MIN_REGISTERED_LENGTH` characters are ignored.
    """
    global _registered_re, _registered_list
    if not value or len(value) < MIN_REGISTERED_LENGTH or value in _registered:
        return
    with _lock:
        _registered.add(value)
        escaped = json.dumps(value, ensure_ascii=False)[1:-1]
        if escaped != value:  # as it stands inside a JSON text (quotes, backslashes, control characters)
            _registered.add(escaped)
        # Longest first, so that a secret containing another is masked whole.
        ordered = sorted(_registered, key=len, reverse=True)
        _registered_re = re.compile("|".join(re.escape(v) for v in ordered))
        _registered_list = tuple(ordered)


def _mask_param(match: re.Match[str]) -> str:
    return f"{match.group(1)}={REDACTED}" if is_secret_param(match.group(1)) else match.group(0)


def scrub(text: str) -> str:
    """``text`` with secret-named ``name=value`` parameters, access key ids and registered secrets masked.

    Works on plain text and on JSON text alike: no pattern reaches across a quote or a backslash, so a JSON text
    stays valid JSON and only string contents change."""
    if "=" in text:
        text = _PARAM.sub(_mask_param, text)
    if "AKI" in text or "ASIA" in text:
        text = _ACCESS_KEY.sub(REDACTED, text)
    pattern = _registered_re
    if pattern is not None and any(secret in text for secret in _registered_list):  # substring search first
        text = pattern.sub(REDACTED, text)
    return text


def mask_keys(value: Any, _depth: int = 0) -> Any:
    """``value`` with the values of secret-named keys masked (the first net only), copy-on-write: containers on the
    way to a masked key are copied, everything else is shared with ``value``, which is never modified.

    Raises :class:`~mps_triggers.safejson.JsonError` beyond :data:`~mps_triggers.safejson.MAX_DEPTH` levels.
    """
    if isinstance(value, dict):
        if _depth >= MAX_DEPTH:
            raise JsonError(f"nested deeper than {MAX_DEPTH} levels")
        out = None
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k) and v not in (None, ""):
                new: Any = REDACTED
            elif isinstance(v, (dict, list)):
                new = mask_keys(v, _depth + 1)
                if new is v:
                    continue
            else:
                continue
            if out is None:
                out = dict(value)
            out[k] = new
        return value if out is None else out
    if isinstance(value, list):
        if _depth >= MAX_DEPTH:
            raise JsonError(f"nested deeper than {MAX_DEPTH} levels")
        items = None
        for i, v in enumerate(value):
            if isinstance(v, (dict, list)):
                new = mask_keys(v, _depth + 1)
                if new is not v:
                    if items is None:
                        items = list(value)
                    items[i] = new
        return value if items is None else items
    return value


_SECRET_WORDS = (b"secret", b"token", b"passw", b"sign", b"credential", b"authorization", b"cookie", b"notifykey")
"""Every name :func:`is_secret_key` accepts, lower-cased, holds one of these (``signature`` holds ``sign``,
``passwd`` and ``password`` hold ``passw``, ``s3secretid`` holds ``secret``, ``set-cookie`` holds ``cookie``)."""
_KELVIN = "\u212a".encode("utf-8")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _may_name_a_secret(text: str) -> bool:
    """False only when no key in ``text`` (JSON that :func:`~mps_triggers.safejson.dumps` wrote) is secret-named.

    A name's letters stand in its JSON text unescaped (only quotes, backslashes, control characters, U+2028,
    U+2029, U+0085 and lone surrogates are escaped, and none lower-cases to a letter), so if ``name.lower()`` holds
    a word of :data:`_SECRET_WORDS`, the text holds it in some case. The search runs on the UTF-8 bytes lower-cased
    as ASCII (a tenth of ``str.lower()``'s time on a text with CJK in it); of the characters outside ASCII, only
    U+212A (the Kelvin sign, → ``k``) and U+0130 (→ ``i`` + U+0307, which no word can hold) lower-case to an ASCII
    letter, and a text with the Kelvin sign is always walked."""
    data = text.encode("utf-8", "surrogatepass")
    if not data.isascii() and _KELVIN in data:
        return True
    low = data.lower()
    return any(word in low for word in _SECRET_WORDS)


def _nesting(text: str) -> int:
    """Levels of arrays and objects in ``text`` (JSON that :func:`~mps_triggers.safejson.dumps` wrote)."""
    depth = deepest = 0
    for ch in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _check_nesting(text: str, levels: int) -> None:
    """Raise :class:`JsonError` when ``text`` nests more than ``levels`` levels (counting brackets first: a text
    with fewer brackets than that cannot)."""
    if text.count("{") + text.count("[") > levels and _nesting(text) > levels:
        raise JsonError(f"nested deeper than {MAX_DEPTH} levels")


@name_cache(4096)  # the same member names in every notification
def _member_name(key: str) -> str:
    """``"key":`` as :func:`~mps_triggers.safejson.dumps` writes it."""
    return dumps(key) + ":"


class RedactedJson:
    """A document with every secret masked (:func:`redact_json`): ``value`` (shares what was not masked with the
    original, which is never modified) and ``text``, its canonical JSON (sorted keys, compact, line-safe:
    :func:`mps_triggers.safejson.dumps`, then scrubbed: a masked member name keeps its place), both always in
    agreement."""

    __slots__ = ("value", "text", "_members")

    def __init__(self, value: Any, text: str, members: list[tuple[str, str]] | None = None) -> None:
        self.value, self.text, self._members = value, text, members

    def text_without(self, keys: tuple[str, ...]) -> str:
        """The canonical text (sorted keys) of the document without its top-level ``keys``: ``text`` when it has
        none of them, else the members' texts joined again (nothing is serialized twice). When the scrub changed the
        text (a registered secret inside a member name: its mask sorts elsewhere) it is written again, sorted."""
        if not isinstance(self.value, dict):
            return self.text
        if self._members is None:  # no member texts: keys not all str, or the scrub changed the text (a masked
            # member name may now sort elsewhere)
            return dumps({k: v for k, v in self.value.items() if k not in keys}, sort_keys=True)
        if not any(k in self.value for k in keys):
            return self.text
        return "{" + ",".join(text for k, text in self._members if k not in keys) + "}"


def redact_json(value: Any) -> RedactedJson:
    """``value`` redacted, with its canonical JSON text: keys masked structurally (:func:`mask_keys`), values
    scrubbed in one pass over the text (:func:`scrub`). The value is parsed back from the text only when the scrub
    changed it, so both always agree.

    An object (a notification) is written member by member, in sorted order: the members' texts are kept for
    :meth:`RedactedJson.text_without`, and a member whose text names no secret-like word (most of them, always the
    largest) is neither walked nor copied, only its nesting measured on the text.

    Raises :class:`~mps_triggers.safejson.JsonError` beyond 64 levels, ``ValueError`` for values JSON cannot carry.
    """
    if not isinstance(value, dict) or not all(type(k) is str for k in value):
        masked = mask_keys(value)
        text = dumps(masked, sort_keys=True)
        members = None
    else:
        masked, members = value, []
        for key in sorted(value):
            v = new = value[key]
            if is_secret_key(key) and v not in (None, ""):
                new = REDACTED
                text = f'"{REDACTED}"'
            else:
                text = dumps(v, sort_keys=True)
                if isinstance(v, (dict, list)):
                    if _may_name_a_secret(text):
                        new = mask_keys(v, 1)
                        if new is not v:
                            text = dumps(new, sort_keys=True)
                    else:
                        _check_nesting(text, MAX_DEPTH - 1)
            if new is not v:
                if masked is value:
                    masked = dict(value)
                masked[key] = new
            members.append((key, _member_name(key) + text))
        text = "{" + ",".join(t for _, t in members) + "}"
    scrubbed = scrub(text)
    if scrubbed is text or scrubbed == text:
        return RedactedJson(masked, text, members)
    return RedactedJson(loads(scrubbed), scrubbed)


def redact(value: Any, _depth: int = 0) -> Any:
    """A deep copy of ``value`` (JSON-like: dict, list, scalars) with every secret masked (all three nets).

    Raises :class:`~mps_triggers.safejson.JsonError` when ``value`` nests deeper than
    :data:`~mps_triggers.safejson.MAX_DEPTH` levels (the recursion is bounded, never a RecursionError).
    """
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        if _depth >= MAX_DEPTH:
            raise JsonError(f"nested deeper than {MAX_DEPTH} levels")
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k) and v not in (None, ""):
                out[k] = REDACTED
            elif isinstance(v, str):
                out[k] = scrub(v)
            else:
                out[k] = redact(v, _depth + 1) if isinstance(v, (dict, list)) else v
        return out
    if isinstance(value, list):
        if _depth >= MAX_DEPTH:
            raise JsonError(f"nested deeper than {MAX_DEPTH} levels")
        return [scrub(v) if isinstance(v, str) else redact(v, _depth + 1) if isinstance(v, (dict, list)) else v
                for v in value]
    return value
