"""Training side: export a Keras model for serving (a LiteRT flatbuffer), checked against Keras itself.

    record = export_for_serving(model, "runs/cnn.keras", check_images)   # writes runs/cnn.tflite
    record["engine"]      # "LiteRT" when the export gives Keras' probabilities within 1e-5, else "Keras"

The server answers with the export and never imports TensorFlow (digit/serving.py). An export
that cannot be made, or that differs from Keras by more than TOLERANCE on any check image, is not
written: that model is served through Keras, and the record says why.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from digit.config import IMAGE_SIZE
from digit.keras_predictor import keras_probabilities
from digit.serving import KERAS, LITERT, LiteRTPredictor, export_path, litert_available

TOLERANCE = 1e-5  # the largest difference in any probability that still counts as the same model


def export_for_serving(model: keras.Model, model_path: str | Path, check_images: np.ndarray | None = None) -> dict:
    """Write the checked `.tflite` export beside `model_path`; returns the card's record of it."""
    target = export_path(model_path)
    target.unlink(missing_ok=True)  # an export of an earlier model must never be served for this one
    images, checked_on = _check_set(check_images)
    if not litert_available():
        return {"engine": KERAS, "reason": "ai-edge-litert is not installed where the model was saved"}
    try:
        flatbuffer = convert(model)
    except Exception as error:  # the converter's failures are many and varied
        return {"engine": KERAS, "reason": f"LiteRT conversion failed: {_first_line(error)}"}
    tmp = _write_beside(target, flatbuffer)
    try:
        difference = float(
            np.abs(LiteRTPredictor(tmp).probabilities(images) - keras_probabilities(model, images)).max()
        )
        if not difference <= TOLERANCE:
            return {
                "engine": KERAS,
                "reason": f"the LiteRT export differs from Keras by {difference:.1e} (more than {TOLERANCE:g})",
                "max_difference": difference,
                "checked_on": checked_on,
            }
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {
        "engine": LITERT,
        "file": target.name,
        "bytes": len(flatbuffer),
        "max_difference": difference,
        "checked_on": checked_on,
    }


def convert(model: keras.Model) -> bytes:
    """The model as a LiteRT flatbuffer, float32 throughout (no quantisation: the same answers)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its progress
        return converter.convert()


def _check_set(images: np.ndarray | None) -> tuple[np.ndarray, str]:
    if images is not None and len(images):
        images = np.asarray(images)
        scaled = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
        return scaled.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), f"{len(images):,} MNIST test images"
    return synthetic_check_images(), "512 synthetic images (no data set was at hand)"


def synthetic_check_images(count: int = 512, seed: int = 0) -> np.ndarray:
    """Random strokes, noise and a blank: (count, 28, 28) float32 in [0, 1], for where MNIST is not at hand."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    import cv2

    for image in images[1 : count // 2]:
        points = rng.integers(4, 24, size=(rng.integers(2, 6), 2)).astype(np.int32)
        cv2.polylines(image, [points], False, 1.0, int(rng.integers(1, 4)))
    images[count // 2 :] = rng.random((count - count // 2, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    return images


def _write_beside(target: Path, data: bytes) -> str:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".tflite")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes the file private; a model is meant to be shared
    return tmp


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
