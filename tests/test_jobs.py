"""The server's training runner: a child process per run, followed live; stop, death and orphans handled.

Most tests start a scripted child (a few lines of Python that speak the events protocol and
misbehave on cue), so that they run in a second; a few start real training processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from digit import jobs
from digit.config import ConfigError, TrainConfig
from digit.corrections import CorrectionSet
from digit.registry import Registry

PROJECT = Path(__file__).resolve().parents[1]
QUICK = {"epochs": 1, "limit": 200, "batch_size": 32}


class ScriptedRunner(jobs.Runner):
    """A runner whose child is a short script instead of `python -m digit`."""

    def __init__(self, script: str, listens: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.script = textwrap.dedent(PRELUDE) + (LISTEN if listens else "") + textwrap.dedent(script)

    def _child_command(self) -> list[str]:
        return [sys.executable, "-c", self.script]


PRELUDE = """
    import json, os, sys, threading, time
    def emit(event, **fields):
        print(json.dumps({"event": event, **fields}), flush=True)
    def obey_stop():  # what digit.worker.Control does
        for line in sys.stdin:
            if line.strip() == "stop":
                os._exit(3)
        os._exit(4)
"""
LISTEN = "threading.Thread(target=obey_stop, daemon=True).start()\n"
COMPLETES = """
    emit("phase", phase="running")
    emit("begin", total_steps=4)
    for step in range(1, 5):
        emit("batch", step=step, epoch=1, loss=2.0 / step, accuracy=0.2 * step, seconds_left=4 - step)
    emit("epoch", epoch=1, step=4, loss=0.5, accuracy=0.8, val_loss=0.6, val_accuracy=0.75)
    emit("phase", phase="scoring")
    emit("done", status="completed", model_name="cnn-fake", test_accuracy=0.9, test_loss=0.3, message="saved as cnn-fake")
"""
TRAINS_FOREVER = """
    emit("begin", total_steps=1000)
    step = 0
    while True:
        step += 1
        emit("batch", step=step, epoch=1, loss=1.0, accuracy=0.5, seconds_left=10)
        time.sleep(0.05)
"""
DEAF_AND_STUCK = """
    # hears no "stop": only a kill ends it
    emit("begin", total_steps=10)
    emit("batch", step=1, epoch=1, loss=1.0, accuracy=0.5)
    time.sleep(600)
"""
KILLED = """
    import signal
    emit("begin", total_steps=10)
    emit("batch", step=1, epoch=1, loss=1.0, accuracy=0.5)
    os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
"""
RAISES = """
    emit("begin", total_steps=10)
    raise RuntimeError("disk on fire")  # no "failed" event: the process just dies with a traceback
"""
SAYS_IT_FAILED = """
    emit("failed", message="cannot load MNIST: not reachable")
    sys.exit(1)
"""
DIVERGES = """
    emit("begin", total_steps=10)
    emit("done", status="diverged", message="the loss became NaN (training diverged); try a lower learning rate: nothing was saved")
    sys.exit(1)
"""
NOISY = """
    print("a stray line from a library", flush=True)
    emit("begin", total_steps=1)
    print("{not json", flush=True)
    emit("batch", step=1, epoch=1, loss=1.0, accuracy=0.5)
    emit("done", status="completed", model_name="m", test_accuracy=0.5, test_loss=1.0, message="saved as m")
"""


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(tmp_path / "registry", shipped_path=PROJECT / "models" / "digit-cnn.keras")


def scripted(script: str, registry: Registry, listens: bool = True, **kwargs) -> ScriptedRunner:
    return ScriptedRunner(script, listens, registry=lambda: registry, **kwargs)


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_events_become_the_snapshot(registry):
    runner = scripted(COMPLETES, registry)
    runner.start(TrainConfig(**QUICK), owner="me")
    snapshot = runner.wait(30)
    assert snapshot.state == jobs.COMPLETED and snapshot.owner == "me" and snapshot.kind == jobs.TRAIN
    assert [b["step"] for b in snapshot.batches] == [1, 2, 3, 4] and snapshot.progress == 1.0
    assert snapshot.epochs == (
        {"epoch": 1, "step": 4, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75},
    )
    assert (snapshot.model_name, snapshot.test_accuracy, snapshot.test_loss) == ("cnn-fake", 0.9, 0.3)
    assert snapshot.seconds_left is None and snapshot.elapsed > 0


def test_lines_that_are_not_events_are_ignored(registry):
    runner = scripted(NOISY, registry)
    runner.start(TrainConfig(**QUICK))
    snapshot = runner.wait(30)
    assert snapshot.state == jobs.COMPLETED and len(snapshot.batches) == 1


def test_progress_is_live_while_the_child_runs(registry):
    runner = scripted(TRAINS_FOREVER, registry)
    runner.start(TrainConfig(**QUICK))
    wait_for(lambda: runner.snapshot().steps_done >= 3)
    first = runner.snapshot().steps_done
    wait_for(lambda: runner.snapshot().steps_done > first + 3)
    assert runner.snapshot().active and runner.snapshot().state == jobs.RUNNING
    assert runner.stop(by="me")
    assert runner.wait(10).state == jobs.STOPPED


def test_stop_ends_the_child_at_once_and_says_who(registry):
    runner = scripted(TRAINS_FOREVER, registry)
    runner.start(TrainConfig(epochs=3, limit=1000), owner="owner")
    wait_for(lambda: runner.snapshot().steps_done >= 2)
    pid = runner.child_pid()
    began = time.monotonic()
    assert runner.stop(by="someone")
    snapshot = runner.wait(10)
    assert time.monotonic() - began < 2.0
    assert snapshot.state == jobs.STOPPED and snapshot.stopped_by == "someone"
    assert "stopped in epoch 1 of 3" in snapshot.message and "nothing was saved" in snapshot.message
    assert not _alive(pid)
    assert not runner.stop(), "nothing left to stop"


def test_a_child_that_ignores_stop_is_killed(registry):
    runner = scripted(DEAF_AND_STUCK, registry, listens=False)
    runner.start(TrainConfig(**QUICK))
    wait_for(lambda: runner.snapshot().steps_done == 1)
    pid = runner.child_pid()
    began = time.monotonic()
    runner.stop()
    snapshot = runner.wait(10)
    assert time.monotonic() - began < jobs.STOP_GRACE_SECONDS + 1.0
    assert snapshot.state == jobs.STOPPED and not _alive(pid)


def test_a_killed_child_is_a_failed_run_in_one_line(registry):
    runner = scripted(KILLED, registry)
    runner.start(TrainConfig(**QUICK))
    snapshot = runner.wait(30)
    assert snapshot.state == jobs.FAILED
    assert "killed by signal 9" in snapshot.message and "out-of-memory" in snapshot.message
    assert "nothing was saved" in snapshot.message and "\n" not in snapshot.message
    assert registry.entries() == []


def test_a_child_that_crashes_without_a_word_is_a_failed_run(registry):
    runner = scripted(RAISES, registry)
    runner.start(TrainConfig(**QUICK))
    snapshot = runner.wait(30)
    assert snapshot.state == jobs.FAILED and "exited with status 1" in snapshot.message


@pytest.mark.parametrize(
    "script, state, words",
    [(SAYS_IT_FAILED, jobs.FAILED, "cannot load MNIST"), (DIVERGES, jobs.DIVERGED, "NaN")],
)
def test_the_childs_own_account_of_a_failure_is_kept(registry, script, state, words):
    runner = scripted(script, registry)
    runner.start(TrainConfig(**QUICK))
    snapshot = runner.wait(30)
    assert snapshot.state == state and words in snapshot.message


def test_simultaneous_starts_give_exactly_one_run(registry):
    runner = scripted(TRAINS_FOREVER, registry)
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
    runner.stop()
    assert runner.wait(10).state == jobs.STOPPED
    runner.start(TrainConfig(**QUICK))  # free again
    runner.stop()
    runner.wait(10)


def test_a_run_past_the_time_limit_is_stopped(registry):
    runner = scripted(TRAINS_FOREVER, registry, max_seconds=0.5)
    runner.start(TrainConfig(**QUICK))
    snapshot = runner.wait(10)
    assert snapshot.state == jobs.STOPPED and "at most" in snapshot.message


def test_out_of_range_settings_are_refused_before_anything_starts(registry):
    runner = scripted(COMPLETES, registry)
    for bad in ({"epochs": 0}, {"epochs": 10_000}, {"batch_size": 0}, {"learning_rate": 5.0}, {"limit": 10**9}):
        with pytest.raises(ConfigError):
            runner.start(TrainConfig(**{**QUICK, **bad}))
    assert runner.snapshot().state == jobs.IDLE


def test_the_child_is_told_the_settings_the_data_and_the_registry(registry, tmp_path):
    record = tmp_path / "argv.txt"
    runner = scripted(
        f"open({str(record)!r}, 'w').write(' '.join(sys.argv[1:]))\n" + textwrap.dedent(COMPLETES),
        registry,
        data="x.npz",
    )
    runner.start(TrainConfig(arch="seed", epochs=2, batch_size=64, learning_rate=0.001, limit=500, augment=False))
    runner.wait(30)
    argv = record.read_text().split()
    assert argv[0] == "train" and "--control-stdin" in argv
    for flag, value in [("--arch", "seed"), ("--epochs", "2"), ("--batch-size", "64"), ("--limit", "500")]:
        assert argv[argv.index(flag) + 1] == value
    assert "--no-augment" in argv and argv[argv.index("--data") + 1] == "x.npz"
    assert argv[argv.index("--registry") + 1] == str(registry.root)
    assert argv[argv.index("--nice") + 1] == str(jobs.CHILD_NICE)


def test_a_finetune_gets_a_private_copy_of_the_corrections(registry, tmp_path, mnist_digits):
    record, given = tmp_path / "copy.npz", tmp_path / "given.txt"
    script = (
        "import shutil\n"
        "path = sys.argv[sys.argv.index('--corrections') + 1]\n"
        f"shutil.copy(path, {str(record)!r})\n"
        f"open({str(given)!r}, 'w').write(path)\n" + textwrap.dedent(COMPLETES)
    )
    store = CorrectionSet()
    for digit, image in mnist_digits.items():
        store.add(image, image, digit, predicted=digit)
    runner = scripted(script, registry)
    from digit.config import FinetuneConfig

    runner.start_finetune(FinetuneConfig(epochs=1), PROJECT / "models" / "digit-cnn.keras", store, owner="me")
    snapshot = runner.wait(30)
    assert snapshot.kind == jobs.FINETUNE and snapshot.state == jobs.COMPLETED
    assert CorrectionSet.load(record).labels.tolist() == list(range(10))
    assert not Path(given.read_text()).exists(), "the runner deletes the file it wrote when the run ends"


# --- real training processes ---------------------------------------------------------------


@pytest.fixture
def real_runner(registry, small_npz):
    return jobs.Runner(registry=lambda: registry, data=small_npz)


@pytest.mark.slow
def test_a_real_run_trains_in_its_own_process_and_is_saved_but_not_served(real_runner, registry):
    served = registry.served().name
    real_runner.start(TrainConfig(**QUICK, validation_split=0.2), owner="me")
    states = set()
    while (snapshot := real_runner.snapshot()).active:
        states.add(snapshot.state)
        time.sleep(0.05)
    assert snapshot.state == jobs.COMPLETED, snapshot.message
    assert {jobs.LOADING, jobs.RUNNING} <= states
    assert snapshot.epochs[-1]["epoch"] == 1 and "val_loss" in snapshot.epochs[-1]
    entry = registry.get(snapshot.model_name)
    assert entry.test_accuracy == snapshot.test_accuracy and entry.card["train_images"] == 160
    assert entry.card["serving"]["engine"] == "LiteRT" and entry.path.with_suffix(".tflite").is_file()
    assert registry.served().name == served, "a finished run must not be served until promoted"


@pytest.mark.slow
def test_stopping_a_real_run_saves_nothing(real_runner, registry):
    real_runner.start(TrainConfig(epochs=5, limit=1000, batch_size=16))
    wait_for(lambda: real_runner.snapshot().steps_done >= 2, timeout=120)
    pid = real_runner.child_pid()
    began = time.monotonic()
    assert real_runner.stop(by="me")
    snapshot = real_runner.wait(10)
    assert time.monotonic() - began < 2.0
    assert snapshot.state == jobs.STOPPED and snapshot.steps_done < snapshot.total_steps
    assert not _alive(pid) and registry.entries() == []
    assert not list(registry.root.glob("*")), "no file of the run is left"


ORPHAN_PARENT = """
import sys, time
from digit import jobs
from digit.config import TrainConfig
from digit.registry import Registry
runner = jobs.Runner(registry=lambda: Registry(sys.argv[1]), data=sys.argv[2])
runner.start(TrainConfig(epochs=20, limit=1000, batch_size=16))
while runner.child_pid() is None:
    time.sleep(0.05)
print(runner.child_pid(), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_server_killed_outright_leaves_no_training_process_behind(tmp_path, small_npz):
    server = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_PARENT, str(tmp_path / "registry"), str(small_npz)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(server.stdout.readline())
    assert _alive(child)
    server.send_signal(signal.SIGKILL)
    server.wait(10)
    wait_for(lambda: not _alive(child), timeout=30)  # it notices its input close, even while importing TensorFlow


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
