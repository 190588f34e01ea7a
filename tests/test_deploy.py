"""Community Cloud readiness: pinned runtime requirements with Linux wheels, config, secrets, smoke test."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tools"))

DEV_ONLY = {"pytest", "pytest-xdist", "hypothesis", "playwright", "ruff"}
CLOUD_FORCED = {"runner.fastReruns", "server.runOnSave", "client.showErrorDetails"}


def runtime_requirements() -> list[str]:
    lines = (PROJECT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_runtime_requirements_are_pinned_and_lean():
    for line in runtime_requirements():
        name = re.split(r"[=<>;\s]", line, maxsplit=1)[0].lower()
        assert "==" in line, f"{line!r} is not pinned"
        assert name not in DEV_ONLY, f"{name} is a development tool; it belongs in requirements-dev.txt"


def test_linux_servers_get_the_lean_distributions():
    text = " ".join(runtime_requirements())
    assert "tensorflow-cpu==" in text and "opencv-python-headless==" in text
    assert re.search(r"tensorflow==[\d.]+;\s*sys_platform\s*==\s*\"darwin\"", text), (
        "macOS needs the regular tensorflow"
    )


def test_dev_requirements_include_the_runtime_ones():
    assert "-r requirements.txt" in (PROJECT / "requirements-dev.txt").read_text()


def test_streamlit_config_sets_nothing_cloud_overrides():
    config = tomllib.loads((PROJECT / ".streamlit" / "config.toml").read_text())
    keys = {f"{section}.{key}" for section, values in config.items() for key in values}
    assert not keys & CLOUD_FORCED, f"Community Cloud overrides {keys & CLOUD_FORCED}"
    assert 1 <= config["server"]["maxUploadSize"] <= 50


def test_secrets_are_ignored_and_exemplified():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".streamlit/secrets.toml"], cwd=PROJECT)
    assert ignored.returncode == 0, ".streamlit/secrets.toml must be git-ignored"
    assert (PROJECT / ".streamlit" / "secrets.toml.example").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_every_requirement_has_a_linux_wheel(python):
    from check_wheels import check

    ok, summary = check(python)
    assert ok, f"Python {python}: {summary}"


@pytest.mark.slow
@pytest.mark.browser
def test_fresh_environment_smoke(tmp_path):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium; CI installs it)")
    if shutil.which("streamlit") is None:
        pytest.skip("streamlit is not installed in this environment")
    done = subprocess.run(
        [sys.executable, str(PROJECT / "tools" / "smoke_test.py"), "--venv", str(tmp_path / "venv")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "smoke test passed" in done.stdout
