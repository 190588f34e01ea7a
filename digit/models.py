"""The architectures, and loading and saving models safely."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import keras
from keras import layers

from digit.config import ARCHITECTURES, DEFAULT_MODEL_PATH, IMAGE_SIZE, NUM_CLASSES

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)


class ModelError(RuntimeError):
    """A model file that is missing, broken, unsafe or of the wrong shape."""


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
    if not path.is_file():
        raise ModelError(f"no model file at {path}")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path.name} is not a Keras model file (.keras)")
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


def save_model(model: keras.Model, path: str | Path, card: dict | None = None) -> Path:
    """Save weights and architecture (no optimizer state) atomically, with a JSON card beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # An uncompiled copy, so the file holds no optimizer state (clone_model would compile it again).
    lean = type(model).from_config(model.get_config())
    lean.set_weights(model.get_weights())
    _atomic_write(path, lambda tmp: lean.save(tmp))
    if card is not None:
        text = json.dumps(card, indent=2, sort_keys=True) + "\n"
        _atomic_write(card_path(path), lambda tmp: Path(tmp).write_text(text))
    return path


def card_path(model_path: str | Path) -> Path:
    """Where a model's card (its JSON description) lives."""
    return Path(model_path).with_suffix(".json")


def read_card(model_path: str | Path) -> dict:
    """The model's card, or an empty dict where there is none or it is unreadable."""
    try:
        return json.loads(card_path(model_path).read_text())
    except (OSError, ValueError):
        return {}


def _atomic_write(path: Path, write) -> None:
    # Write beside the target, then rename: a crash leaves the old file or the new one, never half.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a model is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def parameter_count(model: keras.Model) -> int:
    """Number of weights in the model."""
    return int(model.count_params())
