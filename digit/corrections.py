"""The person's own digits: drawings saved with the right label, for evaluation and fine-tuning.

    corrections = CorrectionSet()
    corrections.add(prediction.model_input, canvas_rgba, label=7, predicted=prediction.digit)
    data = corrections.to_npz_bytes()          # one file to download ...
    again = CorrectionSet.from_npz_bytes(data)  # ... and to upload again, checked strictly

Pure numpy: no TensorFlow, no Streamlit. A canvas is kept as a 140x140 grayscale thumbnail
(about 20 kB) beside the 28x28 image the model saw, so 2,000 corrections take about 40 MB.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digit.config import IMAGE_SIZE, NUM_CLASSES
from digit.preprocessing import ImageError, ink_intensity

FORMAT = "digit-corrections"
VERSION = 1
CANVAS_SIZE = 140  # the saved canvas: 280x280 halved, enough to preprocess again later
MAX_ITEMS = 2_000
MAX_FILE_BYTES = 64 * 1024 * 1024  # an uncompressed file of MAX_ITEMS is about 41 MB
NO_PREDICTION = -1

# Every key of the file, its dtype and its shape after the item count. Nothing else is accepted.
_SCHEMA: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "images": (np.dtype(np.uint8), (IMAGE_SIZE, IMAGE_SIZE)),
    "canvases": (np.dtype(np.uint8), (CANVAS_SIZE, CANVAS_SIZE)),
    "labels": (np.dtype(np.uint8), ()),
    "predicted": (np.dtype(np.int8), ()),
    "timestamps": (np.dtype(np.float64), ()),
}
_HEADER_KEYS = ("format", "version")


class CorrectionError(ValueError):
    """A correction, or a corrections file, that cannot be accepted; the message says why."""


@dataclass(frozen=True)
class Correction:
    """One saved drawing: what the model saw, what was drawn, the right digit and the model's guess."""

    image: np.ndarray  # (28, 28) uint8, white ink on black: the model input
    canvas: np.ndarray  # (140, 140) uint8 ink intensity of the original drawing
    label: int
    predicted: int | None  # the model's answer when it was saved; None if unknown
    timestamp: float  # seconds since the epoch

    @property
    def was_wrong(self) -> bool:
        return self.predicted is not None and self.predicted != self.label


class CorrectionSet:
    """A growing list of corrections, capped at MAX_ITEMS; iterate it, index it, save it."""

    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        self.max_items = max_items
        self._items: list[Correction] = []

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Correction]:
        return iter(list(self._items))

    def __getitem__(self, index: int) -> Correction:
        return self._items[index]

    @property
    def full(self) -> bool:
        return len(self._items) >= self.max_items

    def add(
        self,
        model_input: np.ndarray,
        canvas: np.ndarray | None,
        label: int,
        predicted: int | None = None,
        timestamp: float | None = None,
    ) -> Correction:
        """Save a drawing with its right label; `canvas` is any image (None: the model input stands in)."""
        if self.full:
            raise CorrectionError(f"the corrections set is full ({self.max_items} drawings); delete some first")
        image = model_image(model_input)
        item = Correction(
            image=image,
            canvas=canvas_thumbnail(canvas if canvas is not None else image),
            label=_checked_label(label),
            predicted=None if predicted is None else _checked_label(predicted, "predicted digit"),
            timestamp=time.time() if timestamp is None else float(timestamp),
        )
        self._items.append(item)
        return item

    def delete(self, index: int) -> Correction:
        """Remove and return the correction at `index` (IndexError if there is none)."""
        return self._items.pop(index)

    def relabel(self, index: int, label: int) -> None:
        """Give the correction at `index` another label."""
        item = self._items[index]
        self._items[index] = Correction(item.image, item.canvas, _checked_label(label), item.predicted, item.timestamp)

    def clear(self) -> None:
        """Remove every correction."""
        self._items.clear()

    def find(self, model_input: np.ndarray) -> int | None:
        """Index of the correction with exactly this model input, or None."""
        image = model_image(model_input)
        return next((i for i, item in enumerate(self._items) if np.array_equal(item.image, image)), None)

    def extend(self, other: CorrectionSet) -> int:
        """Add the corrections of `other` that are not here yet (same image and time); return how many."""
        seen = {(item.image.tobytes(), item.timestamp) for item in self._items}
        fresh = [item for item in other if (item.image.tobytes(), item.timestamp) not in seen]
        room = self.max_items - len(self._items)
        if len(fresh) > room:
            raise CorrectionError(
                f"{len(fresh)} new drawings do not fit: {len(self._items)} of {self.max_items} places are taken"
            )
        self._items.extend(fresh)
        return len(fresh)

    @property
    def images(self) -> np.ndarray:
        """(N, 28, 28) uint8 model inputs, as digit.evaluate and MNIST take them."""
        return _stack([item.image for item in self._items], (IMAGE_SIZE, IMAGE_SIZE), np.uint8)

    @property
    def labels(self) -> np.ndarray:
        """(N,) uint8 right digits."""
        return np.array([item.label for item in self._items], dtype=np.uint8)

    def counts(self) -> np.ndarray:
        """(10,) how many corrections there are of each digit."""
        return np.bincount(self.labels, minlength=NUM_CLASSES)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as one array per key, the layout of the .npz file."""
        return {
            "format": np.array(FORMAT),
            "version": np.array(VERSION, dtype=np.int64),
            "images": self.images,
            "canvases": _stack([item.canvas for item in self._items], (CANVAS_SIZE, CANVAS_SIZE), np.uint8),
            "labels": self.labels,
            "predicted": np.array(
                [NO_PREDICTION if item.predicted is None else item.predicted for item in self._items], dtype=np.int8
            ),
            "timestamps": np.array([item.timestamp for item in self._items], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], max_items: int = MAX_ITEMS) -> CorrectionSet:
        """Rebuild a set from `to_arrays` output, checking every value."""
        _check_arrays(arrays, max_items)
        corrections = cls(max_items)
        for image, canvas, label, predicted, timestamp in zip(
            *(arrays[key] for key in ("images", "canvases", "labels", "predicted", "timestamps")), strict=True
        ):
            guess = None if predicted == NO_PREDICTION else int(predicted)
            corrections._items.append(Correction(image.copy(), canvas.copy(), int(label), guess, float(timestamp)))
        return corrections

    def to_npz_bytes(self) -> bytes:
        """The whole set as one compressed .npz file."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self.to_arrays())
        return buffer.getvalue()

    @classmethod
    def from_npz_bytes(cls, data: bytes, max_items: int = MAX_ITEMS) -> CorrectionSet:
        """Read a file made by `to_npz_bytes`; anything else raises CorrectionError with the reason."""
        if len(data) > MAX_FILE_BYTES:
            raise CorrectionError(f"the file is too large ({len(data) / 1e6:.0f} MB); the limit is 64 MB")
        return cls.from_arrays(_read_npz(data, max_items), max_items)

    def save(self, path: str | Path) -> Path:
        """Write the set to `path` atomically: a crash leaves the old file or the new one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(self.to_npz_bytes())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path, max_items: int = MAX_ITEMS) -> CorrectionSet:
        """Read a set saved with `save`; an empty set if the file does not exist."""
        path = Path(path)
        if not path.is_file():
            return cls(max_items)
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CorrectionError(f"{path.name} is too large; the limit is 64 MB")
        return cls.from_npz_bytes(path.read_bytes(), max_items)


def model_image(model_input: np.ndarray) -> np.ndarray:
    """A (28, 28) model input, float in [0, 1] or uint8, as uint8."""
    array = np.asarray(model_input)
    if array.shape == (IMAGE_SIZE, IMAGE_SIZE, 1):
        array = array[..., 0]
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE) or array.dtype.kind not in "uf":
        raise CorrectionError(f"a model input is a (28, 28) image of numbers, not {array.shape} {array.dtype}")
    if array.dtype == np.uint8:
        return array.copy()
    if array.dtype.kind == "u" or not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise CorrectionError("a float model input must hold values from 0 to 1")
    return np.rint(array * 255.0).astype(np.uint8)


def canvas_thumbnail(image: np.ndarray) -> np.ndarray:
    """Any drawing (RGBA canvas, photo, 28x28 input) as a (140, 140) uint8 ink image, centred and padded square."""
    try:
        ink = ink_intensity(image)
    except ImageError as error:
        raise CorrectionError(f"the canvas image cannot be read: {error}") from error
    height, width = ink.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = ink
    interpolation = cv2.INTER_AREA if side > CANVAS_SIZE else cv2.INTER_LINEAR
    resized = cv2.resize(square, (CANVAS_SIZE, CANVAS_SIZE), interpolation=interpolation)
    return np.rint(np.clip(resized, 0.0, 1.0) * 255.0).astype(np.uint8)


def _checked_label(label: object, what: str = "label") -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < NUM_CLASSES:
        raise CorrectionError(f"a {what} is a digit from 0 to 9, not {label!r}")
    return int(label)


def _stack(arrays: list[np.ndarray], shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.stack(arrays).astype(dtype, copy=False) if arrays else np.zeros((0, *shape), dtype=dtype)


def _read_npz(data: bytes, max_items: int) -> dict[str, np.ndarray]:
    """The arrays of an .npz, after checking its names, dtypes and shapes before reading any data."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = {name.removesuffix(".npy"): name for name in archive.namelist()}
            _check_keys(set(names))
            return {key: _read_member(archive, names[key], key, max_items) for key in names}
    except CorrectionError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise CorrectionError(f"not a corrections file (.npz): {error}") from error


def _check_keys(keys: set[str]) -> None:
    expected = set(_SCHEMA) | set(_HEADER_KEYS)
    if "format" not in keys:
        found = ", ".join(sorted(keys)[:6]) or "nothing"
        raise CorrectionError(f"not a corrections file: it holds {found}")
    if keys != expected:
        missing, extra = sorted(expected - keys), sorted(keys - expected)
        raise CorrectionError(
            f"a broken corrections file: missing {missing or 'nothing'}, unexpected {extra or 'nothing'}"
        )


def _read_member(archive: zipfile.ZipFile, name: str, key: str, max_items: int) -> np.ndarray:
    # Check the declared size and the .npy header first, so a hostile file never makes us allocate much.
    if archive.getinfo(name).file_size > _member_limit(key, max_items):
        raise CorrectionError(f"a broken corrections file: {key} is larger than {max_items} drawings allow")
    with archive.open(name) as member:
        version = np.lib.format.read_magic(member)
        if version not in _HEADER_READERS:
            raise CorrectionError(f"a broken corrections file: {key} has an unknown .npy version {version}")
        shape, fortran_order, dtype = _HEADER_READERS[version](member)
        _check_header(key, shape, dtype, max_items)
        count = int(np.prod(shape, dtype=np.int64))
        raw = member.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise CorrectionError(f"a broken corrections file: {key} is cut short")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran_order else "C").copy()


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _member_limit(key: str, max_items: int) -> int:
    header_room = 4096
    if key in _HEADER_KEYS:
        return header_room + 1024
    dtype, shape = _SCHEMA[key]
    return header_room + max_items * dtype.itemsize * int(np.prod(shape, dtype=np.int64))


def _check_header(key: str, shape: tuple[int, ...], dtype: np.dtype, max_items: int) -> None:
    if key == "format":
        if dtype.kind != "U" or shape != () or dtype.itemsize > 256:
            raise CorrectionError("not a corrections file: its format field is not text")
        return
    if key == "version":
        if dtype.kind not in "iu" or shape != ():
            raise CorrectionError("a broken corrections file: its version is not a number")
        return
    expected_dtype, item_shape = _SCHEMA[key]
    if dtype != expected_dtype or len(shape) != 1 + len(item_shape) or tuple(shape[1:]) != item_shape:
        raise CorrectionError(
            f"a broken corrections file: {key} must be {expected_dtype} (N, {', '.join(map(str, item_shape))}), "
            f"not {dtype} {shape}"
        )
    if shape[0] > max_items:
        raise CorrectionError(f"the file holds {shape[0]} drawings; the limit is {max_items}")


def _check_arrays(arrays: dict[str, np.ndarray], max_items: int) -> None:
    """Values and consistency of the arrays of a file, after the headers passed."""
    if str(arrays["format"]) != FORMAT:
        raise CorrectionError(f"not a corrections file: its format is {str(arrays['format'])[:40]!r}")
    if int(arrays["version"]) != VERSION:
        raise CorrectionError(
            f"a corrections file of version {int(arrays['version'])}; this app reads version {VERSION}"
        )
    sizes = {key: len(arrays[key]) for key in _SCHEMA}
    if len(set(sizes.values())) != 1:
        raise CorrectionError(f"a broken corrections file: its arrays disagree on the number of drawings {sizes}")
    if sizes["labels"] > max_items:
        raise CorrectionError(f"the file holds {sizes['labels']} drawings; the limit is {max_items}")
    if (arrays["labels"] >= NUM_CLASSES).any():
        raise CorrectionError("a broken corrections file: a label is not a digit from 0 to 9")
    predicted = arrays["predicted"]
    if ((predicted != NO_PREDICTION) & ((predicted < 0) | (predicted >= NUM_CLASSES))).any():
        raise CorrectionError("a broken corrections file: a predicted digit is not from 0 to 9")
    if not np.isfinite(arrays["timestamps"]).all():
        raise CorrectionError("a broken corrections file: a timestamp is not a number")
