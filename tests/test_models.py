"""Architectures, and loading and saving models safely."""

from __future__ import annotations

import zipfile

import keras
import numpy as np
import pytest

from digit.config import ARCHITECTURES
from digit.models import (
    INPUT_SHAPE,
    ModelError,
    build_model,
    card_path,
    load_model,
    parameter_count,
    read_card,
    save_model,
)


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple:
    """A fresh cnn saved with a card, and the path."""
    model = build_model("cnn")
    path = save_model(model, tmp_path_factory.mktemp("saved") / "digit.keras", {"name": "digit", "epochs": 1})
    return model, path


def assert_one_line(error: pytest.ExceptionInfo, *words: str) -> None:
    message = str(error.value)
    assert message and "\n" not in message and len(message) < 400
    for word in words:
        assert word in message


# --- architectures ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["cnn", "seed"])
def test_shapes(arch, batch):
    model = build_model(arch)
    assert tuple(model.input_shape[1:]) == INPUT_SHAPE == (28, 28, 1)
    assert tuple(model.output_shape[1:]) == (10,)
    outputs = np.asarray(model(batch, training=False))
    assert outputs.shape == (4, 10)
    assert ((outputs >= 0) & (outputs <= 1)).all()


def test_seed_is_the_tutorial_network():
    model = build_model("seed")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(c.filters, c.kernel_size, c.activation.__name__) for c in convs] == [(64, (3, 3), "relu")] * 3
    assert [p.pool_size for p in pools] == [(2, 2)] * 3
    assert [(d.units, d.activation.__name__) for d in dense] == [
        (64, "relu"),
        (32, "relu"),
        (32, "relu"),
        (10, "sigmoid"),
    ]
    assert any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)


def test_seed_outputs_are_sigmoids_not_a_distribution(batch):
    outputs = np.asarray(build_model("seed")(batch, training=False))
    assert not np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3)


def test_cnn_has_a_softmax_output(batch):
    model = build_model("cnn")
    assert model.layers[-1].activation.__name__ == "softmax"
    np.testing.assert_allclose(np.asarray(model(batch, training=False)).sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet")


def test_fresh_models_differ_and_count_their_parameters():
    seed, cnn = build_model("seed"), build_model("cnn")
    assert parameter_count(seed) == seed.count_params() > 10_000
    assert parameter_count(cnn) == cnn.count_params() > 10_000


# --- save and load ----------------------------------------------------------------------------


def test_round_trip_gives_the_same_predictions(saved, batch):
    model, path = saved
    loaded = load_model(path)
    np.testing.assert_allclose(
        np.asarray(loaded(batch, training=False)), np.asarray(model(batch, training=False)), atol=1e-6
    )
    assert parameter_count(loaded) == parameter_count(model)


def test_round_trip_of_the_seed_keeps_its_normalisation_layer(tmp_path, batch):
    model = build_model("seed")
    loaded = load_model(save_model(model, tmp_path / "seed.keras"))
    np.testing.assert_allclose(
        np.asarray(loaded(batch, training=False)), np.asarray(model(batch, training=False)), atol=1e-6
    )


def test_card_is_written_beside_the_model(saved):
    _, path = saved
    assert card_path(path) == path.with_suffix(".json")
    assert card_path(path).is_file()
    card = read_card(path)
    assert {k: v for k, v in card.items() if k != "serving"} == {"name": "digit", "epochs": 1}
    assert card["serving"]["engine"] == "LiteRT" and card["serving"]["max_difference"] <= 1e-5


def test_no_card_reads_as_empty(tmp_path):
    assert read_card(tmp_path / "none.keras") == {}
    (tmp_path / "broken.json").write_text("{not json")
    assert read_card(tmp_path / "broken.keras") == {}


def test_saved_file_holds_no_optimizer_state(tmp_path):
    model = build_model("seed")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(np.zeros((2, 28, 28, 1), np.float32), np.array([0, 1]))
    plain = save_model(build_model("seed"), tmp_path / "plain.keras")
    trained = save_model(model, tmp_path / "trained.keras")
    assert trained.stat().st_size < 1.2 * plain.stat().st_size  # Adam's state would make it ~3x
    load_model(trained)


# --- refusals ---------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ModelError) as error:
        load_model(tmp_path / "missing.keras")
    assert_one_line(error, "missing.keras")


def test_directory_is_not_a_model(tmp_path):
    (tmp_path / "dir.keras").mkdir()
    with pytest.raises(ModelError):
        load_model(tmp_path / "dir.keras")


@pytest.mark.parametrize("keep", [0.5, 0.95, 100])
def test_truncated_file(saved, tmp_path, keep):
    data = saved[1].read_bytes()
    path = tmp_path / "truncated.keras"
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(ModelError) as error:
        load_model(path)
    assert_one_line(error, "truncated.keras")


def test_corrupt_weights_inside_a_valid_zip(saved, tmp_path):
    path = tmp_path / "corrupt.keras"
    with zipfile.ZipFile(saved[1]) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data[: len(data) // 3] if item.filename.endswith(".h5") else data)
    with pytest.raises(ModelError) as error:
        load_model(path)
    assert_one_line(error, "corrupt.keras")


@pytest.mark.parametrize(
    "content",
    [np.random.default_rng(0).bytes(5000), b"I am not a model\n", b""],
    ids=["random bytes", "text", "empty"],
)
def test_not_a_model_file(tmp_path, content):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(ModelError) as error:
        load_model(path)
    assert_one_line(error, "model.keras")


@pytest.mark.parametrize(
    "members",
    [{"readme.txt": "hello"}, {"config.json": "{}", "metadata.json": "{}"}, {"config.json": "[1, 2]"}],
    ids=["a zip of text", "empty config", "config is a list"],
)
def test_a_zip_that_is_not_a_model(tmp_path, members):
    path = tmp_path / "archive.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    with pytest.raises(ModelError) as error:
        load_model(path)
    assert_one_line(error, "archive.keras")


@pytest.mark.parametrize(
    "input_shape, units",
    [((32, 32, 1), 10), ((28, 28), 10), ((28, 28, 3), 10), ((28, 28, 1), 5), ((28, 28, 1), 100)],
)
def test_wrong_input_or_output_shape(tmp_path, input_shape, units):
    model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(units)])
    path = tmp_path / "wrong.keras"
    model.save(path)
    with pytest.raises(ModelError) as error:
        load_model(path)
    assert_one_line(error, "wrong.keras", "(28, 28, 1)")


def test_lambda_layer_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"

    def touch(tensor):
        marker.write_text("arbitrary code ran")
        return tensor

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Lambda(lambda t: touch(t)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    path = tmp_path / "lambda.keras"
    model.save(path)
    marker.unlink(missing_ok=True)  # building the model ran it once; loading must not
    with pytest.raises(ModelError) as error:
        load_model(path)
    assert_one_line(error, "lambda.keras", "Lambda")
    assert not marker.exists()


# --- atomic save ------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()], ids=["OSError", "interrupt"])
def test_failed_save_leaves_the_old_file_and_no_temp_files(tmp_path, monkeypatch, batch, failure):
    old_model = build_model("cnn")
    path = save_model(old_model, tmp_path / "served.keras", {"version": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def half_written(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as file:
            file.write(b"PK\x03\x04 half a model")
        raise failure

    monkeypatch.setattr(keras.Model, "save", half_written)
    with pytest.raises(type(failure)):
        save_model(build_model("cnn"), path, {"version": 2})
    monkeypatch.undo()

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing new, nothing changed
    np.testing.assert_allclose(
        np.asarray(load_model(path)(batch, training=False)), np.asarray(old_model(batch, training=False)), atol=1e-6
    )
    assert read_card(path)["version"] == 1


def test_save_replaces_an_existing_model(tmp_path, batch):
    first, second = build_model("cnn"), build_model("seed")
    path = save_model(first, tmp_path / "m.keras", {"v": 1})
    save_model(second, path, {"v": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.keras", "m.layers.tflite", "m.tflite"]
    assert read_card(path)["v"] == 2
    np.testing.assert_allclose(
        np.asarray(load_model(path)(batch, training=False)), np.asarray(second(batch, training=False)), atol=1e-6
    )


def test_save_creates_missing_folders(tmp_path):
    path = save_model(build_model("seed"), tmp_path / "a" / "b" / "m.keras")
    assert path.is_file()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_architecture_labels_count_the_real_weights(arch):
    from digit.config import ARCHITECTURE_INFO

    assert ARCHITECTURE_INFO[arch][1] == build_model(arch).count_params()
