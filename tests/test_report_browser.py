"""The HTML report in real headless Chromium: loads offline with no request and no error, the timeline
has one mark per sighting, injected markup stays text, filters and zoom work, and without JavaScript
the report is still whole.  Screenshots go to test-output/ (git-ignored)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resetlens.report.html import TIMELINE_MARKS_MAX, write_html
from resetlens.report.sample import HOSTILE_IMG, HOSTILE_SCRIPT, many_resets, sample_analysis

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
# Records CSP violations from inside the page (injected by the driver, not subject to the page's CSP).
WATCH_CSP = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


class Browser:
    """One persistent Chromium profile (fresh user-data-dir) that records every request and error."""

    def __init__(self, playwright: Any, *, javascript: bool = True) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="resetlens-chromium-")
        self.context = playwright.chromium.launch_persistent_context(
            self._dir.name,
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            java_script_enabled=javascript,
            viewport={"width": 1280, "height": 900},
            offline=True,
        )
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda req: self.requests.append(req.url))
        self.context.add_init_script(WATCH_CSP)

    def open(self, path: Path) -> Any:
        page = self.context.new_page()
        page.on(
            "console",
            lambda m: (
                self.errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
            ),
        )
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.requests.clear()
        self.errors.clear()
        page.goto(path.as_uri(), wait_until="load")
        return page

    def close(self) -> None:
        try:
            self.context.close()
        finally:
            self._dir.cleanup()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Browser]:
    b = Browser(playwright)
    yield b
    b.close()


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    write_html(sample_analysis(hostile=True), out)
    return out


def visible_marks(page: Any) -> int:
    """RST marks not hidden by a filter (display: none on the reset's group hides its marks)."""
    return page.evaluate(
        "[...document.querySelectorAll('.rst-mark')].filter(e => !e.closest('.filtered-out')).length"
    )


def test_loads_offline_no_requests_no_errors(
    browser: Browser, hostile_report: Path, test_output: Path
) -> None:
    page = browser.open(hostile_report)
    assert browser.requests == [hostile_report.as_uri()]
    assert browser.errors == []
    assert page.evaluate("window.__csp") == []
    assert page.title().startswith("resetlens: payments 502s")
    page.screenshot(path=str(test_output / "report-hostile-full.png"), full_page=True)
    page.locator("#timeline").screenshot(path=str(test_output / "report-timeline.png"))
    page.locator("#reset-R2").screenshot(path=str(test_output / "report-reset-R2.png"))
    page.close()


def test_timeline_marks_and_hostile_text(browser: Browser, hostile_report: Path) -> None:
    a = sample_analysis(hostile=True)
    page = browser.open(hostile_report)
    assert page.locator(".rst-mark").count() == sum(len(r.seen_at) for r in a.resets) == 10
    assert page.locator(".rst-link").count() == 4
    assert page.locator('.rst-mark[data-reset-id="R1"]').count() == 2
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 2
    body = page.inner_text("body")
    assert HOSTILE_IMG in body and HOSTILE_SCRIPT in body
    assert f'server"{HOSTILE_IMG}' in page.inner_text("#captures")
    assert HOSTILE_SCRIPT in page.inner_text("#reset-R2")  # the nginx Host header in the log line
    assert f"SNI pay.example{HOSTILE_IMG}" in page.inner_text("#reset-R1")
    # hover titles hold the hostile vantage name as text too
    titles = page.evaluate("[...document.querySelectorAll('.rst-mark title')].map(t => t.textContent)")
    assert any(f'server"{HOSTILE_IMG}' in t for t in titles)
    page.close()


def test_filters_and_zoom(browser: Browser, hostile_report: Path, test_output: Path) -> None:
    page = browser.open(hostile_report)
    assert page.locator("#filters").is_visible()
    assert visible_marks(page) == 10
    page.select_option('select[data-filter="cause"]', "stale_reuse")
    assert visible_marks(page) == 2
    display = "r => getComputedStyle(document.querySelector(`g.tl-reset[data-reset-id='${r}']`)).display"
    assert page.evaluate(display, "R1") == "none" and page.evaluate(display, "R2") != "none"
    assert page.locator("#resets > table > tbody > tr:visible").count() == 1
    assert page.locator("section.reset:visible").count() == 1
    assert page.inner_text("#filter-status") == "1 of 5 resets match"
    page.select_option('select[data-filter="cause"]', "")
    page.select_option('select[data-filter="role"]', "middlebox")
    assert visible_marks(page) == 2
    assert page.evaluate(
        "[...document.querySelectorAll('.rst-mark')].filter(e => !e.closest('.filtered-out')).every(e => e.dataset.resetId === 'R1')"
    )
    page.locator("#timeline").screenshot(path=str(test_output / "report-filtered-middlebox.png"))
    page.click("#filter-clear")
    assert visible_marks(page) == 10
    before = page.get_attribute("#tl-plot", "viewBox")
    labels_before = page.evaluate(
        "[...document.querySelectorAll('#tl-tick-labels text')].map(t => t.textContent)"
    )
    page.click("#zoom-in")
    page.click("#zoom-in")
    after = page.get_attribute("#tl-plot", "viewBox")
    assert before != after and float(after.split()[2]) == pytest.approx(float(before.split()[2]) / 4)
    labels_after = page.evaluate(
        "[...document.querySelectorAll('#tl-tick-labels text')].map(t => t.textContent)"
    )
    assert labels_after and labels_after != labels_before
    assert page.inner_text("#zoom-level") == "4.0×"
    page.click("#zoom-reset")
    assert page.get_attribute("#tl-plot", "viewBox") == before
    assert browser.errors == []
    page.close()


def test_readable_without_javascript(playwright: Any, hostile_report: Path, test_output: Path) -> None:
    b = Browser(playwright, javascript=False)
    try:
        page = b.open(hostile_report)
        assert b.requests == [hostile_report.as_uri()]
        assert page.locator(".rst-mark").count() == 10
        assert not page.locator("#filters").is_visible()  # the controls need the script: hidden without it
        assert "5 resets seen across 5 vantage points" in page.inner_text("#verdict")
        assert page.locator("svg.ladder").count() == 4
        page.screenshot(path=str(test_output / "report-no-js.png"), full_page=True)
    finally:
        b.close()


def test_many_resets_page_in_browser(browser: Browser, tmp_path: Path, test_output: Path) -> None:
    a = many_resets(3000)
    out = tmp_path / "many.html"
    write_html(a, out)
    page = browser.open(out)
    drawn, budget = [], TIMELINE_MARKS_MAX
    for r in sorted(a.resets, key=lambda r: r.ts):  # whole resets in time order while the marks fit
        budget -= len(r.seen_at)
        if budget < 0:
            break
        drawn.append(r)
    assert len(drawn) < len(a.resets)
    assert page.locator(".rst-mark").count() == sum(len(r.seen_at) for r in drawn)
    assert browser.requests == [out.as_uri()]
    assert browser.errors == []
    page.select_option('select[data-filter="kind"]', "injected")
    assert visible_marks(page) == sum(len(r.seen_at) for r in drawn if r.sender.kind == "injected")
    injected = sum(1 for r in a.resets if r.sender.kind == "injected")
    assert page.inner_text("#filter-status") == f"{injected} of 3000 resets match"
    page.locator("#timeline").screenshot(path=str(test_output / "report-many-timeline.png"))
    page.close()
