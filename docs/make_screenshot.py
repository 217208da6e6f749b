"""Regenerate docs/report.png: the HTML report of a small, realistic run, in headless Chromium.

    python docs/make_screenshot.py            # writes docs/report.png (and docs/report.html)

The run is docs/make_report.py's fixed example (two evals × two models, judged answers, a
baseline in which one case passed that now fails). tests/test_html_report.py runs the same
code, so the picture in the README is one the tests can make. Needs Debian's ``chromium``
(``apt-get install chromium``) and ``pip install playwright`` (never ``playwright install``:
the system browser is used).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _load_make_report() -> Any:
    # By path, not `import make_report`: the tests load this file without docs/ on sys.path.
    spec = importlib.util.spec_from_file_location("make_report", HERE / "make_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_REPORT = _load_make_report()
#: The example run, shared with docs/make_report.py.
MODELS = _REPORT.MODELS
sample_run = _REPORT.sample_run


def launch(playwright: Any) -> Any:
    """Debian's Chromium under Playwright, headless, with every background fetch off."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def make_screenshot(png_path: Path, html_path: Path, browser: Any) -> None:
    """Write the sample report to ``html_path`` and a screenshot of it, one case open, to ``png_path``."""
    _REPORT.write_report(html_path)
    page = browser.new_page(viewport={"width": 1720, "height": 1060}, device_scale_factor=1)
    try:
        page.goto(html_path.resolve().as_uri())
        page.wait_for_selector("html[data-ready='1']")
        page.click("button.flip-link")  # open the flipped case, as a reviewer would
        page.wait_for_selector("#detail:not([hidden])")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(png_path), full_page=False)
    finally:
        page.close()


def main() -> int:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            make_screenshot(HERE / "report.png", HERE / "report.html", browser)
        finally:
            browser.close()
    size = (HERE / "report.png").stat().st_size
    print(f"wrote {HERE / 'report.png'} ({size / 1024:.0f} KB) and {HERE / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
