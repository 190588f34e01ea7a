"""The training process's side (digit/worker.py), in this process: its events, its failures, its saving."""

from __future__ import annotations

import io
import json

import keras
import pytest

from digit import worker
from digit.config import TrainConfig
from digit.registry import Registry

QUICK = TrainConfig(epochs=1, limit=200, batch_size=32, validation_split=0.2)


def session() -> tuple[worker.Session, io.StringIO]:
    stream = io.StringIO()
    return worker.Session(worker.Events(stream), None, io.StringIO()), stream


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(tmp_path / "registry")


def test_a_run_reports_every_phase_and_saves_to_the_registry(registry, small_npz):
    run, stream = session()
    assert worker.run(worker.TrainJob(QUICK, small_npz, registry=registry.root), run) == 0
    seen = events(stream)
    kinds = [e["event"] for e in seen]
    assert kinds[0] == "phase" and kinds[-1] == "done" and "begin" in kinds and "batch" in kinds
    phases = [e["phase"] for e in seen if e["event"] == "phase"]
    assert phases == ["loading data", "running", "validating", "scoring", "saving"]
    [epoch] = [e for e in seen if e["event"] == "epoch"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= epoch.keys()
    done = seen[-1]
    assert done["status"] == "completed" and registry.get(done["model_name"]).test_accuracy == done["test_accuracy"]
    assert registry.get(done["model_name"]).card["source"] == "Train page"


def test_a_run_that_raises_says_so_in_one_failed_event(registry, small_npz, monkeypatch):
    from digit import training

    real_train = training.train

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise RuntimeError("disk on fire")

    monkeypatch.setattr(training, "train", lambda c, d, callbacks, verbose: real_train(c, d, [*callbacks, Crash()]))
    run, stream = session()
    assert worker.run(worker.TrainJob(QUICK, small_npz, registry=registry.root), run) == 1
    failed = events(stream)[-1]
    assert (
        failed["event"] == "failed" and "disk on fire" in failed["message"] and "nothing was saved" in failed["message"]
    )
    assert registry.entries() == []


def test_a_diverged_run_says_why_and_saves_nothing(registry, small_npz, monkeypatch):
    from digit import training
    from digit.models import build_model

    def diverging(config, data, callbacks, verbose):
        return training.TrainResult(build_model(config.arch), config, training.DIVERGED, {"loss": [float("nan")]})

    monkeypatch.setattr(training, "train", diverging)
    run, stream = session()
    assert worker.run(worker.TrainJob(QUICK, small_npz, registry=registry.root), run) == 1
    done = events(stream)[-1]
    assert done["status"] == "diverged" and "NaN" in done["message"] and "lower learning rate" in done["message"]
    assert registry.entries() == []


def test_unreachable_mnist_fails_with_a_clear_message(registry, tmp_path):
    run, stream = session()
    assert worker.run(worker.TrainJob(QUICK, tmp_path / "missing.npz", registry=registry.root), run) == 1
    failed = events(stream)[-1]
    assert failed["event"] == "failed" and failed["message"].startswith("cannot load MNIST")


def test_a_stop_while_saving_leaves_nothing_in_the_registry(registry):
    from digit.models import build_model

    control = worker.Control()
    control.stop_requested.set()  # Stop pressed while the model was being exported
    entry = worker.save_to_registry(registry, build_model("seed"), {"config": {"arch": "seed"}}, None, control)
    assert entry is None and registry.entries() == []
    assert not list(registry.root.glob("*")), "the prepared files are removed too"


def test_a_stop_after_the_commit_undoes_it(registry):
    from digit.models import build_model

    control = worker.Control()
    entry = worker.save_to_registry(registry, build_model("seed"), {"config": {"arch": "seed"}}, None, control)
    assert registry.entries() == [entry]
    control.undo()  # what a Stop arriving now does, before the process exits
    assert registry.entries() == []
