"""Training as a background job: the training thread and TensorFlow's threads are reniced, nothing else."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

# In a child process, so that no thread of the test process is reniced (that cannot be undone).
CHILD = textwrap.dedent(
    """
    import ctypes, os, threading
    from digit.priority import lower_training_priority

    def nice(thread_id):
        return os.getpriority(os.PRIO_PROCESS, thread_id)

    named, ready, done = {}, threading.Event(), threading.Event()

    def tensorflow_like():  # a thread named like TensorFlow's compute threads
        ctypes.CDLL(None).prctl(15, b"tf_Compute", 0, 0, 0)  # PR_SET_NAME
        named["tf"] = threading.get_native_id()
        ready.set()
        done.wait()

    def bystander():
        named["other"] = threading.get_native_id()
        done.wait()

    def trainer():
        named["changed"] = lower_training_priority()
        named["trainer"] = nice(threading.get_native_id())
        named["again"] = lower_training_priority()

    threads = [threading.Thread(target=f) for f in (tensorflow_like, bystander)]
    for t in threads:
        t.start()
    ready.wait()
    worker = threading.Thread(target=trainer)
    worker.start()
    worker.join()
    print(named["changed"], named["again"], named["trainer"], nice(named["tf"]), nice(named["other"]),
          nice(threading.get_native_id()))
    done.set()
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's; elsewhere it does nothing")
def test_the_training_thread_and_tensorflows_threads_are_reniced_and_no_other():
    output = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, cwd=PROJECT
    ).stdout
    changed, again, trainer, tf_thread, bystander, main = map(int, output.split())
    assert (trainer, tf_thread) == (10, 10), "the training thread and TensorFlow's threads yield to visitors"
    assert (bystander, main) == (0, 0), "the threads that answer visitors keep their priority"
    assert (changed, again) == (2, 0), "a second call changes nothing"
