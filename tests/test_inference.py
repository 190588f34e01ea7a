"""Prediction: the Prediction contract, probabilities, the fast path, and the shipped model on canvas drawings."""

from __future__ import annotations

import gc
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from digit.data import to_model_input
from digit.inference import Prediction, hesitates, predict, predict_prepared, predict_probabilities
from digit.keras_predictor import compiled
from digit.models import build_model
from digit.preprocessing import ImageError, preprocess

CANVAS = 280


@pytest.fixture(scope="module")
def cnn():
    return build_model("cnn")


@pytest.fixture(scope="module")
def seed():
    return build_model("seed")


def canvas(digit: np.ndarray, style: str) -> np.ndarray:
    """An MNIST digit drawn as the 280x280 canvas would return it, in one of several styles."""
    ink = cv2.resize(digit, (CANVAS, CANVAS), interpolation=cv2.INTER_LINEAR)
    if style == "opaque black background":
        rgba = np.full((CANVAS, CANVAS, 4), 255, np.uint8)
        rgba[..., :3] = ink[..., None]
        return rgba
    if style == "transparent, black ink":
        rgba = np.zeros((CANVAS, CANVAS, 4), np.uint8)
        rgba[..., 3] = ink
        return rgba
    if style == "white paper, dark ink":
        return np.repeat((255 - ink)[..., None], 3, axis=2)
    if style == "float grayscale":
        return ink / 255.0
    raise ValueError(style)


STYLES = ["opaque black background", "transparent, black ink", "white paper, dark ink", "float grayscale"]


# --- the Prediction contract ------------------------------------------------------------------


def test_prediction_fields(cnn, mnist_digits):
    image = canvas(mnist_digits[4], "opaque black background")
    p = predict(cnn, image)
    assert isinstance(p, Prediction)
    assert isinstance(p.digit, int) and 0 <= p.digit <= 9
    assert p.probabilities.shape == (10,)
    assert p.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert (p.probabilities >= 0).all()
    assert p.digit == int(p.probabilities.argmax())
    assert p.confidence == pytest.approx(p.probabilities.max())
    assert p.runner_up != p.digit
    assert p.probabilities[p.runner_up] == np.sort(p.probabilities)[-2]
    assert p.unsure == hesitates(p.probabilities)
    np.testing.assert_array_equal(p.model_input, preprocess(image))


@pytest.mark.parametrize(
    "top, others, unsure",
    [
        ([0.95, 0.05], [], False),  # sure
        ([0.85, 0.15], [], False),  # torn between two, mostly right
        ([0.85, 0.12], [0.03], True),  # ... and some on a third: as scribbles spread
        ([0.7, 0.3], [], True),  # too little confidence, whatever the rest
    ],
)
def test_not_sure_when_too_little_confidence_or_spread_over_several_digits(top, others, unsure):
    probabilities = np.zeros(10)
    probabilities[[3, 8, 5][: len(top) + len(others)]] = top + others
    assert hesitates(probabilities) == unsure
    assert Prediction(3, probabilities, None).unsure == unsure


def test_blank_gives_no_digit(cnn):
    p = predict(cnn, np.zeros((CANVAS, CANVAS, 4), np.uint8))
    assert p.digit is None and p.model_input is None
    np.testing.assert_allclose(p.probabilities, np.full(10, 0.1))
    assert p.confidence == 0.0 and not p.unsure


def test_unreadable_image_raises_image_error(cnn):
    with pytest.raises(ImageError):
        predict(cnn, np.full((10, 10), np.nan))


def test_predict_prepared_matches_predict(cnn, mnist_digits):
    image = canvas(mnist_digits[2], "white paper, dark ink")
    direct = predict(cnn, image)
    prepared = predict_prepared(cnn, preprocess(image))
    np.testing.assert_allclose(prepared.probabilities, direct.probabilities)
    assert prepared.digit == direct.digit


@pytest.mark.parametrize("arch", ["cnn", "seed"])
def test_probabilities_sum_to_one(arch, request, small_mnist):
    model = request.getfixturevalue(arch)
    images = small_mnist.x_test[:50].astype(np.float32) / 255
    probabilities = predict_probabilities(model, images)
    assert probabilities.shape == (50, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert (probabilities >= 0).all()


def test_seed_probabilities_are_its_normalised_sigmoids(seed, small_mnist):
    images = small_mnist.x_test[:20].astype(np.float32) / 255
    raw = np.asarray(seed(to_model_input(small_mnist.x_test[:20]), training=False), dtype=np.float64)
    assert not np.allclose(raw.sum(axis=1), 1.0, atol=1e-3)  # the seed's sigmoid outputs do not sum to 1
    np.testing.assert_allclose(predict_probabilities(seed, images), raw / raw.sum(axis=1, keepdims=True), rtol=1e-5)
    p = predict(seed, canvas(small_mnist.x_test[0], "opaque black background"))
    assert p.probabilities.sum() == pytest.approx(1.0)


def test_batches_of_any_size(cnn, small_mnist):
    assert predict_probabilities(cnn, np.zeros((0, 28, 28), np.float32)).shape == (0, 10)
    images = np.concatenate([small_mnist.x_test] * 3)[:1100].astype(np.float32) / 255  # more than one chunk
    probabilities = predict_probabilities(cnn, images)
    assert probabilities.shape == (1100, 10)
    np.testing.assert_allclose(probabilities[1024:1030], predict_probabilities(cnn, images[1024:1030]), atol=1e-5)


# --- the fast path ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["cnn", "seed"])
def test_compiled_matches_calling_the_model(arch, request, small_mnist):
    model = request.getfixturevalue(arch)
    x = to_model_input(small_mnist.x_test[:16])
    fast = compiled(model)(x).numpy()
    slow = np.asarray(model(x, training=False))
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    assert compiled(model) is compiled(model)  # traced once per model


def test_compiled_functions_do_not_keep_models_alive():
    # Every trained or loaded model a server predicts with must be freed once the app drops it.
    model = build_model("seed")
    predict_probabilities(model, np.zeros((2, 28, 28), np.float32))
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


def test_prediction_is_fast(cnn, mnist_digits):
    image = canvas(mnist_digits[8], "opaque black background")
    predict(cnn, image)  # the first call traces the function
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        predict(cnn, image)
        timings.append(time.perf_counter() - started)
    assert np.median(timings) < 0.05  # ~2 ms idle; model.predict would take 50-100 ms


def test_concurrent_predictions_agree(cnn, small_mnist):
    images = [canvas(d, "opaque black background") for d in small_mnist.x_test[:16]]
    serial = [predict(cnn, image).probabilities for image in images]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda image: predict(cnn, image).probabilities, images))
    for expected, got in zip(serial, parallel, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)


# --- the shipped model on drawings ------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_shipped_model_reads_mnist_digits_drawn_on_a_canvas(shipped_model, mnist_digits, style):
    for digit, image in mnist_digits.items():
        p = predict(shipped_model, canvas(image, style))
        assert p.digit == digit, f"{style}: drew a {digit}, got {p.digit} ({p.confidence:.0%})"


def test_shipped_model_on_many_canvas_digits(shipped_model, small_mnist):
    images, labels = small_mnist.x_test[:200], small_mnist.y_test[:200]
    styles = [STYLES[i % len(STYLES)] for i in range(len(images))]
    digits = [predict(shipped_model, canvas(image, style)).digit for image, style in zip(images, styles, strict=True)]
    accuracy = np.mean(np.array(digits) == labels)
    assert accuracy >= 0.97, f"canvas accuracy {accuracy:.3f}"


def test_shipped_model_sees_no_digit_in_a_blank_canvas(shipped_model):
    assert predict(shipped_model, np.zeros((CANVAS, CANVAS, 4), np.uint8)).digit is None
