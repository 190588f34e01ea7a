"""Keep a rerun cheap with TensorFlow loaded: two Streamlit habits that cost most of every rerun, undone.

After every script run, Streamlit calls `keras.backend.clear_session()` (which also empties
TensorFlow's kernel cache, so the next prediction rebuilds its kernels) and then a full garbage
collection that walks every object of TensorFlow, Keras, pandas and Altair (about 450,000 here).
Measured, that was 0.6-1.2 s of CPU per rerun, holding the GIL: each stroke of one visitor
stalled every other visitor and the training thread.

This app never builds a model in a script run (training has its own thread), so there is no
Keras state to clear. And what an import creates lives as long as the process: after a run that
imported something new, one collection clears the garbage and `gc.freeze()` moves what is left
out of the collector's reach, so each later collection walks only the objects of recent runs.
"""

from __future__ import annotations

import gc
import sys
import threading

from streamlit.runtime.scriptrunner import script_runner

_frozen_at_modules = 0
_freeze_lock = threading.Lock()


GC_THRESHOLDS = (50_000, 20, 20)  # Python's default (700, 10, 10) collects about 70 times as often


def keep_reruns_cheap() -> None:
    """Replace Streamlit's after-run clean-up (Keras' clear_session) with `after_script_run`, and
    collect garbage less often: a training run allocates objects fast, and each collection of the
    older generations walks its model and graphs while holding the GIL."""
    script_runner._clean_problem_modules = after_script_run
    gc.set_threshold(*GC_THRESHOLDS)


def after_script_run() -> None:
    """Close Matplotlib figures as Streamlit does; freeze long-lived objects after new imports."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")
    freeze_after_new_imports()


def freeze_after_new_imports() -> bool:
    """Collect once and freeze everything alive, when modules were imported since the last time."""
    global _frozen_at_modules
    with _freeze_lock:
        if len(sys.modules) == _frozen_at_modules:
            return False
        gc.collect()
        gc.freeze()
        _frozen_at_modules = len(sys.modules)
        return True
