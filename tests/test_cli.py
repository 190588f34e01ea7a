"""The command line, run as a user would: `python -m digit train|evaluate|predict` in subprocesses."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from digit.config import DEFAULT_MODEL_PATH

PROJECT = Path(__file__).resolve().parents[1]
FIXTURE_NPZ = PROJECT / "tests" / "fixtures" / "mnist-small.npz"


def digit_cli(*args: str | Path, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    env.pop("DIGIT_MNIST_NPZ", None)  # every command here names its data
    command = [sys.executable, "-m", "digit", *map(str, args)]
    return subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout)


def assert_no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr


def stamp(path: Path) -> tuple | None:
    return (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None


@pytest.fixture(scope="session")
def trained(tmp_path_factory, worker_id) -> tuple[dict, Path]:
    """`train --limit 300 --epochs 1 --ema` on the fixture, run once for all xdist workers; its output and model."""
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    out, record = shared / "cli-model" / "tiny.keras", shared / "cli-train.json"
    with open(shared / "cli-train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker trains; the other waits and reads the record
        if not record.exists():
            before = stamp(DEFAULT_MODEL_PATH)
            train = ("train", "--limit", 300, "--epochs", 1, "--ema", "--data", FIXTURE_NPZ, "--out", out)
            done = digit_cli(*train, env={"PYTHONPROFILEIMPORTTIME": "1"})  # every import, on stderr
            result = {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
            result["shipped_before"], result["shipped_after"] = before, stamp(DEFAULT_MODEL_PATH)
            record.write_text(json.dumps(result))
    return json.loads(record.read_text()), out


# --- train ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["--epochs", "-1"], "epochs"),
        (["--epochs", "0"], "epochs"),
        (["--epochs", "101"], "epochs"),
        (["--batch-size", "0"], "batch size"),
        (["--epochs", "three"], "invalid int value"),
        (["--learning-rate", "fast"], "invalid float value"),
        (["--learning-rate", "0"], "learning rate"),
        (["--learning-rate", "nan"], "learning rate"),
        (["--arch", "resnet"], "invalid choice"),
        (["--limit", "0"], "training-set size"),
        (["--limit", "-300"], "training-set size"),
        (["--validation-split", "0.9"], "validation split"),
        (["--seed", "-1"], "seed"),
        (["--out", "model.h5"], ".keras"),
        (["--pen-redraw", "2"], "redrawn with a pen"),
        (["--init", "no-such-model.keras"], "no model file"),
    ],
)
def test_train_refuses_invalid_values(args, words):
    done = digit_cli("train", *args, "--data", FIXTURE_NPZ, timeout=60)
    assert done.returncode == 2
    assert words in done.stderr
    assert "usage:" in done.stderr
    assert_no_traceback(done)


def test_train_writes_model_and_card(trained):
    result, out = trained
    assert result["returncode"] == 0, result["stderr"]
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert f"saved {out}" in result["stdout"]
    assert "test accuracy" in result["stdout"]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["config"]["epochs"] == 1 and card["config"]["limit"] == 300 and card["config"]["ema"] is True
    assert card["train_images"] == 300 and card["epochs_done"] == 1
    assert 0.0 <= card["test_accuracy"] <= 1.0 and card["parameters"] > 0
    assert card["command"].startswith("python -m digit train")
    assert card["serving"]["engine"] == "LiteRT" and card["serving"]["checked_on"] == "500 MNIST test images"
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "tiny.json",
        "tiny.keras",
        "tiny.layers.tflite",
        "tiny.tflite",
    ]  # no temp files


def test_training_goes_without_pandas_and_matplotlib(trained):
    """Keras imports them wherever they are installed; a training process leaves them out (digit/__main__.py)."""
    result, _ = trained
    log = [line.split("|") for line in result["stderr"].splitlines() if line.startswith("import time:")]
    microseconds = {name.strip(): int(total) for _, total, name in log if total.strip().isdigit()}
    assert microseconds.get("keras", 0) > 100_000  # the log of imports is there
    # A refused import is logged too, in microseconds; pandas alone takes a good part of a second to load.
    loaded = {name for name in microseconds if name.split(".")[0] in ("pandas", "matplotlib", "scipy")}
    assert all(microseconds[name] < 1_000 for name in loaded), {name: microseconds[name] for name in loaded}


def test_train_never_touches_the_shipped_model(trained):
    result, _ = trained
    assert result["shipped_after"] == result["shipped_before"]


# --- evaluate ---------------------------------------------------------------------------------


def test_evaluate_json(trained):
    _, model = trained
    done = digit_cli("evaluate", "--model", model, "--data", FIXTURE_NPZ, "--json")
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["n"] == 500
    assert 0.0 <= last["accuracy"] <= 1.0 and np.isfinite(last["loss"])
    assert np.array(last["confusion_matrix"]).sum() == 500
    assert "precision" in done.stdout and "true\\pred" in done.stdout
    assert_no_traceback(done)


# --- predict ----------------------------------------------------------------------------------


def save(path: Path, array: np.ndarray, **options) -> Path:
    Image.fromarray(array).save(path, **options)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, mnist_digits) -> dict[str, Path]:
    """Good and broken image files: name -> path."""
    folder = tmp_path_factory.mktemp("images")
    seven = cv2.resize(mnist_digits[7], (280, 280), interpolation=cv2.INTER_LINEAR)
    two = cv2.resize(mnist_digits[2], (1200, 900), interpolation=cv2.INTER_LINEAR)
    frames = [Image.fromarray(255 - cv2.resize(mnist_digits[d], (140, 140))) for d in (3, 8)]
    gif = folder / "animated.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = cv2.resize(mnist_digits[5], (280, 280))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image\n")
    (folder / "cut.png").write_bytes(cv2.imencode(".png", seven)[1].tobytes()[:100])
    return {
        "white-on-black.png": save(folder / "white-on-black.png", seven),
        "dark-on-light.jpg": save(
            folder / "dark-on-light.jpg", np.repeat((255 - two)[..., None], 3, axis=2), quality=95
        ),
        "animated.gif": gif,
        "canvas.png": save(folder / "canvas.png", rgba),
        "tiny.bmp": save(folder / "tiny.bmp", mnist_digits[4]),
        "drawing.webp": save(folder / "drawing.webp", 255 - seven, lossless=True),
        "blank.png": save(folder / "blank.png", np.zeros((50, 50), np.uint8)),
        "empty.png": folder / "empty.png",
        "notes.png": folder / "notes.png",
        "cut.png": folder / "cut.png",
        "missing.png": folder / "missing.png",
    }


GOOD = ["white-on-black.png", "dark-on-light.jpg", "animated.gif", "canvas.png", "tiny.bmp", "drawing.webp"]
BAD = ["empty.png", "notes.png", "cut.png", "missing.png"]


def predict_json(*args: str | Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    done = digit_cli("predict", "--json", *args)
    assert_no_traceback(done)
    return done, [json.loads(line) for line in done.stdout.strip().splitlines()]


def test_predict_good_and_broken_files_mixed(trained, files):
    order = ["white-on-black.png", "empty.png", "dark-on-light.jpg", "notes.png", "animated.gif"]
    order += ["cut.png", "canvas.png", "missing.png", "tiny.bmp", "drawing.webp", "blank.png"]
    done, lines = predict_json("--model", trained[1], *(files[name] for name in order))
    assert done.returncode == 1
    assert [line["file"] for line in lines] == [str(files[name]) for name in order]  # every file, in order
    for name, line in zip(order, lines, strict=True):
        if name in BAD:
            assert set(line) == {"file", "error"}, name
            assert line["error"] and "\n" not in line["error"], name
        else:
            assert set(line) == {"file", "digit", "probabilities"}, name
            assert len(line["probabilities"]) == 10 and sum(line["probabilities"]) == pytest.approx(1.0, abs=1e-4)
            assert line["digit"] is None if name == "blank.png" else line["digit"] in range(10), name


def test_predict_all_good_exits_0_in_plain_text(trained, files):
    names = [*GOOD, "blank.png"]
    done = digit_cli("predict", "--model", trained[1], *(files[name] for name in names))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(names)
    for name, line in zip(names, lines, strict=True):
        assert line.startswith(f"{files[name]}: ")
        assert line.endswith("blank (no digit)") if name == "blank.png" else line.endswith("%)")
    assert_no_traceback(done)


@pytest.mark.parametrize("command, problem", [("predict", "missing"), ("evaluate", "corrupt")])
def test_bad_model_is_a_clear_error(tmp_path, files, command, problem):
    model = tmp_path / "model.keras"
    if problem == "corrupt":
        model.write_bytes(b"PK\x03\x04 not really a zip")
    args = [files["white-on-black.png"]] if command == "predict" else ["--data", FIXTURE_NPZ]
    done = digit_cli(command, "--model", model, *args)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]  # after TensorFlow's start-up chatter
    assert last.startswith("error: ") and "model.keras" in last
    assert done.stdout.strip() == ""
    assert_no_traceback(done)


def test_shipped_model_predicts_the_right_digits(shipped_model, files):
    done, lines = predict_json(*(files[name] for name in GOOD))
    assert done.returncode == 0, done.stderr
    expected = {"white-on-black.png": 7, "dark-on-light.jpg": 2, "animated.gif": 3}
    expected |= {"canvas.png": 5, "tiny.bmp": 4, "drawing.webp": 7}
    assert {Path(line["file"]).name: line["digit"] for line in lines} == expected
