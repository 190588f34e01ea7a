"""MNIST loading: a local .npz when one is given, Keras' download otherwise (no TensorFlow needed).

Keras' `keras.datasets.mnist.load_data()` downloads one file, checks its SHA-256 and keeps it in
`~/.keras/datasets/`. `load_mnist` reads and fetches that same file in that same place, without
importing Keras, so that the server that draws for visitors never loads TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit.config import IMAGE_SIZE, NUM_CLASSES, data_path_from_env

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"  # keras.datasets.mnist's
DOWNLOAD_TIMEOUT = 60  # seconds


class DataError(RuntimeError):
    """MNIST could not be loaded (no file, a broken file, no internet)."""


@dataclass(frozen=True)
class Dataset:
    """MNIST as uint8 images (N, 28, 28), white ink on black, and uint8 labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def limited(self, n: int | None) -> Dataset:
        """The same data with only the first n training images (copied: the full set can then be let go)."""
        if n is None or n >= len(self.x_train):
            return self
        return Dataset(self.x_train[:n].copy(), self.y_train[:n].copy(), self.x_test, self.y_test)


def load_mnist(path: str | Path | None = None, test_only: bool = False) -> Dataset:
    """Load MNIST from `path`, else from $DIGIT_MNIST_NPZ, else with Keras' download.

    `test_only`: the 10,000 test images only (the training set comes back empty), for a server
    that scores but never trains: 47 MB less to hold.
    """
    path = Path(path) if path else data_path_from_env()
    if path is None:
        path = _keras_cache()
    return load_npz(path, test_only)


def load_npz(path: str | Path, test_only: bool = False) -> Dataset:
    """Read an .npz holding x_train, y_train, x_test and y_test."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no MNIST file at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED_KEYS if k not in npz]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}")
            arrays = {k: npz[k] for k in REQUIRED_KEYS if not (test_only and k.endswith("train"))}
    except DataError:
        raise
    except Exception as error:  # zipfile, pickle and format errors all mean the same to a user
        raise DataError(f"cannot read {path}: {error}") from error
    if test_only:
        arrays.update(x_train=np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8), y_train=np.zeros(0, np.uint8))
    return _validated(arrays, source=str(path))


def _keras_cache() -> Path:
    try:
        return keras_cached_mnist()
    except OSError as error:
        raise DataError(
            f"MNIST is not reachable: it could not be downloaded ({error}). "
            "Pass --data PATH or set DIGIT_MNIST_NPZ to a local mnist.npz."
        ) from error


def keras_cached_mnist() -> Path:
    """Keras' copy of mnist.npz, downloaded and checked first where it is missing or damaged."""
    cache = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"
    path = cache / "mnist.npz"
    if path.is_file() and _sha256(path) == KERAS_MNIST_SHA256:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".mnist-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as file, urllib.request.urlopen(KERAS_MNIST_URL, timeout=DOWNLOAD_TIMEOUT) as answer:
            file.write(answer.read())
        if _sha256(Path(tmp)) != KERAS_MNIST_SHA256:
            raise OSError(f"the file from {KERAS_MNIST_URL} is not the expected one (its SHA-256 differs)")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _validated(arrays: dict[str, np.ndarray], source: str) -> Dataset:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(x) != len(y):
            raise DataError(f"{source}: x_{split} must be (N, 28, 28) with N labels, got {x.shape} and {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise DataError(f"{source}: y_{split} has labels outside 0-9")
    return Dataset(**{k: np.asarray(v, dtype=np.uint8) for k, v in arrays.items()})


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) images to the float32 (N, 28, 28, 1) in [0, 1] that every model takes."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[..., np.newaxis]
