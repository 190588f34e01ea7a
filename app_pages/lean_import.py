"""Import TensorFlow without the optional extras Keras loads at import: 90 MB less for an app that only draws.

When they are installed, Keras imports pandas (to accept DataFrames in `fit`), Matplotlib's
pyplot (for its plotting helpers) and IPython (for notebooks), and TensorFlow's legacy Keras
imports SciPy. This app installs pandas and Matplotlib for its own pages; a developer's machine
often has the other two. Measured, TensorFlow, the model and one prediction took 669 MB resident
in a fresh environment with requirements.txt only, and 575 MB with the extras hidden while
TensorFlow imports (687 and 568 MB in the development environment). The app never hands Keras a
DataFrame nor asks it to plot, and its own pages import pandas and Matplotlib normally, later,
when they need them.

Hiding works through `sys.modules[name] = None`, which makes `import name` raise ImportError,
the case Keras handles. It is done once, first thing in app.py, before anything imports
TensorFlow; a session that starts meanwhile waits on the same lock at the same line.
"""

from __future__ import annotations

import sys
import threading

EXTRAS = ("pandas", "matplotlib", "IPython", "scipy")
_lock = threading.Lock()


def import_tensorflow_lean() -> list[str]:
    """Import TensorFlow and Keras with the extras hidden; returns the ones that were hidden."""
    with _lock:
        if "tensorflow" in sys.modules:
            return []
        hidden = [name for name in EXTRAS if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            for name in hidden:
                if sys.modules.get(name, False) is None:
                    del sys.modules[name]
        return hidden
