"""The course website: ``slm-course site build`` in the fast profile, checked in headless Chromium.

For every lesson page: it loads without console errors, its figures are there and decoded
(natural width > 0), its maths is rendered by MathJax (no unrendered or erroneous formula),
and every link inside the site answers 200 from a local server on 127.0.0.1, with its
#anchor present. Screenshots of the landing page and one lesson go to build/site-screenshots/.

Needs Debian's ``chromium`` and ``chromium-driver`` and requirements-dev.txt (Jupyter Book,
selenium). Outside CI the test skips when they are missing; with CI=true it fails instead.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import nbformat
import pytest
from helpers import ROOT

SITE = ROOT / "build" / "site-test"
WORK = ROOT / "build" / "site-test-src"
SHOTS = ROOT / "build" / "site-screenshots"
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.slow


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is missing and CI=true: .ci/run installs it; the browser test "
                    "must run in CI")
    pytest.skip(f"{what} is missing: `apt-get install chromium chromium-driver` and "
                "`pip install -r requirements-dev.txt` (CI does both)")


@pytest.fixture(scope="module")
def tools():
    if not CHROMIUM or not DRIVER:
        _missing("Debian's chromium/chromium-driver (no `chromium` or `chromedriver` on PATH)")
    for module in ("jupyter_book", "selenium"):
        try:
            __import__(module)
        except ImportError:
            _missing(f"the Python package {module!r}")


@pytest.fixture(scope="module")
def site(tools) -> Path:
    env = dict(os.environ, SLM_COURSE_PROFILE="fast")
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "slm_course", "site", "build", "--out",
                           str(SITE), "--work", str(WORK), "--workers", "2", "--timeout", "300"],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    print(proc.stdout, f"\nsite build: {time.perf_counter() - began:.0f} s")
    assert proc.returncode == 0, f"`slm-course site build` failed:\n{proc.stdout}\n{proc.stderr}"
    return SITE


@pytest.fixture(scope="module")
def base_url(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line per request in the test output
        pass


@pytest.fixture(scope="module")
def browser(tools):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


_fetched: dict[str, tuple[int, str]] = {}


def _fetch(url: str) -> tuple[int, str]:
    """HTTP status and text of a page of the local site (cached)."""
    if url not in _fetched:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                _fetched[url] = (resp.status, resp.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as err:
            _fetched[url] = (err.code, "")
    return _fetched[url]


# After MathJax has typeset the page (its startup promise), report what the checks need.
_INSPECT = """
const done = arguments[arguments.length - 1];
const until = Date.now() + 45000;
function report() {
  const math = [...document.querySelectorAll('.math')];
  done({
    href: location.href,
    title: document.title,
    main: !!document.querySelector('main'),
    math: math.length,
    unrendered: math.filter(m => !m.querySelector('mjx-container'))
                    .map(m => m.textContent.slice(0, 80)),
    merrors: [...document.querySelectorAll('mjx-merror')].map(m => m.textContent.slice(0, 80)),
    images: [...document.querySelectorAll('main img')]
              .map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
    outputImages: document.querySelectorAll('main .cell_output img').length,
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    prev: (document.querySelector('a.left-prev') || {}).href || null,
    next: (document.querySelector('a.right-next') || {}).href || null,
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  });
}
function wait() {
  if (document.readyState !== 'complete' && Date.now() < until) { setTimeout(wait, 100); }
  else if (!document.querySelector('script[src*="mathjax"]')) { report(); }  // no maths
  else if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(report, e => done({error: String(e)}));
  } else if (Date.now() > until) { report(); } else { setTimeout(wait, 100); }
}
wait();
"""


def _inspect(driver, url: str, tries: int = 2) -> tuple[dict, list[str]]:
    """Load ``url`` and report on it. A second try only when Chromium did not show the page
    at all (e.g. a renderer that crashed under load shows an error page with no <main>); a page
    that loads but is wrong fails on the first try."""
    for _ in range(tries):
        driver.get_log("browser")  # drop what earlier pages left
        driver.get(url)
        info = driver.execute_async_script(_INSPECT)
        shown = info.get("main") and urldefrag(info.get("href", ""))[0] == url
        if shown or "error" in info:
            break
    assert "error" not in info, f"{url}: MathJax failed: {info['error']}"
    assert shown, (f"Chromium did not show {url} in {tries} tries: it showed "
                   f"{info.get('href')!r}, titled {info.get('title')!r}, with no <main>")
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return info, errors


def _check_links(page_url: str, info: dict, base_url: str) -> list[str]:
    bad = []
    for href in sorted(set(info["links"])):
        if not href.startswith(base_url):
            continue  # another site (GitHub, the theme's credits): not reachable offline
        target, fragment = urldefrag(href)
        status, text = _fetch(target)
        if status != 200:
            bad.append(f"{href}: HTTP {status}")
        elif fragment and target == urldefrag(page_url)[0]:
            if fragment not in info["ids"]:
                bad.append(f"{href}: no element with id {fragment!r} on the page")
        elif fragment and target.endswith(".html") and f'id="{fragment}"' not in text:
            bad.append(f"{href}: no element with id {fragment!r} on {target}")
    return bad


def _image_outputs(lesson: Path) -> int:
    nb = nbformat.read(WORK / "executed" / lesson.name, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if any(k.startswith("image/") for k in o.get("data", {})))


def test_every_lesson_has_a_page(site):
    pages = {p.stem for p in site.glob("[0-9][0-9]_*.html")}
    missing = {p.stem for p in LESSONS} - pages
    assert not missing, f"the site must have one page per lesson; none for {sorted(missing)}"
    now = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert pages <= now, f"pages without a lesson: {sorted(pages - now)}"
    assert (site / "search.html").is_file() and (site / "searchindex.js").is_file()


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_page_in_chromium(lesson, browser, base_url):
    url = f"{base_url}{lesson.stem}.html"
    info, errors = _inspect(browser, url)
    assert not errors, f"{lesson.stem}.html: console errors in Chromium:\n" + "\n".join(errors)
    # Figures: every image output of the executed notebook is on the page, and decoded.
    expected = _image_outputs(lesson)
    assert info["outputImages"] >= expected, (
        f"{lesson.stem}.html shows {info['outputImages']} figures; the executed notebook "
        f"has {expected} (Chromium showed {info['href']!r}, {len(info['images'])} images in "
        f"<main>, {len(info['links'])} links)")
    broken = [i["src"] for i in info["images"] if not i["ok"]]
    assert not broken, f"{lesson.stem}.html: images that did not load: {broken}"
    # Maths: every formula typeset by MathJax, none with a TeX error.
    assert not info["unrendered"], f"{lesson.stem}.html: maths not rendered: {info['unrendered']}"
    assert not info["merrors"], f"{lesson.stem}.html: TeX errors: {info['merrors']}"
    source = lesson.read_text(encoding="utf-8")
    if re.search(r"\$[^$\n]+\$", source):
        assert info["math"] > 0, f"{lesson.stem} has $maths$ but its page has no formula"
    # Navigation: previous/next exist and every link inside the site resolves.
    assert info["prev"], f"{lesson.stem}.html has no 'previous' link"
    if lesson != LESSONS[-1]:
        assert info["next"], f"{lesson.stem}.html has no 'next' link"
    links = {urlparse(h).path.rsplit("/", 1)[-1] for h in info["links"]}
    assert f"{lesson.name}" in links, f"{lesson.stem}.html does not link to its notebook"
    if (ROOT / "exercises" / lesson.name).is_file():
        assert any(h.endswith(f"files/exercises/{lesson.name}") for h in info["links"]), (
            f"{lesson.stem}.html does not link to its exercise")
    bad = _check_links(url, info, base_url)
    assert not bad, f"{lesson.stem}.html: broken links:\n" + "\n".join(bad)
    assert "profile" in _fetch(url)[1] and "CPU cores" in _fetch(url)[1], (
        f"{lesson.stem}.html must say which profile and hardware produced it")


def test_landing_page_and_screenshots(browser, base_url):
    info, errors = _inspect(browser, base_url + "index.html")
    assert not errors, "index.html: console errors:\n" + "\n".join(errors)
    lesson_links = {urlparse(h).path.rsplit("/", 1)[-1] for h in info["links"]}
    missing = [p.stem for p in LESSONS if f"{p.stem}.html" not in lesson_links]
    assert not missing, f"the curriculum map does not link to {missing}"
    bad = _check_links(base_url + "index.html", info, base_url)
    assert not bad, "index.html: broken links:\n" + "\n".join(bad)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shots = [SHOTS / "landing.png"]
    browser.save_screenshot(str(shots[0]))
    lesson = next((p for p in LESSONS if p.name.startswith("14_")), LESSONS[-1])
    _inspect(browser, f"{base_url}{lesson.stem}.html")
    shots.append(SHOTS / f"lesson-{lesson.stem}.png")
    browser.save_screenshot(str(shots[-1]))
    figure = browser.execute_script(
        "const i = document.querySelector('main .cell_output img');"
        "if (i) { i.scrollIntoView({block: 'center'}); } return !!i;")
    if figure:
        time.sleep(0.3)
        shots.append(SHOTS / f"lesson-{lesson.stem}-figure.png")
        browser.save_screenshot(str(shots[-1]))
    for shot in shots:
        assert shot.stat().st_size > 10_000, f"{shot} looks empty"
        print(f"screenshot: {shot}")


def test_search_finds_a_lesson(browser, base_url):
    browser.get(base_url + "search.html?q=perceptron")
    for _ in range(100):
        hits = browser.execute_script(
            "return [...document.querySelectorAll('#search-results li a')].map(a => a.href)")
        if hits:
            break
        time.sleep(0.2)
    assert any("05_" in h for h in hits), f"searching 'perceptron' found {hits}"


def test_links_out_of_a_lesson_point_at_the_repository():
    """A lesson's ``[notation](../docs/notation.md)`` is not a page of the site: it must point
    at GitHub or become plain text, while links between lessons stay (the site has them)."""
    from slm_course.cli.site import _repo_links

    md = "[sheet](../docs/notation.md), [next](12_attention_seq2seq.ipynb), [top](#objectives)"
    assert _repo_links(md, "https://github.com/o/r", folder="notebooks") == (
        "[sheet](https://github.com/o/r/blob/main/docs/notation.md), "
        "[next](12_attention_seq2seq.ipynb), [top](#objectives)")
    assert _repo_links(md, "", folder="notebooks").startswith("sheet, [next]")
    assert _repo_links("[g](docs/x.md)", "") == "g"


def test_lesson_kernels_share_the_cores():
    """Two kernels at once on two cores get one BLAS/OpenMP thread each (not two each, which
    spin-wait on each other); one kernel gets them all; a value the user set is kept."""
    from slm_course.cli.site import THREAD_VARIABLES, thread_limits

    assert thread_limits(2, {}, cores=2) == dict.fromkeys(THREAD_VARIABLES, "1")
    assert thread_limits(1, {}, cores=8)["OMP_NUM_THREADS"] == "8"
    assert thread_limits(3, {}, cores=8)["OMP_NUM_THREADS"] == "2"
    assert thread_limits(4, {}, cores=2)["OMP_NUM_THREADS"] == "1"      # never 0
    assert thread_limits(2, {"OMP_NUM_THREADS": "3"}, cores=2)["OMP_NUM_THREADS"] == "3"
