"""Inside the network: layer activations as the model computes them, saliency that is right, the parts and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import digit
from digit.explanation import (
    PATCH,
    PICTURE_WIDTH,
    drawing_saliency,
    every_view,
    explain_prepared,
    first_kernels,
    heat_picture,
    kernels_picture,
    maps_picture,
    stage_views,
    view_picture,
)
from digit.serving import KERAS, LITERT, layers_export_path, load_predictor, read_serving_record

PROJECT = Path(__file__).resolve().parents[1]
SHIPPED = PROJECT / "models" / "digit-cnn.keras"
PHONE = 390


@pytest.fixture(scope="module")
def predictor():
    return load_predictor()


def model_input(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def canvas(digit28: np.ndarray) -> np.ndarray:
    """An MNIST digit as a 280x280 canvas drawing, white on opaque black RGBA."""
    gray = cv2.resize(digit28, (280, 280), interpolation=cv2.INTER_LINEAR)
    return np.dstack([gray, gray, gray, np.full_like(gray, 255)])


# The layers are the model's own


def test_the_shipped_model_ships_with_a_checked_layers_export():
    record = read_serving_record(SHIPPED)["layers"]
    assert record["engine"] == LITERT and layers_export_path(SHIPPED).is_file()
    assert record["max_difference"] <= 1e-4 and record["final_difference"] <= 1e-5
    assert record["names"][0] == "conv2d" and record["kinds"][0] == "Conv2D"
    assert np.asarray(record["first_kernels"]).shape == (3, 3, 1, 32)


def test_activations_equal_a_keras_sub_model(predictor, shipped_model, small_mnist):
    import keras

    sub_model = keras.Model(shipped_model.inputs, [layer.output for layer in shipped_model.layers])
    images = model_input(small_mnist.x_test[:40])
    expected = [np.asarray(a) for a in sub_model([images[..., np.newaxis]], training=False)]
    worst = 0.0
    for i, x in enumerate(images):
        e = explain_prepared(predictor, x)
        assert [name for name, _ in e.layers] == ["input", *(layer.name for layer in shipped_model.layers)]
        np.testing.assert_array_equal(e.layers[0][1][..., 0], x)
        for (_, values), reference in zip(e.layers[1:], expected, strict=True):
            assert values.shape == reference.shape[1:]
            worst = max(worst, float(np.abs(values - reference[i]).max()))
    print(f"largest difference from the Keras sub-model, every layer of 40 digits: {worst:.1e}")
    assert worst <= 1e-4


def test_a_keras_model_is_explained_like_its_export(predictor, shipped_model, small_mnist):
    x = model_input(small_mnist.x_test[3])
    lite, through_keras = explain_prepared(predictor, x), explain_prepared(shipped_model, x)
    assert [n for n, _ in lite.layers] == [n for n, _ in through_keras.layers]
    assert (
        max(float(np.abs(a - b).max()) for (_, a), (_, b) in zip(lite.layers, through_keras.layers, strict=True))
        <= 1e-4
    )
    assert np.abs(lite.saliency - through_keras.saliency).max() <= 1e-3 * np.abs(lite.saliency).max()
    np.testing.assert_allclose(first_kernels(predictor), first_kernels(shipped_model), atol=1e-6)


def test_the_prediction_is_digit_predict(predictor, small_mnist):
    drawing = canvas(small_mnist.x_test[7])
    e, p = digit.explain(predictor, drawing), digit.predict(predictor, drawing)
    assert e.prediction.digit == p.digit
    np.testing.assert_array_equal(e.prediction.probabilities, p.probabilities)
    np.testing.assert_array_equal(e.prediction.model_input, p.model_input)
    assert e.saliency.shape == (28, 28) and e.evidence.shape == (10, 28, 28)
    np.testing.assert_array_equal(e.saliency, e.evidence[p.digit])


def test_a_blank_image_has_nothing_to_explain(predictor):
    e = digit.explain(predictor, np.zeros((280, 280), np.uint8))
    assert e.prediction.digit is None and e.layers == [] and not e.saliency.any()


# Saliency is right


def test_saliency_lies_mostly_on_the_ink(predictor, small_mnist):
    near_ink = []
    for image in small_mnist.x_test[:200]:
        x = model_input(image)
        mass = np.abs(explain_prepared(predictor, x).saliency)
        ink = cv2.dilate((x > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # the ink, dilated by 2 pixels
        near_ink.append(mass[ink].sum() / mass.sum())
    print(f"saliency within 2 px of the ink: {np.mean(near_ink):.1%} on average, {np.min(near_ink):.1%} at least")
    assert np.mean(near_ink) >= 0.7


def test_hiding_the_most_salient_region_costs_more_than_a_random_one(predictor, small_mnist):
    rng = np.random.default_rng(0)
    salient, random = [], []
    for image in small_mnist.x_test[:150]:
        x = model_input(image)
        e = explain_prepared(predictor, x)
        answer = e.prediction.digit
        # Every PATCH x PATCH region's total saliency; the largest is the most salient region.
        totals = cv2.boxFilter(e.saliency, -1, (PATCH, PATCH), normalize=False, anchor=(0, 0))[
            : 29 - PATCH, : 29 - PATCH
        ]
        top, left = np.unravel_index(totals.argmax(), totals.shape)
        hidden = [hide(x, top, left), hide(x, *rng.integers(0, 29 - PATCH, size=2))]
        before = e.prediction.probabilities[answer]
        after = predictor.probabilities(np.stack(hidden))[:, answer]
        salient.append(before - after[0])
        random.append(before - after[1])
    salient, random = np.array(salient), np.array(random)
    print(f"probability lost, most salient region: {salient.mean():.3f}, a random one: {random.mean():.3f}")
    assert salient.mean() > random.mean()
    assert (salient >= random).mean() >= 0.9


def hide(x: np.ndarray, top: int, left: int) -> np.ndarray:
    hidden = x.copy()
    hidden[top : top + PATCH, left : left + PATCH] = 0.0
    return hidden


def test_the_runner_up_map_contrasts_the_two_digits(predictor, small_mnist):
    e = explain_prepared(predictor, model_input(small_mnist.x_test[0]))
    p = e.prediction
    assert not e.versus(p.digit).any()
    np.testing.assert_allclose(e.versus(p.runner_up), e.log_drops[p.digit] - e.log_drops[p.runner_up])
    assert e.versus(p.runner_up).sum() > 0, "the ink supports the answer over the runner-up"


def test_the_saliency_scaled_back_lands_on_the_drawing(predictor, small_mnist):
    for image in small_mnist.x_test[:10]:
        drawing = cv2.copyMakeBorder(canvas(image), 40, 0, 0, 90, cv2.BORDER_CONSTANT, value=(0, 0, 0, 255))
        e = digit.explain(predictor, drawing)
        ink, mapped = drawing_saliency(e.prediction.model_input, e.prediction.model_input, drawing)
        both = ((ink > 0.5) & (mapped > 0.5)).sum() / ((ink > 0.5) | (mapped > 0.5)).sum()
        assert both > 0.6, "the 28x28 ink mapped back covers the drawing's ink"


# Where there is no layers export


@pytest.fixture
def copy_of_shipped(tmp_path) -> Path:
    path = tmp_path / "model.keras"
    for suffix in (".keras", ".json", ".tflite", ".layers.tflite"):
        shutil.copy(SHIPPED.with_suffix(suffix), path.with_suffix(suffix))
    return path


def test_a_failed_layers_export_still_gives_a_saliency(copy_of_shipped, small_mnist):
    card = json.loads(copy_of_shipped.with_suffix(".json").read_text())
    card["serving"]["layers"] = {"engine": KERAS, "reason": "the layers export differs from Keras"}
    copy_of_shipped.with_suffix(".json").write_text(json.dumps(card))
    e = explain_prepared(load_predictor(copy_of_shipped), model_input(small_mnist.x_test[0]))
    assert e.layers == [] and "differs from Keras" in e.note and e.saliency.any()


@pytest.mark.slow
def test_an_older_model_gets_its_layers_export_in_a_child_process(copy_of_shipped, small_mnist, small_npz, monkeypatch):
    monkeypatch.setenv("DIGIT_MNIST_NPZ", str(small_npz))  # what the child checks the export on
    card = json.loads(copy_of_shipped.with_suffix(".json").read_text())
    del card["serving"]["layers"]  # saved before layers exports existed
    copy_of_shipped.with_suffix(".json").write_text(json.dumps(card))
    layers_export_path(copy_of_shipped).unlink()
    predictor = load_predictor(copy_of_shipped)
    assert not layers_export_path(copy_of_shipped).exists(), "drawing alone makes nothing"
    e = explain_prepared(predictor, model_input(small_mnist.x_test[0]))
    assert len(e.layers) == 23 and layers_export_path(copy_of_shipped).is_file()
    assert read_serving_record(copy_of_shipped)["layers"]["engine"] == LITERT


@pytest.mark.slow
def test_saving_a_model_writes_and_checks_its_layers_export(tmp_path):
    from digit.models import build_model, prepare_save

    pending = prepare_save(build_model("seed"), tmp_path / "seed.keras")
    record = read_serving_record(pending.path)["layers"]
    assert record["engine"] == LITERT and layers_export_path(pending.path).is_file()
    assert record["kinds"][:2] == ["ColumnL2Normalize", "Conv2D"] and record["first_conv"].startswith("conv2d")
    pending.discard()
    assert not list(tmp_path.iterdir()), "a discarded save leaves no layers export behind"


SERVER_SIDE = """
import sys
import numpy as np
import digit
from digit.explanation import every_view, stage_views, view_picture, heat_picture
mnist = np.load("tests/fixtures/mnist-small.npz")
e = digit.explain(digit.load_predictor(), np.kron(mnist["x_test"][0], np.ones((10, 10), np.uint8)))
pictures = [view_picture(v, e) for v in every_view(e)[1:] + stage_views(e)]
print(len(e.layers), e.prediction.digit, "tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_explaining_with_the_export_never_imports_tensorflow():
    done = subprocess.run([sys.executable, "-c", SERVER_SIDE], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["23", "7", "False", "False"]


# Pictures fit a phone


def test_every_picture_fits_a_phone(predictor, small_mnist):
    e = explain_prepared(predictor, model_input(small_mnist.x_test[0]))
    pictures = [view_picture(view, e) for view in every_view(e)[1:] + stage_views(e)]
    pictures += [heat_picture(e.saliency, e.prediction.model_input), kernels_picture(e.first_kernels)]
    for picture in pictures:
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[1] <= PICTURE_WIDTH < PHONE


def test_feature_maps_show_the_strongest_channel_first_on_one_scale():
    maps = np.zeros((14, 14, 5), np.float32)
    maps[..., 3], maps[..., 1] = 2.0, 1.0
    picture, order = maps_picture(maps)
    assert order[:2] == [3, 1]
    tile = (PICTURE_WIDTH - 4 * 2) // 5
    first, second = picture[tile // 2, tile // 2], picture[tile // 2, tile + 2 + tile // 2]
    assert first.astype(int).sum() > second.astype(int).sum(), "one scale: the weaker channel is darker"


def test_stage_views_follow_the_architecture(predictor, small_mnist):
    e = explain_prepared(predictor, model_input(small_mnist.x_test[0]))
    titles = [view.title for view in stage_views(e)]
    assert titles[0] == "conv2d: Conv2D → batch norm → ReLU" and len(titles) == 6
    assert stage_views(e)[-1].kind == "output" and every_view(e)[-1].kind == "output"


# The CLI


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "digit", *map(str, args)], cwd=PROJECT, capture_output=True, text=True, timeout=120
    )


def test_the_cli_writes_one_sheet(tmp_path, mnist_digits):
    image, sheet = tmp_path / "four.png", tmp_path / "sheet.png"
    cv2.imwrite(str(image), 255 - cv2.resize(mnist_digits[4], (200, 200)))  # dark on light, as on paper
    done = run_cli("explain", image, "--out", sheet)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{image}: 4 (")
    picture = cv2.imread(str(sheet))
    assert picture.shape[1] == 800 and picture.shape[0] > 3000, "the input, the saliency and every layer"


@pytest.mark.parametrize("content", [None, b"not an image"])
def test_the_cli_says_in_one_line_when_it_cannot_read_a_file(tmp_path, content):
    image = tmp_path / "drawing.png"
    if content is not None:
        image.write_bytes(content)
    done = run_cli("explain", image, "--out", tmp_path / "sheet.png")
    assert done.returncode == 1 and not (tmp_path / "sheet.png").exists()
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr


# The page parts, under AppTest

PART_APP = str(PROJECT / "tests" / "inside_network_app.py")


def part_app(image: np.ndarray | None = None, **state) -> AppTest:
    at = AppTest.from_file(PART_APP, default_timeout=60)
    at.session_state["image"] = image
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    """Every caption on the page, the pictures' own included."""
    return " ".join([str(c.value) for c in at.caption] + [i.caption for e in at.get("image") for i in e.proto.imgs])


def test_closed_by_default_it_draws_nothing(small_mnist):
    at = part_app(canvas(small_mnist.x_test[0]))
    assert at.toggle(key="inside_network").value is False
    assert not at.get("image") and not at.caption


def test_open_it_shows_the_saliency_every_convolution_the_units_and_the_output(small_mnist):
    at = part_app(canvas(small_mnist.x_test[0]))
    at.toggle(key="inside_network").set_value(True).run()
    assert not at.exception, at.exception
    captions = texts(at)
    for words in ("What makes it a 7", "A 7 rather than", "on your drawing", "conv2d_3: Conv2D", "strongest channels"):
        assert words in captions, words
    assert "dense: Dense → batch norm → ReLU · 128" in captions and "the ten probabilities" in captions
    shown = len(at.get("image"))
    assert shown == 3 + 4 + 2, "three heat maps, four convolutions, the dense units and the output"
    at.toggle(key="inside_every_layer").set_value(True).run()
    assert len(at.get("image")) > shown, "every layer adds batch norm, pooling and the rest"
    assert "dropout acts only in training" in texts(at)


def test_open_with_a_blank_image_it_says_what_to_do():
    at = part_app(np.zeros((280, 280, 4), np.uint8), inside_network=True)
    assert any("Draw or upload" in str(c.value) for c in at.caption)


def test_the_training_views_show_kernels_and_test_digits(small_npz, monkeypatch):
    monkeypatch.setenv("DIGIT_MNIST_NPZ", str(small_npz))
    at = part_app(None, train_views=True, inside_training=True)
    assert texts(at).count("first layer's 32 kernels") == 2, "before and after"
    assert at.radio(key="inside_training_digit").options == ["a 4", "a 7", "a 9", "a 3"]
    at.radio(key="inside_training_digit").set_value(9).run()
    assert not at.exception and texts(at).count("What makes it a 9") == 2
