"""Take the README's screenshots of a running app with Debian's Chromium.

    DIGIT_MNIST_NPZ=../shared/data/mnist.npz DIGIT_REGISTRY_DIR=/tmp/shots-registry \\
        streamlit run app.py --server.headless true --server.port 8601 &
    python screenshots/take_screenshots.py http://127.0.0.1:8601

Writes draw.png (a drawn 7, its preprocessing steps shown), train.png (a run in progress),
draw-while-training.png (drawing while it trains: the run in the sidebar), train-done.png (the
finished run) and evaluate.png (scores and confusion matrix) next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.test_browser import PROGRESS, SEVEN, draw, open_app, set_number, settle

HERE = Path(__file__).resolve().parent
VIEWPORT = {"width": 1400, "height": 1000}


def main(url: str) -> None:
    """Visit each page, bring it to an interesting state and save a full-page PNG."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(120_000)

        page.set_viewport_size({"width": 1400, "height": 1250})  # the app scrolls inside itself
        open_app(page, url)
        draw(page, SEVEN)
        page.get_by_text("Show how the image becomes 28×28").click()
        page.wait_for_timeout(1500)
        page.screenshot(path=HERE / "draw.png", full_page=True)
        page.set_viewport_size(VIEWPORT)

        open_app(page, url, "train")
        set_number(page, "Epochs", 3)
        page.get_by_role("button", name="Start training").click()
        page.wait_for_function(
            f"() => Number(document.querySelector('{PROGRESS}')?.getAttribute('aria-valuenow')) > 55",
            timeout=600_000,
        )
        page.screenshot(path=HERE / "train.png", full_page=True)
        page.get_by_role("link", name="Draw", exact=True).click()  # the run follows the visitor, in the sidebar
        page.locator('[data-testid="stBidiComponentIsolated"] canvas.upper-canvas').wait_for()
        draw(page, SEVEN)
        page.wait_for_timeout(1500)
        page.screenshot(path=HERE / "draw-while-training.png", full_page=True)
        page.get_by_role("link", name="Train", exact=True).click()
        page.get_by_role("button", name="Use this model").wait_for(timeout=600_000)
        settle(page)
        page.wait_for_timeout(1500)
        page.screenshot(path=HERE / "train-done.png", full_page=True)

        page.set_viewport_size({"width": 1400, "height": 1350})  # the app scrolls inside itself: show the gallery
        open_app(page, url, "evaluate")
        page.get_by_text("The most confident mistakes").wait_for()
        page.wait_for_timeout(2000)
        page.screenshot(path=HERE / "evaluate.png", full_page=True)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8601")
