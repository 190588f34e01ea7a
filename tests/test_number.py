"""Reading whole numbers (digit/number.py): the segmentation's hard cases, the contract, the CLI."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

import digit
from digit.config import DEFAULT_MODEL_PATH, PROJECT_DIR
from digit.inference import Prediction
from digit.number import NumberReading, Part, _likelihood, _seam_weight, _strokes_crossed, read_number
from digit.preprocessing import ImageError
from tests.test_app import canvas_key

WIDE = (700, 220)  # the Number canvas
PEN = 22
BASELINE = 195


def _arc(cx, cy, rx, ry, start, end, n=24):
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a))) for a in np.linspace(start, end, n)
    ]


# Digits as a person draws them: strokes in a box one unit high (x right, y down).
SHAPES = {
    "0": [_arc(0.3, 0.5, 0.3, 0.5, -90, 275, 40)],
    "1": [[(0.1, 0.0), (0.1, 1.0)]],
    "2": [[*_arc(0.3, 0.28, 0.28, 0.28, 190, 370, 16), (0.0, 1.0), (0.62, 1.0)]],
    "4": [[(0.3, 0.0), (0.0, 0.62), (0.6, 0.62)], [(0.48, 0.1), (0.48, 1.0)]],
    "5": [[(0.12, 0.0), (0.08, 0.45), *_arc(0.3, 0.7, 0.3, 0.3, 230, 500, 24)], [(0.12, 0.0), (0.6, 0.0)]],
    "6": [[(0.5, 0.0), (0.06, 0.6), *_arc(0.3, 0.72, 0.27, 0.28, 180, -180, 30)]],
    "7": [[(0.0, 0.0), (0.62, 0.0), (0.22, 1.0)]],
    "9": [[*_arc(0.3, 0.28, 0.28, 0.28, 0, -360, 32), (0.58, 0.3), (0.52, 1.0)]],
    # Strokes of one digit that do not touch:
    "4 in two strokes": [[(0.28, 0.0), (0.0, 0.6), (0.36, 0.6)], [(0.58, 0.0), (0.58, 1.0)]],
    "5 in two strokes": [
        [(0.1, 0.05), (0.06, 0.45), *_arc(0.3, 0.7, 0.3, 0.3, 230, 500, 24)],
        [(0.32, 0.0), (0.7, 0.0)],
    ],
    "7 with a bar": [[(0.0, 0.0), (0.62, 0.0), (0.22, 1.0)], [(0.2, 0.55), (0.6, 0.55)]],
    "9 with a dot-like end": [[*_arc(0.3, 0.28, 0.28, 0.28, 0, -360, 32), (0.58, 0.3), (0.55, 0.72)], [(0.545, 0.93)]],
}


def strokes(shape: str, left: float, height: float = 150, bottom: float = BASELINE) -> list[np.ndarray]:
    """A shape's strokes in canvas pixels: its ink `height` tall (pen included), its left edge at `left`."""
    inner = height - PEN
    return [np.array(s, np.float64) * inner + (left + PEN / 2, bottom - height + PEN / 2) for s in SHAPES[shape]]


def write(*digits: list[np.ndarray], size=WIDE, pen: int = PEN) -> np.ndarray:
    """Strokes drawn as the canvas draws them: white, round, anti-aliased, on opaque black RGBA."""
    ink = np.zeros((size[1], size[0]), np.uint8)
    for stroke in (s for d in digits for s in d):
        points = np.round(stroke * 16).astype(np.int32).reshape(-1, 1, 2)
        if len(points) == 1:
            cv2.circle(ink, tuple(int(v) for v in points[0, 0]), pen * 8, 255, -1, cv2.LINE_AA, 4)
        else:
            cv2.polylines(ink, [points], False, 255, pen, cv2.LINE_AA, 4)
    return np.dstack([ink, ink, ink, np.full_like(ink, 255)])


def side_by_side(*shapes: str, gap: float = 40, height: float = 150, left: float = 60) -> np.ndarray:
    """Shapes written left to right with `gap` pixels between their boxes (negative: overlapping)."""
    digits = []
    for shape in shapes:
        digits.append(strokes(shape, left, height))
        right = max(s[:, 0].max() for s in digits[-1]) + PEN / 2
        left = right + gap
    return write(*digits)


def touching(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two digits' ink meets."""
    return bool(((a[..., 0] > 128) & (b[..., 0] > 128)).any())


@pytest.fixture(scope="module")
def predictor():
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip(f"needs the shipped model at {DEFAULT_MODEL_PATH}")
    return digit.load_predictor()


class Counting:
    """A predictor that counts its calls."""

    def __init__(self, inner) -> None:
        self.inner, self.calls, self.engine, self.note = inner, 0, inner.engine, ""

    def probabilities(self, images):
        self.calls += 1
        return self.inner.probabilities(images)


# The contract


def test_a_number_is_read_left_to_right_each_digit_a_prediction_with_its_box(predictor):
    reading = read_number(predictor, side_by_side("2", "0", "4", "6"))
    assert isinstance(reading, NumberReading)
    assert reading.number == "2046"
    assert [d.digit for d in reading.digits] == [2, 0, 4, 6]
    lefts = [d.box[0] for d in reading.digits]
    assert lefts == sorted(lefts)
    for d in reading.digits:
        assert isinstance(d, Prediction) and d.model_input.shape == (28, 28)
        x, y, w, h = d.box
        assert min(x, y) >= 0 and x + w <= WIDE[0] and y + h <= WIDE[1]
        assert 120 <= h <= 160, "the box holds the digit's ink"


def test_boxes_are_in_the_input_images_pixels(predictor):
    small = side_by_side("7", "1")
    large = cv2.resize(small, (1400, 440), interpolation=cv2.INTER_LINEAR)
    boxes = [d.box for d in read_number(predictor, small).digits]
    scaled = [d.box for d in read_number(predictor, large).digits]
    assert len(boxes) == len(scaled) == 2
    for box, twice in zip(boxes, scaled, strict=True):
        assert np.allclose(np.array(twice), 2 * np.array(box), atol=6)


def test_all_digits_are_read_in_one_batch(predictor):
    counting = Counting(predictor)
    assert read_number(counting, side_by_side("1", "2", "4", "5", "6", "7", gap=20, height=110)).number == "124567"
    assert counting.calls == 1


@pytest.mark.parametrize("image", [np.zeros((220, 700, 4), np.uint8), np.zeros((220, 700), np.float32)])
def test_a_blank_canvas_is_no_number(predictor, image):
    image[..., -1:] = 255 if image.ndim == 3 else 0
    counting = Counting(predictor)
    reading = read_number(counting, image)
    assert reading.number == "" and reading.digits == () and not reading.unsure
    assert counting.calls == 0


def test_a_stray_dot_or_a_speck_is_not_a_digit(predictor):
    dot = [np.array([[400.0, 110.0]])]
    assert read_number(predictor, write(dot)).number == ""
    reading = read_number(predictor, write(strokes("7", 80), dot, [np.array([[520.0, 60.0], [523.0, 62.0]])]))
    assert reading.number == "7"
    assert reading.digits[0].box[0] + reading.digits[0].box[2] < 200, "the dot is not part of the 7"


def test_anything_else_is_an_image_error_not_a_crash(predictor):
    with pytest.raises(ImageError):
        read_number(predictor, np.full((50, 50), np.nan))
    assert read_number(predictor, np.zeros((1, 1), np.uint8)).number == ""


def test_a_photo_of_a_written_number_dark_on_light_reads_the_same(predictor):
    rng = np.random.default_rng(0)
    drawn = side_by_side("2", "0", "7")
    paper = 235 - drawn[..., 0].astype(np.float32) * (200 / 255) + rng.normal(0, 6, drawn.shape[:2])
    photo = cv2.GaussianBlur(np.clip(paper, 0, 255).astype(np.uint8), (3, 3), 0)
    assert read_number(predictor, np.dstack([photo] * 3)).number == "207"


# The segmentation's hard cases


@pytest.mark.parametrize(
    ("shape", "digit_"),
    [("4 in two strokes", "4"), ("5 in two strokes", "5"), ("9 with a dot-like end", "9")],
)
def test_strokes_of_one_digit_that_do_not_touch_are_one_digit(predictor, shape, digit_):
    pieces = [write([s]) for s in strokes(shape, 100)]
    assert not any(touching(a, b) for i, a in enumerate(pieces) for b in pieces[i + 1 :]), "the strokes are apart"
    assert read_number(predictor, write(strokes(shape, 100))).number == digit_
    number = read_number(predictor, side_by_side("1", shape, "2", gap=30))
    assert number.number == f"1{digit_}2"


def test_a_7_with_a_bar_is_one_digit_not_cut_at_its_bar(predictor):
    assert read_number(predictor, write(strokes("7 with a bar", 100))).number == "7"
    assert read_number(predictor, side_by_side("7 with a bar", "7 with a bar", "1", gap=20)).number == "771"


def test_touching_zeros_are_two_digits(predictor):
    first, second = strokes("0", 150), strokes("0", 150 + 0.6 * 128 + PEN - 4)
    assert touching(write(first), write(second))
    reading = read_number(predictor, write(first, second))
    assert reading.number == "00"
    (a, b) = reading.digits
    assert a.box[0] + a.box[2] <= b.box[0] + PEN, "cut where they touch"


def test_touching_digits_in_a_longer_number_are_separated(predictor):
    reading = read_number(predictor, side_by_side("2", "0", "0", "6", gap=-4))
    assert reading.number == "2006"


def test_ones_written_close_are_two_digits(predictor):
    assert read_number(predictor, side_by_side("1", "1", gap=6)).number == "11"
    slanted = [[np.array([[210.0, 45.0], [180.0, 195.0]])], [np.array([[245.0, 45.0], [215.0, 195.0]])]]
    assert not touching(write(slanted[0]), write(slanted[1]))
    assert read_number(predictor, write(*slanted)).number == "11"


def test_digits_overlapping_slightly_in_x_are_separated(predictor):
    assert read_number(predictor, side_by_side("7", "2", "5", gap=-12)).number == "725"


@pytest.mark.parametrize("pair", ["14", "17", "41", "71", "10", "01", "19"])
def test_a_1_touching_its_neighbour_is_a_digit_of_its_own(predictor, pair):
    first, second = strokes(pair[0], 100), strokes(pair[1], 300)
    overlap = min(s[:, 0].min() for s in second) - max(s[:, 0].max() for s in first) - PEN + 6
    second = [s - (overlap, 0) for s in second]  # the ink of the second overlaps the first's by 6 px
    assert touching(write(first), write(second))
    assert read_number(predictor, write(first, second)).number == pair


def written_touching(*shapes: str, overlap: float = 8, left: float = 60) -> list[list[np.ndarray]]:
    """Shapes written left to right, each one's ink running `overlap` px into the last one's (0: just touching)."""
    digits = []
    for shape in shapes:
        digit = strokes(shape, left)
        if digits:
            shift = min(s[:, 0].min() for s in digit) - max(s[:, 0].max() for s in digits[-1]) - PEN + overlap
            digit = [s - (shift, 0) for s in digit]
        digits.append(digit)
        left = max(s[:, 0].max() for s in digit) + PEN
    return digits


def overlapping(first: str, second: str, overlap: float) -> np.ndarray:
    """Two shapes written with the second's ink overlapping the first's by `overlap` px (0: just touching)."""
    return write(*written_touching(first, second, overlap=overlap, left=100))


def test_a_cut_that_grazes_a_strokes_edge_crosses_no_stroke(predictor):
    assert _strokes_crossed(np.array([0, 1, 1, 0, 0, 1, 1, 1], bool), np.array([0, 0.1, 0.1, 0, 0, 0.4, 0.4, 0.4])) == 1
    # the 2's arc ends a pixel from the 1, its base meets the 1's foot: the cut between them grazes the arc
    assert read_number(predictor, overlapping("1", "2", 0)).number == "12"


def test_two_strokes_side_by_side_are_cheap_to_cut_down_their_seam_one_stroke_is_not():
    zero = np.zeros((130, 140), np.uint8)
    cv2.ellipse(zero, (60, 65), (40, 55), 0, 0, 360, 1, 13)
    weight, pen = _seam_weight(zero.astype(bool))
    assert 11 <= pen <= 16 and weight.min() == 1.0, "strokes a pen wide: no seam"
    ten = zero.copy()
    cv2.line(ten, (10, 10), (10, 120), 1, 13)  # a 1 written against the 0's side: ink about 1.5 pens wide
    weight, _ = _seam_weight(ten.astype(bool))
    seam = weight[50:80, 5:30]
    assert seam.min() < 0.2 and weight[65, 5] > 0.6, "cheap down the middle, not at the sides"
    bar = zero.copy()
    bar[59:72, 100:140] = 1  # a bar against the 0's side: wide ink, but only a pen tall
    assert _seam_weight(bar.astype(bool))[0][50:80, 90:].min() == 1.0


def test_a_wide_digit_is_not_cut_in_two(predictor):
    wide = [np.column_stack([100 + 1.8 * (s[:, 0] - 100), s[:, 1]]) for s in strokes("4", 100)]
    assert read_number(predictor, write(wide)).number == "4"


def test_a_part_short_of_its_groups_height_is_less_likely_a_digit():
    reading = Prediction(6, np.full(10, 0.01) + 0.9 * np.eye(10)[6], None)
    full, short = (Part(np.zeros((1, 1)), (0, 0, 1, 1), width=0.6, height=h) for h in (1.0, 0.6))
    assert _likelihood(short, reading) < _likelihood(full, reading) == pytest.approx(math.log(0.91))


# Where it runs


SERVER_SIDE = """
import sys
import numpy as np
import digit
reading = digit.read_number(digit.load_predictor(), np.zeros((220, 700, 4), np.uint8))
print(reading.number == "", "tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_reading_a_number_never_imports_tensorflow(predictor):
    done = subprocess.run(
        [sys.executable, "-c", SERVER_SIDE], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False", "False"]


def test_the_cli_reads_numbers_as_json_lines(predictor, tmp_path):
    number, blank, broken = tmp_path / "number.png", tmp_path / "blank.png", tmp_path / "broken.png"
    cv2.imwrite(str(number), 255 - side_by_side("2", "0", "4", "6")[..., 0])  # dark on light, as on paper
    cv2.imwrite(str(blank), np.zeros((220, 700), np.uint8))
    broken.write_bytes(b"not an image")
    command = [sys.executable, "-m", "digit", "predict", "--number", str(number), str(blank), str(broken)]
    done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, "a file failed"
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(number), str(blank), str(broken)]
    assert lines[0]["number"] == "2046"
    assert [d["digit"] for d in lines[0]["digits"]] == [2, 0, 4, 6]
    assert all(0 < d["confidence"] <= 1 and len(d["box"]) == 4 for d in lines[0]["digits"])
    assert lines[1] == {"file": str(blank), "number": "", "digits": []}
    assert "error" in lines[2]


# The Number mode in the app (tests/number_app.py shows it alone, as the Draw page will)

NUMBER_APP = str(PROJECT_DIR / "tests" / "number_app.py")


def number_app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(NUMBER_APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_number_mode_starts_blank_with_a_wide_canvas(predictor):
    at = number_app()
    assert [c.key for c in at.get("bidi_component")] == [canvas_key(at, "number_canvas_700")]
    assert metric(at, "Number") == "–"
    assert any("Write a number" in c.value for c in at.caption)


def test_after_a_stroke_the_number_each_digit_and_the_boxes_show(predictor):
    from tests.test_app import canvas_key, canvas_value

    at = number_app()
    at.session_state[canvas_key(at, "number_canvas_700")] = canvas_value(side_by_side("2", "0", "4", "6"))
    at.run()
    assert not at.exception, at.exception
    assert metric(at, "Number") == "2046"
    [chips] = [h.proto.body for h in at.get("html") if "number-digits" in h.proto.body]
    assert [int(d) for d in re.findall(r"<strong>(\d)</strong>", chips)] == [2, 0, 4, 6]
    images = at.get("image")
    assert len(images) == 2, "the digits' 28x28 inputs and the drawing with its boxes"
    at.session_state[canvas_key(at, "number_canvas_700")] = canvas_value(
        np.dstack([np.zeros((220, 700, 3), np.uint8), np.full((220, 700), 255, np.uint8)])
    )
    at.run()
    assert metric(at, "Number") == "–", "cleared"


def test_an_unsure_digit_says_not_sure():
    from streamlit.testing.v1 import AppTest

    def script():
        import numpy as np

        from app_pages.parts.number_mode import show_reading
        from digit.number import DigitReading, NumberReading

        unsure = np.full(10, 0.02)
        unsure[[1, 7]] = [0.3, 0.54]
        sure = np.eye(10)[4]
        digits = (
            DigitReading(7, unsure, np.zeros((28, 28), np.float32), (10, 10, 50, 100)),
            DigitReading(4, sure, np.zeros((28, 28), np.float32), (80, 10, 50, 100)),
        )
        show_reading(NumberReading(digits), np.zeros((220, 700), np.uint8), "", "")

    at = AppTest.from_function(script, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning] == ["Not sure about digit 1: 7 or 1?"]
    [chips] = [h.proto.body for h in at.get("html") if "number-digits" in h.proto.body]
    assert "54%, not sure: 7 or 1?" in chips and 'class="number-digit unsure"' in chips


def test_an_uploaded_photo_of_a_number_is_read_and_a_bad_file_explained(predictor):
    at = number_app()
    at.radio(key="number_source").set_value("Upload").run()
    photo = cv2.imencode(".png", 240 - side_by_side("7", "0", "5")[..., 0] * 0.8)[1].tobytes()
    at.file_uploader(key="number_upload").set_value(("year.png", photo, "image/png")).run()
    assert not at.exception and not at.error
    assert metric(at, "Number") == "705"
    at.file_uploader(key="number_upload").set_value(("notes.png", b"not an image", "image/png")).run()
    assert at.error[0].value.startswith("Cannot read notes.png")
    assert metric(at, "Number") == "–"
