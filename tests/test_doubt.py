"""What is not one digit is not read as one (issue 13, part 3): several digits, scribbles."""

from __future__ import annotations

import numpy as np
import pytest

from digit.doubt import SCRIBBLE, SEVERAL_DIGITS, doubt_about, enclosed_holes
from digit.inference import Prediction, predict
from tests.test_number import PEN, strokes, write

SINGLE = (280, 280)


def one(shape: str, height: float = 200) -> np.ndarray:
    """A shape alone on the single-digit canvas, centred."""
    return write(strokes(shape, 140 - height * 0.3, height, bottom=140 + height / 2), size=SINGLE)


def pair(a: str, b: str, gap: float = 12) -> np.ndarray:
    """Two shapes side by side on the single-digit canvas, as "12" written there."""
    first = strokes(a, 20, 110)
    right = max(s[:, 0].max() for s in first) + PEN / 2
    return write(first, strokes(b, right + gap, 110), size=SINGLE)


@pytest.mark.parametrize("shape", ["0", "1", "2", "4 in two strokes", "5 in two strokes", "7 with a bar", "9"])
def test_one_digit_raises_no_doubt_even_in_strokes_that_do_not_touch(shape):
    assert doubt_about(one(shape)) is None


@pytest.mark.parametrize(("a", "b"), [("1", "2"), ("2", "0"), ("4", "7"), ("1", "1")])
def test_two_digits_on_the_single_canvas_are_several_digits(a, b):
    assert doubt_about(pair(a, b)) == SEVERAL_DIGITS


def test_a_tangle_of_loops_is_a_scribble_and_an_eight_is_not():
    loops = [
        np.array(
            [(140 + 90 * np.cos(t) + 25 * np.cos(7.3 * t), 140 + 60 * np.sin(1.7 * t)) for t in np.linspace(0, 12, 240)]
        )
    ]
    tangle = write(loops, size=SINGLE, pen=12)
    assert enclosed_holes(tangle[..., 0] > 128) > 3
    assert doubt_about(tangle) == SCRIBBLE
    eight = write(
        [np.array([(140 + 50 * np.sin(2 * t), 140 - 100 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 80)])],
        size=SINGLE,
    )
    assert enclosed_holes(eight[..., 0] > 128) == 2 and doubt_about(eight) is None


class Confident:
    """A predictor sure of one answer whatever it is shown, as a model trained on single digits is."""

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        out = np.full((len(images), 10), 0.001)
        out[:, 2] = 0.991
        return out


def test_a_confident_answer_on_two_digits_is_still_not_sure():
    p = predict(Confident(), pair("1", "2"))
    assert p.digit == 2 and p.confidence > 0.99
    assert p.doubt == SEVERAL_DIGITS and p.unsure
    alone = predict(Confident(), one("2"))
    assert alone.doubt is None and not alone.unsure


def test_a_blank_canvas_has_no_digit_and_no_doubt():
    blank = np.dstack([np.zeros((280, 280, 3), np.uint8), np.full((280, 280), 255, np.uint8)])
    p = predict(Confident(), blank)
    assert p.digit is None and p.doubt is None and not p.unsure


def test_doubt_is_keyword_only_so_subclasses_keep_their_fields():
    p = Prediction(3, np.eye(10)[3], None, doubt="x")
    assert p.unsure and Prediction(3, np.eye(10)[3], None).doubt is None


def test_on_real_pen_drawn_digits_one_digit_is_never_doubted_and_pairs_are():
    from benchmarks.number_accuracy import PENDIGITS, load_pendigits
    from benchmarks.real_drawing import SETTINGS, render, side_by_side

    if not PENDIGITS.is_file():
        pytest.skip(f"needs the real pen-drawn digits at {PENDIGITS}")
    digits = load_pendigits()[::25]
    rng = np.random.default_rng(0)
    for setting in ("typical", "thick pen", "small"):
        pen, height, off = SETTINGS[setting]
        doubted = [d.label for d in digits if doubt_about(render(d.strokes, pen, height, off, rng))]
        assert len(doubted) <= len(digits) // 100, f"{setting}: single digits doubted: {doubted}"
    pairs = [side_by_side(a, b, rng) for a, b in zip(digits[:100], digits[100:200], strict=True)]
    assert sum(doubt_about(p) == SEVERAL_DIGITS for p in pairs) >= 90
