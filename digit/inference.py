"""Serving side: predict digits from images, with a predictor or a Keras model (no TensorFlow needed).

    p = predict(predictor, image)     # p.digit (int, or None for a blank image), p.probabilities (10,)

`predict` takes what `digit.load_predictor()` returns (LiteRT, no TensorFlow) or a Keras model
(wrapped on first use in a KerasPredictor, which imports TensorFlow); both give the same Prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from digit.config import NUM_CLASSES
from digit.doubt import doubt_about_ink
from digit.preprocessing import preprocess_steps
from digit.serving import Predictor

# When a prediction is shown as "not sure": below UNSURE_BELOW, or below TORN_BELOW when more than
# SPREAD of the probability lies beyond the two likeliest digits. A digit torn between two readings
# (a 1 or a 7) at 75-90% is mostly read right; a scribble spreads its probability over several.
# Chosen on the drawn-style dev sets (digit/drawn.py: MNIST test digits redrawn as pen strokes, and
# hand-authored templates) and dev scribbles, never on real drawing: of the rules flagging at most
# 2.5% of the digits read right and at least 70% of the misread ones in both sets, the one that
# flags the most scribbles. With the shipped v5 model: mnist-drawn 73% of misreads / 2.3% of right
# ones, templates 82% / 1.5%, scribbles 86% (below 90% alone: 81% / 4.0%, 91% / 2.9%, 87%).
# benchmarks/real_drawing.py measures it on real pen-drawn digits.
UNSURE_BELOW = 0.75
TORN_BELOW = 0.9
SPREAD = 0.01


@dataclass(frozen=True)
class Prediction:
    """The answer for one image: `digit` is None when the image is blank."""

    digit: int | None
    probabilities: np.ndarray  # (10,) summing to 1; uniform for a blank image
    model_input: np.ndarray | None  # the (28, 28) image the model saw
    doubt: str | None = field(default=None, kw_only=True)  # why the image is not one digit (digit.doubt)

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max()) if self.digit is not None else 0.0

    @property
    def runner_up(self) -> int:
        return int(np.argsort(self.probabilities)[-2])

    @property
    def unsure(self) -> bool:
        return self.digit is not None and (self.doubt is not None or hesitates(self.probabilities))


def hesitates(probabilities: np.ndarray) -> bool:
    """Whether the model is not sure of its answer: too little confidence, or some spread over several digits."""
    first, second = np.sort(probabilities)[::-1][:2]
    return bool(first < UNSURE_BELOW or (first < TORN_BELOW and 1.0 - first - second > SPREAD))


def predict(model_or_predictor, image: np.ndarray) -> Prediction:
    """Preprocess `image` the MNIST way, then run the model on it; `doubt` says when it is not one digit."""
    steps = preprocess_steps(image)
    if steps.result is None:
        return Prediction(None, np.full(NUM_CLASSES, 1.0 / NUM_CLASSES), None)
    return replace(predict_prepared(model_or_predictor, steps.result), doubt=doubt_about_ink(steps.grayscale))


def predict_prepared(model_or_predictor, x: np.ndarray) -> Prediction:
    """Run the model on one already preprocessed (28, 28) image."""
    probabilities = predict_probabilities(model_or_predictor, x[np.newaxis])[0]
    return Prediction(int(probabilities.argmax()), probabilities, x)


def predict_probabilities(model_or_predictor, images: np.ndarray) -> np.ndarray:
    """(N, 10) probabilities for (N, 28, 28) float images in [0, 1]."""
    return as_predictor(model_or_predictor).probabilities(images)


def as_predictor(model_or_predictor) -> Predictor:
    """A predictor as it is; a Keras model wrapped in a KerasPredictor (cheap: its tracing is cached per model)."""
    if hasattr(model_or_predictor, "probabilities"):
        return model_or_predictor
    from digit.keras_predictor import KerasPredictor

    return KerasPredictor(model_or_predictor)
