"""Shared fixtures: the small MNIST fixture, the full set where present, a quickly trained model."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parents[1]
FIXTURE_NPZ = PROJECT / "tests" / "fixtures" / "mnist-small.npz"
SHARED_NPZ = PROJECT.parent / "shared" / "data" / "mnist.npz"


@pytest.fixture(autouse=True)
def machine_share(request) -> Iterator[None]:
    """Under pytest-xdist, a test marked `exclusive` runs while no other worker runs a test.

    For a measurement that compares two loads on one machine (tests/browser/test_many_visitors.py):
    every test holds a shared lock on a file of this test run, an exclusive test holds it alone.
    """
    worker = getattr(request.config, "workerinput", None)
    if worker is None:  # one process: nothing else runs at the same time
        yield
        return
    try:
        import fcntl
    except ImportError:  # not on Linux or macOS: no lock, the measurement shares the machine
        yield
        return
    exclusive = request.node.get_closest_marker("exclusive") is not None
    path = Path(tempfile.gettempdir()) / f"digit-tests-{worker['testrunuid']}.lock"
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def full_mnist_path() -> Path | None:
    """The full MNIST .npz: $DIGIT_MNIST_NPZ, else ../shared/data/mnist.npz; None if absent."""
    candidate = Path(os.environ["DIGIT_MNIST_NPZ"]) if os.environ.get("DIGIT_MNIST_NPZ") else SHARED_NPZ
    return candidate if candidate.is_file() else None


@pytest.fixture(scope="session")
def small_npz() -> Path:
    """1,000 training and 500 test images of real MNIST, committed in tests/fixtures."""
    return FIXTURE_NPZ


@pytest.fixture(scope="session")
def small_mnist(small_npz):
    from digit.data import load_npz

    return load_npz(small_npz)


@pytest.fixture(scope="session")
def full_npz() -> Path:
    path = full_mnist_path()
    if path is None:
        pytest.skip("needs the full MNIST set: set DIGIT_MNIST_NPZ or put mnist.npz at ../shared/data (CI has it)")
    return path


@pytest.fixture(scope="session")
def shipped_model():
    import digit

    if not digit.DEFAULT_MODEL_PATH.is_file():
        pytest.skip(f"needs the shipped model {digit.DEFAULT_MODEL_PATH.name}: train it first (see models/)")
    return digit.load_model()


@pytest.fixture(scope="session")
def mnist_digits(small_mnist) -> dict[int, np.ndarray]:
    """One real MNIST test image per digit, uint8 28x28 white on black."""
    return {d: small_mnist.x_test[np.flatnonzero(small_mnist.y_test == d)[0]] for d in range(10)}
