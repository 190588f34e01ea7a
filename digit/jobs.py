"""Serving side: one training run at a time per server, in a child process, watched by any page.

    runner = jobs.Runner()                      # hold one per server (the app keeps it in st.cache_resource)
    runner.start(TrainConfig(epochs=2), owner="visitor-id")   # Busy when a run is going on
    snapshot = runner.snapshot()                # an immutable copy: curves, progress, time left, outcome
    runner.stop(by="visitor-id")                # the child process ends within 2 s; nothing is saved

The run is `python -m digit train ... --events - --control-stdin` (digit/worker.py): TensorFlow
lives in that process only, at a lower CPU priority, and its memory is returned when it ends. Its
JSON lines become the Snapshot. A run that completes is scored and saved to the registry by the
child (not served: promoting is a separate, deliberate step). A run that is stopped, diverges,
fails or dies (an exception, the out-of-memory killer) saves nothing, so what is being served
never changes because of it. If the server goes away, the child sees its input close and exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from digit.config import PROJECT_DIR, FinetuneConfig, TrainConfig, data_path_from_env
from digit.corrections import CorrectionSet
from digit.registry import Registry

IDLE, LOADING, RUNNING, VALIDATING, EVALUATING, SAVING = (
    "idle",
    "loading data",
    "running",
    "validating",
    "scoring",
    "saving",
)
COMPLETED, STOPPED, DIVERGED, FAILED = "completed", "stopped", "diverged", "failed"
ACTIVE = (LOADING, RUNNING, VALIDATING, EVALUATING, SAVING)
TRAIN, FINETUNE, MEASURE = "train", "finetune", "measure"

MAX_RUN_SECONDS = float(os.environ.get("DIGIT_MAX_RUN_SECONDS") or 3600)  # a public server's guard
STOP_GRACE_SECONDS = 1.5  # a child that has not exited this long after "stop" is killed
CHILD_NICE = 10  # training gets the CPU that strokes leave

_log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """A run is already in progress on this server."""


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands, copied out so a page can read it without locks."""

    run_id: int = 0
    state: str = IDLE
    kind: str = TRAIN
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
    report: dict | None = None  # a measurement's result (kind "measure")
    fold: tuple[int, int] | None = None  # (fold, folds) while a measurement cross-validates
    stopped_by: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def progress(self) -> float:
        if self.kind == MEASURE and self.fold:
            return min(1.0, self.fold[0] / self.fold[1])
        return min(1.0, self.steps_done / self.total_steps) if self.total_steps else 0.0


@dataclass
class _Run:
    """The runner's private record of the run in progress."""

    run_id: int
    process: subprocess.Popen
    stop: threading.Event
    temporary: list[Path]
    log: object  # a temporary file holding the child's error output
    stop_reason: str = ""
    finished: threading.Event = field(default_factory=threading.Event)


class Runner:
    """Runs at most one training process at a time and follows its events."""

    def __init__(
        self,
        registry: Callable[[], Registry] = Registry,
        data: str | Path | None = None,
        max_seconds: float = MAX_RUN_SECONDS,
        python: str = sys.executable,
    ) -> None:
        self._registry = registry
        self._data = data
        self._max_seconds = max_seconds
        self._python = python
        self._lock = threading.Lock()
        self._state = Snapshot()
        self._started = 0.0
        self._run: _Run | None = None

    def start(self, config: TrainConfig, owner: str | None = None) -> int:
        """Start training a fresh model; Busy if a run is going on, ConfigError for bad settings."""
        config.validate()
        return self._launch(TRAIN, config.to_dict(), ["train", *_train_arguments(config)], owner)

    def start_finetune(
        self, config: FinetuneConfig, base: Path, corrections: CorrectionSet, owner: str | None = None
    ) -> int:
        """Fine-tune the model at `base` on these corrections (copied now: later edits do not reach the run)."""
        config.validate()
        if len(corrections) == 0:
            raise ValueError("there are no corrections to fine-tune on")
        corrections = _corrections_file(corrections)
        arguments = ["finetune", "--model", str(base), "--corrections", str(corrections), *_finetune_arguments(config)]
        return self._launch(FINETUNE, config.to_dict(), arguments, owner, [corrections])

    def start_measure(
        self,
        config: FinetuneConfig,
        base: Path,
        tuned: Path,
        corrections: CorrectionSet,
        owner: str | None = None,
        folds: int = 5,
    ) -> int:
        """Measure a fine-tune before and after (MNIST, and cross-validation on the corrections); saves nothing."""
        corrections = _corrections_file(corrections)
        arguments = [
            "measure",
            *("--base", str(base), "--tuned", str(tuned), "--corrections", str(corrections)),
            *("--folds", str(folds), "--settings", json.dumps(config.to_dict())),
        ]
        return self._launch(MEASURE, {**config.to_dict(), "folds": folds}, arguments, owner, [corrections])

    def stop(self, by: str | None = None) -> bool:
        """End the current run (its process exits within about 2 s); False when none is running."""
        with self._lock:
            if not self._state.active or self._run is None:
                return False
            self._state = replace(self._state, stopped_by=by)
            self._run.stop_reason = self._run.stop_reason or self._stopped_in()
            self._run.stop.set()
            return True

    def snapshot(self) -> Snapshot:
        """The current state, with the elapsed time brought up to date."""
        with self._lock:
            state = self._state
            if state.active:
                state = replace(state, elapsed=time.monotonic() - self._started)
            return state

    def wait(self, timeout: float | None = None) -> Snapshot:
        """Block until the current run has ended and been recorded (for tests and scripts)."""
        run = self._run
        if run is not None:
            run.finished.wait(timeout)
        return self.snapshot()

    def child_pid(self) -> int | None:
        """The process id of the run in progress (for tests and benchmarks)."""
        run = self._run
        return run.process.pid if run is not None and self._state.active else None

    # -- the child process -------------------------------------------------------------------

    def _launch(
        self, kind: str, config: dict, arguments: list[str], owner: str | None, temporary: list[Path] | None = None
    ) -> int:
        temporary = temporary or []
        with self._lock:
            if self._state.active:
                for path in temporary:
                    path.unlink(missing_ok=True)
                raise Busy("a training run is already in progress on this server; wait for it to finish")
            run_id = self._state.run_id + 1
            command = [*self._child_command(), *arguments, *self._common_arguments(kind, owner)]
            log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (the child's own messages, kept off the console; closed in _finish)
            try:
                process = _spawn(command, log)
            except OSError as error:
                log.close()
                for path in temporary:
                    path.unlink(missing_ok=True)
                raise RuntimeError(f"cannot start the training process: {error}") from error
            self._run = _Run(run_id, process, threading.Event(), temporary, log)
            self._started = time.monotonic()
            self._state = Snapshot(run_id=run_id, state=LOADING, kind=kind, owner=owner, config=config)
        for target in (self._follow, self._supervise):
            threading.Thread(target=target, args=(self._run,), name=f"digit-run-{run_id}", daemon=True).start()
        return run_id

    def _child_command(self) -> list[str]:
        return [self._python, "-m", "digit"]

    def _common_arguments(self, kind: str, owner: str | None) -> list[str]:
        arguments = ["--events", "-", "--control-stdin", "--nice", str(CHILD_NICE)]
        data = self._data or data_path_from_env()
        if data:
            arguments += ["--data", str(data)]
        if kind != MEASURE:
            arguments += ["--registry", str(self._registry().root)]
            if owner:
                arguments += ["--owner", owner]
        return arguments

    def _follow(self, run: _Run) -> None:
        """Read the child's events until its output closes, then record how the run ended."""
        outcome: dict = {}
        try:
            for line in run.process.stdout:
                event = _parse(line)
                if event is not None:
                    outcome = self._apply(run.run_id, event) or outcome
        finally:
            status = run.process.wait()
            self._finish(run, outcome, status)

    def _supervise(self, run: _Run) -> None:
        """Stop the child on request or at the time limit; kill it if it does not go."""
        if not run.stop.wait(self._max_seconds) and run.process.poll() is None:
            with self._lock:
                run.stop_reason = f"stopped: a run may take at most {self._max_seconds / 60:.0f} minutes on this server"
                run.stop.set()
        if run.process.poll() is not None:
            return
        with contextlib.suppress(OSError, ValueError):  # the child may be gone already
            run.process.stdin.write("stop\n")
            run.process.stdin.flush()
        try:
            run.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            run.process.kill()

    def _apply(self, run_id: int, event: dict) -> dict | None:
        """Fold one event into the snapshot; returns it when it says how the run ended."""
        kind = event.get("event")
        with self._lock:
            state = self._state
            if state.run_id != run_id or not state.active:
                return None
            if kind == "phase" and event.get("phase") in ACTIVE:
                state = replace(state, state=event["phase"])
            elif kind == "begin":
                state = replace(state, total_steps=int(event.get("total_steps") or 0), state=RUNNING)
            elif kind == "batch":
                point = _point(event, "step", "epoch", "loss", "accuracy")
                state = replace(
                    state,
                    batches=(*state.batches, point),
                    steps_done=point["step"],
                    seconds_left=event.get("seconds_left"),
                )
            elif kind == "epoch":
                point = _point(event, "epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy")
                state = replace(
                    state,
                    epochs=(*state.epochs, point),
                    steps_done=point["step"],
                    seconds_left=event.get("seconds_left"),
                )
            elif kind == "fold":
                state = replace(state, fold=(int(event["fold"]), int(event["folds"])))
            self._state = state
        return event if kind in ("done", "failed") else None

    def _finish(self, run: _Run, outcome: dict, status: int) -> None:
        for path in run.temporary:
            path.unlink(missing_ok=True)
        with self._lock:
            if self._state.run_id == run.run_id:
                self._state = replace(
                    self._state,
                    elapsed=time.monotonic() - self._started,
                    seconds_left=None,
                    **_ending(run, outcome, status),
                )
        run.finished.set()

    def _stopped_in(self) -> str:
        state = self._state
        if state.kind == MEASURE:
            return "stopped while measuring"
        epochs = state.config.get("epochs")
        epoch = state.batches[-1]["epoch"] if state.batches else 1
        if state.state == LOADING:
            return "stopped before training began"
        return f"stopped in epoch {epoch} of {epochs}" if state.state != SAVING else "stopped before it was saved"


def _ending(run: _Run, outcome: dict, status: int) -> dict:
    """The final fields of a run's snapshot, from its last event and its exit status."""
    if run.stop.is_set():  # whatever the child managed to say, a stopped run saved nothing
        return {"state": STOPPED, "message": _NOTHING_SAVED.format(run.stop_reason or "stopped")}
    if outcome.get("event") == "failed":
        return {"state": FAILED, "message": str(outcome.get("message") or "the run failed")}
    if outcome.get("event") == "done":
        state = {"completed": COMPLETED, "diverged": DIVERGED}.get(outcome.get("status"), STOPPED)
        fields = {"state": state, "message": str(outcome.get("message") or "")}
        if state == COMPLETED:
            fields.update({k: outcome.get(k) for k in ("model_name", "test_accuracy", "test_loss", "report")})
        return fields
    return {"state": FAILED, "message": _died(status)}


_NOTHING_SAVED = "{}: nothing was saved and the model being served did not change."


def _died(status: int) -> str:
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    if status == -9:
        how += " (as the out-of-memory killer does: try fewer training images or a smaller batch)"
    return (
        f"the training process {how} before it finished: nothing was saved and the model being served did not change."
    )


def _spawn(command: list[str], log) -> subprocess.Popen:
    # Fewer malloc arenas: TensorFlow's many threads each get one otherwise (measured ~60 MB less at the peak).
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "2"}
    return subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        bufsize=1,
    )


def _last_line(log) -> str:
    """The last line the child wrote to its error output (a Python error's one-line summary)."""
    try:
        log.seek(0)
        lines = [line.strip() for line in log.read()[-4000:].splitlines() if line.strip()]
    except (OSError, ValueError):
        return ""
    finally:
        log.close()
    return lines[-1][:300] if lines else ""


def _parse(line: str) -> dict | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _point(event: dict, *keys: str) -> dict:
    return {k: event[k] for k in keys if isinstance(event.get(k), (int, float))}


def _train_arguments(config: TrainConfig) -> list[str]:
    arguments = [
        *("--arch", config.arch, "--epochs", str(config.epochs), "--batch-size", str(config.batch_size)),
        *("--learning-rate", repr(config.learning_rate), "--validation-split", repr(config.validation_split)),
        *("--seed", str(config.seed), "--augment" if config.augment else "--no-augment"),
    ]
    return [*arguments, "--limit", str(config.limit)] if config.limit else arguments


def _finetune_arguments(config: FinetuneConfig) -> list[str]:
    return [
        *("--epochs", str(config.epochs), "--learning-rate", repr(config.learning_rate)),
        *("--oversample", str(config.oversample), "--replay", repr(config.replay), "--seed", str(config.seed)),
    ]


def _corrections_file(corrections: CorrectionSet) -> Path:
    """The corrections as a file for the child to read (deleted when the run ends)."""
    fd, name = tempfile.mkstemp(prefix="digit-corrections-", suffix=".npz")
    os.close(fd)
    return corrections.save(name)
