"""Open a report in headless Chromium: check that every image and chart rendered, collect console errors, screenshot it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from poisonlab.errors import PoisonlabError

# Chromium in a sandbox with no network: no first-run work, no background connections that would fail.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]

PROBE = """() => {
  const imgs = [...document.images];
  const charts = [...document.querySelectorAll('.plotly-graph-div')];
  const svgs = [...document.querySelectorAll('.arch svg')];
  return {
    images: imgs.length,
    images_loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    charts: charts.length,
    charts_rendered: charts.filter(c => c.querySelector('.main-svg') && c.querySelectorAll('.scatterlayer .trace, .barlayer .trace, .heatmaplayer image').length > 0).length,
    architecture_pictures: svgs.length,
    sections: [...document.querySelectorAll('section h2')].map(h => h.textContent),
  };
}"""


def chromium_path() -> str:
    """The Chromium executable: $POISONLAB_CHROMIUM, else chromium or chromium-browser on PATH."""
    found = os.environ.get("POISONLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise PoisonlabError("Chromium not found; install it (Debian/Ubuntu: apt install chromium) "
                             "or set POISONLAB_CHROMIUM to its path")
    return found


def check(report: Path, screenshot: Path | None = None, width: int = 1400) -> dict:
    """Render `report` and return counts of images/charts found and loaded, console and page errors; save a screenshot."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise PoisonlabError("the browser check needs Playwright; pip install playwright") from exc
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.wait_for_function("() => [...document.querySelectorAll('.plotly-graph-div')]"
                                   ".every(c => c.querySelector('.main-svg'))", timeout=60_000)
            result = page.evaluate(PROBE)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    return {**result, "console_errors": errors}
