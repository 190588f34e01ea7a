"""The corrections set: add, delete, clear, the .npz round trip, and refusing bad files."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digit.corrections import (
    CANVAS_SIZE,
    MAX_FILE_BYTES,
    CorrectionError,
    CorrectionSet,
    canvas_thumbnail,
    model_image,
)


def _canvas(seed: int = 0) -> np.ndarray:
    """A (280, 280, 4) canvas like the app's: white strokes on opaque black."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    top, left = rng.integers(20, 120, 2)
    canvas[top : top + 120, left : left + 20, :3] = 255
    return canvas


def _filled(n: int, max_items: int = 2_000) -> CorrectionSet:
    rng = np.random.default_rng(n)
    corrections = CorrectionSet(max_items)
    for i in range(n):
        corrections.add(rng.random((28, 28)).astype(np.float32), _canvas(i), i % 10, predicted=(i + 3) % 10)
    return corrections


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_add_keeps_the_model_input_canvas_label_and_guess():
    corrections = CorrectionSet()
    x = np.zeros((28, 28), np.float32)
    x[5:20, 12:15] = 1.0
    item = corrections.add(x, _canvas(), 7, predicted=1, timestamp=123.0)
    assert len(corrections) == 1 and corrections[0] is item
    assert item.image.dtype == np.uint8 and item.image[10, 13] == 255 and item.image[0, 0] == 0
    assert item.canvas.shape == (CANVAS_SIZE, CANVAS_SIZE) and item.canvas.dtype == np.uint8
    assert item.canvas.max() == 255 and item.canvas.min() == 0
    assert (item.label, item.predicted, item.timestamp, item.was_wrong) == (7, 1, 123.0, True)
    assert corrections.counts()[7] == 1 and corrections.counts().sum() == 1


def test_a_missing_canvas_is_replaced_by_the_enlarged_input():
    item = CorrectionSet().add(np.full((28, 28, 1), 200, np.uint8), None, 3)
    assert item.canvas.shape == (CANVAS_SIZE, CANVAS_SIZE) and item.predicted is None and not item.was_wrong


def test_delete_relabel_clear_and_iterate():
    corrections = _filled(5)
    removed = corrections.delete(1)
    assert removed.label == 1 and [c.label for c in corrections] == [0, 2, 3, 4]
    corrections.relabel(0, 9)
    assert corrections.labels.tolist() == [9, 2, 3, 4]
    with pytest.raises(IndexError):
        corrections.delete(10)
    corrections.clear()
    assert len(corrections) == 0 and corrections.images.shape == (0, 28, 28) and corrections.labels.shape == (0,)


def test_find_locates_an_identical_drawing():
    corrections = _filled(3)
    assert corrections.find(corrections[2].image) == 2
    assert corrections.find(np.zeros((28, 28), np.uint8)) is None


@pytest.mark.parametrize(
    ("model_input", "label"),
    [
        (np.zeros((27, 28), np.float32), 1),
        (np.full((28, 28), 2.0, np.float32), 1),
        (np.full((28, 28), np.nan, np.float32), 1),
        (np.zeros((28, 28), np.float32), 10),
        (np.zeros((28, 28), np.float32), True),
        (np.zeros((28, 28), np.float32), "7"),
    ],
)
def test_bad_inputs_and_labels_are_refused(model_input, label):
    with pytest.raises(CorrectionError):
        CorrectionSet().add(model_input, None, label)


def test_the_cap_is_enforced_on_add_and_extend():
    corrections = _filled(3, max_items=3)
    assert corrections.full
    with pytest.raises(CorrectionError, match="full"):
        corrections.add(np.zeros((28, 28), np.uint8), None, 0)
    with pytest.raises(CorrectionError, match="do not fit"):
        corrections.extend(_filled(4))


def test_extend_skips_drawings_already_there():
    corrections = _filled(4)
    again = CorrectionSet.from_npz_bytes(corrections.to_npz_bytes())
    assert corrections.extend(again) == 0 and len(corrections) == 4
    other = CorrectionSet()
    other.add(np.ones((28, 28), np.uint8), None, 5)
    assert corrections.extend(other) == 1 and len(corrections) == 5


def test_npz_round_trip_keeps_everything():
    corrections = _filled(25)
    corrections.add(np.zeros((28, 28), np.uint8), None, 4)  # no prediction known
    loaded = CorrectionSet.from_npz_bytes(corrections.to_npz_bytes())
    assert len(loaded) == 26
    for a, b in zip(corrections, loaded, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.canvas, b.canvas)
        assert (a.label, a.predicted, a.timestamp) == (b.label, b.predicted, b.timestamp)


def test_an_empty_set_round_trips():
    assert len(CorrectionSet.from_npz_bytes(CorrectionSet().to_npz_bytes())) == 0


def test_save_and_load_a_file(tmp_path):
    path = tmp_path / "sub" / "corrections.npz"
    assert len(CorrectionSet.load(path)) == 0  # no file yet: an empty set
    _filled(6).save(path)
    assert len(CorrectionSet.load(path)) == 6
    assert [p.name for p in path.parent.iterdir()] == ["corrections.npz"]  # no temporary file left behind


def _good_arrays(n: int = 3) -> dict[str, np.ndarray]:
    return _filled(n).to_arrays()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("labels"), "missing"),
        (lambda a: a.update(extra=np.zeros(3)), "unexpected"),
        (lambda a: a.update(format=np.array("something-else")), "format"),
        (lambda a: a.update(version=np.array(99)), "version"),
        (lambda a: a.update(labels=np.array([1, 2, 12], np.uint8)), "label"),
        (lambda a: a.update(labels=np.array([1, 2], np.uint8)), "disagree"),
        (lambda a: a.update(labels=np.array([1.0, 2.0, 3.0])), "labels must be"),
        (lambda a: a.update(images=np.zeros((3, 28, 29), np.uint8)), "images must be"),
        (lambda a: a.update(canvases=np.zeros((3, 28, 28), np.uint8)), "canvases must be"),
        (lambda a: a.update(predicted=np.array([0, 1, 42], np.int8)), "predicted"),
        (lambda a: a.update(timestamps=np.array([0.0, np.nan, 1.0])), "timestamp"),
        (lambda a: a.update(format=np.array([1, 2, 3])), "format"),
    ],
)
def test_a_broken_file_is_refused_with_a_reason(change, message):
    arrays = _good_arrays()
    change(arrays)
    with pytest.raises(CorrectionError, match=message):
        CorrectionSet.from_npz_bytes(_npz(**arrays))


def test_a_foreign_npz_is_refused(small_npz):
    with pytest.raises(CorrectionError, match="not a corrections file"):
        CorrectionSet.from_npz_bytes(small_npz.read_bytes())


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not really a zip", b"\x93NUMPY plain npy", bytes(range(256)) * 10])
def test_garbage_is_refused(data):
    with pytest.raises(CorrectionError):
        CorrectionSet.from_npz_bytes(data)


def test_a_truncated_file_is_refused():
    data = _filled(10).to_npz_bytes()
    with pytest.raises(CorrectionError):
        CorrectionSet.from_npz_bytes(data[: len(data) // 2])


def test_pickled_objects_are_refused():
    arrays = _good_arrays()
    arrays["labels"] = np.array([1, 2, 3], dtype=object)
    with pytest.raises(CorrectionError):
        CorrectionSet.from_npz_bytes(_npz(**arrays))


def test_too_many_items_or_bytes_are_refused():
    with pytest.raises(CorrectionError, match="limit is 3"):
        CorrectionSet.from_npz_bytes(_filled(4).to_npz_bytes(), max_items=3)
    with pytest.raises(CorrectionError, match="too large"):
        CorrectionSet.from_npz_bytes(b"0" * (MAX_FILE_BYTES + 1))


def test_a_header_claiming_a_huge_array_is_refused_before_reading():
    # A valid .npy header that declares 10^9 images, followed by no data.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in _good_arrays().items():
            with archive.open(f"{key}.npy", "w") as member:
                if key == "images":
                    np.lib.format.write_array_header_1_0(
                        member, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 28, 28)}
                    )
                else:
                    np.lib.format.write_array(member, value)
    with pytest.raises(CorrectionError, match="limit"):
        CorrectionSet.from_npz_bytes(buffer.getvalue())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(-1, 9), st.floats(0, 2e9)), max_size=12))
def test_round_trip_property(items):
    corrections = CorrectionSet()
    for i, (label, predicted, timestamp) in enumerate(items):
        image = np.full((28, 28), i, np.uint8)
        corrections.add(image, None, label, None if predicted < 0 else predicted, timestamp)
    loaded = CorrectionSet.from_npz_bytes(corrections.to_npz_bytes())
    assert np.array_equal(loaded.images, corrections.images) and np.array_equal(loaded.labels, corrections.labels)
    assert [c.predicted for c in loaded] == [c.predicted for c in corrections]
    assert [c.timestamp for c in loaded] == [c.timestamp for c in corrections]


def test_model_image_and_thumbnail_accept_the_usual_shapes():
    assert model_image(np.ones((28, 28), np.float64)).max() == 255
    assert canvas_thumbnail(np.zeros((100, 300), np.uint8)).shape == (CANVAS_SIZE, CANVAS_SIZE)
    light = np.full((280, 280, 3), 255, np.uint8)
    light[100:200, 130:150] = 0  # dark ink on white comes out as white ink on black
    thumb = canvas_thumbnail(light)
    assert thumb[75, 70] > 200 and thumb[5, 5] == 0
    with pytest.raises(CorrectionError):
        canvas_thumbnail(np.zeros((4, 4, 7), np.uint8))
