"""Training side: the architectures, and loading and saving Keras models safely (imports TensorFlow).

Saving also writes the model's serving exports (a checked `.tflite` beside it, and a
`.layers.tflite` for explanations, digit/export.py) and its card; the `.keras` file is renamed
into place last, so a model appears whole or not at all.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from digit.config import ARCHITECTURES, DEFAULT_MODEL_PATH, IMAGE_SIZE, NUM_CLASSES
from digit.export import export_for_serving
from digit.serving import (
    ModelError,
    card_path,
    check_model_file,
    export_path,
    file_sha256,
    layers_export_path,
    read_card,
)

__all__ = ["ModelError", "build_model", "card_path", "load_model", "read_card", "save_model"]

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)


@keras.saving.register_keras_serializable(package="digit")
class ColumnL2Normalize(layers.Layer):
    """The seed's `tf.keras.utils.normalize(x, axis=1)`, inside the model.

    The tutorial normalised training images this way but new images with /255, so its
    predictions saw differently scaled inputs. As a layer, training and prediction agree.
    """

    def call(self, inputs):
        norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(inputs), axis=1, keepdims=True))
        return inputs / keras.ops.maximum(norm, 1e-12)


def build_model(arch: str) -> keras.Model:
    """A fresh, uncompiled model of the named architecture."""
    if arch == "seed":
        return _seed()
    if arch == "cnn":
        return _cnn()
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def _seed() -> keras.Model:
    # The tutorial's network, layer for layer, sigmoid output included.
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            ColumnL2Normalize(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="sigmoid"),
        ],
        name="seed",
    )


def _conv_block(filters: int) -> list[layers.Layer]:
    # Two 3x3 convolutions see 5x5; batch norm lets a high learning rate train fast.
    return [
        layers.Conv2D(filters, 3, padding="same", use_bias=False),
        layers.BatchNormalization(momentum=0.9),
        layers.ReLU(),
        layers.Conv2D(filters, 3, padding="same", use_bias=False),
        layers.BatchNormalization(momentum=0.9),
        layers.ReLU(),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
    ]


def _cnn() -> keras.Model:
    # The default: a small VGG-style network, about 200k parameters, 99.5%+ on MNIST.
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            *_conv_block(32),
            *_conv_block(64),
            layers.Flatten(),
            layers.Dense(128, use_bias=False),
            layers.BatchNormalization(momentum=0.9),
            layers.ReLU(),
            layers.Dropout(0.4),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="cnn",
    )


def load_model(path: str | Path | None = None) -> keras.Model:
    """Load a .keras model (the shipped default without a path), refusing unsafe or wrong ones."""
    path = Path(path) if path else DEFAULT_MODEL_PATH
    check_model_file(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        raise ModelError(f"cannot load {path.name}: {_first_line(error)}") from error
    _check_shapes(model, path.name)
    return model


def _check_shapes(model: object, name: str) -> None:
    if not isinstance(model, keras.Model):
        raise ModelError(f"{name} does not hold a Keras model")
    input_shape = tuple(model.inputs[0].shape[1:]) if model.inputs else None
    output_shape = tuple(model.outputs[0].shape[1:]) if model.outputs else None
    if input_shape != INPUT_SHAPE or output_shape != (NUM_CLASSES,):
        raise ModelError(
            f"{name} takes {input_shape} and gives {output_shape}; a digit model takes (28, 28, 1) and gives (10,)"
        )


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def save_model(
    model: keras.Model, path: str | Path, card: dict | None = None, check_images: np.ndarray | None = None
) -> Path:
    """Save weights and architecture (no optimizer state), its serving export and its card, atomically."""
    return prepare_save(model, path, card, check_images).commit()


@dataclass
class PendingSave:
    """A model written beside its final name: commit() renames it into place, discard() removes it all."""

    path: Path
    tmp: Path

    def commit(self) -> Path:
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        for leftover in (self.tmp, export_path(self.path), layers_export_path(self.path), card_path(self.path)):
            leftover.unlink(missing_ok=True)


def prepare_save(
    model: keras.Model, path: str | Path, card: dict | None = None, check_images: np.ndarray | None = None
) -> PendingSave:
    """Everything of save_model but the final rename: the slow part, which a Stop may still undo.

    `check_images` (uint8 or [0, 1] float, (N, 28, 28)) are what the export is checked on: the
    MNIST test set where it is at hand.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # An uncompiled copy, so the file holds no optimizer state (clone_model would compile it again).
    lean = type(model).from_config(model.get_config())
    lean.set_weights(model.get_weights())
    tmp = Path(_temporary_beside(path))
    try:
        lean.save(tmp)
    except BaseException:  # an interrupt too: no half-written file may stay behind
        tmp.unlink(missing_ok=True)
        raise
    serving = {**export_for_serving(lean, path, check_images), "keras_sha256": file_sha256(tmp)}
    text = json.dumps({**(card or {}), "serving": serving}, indent=2, sort_keys=True) + "\n"
    _atomic_write(card_path(path), lambda target: Path(target).write_text(text))
    return PendingSave(path, tmp)


def save_keras_only(model: keras.Model, path: str | Path) -> Path:
    """The `.keras` file alone (no export, no card), atomically: for a model that another process will publish."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lean = type(model).from_config(model.get_config())
    lean.set_weights(model.get_weights())
    _atomic_write(path, lambda target: lean.save(target))
    return path


def export_saved(path: str | Path, check_images: np.ndarray | None = None) -> dict:
    """Make (again) the serving export of a saved `.keras` file, leaving the file itself as it is; the new record."""
    path = Path(path)
    serving = {**export_for_serving(load_model(path), path, check_images), "keras_sha256": file_sha256(path)}
    text = json.dumps({**read_card(path), "serving": serving}, indent=2, sort_keys=True) + "\n"
    _atomic_write(card_path(path), lambda target: Path(target).write_text(text))
    return serving


def _temporary_beside(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes the file private; a model is meant to be shared
    return tmp


def _atomic_write(path: Path, write) -> None:
    # Write beside the target, then rename: a crash leaves the old file or the new one, never half.
    tmp = _temporary_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def parameter_count(model: keras.Model) -> int:
    """Number of weights in the model."""
    return int(model.count_params())
