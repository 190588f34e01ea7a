"""Real-browser fixtures: a `streamlit run app.py` server on a free port, and Debian's Chromium.

Each pytest(-xdist) worker starts its own server with its own model registry in a temporary
folder, so tests never touch models/registry and two workers never share a training run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_SECONDS = 60
SERVER_PIDS: dict[str, int] = {}  # url -> the `streamlit run` process serving it


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in this folder is a browser test."""
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mnist_for_server() -> Path:
    """The full MNIST set when present (as in CI), else the small fixture."""
    named = os.environ.get("DIGIT_MNIST_NPZ")
    full = Path(named) if named else PROJECT.parent / "shared" / "data" / "mnist.npz"
    return full if full.is_file() else PROJECT / "tests" / "fixtures" / "mnist-small.npz"


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def registry_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="session")
def server(chromium_path, registry_dir) -> Iterator[str]:
    """The app under `streamlit run`, headless on a free port; yields its URL."""
    env = {"DIGIT_REGISTRY_DIR": str(registry_dir), "DIGIT_MNIST_NPZ": str(mnist_for_server())}
    with streamlit_server(env, registry_dir / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def server_pid(server) -> int:
    """The process id of the `streamlit run` serving `server`."""
    return SERVER_PIDS[server]


@contextlib.contextmanager
def streamlit_server(env: dict[str, str], log: Path, drop: tuple[str, ...] = ()) -> Iterator[str]:
    """`streamlit run app.py` with `env` added to this environment (less `drop`); yields its URL."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k not in drop}, "PYTHONPATH": str(PROJECT), **env}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    SERVER_PIDS[url] = process.pid
    try:
        wait_until_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with status {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not answer within {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh browser context (a new visitor) per test."""
    with visitor_page(browser) as page:
        yield page


@contextlib.contextmanager
def visitor_page(browser):
    """A page in a browser context of its own: a new visitor, with their own Streamlit session."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()
