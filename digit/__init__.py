"""digit: recognise hand-drawn digits with a small CNN trained on MNIST.

    import digit
    predictor = digit.load_predictor()     # what the app serves with: the shipped model's LiteRT export
    x = digit.preprocess(image)            # (28, 28) float32 in [0, 1], or None if blank
    p = digit.predict(predictor, image)    # p.digit (int or None), p.probabilities (10,)
    model = digit.load_model()             # the shipped model as Keras (imports TensorFlow)

TensorFlow is imported only by what needs Keras (load_model, train, build_model, ...), on first
use, never by `import digit`, load_predictor, predict or evaluate with a predictor.
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the console

from digit.config import ARCHITECTURES, CLASS_NAMES, DEFAULT_ARCH, DEFAULT_MODEL_PATH, TrainConfig

_LAZY = {
    "load_model": "digit.models",
    "save_model": "digit.models",
    "build_model": "digit.models",
    "ModelError": "digit.serving",
    "load_predictor": "digit.serving",
    "Predictor": "digit.serving",
    "preprocess": "digit.preprocessing",
    "preprocess_steps": "digit.preprocessing",
    "ImageError": "digit.preprocessing",
    "predict": "digit.inference",
    "Prediction": "digit.inference",
    "explain": "digit.explanation",
    "Explanation": "digit.explanation",
    "read_number": "digit.number",
    "NumberReading": "digit.number",
    "evaluate": "digit.evaluation",
    "Evaluation": "digit.evaluation",
    "train": "digit.training",
    "TrainResult": "digit.training",
    "load_mnist": "digit.data",
    "Dataset": "digit.data",
    "DataError": "digit.data",
    "read_image_bytes": "digit.images",
    "read_image_file": "digit.images",
}

__all__ = ["ARCHITECTURES", "CLASS_NAMES", "DEFAULT_ARCH", "DEFAULT_MODEL_PATH", "TrainConfig", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'digit' has no attribute {name!r}")
