"""What Community Cloud does with a fork, on this machine: a fresh environment, the app, one prediction.

    python tools/smoke_test.py [--venv DIR] [--keep]

1. a new virtual environment with `pip install -r requirements.txt` only (no dev tools);
2. `streamlit run app.py` headless from it, on a free port;
3. the page and the health endpoint (/_stcore/health) answer;
4. a real browser (Playwright, from the calling environment, with Debian's Chromium) draws a
   "1" on the canvas and reads the **Prediction** metric.
Exits 0 when all of it works; prints each step with its time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402  one home for both


def step(name: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {name}", flush=True)


def make_venv(venv: Path) -> Path:
    """A fresh virtual environment with the app's requirements only; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(PROJECT / "requirements.txt")], check=True)
    return python


def wait_for(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def draw_and_read(url: str) -> str:
    """Draw a vertical stroke on the canvas and return the Prediction metric's value."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        canvas = page.locator('[data-testid="stBidiComponentIsolated"] canvas.upper-canvas').first
        canvas.wait_for(timeout=60_000)
        box = canvas.bounding_box()
        x, top, bottom = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.15, box["y"] + box["height"] * 0.85
        page.mouse.move(x, top)
        page.mouse.down()
        for i in range(1, 21):
            page.mouse.move(x, top + (bottom - top) * i / 20)
        page.mouse.up()
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="Prediction")
        value = metric.locator('[data-testid="stMetricValue"]')
        deadline = time.monotonic() + 60
        while value.inner_text().strip() in ("–", "") and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        text = value.inner_text().strip()
        browser.close()
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, help="where to create the environment (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the environment afterwards")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    venv = args.venv or Path(tempfile.mkdtemp(prefix="digit-smoke-"))
    server = None
    try:
        python = make_venv(venv)
        step(f"fresh environment with requirements.txt in {venv}", started)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGIT_")}
        command = [
            str(python),
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
        ]
        server = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        health = wait_for(f"{base}/_stcore/health", timeout=120).strip()
        step(f"health endpoint: {health!r}", started)
        page = wait_for(base, timeout=30)
        assert "<html" in page.lower(), "the app's page did not load"
        step("page served", started)
        prediction = draw_and_read(base)
        step(f"Prediction after drawing a 1: {prediction}", started)
        if prediction != "1":
            print("FAILED: expected the Prediction metric to read 1", file=sys.stderr)
            return 1
        print("smoke test passed")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep and not args.venv:
            shutil.rmtree(venv, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
