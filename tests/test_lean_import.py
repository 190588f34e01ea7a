"""TensorFlow imported without the extras Keras would load, and those extras still importable afterwards."""

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

# A fresh interpreter: in this one, TensorFlow and pandas may be imported already.
CHILD = """
import sys
from app_pages.lean_import import import_tensorflow_lean
hidden = import_tensorflow_lean()
loaded = [name for name in ("pandas", "matplotlib", "matplotlib.pyplot", "IPython", "scipy") if name in sys.modules]
import numpy as np
import digit
model = digit.load_model()
image = np.zeros((28, 28), np.uint8)
image[4:24, 13:15] = 255
answer = digit.predict(model, image).digit
import matplotlib.pyplot
import pandas
print(",".join(hidden), ",".join(loaded) or "-", answer, import_tensorflow_lean(), pandas.DataFrame({"a": [1]}).shape[0])
"""


def test_tensorflow_loads_without_pandas_and_matplotlib_which_still_import_later():
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=PROJECT, check=True)
    hidden, loaded, answer, again, rows = run.stdout.split()
    assert hidden.startswith("pandas,matplotlib"), hidden
    assert loaded == "-", "Keras did not import them"
    assert answer == "1", "the model predicts as usual"
    assert (again, rows) == ("[]", "1"), "a second call does nothing; pandas works when a page needs it"
