"""A real headless browser for the tests: Debian's Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``) driven by
Playwright (its Python package only: no browser download, which this machine cannot reach). Without a browser the
test is skipped, unless ``MPS_TRIGGERS_REQUIRE_BROWSER`` is set (``.ci/run`` sets it after installing Chromium),
where it fails."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    """The Chromium binary, or None."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """An open page: :meth:`evaluate` runs a JavaScript expression in it; :attr:`requests` lists every URL the
    page asked for."""

    def __init__(self, page: Any, requests: list[str]) -> None:
        self._page, self.requests = page, requests

    def evaluate(self, expression: str) -> Any:
        return self._page.evaluate(expression)


@contextlib.contextmanager
def open_page(path: Path, width: int = 1200, height: int = 1600) -> Iterator[Page]:
    """Open ``path`` (a local HTML file) in headless Chromium; yields a :class:`Page`."""
    binary = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if binary is None or sync_playwright is None:
        why = "no Chromium (apt-get install chromium)" if binary is None else "playwright is not installed"
        if os.environ.get("MPS_TRIGGERS_REQUIRE_BROWSER"):
            pytest.fail(f"a browser test cannot run: {why}")
        pytest.skip(why)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            yield Page(page, requests)
        finally:
            browser.close()
