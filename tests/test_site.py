"""The built site: a strict build, then checks in a real headless Chromium with the
network cut off (only the local server is reachable).

The build is `jupyter-book build . --warningiserror --nitpick` into `_build/html`. The
browser is Debian's Chromium (`.ci/run` installs it), driven by Playwright; any request to
a host other than the local server is refused and recorded, so a page that needs a CDN
(MathJax, fonts, widget JavaScript) fails these tests.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from toc import toc_files  # noqa: E402

HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def site() -> Path:
    """Build the book with warnings as errors (executing every chapter, in parallel, first)."""
    env = dict(os.environ,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "execute_chapters.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"a chapter failed to execute:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    proc = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", ".",
                           "--warningiserror", "--nitpick", "--keep-going"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"strict site build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert (HTML / "index.html").exists()
    return HTML


def test_every_toc_entry_has_a_page(site):
    missing = [f for f in toc_files() if not (site / f"{f}.html").exists()]
    assert not missing


def test_pages_reference_no_other_host(site):
    """No page loads a script, stylesheet, font or image from another host."""
    import re

    offenders = {}
    pattern = re.compile(r'<(?:script|link|img)[^>]+(?:src|href)="(https?:)?//[^"]+"')
    for page in site.rglob("*.html"):
        found = [m.group(0) for m in pattern.finditer(page.read_text())
                 if 'rel="canonical"' not in m.group(0)]
        if found:
            offenders[str(page.relative_to(site))] = found[:3]
    assert not offenders


@pytest.fixture(scope="module")
def server(site):
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync",
                  # other hosts do not resolve: the machine is offline for the page
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        yield browser
        browser.close()


class Visit:
    """One page load with its console errors and every request that left the server."""

    def __init__(self, browser, server: str, path: str):
        self.page = browser.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        host = urlparse(server).netloc
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r):
            if urlparse(r.request.url).netloc == host:
                r.continue_()
            else:
                self.foreign.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)
        self.page.goto(f"{server}/{path}", wait_until="networkidle")


MATH_PAGES = ["chapters/part1_numerics/softmax_logsumexp.html",
              "chapters/part1_numerics/cross_entropy.html",
              "chapters/part1_numerics/floating_point.html"]


@pytest.mark.browser
@pytest.mark.parametrize("path", MATH_PAGES)
def test_math_renders_offline_with_figures_and_no_console_error(browser, server, path):
    visit = Visit(browser, server, path)
    page = visit.page
    # The article, not the print-only contents list (hidden) that repeats math in headings.
    page.wait_for_selector("article.bd-article mjx-container", timeout=20_000)
    assert page.locator("article.bd-article mjx-container").count() > 10
    text = page.inner_text("article.bd-article")
    assert "$$" not in text and "\\frac" not in text, "raw TeX left on the page"
    images = page.locator("main img")
    assert images.count() >= 1, "no figure on the page"
    loaded = page.evaluate("[...document.querySelectorAll('main img')]"
                           ".every(img => img.complete && img.naturalWidth > 0)")
    assert loaded, "a figure did not load"
    assert not visit.foreign, f"requests to other hosts: {visit.foreign}"
    assert not visit.errors, f"console errors: {visit.errors}"
    page.close()


@pytest.mark.browser
def test_every_page_loads_without_console_errors_or_foreign_requests(browser, server):
    problems = {}
    for doc in toc_files():
        visit = Visit(browser, server, f"{doc}.html")
        if visit.errors or visit.foreign:
            problems[doc] = {"errors": visit.errors, "foreign": visit.foreign}
        visit.page.close()
    assert not problems


@pytest.mark.browser
def test_search_finds_a_chapter(browser, server):
    visit = Visit(browser, server, "search.html?q=logsumexp")
    page = visit.page
    page.wait_for_selector("#search-results li", timeout=20_000)
    results = page.inner_text("#search-results")
    assert "softmax" in results.lower()
    assert not visit.errors and not visit.foreign
    page.close()


@pytest.mark.browser
def test_landing_page_screenshot(browser, server, tmp_path):
    """The landing page renders (a screenshot is kept in _build for a human to look at)."""
    visit = Visit(browser, server, "index.html")
    shot = ROOT / "_build" / "landing.png"
    visit.page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    assert "ML Fundamentals from Scratch" in visit.page.title()
    visit.page.close()
