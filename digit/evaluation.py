"""Serving side: score a model on labelled images: loss, accuracy, per-class report, confusion matrix.

Takes a predictor (LiteRT, no TensorFlow) or a Keras model, like `digit.predict`. Also the
before-and-after report of a fine-tune, which the app reads without TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from digit.config import NUM_CLASSES
from digit.data import to_model_input
from digit.inference import predict_probabilities


@dataclass(frozen=True)
class ClassScore:
    """Precision, recall, F1 and support of one class."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Evaluation:
    """How a model did on a labelled set."""

    loss: float
    accuracy: float
    n: int
    confusion: np.ndarray  # (10, 10): rows are true digits, columns predictions
    per_class: list[ClassScore]
    predictions: np.ndarray  # (N,) predicted digits
    confidences: np.ndarray  # (N,) probability of the predicted digit
    labels: np.ndarray  # (N,) true digits

    def confident_mistakes(self, k: int = 16) -> np.ndarray:
        """Indices of the k wrong predictions the model was surest of, surest first."""
        wrong = np.flatnonzero(self.predictions != self.labels)
        return wrong[np.argsort(-self.confidences[wrong], kind="stable")][:k]

    def to_dict(self) -> dict:
        """The summary as plain JSON-ready values."""
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "n": self.n,
            "per_class": {str(d): vars(s) for d, s in enumerate(self.per_class)},
            "confusion_matrix": self.confusion.tolist(),
        }


def evaluate(model_or_predictor, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Evaluate on uint8 (N, 28, 28) images with their labels."""
    probabilities = predict_probabilities(model_or_predictor, to_model_input(images))
    return score(probabilities, labels)


def score(probabilities: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Evaluation from (N, 10) probabilities and (N,) true labels."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    predictions = probabilities.argmax(axis=1)
    true_probability = np.clip(probabilities[np.arange(n), labels], 1e-7, 1.0)
    confusion = confusion_matrix(labels, predictions)
    return Evaluation(
        loss=float(-np.log(true_probability).mean()) if n else float("nan"),
        accuracy=float((predictions == labels).mean()) if n else float("nan"),
        n=n,
        confusion=confusion,
        per_class=class_scores(confusion),
        predictions=predictions,
        confidences=probabilities.max(axis=1),
        labels=labels,
    )


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Counts of (true, predicted) pairs."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def class_scores(confusion: np.ndarray) -> list[ClassScore]:
    """Precision, recall and F1 of each class from a confusion matrix."""
    hits = np.diag(confusion).astype(float)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return [
        ClassScore(float(p), float(r), float(f), int(s))
        for p, r, f, s in zip(precision, recall, f1, actual, strict=True)
    ]


def format_report(evaluation: Evaluation) -> str:
    """A classification report laid out like scikit-learn's."""
    lines = [f"{'':>12}{'precision':>10}{'recall':>10}{'f1-score':>10}{'support':>10}", ""]
    for digit, s in enumerate(evaluation.per_class):
        lines.append(f"{digit:>12}{s.precision:>10.4f}{s.recall:>10.4f}{s.f1:>10.4f}{s.support:>10}")
    scores = evaluation.per_class
    support = np.array([s.support for s in scores], dtype=float)
    weights = support / support.sum() if support.sum() else support
    lines.append("")
    lines.append(f"{'accuracy':>12}{'':>20}{evaluation.accuracy:>10.4f}{evaluation.n:>10}")
    for name, w in (("macro avg", np.full(len(scores), 1 / len(scores))), ("weighted avg", weights)):
        p, r, f = (float(np.dot(w, [getattr(s, a) for s in scores])) for a in ("precision", "recall", "f1"))
        lines.append(f"{name:>12}{p:>10.4f}{r:>10.4f}{f:>10.4f}{evaluation.n:>10}")
    return "\n".join(lines)


def format_confusion(confusion: np.ndarray) -> str:
    """The confusion matrix as text: rows true digits, columns predicted."""
    header = "true\\pred" + "".join(f"{d:>6}" for d in range(NUM_CLASSES))
    rows = [f"{t:>9}" + "".join(f"{c:>6}" for c in row) for t, row in enumerate(confusion)]
    return "\n".join([header, *rows])


MAX_MNIST_DROP = 0.001  # a fine-tune may cost at most 0.1 point of MNIST test accuracy


@dataclass(frozen=True)
class CrossValidation:
    """Accuracy on corrections no model was trained on: the base model, and k fine-tunes on the other folds."""

    before: float  # the base model on every correction
    after: float  # mean over folds of a fine-tune's accuracy on its held-out fold
    fold_accuracies: tuple[float, ...]
    folds: int
    status: str  # completed, or stopped/diverged when a fold's run did not complete


@dataclass(frozen=True)
class FinetuneReport:
    """Before and after: MNIST test accuracy and held-out accuracy on the corrections."""

    mnist_before: float
    mnist_after: float
    mnist_images: int
    corrections: int
    cross_validation: CrossValidation | None

    @property
    def mnist_change(self) -> float:
        """After minus before, in points (percent)."""
        return 100.0 * (self.mnist_after - self.mnist_before)

    @property
    def keeps_mnist(self) -> bool:
        """True when MNIST test accuracy dropped by no more than 0.1 point."""
        return self.mnist_before - self.mnist_after <= MAX_MNIST_DROP + 1e-9

    def to_dict(self) -> dict:
        """The report as plain JSON-ready values."""
        return {**asdict(self), "mnist_change_points": self.mnist_change, "keeps_mnist": self.keeps_mnist}

    @classmethod
    def from_dict(cls, values: dict) -> FinetuneReport:
        """The report again from to_dict()'s values (sent by the process that measured it)."""
        validation = values.get("cross_validation")
        if validation is not None:
            validation = CrossValidation(**{**validation, "fold_accuracies": tuple(validation["fold_accuracies"])})
        fields = ("mnist_before", "mnist_after", "mnist_images", "corrections")
        return cls(**{k: values[k] for k in fields}, cross_validation=validation)
