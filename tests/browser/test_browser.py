"""The app in a real browser: draw with the mouse, upload, train and stop, promote, evaluate.

Each test is a new visitor (a fresh browser context) on the worker's own `streamlit run app.py`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import time
import zipfile

import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from digit.config import DEFAULT_MODEL_PATH
from digit.registry import Registry

CANVAS = '[data-testid="stBidiComponentIsolated"] canvas.upper-canvas'
RESET = 'button[aria-label="Reset canvas & history"]'
UNDO = 'button[aria-label="Undo"]'
PROGRESS = '[data-testid="stProgress"] [role="progressbar"]'
STOPPED_OUTCOME = re.compile(r"was stopped by (you|another visitor): .*nothing was saved")  # not the toast
RUN_SECONDS = 300  # a ceiling, not a wait: a 2-core machine may be shared with other work

# Strokes in canvas pixels (the canvas is 280x280), drawn the way a person would.
ONE = [[(140, 40), (140, 240)]]
SEVEN = [[(75, 55), (205, 55), (165, 125), (125, 240)]]
ZERO = [[(140 + 60 * math.sin(t / 40 * 2 * math.pi), 140 - 95 * math.cos(t / 40 * 2 * math.pi)) for t in range(41)]]
SEVEN_BAR = [[(60, 42), (150, 42)]]  # turns ONE into a 7


@pytest.fixture
def shipped_server(server) -> str:
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip(f"right answers need the shipped model at {DEFAULT_MODEL_PATH}")
    return server


def settle(page, timeout: float = 30_000, start_within: float = 1500) -> None:
    """Wait for the rerun an action caused (if any) to start, then to finish."""
    with contextlib.suppress(PlaywrightTimeout):  # the rerun was quicker than us, or none was needed
        page.locator('[data-testid="stApp"][data-test-script-state="running"]').wait_for(timeout=start_within)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=timeout)


def open_app(page, url: str, path: str = "") -> None:
    page.goto(f"{url}/{path}")
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=60_000)
    page.locator('[data-testid="stSidebar"] .st-key-model_info').wait_for()


def stroke(page, points: list[tuple[float, float]]) -> None:
    """One pen stroke with the mouse: down, move through the points, up."""
    box = page.locator(CANVAS).bounding_box()
    (x, y), rest = points[0], points[1:]
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(points, rest, strict=False):
        steps = max(1, round(math.dist((x0, y0), (x1, y1)) / 15))  # a move every ~15 px, as a mouse reports
        for i in range(1, steps + 1):
            page.mouse.move(box["x"] + x0 + (x1 - x0) * i / steps, box["y"] + y0 + (y1 - y0) * i / steps)
    page.mouse.up()
    settle(page, start_within=8000)  # every stroke reruns the app; on a busy machine it may start late


def draw(page, strokes) -> str:
    for points in strokes:
        stroke(page, points)
    return prediction(page)


def wait_for_drawing_shown(page) -> None:
    """Until the canvas shows ink again (a remounted canvas redraws the kept drawing a moment after it appears)."""
    lower = page.locator('[data-testid="stBidiComponentIsolated"] canvas.dc-canvas.lower-canvas')
    page.wait_for_function(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  for (let i = 0; i < d.length; i += 16) if (d[i] > 128) return true; return false; }""",
        arg=lower.element_handle(),
        timeout=10_000,
    )


def prediction(page) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Prediction")
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def wait_for_prediction(page, expected: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while (value := prediction(page)) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    return value


def model_name(page) -> str:
    return page.locator('[data-testid="stSidebar"] .st-key-model_info strong').inner_text().strip()


def set_number(page, label: str, value: int) -> None:
    field = page.get_by_role("spinbutton", name=label)
    field.fill(str(value))
    field.press("Enter")
    settle(page)


def progress(page) -> float:
    return float(page.locator(PROGRESS).get_attribute("aria-valuenow") or 0)


def test_drawn_digits_are_recognised_live_and_clear_resets(page, shipped_server):
    open_app(page, shipped_server)
    assert model_name(page) == "digit-cnn"
    assert prediction(page) == "–"
    for strokes, digit in ((ONE, "1"), (SEVEN, "7"), (ZERO, "0")):
        assert draw(page, strokes) == digit
        page.get_by_text("What the model sees").wait_for()
        expect(page.locator(".st-key-answer_under_canvas")).to_be_hidden()  # only for a phone's stacked columns
        page.locator(RESET).click()
        assert wait_for_prediction(page, "–") == "–"


def test_a_finger_draws_on_a_phone_and_the_answer_shows_without_scrolling(browser, shipped_server):
    context = browser.new_context(viewport={"width": 390, "height": 760}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        open_app(page, shipped_server)
        box = page.locator(CANVAS).bounding_box()
        touch = context.new_cdp_session(page)  # Playwright can tap but not drag a finger; the protocol can

        def finger(kind: str, x: float = 0, y: float = 0) -> None:
            points = [] if kind == "touchEnd" else [{"x": box["x"] + x, "y": box["y"] + y}]
            touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        finger("touchStart", 140, 40)
        for y in range(50, 250, 10):
            finger("touchMove", 140, y)
        finger("touchEnd")
        settle(page)
        assert wait_for_prediction(page, "1") == "1"
        answer = page.locator(".st-key-answer_under_canvas")  # the columns stack: the results are further down
        expect(answer).to_contain_text(re.compile(r"It is a 1 \(\d+% sure\)"))
        box = answer.bounding_box()
        assert box["y"] + box["height"] <= 760, "visible under the canvas without scrolling"
    finally:
        context.close()


def test_pen_width_keeps_the_drawing_and_undo_takes_back_a_stroke(page, shipped_server):
    open_app(page, shipped_server)
    assert draw(page, ONE) == "1"
    page.get_by_role("slider", name="Pen width").focus()
    page.keyboard.press("End")  # one change, one rerun, as when a finger lets go of the slider
    settle(page)
    pen = page.locator('[data-testid="stSlider"]').filter(has_text="Pen width")
    expect(pen.locator('[data-testid="stSliderThumbValue"]')).to_have_text("40")
    assert prediction(page) == "1", "changing the pen keeps the drawing"
    assert draw(page, SEVEN_BAR) == "7"  # drawn with the thicker pen
    page.locator(".st-key-canvas-undo button").click()  # the page's own Undo
    assert wait_for_prediction(page, "1") == "1"


def upload(page, name: str, data: bytes) -> None:
    page.get_by_text("Upload", exact=True).click()
    settle(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        {"name": name, "mimeType": "image/png", "buffer": data}
    )
    settle(page)


def test_an_uploaded_png_is_recognised_and_a_bad_file_is_explained(page, shipped_server, small_mnist):
    open_app(page, shipped_server)
    dark_on_light = Image.fromarray(255 - small_mnist.x_test[0]).resize((240, 240))
    buffer = io.BytesIO()
    dark_on_light.save(buffer, "PNG")
    upload(page, "digit.png", buffer.getvalue())
    assert wait_for_prediction(page, str(small_mnist.y_test[0])) == str(small_mnist.y_test[0])
    upload(page, "broken.png", b"\x89PNG\r\n\x1a\n truncated")
    error = page.locator('[data-testid="stAlert"]').filter(has_text="Cannot read broken.png")
    error.wait_for()
    assert wait_for_prediction(page, "–") == "–"


def test_training_is_live_survives_a_page_switch_and_stops(page, server, registry_dir):
    registry = Registry(registry_dir)
    served_before, saved_before = registry.served().name, len(registry.entries())
    open_app(page, server, "train")
    set_number(page, "Epochs", 20)
    set_number(page, "Training images", 4000)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(
        f"() => Number(document.querySelector('{PROGRESS}')?.getAttribute('aria-valuenow')) > 0",
        timeout=RUN_SECONDS * 1000,
    )
    first, chart = progress(page), page.locator('[data-testid="stVegaLiteChart"]').first.screenshot()
    page.wait_for_function(
        f"() => Number(document.querySelector('{PROGRESS}')?.getAttribute('aria-valuenow')) > {first}",
        timeout=60_000,
    )
    assert page.locator('[data-testid="stVegaLiteChart"]').first.screenshot() != chart, "the chart grows"
    assert re.search(r"about .* left", page.locator('[data-testid="stProgress"]').inner_text())

    page.get_by_role("link", name="Draw", exact=True).click()  # the page is not frozen, and the run goes on
    page.locator(CANVAS).wait_for()
    assert draw(page, ONE) != "–"
    page.get_by_role("link", name="Train", exact=True).click()
    page.locator(PROGRESS).wait_for()
    assert progress(page) >= first

    page.get_by_role("button", name="Stop").click()
    page.get_by_text(STOPPED_OUTCOME).wait_for(timeout=60_000)
    assert registry.served().name == served_before and len(registry.entries()) == saved_before


def test_a_promoted_model_is_used_by_draw(page, server, registry_dir):
    registry = Registry(registry_dir)
    before = registry.served().name
    open_app(page, server, "train")
    set_number(page, "Epochs", 500)  # out of bounds: refused with a message, the old value kept
    page.get_by_text("Please enter a value between 1 and 100").wait_for()
    set_number(page, "Epochs", 1)
    set_number(page, "Training images", 300)
    page.get_by_role("button", name="Start training").click()
    use = page.get_by_role("button", name="Use this model")
    use.wait_for(timeout=RUN_SECONDS * 1000)
    new = registry.entries()[0].name
    use.click()
    # A public server without a password: the choice is this visitor's alone.
    page.get_by_text("now answers in your session only").wait_for()
    assert registry.served().name == before and model_name(page) == new
    expect(page.get_by_role("button", name="In use")).to_be_disabled()
    settle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download .keras").click()  # the selected model: the one just chosen
    assert download.value.suggested_filename == f"{new}.keras"
    assert zipfile.is_zipfile(download.value.path())
    page.get_by_role("link", name="Draw", exact=True).click()
    page.locator(CANVAS).wait_for()
    assert model_name(page) == new
    assert draw(page, ONE) != "–"


def test_evaluate_shows_scores_report_and_confusion_matrix(page, server):
    open_app(page, server, "evaluate")
    page.get_by_text("The most confident mistakes").wait_for(timeout=RUN_SECONDS * 1000)
    accuracy = page.locator('[data-testid="stMetric"]').filter(has_text="Test accuracy")
    assert accuracy.locator('[data-testid="stMetricValue"]').inner_text().endswith("%")
    matrix = page.locator('[data-testid="stImage"] img[alt="Confusion matrix"]')
    matrix.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 300", arg=matrix.element_handle())
    expect(page.get_by_text("Per digit")).to_be_visible()
    expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(1)


def mapped_libraries(pid: int) -> set[str]:
    """The shared libraries a process has mapped (Linux)."""
    with open(f"/proc/{pid}/maps") as maps:
        return {line.split()[-1].rsplit("/", 1)[-1] for line in maps if ".so" in line}


def child_pids(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def test_the_server_serves_every_page_without_tensorflow_and_trains_in_a_child(page, shipped_server, server_pid):
    open_app(page, shipped_server)
    assert draw(page, SEVEN) == "7"
    page.get_by_role("button", name="Right, it is 7").click()
    settle(page)
    for name in ("Train", "Evaluate", "My corrections", "Draw"):
        page.get_by_role("link", name=name, exact=True).click()
        settle(page, timeout=RUN_SECONDS * 1000)
    page.get_by_role("link", name="Evaluate", exact=True).click()
    page.get_by_text("The most confident mistakes").wait_for(timeout=RUN_SECONDS * 1000)
    assert page.get_by_text("Answering with LiteRT").is_visible()
    libraries = mapped_libraries(server_pid)
    assert not [name for name in libraries if "tensorflow" in name], "the server loaded TensorFlow"

    page.get_by_role("link", name="Train", exact=True).click()
    set_number(page, "Epochs", 20)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(
        f"() => Number(document.querySelector('{PROGRESS}')?.getAttribute('aria-valuenow')) > 0",
        timeout=RUN_SECONDS * 1000,
    )
    [trainer] = child_pids(server_pid)
    assert [name for name in mapped_libraries(trainer) if "tensorflow" in name], "training runs TensorFlow, there"
    assert os.getpriority(os.PRIO_PROCESS, trainer) >= 10, "at a lower priority than the server"
    page.get_by_role("button", name="Stop").click()
    page.get_by_text(STOPPED_OUTCOME).wait_for(timeout=10_000)
    deadline = time.monotonic() + 5
    while child_pids(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert child_pids(server_pid) == [], "the training process is gone"
    assert not [name for name in mapped_libraries(server_pid) if "tensorflow" in name]


def test_the_pages_own_undo_and_clear_and_the_drawing_is_kept_for_the_session(page, shipped_server):
    open_app(page, shipped_server)
    undo, clear = page.locator(".st-key-canvas-undo button"), page.locator(".st-key-canvas-clear button")
    expect(undo).to_be_visible()  # always there, not only under a hovering mouse
    expect(clear).to_be_disabled()
    assert draw(page, ONE) == "1"
    assert draw(page, SEVEN_BAR) == "7"
    undo.click()
    assert wait_for_prediction(page, "1") == "1", "Undo takes back the bar"
    wait_for_drawing_shown(page)
    undo.click()
    assert wait_for_prediction(page, "–") == "–", "and then the first stroke: each Undo takes back one"
    expect(clear).to_be_disabled()
    expect(page.locator(CANVAS)).to_have_count(1)  # redrawn in place: never a second canvas
    assert draw(page, ONE) == "1"
    page.get_by_text("Upload", exact=True).click()
    settle(page)
    page.locator('[data-testid="stRadio"]').get_by_text("Draw", exact=True).click()
    settle(page)
    assert wait_for_prediction(page, "1") == "1", "back from Upload, the drawing is still there"
    wait_for_drawing_shown(page)
    page.get_by_role("link", name="Evaluate", exact=True).click()
    settle(page, timeout=RUN_SECONDS * 1000)
    page.get_by_role("link", name="Draw", exact=True).click()
    page.locator(CANVAS).wait_for()
    settle(page, timeout=RUN_SECONDS * 1000)  # until the page is whole: under load it still moves, and a stroke
    # aimed at the canvas could land on the Clear button below it
    assert wait_for_prediction(page, "1") == "1", "and back from another page"
    wait_for_drawing_shown(page)  # as a person sees it, before drawing on
    assert draw(page, SEVEN_BAR) == "7", "the kept drawing goes on taking strokes"
    clear.click()
    assert wait_for_prediction(page, "–") == "–"
    assert draw(page, ZERO) == "0"


def test_a_run_started_from_the_sidebar_follows_the_visitor_to_draw_and_stops_there(page, shipped_server, registry_dir):
    registry = Registry(registry_dir)
    saved_before = len(registry.entries())
    open_app(page, shipped_server, "train")
    sidebar = page.locator('[data-testid="stSidebar"]')
    set_number(page, "Epochs", 20)
    sidebar.get_by_role("button", name="Start training").click()  # Start sits under the settings
    page.get_by_role("link", name="Draw", exact=True).click()
    page.locator(CANVAS).wait_for()
    bar = sidebar.locator(f".st-key-run_panel {PROGRESS}")
    page.wait_for_function(
        f"() => Number(document.querySelector('.st-key-run_panel {PROGRESS}')?.getAttribute('aria-valuenow')) > 0",
        timeout=RUN_SECONDS * 1000,
    )
    first = float(bar.get_attribute("aria-valuenow"))
    expect(sidebar.locator(".st-key-run_panel")).to_contain_text("started by you")
    page.wait_for_timeout(3000)
    assert draw(page, SEVEN) == "7", "drawing is read while the run goes on"
    page.wait_for_function(
        f"() => Number(document.querySelector('.st-key-run_panel {PROGRESS}')?.getAttribute('aria-valuenow')) > {first}",
        timeout=60_000,
    )  # on Draw, each stroke brings the panel up to date
    sidebar.locator(".st-key-panel_stop button").click()
    expect(sidebar.locator(".st-key-run_panel")).to_contain_text("nothing was saved", timeout=10_000)
    assert len(registry.entries()) == saved_before
