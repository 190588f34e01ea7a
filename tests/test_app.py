"""Every page under Streamlit's AppTest: widgets exist, drawings are recognised, training runs and is promoted."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from digit.config import DEFAULT_MODEL_PATH, MAX_EPOCHS, MAX_TRAIN_IMAGES
from digit.registry import Registry

APP_DIR = Path(__file__).resolve().parents[1]
APP = str(APP_DIR / "app.py")
TRAIN, EVALUATE = "app_pages/train.py", "app_pages/evaluate.py"
TIMEOUT = 90
RUN_SECONDS = 300  # a ceiling for a whole short run in its child process, not a wait: CI's machine is shared


@pytest.fixture(scope="session")
def untrained_path(tmp_path_factory) -> Path:
    """The seed network, untrained: its sigmoid outputs are near uniform, so it is never sure."""
    from digit.models import build_model, save_model

    return save_model(build_model("seed"), tmp_path_factory.mktemp("untrained") / "untrained.keras")


@pytest.fixture
def env(monkeypatch, tmp_path, small_npz, untrained_path):
    """An isolated registry, the small MNIST fixture, and the untrained model as the shipped one."""
    monkeypatch.setenv("DIGIT_REGISTRY_DIR", str(tmp_path / "registry"))
    monkeypatch.setenv("DIGIT_MNIST_NPZ", str(small_npz))
    monkeypatch.setenv("DIGIT_MODEL_PATH", str(untrained_path))
    yield tmp_path
    _stop_leftover_run()


def _stop_leftover_run() -> None:
    """A run a failed test left going would hold the server-wide runner for the tests after it."""
    import app_pages.common as common

    runner = common.training_runner()
    if runner.snapshot().active:
        runner.stop(by="test teardown")
        runner.wait(30)


@pytest.fixture
def shipped(env, monkeypatch) -> Path:
    """The real shipped model, for tests that need right answers."""
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip(f"needs the shipped model at {DEFAULT_MODEL_PATH} (python -m digit train --out ...)")
    monkeypatch.setenv("DIGIT_MODEL_PATH", str(DEFAULT_MODEL_PATH))
    return DEFAULT_MODEL_PATH


def app(page: str | None = None, **secrets) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in secrets.items():
        at.secrets[key] = value
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def canvas_value(rgba: np.ndarray) -> dict:
    """What streamlit-drawable-canvas 0.13 puts in session state after a stroke (its paths stand in as a hash)."""
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    path = {"type": "path", "drawn": hash(rgba.tobytes())}
    drawn = any(np.ptp(rgba[..., channel]) > 0 for channel in range(rgba.shape[-1]))  # not one flat colour
    return {"drawing": {"raw": {"objects": [path] if drawn else []}, "data": url}, "backgroundFit": None}


def canvas_key(at: AppTest, name: str = "canvas") -> str:
    """The canvas widget's key (one key for good: Undo and Clear redraw the canvas in place)."""
    return name


def as_canvas(digit28: np.ndarray) -> np.ndarray:
    """An MNIST digit drawn the canvas's way: 280x280 RGBA, white ink on opaque black."""
    gray = cv2.resize(digit28, (280, 280), interpolation=cv2.INTER_LINEAR)
    return np.dstack([gray, gray, gray, np.full_like(gray, 255)])


def draw(at: AppTest, rgba: np.ndarray) -> AppTest:
    at.session_state[canvas_key(at)] = canvas_value(rgba)
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def sidebar_text(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.sidebar.markdown, *at.sidebar.caption])


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


# Draw


def test_draw_page_has_its_widgets_and_a_blank_canvas_shows_a_dash(env):
    at = app()
    assert [t.value for t in at.title] == ["Draw a digit"]
    assert at.get("bidi_component")[0].key == canvas_key(at)
    assert at.button(key="canvas-undo").disabled and at.button(key="canvas-clear").disabled, "nothing to undo yet"
    assert at.slider(key="pen_width").value == 22
    assert at.radio(key="input_source").options == ["Draw", "Upload"]
    assert metric(at, "Prediction") == "–"
    assert any("Draw a digit" in c.value for c in at.caption)
    assert "untrained" in sidebar_text(at)


@pytest.mark.parametrize("index", range(6))
def test_a_drawing_in_the_canvas_is_recognised(shipped, small_mnist, index):
    digit = int(small_mnist.y_test[index])
    at = draw(app(), as_canvas(small_mnist.x_test[index]))
    assert metric(at, "Prediction") == str(digit)
    assert metric(at, "Confidence").endswith("%")
    assert_ten_bars_with_the_answer_highlighted(at, digit)
    assert at.get("image"), "the 28x28 model input is shown"


@pytest.mark.parametrize("button", ["canvas-undo", "canvas-clear"])
def test_a_drawing_taken_back_stays_taken_back_in_whatever_order_the_runs_end(shipped, small_mnist, button):
    """After Undo or Clear, a run still carrying the old drawing may end after the redrawn canvas's report."""
    drawing = as_canvas(small_mnist.x_test[0])
    at = draw(app(), drawing)
    assert metric(at, "Prediction") == str(small_mnist.y_test[0])
    at.button(key=button).click().run()  # this run still holds the drawing: taken back all the same
    assert metric(at, "Prediction") == "–"
    draw(at, np.zeros_like(drawing))  # the redrawn canvas reports: empty
    draw(at, drawing)  # ... and then an interrupted run with the old value ends (Streamlit's fast reruns)
    assert metric(at, "Prediction") == "–", "the drawing taken back came back"
    draw(at, as_canvas(small_mnist.x_test[1]))  # a new drawing is kept
    assert metric(at, "Prediction") == str(small_mnist.y_test[1])


def test_the_preprocessing_steps_show_on_demand(shipped, small_mnist):
    at = draw(app(), as_canvas(small_mnist.x_test[0]))
    assert len(at.get("image")) == 1, "only the model input until asked"
    at.toggle(key="show_steps").set_value(True).run()
    assert len(at.get("image")) == 5, "the model input and the four steps"
    at.switch_page("app_pages/train.py").run()
    at.switch_page("app_pages/draw.py").run()
    draw(at, as_canvas(small_mnist.x_test[1]))
    assert at.toggle(key="show_steps").value, "the choice outlives a visit to another page"
    assert len(at.get("image")) == 5


def assert_ten_bars_with_the_answer_highlighted(at, digit: int) -> None:
    (chart,) = [element.proto.body for element in at.get("html") if "digit-bars" in element.proto.body]
    bars = re.findall(r'class="digit-bar (\w+)" title="(\d): ([\d.]+)%"', chart)
    assert [int(d) for _, d, _ in bars] == list(range(10)), "one bar per digit, in order"
    assert [d for kind, d, _ in bars if kind == "answer"] == [str(digit)]
    assert sum(float(p) for _, _, p in bars) == pytest.approx(100, abs=0.6), "the probabilities add up to 100%"


SERVER_WITHOUT_TENSORFLOW = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.test_app import every_page_visited
pages = every_page_visited()
print(pages, "tensorflow" in sys.modules, "keras" in sys.modules, sorted(m for m in sys.modules if m.startswith("tensorflow"))[:3])
"""


def every_page_visited() -> int:
    """Visit every page as a visitor would: draw, upload, correct, list and choose models, evaluate."""
    mnist = np.load(DEFAULT_MODEL_PATH.parents[1] / "tests" / "fixtures" / "mnist-small.npz")
    at = draw(app(), as_canvas(mnist["x_test"][0]))
    at.button(key="feedback-3").click().run()
    at.radio(key="input_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("digit.png", png(mnist["x_test"][1]), "image/png")).run()
    visited = 1
    for page in (TRAIN, EVALUATE, "app_pages/corrections.py", "app_pages/draw.py"):
        at.switch_page(page).run()
        assert not at.exception, at.exception
        visited += 1
    at.switch_page(TRAIN).run()
    at.selectbox(key="saved_choice").set_value("cnn-copy").run()
    at.button(key="use_saved_model").click().run()
    assert not at.exception, at.exception
    assert "cnn-copy" in sidebar_text(at)
    at.switch_page("app_pages/draw.py").run()
    draw(at, as_canvas(mnist["x_test"][2]))
    return visited


def test_the_server_never_imports_tensorflow_or_keras(env, shipped):
    import shutil

    (env / "registry").mkdir()
    for suffix in (".keras", ".json", ".tflite"):  # a second saved model, with its export, to choose
        shutil.copy(DEFAULT_MODEL_PATH.with_suffix(suffix), env / "registry" / f"cnn-copy{suffix}")
    # A fresh interpreter, as a server is: this test process may have imported TensorFlow already.
    done = subprocess.run(
        [sys.executable, "-c", SERVER_WITHOUT_TENSORFLOW, str(APP_DIR)],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pages, tensorflow, keras, loaded = done.stdout.split(maxsplit=3)
    assert pages == "5"
    assert (tensorflow, keras) == ("False", "False"), f"the server imported {loaded}"


SERVER_WITHOUT_LITERT = """
import sys
sys.modules["ai_edge_litert"] = None  # as where the package has no wheel: importing it fails
sys.path.insert(0, sys.argv[1])
import numpy as np
from tests.test_app import app, as_canvas, draw, metric
mnist = np.load("tests/fixtures/mnist-small.npz")
at = draw(app(), as_canvas(mnist["x_test"][0]))
print(metric(at, "Prediction"), int(mnist["y_test"][0]), "keras" in sys.modules)
print([c.value for c in at.sidebar.caption if c.value.startswith("Answering")][0])
"""


def test_without_litert_the_app_serves_through_keras_and_says_so(env, shipped):
    done = subprocess.run(
        [sys.executable, "-c", SERVER_WITHOUT_LITERT, str(APP_DIR)],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer, caption = done.stdout.strip().splitlines()[-2:]
    predicted, truth, keras_loaded = answer.split()
    assert predicted == truth and keras_loaded == "True"
    assert caption == "Answering with Keras (ai-edge-litert is not installed here)"


def test_a_blank_drawing_shows_a_dash_not_a_guess(env):
    black = np.zeros((280, 280, 4), np.uint8)
    black[..., 3] = 255
    at = draw(app(), black)
    assert metric(at, "Prediction") == "–"
    assert not at.warning


def test_low_confidence_says_not_sure(env, small_mnist):
    at = draw(app(), as_canvas(small_mnist.x_test[0]))
    [warning] = at.warning
    assert warning.value.startswith("Not sure: ") and " or " in warning.value and "Number" in warning.value


def test_two_digits_on_the_single_canvas_point_to_number_mode_and_save_nothing(env):
    from tests.test_doubt import pair

    at = draw(app(), pair("1", "2"))
    [warning] = at.warning
    assert warning.value.startswith("This looks like several digits") and "Number" in warning.value
    assert not [b for b in at.button if b.label.startswith("Right, it is")], "no correction to save for two digits"


def test_an_uploaded_image_of_either_polarity_is_recognised(shipped, small_mnist):
    at = app()
    at.radio(key="input_source").set_value("Upload").run()
    dark_on_light = 255 - cv2.resize(small_mnist.x_test[1], (200, 200))
    at.file_uploader(key="upload").set_value(("digit.png", png(dark_on_light), "image/png")).run()
    assert not at.exception and not at.error
    assert metric(at, "Prediction") == str(small_mnist.y_test[1])


def test_a_bad_upload_gets_a_clear_message_and_the_next_one_works(env, small_mnist):
    at = app()
    at.radio(key="input_source").set_value("Upload").run()
    assert at.file_uploader(key="upload").allowed_type == [".png", ".jpg", ".jpeg", ".bmp", ".webp"]
    at.file_uploader(key="upload").set_value(("notes.png", b'{"not": "an image"}', "image/png")).run()
    assert not at.exception
    [error] = at.error
    assert error.value == "Cannot read notes.png: it is not a PNG, JPEG, BMP or WebP image."
    assert "GIF" not in error.value, "the uploader refuses GIFs: the message does not offer them"
    assert metric(at, "Prediction") == "–"
    at.file_uploader(key="upload").set_value(("seven.png", png(small_mnist.x_test[0]), "image/png")).run()
    assert not at.error and metric(at, "Prediction") != "–"
    assert "seven.png" in [str(i.proto.imgs[0].caption) for i in at.get("image")], "the uploaded picture is shown"
    huge = png(np.random.default_rng(0).integers(0, 255, (2600, 2600), dtype=np.uint8))  # ~6.8 MB of noise
    at.file_uploader(key="upload").set_value(
        ("huge.png", huge + b"\0" * (11 * 1024 * 1024 - len(huge)), "image/png")
    ).run()
    [error] = at.error
    assert error.value.startswith("huge.png is 11.5 MB; the limit is 10 MB")
    assert metric(at, "Prediction") == "–", "the previous file's answer is gone"


def test_a_broken_served_model_falls_back_to_the_shipped_one(env, untrained_path):
    registry = Registry()
    registry.root.mkdir(parents=True)
    broken = registry.root / "cnn-broken.keras"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("config.json", "{}")
    registry.promote("cnn-broken")
    at = app()
    assert "untrained" in sidebar_text(at)
    assert any("could not be loaded" in w.value for w in at.sidebar.warning)


def test_no_model_at_all_is_a_clear_error_not_a_crash(env, monkeypatch):
    monkeypatch.setenv("DIGIT_MODEL_PATH", str(env / "missing.keras"))
    at = app()
    assert any("No model can be loaded" in e.value for e in at.error)
    at.switch_page(EVALUATE).run()
    assert not at.exception


# Train


def test_train_page_has_bounded_settings_and_start_stop(env):
    at = app(TRAIN)
    assert at.selectbox(key="cfg_arch").options == [
        "cnn · 469k weights",
        "seed · 82k weights",
    ]
    assert any("9,000 images to train on, 1,000 held out" in c.value for c in at.sidebar.caption)
    epochs, images = at.number_input(key="cfg_epochs"), at.number_input(key="cfg_limit")
    assert (epochs.value, epochs.max) == (2, MAX_EPOCHS)
    assert (images.value, images.max) == (10_000, MAX_TRAIN_IMAGES)
    for key in ("cfg_batch", "cfg_lr"):
        assert at.select_slider(key=key).value
    assert at.slider(key="cfg_val").value == 0.1 and at.toggle(key="cfg_augment").value
    assert not at.button(key="train_start").disabled and at.button(key="train_stop").disabled
    assert not [t for t in at.text_input if t.key == "promote_pw"], "no password field when none is configured"
    at.selectbox(key="cfg_arch").set_value("seed").run()
    assert at.select_slider(key="cfg_batch").value == 32 and not at.toggle(key="cfg_augment").value


def short_run(at: AppTest):
    """Press Start with a tiny configuration and wait for the run to end."""
    from app_pages.common import training_runner

    at.number_input(key="cfg_epochs").set_value(1)
    at.number_input(key="cfg_limit").set_value(300)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    snapshot = training_runner().wait(RUN_SECONDS)
    assert not snapshot.active, f"the run had not ended after {RUN_SECONDS} s: {snapshot.state}"
    at.run()
    return snapshot


def test_a_short_run_updates_history_and_can_be_promoted(env, monkeypatch):
    monkeypatch.setenv("DIGIT_LOCAL", "1")  # the app on its user's own computer: their choice is everyone's
    at = app(TRAIN)
    snapshot = short_run(at)
    assert snapshot.state == "completed", snapshot.message
    assert snapshot.batches and snapshot.epochs, "history was recorded"
    assert any(snapshot.model_name in s.value for s in at.success)
    assert metric(at, "Test accuracy").endswith("%")
    assert Registry().served().shipped, "not served before it is promoted"

    at.button(key="use_new_model").click().run()
    assert Registry().served().name == snapshot.model_name
    assert snapshot.model_name in sidebar_text(at)
    assert snapshot.model_name in at.dataframe[0].value["model"].tolist()
    at.switch_page("app_pages/draw.py").run()
    assert snapshot.model_name in sidebar_text(at), "Draw uses the new model"
    at.switch_page(EVALUATE).run()
    assert any(snapshot.model_name in m.value for m in at.markdown), "Evaluate uses the new model"


def test_on_a_public_server_without_a_password_use_is_for_your_session_only(env, monkeypatch):
    monkeypatch.delenv("DIGIT_LOCAL", raising=False)
    at = app(TRAIN)
    name = short_run(at).model_name
    assert any("(by you) finished" in s.value for s in at.success)
    at.button(key="use_new_model").click().run()
    assert Registry().served().shipped, "one visitor's click changes nothing for the others"
    assert "(your session only)" in sidebar_text(at) and name in sidebar_text(at)
    assert any("public server" in s.value for s in at.success)
    assert at.button(key="use_new_model").disabled and at.button(key="use_new_model").label == "In use"
    other = app(TRAIN)
    assert any("(by another visitor)" in s.value for s in other.success)
    assert other.button(key="use_new_model").disabled, "only the run's owner may act on its result"
    assert "(your session only)" not in sidebar_text(other)


def test_with_a_password_promotion_is_for_everyone_only_with_it(env, monkeypatch):
    monkeypatch.delenv("DIGIT_LOCAL", raising=False)
    at = app(TRAIN, promote_password="open sesame")
    name = short_run(at).model_name
    at.button(key="use_new_model").click().run()
    assert Registry().served().shipped, "no password: nothing changes for everyone"
    assert "(your session only)" in sidebar_text(at) and name in sidebar_text(at)
    at.text_input(key="promote_pw").input("wrong").run()
    at.button(key="use_new_model").click().run()
    assert Registry().served().shipped
    assert any("wrong password" in s.value for s in at.success)
    at.text_input(key="promote_pw").input("open sesame").run()
    at.button(key="use_new_model").click().run()
    assert Registry().served().name == name
    assert "(your session only)" not in sidebar_text(at)


def test_a_second_visitor_sees_the_run_and_cannot_start_another(env):
    from app_pages.common import training_runner

    first, second = app(TRAIN), app(TRAIN)
    first.number_input(key="cfg_epochs").set_value(20)
    first.number_input(key="cfg_limit").set_value(1000)
    first.button(key="train_start").click().run()
    try:
        second.button(key="train_start").click().run()  # pressed on a page loaded before the run began
        assert any("already in progress" in w.value for w in second.warning)
        assert second.button(key="train_start").disabled
        assert any("started by another visitor" in c.value for c in second.caption)
        assert second.get("progress")
    finally:
        training_runner().stop()
        snapshot = training_runner().wait(TIMEOUT)
    assert snapshot.state == "stopped"
    second.run()
    assert any("nothing was saved" in i.value for i in second.info)
    assert Registry().entries() == [] and Registry().served().shipped


def test_training_without_mnist_says_what_to_do(env, monkeypatch):
    monkeypatch.setenv("DIGIT_MNIST_NPZ", str(env / "missing.npz"))
    at = app(TRAIN)
    short_run(at)
    [error] = at.error
    assert "cannot load MNIST" in error.value and "DIGIT_MNIST_NPZ" in error.value


# Evaluate


def test_evaluate_page_scores_the_model_in_use(env, small_mnist):
    at = app(EVALUATE)
    assert metric(at, "Test accuracy").endswith("%")
    assert float(metric(at, "Test loss")) > 0
    report = at.dataframe[0].value
    assert list(report.columns) == ["digit", "precision", "recall", "F1", "support"]
    assert report["support"].sum() == len(small_mnist.y_test)
    assert len(at.get("image")) >= 2, "confusion matrix and mistakes gallery"
    assert any("untrained" in m.value for m in at.markdown)


def test_evaluate_without_mnist_says_so(env, monkeypatch):
    monkeypatch.setenv("DIGIT_MNIST_NPZ", str(env / "missing.npz"))
    at = app(EVALUATE)
    [error] = at.error
    assert "MNIST is not reachable" in error.value and "DIGIT_MNIST_NPZ" in error.value
