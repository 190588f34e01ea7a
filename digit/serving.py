"""Serving side: answer with a model's LiteRT export, without importing TensorFlow or Keras.

    predictor = load_predictor()                 # the shipped model; load_predictor(path) for another
    predictor.probabilities(images)              # (N, 28, 28) float in [0, 1] -> (N, 10), rows sum to 1
    predictor.engine                             # "LiteRT", or "Keras" where the export cannot be used
    predictor.layers().run(image)                # every layer's output, for digit.explain (loaded on first use)

Every saved `.keras` file gets a `.tflite` export beside it, made and checked against Keras when
it is saved (digit/export.py); its card records the check and the SHA-256 of the `.keras` file it
was made from, so a stale export is never served. A `.keras` file without a valid export gets one
on first use, made in a child process (`python -m digit export FILE`) so that TensorFlow stays out
of this one. Where the export fails, or `ai-edge-litert` is not installed, the model is served
through Keras in this process, and `predictor.note` says why.

A second export, `.layers.tflite`, gives every layer's output for one image (digit/explanation.py
shows them); it is made and checked with the first, loaded only when an explanation is asked for,
and made in a child process on first use for a model saved before it existed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Protocol

import numpy as np

from digit.config import DEFAULT_MODEL_PATH, IMAGE_SIZE, NUM_CLASSES, PROJECT_DIR

LITERT, KERAS = "LiteRT", "Keras"
BATCH = 64  # images per interpreter call when scoring a set: 256 held ~45 MB more for a few % of speed
EXPORT_TIMEOUT = 600  # seconds for a child process to export an older model


class ModelError(RuntimeError):
    """A model file that is missing, broken, unsafe or of the wrong shape."""


class Predictor(Protocol):
    """What the app serves with: probabilities for preprocessed images."""

    engine: str
    note: str

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 10) probabilities, rows summing to 1, for (N, 28, 28) float32 images in [0, 1]."""
        ...


def litert_available() -> bool:
    """True where the standalone LiteRT runtime (`ai-edge-litert`) is installed."""
    try:
        return importlib.util.find_spec("ai_edge_litert") is not None
    except ValueError:  # a module hidden with sys.modules[name] = None
        return False


class LiteRTPredictor:
    """A `.tflite` export run by the LiteRT interpreter: one for single strokes, one for batches."""

    engine = LITERT

    def __init__(self, path: str | Path, note: str = "") -> None:
        self.path = Path(path)
        self.note = note
        try:
            self._single = _Interpreter(self.path, batch=1)
        except Exception as error:  # a broken or foreign flatbuffer
            raise ModelError(f"cannot load {self.path.name}: {_first_line(error)}") from error
        self._batched: _Interpreter | None = None
        self._lock = threading.Lock()
        self._layers: LayersExport | str | None = None  # the layers export, or why there is none
        self._layers_lock = threading.Lock()

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
        if len(images) == 1:
            return normalized(self._single.run(images))
        chunks = [self._batch_interpreter().run(images[i : i + BATCH]) for i in range(0, len(images), BATCH)]
        return normalized(np.concatenate(chunks) if chunks else np.zeros((0, NUM_CLASSES)))

    def _batch_interpreter(self) -> _Interpreter:
        with self._lock:  # made on first use: a visitor who only draws never needs it
            if self._batched is None:
                self._batched = _Interpreter(self.path, batch=BATCH, threads=2)
            return self._batched

    def layers(self) -> LayersExport:
        """The layers export beside this one, loaded on first use; ModelError (saying why) where there is none."""
        with self._layers_lock:  # made on first use: a visitor who only draws never needs it
            if self._layers is None:
                try:
                    self._layers = LayersExport.beside(self.path)
                except ModelError as error:
                    self._layers = str(error)
        if isinstance(self._layers, str):
            raise ModelError(self._layers)
        return self._layers


class LayersExport:
    """The layers export: one LiteRT interpreter giving every layer's output for one image, input to output."""

    def __init__(self, path: str | Path, record: dict) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.names = [str(name) for name in record["names"]]
        self.kinds = [str(kind) for kind in record["kinds"]]
        self.activations = [str(a or "") for a in record.get("activations") or [""] * len(self.names)]
        kernels = record.get("first_kernels")
        self.first_kernels = np.asarray(kernels, np.float32) if kernels else None  # (3, 3, 1, filters)
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=1)
            self.interpreter.allocate_tensors()
            # The flatbuffer's outputs come in no useful order; its signature names each after its layer.
            signature = self.interpreter.get_signature_runner()
            self.input = next(iter(signature.get_input_details().values()))["index"]
            outputs = signature.get_output_details()
            self.outputs = [outputs[name]["index"] for name in self.names]
            del signature
        except Exception as error:  # a broken flatbuffer, or one without these layers
            raise ModelError(f"cannot load {Path(path).name}: {_first_line(error)}") from error
        self.lock = threading.Lock()

    @classmethod
    def beside(cls, export: Path) -> LayersExport:
        """The checked layers export beside a model's export, made first in a child process where none was ever made."""
        keras_path = export.with_suffix(".keras")
        record = read_serving_record(export).get("layers")
        if record is None and keras_path.is_file():  # saved before layers exports existed
            reason = export_in_child(keras_path)
            if reason:
                raise ModelError(reason)
            record = read_serving_record(export).get("layers")
        if not isinstance(record, dict) or record.get("engine") != LITERT:
            raise ModelError(str((record or {}).get("reason") or "this model has no layers export"))
        if keras_path.is_file() and read_serving_record(export).get("keras_sha256") != file_sha256(keras_path):
            raise ModelError("its layers export was made from another file")
        path = layers_export_path(export)
        if not path.is_file():
            raise ModelError(f"no layers export at {path.name}")
        return cls(path, record)

    def run(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(name, output) for every layer, input to output, for one (28, 28) image; each output without its batch axis."""
        x = np.asarray(image, dtype=np.float32).reshape(1, IMAGE_SIZE, IMAGE_SIZE, 1)
        with self.lock:
            self.interpreter.set_tensor(self.input, x)
            self.interpreter.invoke()
            return [
                (name, self.interpreter.get_tensor(i)[0].copy())
                for name, i in zip(self.names, self.outputs, strict=True)
            ]


class _Interpreter:
    """One LiteRT interpreter with a fixed batch size; a lock, since an interpreter is not thread-safe."""

    def __init__(self, path: Path, batch: int, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.batch = batch
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        if batch != 1:
            self.interpreter.resize_tensor_input(self.input, [batch, IMAGE_SIZE, IMAGE_SIZE, 1])
        self.interpreter.allocate_tensors()
        taken = tuple(int(n) for n in self.interpreter.get_input_details()[0]["shape"])
        given = int(self.interpreter.get_output_details()[0]["shape"][-1])  # the batch size shows only once run
        if taken != (batch, IMAGE_SIZE, IMAGE_SIZE, 1) or given != NUM_CLASSES:
            raise ModelError(
                f"{path.name} takes {taken[1:]} and gives {given} outputs; a digit model takes (28, 28, 1) and gives 10"
            )
        self.lock = threading.Lock()

    def run(self, images: np.ndarray) -> np.ndarray:
        """Outputs for up to `batch` images (a short batch runs at its own size: resizing costs ~0.1 ms once allocated)."""
        count = len(images)
        with self.lock:
            if self.batch != 1 and self.interpreter.get_input_details()[0]["shape"][0] != count:
                self.interpreter.resize_tensor_input(self.input, [count, IMAGE_SIZE, IMAGE_SIZE, 1])
                self.interpreter.allocate_tensors()
            self.interpreter.set_tensor(self.input, np.ascontiguousarray(images, dtype=np.float32))
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self.output)[:count].astype(np.float64)


def normalized(outputs: np.ndarray) -> np.ndarray:
    """Rows that sum to 1 (the seed's sigmoid outputs do not)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    totals = outputs.sum(axis=1, keepdims=True)
    return outputs / np.where(totals > 0, totals, 1.0)


def load_predictor(path: str | Path | None = None) -> Predictor:
    """What the app serves `path` (a `.keras` file, the shipped one by default) with; ModelError if unusable."""
    path = Path(path) if path else DEFAULT_MODEL_PATH
    if path.suffix == ".tflite":
        return LiteRTPredictor(path)
    check_model_file(path)
    if not litert_available():
        return keras_predictor(path, "ai-edge-litert is not installed here")
    reason = export_problem(path)
    if reason == STALE:
        reason = export_in_child(path) or export_problem(path)
    if reason:
        return keras_predictor(path, reason)
    try:
        return LiteRTPredictor(export_path(path))
    except ModelError as error:
        return keras_predictor(path, f"its export cannot be read: {error}")


STALE = "no export made from this file yet"


def export_problem(path: Path) -> str:
    """Why the export beside `path` cannot be served: '' when it can, STALE when none matches the file."""
    serving = read_serving_record(path)
    if serving.get("keras_sha256") != file_sha256(path):
        return STALE
    if serving.get("engine") != LITERT:
        return str(serving.get("reason") or "the export was not checked")
    if not export_path(path).is_file():
        return STALE
    return ""


def export_in_child(path: Path) -> str:
    """Export `path` in a child process (TensorFlow stays out of this one); '' on success, else why not."""
    command = [sys.executable, "-m", "digit", "export", str(path)]
    try:
        done = subprocess.run(
            command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=EXPORT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"exporting it failed ({_first_line(error)})"
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines()
        return f"exporting it failed ({lines[-1][:200] if lines else f'exit status {done.returncode}'})"
    return ""


def keras_predictor(path: Path, note: str) -> Predictor:
    """The model served through Keras in this process (imports TensorFlow): the fallback."""
    from digit.keras_predictor import KerasPredictor
    from digit.models import load_model

    return KerasPredictor(load_model(path), note=note).warm_up()


def check_model_file(path: Path) -> None:
    """ModelError unless `path` is an existing `.keras` archive (loading is the real test)."""
    if not path.is_file():
        raise ModelError(f"no model file at {path}")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path.name} is not a Keras model file (.keras)")


def export_path(model_path: str | Path) -> Path:
    """Where a model's LiteRT export lives: beside it, as `.tflite`."""
    return Path(model_path).with_suffix(".tflite")


def layers_export_path(model_path: str | Path) -> Path:
    """Where a model's layers export (every layer's output, for explanations) lives: beside it, as `.layers.tflite`."""
    return Path(model_path).with_suffix(".layers.tflite")


def card_path(model_path: str | Path) -> Path:
    """Where a model's card (its JSON description) lives."""
    return Path(model_path).with_suffix(".json")


def read_card(model_path: str | Path) -> dict:
    """The model's card, or an empty dict where there is none or it is unreadable."""
    try:
        card = json.loads(card_path(model_path).read_text())
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def read_serving_record(model_path: str | Path) -> dict:
    """The card's record of the export: engine, check, and the hash of the file it was made from."""
    serving = read_card(model_path).get("serving")
    return serving if isinstance(serving, dict) else {}


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file (a model is about 2 MB: a few milliseconds)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
