"""A small registry of trained models on disk, and which one the app serves.

    models/registry/                  (or $DIGIT_REGISTRY_DIR)
        cnn-20261126-024012.keras     a model: architecture and weights, no optimizer state
        cnn-20261126-024012.tflite    its serving export (LiteRT), checked against Keras when saved
        cnn-20261126-024012.json      its card: settings, metrics, date, the export's check
        served.json                   {"name": ...}: the model every visitor gets

    registry = Registry()
    entry = registry.add(model, card)   # saved, not yet served
    registry.promote(entry.name)        # now served app-wide, and after a restart
    registry.served()                   # the served entry; the shipped model when there is none
    registry.delete(entry.name)         # not the shipped model, nor the served one

Serving side: reading the registry needs no TensorFlow; only adding a model (in a training
process) does.

Every write goes to a temporary file that is then renamed, so a crash leaves the old state
or the new one, never half of either. When the served pointer or the model it names is missing
or unreadable, the shipped model (models/digit-cnn.keras, or $DIGIT_MODEL_PATH) is served.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from digit.config import DEFAULT_MODEL_PATH, MODELS_DIR

REGISTRY_ENV_VAR = "DIGIT_REGISTRY_DIR"  # where saved models live (tests point it at a temporary folder)
MODEL_ENV_VAR = "DIGIT_MODEL_PATH"  # the shipped fallback model, if not models/digit-cnn.keras
DEFAULT_REGISTRY_DIR = MODELS_DIR / "registry"
SERVED_FILE = "served.json"
MAX_MODELS = 20  # older unserved models are deleted beyond this: a public server's disk is finite
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


class RegistryError(RuntimeError):
    """An unknown model name, or a registry that cannot be written."""


@dataclass(frozen=True)
class Entry:
    """One model the app can serve: its file and its card."""

    name: str
    path: Path
    card: dict = field(default_factory=dict, compare=False)
    shipped: bool = False

    @property
    def test_accuracy(self) -> float | None:
        return _number(self.card.get("test_accuracy"))

    @property
    def test_loss(self) -> float | None:
        return _number(self.card.get("test_loss"))

    @property
    def trained_at(self) -> str:
        return str(self.card.get("trained_at") or "")

    @property
    def mtime(self) -> float:
        """The model file's modification time (0 when missing): part of every cache key."""
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def looks_valid(self) -> bool:
        """A cheap check that the file exists and is a .keras archive (loading is the real test)."""
        return self.path.is_file() and zipfile.is_zipfile(self.path)

    @property
    def label(self) -> str:
        """The name a person gave it ('' when none)."""
        return str(self.card.get("label") or "")

    @property
    def title(self) -> str:
        """How a person knows it: their name for it with the file's, or the file's alone."""
        shipped = " (shipped)" if self.shipped else ""
        return f"{self.label} ({self.name})" if self.label else self.name + shipped

    def summary(self) -> dict:
        """One row for a table of models that fits a page: what it is, what it learned from, how it scores."""
        config = self.card.get("config") or {}
        kind = config.get("arch") or config.get("kind") or "?"
        if kind == "finetune" and self.card.get("base_model"):
            kind = f"fine-tune of {self.card['base_model']}"
        return {
            "model": self.title,
            "kind": kind,
            "epochs": self.card.get("epochs_done", config.get("epochs")),
            "trained on": self._images_text(config),
            "test accuracy": self.test_accuracy,
            "trained (UTC)": self.trained_at.replace("T", " ").removesuffix("+00:00")[:16],
        }

    def _images_text(self, config: dict) -> str:
        trained = self.card.get("train_images")
        if not isinstance(trained, int):
            return "–"
        if self.card.get("corrections"):
            return f"{self.card['corrections']:,} corrections + {self.card.get('replay_images', 0):,} MNIST"
        split = config.get("validation_split") or 0
        held_out = round(trained * split / (1 - split)) if 0 < split < 1 else 0
        return f"{trained:,}" + (f" (+{held_out:,} to validate)" if held_out else "")


class Registry:
    """Saved models under one folder, plus the shipped model as the fallback."""

    def __init__(self, root: str | Path | None = None, shipped_path: str | Path | None = None) -> None:
        self.root = Path(root or os.environ.get(REGISTRY_ENV_VAR) or DEFAULT_REGISTRY_DIR)
        self.shipped_path = Path(shipped_path or os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL_PATH)
        self._lock = threading.Lock()

    def shipped(self) -> Entry:
        """The model that ships with the app."""
        return Entry(
            self.shipped_path.stem, self.shipped_path, _read_json(self.shipped_path.with_suffix(".json")), True
        )

    def entries(self) -> list[Entry]:
        """The saved models, newest first (the shipped model is not among them)."""
        if not self.root.is_dir():
            return []
        found = [self._entry(path) for path in self.root.glob("*.keras") if _NAME.match(path.stem)]
        return sorted(found, key=lambda e: (e.trained_at, e.mtime, e.name), reverse=True)

    def get(self, name: str) -> Entry:
        """The saved or shipped model called `name`; RegistryError when there is none."""
        if name == self.shipped_path.stem:
            return self.shipped()
        path = self.root / f"{name}.keras"
        if not _NAME.match(name) or not path.is_file():
            raise RegistryError(f"no saved model called {name!r}")
        return self._entry(path)

    def add(self, model, card: dict, check_images=None) -> Entry:
        """Save a trained model with its card under a new name; it is not served until promoted."""
        return self.commit(self.prepare(model, card, check_images))

    def prepare(self, model, card: dict, check_images=None):
        """The slow part of `add` (saving, exporting, checking): a PendingSave, invisible until committed."""
        from digit.models import prepare_save

        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            config = card.get("config") or {}
            name = self._new_name(str(config.get("arch") or config.get("kind") or "model"))
            card = {**card, "name": name, "trained_at": card.get("trained_at") or _now()}
            return prepare_save(model, self.root / f"{name}.keras", card, check_images)

    def commit(self, pending) -> Entry:
        """Make a prepared model visible (one rename), then prune the oldest."""
        path = pending.commit()
        self.prune()
        return self.get(path.stem)

    def set_label(self, name: str, label: str) -> Entry:
        """Give a saved model a name a person chose (40 characters at most; '' removes it)."""
        entry = self.get(name)
        if entry.shipped:
            raise RegistryError("the shipped model keeps its name")
        label = " ".join(str(label).split())[:40]
        card = {k: v for k, v in entry.card.items() if k != "label"} | ({"label": label} if label else {})
        with self._lock:
            _atomic_write_text(entry.path.with_suffix(".json"), json.dumps(card, indent=2, sort_keys=True) + "\n")
        return self.get(name)

    def delete(self, name: str) -> None:
        """Delete a saved model and its files; RegistryError for the shipped or the served model."""
        entry = self.get(name)
        if entry.shipped:
            raise RegistryError("the shipped model cannot be deleted")
        if name == self.served_name():
            raise RegistryError(f"{name} is the model every visitor gets; serve another one first")
        _remove_files(entry.path)

    def served_name(self) -> str | None:
        """The name in the served pointer, or None when there is none or it is unreadable."""
        name = _read_json(self.root / SERVED_FILE).get("name")
        return name if isinstance(name, str) else None

    def served(self) -> Entry:
        """The model every visitor gets: the promoted one, or the shipped one when that is gone or broken."""
        name = self.served_name()
        if name is None:
            return self.shipped()
        try:
            entry = self.get(name)
        except RegistryError:
            return self.shipped()
        return entry if entry.looks_valid() else self.shipped()

    def promote(self, name: str) -> Entry:
        """Serve `name` to everyone from now on, and after a restart."""
        entry = self.get(name)
        if not entry.looks_valid():
            raise RegistryError(f"{name} is not a readable model file")
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            pointer = {"name": entry.name, "promoted_at": _now()}
            _atomic_write_text(self.root / SERVED_FILE, json.dumps(pointer, indent=2) + "\n")
        return entry

    def prune(self, keep: int = MAX_MODELS) -> list[str]:
        """Delete the oldest saved models beyond `keep`, never the served one; the names deleted."""
        served = self.served_name()
        removed = []
        for entry in self.entries()[keep:]:
            if entry.name == served:
                continue
            _remove_files(entry.path)
            removed.append(entry.name)
        return removed

    def _entry(self, path: Path) -> Entry:
        return Entry(path.stem, path, _read_json(path.with_suffix(".json")))

    def _new_name(self, arch: str) -> str:
        stem = f"{arch}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        name, n = stem, 1
        while (self.root / f"{name}.keras").exists():
            n += 1
            name = f"{stem}-{n}"
        return name


def _remove_files(model_path: Path) -> None:
    # The .keras file first: without it the entry is gone, whatever happens to the others.
    for suffix in (".keras", ".tflite", ".layers.tflite", ".json"):
        model_path.with_name(model_path.stem + suffix).unlink(missing_ok=True)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
