"""The portal's browser tests' shared fixtures: Debian's Chromium driven by Playwright, one page
per test that may load nothing from another host, and screenshots for the README.

Loaded as a plugin by tests/e2e/conftest.py. With ``AIGW_UPDATE_SCREENSHOTS=1`` (``make
screenshots``) the screenshots are written to docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

    from tests.e2e.conftest import Runner

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("Chromium is not installed (make setup installs it)")
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, runner: Runner) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    foreign: list[str] = []
    origin = urlsplit(runner.base_url).netloc

    def _only_the_gateway(route: Any, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https") and parts.netloc != origin:
            foreign.append(request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", _only_the_gateway)
    errors: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 500 else None,
    )
    yield tab
    context.close()
    assert foreign == [], "the portal must load nothing from another host"
    assert [e for e in errors if "401" not in e] == [], "no script errors"


def shot(page: Page, name: str, tmp_path: Path, *, mask: list[Locator] | None = None) -> None:
    target = ROOT / "docs/screenshots" if os.environ.get("AIGW_UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"), full_page=True, mask=mask or [], mask_color="#d1d5db")


def sign_in(page: Page, runner: Runner, key: str) -> None:
    from playwright.sync_api import expect

    page.goto(runner.base_url + "/portal")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("section.page[data-ready=true]")).to_be_visible()
