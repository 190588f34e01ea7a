"""Training side: a run as its own process, reporting as JSON lines, for the app's runner to follow.

    python -m digit train --epochs 2 --limit 10000 --registry models/registry --events -

Each line on the events stream is one JSON object with an "event" key:

    {"event": "phase", "phase": "loading data" | "running" | "validating" | "scoring" | "saving"}
    {"event": "begin", "total_steps": 158}
    {"event": "batch", "step": 12, "epoch": 1, "loss": 1.2, "accuracy": 0.61, "seconds_left": 40.5}
    {"event": "epoch", "epoch": 1, "step": 79, "loss": ..., "accuracy": ..., "val_loss": ..., "val_accuracy": ...}
    {"event": "fold", "fold": 0, "folds": 5}
    {"event": "done", "status": "completed" | "stopped" | "diverged", "message": "...", ...results}
    {"event": "failed", "message": "..."}

With `--control-stdin` (the runner's way) the process also listens on its standard input: a line
"stop" ends it at once, saving nothing, and end of input (the server is gone, even by kill -9)
ends it too, so that no training process outlives its server.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import keras

from digit.config import FinetuneConfig, TrainConfig
from digit.resident import release_library_pages

MAX_POINTS = 600  # batch-level points per run: enough for a smooth curve, little to send
EXIT_STOPPED = 3  # the exit status of a run ended by "stop" on its control input
EXIT_ORPHANED = 4  # ... and of one whose server went away


class Events:
    """Writes one JSON line per event to a stream (stdout for the runner), flushed at once."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields) -> None:
        if self.stream is None:
            return
        line = json.dumps({"event": event, **fields}, allow_nan=False, default=_plain)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def _plain(value):
    return float(value) if hasattr(value, "__float__") else str(value)


class Control:
    """Stop and orphan handling: a thread reading the process's standard input.

    A Stop must end the run within 2 s and save nothing, so it does not wait for a batch to end:
    the process exits. The one moment that must not be cut is a model becoming visible in the
    registry: `committing()` holds a lock around it, and a Stop arriving just after deletes what
    was committed before exiting.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending = None  # a models.PendingSave being prepared: discarded on Stop
        self.undo: Callable[[], None] | None = None  # deletes what was committed
        self.stop_requested = threading.Event()

    def listen(self, stream: TextIO) -> Control:
        threading.Thread(target=self._read, args=(stream,), name="digit-control", daemon=True).start()
        return self

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            if line.strip() == "stop":
                self._exit(EXIT_STOPPED)
        self._exit(EXIT_ORPHANED)

    def _exit(self, status: int) -> None:
        self.stop_requested.set()
        with self.lock:
            if self.undo is not None:
                self.undo()
            elif self.pending is not None:
                self.pending.discard()
            sys.stdout.flush()
            os._exit(status)


class Recorder(keras.callbacks.Callback):
    """Reports loss and accuracy every few batches and at each epoch's end, as events."""

    def __init__(self, emit: Events) -> None:
        super().__init__()
        self.emit = emit
        self.steps_per_epoch, self.total_steps, self.every, self.epoch = 1, 1, 1, 0
        self.seen: tuple[int, dict[str, float]] = (0, {})
        self.first: tuple[float, int] | None = None

    def on_train_begin(self, logs=None):
        self.steps_per_epoch = int(self.params.get("steps") or 0) or 1
        self.total_steps = self.steps_per_epoch * int(self.params.get("epochs") or 1)
        self.every = max(1, math.ceil(self.total_steps / MAX_POINTS))
        self.emit("begin", total_steps=self.total_steps)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.seen = (0, {})  # batches so far this epoch, and the sums of their metrics

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps_per_epoch + batch + 1
        if step % self.every == 0 or batch + 1 == self.steps_per_epoch:
            recent = self._since_last_point(batch + 1, _floats(logs, "loss", "accuracy"))
            self.emit("batch", step=step, epoch=self.epoch + 1, **recent, seconds_left=self._left(step))

    def on_test_begin(self, logs=None):
        self.emit("phase", phase="validating")

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.steps_per_epoch
        metrics = _floats(logs, "loss", "accuracy", "val_loss", "val_accuracy")
        self.emit("epoch", epoch=epoch + 1, step=step, **metrics, seconds_left=self._left(step))
        if epoch + 1 < int(self.params.get("epochs") or 1):
            self.emit("phase", phase="running")

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
        return {k: v for k, v in recent.items() if math.isfinite(v)}

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


class ReleaseLibraryPages(keras.callbacks.Callback):
    """Pages out the code that tracing ran, once the first training and validation steps are traced."""

    def __init__(self) -> None:
        super().__init__()
        self.traced: set[str] = set()

    def on_train_batch_end(self, batch, logs=None):
        self._once("train")

    def on_test_end(self, logs=None):
        self._once("test")

    def _once(self, step: str) -> None:
        if step not in self.traced:
            self.traced.add(step)
            release_library_pages()


def _floats(logs: dict | None, *keys: str) -> dict:
    logs = logs or {}
    return {k: float(logs[k]) for k in keys if k in logs and math.isfinite(float(logs[k]))}


def lower_priority(nice: int) -> None:
    """Run at a lower CPU priority (POSIX): a visitor's stroke comes before training."""
    if nice > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(nice)


def save_to_registry(registry, model, card: dict, check_images, control: Control | None):
    """Add a model to the registry so that a Stop at any moment leaves nothing of it behind."""
    if control is None:
        return registry.add(model, card, check_images)
    with control.lock:
        control.pending = None
    pending = registry.prepare(model, card, check_images)
    with control.lock:  # a Stop now waits for the commit, then undoes it
        control.pending = pending
        if control.stop_requested.is_set():
            pending.discard()
            return None
        entry = registry.commit(pending)
        control.undo = lambda: _delete_quietly(registry, entry.name)
    return entry


def _delete_quietly(registry, name: str) -> None:
    with contextlib.suppress(Exception):  # exiting anyway; a failed delete leaves an unserved model, never a served one
        registry.delete(name)


class Session:
    """Where a run reports: its events stream, its control input, and human-readable lines."""

    def __init__(self, emit: Events, control: Control | None, text: TextIO) -> None:
        self.emit, self.control, self.text = emit, control, text
        self.quiet = emit.stream is sys.stdout  # Keras' own progress lines would garble the events

    @classmethod
    def open(cls, events: str | None, nice: int = 0, control_stdin: bool = False) -> Session:
        lower_priority(nice)
        release_library_pages()  # TensorFlow's import-time registrations (keras above imported it)
        stream = sys.stdout if events == "-" else (open(events, "a") if events else None)  # noqa: SIM115
        control = Control().listen(sys.stdin) if control_stdin else None
        return cls(Events(stream), control, sys.stderr if events == "-" else sys.stdout)

    def say(self, text: str) -> None:
        print(text, file=self.text, flush=True)


def run(job, session: Session) -> int:
    """Run a job; any failure becomes one "failed" event and exit status 1."""
    try:
        return job.run(session)
    except Exception as error:  # a failed run must end visibly, whatever went wrong
        message = failure_message(error)
        session.emit("failed", message=message)
        traceback.print_exc(file=sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        return 1


def failure_message(error: Exception) -> str:
    """One line for a person: what failed and that nothing changed."""
    from digit.data import DataError

    text = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    if isinstance(error, DataError):
        return f"cannot load MNIST: {text}"
    return (
        f"the run failed ({type(error).__name__}: {text}); nothing was saved and the model being served did not change."
    )


NOTHING_SAVED = "{}: nothing was saved and the model being served did not change."


@dataclass(frozen=True)
class TrainJob:
    """Train a fresh model on MNIST, score it, save it (to a file, or into the app's registry)."""

    config: TrainConfig
    data: Path | None = None
    out: Path | None = None
    registry: Path | None = None
    command: str = ""
    owner: str | None = None

    def run(self, session: Session) -> int:
        from digit.data import load_mnist
        from digit.training import train

        session.emit("phase", phase="loading data")
        data = load_mnist(self.data).limited(self.config.limit)  # the Train page's 10,000 of 60,000: 40 MB less
        session.say(f"training {self.config.arch} on {len(data.x_train)} images: {json.dumps(self.config.to_dict())}")
        session.emit("phase", phase="running")
        callbacks = [Recorder(session.emit), ReleaseLibraryPages()]
        result = train(self.config, data, callbacks=callbacks, verbose=0 if session.quiet else 2)
        if not result.completed:
            return _not_completed(session, result, self.config.epochs)
        card = {**_card(result, data), "command": self.command or None, "data": str(self.data or "") or None}
        if self.registry is not None:
            card.update(source="Train page", owner=self.owner)
        return _score_and_save(session, result, card, data, self.out, self.registry, self.data)


@dataclass(frozen=True)
class FinetuneJob:
    """Fine-tune a saved model on a corrections file, replaying MNIST; score it and save it."""

    config: FinetuneConfig
    base: Path
    corrections: Path
    data: Path | None = None
    out: Path | None = None
    registry: Path | None = None
    owner: str | None = None

    def run(self, session: Session) -> int:
        from digit.data import load_mnist
        from digit.finetune import finetune
        from digit.models import load_model

        session.emit("phase", phase="loading data")
        base, (images, labels) = load_model(self.base), _corrections(self.corrections)
        data = load_mnist(self.data)
        session.say(f"fine-tuning {self.base.name} on {len(images)} corrections: {json.dumps(self.config.to_dict())}")
        session.emit("phase", phase="running")
        result = finetune(
            base, images, labels, data, self.config, callbacks=[Recorder(session.emit), ReleaseLibraryPages()]
        )
        if not result.completed:
            return _not_completed(session, result, self.config.epochs)
        card = {
            **_card(result, data),
            "base_model": self.base.stem,
            "corrections": result.corrections,
            "replay_images": result.replay_images,
            "source": "fine-tuned on a visitor's corrections",
            "owner": self.owner,
        }
        return _score_and_save(session, result, card, data, self.out, self.registry, self.data)


@dataclass(frozen=True)
class MeasureJob:
    """A fine-tune's before and after: MNIST test accuracy of both, and cross-validation on the corrections."""

    config: FinetuneConfig
    base: Path
    tuned: Path
    corrections: Path
    data: Path | None = None
    folds: int = 5

    def run(self, session: Session) -> int:
        from digit.data import load_mnist
        from digit.finetune import measure
        from digit.models import load_model

        session.emit("phase", phase="loading data")
        base, tuned = load_model(self.base), load_model(self.tuned)
        images, labels = _corrections(self.corrections)
        data = load_mnist(self.data)
        session.emit("phase", phase="running")

        def on_fold(fold: int, folds: int) -> None:
            session.emit("fold", fold=fold, folds=folds)

        report = measure(base, tuned, images, labels, data, self.config, self.folds, on_fold=on_fold)
        session.emit("done", status="completed", message="measured", report=report.to_dict())
        session.say(json.dumps(report.to_dict()))
        return 0


def _corrections(path: Path):
    from digit.corrections import CorrectionSet

    store = CorrectionSet.load(path)
    return store.images, store.labels


def _not_completed(session: Session, result, epochs: int) -> int:
    from digit.training import DIVERGED

    if result.status == DIVERGED:
        reason = "the loss became NaN (training diverged); try a lower learning rate"
    else:
        reason = f"stopped after {result.epochs_done} of {epochs} epochs"
    session.emit("done", status=result.status, message=NOTHING_SAVED.format(reason))
    session.say(f"error: training {result.status} after {result.epochs_done} epochs; nothing saved")
    return 1


def _score_and_save(
    session: Session, result, card: dict, data, out: Path | None, registry: Path | None, data_path: Path | None
) -> int:
    from digit.evaluation import evaluate
    from digit.models import save_model
    from digit.registry import Registry

    model = result.model
    session.emit("phase", phase="scoring")
    scores = evaluate(model, data.x_test, data.y_test)
    card = {**card, "test_accuracy": scores.accuracy, "test_loss": scores.loss}
    session.emit("phase", phase="saving")
    if registry is not None and session.control is not None and os.name == "posix":
        publish_in_a_fresh_process(model, card, registry, data_path)  # does not return
    if registry is not None:
        entry = save_to_registry(Registry(registry), model, card, data.x_test, session.control)
        if entry is None:
            return EXIT_STOPPED
        name, where = entry.name, entry.path
    else:
        where = save_model(model, out, {**card, "name": out.stem}, data.x_test)
        name = out.stem
    session.emit(
        "done",
        status="completed",
        model_name=name,
        test_accuracy=scores.accuracy,
        test_loss=scores.loss,
        message=f"saved as {name}",
    )
    session.say(
        f"test accuracy {scores.accuracy:.4f}, test loss {scores.loss:.4f}; {result.seconds:.0f} s; saved {where}"
    )
    return 0


STAGING = ".staging"  # a folder of the registry's where a trained model waits to be published


def publish_in_a_fresh_process(model, card: dict, registry: Path, data: Path | None) -> None:
    """Save the model aside, then become `python -m digit publish` (exec: same process, same pipes).

    Exporting and checking after training, in the process that trained, would add the converter's
    memory to everything training left behind (measured: 1.8 GB at the peak, against 1.1 GB while
    training). A fresh program in the same process starts from TensorFlow's import alone, and the
    runner follows it as before: same events on the same stdout, Stop on the same stdin.
    """
    from digit.models import save_keras_only

    staging = Path(registry) / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # what an earlier, interrupted publication left
    staged = save_keras_only(model, staging / "model.keras")
    staged.with_suffix(".json").write_text(json.dumps(card, default=_plain))
    arguments = [sys.executable, "-m", "digit", "publish", str(staged), "--registry", str(registry)]
    arguments += ["--events", "-", "--control-stdin"]
    if data is not None:
        arguments += ["--data", str(data)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, arguments)


@dataclass(frozen=True)
class PublishJob:
    """Export a staged model, check it against Keras and add it to the registry (the last step of a run)."""

    staged: Path
    registry: Path
    data: Path | None = None

    def run(self, session: Session) -> int:
        from digit.data import load_mnist
        from digit.models import load_model
        from digit.registry import Registry

        model, card = load_model(self.staged), json.loads(self.staged.with_suffix(".json").read_text())
        shutil.rmtree(self.staged.parent, ignore_errors=True)
        data = load_mnist(self.data, test_only=True)
        entry = save_to_registry(Registry(self.registry), model, card, data.x_test, session.control)
        if entry is None:
            return EXIT_STOPPED
        session.emit(
            "done",
            status="completed",
            model_name=entry.name,
            test_accuracy=card.get("test_accuracy"),
            test_loss=card.get("test_loss"),
            message=f"saved as {entry.name}",
        )
        session.say(f"saved {entry.path}")
        return 0


def _card(result, data) -> dict:
    from digit.models import parameter_count

    return {
        "config": result.config.to_dict(),
        "train_images": result.train_images,
        "epochs_done": result.epochs_done,
        "wall_seconds": round(result.seconds, 1),
        "parameters": parameter_count(result.model),
        "history": result.history,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {_cpu_count()} cores, Python {platform.python_version()}",
    }


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
