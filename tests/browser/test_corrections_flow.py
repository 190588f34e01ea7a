"""Learning from the person drawing (issue 8), end to end in a real browser.

One visitor corrects a drawing and sees it on My corrections, deletes it, uploads a corrections
file, fine-tunes on it from the Train page, switches to the personal model, draws with it and
scores it on Evaluate.

The test has a server of its own, on the small MNIST fixture: a new model is scored on 500 test
images instead of 10,000 (twice: when saved and on Evaluate), and its training run and model
promotion cannot disturb the other tests' shared server.

    DIGIT_SCREENSHOT_DIR=screenshots python -m pytest tests/browser/test_corrections_flow.py

also saves corrections.png and finetune.png there (full pages).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from test_browser import CANVAS, ONE, PROGRESS, draw, model_name, open_app, settle

from digit.config import DEFAULT_MODEL_PATH
from digit.corrections import CorrectionSet
from digit.registry import Registry
from tests.browser.conftest import streamlit_server, visitor_page

WAIT_MS = 240_000  # a fine-tune, or scoring a new model on MNIST: ~30 s alone, minutes on a crowded 2-core machine
UPLOADED = 20  # two MNIST test digits of each kind: enough to fine-tune (10 at least)


@pytest.fixture(scope="module")
def small_server(chromium_path, small_npz, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """`streamlit run app.py` on the small MNIST fixture with its own registry; yields (URL, registry folder)."""
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip(f"fine-tuning starts from the shipped model at {DEFAULT_MODEL_PATH}")
    registry = tmp_path_factory.mktemp("corrections-registry")
    env = {"DIGIT_REGISTRY_DIR": str(registry), "DIGIT_MNIST_NPZ": str(small_npz)}
    env["DIGIT_CORRECTIONS_FILE"] = str(registry / "corrections.npz")
    # DIGIT_LOCAL dropped: corrections stay in the session, as on a public server
    with streamlit_server(env, registry / "server.log", drop=("DIGIT_LOCAL",)) as url:
        yield url, registry


@pytest.fixture
def visitor(browser, small_server):
    """A new visitor's page on that server."""
    with visitor_page(browser) as page:
        yield page


def corrections_file(mnist) -> bytes:
    """An .npz as My corrections downloads it: MNIST test digits with 280x280 'canvases'."""
    store = CorrectionSet()
    for digit in range(10):
        for index in np.flatnonzero(mnist.y_test == digit)[:2]:
            image = mnist.x_test[index]
            canvas = np.asarray(Image.fromarray(image).resize((280, 280), Image.Resampling.BILINEAR))
            store.add(image, canvas, digit)
    return store.to_npz_bytes()


def screenshot(page, name: str) -> None:
    """A full-page PNG in $DIGIT_SCREENSHOT_DIR, when it is set."""
    folder = os.environ.get("DIGIT_SCREENSHOT_DIR")
    if not folder:
        return
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})  # it scrolls inside
    page.wait_for_timeout(2000)  # images, charts and tables finish drawing at the new size
    page.screenshot(path=Path(folder) / name, full_page=True)
    page.set_viewport_size(size)


def metric(page, label: str) -> str:
    """The value of the metric whose label is exactly `label`."""
    labelled = page.locator('[data-testid="stMetricLabel"]').filter(has_text=re.compile(rf"^{re.escape(label)}$"))
    box = page.locator('[data-testid="stMetric"]').filter(has=labelled)
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def go_to(page, name: str, timeout: float = 30_000) -> None:
    """Open a page from the sidebar and wait for it to finish running."""
    page.get_by_role("link", name=name, exact=True).click()
    settle(page, timeout=timeout)


def draw_an_answer(page) -> str:
    """Draw a 1 and wait for an answer (its rerun may start late on a busy machine)."""
    draw(page, ONE)
    answer = (
        page.locator('[data-testid="stMetric"]').filter(has_text="Prediction").locator('[data-testid="stMetricValue"]')
    )
    expect(answer).not_to_have_text("–", timeout=WAIT_MS)
    return answer.inner_text().strip()


def correct_a_drawing(page) -> str:
    """Draw, press the 'Wrong? It was …' button of another digit; returns the grid caption it should get."""
    said = draw_an_answer(page)
    label = "7" if said != "7" else "4"
    page.get_by_text("Wrong? It was …").wait_for()
    page.locator(f".st-key-feedback-{label} button").click()
    settle(page)
    page.get_by_text(re.compile(rf"Saved to your corrections as {label} \(1 in all\)")).wait_for()
    assert page.locator(f".st-key-feedback-{label} button").get_attribute("data-testid") == "stBaseButton-primary"
    return f"{label} (said {said})"


def upload_corrections(page, data: bytes) -> None:
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        {"name": "mine.npz", "mimeType": "application/octet-stream", "buffer": data}
    )
    settle(page)
    page.get_by_text(f"mine.npz holds {UPLOADED} drawings.").wait_for()
    page.get_by_role("button", name="Add to mine").click()
    settle(page)
    page.get_by_text(f"Added {UPLOADED} drawings.").wait_for()


def slide_to_start(page, label: str) -> str:
    """Move a slider to its smallest value with the keyboard; returns the value it shows."""
    page.get_by_role("slider", name=label).focus()
    page.keyboard.press("Home")
    settle(page)
    thumb = (
        page.locator('[data-testid="stSlider"]').filter(has_text=label).locator('[data-testid="stSliderThumbValue"]')
    )
    return thumb.inner_text().strip()


def start_quickest_finetune(page) -> None:
    page.get_by_text(f"Fine-tune the model in use on your {UPLOADED} corrections").wait_for()
    page.get_by_text("Fine-tuning settings").click()
    assert slide_to_start(page, "Epochs") == "1"
    assert slide_to_start(page, "Times each correction is shown per epoch") == "1"
    assert slide_to_start(page, "MNIST images per correction shown") == "0.50"
    page.get_by_text(f"Fine-tune: {UPLOADED} corrections × 1 + up to 1000 MNIST images, 1 epoch,").wait_for()
    page.get_by_role("button", name="Fine-tune on my corrections").click()


def test_correct_fine_tune_and_use_the_personal_model(visitor, small_server, small_mnist):
    page, (server, registry_dir) = visitor, small_server
    registry = Registry(registry_dir)
    before = registry.served().name
    # 1. A drawing corrected on Draw is saved, listed on My corrections, and can be deleted.
    open_app(page, server)
    caption = correct_a_drawing(page)
    go_to(page, "My corrections")
    grid_caption = page.locator('[data-testid="stImageCaption"]').filter(has_text=caption)
    grid_caption.wait_for()
    page.get_by_text("1 drawing; the model got 1 wrong.").wait_for()

    # 2. A corrections file made with the library is added to the visitor's set.
    upload_corrections(page, corrections_file(small_mnist))
    page.get_by_text(f"{UPLOADED + 1} drawings; the model got 1 wrong.").wait_for()
    assert page.locator('[data-testid="stImageCaption"]').count() == UPLOADED + 1
    screenshot(page, "corrections.png")
    column = page.locator('[data-testid="stColumn"]').filter(has=grid_caption).last
    column.get_by_role("button", name="Delete").click()
    settle(page)
    page.get_by_text(f"{UPLOADED} drawings; the model got 0 wrong.").wait_for()
    assert grid_caption.count() == 0

    # 3. Fine-tune on them as a training run, then use the new model.
    go_to(page, "Train")
    start_quickest_finetune(page)
    page.locator(PROGRESS).wait_for()
    page.get_by_text(re.compile(r"Run \d+, started by you .* ago\. Fine-tune: 1 epoch,")).wait_for()
    page.get_by_text(re.compile(r"Run \d+ \(by you\) finished in .*: saved as")).wait_for(timeout=WAIT_MS)
    new = page.locator('[data-testid="stAlert"]').filter(has_text="saved as").locator("strong").inner_text()
    assert new != before and registry.get(new).looks_valid()
    settle(page, timeout=WAIT_MS)
    page.get_by_role("button", name="Measure before and after").wait_for()
    screenshot(page, "finetune.png")
    page.get_by_role("button", name="Use this model").click()
    page.get_by_text(f"{new} now answers in your session only").wait_for(timeout=WAIT_MS)
    assert model_name(page) == new and registry.served().name != new, "for this visitor, not for everyone"

    go_to(page, "Draw")
    page.locator(CANVAS).wait_for()
    assert model_name(page) == new
    draw_an_answer(page)

    # 4. Evaluate scores the personal model on the corrections too.
    go_to(page, "Evaluate", timeout=WAIT_MS)  # the new model is scored on MNIST first
    page.get_by_text("On your corrections").wait_for()
    assert re.fullmatch(r"\d+\.\d\d%", metric(page, "Accuracy"))
    assert metric(page, "Drawings") == str(UPLOADED)
