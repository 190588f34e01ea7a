"""Training side: export a Keras model for serving (a LiteRT flatbuffer), checked against Keras itself.

    record = export_for_serving(model, "runs/cnn.keras", check_images)   # writes runs/cnn.tflite
    record["engine"]      # "LiteRT" when the export gives Keras' probabilities within 1e-5, else "Keras"
    record["layers"]      # the layers export (runs/cnn.layers.tflite): every layer's output, for explanations

The server answers with the export and never imports TensorFlow (digit/serving.py). An export
that cannot be made, or that differs from Keras by more than TOLERANCE on any check image, is not
written: that model is served through Keras, and the record says why. The layers export is
checked the same way (every layer within LAYER_TOLERANCE of a Keras sub-model, times the layer's
largest value where that is over 1, since float32 sums of large numbers differ more; its last output
within TOLERANCE of the model's probabilities); where it fails, explanations show no layers.
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
from digit.serving import (
    KERAS,
    LITERT,
    LayersExport,
    LiteRTPredictor,
    export_path,
    layers_export_path,
    litert_available,
    normalized,
)

TOLERANCE = 1e-5  # the largest difference in any probability that still counts as the same model
LAYER_TOLERANCE = 1e-4  # ... and in any layer's output, per unit of the layer's scale (pre-activations reach ~40)
LAYER_CHECK_IMAGES = 200  # every layer is compared on this many check images; the last output on all


def export_for_serving(model: keras.Model, model_path: str | Path, check_images: np.ndarray | None = None) -> dict:
    """Write the checked `.tflite` export beside `model_path`; returns the card's record of it."""
    target = export_path(model_path)
    target.unlink(missing_ok=True)  # an export of an earlier model must never be served for this one
    layers_export_path(model_path).unlink(missing_ok=True)
    images, checked_on = _check_set(check_images)
    if not litert_available():
        return {"engine": KERAS, "reason": "ai-edge-litert is not installed where the model was saved"}
    try:
        flatbuffer = convert(model)
    except Exception as error:  # the converter's failures are many and varied
        return {"engine": KERAS, "reason": f"LiteRT conversion failed: {_first_line(error)}"}
    tmp = _write_beside(target, flatbuffer)
    expected = keras_probabilities(model, images)
    try:
        difference = float(np.abs(LiteRTPredictor(tmp).probabilities(images) - expected).max())
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
        "layers": export_layers(model, model_path, images, expected),
    }


def export_layers(model: keras.Model, model_path: str | Path, images: np.ndarray, expected: np.ndarray) -> dict:
    """Write the checked layers export beside `model_path`; the card's record of it (names, kinds, first kernels).

    `images` are the check images and `expected` the model's Keras probabilities for them.
    """
    target = layers_export_path(model_path)
    target.unlink(missing_ok=True)
    record = layers_record(model)
    try:
        outputs = layers_model(model)
        flatbuffer = convert(outputs)
    except Exception as error:
        return {"engine": KERAS, "reason": f"LiteRT conversion of the layers failed: {_first_line(error)}"}
    tmp = _write_beside(target, flatbuffer)
    try:
        exported = LayersExport(tmp, record)
        sample = images[:LAYER_CHECK_IMAGES]
        # Traced once: calling the many-output model eagerly held ~800 MB more (measured, 50 images).
        reference = tf.function(lambda x: outputs(x, training=False))
        differences = [_layer_differences(reference, exported, chunk) for chunk in np.array_split(sample, 4)]
        layer_difference = max(difference for chunk in differences for difference, _ in chunk)
        within = all(
            difference <= LAYER_TOLERANCE * max(1.0, scale) for chunk in differences for difference, scale in chunk
        )
        # The main export's probabilities are checked on every image; its twin here on the sample (one image at a
        # time through all the layers: on 10,000 images that took ~900 MB more at the end of a training run).
        last = np.stack([exported.run(image)[-1][1] for image in sample])
        final_difference = float(np.abs(normalized(last) - expected[: len(sample)]).max())
        checks = {
            "max_difference": layer_difference,
            "final_difference": final_difference,
            "checked_on": f"every layer on {len(sample):,} images",
        }
        if not (within and final_difference <= TOLERANCE):
            return {"engine": KERAS, "reason": f"the layers export differs from Keras ({checks})", **checks}
        os.replace(tmp, target)
    except Exception as error:  # an export that cannot be read back or run is no export
        return {"engine": KERAS, "reason": f"the layers export cannot be run: {_first_line(error)}"}
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {"engine": LITERT, "file": target.name, "bytes": len(flatbuffer), **checks, **record}


def layers_model(model: keras.Model) -> keras.Model:
    """A Keras model giving every layer's output, keyed by layer name (the export's signature keeps the names)."""
    return keras.Model(model.inputs, {layer.name: layer.output for layer in _layers(model)})


def layers_record(model: keras.Model) -> dict:
    """What the server needs to show the layers without Keras: names, kinds, activations, the first kernels."""
    layers = _layers(model)
    return {
        "names": [layer.name for layer in layers],
        "kinds": [type(layer).__name__ for layer in layers],
        "activations": [_activation_name(layer) for layer in layers],
        **_first_kernels(layers),
    }


def _layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _layer_differences(outputs, exported: LayersExport, images: np.ndarray) -> list[tuple[float, float]]:
    """(largest difference, largest absolute value) of every layer's output on every image, export against Keras."""
    if not len(images):
        return []
    reference = outputs(tf.constant(images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1), tf.float32))
    found = []
    for i, image in enumerate(images):
        for name, values in exported.run(image):
            expected = np.asarray(reference[name][i])
            found.append((float(np.abs(values - expected).max()), float(np.abs(expected).max())))
    return found


def _activation_name(layer: keras.layers.Layer) -> str:
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "") if activation is not None else ""
    return "" if name == "linear" else name


def _first_kernels(layers: list) -> dict:
    # The first convolution's kernels as images for the Train page: the server reads them from the card.
    for layer in layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = np.asarray(layer.get_weights()[0], np.float64)
            return {"first_conv": layer.name, "first_kernels": np.round(kernel, 6).tolist()}
    return {}


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
