"""Training side: a Keras model as a predictor, fast enough to follow the pen (imports TensorFlow).

Used where Keras is at hand anyway (training, export checks, the CLI's evaluate) and as the
server's fallback where the LiteRT export cannot be used. Keras' `model.predict` sets up a whole
batch pipeline on every call (about 50 ms here); a `tf.function` with a fixed input signature,
traced once per model, takes about 1 ms.
"""

from __future__ import annotations

import threading
import weakref

import keras
import numpy as np
import tensorflow as tf

from digit.config import IMAGE_SIZE, NUM_CLASSES
from digit.serving import BATCH, KERAS, normalized

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_compiling = threading.Lock()


class KerasPredictor:
    """A Keras model answering through its traced inference function."""

    engine = KERAS

    def __init__(self, model: keras.Model, note: str = "") -> None:
        self.model = model
        self.note = note

    def warm_up(self) -> KerasPredictor:
        """Trace the inference function now, not on the first stroke."""
        self.probabilities(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.float32))
        return self

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return keras_probabilities(self.model, images)


def keras_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """(N, 10) probabilities for (N, 28, 28) float images in [0, 1], in batches."""
    infer = compiled(model)
    images = np.asarray(images, dtype=np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    chunks = [infer(tf.constant(images[i : i + BATCH])).numpy() for i in range(0, len(images), BATCH)]
    return normalized(np.concatenate(chunks) if chunks else np.zeros((0, NUM_CLASSES)))


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
