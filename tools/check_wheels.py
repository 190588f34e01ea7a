"""Check that every pinned requirement installs from binary wheels on Community Cloud's platform.

    python tools/check_wheels.py              # Python 3.11, 3.12 and 3.13 on Linux x86_64
    python tools/check_wheels.py --python 3.12

Resolves requirements.txt (dependencies included) with pip's --dry-run, --only-binary=:all:,
for each Python version, as a Debian 11+ x86_64 server (glibc 2.31) accepts them. Nothing is
installed; pip fetches only the wheels' metadata where the index offers it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
PYTHONS = ("3.11", "3.12", "3.13")
# Every tag a glibc 2.31 x86_64 machine accepts that current wheels use.
PLATFORMS = (
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_31_x86_64",
)


def check(python: str, requirements: Path = REQUIREMENTS) -> tuple[bool, str]:
    """(ok, last line of pip's output) for one Python version."""
    with tempfile.TemporaryDirectory() as target:
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:"]
        command += ["--python-version", python, "--target", target, "-r", str(requirements)]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip() and "WARNING" not in line]
    summary = next(
        (line for line in reversed(lines) if line.startswith(("Would install", "ERROR"))), lines[-1] if lines else ""
    )
    return done.returncode == 0, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="a Python version to check (default: 3.11, 3.12, 3.13)")
    args = parser.parse_args(argv)
    versions = args.python or list(PYTHONS)
    with ThreadPoolExecutor(len(versions)) as pool:
        results = dict(zip(versions, pool.map(check, versions), strict=True))
    for version, (ok, summary) in results.items():
        print(f"Python {version} linux x86_64: {'ok' if ok else 'FAILED'}: {summary[:300]}")
    return 0 if all(ok for ok, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
