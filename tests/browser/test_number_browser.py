"""The Number mode in Chromium: write a number with the mouse, on a desktop and on a phone, read live.

`tests/number_app.py` shows the Draw page's Number mode alone, served by its own `streamlit run`.
The time a stroke takes to answer, against a single-digit stroke, is a benchmark:
`python -m benchmarks.number_stroke`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from digit.config import DEFAULT_MODEL_PATH
from tests.browser.conftest import PROJECT, free_port, wait_until_healthy
from tests.browser.test_browser import CANVAS, RESET, settle
from tests.test_number import strokes

SCREENSHOT = PROJECT / "screenshots" / "number.png"
TOUCHING_SCREENSHOT = PROJECT / "screenshots" / "number-touching.png"
NUMBER = ["2", "0", "4", "6"]  # the 4 in two strokes: five strokes in all


@pytest.fixture(scope="module")
def number_server(chromium_path, tmp_path_factory) -> Iterator[str]:
    """`streamlit run tests/number_app.py` on a free port; yields its URL."""
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip(f"right answers need the shipped model at {DEFAULT_MODEL_PATH}")
    port, log = free_port(), tmp_path_factory.mktemp("number") / "server.log"
    command = [sys.executable, "-m", "streamlit", "run", "tests/number_app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()


def open_page(page, url: str) -> None:
    page.goto(url)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=60_000)
    page.locator(CANVAS).wait_for()
    page.evaluate(WATCH)
    wait_quiet(page)


def wait_quiet(page) -> None:
    """Until no run has gone on for QUIET_MS: the canvas reports its size once it is mounted (a second run
    of the page), and a stroke sent while that run goes on joins it instead of starting a run of its own."""
    page.wait_for_function(QUIET, timeout=60_000)


QUIET_MS = 500
WATCH = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = () => app.getAttribute("data-test-script-state");
    window.__states = [[state(), performance.now()]];
    new MutationObserver(() => window.__states.push([state(), performance.now()]))
        .observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
    document.addEventListener("mouseup", () => {
        window.__up = performance.now();
        window.__runningAtUp = state() === "running";
    }, true);
}"""
QUIET = f"""() => {{
    const [state, since] = window.__states.at(-1);
    return state === "notRunning" && performance.now() - since > {QUIET_MS};
}}"""
# The end of the run the stroke caused: the first end after a start that followed the pen's lift, or,
# where a run was still going on at the lift (the stroke then joins it), the first end after the lift.
ANSWERED = """() => {
    const after = ([state, t], name, since) => state === name && t > since;
    const start = window.__runningAtUp ? [null, window.__up] : window.__states.find(s => after(s, "running", window.__up));
    const end = start && window.__states.find(s => after(s, "notRunning", start[1]));
    return end ? (end[1] - window.__up) / 1000 : null;
}"""


def stroke(page, points, scale: float = 1.0) -> float:
    """One pen stroke with the mouse; returns the seconds from lifting the pen to the end of the rerun it caused.

    Measured inside the page (WATCH, installed by open_page), so waiting here adds nothing to it.
    """
    wait_quiet(page)
    box = page.locator(CANVAS).bounding_box()
    (x, y), rest = points[0], points[1:]
    page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
    page.mouse.down()
    for x, y in rest:
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=2)
    page.mouse.up()
    return float(page.wait_for_function(ANSWERED, timeout=30_000).json_value())


def mouse_points(points) -> list[tuple[float, float]]:
    """About 16 points of a drawn stroke, its end included: as often as a mouse reports while drawing."""
    return [tuple(p) for p in points[:: max(1, len(points) // 16)]] + [tuple(points[-1])]


def write_number(page, shapes: list[str], scale: float = 1.0, gap: float = 40) -> list[float]:
    """Write the shapes side by side, one stroke at a time (as tests/test_number.py draws them)."""
    seconds, left = [], 60 / scale
    for shape in shapes:
        digit = strokes(shape, left)
        seconds += [stroke(page, mouse_points(points), scale) for points in digit]
        left = max(s[:, 0].max() for s in digit) + 11 + gap
    return seconds


def number(page) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Number")
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_a_number_written_with_the_mouse_is_read_after_every_stroke(page, number_server):
    open_page(page, number_server)
    assert number(page) == "–"
    write_number(page, NUMBER[:1])
    assert number(page) == "2", "read after the first stroke"
    write_number(page, NUMBER)  # over the first 2: the same strokes again
    assert number(page) == "2046"
    chips = page.locator(".number-digits .number-digit")
    assert chips.count() == 4 and chips.first.inner_text().startswith("2 ")
    page.get_by_text("Where the digits were found").wait_for()
    page.get_by_text("What the model sees, digit by digit").wait_for()
    page.set_viewport_size({"width": 1000, "height": 1100})  # the whole page, for the README
    settle(page)
    page.mouse.move(5, 5)  # away from the canvas: its toolbar shows only under the mouse
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    page.locator(RESET).click()
    settle(page)
    assert number(page) == "–"


def test_digits_whose_ink_touches_are_told_apart_by_their_strokes(page, number_server):
    open_page(page, number_server)
    write_number(page, ["1", "0", "1", "9"], gap=-10)  # each digit's ink runs 10 px into the last one's
    assert number(page) == "1019"
    page.set_viewport_size({"width": 1000, "height": 1100})
    settle(page)
    page.mouse.move(5, 5)
    page.screenshot(path=str(TOUCHING_SCREENSHOT))
    page.locator(RESET).click()
    settle(page)


def test_on_a_phone_the_canvas_is_narrow_and_everything_fits(browser, number_server):
    phone_agent = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
    context = browser.new_context(viewport={"width": 390, "height": 800}, user_agent=phone_agent, is_mobile=True)
    try:
        page = context.new_page()
        open_page(page, number_server)
        box = page.locator(CANVAS).bounding_box()
        assert box["width"] <= 370, "the narrow canvas fits the screen"
        write_number(page, ["1", "7"], scale=150 / 220, gap=60)
        assert number(page) == "17"
        for image in page.locator('[data-testid="stImage"] img').all():
            assert image.bounding_box()["x"] + image.bounding_box()["width"] <= 390
    finally:
        context.close()
