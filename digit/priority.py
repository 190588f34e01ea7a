"""Training as a background job: a lower CPU priority for the threads that train, so drawing stays quick.

    callbacks=[BackgroundPriority()]   # in a run the app starts; the CLI trains at normal priority

A run on a 2-core server keeps both cores busy. At the same priority, a visitor's stroke waits
its turn behind training; at nice 10 the scheduler gives the script threads that answer strokes
about ten times training's share whenever they want the CPU, and training has the whole machine
the rest of the time. On Linux a nice value belongs to one thread, so this lowers the training
thread and TensorFlow's own threads (named `tf_...`), which do the arithmetic of both training
and prediction. A niced thread cannot be raised again without privileges, so TensorFlow's
threads stay at this priority for the life of the process; prediction's share of them is tiny.
Elsewhere (macOS, Windows) it does nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

import keras

BACKGROUND_NICE = 10
TASKS = Path("/proc/self/task")


def lower_training_priority(nice: int = BACKGROUND_NICE) -> int:
    """Renice the calling thread and every TensorFlow thread to `nice`; returns how many changed."""
    if sys.platform != "linux" or not TASKS.is_dir():
        return 0
    threads = {threading.get_native_id(), *_tensorflow_threads()}
    return sum(_renice(thread, nice) for thread in threads)


def _tensorflow_threads() -> list[int]:
    found = []
    for task in TASKS.iterdir():
        with contextlib.suppress(OSError):  # a thread may end while we look
            if (task / "comm").read_text().startswith("tf_"):
                found.append(int(task.name))
    return found


def _renice(thread: int, nice: int) -> bool:
    try:
        if os.getpriority(os.PRIO_PROCESS, thread) >= nice:
            return False
        os.setpriority(os.PRIO_PROCESS, thread, nice)
        return True
    except OSError:  # gone, or not ours to change
        return False


class BackgroundPriority(keras.callbacks.Callback):
    """Lowers the priority at the start of training and of each epoch (tf.data starts threads late)."""

    def on_train_begin(self, logs=None):
        lower_training_priority()

    def on_epoch_begin(self, epoch, logs=None):
        lower_training_priority()
