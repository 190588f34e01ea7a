"""Serving without TensorFlow: the LiteRT predictor, its checked export, and the fallbacks to Keras."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import digit
from digit.data import to_model_input
from digit.inference import predict_probabilities
from digit.serving import KERAS, LITERT, ModelError, export_path, load_predictor, read_serving_record

PROJECT = Path(__file__).resolve().parents[1]
SHIPPED = PROJECT / "models" / "digit-cnn.keras"


@pytest.fixture
def copy_of_shipped(tmp_path) -> Path:
    """The shipped model and its card, without its export, in a folder of the test's own."""
    path = tmp_path / "model.keras"
    shutil.copy(SHIPPED, path)
    shutil.copy(SHIPPED.with_suffix(".json"), path.with_suffix(".json"))
    return path


def test_the_shipped_model_ships_with_a_checked_export():
    record = read_serving_record(SHIPPED)
    assert record["engine"] == LITERT and record["checked_on"] == "10,000 MNIST test images"
    assert record["max_difference"] <= 1e-5 and export_path(SHIPPED).is_file()
    predictor = load_predictor()
    assert predictor.engine == LITERT and predictor.note == ""


def test_litert_gives_the_probabilities_and_predictions_of_keras(shipped_model, small_mnist):
    predictor = load_predictor()
    x = to_model_input(small_mnist.x_test)[..., 0]
    lite, keras_ = predictor.probabilities(x), predict_probabilities(shipped_model, x)
    assert lite.shape == (500, 10) and np.allclose(lite.sum(axis=1), 1.0)
    assert np.abs(lite - keras_).max() <= 1e-5
    canvas = np.kron(small_mnist.x_test[7], np.ones((10, 10), np.uint8))
    a, b = digit.predict(predictor, canvas), digit.predict(shipped_model, canvas)
    assert a.digit == b.digit and np.allclose(a.probabilities, b.probabilities, atol=1e-5)
    np.testing.assert_array_equal(a.model_input, b.model_input)


def test_single_and_batched_answers_agree(small_mnist):
    predictor = load_predictor()
    x = to_model_input(small_mnist.x_test[:300])[..., 0]  # 256 + a short batch of 44
    batched = predictor.probabilities(x)
    singles = np.concatenate([predictor.probabilities(image[np.newaxis]) for image in x[:5]])
    np.testing.assert_allclose(batched[:5], singles, atol=1e-6)
    assert predictor.probabilities(x[:0]).shape == (0, 10)


@pytest.mark.slow
def test_a_model_without_an_export_gets_one_in_a_child_process(copy_of_shipped):
    card = json.loads(copy_of_shipped.with_suffix(".json").read_text())
    del card["serving"]  # a model saved before exports existed
    copy_of_shipped.with_suffix(".json").write_text(json.dumps(card))
    predictor = load_predictor(copy_of_shipped)
    assert predictor.engine == LITERT and export_path(copy_of_shipped).is_file()
    record = read_serving_record(copy_of_shipped)
    assert record["engine"] == LITERT and record["max_difference"] <= 1e-5
    assert json.loads(copy_of_shipped.with_suffix(".json").read_text())["test_accuracy"] == card["test_accuracy"]


@pytest.mark.slow
def test_an_export_made_from_another_file_is_never_served(copy_of_shipped, tmp_path):
    shutil.copy(export_path(SHIPPED), export_path(copy_of_shipped))  # the card's hash matches the shipped .keras ...
    untrained = tmp_path / "untrained.keras"
    from digit.models import build_model

    build_model("cnn").save(untrained)
    shutil.copy(untrained, copy_of_shipped)  # ... but the file is now another model
    predictor = load_predictor(copy_of_shipped)
    assert predictor.engine == LITERT
    record = read_serving_record(copy_of_shipped)
    assert record["keras_sha256"] == digit.serving.file_sha256(copy_of_shipped), "exported anew from this file"


def test_a_model_whose_export_failed_is_served_through_keras_and_says_why(copy_of_shipped):
    card = json.loads(copy_of_shipped.with_suffix(".json").read_text())
    card["serving"] = {**card["serving"], "engine": KERAS, "reason": "the LiteRT export differs from Keras by 3e-02"}
    copy_of_shipped.with_suffix(".json").write_text(json.dumps(card))
    predictor = load_predictor(copy_of_shipped)
    assert predictor.engine == KERAS and "differs from Keras" in predictor.note


def test_an_unreadable_export_falls_back_to_keras(copy_of_shipped):
    export_path(copy_of_shipped).write_bytes(b"not a flatbuffer")
    predictor = load_predictor(copy_of_shipped)
    assert predictor.engine == KERAS and "cannot be read" in predictor.note


@pytest.mark.parametrize("content, words", [(None, "no model file"), (b"garbage", "not a Keras model file")])
def test_a_missing_or_broken_model_is_a_clear_error(tmp_path, content, words):
    path = tmp_path / "m.keras"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=words):
        load_predictor(path)


PREDICT_WITHOUT_TENSORFLOW = """
import sys
from digit.cli import main
status = main(["predict", "--json", sys.argv[1]])
print(status, "tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_the_cli_predicts_with_the_predictor_without_tensorflow(tmp_path, mnist_digits):
    import cv2

    image = tmp_path / "seven.png"
    cv2.imwrite(str(image), 255 - cv2.resize(mnist_digits[7], (200, 200)))
    done = subprocess.run(
        [sys.executable, "-c", PREDICT_WITHOUT_TENSORFLOW, str(image)], cwd=PROJECT, capture_output=True, text=True
    )
    line, summary = done.stdout.strip().splitlines()[-2:]
    assert json.loads(line)["digit"] == 7
    assert summary == "0 False False"
