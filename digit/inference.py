"""Predict digits from images, fast enough to follow the pen.

Keras' `model.predict` sets up a whole batch pipeline on every call (about 50 ms here);
a `tf.function` with a fixed input signature, traced once per model, takes about 1 ms.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from digit.config import IMAGE_SIZE, NUM_CLASSES
from digit.preprocessing import preprocess

UNSURE_BELOW = 0.6  # a prediction this confident or less is shown as "not sure"
BATCH = 256  # 1024 ran 10% faster but raised memory by 340 MB instead of 143 MB (10,000 images, cnn)

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_compiling = threading.Lock()


@dataclass(frozen=True)
class Prediction:
    """The answer for one image: `digit` is None when the image is blank."""

    digit: int | None
    probabilities: np.ndarray  # (10,) summing to 1; uniform for a blank image
    model_input: np.ndarray | None  # the (28, 28) image the model saw

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max()) if self.digit is not None else 0.0

    @property
    def runner_up(self) -> int:
        return int(np.argsort(self.probabilities)[-2])

    @property
    def unsure(self) -> bool:
        return self.digit is not None and self.confidence < UNSURE_BELOW


def predict(model: keras.Model, image: np.ndarray) -> Prediction:
    """Preprocess `image` the MNIST way, then run the model on it."""
    x = preprocess(image)
    if x is None:
        return Prediction(None, np.full(NUM_CLASSES, 1.0 / NUM_CLASSES), None)
    return predict_prepared(model, x)


def predict_prepared(model: keras.Model, x: np.ndarray) -> Prediction:
    """Run the model on one already preprocessed (28, 28) image."""
    probabilities = predict_probabilities(model, x[np.newaxis])[0]
    return Prediction(int(probabilities.argmax()), probabilities, x)


def predict_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """(N, 10) probabilities for (N, 28, 28) float images in [0, 1], in batches."""
    infer = compiled(model)
    images = np.asarray(images, dtype=np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    chunks = [infer(tf.constant(images[i : i + BATCH])).numpy() for i in range(0, len(images), BATCH)]
    outputs = np.concatenate(chunks) if chunks else np.zeros((0, NUM_CLASSES), np.float32)
    return normalized(outputs.astype(np.float64))


def normalized(outputs: np.ndarray) -> np.ndarray:
    """Rows that sum to 1 (the seed's sigmoid outputs do not)."""
    totals = outputs.sum(axis=1, keepdims=True)
    return outputs / np.where(totals > 0, totals, 1.0)


def compiled(model: keras.Model):
    """The model's inference function, traced once for (N, 28, 28, 1) float32 input."""
    with _compiling:
        infer = _compiled.get(model)
        if infer is None:
            spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32)
            weak = weakref.ref(model)  # a strong reference here would keep every model alive forever
            # No Python control flow to convert: skipping AutoGraph avoids its warning about lambdas.
            run = tf.autograph.experimental.do_not_convert(lambda x: weak()(x, training=False))
            infer = tf.function(run, input_signature=[spec])
            _compiled[model] = infer
    return infer
