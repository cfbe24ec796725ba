"""The archive index page in real headless Chromium: offline, no request but itself, no CSP violation,
hostile bundle names stay text, and its links open each bundle's own report."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_batch_support import corpus, corrupt_archive, good_archive, put, rows

from resetlens.batch.run import run_batch

CHROMIUM = "/usr/bin/chromium"
# Records CSP violations from inside the page (injected by the driver, not subject to the page's CSP).
WATCH_CSP = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)
HOSTILE = "<img src=x onerror=alert(1)>"

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    with (
        tempfile.TemporaryDirectory(prefix="resetlens-chromium-") as profile,
        sync_api.sync_playwright() as pw,
    ):
        ctx = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
            ],
            viewport={"width": 1280, "height": 900},
            offline=True,
        )
        ctx.add_init_script(WATCH_CSP)
        try:
            yield ctx
        finally:
            ctx.close()


def test_index_offline_strict_and_linked(context: Any, tmp_path: Path, test_output: Path) -> None:
    root = tmp_path / "archive"
    good = good_archive(root)
    bad = corrupt_archive(root)
    put(root / HOSTILE / "c.pcap", corpus("zeek_tcp_rst-inject-rae.pcap"))
    out = tmp_path / "out"
    summary = run_batch(root, tmp_path / "b.duckdb", out=out, workers=2)
    assert summary.ok == len(good) + 1, summary.failures

    requests: list[str] = []
    errors: list[str] = []
    context.on("request", lambda req: requests.append(req.url))
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    index = out / "index.html"
    page.goto(index.as_uri(), wait_until="load")
    assert requests == [index.as_uri()]
    assert errors == [] and dialogs == []
    assert page.evaluate("window.__csp") == []
    assert page.locator("img").count() == 0  # the hostile name is text, not an element
    assert page.get_by_text(HOSTILE).count() >= 1
    # one table row per bundle, charts drawn
    assert page.locator("table").last.locator("tr").count() == 1 + len(good) + len(bad) + 1
    n_resets = rows(tmp_path / "b.duckdb", "SELECT count(*) FROM resets")[0][0]
    assert n_resets > 0
    assert page.locator("svg rect").count() > 0
    page.screenshot(path=str(test_output / "batch-index.png"), full_page=True)

    # the link of a bundle opens that bundle's own HTML report
    link = page.locator("a", has_text="HTML").first
    href = link.get_attribute("href")
    assert href and not href.startswith(("http:", "https:", "//"))
    requests.clear()
    link.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/report.html")
    assert page.title().startswith("resetlens")
    assert all(u.startswith("file://") or u.startswith("data:") for u in requests)
    page.close()
