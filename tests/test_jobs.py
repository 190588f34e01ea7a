"""The background training runner: live progress, one run at a time, and nothing served changes by accident."""

from __future__ import annotations

import threading
import time

import keras
import numpy as np
import pytest

from digit import jobs
from digit.config import ConfigError, TrainConfig
from digit.data import DataError, load_npz
from digit.registry import Registry

pytestmark = pytest.mark.slow
QUICK = {"epochs": 1, "limit": 200, "batch_size": 32}


@pytest.fixture
def registry(tmp_path) -> Registry:
    from digit.models import build_model, save_model

    shipped = save_model(build_model("seed"), tmp_path / "digit-cnn.keras")
    registry = Registry(tmp_path / "registry", shipped_path=shipped)
    before = registry.add(build_model("seed"), {"config": {"arch": "seed"}, "test_accuracy": 0.5})
    registry.promote(before.name)  # something other than the shipped model is being served
    return registry


@pytest.fixture
def make_runner(registry, small_npz):
    def make(load_data=None, **kwargs) -> jobs.Runner:
        return jobs.Runner(registry=lambda: registry, load_data=load_data or (lambda: load_npz(small_npz)), **kwargs)

    return make


def unchanged(registry: Registry, served: str, count: int = 1) -> bool:
    """The registry holds exactly what it held before and serves the same model."""
    return registry.served().name == served and len(registry.entries()) == count


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_completed_run_reports_live_and_is_saved_but_not_served(make_runner, registry):
    served = registry.served().name
    runner = make_runner()
    seen_steps = []
    hammering = threading.Event()

    def clear_sessions_meanwhile():  # what Streamlit does after every script run
        while not hammering.is_set():
            keras.backend.clear_session()
            time.sleep(0.002)

    hammer = threading.Thread(target=clear_sessions_meanwhile, daemon=True)
    hammer.start()
    runner.start(TrainConfig(**QUICK, validation_split=0.2), owner="me")
    while (snapshot := runner.snapshot()).active:
        seen_steps.append(snapshot.steps_done)
        time.sleep(0.05)
    hammering.set()

    assert snapshot.state == jobs.COMPLETED, snapshot.message
    assert snapshot.owner == "me" and snapshot.progress == 1.0
    assert len(set(seen_steps)) > 2, "progress was not reported while the run went on"
    steps = [b["step"] for b in snapshot.batches]
    assert steps == sorted(steps) and len(steps) >= 4
    assert all(np.isfinite(b["loss"]) and 0 <= b["accuracy"] <= 1 for b in snapshot.batches)
    assert snapshot.epochs[-1]["epoch"] == 1 and "val_loss" in snapshot.epochs[-1]
    assert 0 <= snapshot.test_accuracy <= 1 and snapshot.test_loss > 0
    entry = registry.get(snapshot.model_name)
    assert entry.test_accuracy == snapshot.test_accuracy
    assert entry.card["config"]["limit"] == 200 and entry.card["train_images"] == 160
    assert registry.served().name == served, "a finished run must not be served until promoted"


def test_simultaneous_starts_give_exactly_one_run(make_runner, registry, small_npz):
    release = threading.Event()

    def slow_data():
        release.wait(30)
        return load_npz(small_npz)

    runner = make_runner(load_data=slow_data)
    barrier = threading.Barrier(8)
    outcomes = []

    def press_start():
        barrier.wait()
        try:
            outcomes.append(runner.start(TrainConfig(**QUICK)))
        except jobs.Busy as error:
            outcomes.append(str(error))

    pressers = [threading.Thread(target=press_start) for _ in range(8)]
    for thread in pressers:
        thread.start()
    for thread in pressers:
        thread.join()
    assert sum(isinstance(o, int) for o in outcomes) == 1
    assert all("already in progress" in o for o in outcomes if isinstance(o, str))

    assert runner.stop()
    release.set()
    snapshot = runner.wait(60)
    assert snapshot.state == jobs.STOPPED and "nothing was saved" in snapshot.message
    assert unchanged(registry, registry.served().name)


def test_stop_ends_the_run_and_changes_nothing(make_runner, registry):
    served = registry.served().name
    runner = make_runner()
    runner.start(TrainConfig(epochs=5, limit=1000, batch_size=16))
    wait_for(lambda: runner.snapshot().steps_done >= 2)
    assert runner.stop()
    snapshot = runner.wait(60)
    assert snapshot.state == jobs.STOPPED
    assert "stopped by a visitor in epoch 1" in snapshot.message and "nothing was saved" in snapshot.message
    assert snapshot.steps_done < snapshot.total_steps
    assert unchanged(registry, served)
    assert not runner.stop(), "nothing left to stop"


def test_an_exception_mid_run_fails_visibly_and_changes_nothing(make_runner, registry, monkeypatch):
    from digit import training

    real_train = training.train

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise RuntimeError("disk on fire")

    monkeypatch.setattr(
        training, "train", lambda config, data, callbacks: real_train(config, data, [*callbacks, Crash()])
    )
    served = registry.served().name
    runner = make_runner()
    runner.start(TrainConfig(**QUICK))
    snapshot = runner.wait(120)
    assert snapshot.state == jobs.FAILED
    assert "disk on fire" in snapshot.message and "nothing was saved" in snapshot.message
    assert unchanged(registry, served)
    runner.start(TrainConfig(**QUICK))  # the runner is free again
    runner.stop()
    runner.wait(120)


def test_a_diverged_run_says_why_and_changes_nothing(make_runner, registry, monkeypatch):
    from digit import training
    from digit.models import build_model

    def diverging(config, data, callbacks):
        return training.TrainResult(build_model(config.arch), config, training.DIVERGED, {"loss": [float("nan")]})

    monkeypatch.setattr(training, "train", diverging)
    served = registry.served().name
    runner = make_runner()
    runner.start(TrainConfig(**QUICK))
    snapshot = runner.wait(60)
    assert snapshot.state == jobs.DIVERGED
    assert "NaN" in snapshot.message and "lower learning rate" in snapshot.message
    assert unchanged(registry, served)


def test_unreachable_mnist_fails_with_a_clear_message(make_runner, registry):
    def no_data():
        raise DataError("MNIST is not reachable: Keras could not download it (no internet?)")

    runner = make_runner(load_data=no_data)
    runner.start(TrainConfig(**QUICK))
    snapshot = runner.wait(30)
    assert snapshot.state == jobs.FAILED
    assert snapshot.message.startswith("cannot load MNIST") and "not reachable" in snapshot.message
    assert unchanged(registry, registry.served().name)


def test_out_of_range_settings_are_refused_before_anything_starts(make_runner):
    runner = make_runner()
    for bad in ({"epochs": 0}, {"epochs": 10_000}, {"batch_size": 0}, {"learning_rate": 5.0}, {"limit": 10**9}):
        with pytest.raises(ConfigError):
            runner.start(TrainConfig(**{**QUICK, **bad}))
    assert runner.snapshot().state == jobs.IDLE


def test_a_run_past_the_time_limit_is_stopped(make_runner, registry):
    runner = make_runner(max_seconds=0.0)
    runner.start(TrainConfig(epochs=3, limit=500, batch_size=16))
    snapshot = runner.wait(120)
    assert snapshot.state == jobs.STOPPED and "at most" in snapshot.message
    assert unchanged(registry, registry.served().name)


def test_clear_session_is_deferred_only_while_a_run_is_going_on(make_runner):
    guard = jobs._keras_guard()
    assert keras.backend.clear_session is guard and jobs._keras_guard() is guard
    calls = []
    original, guard.original = guard.original, lambda *a, **k: calls.append(1)
    try:
        keras.backend.clear_session()
        guard.enter()
        keras.backend.clear_session()
        guard.exit()
        keras.backend.clear_session()
    finally:
        guard.original = original
    assert len(calls) == 2
