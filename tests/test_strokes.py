"""Reading a number from the canvas's strokes (digit/strokes.py, digit.number.segment_strokes).

The Number canvas records each stroke in the order it was drawn: digits whose ink touches are still
separate strokes, so they are told apart where the ink alone cannot tell them apart.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

import digit
from digit.config import DEFAULT_MODEL_PATH
from digit.number import FULL_HEIGHT, MANY_STROKES, ink_map, read_number, segment_strokes
from digit.strokes import digit_order, from_canvas, stroke_masks
from tests.test_number import PEN, strokes, touching, write, written_touching


@pytest.fixture(scope="module")
def predictor():
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip(f"needs the shipped model at {DEFAULT_MODEL_PATH}")
    return digit.load_predictor()


def fabric(*digits: list[np.ndarray]) -> dict:
    """The canvas's JSON for these strokes, as streamlit-drawable-canvas 0.13 (fabric.js 7) records them:
    a path from the first point, a quadratic curve through each next one to the middle of the one after."""
    objects = []
    for stroke in (s.tolist() for d in digits for s in d):
        curves = [["Q", *p, (p[0] + q[0]) / 2, (p[1] + q[1]) / 2] for p, q in pairwise(stroke[1:])]
        path = [["M", *stroke[0]], *curves, ["L", *stroke[-1]]]
        objects.append({"type": "Path", "originX": "center", "strokeWidth": PEN, "path": path})
    return {"version": "7.4.0", "objects": objects}


def read(predictor, *digits: list[np.ndarray]) -> str:
    """The number read from the canvas's pixels and its strokes, as the Number mode reads it."""
    return read_number(predictor, write(*digits), from_canvas(fabric(*digits))).number


# The canvas's JSON


def test_strokes_are_read_from_the_canvas_json_in_drawing_order():
    drawing = {
        "objects": [
            {"type": "Path", "path": [["M", 99.98, 49.98], ["Q", 100, 50, 102.5, 52.5], ["L", 200.02, 150.02]]},
            {"type": "rect", "left": 3, "top": 4},
            {"type": "Path", "path": [["M", 10, 20]]},
            {"type": "Path", "path": []},
            {"type": "Path", "path": [["M", "x", None], "junk", ["L", 5, float("nan")]]},
        ]
    }
    first, dot = from_canvas(drawing)
    np.testing.assert_allclose(first, [[99.98, 49.98], [100, 50], [102.5, 52.5], [200.02, 150.02]])
    np.testing.assert_allclose(dot, [[10, 20]])
    assert from_canvas(None) == [] and from_canvas({}) == [] and from_canvas({"objects": None}) == []


def test_a_strokes_mask_covers_its_line_and_its_pen():
    line, dot = np.array([[10.0, 10.0], [40.0, 10.0]]), np.array([[70.0, 30.0]])
    masks = stroke_masks([line, dot], (50, 100), reach=4)
    assert masks.shape == (2, 50, 100)
    assert masks[0, 10, 10:41].all() and masks[0, 13, 25] and not masks[0, 16, 25]
    assert masks[1, 30, 70] and masks[1, 33, 70] and not masks[1, 10, 25]


def test_a_stroke_added_to_an_earlier_digit_later_goes_back_beside_it():
    seven, bar_of_seven, three = (0, 0, 50, 100), (10, 50, 40, 8), (80, 0, 50, 100)
    assert digit_order([seven, three, bar_of_seven]) == [0, 2, 1]
    four_l, four_stem, one = (0, 0, 40, 60), (30, 0, 10, 100), (70, 0, 10, 100)
    assert digit_order([four_l, four_stem, one]) == [0, 1, 2], "strokes drawn one after another stay"


# Reading from strokes


@pytest.mark.parametrize("number", [("1", "0", "1", "9"), ("2", "0", "0", "6"), ("0", "0"), ("1", "4"), ("7", "1")])
def test_touching_digits_are_told_apart_by_their_strokes(predictor, number):
    digits = written_touching(*number, overlap=10)
    assert all(touching(write(a), write(b)) for a, b in pairwise(digits)), "each digit's ink meets the next's"
    assert read(predictor, *digits) == "".join(number)


def test_digits_written_deep_into_each_other_are_still_two(predictor):
    digits = written_touching("0", "0", overlap=40)  # the second 0's side runs through the first's
    assert read(predictor, *digits) == "00"


@pytest.mark.parametrize(
    ("shape", "digit_"),
    [("4 in two strokes", "4"), ("5 in two strokes", "5"), ("7 with a bar", "7"), ("9 with a dot-like end", "9")],
)
def test_the_strokes_of_one_digit_are_one_digit(predictor, shape, digit_):
    assert read(predictor, strokes(shape, 100)) == digit_
    assert read(predictor, *written_touching("1", shape, "2", overlap=0)) == f"1{digit_}2"


def test_a_digit_whose_strokes_are_each_shorter_than_it_is_one_digit(predictor):
    top = np.array([[0.35, 0.0], [0.0, 0.62], [0.62, 0.62], [0.5, 0.3]]) * 128 + (111, 56)  # down, across, up
    foot = np.array([[0.5, 0.55], [0.5, 1.0]]) * 128 + (111, 56)  # the stem's foot, drawn on its own
    assert read(predictor, [top, foot]) == "4"
    assert read(predictor, strokes("1", 40), [top, foot], strokes("2", 260)) == "142"
    ink, scale = ink_map(write([top, foot]))
    [group] = segment_strokes(ink, [top * scale, foot * scale])
    heights = {(p.start, p.end): p.height for p in group.parts}
    assert heights[(0, 2)] == pytest.approx(1.0, abs=0.05), "the digit is as tall as the digits"
    assert heights[(0, 1)] < FULL_HEIGHT and heights[(1, 2)] < FULL_HEIGHT, "each stroke alone falls short of it"


def test_ones_written_close_are_two_digits(predictor):
    assert read(predictor, strokes("1", 100), strokes("1", 100 + PEN + 6)) == "11"


def test_a_bar_added_after_the_next_digit_joins_its_7(predictor):
    seven, three = strokes("7 with a bar", 60), strokes("9", 260)
    assert read(predictor, [seven[0]], three, [seven[1]]) == "79"


def test_a_stray_dot_is_not_a_digit(predictor):
    dot = [np.array([[600.0, 60.0]])]
    assert read(predictor, strokes("2", 60), strokes("4", 250), dot) == "24"


def test_a_scribble_of_many_strokes_is_read_from_its_ink(predictor):
    rng = np.random.default_rng(0)
    scribble = [np.cumsum(rng.normal(0, 15, (8, 2)), axis=0) + rng.uniform((50, 50), (650, 170)) for _ in range(200)]
    assert len(scribble) > MANY_STROKES
    image = write(scribble)
    assert read_number(predictor, image, scribble).number == read_number(predictor, image).number


def test_without_strokes_the_ink_alone_is_read(predictor):
    image = write(strokes("2", 60), strokes("7", 260))
    assert read_number(predictor, image, []).number == read_number(predictor, image).number == "27"


def test_strokes_are_in_the_images_pixels_whatever_its_size(predictor):
    digits = written_touching("2", "6", overlap=10)
    half = write(*[[s / 2 for s in d] for d in digits], size=(350, 110), pen=PEN // 2)
    assert read_number(predictor, half, [s / 2 for d in digits for s in d]).number == "26"


# The Number mode's page


def test_the_number_mode_reads_the_canvas_strokes(predictor):
    from tests.test_app import canvas_value
    from tests.test_number import metric, number_app

    digits = written_touching("1", "0", "1", "9", overlap=10)
    value = canvas_value(write(*digits))
    value["drawing"]["raw"] = fabric(*digits)  # the strokes as the canvas records them, beside its pixels
    at = number_app()
    at.session_state["number_canvas_700"] = value
    at.run()
    assert not at.exception, at.exception
    assert metric(at, "Number") == "1019"
