"""A stroke's time to answer in the browser: Number mode against a single digit (issue 15: <= 2x).

Starts `streamlit run app.py` (headless, on a free port, the shipped model) and Debian's
Chromium, and on the Draw page writes "2046" in Number mode (five strokes: the 4 in two) and the
same four digits one at a time in Digit mode, alternating round by round so that both meet the
same background load. Each stroke's time runs from the mouse button's release to the end of the
rerun it caused, measured inside the page (performance.now at mouseup, a MutationObserver on the
app's script state), so Playwright's polling adds nothing to it. A stroke whose rerun never came
within 30 s is counted as lost and left out of the medians.

    python -m benchmarks.number_stroke              # about a minute on 2 cores
    python -m benchmarks.number_stroke --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # run from a checkout without installing anything
RESULTS = PROJECT / "benchmarks" / "results" / "number_stroke.json"
TARGET_RATIO = 2.0

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, mnist_for_server, streamlit_server  # noqa: E402
from tests.browser.test_browser import RESET, settle  # noqa: E402
from tests.browser.test_number_browser import NUMBER, mouse_points, open_page, stroke, write_number  # noqa: E402
from tests.test_number import strokes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 2046 in each mode (default 3)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"this benchmark needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": round(os.getloadavg()[0], 2),
        **measure(args.rounds),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    number, single = results["seconds"]["number"], results["seconds"]["single"]
    results["ratio_of_medians"] = round(statistics.median(number) / statistics.median(single), 2)
    print_results(results)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(PROJECT)}")


def measure(rounds: int) -> dict:
    """Seconds from pen up to answer, per stroke, in each mode."""
    times: dict[str, list[float]] = {"number": [], "single": []}
    lost = {"number": 0, "single": 0}
    with tempfile.TemporaryDirectory() as registry, sync_playwright() as playwright:
        env = {"DIGIT_REGISTRY_DIR": registry, "DIGIT_MNIST_NPZ": str(mnist_for_server())}
        with streamlit_server(env, Path(registry) / "server.log") as url:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_page(page, url)
            for _ in range(rounds):
                for mode, label, write in (
                    ("number", "Number", write_in_number_mode),
                    ("single", "Digit", write_digit_by_digit),
                ):
                    choose_mode(page, label)
                    try:
                        times[mode] += write(page)
                    except PlaywrightTimeout:
                        lost[mode] += 1
                    page.locator(RESET).click()
                    settle(page)
            browser.close()
    return {"seconds": times, "lost": lost}


def choose_mode(page, label: str) -> None:
    page.get_by_role("radiogroup").get_by_text(label, exact=True).click()
    settle(page)


def write_in_number_mode(page) -> list[float]:
    return write_number(page, NUMBER)


def write_digit_by_digit(page) -> list[float]:
    """Each digit of 2046 alone on the single canvas, cleared in between."""
    seconds = []
    for shape in NUMBER:
        seconds += [stroke(page, mouse_points(points)) for points in strokes(shape, 70, height=200, bottom=240)]
        page.get_by_role("button", name="Clear", exact=True).click()
        settle(page)
    return seconds


def print_results(results: dict) -> None:
    number, single, ratio = results["seconds"]["number"], results["seconds"]["single"], results["ratio_of_medians"]
    print(f"{results['machine']}, load average {results['load_average_before']} -> {results['load_average_after']}")
    print(f"pen up -> answer, Number mode: median {statistics.median(number):.3f} s (n={len(number)})")
    print(f"pen up -> answer, one digit:   median {statistics.median(single):.3f} s (n={len(single)})")
    print(f"ratio {ratio:.2f} (target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'MISSED'})")
    if any(results["lost"].values()):
        print(f"rounds cut short by a stroke that got no answer within 30 s: {results['lost']}")


if __name__ == "__main__":
    main()
