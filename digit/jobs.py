"""Training in a background thread, one run at a time per server process, watched by any page.

    runner = jobs.Runner()                      # hold one per process (the app keeps it in st.cache_resource)
    runner.start(TrainConfig(epochs=2), owner="visitor-id")   # Busy when a run is going on
    snapshot = runner.snapshot()                # an immutable copy: curves, progress, time left, outcome
    runner.stop()                               # the run ends after the current batch; nothing is saved

A run that completes is scored on the test set and saved to the registry (not served: promoting
is a separate, deliberate step). A run that is stopped, diverges or raises saves nothing, so
what is being served never changes because of it.

Keras keeps layer names and scopes in thread-local state that `keras.backend.clear_session()`
replaces for every thread at once, and Streamlit calls it after every script run (this app turns
that off: app_pages/rerun_cost.py). For any other host that calls it, clear_session does nothing
while a run is going on (see `_ClearSessionGuard`); otherwise it would reset the names of the
model being built in the training thread.
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import keras

from digit.config import TrainConfig
from digit.priority import BackgroundPriority
from digit.registry import Registry

IDLE, LOADING, RUNNING, EVALUATING = "idle", "loading data", "running", "scoring"
COMPLETED, STOPPED, DIVERGED, FAILED = "completed", "stopped", "diverged", "failed"
ACTIVE = (LOADING, RUNNING, EVALUATING)

MAX_POINTS = 600  # batch-level points kept per run: enough for a smooth curve, small to copy
MAX_RUN_SECONDS = float(os.environ.get("DIGIT_MAX_RUN_SECONDS") or 3600)  # a public server's guard


_log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """A run is already in progress on this server."""


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands, copied out so a page can read it without locks."""

    run_id: int = 0
    state: str = IDLE
    owner: str | None = None
    config: dict = field(default_factory=dict)
    batches: tuple[dict, ...] = ()  # {"step", "epoch", "loss", "accuracy"}, every few batches
    epochs: tuple[dict, ...] = ()  # {"epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy"}
    total_steps: int = 0
    steps_done: int = 0
    elapsed: float = 0.0
    seconds_left: float | None = None
    message: str = ""
    model_name: str | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def progress(self) -> float:
        return min(1.0, self.steps_done / self.total_steps) if self.total_steps else 0.0


class Runner:
    """Runs at most one training at a time in a daemon thread."""

    def __init__(
        self,
        registry: Callable[[], Registry] = Registry,
        load_data: Callable | None = None,
        max_seconds: float = MAX_RUN_SECONDS,
    ) -> None:
        self._registry = registry
        self._load_data = load_data
        self._max_seconds = max_seconds
        self._lock = threading.Lock()
        self._state = Snapshot()
        self._stop = threading.Event()
        self._started = 0.0
        self._thread: threading.Thread | None = None

    def start(self, config: TrainConfig, owner: str | None = None, task: Callable | None = None) -> int:
        """Start a run and return its id; Busy if one is going on, ConfigError for bad settings.

        `task(data, callbacks)`, when given, trains instead of `digit.training.train` (a fine-tune,
        say) and returns a TrainResult; progress, Stop, scoring and saving work the same.
        """
        config.validate()
        guard = _keras_guard()
        with self._lock:
            if self._state.active:
                raise Busy("a training run is already in progress on this server; wait for it to finish")
            run_id = self._state.run_id + 1
            self._state = Snapshot(run_id=run_id, state=LOADING, owner=owner, config=config.to_dict())
            self._stop = threading.Event()
            self._started = time.monotonic()
            self._thread = threading.Thread(
                target=self._run, args=(run_id, config, self._stop, task), name=f"digit-train-{run_id}", daemon=True
            )
            guard.enter()  # before the thread exists: no clear can reach its model building
            self._thread.start()
        return run_id

    def stop(self) -> bool:
        """Ask the current run to stop after its current batch; False when none is running."""
        with self._lock:
            if not self._state.active:
                return False
            self._stop.set()
            return True

    def snapshot(self) -> Snapshot:
        """The current state, with the elapsed time brought up to date."""
        with self._lock:
            state = self._state
            if state.active:
                state = replace(state, elapsed=time.monotonic() - self._started)
            return state

    def wait(self, timeout: float | None = None) -> Snapshot:
        """Block until the current run ends (for tests and scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.snapshot()

    def _update(self, run_id: int, **changes) -> None:
        with self._lock:
            if self._state.run_id == run_id:
                self._state = replace(self._state, elapsed=time.monotonic() - self._started, **changes)

    def _run(self, run_id: int, config: TrainConfig, stop: threading.Event, task: Callable | None) -> None:
        try:
            self._train_and_save(run_id, config, stop, task)
        except Exception as error:  # a failed run must end visibly, whatever went wrong
            _log.exception("training run %s failed", run_id)
            self._update(run_id, state=FAILED, seconds_left=None, message=_failure_message(error))
        finally:
            _keras_guard().exit()
            gc.collect()

    def _train_and_save(self, run_id: int, config: TrainConfig, stop: threading.Event, task: Callable | None) -> None:
        from digit.data import load_mnist
        from digit.evaluation import evaluate
        from digit.training import COMPLETED as TRAINED
        from digit.training import DIVERGED as NAN_LOSS
        from digit.training import train

        data = (self._load_data or load_mnist)()
        if stop.is_set():
            self._update(run_id, state=STOPPED, message=_NOTHING_SAVED.format("stopped before training began"))
            return
        self._update(run_id, state=RUNNING)
        recorder = Recorder(functools.partial(self._update, run_id), stop, self._max_seconds)
        callbacks = [BackgroundPriority(), recorder]  # visitors' strokes come before training
        result = task(data, callbacks) if task else train(config, data, callbacks=callbacks)
        if result.status == NAN_LOSS:
            reason = "the loss became NaN (training diverged); try a lower learning rate"
            self._update(run_id, state=DIVERGED, seconds_left=None, message=_NOTHING_SAVED.format(reason))
            return
        if result.status != TRAINED or stop.is_set():
            reason = recorder.stop_reason or f"stopped after {result.epochs_done} of {config.epochs} epochs"
            self._update(run_id, state=STOPPED, seconds_left=None, message=_NOTHING_SAVED.format(reason))
            return
        self._update(run_id, state=EVALUATING, seconds_left=None)
        scores = evaluate(result.model, data.x_test, data.y_test)
        if stop.is_set():
            self._update(run_id, state=STOPPED, message=_NOTHING_SAVED.format("stopped before it was saved"))
            return
        entry = self._registry().add(result.model, _card(result, scores))
        self._update(
            run_id,
            state=COMPLETED,
            model_name=entry.name,
            test_accuracy=scores.accuracy,
            test_loss=scores.loss,
            message=f"saved as {entry.name}",
        )


_NOTHING_SAVED = "{}: nothing was saved and the model being served did not change."


class Recorder(keras.callbacks.Callback):
    """Reports loss and accuracy every few batches and at each epoch's end, and obeys Stop."""

    def __init__(self, report: Callable[..., None], stop: threading.Event, max_seconds: float = MAX_RUN_SECONDS):
        super().__init__()
        self.report, self.stop, self.max_seconds = report, stop, max_seconds
        self.stop_reason = ""
        self.steps_per_epoch, self.total_steps, self.every, self.epoch = 1, 1, 1, 0
        self.seen: tuple[int, dict[str, float]] = (0, {})
        self.batches: list[dict] = []
        self.epochs: list[dict] = []
        self.began = time.monotonic()
        self.first: tuple[float, int] | None = None

    def on_train_begin(self, logs=None):
        self.steps_per_epoch = int(self.params.get("steps") or 0) or 1
        self.total_steps = self.steps_per_epoch * int(self.params.get("epochs") or 1)
        self.every = max(1, math.ceil(self.total_steps / MAX_POINTS))
        self.began = time.monotonic()
        self.report(total_steps=self.total_steps)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.seen = (0, {})  # batches so far this epoch, and the sums of their metrics

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps_per_epoch + batch + 1
        if step % self.every == 0 or batch + 1 == self.steps_per_epoch:
            recent = self._since_last_point(batch + 1, _floats(logs, "loss", "accuracy"))
            self.batches.append({"step": step, "epoch": self.epoch + 1, **recent})
            self.report(batches=tuple(self.batches), steps_done=step, seconds_left=self._left(step))
        self._obey_stop()

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.steps_per_epoch
        metrics = _floats(logs, "loss", "accuracy", "val_loss", "val_accuracy")
        self.epochs.append({"epoch": epoch + 1, "step": step, **metrics})
        self.report(epochs=tuple(self.epochs), steps_done=step, seconds_left=self._left(step))

    def _since_last_point(self, count: int, running: dict[str, float]) -> dict[str, float]:
        """The mean over the batches since the last point.

        Keras logs means over the epoch so far, which reset at each epoch and would put a step in
        the curve there. (Counting batches, not images, is off only for an epoch's short last batch.)
        """
        last_count, last_sums = self.seen
        sums = {k: v * count for k, v in running.items()}
        self.seen = (count, sums)
        recent = {k: (sums[k] - last_sums.get(k, 0.0)) / (count - last_count) for k in sums}
        if "accuracy" in recent:
            recent["accuracy"] = min(max(recent["accuracy"], 0.0), 1.0)
        if "loss" in recent:
            recent["loss"] = max(recent["loss"], 0.0)
        return recent

    def _left(self, step: int) -> float | None:
        # Timed from the first finished batch: the first one includes tracing the model, seconds here.
        now = time.monotonic()
        if self.first is None:
            self.first = (now, step)
            return None
        began, first_step = self.first
        if step <= first_step:
            return None
        return (now - began) / (step - first_step) * max(self.total_steps - step, 0)

    def _obey_stop(self) -> None:
        if self.stop.is_set():
            self.stop_reason = self.stop_reason or f"stopped by a visitor in epoch {self.epoch + 1}"
            self.model.stop_training = True
        elif time.monotonic() - self.began > self.max_seconds:
            self.stop_reason = f"stopped: a run may take at most {self.max_seconds / 60:.0f} minutes on this server"
            self.stop.set()
            self.model.stop_training = True


def _floats(logs: dict | None, *keys: str) -> dict:
    logs = logs or {}
    return {k: float(logs[k]) for k in keys if k in logs}


def _card(result, scores) -> dict:
    from digit.models import parameter_count

    return {
        "config": result.config.to_dict(),
        "train_images": result.train_images,
        "epochs_done": result.epochs_done,
        "wall_seconds": round(result.seconds, 1),
        "parameters": parameter_count(result.model),
        "test_accuracy": scores.accuracy,
        "test_loss": scores.loss,
        "history": result.history,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "source": "Train page",
    }


def _failure_message(error: Exception) -> str:
    from digit.data import DataError

    text = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    if isinstance(error, DataError):
        return f"cannot load MNIST: {text}"
    return (
        f"the run failed ({type(error).__name__}: {text}); nothing was saved and the model being served did not change."
    )


class _ClearSessionGuard:
    """Stands in for keras.backend.clear_session: clears only while no run is going on."""

    digit_guard = True  # found by this attribute, even after this module is reloaded

    def __init__(self, original: Callable) -> None:
        self.original = original
        self.lock = threading.Lock()
        self.active = 0

    def __call__(self, *args, **kwargs):
        with self.lock:
            if self.active == 0:
                return self.original(*args, **kwargs)
        return None

    def enter(self) -> None:
        with self.lock:  # waits for a clear in progress to finish
            self.active += 1

    def exit(self) -> None:
        with self.lock:
            self.active -= 1


def _keras_guard() -> _ClearSessionGuard:
    """The process's one guard on keras.backend.clear_session, installed on first use."""
    current = keras.backend.clear_session
    if getattr(current, "digit_guard", False):
        return current
    guard = _ClearSessionGuard(current)
    keras.backend.clear_session = keras.utils.clear_session = guard
    return guard
