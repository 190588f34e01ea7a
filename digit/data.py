"""MNIST loading: a local .npz when one is given, Keras' download otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit.config import IMAGE_SIZE, NUM_CLASSES, data_path_from_env

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


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
        """The same data with only the first n training images."""
        if n is None:
            return self
        return Dataset(self.x_train[:n], self.y_train[:n], self.x_test, self.y_test)


def load_mnist(path: str | Path | None = None) -> Dataset:
    """Load MNIST from `path`, else from $DIGIT_MNIST_NPZ, else with Keras' download."""
    path = Path(path) if path else data_path_from_env()
    if path is not None:
        return load_npz(path)
    return _load_with_keras()


def load_npz(path: str | Path) -> Dataset:
    """Read an .npz holding x_train, y_train, x_test and y_test."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no MNIST file at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED_KEYS if k not in npz]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}")
            arrays = {k: npz[k] for k in REQUIRED_KEYS}
    except DataError:
        raise
    except Exception as error:  # zipfile, pickle and format errors all mean the same to a user
        raise DataError(f"cannot read {path}: {error}") from error
    return _validated(arrays, source=str(path))


def _load_with_keras() -> Dataset:
    try:
        from keras.datasets import mnist

        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    except Exception as error:
        raise DataError(
            "MNIST is not reachable: Keras could not download it (no internet?). "
            "Pass --data PATH or set DIGIT_MNIST_NPZ to a local mnist.npz."
        ) from error
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _validated(arrays, source="keras.datasets.mnist")


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
