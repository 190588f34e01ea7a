"""Scoring: exact values on hand-made probabilities, the text reports, and the shipped model on MNIST."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from digit.evaluation import evaluate, format_confusion, format_report, score
from digit.inference import predict_probabilities
from digit.models import build_model


def distribution(**weights: float) -> list[float]:
    """A 10-way probability row from {'d3': 0.5, ...}; the rest of the mass spread over the other digits."""
    row = np.zeros(10)
    for name, value in weights.items():
        row[int(name[1:])] = value
    rest = 1.0 - row.sum()
    if rest > 1e-12:
        others = row == 0
        row[others] = rest / others.sum()
    return row.tolist()


# Six images of digits 0, 0, 1, 1, 2, 2; images 1 and 5 are wrong (called 1 and 0).
PROBABILITIES = np.array(
    [
        distribution(d0=0.9, d1=0.1),
        distribution(d0=0.2, d1=0.8),
        distribution(d1=1.0),
        distribution(d0=0.3, d1=0.6, d2=0.1),
        distribution(d0=0.05, d1=0.05, d2=0.9),
        distribution(d0=0.7, d2=0.3),
    ]
)
LABELS = np.array([0, 0, 1, 1, 2, 2])


@pytest.fixture(scope="module")
def scored():
    return score(PROBABILITIES, LABELS)


def test_accuracy_and_loss(scored):
    assert scored.n == 6
    assert scored.accuracy == pytest.approx(4 / 6)
    expected_loss = -np.mean(np.log([0.9, 0.2, 1.0, 0.6, 0.9, 0.3]))
    assert scored.loss == pytest.approx(expected_loss)


def test_predictions_and_confidences(scored):
    np.testing.assert_array_equal(scored.predictions, [0, 1, 1, 1, 2, 0])
    np.testing.assert_allclose(scored.confidences, [0.9, 0.8, 1.0, 0.6, 0.9, 0.7])
    np.testing.assert_array_equal(scored.labels, LABELS)


def test_confusion_matrix(scored):
    expected = np.zeros((10, 10), int)
    expected[0, 0] = expected[0, 1] = expected[2, 2] = expected[2, 0] = 1
    expected[1, 1] = 2
    np.testing.assert_array_equal(scored.confusion, expected)
    assert scored.confusion.sum() == scored.n


def test_precision_recall_f1(scored):
    zero, one, two = scored.per_class[:3]
    assert (zero.precision, zero.recall, zero.f1, zero.support) == pytest.approx((0.5, 0.5, 0.5, 2))
    assert (one.precision, one.recall, one.f1, one.support) == pytest.approx((2 / 3, 1.0, 0.8, 2))
    assert (two.precision, two.recall, two.f1, two.support) == pytest.approx((1.0, 0.5, 2 / 3, 2))
    for absent in scored.per_class[3:]:  # never seen, never predicted: zeros, not NaN
        assert (absent.precision, absent.recall, absent.f1, absent.support) == (0.0, 0.0, 0.0, 0)


def test_confident_mistakes_surest_first(scored):
    np.testing.assert_array_equal(scored.confident_mistakes(), [1, 5])
    np.testing.assert_array_equal(scored.confident_mistakes(1), [1])


def test_confident_mistakes_order_on_many():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=200)
    labels = rng.integers(0, 10, 200)
    result = score(probabilities, labels)
    mistakes = result.confident_mistakes(16)
    assert len(mistakes) == 16
    assert (result.predictions[mistakes] != result.labels[mistakes]).all()
    assert (np.diff(result.confidences[mistakes]) <= 0).all()
    wrong = result.predictions != result.labels
    assert result.confidences[mistakes].min() >= np.sort(result.confidences[wrong])[-16]


def test_perfect_and_hopeless_scores():
    labels = np.arange(10).repeat(3)
    perfect = score(np.eye(10)[labels], labels)
    assert perfect.accuracy == 1.0 and perfect.loss == pytest.approx(0.0, abs=1e-6)
    assert all(s.f1 == 1.0 for s in perfect.per_class)
    assert perfect.confident_mistakes().size == 0
    hopeless = score(np.eye(10)[(labels + 1) % 10], labels)
    assert hopeless.accuracy == 0.0
    assert math.isfinite(hopeless.loss) and hopeless.loss == pytest.approx(-np.log(1e-7))  # clipped, not inf


def test_empty_set():
    result = score(np.zeros((0, 10)), np.zeros(0, int))
    assert result.n == 0 and math.isnan(result.accuracy)
    assert result.confusion.sum() == 0
    format_report(result)


def test_to_dict_is_json(scored):
    data = json.loads(json.dumps(scored.to_dict()))
    assert data["n"] == 6 and data["accuracy"] == pytest.approx(4 / 6)
    assert data["confusion_matrix"][1][1] == 2
    assert data["per_class"]["1"]["f1"] == pytest.approx(0.8)


# --- text reports -----------------------------------------------------------------------------


def test_format_report(scored):
    lines = format_report(scored).splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.strip() and line.split()[0].isdigit()}
    assert sorted(rows, key=int) == [str(d) for d in range(10)]
    assert rows["1"] == ["0.6667", "1.0000", "0.8000", "2"]
    assert rows["2"] == ["1.0000", "0.5000", "0.6667", "2"]
    accuracy = next(line for line in lines if line.strip().startswith("accuracy")).split()
    assert accuracy == ["accuracy", "0.6667", "6"]
    weighted = next(line for line in lines if "weighted avg" in line).split()
    assert weighted[2:] == [
        f"{(0.5 + 2 / 3 + 1) / 3:.4f}",
        f"{(0.5 + 1 + 0.5) / 3:.4f}",
        f"{(0.5 + 0.8 + 2 / 3) / 3:.4f}",
        "6",
    ]
    assert any("macro avg" in line for line in lines)


def test_format_confusion_reads_back(scored):
    lines = format_confusion(scored.confusion).splitlines()
    assert len(lines) == 11
    assert lines[0].split() == ["true\\pred", *map(str, range(10))]
    parsed = np.array([[int(v) for v in line.split()[1:]] for line in lines[1:]])
    np.testing.assert_array_equal(parsed, scored.confusion)
    assert [int(line.split()[0]) for line in lines[1:]] == list(range(10))


# --- evaluate() on a model --------------------------------------------------------------------


def test_evaluate_matches_score_of_the_probabilities(small_mnist):
    model = build_model("cnn")  # untrained: the numbers need not be good, only consistent
    images, labels = small_mnist.x_test[:200], small_mnist.y_test[:200]
    result = evaluate(model, images, labels)
    assert result.n == 200 and result.confusion.sum() == 200
    assert 0.0 <= result.accuracy <= 1.0 and math.isfinite(result.loss)
    expected = score(predict_probabilities(model, images.astype(np.float32) / 255), labels)
    assert result.accuracy == expected.accuracy
    assert result.loss == pytest.approx(expected.loss, rel=1e-5)


@pytest.mark.full_data
def test_shipped_model_reaches_99_5_percent_on_mnist(full_npz, shipped_model):
    from digit.data import load_npz

    data = load_npz(full_npz)
    result = evaluate(shipped_model, data.x_test, data.y_test)
    assert result.n == 10_000
    assert result.accuracy >= 0.995, f"MNIST test accuracy {result.accuracy:.4f}"
    assert result.loss < 0.05
