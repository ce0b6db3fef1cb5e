"""The `poisonlab report` command."""

from __future__ import annotations

import time
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from poisonlab.cli.common import check_outputs, console
from poisonlab.errors import PoisonlabError


def report(
    out: Annotated[Path, typer.Option("--out", help="Results folder to report on (runs, flip and detect folders inside).")] = Path("runs"),
    file: Annotated[Path | None, typer.Option("--file", help="Where to write the page.", show_default="<out>/report.html")] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in the default web browser.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Render it in headless Chromium, verify every image and chart loaded with no console errors, and save <file>.png.")] = False,
) -> None:
    """One self-contained report.html: sweep curves, halving points, targeted flips, defences, models and provenance."""
    from poisonlab.reporting import html as reporting
    from poisonlab.reporting.html import browser

    started = time.perf_counter()
    check_outputs(file)  # the default, <out>/report.html, is checked with the folder it reports on
    path = file or out / "report.html"
    result = reporting.build(out, path)
    console.print(f"{result['runs']} runs, {result['flips']} flip, {result['detections']} detection, "
                  f"{result['backdoors']} backdoor and {result['certifications']} certify studies; "
                  f"{result['bytes'] / 1e6:.1f} MB in {time.perf_counter() - started:.1f}s")
    if check:
        shot = path.with_suffix(".png")
        seen = browser.check(path, shot)
        problems = [f"console error: {e}" for e in seen["console_errors"]]
        if seen["images_loaded"] < seen["images"]:
            problems.append(f"{seen['images'] - seen['images_loaded']} of {seen['images']} images did not load")
        if seen["charts_rendered"] < seen["charts"]:
            problems.append(f"{seen['charts'] - seen['charts_rendered']} of {seen['charts']} charts did not render")
        if problems:
            raise PoisonlabError(f"{path} did not render cleanly: {'; '.join(problems)}")
        console.print(f"checked in Chromium: {seen['images']} images and {seen['charts']} charts loaded, "
                      f"no console errors; screenshot {shot}")
    print(path)
    if open_page:
        webbrowser.open(path.resolve().as_uri())
