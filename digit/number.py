"""Serving side: read a whole number, several digits written side by side, left to right.

    reading = read_number(predictor, image)   # reading.number: "2026" ("" for a blank image)
    reading.digits[0]                         # a Prediction (digit, probabilities, model_input) ...
    reading.digits[0].box                     # ... with its box: (x, y, width, height) in the image's pixels

How a drawing becomes digits (NumPy and OpenCV only; no TensorFlow):

1. the ink, as the single-digit preprocessing finds it (polarity, alpha, background), at a
   working size that keeps a wide canvas sharp;
2. connected pieces of ink; specks dropped;
3. pieces that overlap in x join: the flag of a 5, the bar of a 7, the detached end of a 9
   join the digit they sit on, and the two strokes of a 4 join when one holds the other;
   two tall narrow strokes (11) stay apart;
4. a piece that may hold several digits (much wider than a digit, or with a thin column where
   two digits touch) is cut at its thinnest columns, or down the seam where a stroke lies against
   its neighbour's (a 1 written close to a 0): of the possible cuts, the model's reading
   decides, with the parts' shapes: a digit is seldom wider than DIGIT_WIDTH, and digits side by
   side are each about as tall as the group, where a piece cut off one digit (a tail, a bar) is not;
5. dots, dashes and stray marks far smaller than the digits are not digits;
6. each digit goes through the same MNIST-style preprocessing as a single drawing, and all of
   them (and the alternatives of step 4) are read in one batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

from digit.inference import Prediction, as_predictor
from digit.preprocessing import (
    DOT_EXTENT,
    DOT_FILL,
    INK_THRESHOLD,
    MIN_EXTENT,
    NOISE_FLOOR,
    _background_level,
    _checked_array,
    _composite_on_contrast,
    _full_scale,
    _gray,
    _split_alpha,
    _to_unit_range,
    _unit,
    preprocess,
    stroke_width,
)
from digit.strokes import digit_order, stroke_masks

WORK_SIZE = 400  # longer side of the working image: a 700x220 canvas is read at 400x126
SPECK = 0.03  # ink pieces smaller than this fraction of the image's shorter side are noise
MAIN_HEIGHT = 0.5  # a piece at least this fraction of the digits' height is a digit or a large part of one
JOIN_OVERLAP = 0.5  # a piece joins another when this much of its width lies over it ...
HOLDER_WIDTH = 0.4  # ... and for two large pieces, when the wider one is this wide (the L of a 4 holds its stem)
MINOR_OVERLAP = 0.25  # a small piece (flag, bar, dot-like end) joins the digit it overlaps this much
MINOR_REACH = 0.15  # ... or, overlapping none, the nearest digit within this fraction of the height
FLOATING = 0.8  # a large piece this much shorter than its neighbour, ending this much higher, is part of it
NOT_A_DIGIT = 0.45  # a lone piece shorter than this fraction of the digits' height is a dot or a dash
THIN_CUT = 2.5  # a cut through at most this many pen widths of ink ...
MAX_STROKES_CUT = 1  # ... and this many strokes may be where two digits touch
GRAZE = 0.5  # ... not counting ink under this many pen widths: a stroke's edge grazed, a gap of a pixel
CUT_COST = -0.05  # a cut must make the reading this much more likely than no cut (log-likelihood) ...
MIN_PART_HEIGHT = 0.55  # ... each side of it keeps at least this fraction of the piece's height ...
FULL_HEIGHT = 0.85  # ... and a side shorter than this fraction (a tail, a bar, a loop cut off its digit) ...
HEIGHT_COST = 6.0  # ... loses this much log-likelihood per piece height it lacks: digits side by side are as tall
CUT_SPACING = 0.12  # candidate cuts start this fraction of the height apart (and half-way) ...
DISTINCT = 1.5  # ... and are kept when this many pen-wide squares of ink lie between them and any kept before
MAX_CUTS = 10  # candidate cuts looked at per group
CUT_REACH = 0.15  # a cut may lean or bend this fraction of the height either side of where it starts
PATH_STEP = 0.05  # a cut's cost per pixel of background (ink costs its intensity more) ...
PATH_TURN = 0.1  # ... per diagonal step (straight cuts are preferred) ...
PATH_ENTRY = 2.0  # ... and this many pen widths' worth of ink for entering a stroke
PEN_RUNS = 30  # a pen's width: this percentile of the runs of ink along rows (a seam's own runs are wider)
SEAM_WIDTHS = (1.4, 2.2)  # ink this many pen widths wide ...
SEAM_HEIGHT = 1.5  # ... over this many pen widths of height (not a bar) is two strokes side by side: a seam
DIGIT_WIDTH = 0.7  # digits are seldom wider than this many heights, a 1 ONE_WIDTH, others than NARROWEST ...
ONE_WIDTH = 0.55
NARROWEST = 0.3
WIDTH_COST = 2.0  # ... and a part's log-likelihood falls by this much per height of unusual width
PAD = 2  # pixels of background around each digit handed to preprocessing


@dataclass(frozen=True)
class DigitReading(Prediction):
    """One digit of a number: a Prediction, with where it was found."""

    box: tuple[int, int, int, int]  # (x, y, width, height) in the input image's pixels


@dataclass(frozen=True)
class NumberReading:
    """What was read in an image, left to right; no digits for a blank image."""

    digits: tuple[DigitReading, ...]

    @property
    def number(self) -> str:
        return "".join(str(d.digit) for d in self.digits)

    @property
    def unsure(self) -> bool:
        return any(d.unsure for d in self.digits)


def read_number(model_or_predictor, image: np.ndarray, strokes: Sequence[np.ndarray] | None = None) -> NumberReading:
    """Find the digits written in `image`, left to right, and read them all in one batch.

    `strokes`, where the image was drawn on a canvas that records them (digit.strokes.from_canvas):
    the pen's strokes, (N, 2) arrays of x, y in the image's pixels, in the order they were drawn.
    Digits are then found from the strokes (touching digits are separate strokes); the ink read is
    still the image's. Without strokes (None or none), or with more than MANY_STROKES (a scribble,
    whose reading by strokes would grow with them), digits are found from the ink alone.
    """
    ink, scale = ink_map(image)
    by_strokes = strokes is not None and 0 < len(strokes) <= MANY_STROKES
    groups = segment_strokes(ink, [np.asarray(s) * scale for s in strokes]) if by_strokes else segment(ink)
    parts = [part for group in groups for part in group.parts]
    inputs = [preprocess(part.ink) for part in parts]
    usable = [i for i, x in enumerate(inputs) if x is not None]
    if not usable:
        return NumberReading(())
    probabilities = as_predictor(model_or_predictor).probabilities(np.stack([inputs[i] for i in usable]))
    readings = {i: Prediction(int(p.argmax()), p, inputs[i]) for i, p in zip(usable, probabilities, strict=True)}
    digits, first = [], 0
    for group in groups:
        local = {i - first: r for i, r in readings.items() if first <= i < first + len(group.parts)}
        for index in _best_parts(group, local):
            reading, box = local[index], group.parts[index].box
            digits.append(
                DigitReading(reading.digit, reading.probabilities, reading.model_input, _in_image(box, scale))
            )
        first += len(group.parts)
    return NumberReading(tuple(sorted(digits, key=lambda d: d.box[0] + d.box[2] / 2)))


def _in_image(box: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    """A box at the working size in the input image's pixels."""
    x, y, w, h = box
    return (round(x / scale), round(y / scale), max(1, round(w / scale)), max(1, round(h / scale)))


# ---------------------------------------------------------------------------------------------
# ink


def ink_map(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Ink intensity in [0, 1] (as digit.preprocessing.ink_intensity) at the working size, and the scale to it.

    ink_intensity itself works at 160 px, right for one digit but too coarse for six side by side.
    """
    array = _checked_array(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8:
        array = _to_unit_range(array)
    height, width = array.shape[:2]
    scale = min(1.0, WORK_SIZE / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        array = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    color, alpha = _split_alpha(array)
    gray = _unit(_gray(color))
    if alpha is not None and alpha.min() < 0.98 * _full_scale(alpha):
        gray = _composite_on_contrast(gray, _unit(alpha))
    background = _background_level(gray)
    if background > 0.5:
        gray, background = 1.0 - gray, 1.0 - background
    ink = (gray - background) / max(1.0 - background, 1e-6)
    ink[ink < NOISE_FLOOR] = 0.0
    return np.clip(ink, 0.0, 1.0, out=ink).astype(np.float32, copy=False), scale


# ---------------------------------------------------------------------------------------------
# segmentation


@dataclass(frozen=True)
class Part:
    """Ink that may be one digit, at the working size."""

    ink: np.ndarray  # its ink alone, cropped to it with a margin of background
    box: tuple[int, int, int, int]  # (x, y, width, height) in the working image
    start: int = 0  # it lies between candidate cuts `start` and `end` of its group (0 and last: the ends)
    end: int = 1
    width: float = 0.0  # its width over the digits' height
    height: float = 1.0  # its height over its group's
    apart: bool = False  # drawn as strokes side by side, none reaching over another (11 written close)


@dataclass(frozen=True)
class Group:
    """A digit with its detached strokes, or several digits touching: the parts it may be read as."""

    parts: tuple[Part, ...]
    nodes: int = 2  # candidate cuts, the group's two ends included
    cut_costs: tuple[float, ...] = ()  # what each cut costs beyond CUT_COST (none given: nothing more)


@dataclass
class _Piece:
    """Connected ink (one or more components) and its bounding box."""

    labels: list[int]
    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def join(self, other: _Piece) -> None:
        right, bottom = max(self.right, other.right), max(self.bottom, other.bottom)
        self.labels = self.labels + other.labels
        self.x, self.y = min(self.x, other.x), min(self.y, other.y)
        self.w, self.h = right - self.x, bottom - self.y


def segment(ink: np.ndarray) -> list[Group]:
    """The groups of ink that are digits, left to right, each with the parts it may be read as."""
    pen = pen_width(ink >= INK_THRESHOLD)  # the whole number's: in a group all seam (1 against 1) runs are two pens
    return [_cut(group_ink, piece, height, pen) for piece, group_ink, height in _digit_groups(ink)]


def separate_digits(ink: np.ndarray) -> int:
    """How many digit-sized groups of ink stand side by side (touching digits count as one): cheap, no cuts."""
    return len(_digit_groups(ink))


def _digit_groups(ink: np.ndarray) -> list[tuple[_Piece, np.ndarray, float]]:
    """Each digit-sized group of ink, left to right: (its piece, its ink alone, the digits' height)."""
    mask = ink >= INK_THRESHOLD
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    speck = _speck(ink.shape)
    pieces = [
        _Piece([i], *(int(v) for v in stats[i, :4]))
        for i in range(1, count)
        if max(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]) > speck
    ]
    if not pieces:
        return []
    height = digit_height(pieces)
    groups = []
    for piece in sorted(_grouped(pieces, height), key=lambda g: g.x + g.w / 2):
        group_ink = _group_ink(ink, labels, piece)
        if _is_digit_sized(group_ink, piece, height, min(ink.shape)):
            groups.append((piece, group_ink, height))
    return groups


def _speck(shape: tuple[int, ...]) -> float:
    """Ink no wider or taller than this many pixels is a speck (noise), not a stroke."""
    return max(2.0, SPECK * min(shape))


def digit_height(pieces: list[_Piece]) -> float:
    """How tall the digits are written: the median height of the tall pieces."""
    tallest = max(p.h for p in pieces)
    return float(np.median([p.h for p in pieces if p.h >= 0.5 * tallest]))


def _grouped(pieces: list[_Piece], height: float) -> list[_Piece]:
    """Join the pieces of each digit: large pieces that hold one another, then small ones to their digit."""
    groups: list[_Piece] = []
    for piece in sorted((p for p in pieces if p.h >= MAIN_HEIGHT * height), key=lambda p: p.x):
        holder = next((g for g in groups if _holds(g, piece, height)), None)
        if holder is None:
            groups.append(_Piece(piece.labels, piece.x, piece.y, piece.w, piece.h))
        else:
            holder.join(piece)
    loose: list[_Piece] = []
    for piece in sorted((p for p in pieces if p.h < MAIN_HEIGHT * height), key=lambda p: -p.w * p.h):
        digit = _digit_of(groups, piece, height)
        if digit is None:
            loose.append(piece)
        else:
            digit.join(piece)
    small: list[_Piece] = []
    for piece in loose:  # what belongs to no digit: a small digit drawn in pieces, dots, dashes
        other = next((g for g in small if _overlap(g, piece) > 0), None)
        if other is None:
            small.append(_Piece(piece.labels, piece.x, piece.y, piece.w, piece.h))
        else:
            other.join(piece)
    return groups + small


def _overlap(a: _Piece, b: _Piece) -> int:
    return min(a.right, b.right) - max(a.x, b.x)


def _holds(group: _Piece, piece: _Piece, height: float) -> bool:
    """Two large pieces are one digit when one lies mostly over the other and the wider is digit-wide,
    or when the shorter ends high beside the other, as the first stroke of a 4 beside its stem."""
    overlap = _overlap(group, piece)
    if overlap >= JOIN_OVERLAP * min(group.w, piece.w) and max(group.w, piece.w) >= HOLDER_WIDTH * height:
        return True
    short, tall = sorted((group, piece), key=lambda p: p.h)
    return (
        -overlap <= MINOR_REACH * height
        and short.h <= FLOATING * tall.h
        and short.bottom <= tall.bottom - (1 - FLOATING) * tall.h
    )


def _digit_of(groups: list[_Piece], piece: _Piece, height: float) -> _Piece | None:
    """The digit a small piece belongs to: the one it overlaps most, else a close neighbour; None if none."""
    fraction, best = max(((_overlap(g, piece) / max(piece.w, 1), g) for g in groups), key=lambda t: t[0])
    if fraction >= MINOR_OVERLAP:
        return best
    gap, near = min(((max(g.x - piece.right, piece.x - g.right), g) for g in groups), key=lambda t: t[0])
    return near if gap <= MINOR_REACH * height else None


def _group_ink(ink: np.ndarray, labels: np.ndarray, piece: _Piece) -> np.ndarray:
    """The group's ink alone within its box (one pixel wider), anti-aliased edges included."""
    top, left = max(0, piece.y - 1), max(0, piece.x - 1)
    bottom, right = piece.bottom + 1, piece.right + 1
    window = labels[top:bottom, left:right]
    member = np.isin(window, piece.labels)
    fringe = cv2.dilate(member.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & (window == 0)
    return np.where(member | fringe, ink[top:bottom, left:right], 0.0).astype(np.float32)


def _is_digit_sized(group_ink: np.ndarray, piece: _Piece, height: float, short_side: int) -> bool:
    """Not a dot, a dash or a stray mark: by the single-digit rules, and against the other digits' height."""
    extent = max(piece.w, piece.h)
    if extent < MIN_EXTENT * short_side or piece.h < NOT_A_DIGIT * height:
        return False
    fill = float((group_ink >= INK_THRESHOLD).mean())
    return not (extent < DOT_EXTENT * short_side and fill > DOT_FILL)


def _cut(group_ink: np.ndarray, piece: _Piece, height: float, pen: float | None = None) -> Group:
    """The group as one part, or, where it may hold several digits, every part between two candidate cuts."""
    origin = (max(0, piece.x - 1), max(0, piece.y - 1))
    rows, width = group_ink.shape
    ends = (np.zeros(rows, np.int64), np.full(rows, width, np.int64))
    paths = [ends[0], *_candidate_cuts(group_ink, height, pen), ends[1]]
    columns = np.arange(width)
    parts = []
    for start in range(len(paths) - 1):
        for end in range(start + 1, len(paths)):
            between = (columns >= paths[start][:, None]) & (columns < paths[end][:, None])
            part = _part(np.where(between, group_ink, 0.0), origin)
            if part is None or (end - start < len(paths) - 1 and part.box[3] < MIN_PART_HEIGHT * piece.h):
                continue
            parts.append(Part(part.ink, part.box, start, end, part.box[2] / height, part.box[3] / piece.h))
    return Group(tuple(parts), len(paths))


def _part(ink: np.ndarray, origin: tuple[int, int]) -> Part | None:
    """The ink of a part of a group, cropped to it; None where there is none."""
    on = ink >= INK_THRESHOLD
    rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
    if rows.size == 0:
        return None
    top, left = max(0, rows[0] - 1), max(0, cols[0] - 1)
    crop = np.pad(ink[top : rows[-1] + 2, left : cols[-1] + 2], PAD)
    box = (origin[0] + int(cols[0]), origin[1] + int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
    return Part(crop, box)


def _candidate_cuts(ink: np.ndarray, height: float, run_pen: float | None = None) -> list[np.ndarray]:
    """Where two digits may meet: top-to-bottom paths through the least ink (each an array of columns, one per row).

    A path may lean and bend (digits overlap in x, a 1 leans into its neighbour); where two digits
    touch it crosses little ink, in one place (a cut through a 0 crosses two strokes), or runs down
    the seam of two strokes side by side. Paths with little ink between them cut the group alike:
    only the one crossing less ink is kept.
    """
    mask = ink >= INK_THRESHOLD
    width = mask.shape[1]
    margin = max(2, round(0.08 * height))
    if width < max(2 * margin + 1, 0.35 * height):
        return []
    spacing = max(2, round(CUT_SPACING * height))
    pen = max(1.0, stroke_width(mask.astype(np.float32)))
    starts = np.arange(margin, width - margin, max(1, spacing // 2))
    weight, run_pen = _seam_weight(mask, run_pen)
    paths = _cheapest_paths(ink * weight, mask, starts, round(CUT_REACH * height), PATH_ENTRY * pen)
    every_row = np.arange(mask.shape[0])
    on = mask[every_row, paths]  # (paths, rows): where each path crosses ink
    cost = on * weight[every_row, paths] / pen  # each row's ink crossed, in pen widths
    strokes = np.array([_strokes_crossed(row_on, row_cost) for row_on, row_cost in zip(on, cost, strict=True)])
    inside = (paths.min(axis=1) >= margin) & (paths.max(axis=1) < width - margin)
    crossing = cost.sum(axis=1)
    thin = (crossing <= THIN_CUT) & (strokes <= MAX_STROKES_CUT) & inside
    left_of = np.hstack([np.zeros((mask.shape[0], 1)), np.cumsum(mask, axis=1)])  # ink left of each column
    chosen: list[np.ndarray] = []
    for index in np.flatnonzero(thin)[np.argsort(crossing[thin], kind="stable")]:
        ink_left = left_of[every_row, paths[index]]
        if len(chosen) < MAX_CUTS and all(
            np.abs(ink_left - left_of[every_row, c]).sum() >= DISTINCT * run_pen**2 for c in chosen
        ):
            chosen.append(paths[index])
    return sorted(chosen, key=lambda c: c.mean())


def _strokes_crossed(on: np.ndarray, cost: np.ndarray) -> int:
    """How many strokes a path crosses: its runs in ink, those that only graze a stroke's edge left out."""
    run = np.cumsum(on & ~np.concatenate([[False], on[:-1]])) * on
    return int((np.bincount(run, weights=cost)[1:] >= GRAZE).sum())


def _seam_weight(mask: np.ndarray, pen: float | None = None) -> tuple[np.ndarray, float]:
    """How much each pixel of ink counts against a cut through it (1, except along a seam), and the pen's width.

    One pen draws strokes one pen wide (most rows cross strokes about a pen wide: a low percentile of
    the runs of ink); ink about two pens wide over a good height is two strokes side by side (a 1
    written against its neighbour's stem, a 0's side): down its middle, their seam, a cut costs little.
    """
    rows, width = mask.shape
    starts = mask & ~np.hstack([np.zeros((rows, 1), bool), mask[:, :-1]])
    run = np.where(mask, np.cumsum(starts, axis=1) + (np.arange(rows) * width)[:, None], 0)
    lengths = np.bincount(run.ravel(), minlength=rows * width + width)
    first = np.zeros_like(lengths)
    first[run[starts]] = np.flatnonzero(starts.ravel()) % width
    run_width, centre = lengths[run], first[run] + (lengths[run] - 1) / 2
    pen = pen_width(mask) if pen is None else pen
    wide = mask & (run_width >= SEAM_WIDTHS[0] * pen) & (run_width <= SEAM_WIDTHS[1] * pen)
    tall = max(1, round(SEAM_HEIGHT * pen))
    seam = cv2.morphologyEx(wide.view(np.uint8), cv2.MORPH_OPEN, np.ones((tall, 1), np.uint8)).view(bool)
    offset = np.abs(np.arange(width)[None, :] - centre) / np.maximum(run_width / 2, 1)
    return np.where(seam, np.clip(offset, 0.0, 1.0), 1.0).astype(np.float32), pen


def pen_width(mask: np.ndarray) -> float:
    """The pen's width in pixels: a low percentile (PEN_RUNS) of the runs of ink along the rows."""
    rows = np.pad(mask, ((0, 0), (1, 1))).view(np.int8)
    edges = np.diff(rows, axis=1)
    lengths = np.flatnonzero(edges.ravel() == -1) - np.flatnonzero(edges.ravel() == 1)
    return max(1.0, float(np.percentile(lengths, PEN_RUNS))) if lengths.size else 1.0


def _cheapest_paths(
    cost_ink: np.ndarray, mask: np.ndarray, columns: np.ndarray, reach: int, entry: float
) -> np.ndarray:
    """(len(columns), rows): for each start column, the top-to-bottom path through the least ink within `reach` of it.

    Each pixel costs its ink (`cost_ink`) and PATH_STEP, a diagonal step PATH_TURN more, and entering a stroke
    (`mask`) `entry` more: one long crossing (where two digits touch) is cheaper than two short ones (through a 0).
    """
    rows, width = cost_ink.shape
    bands = columns[:, None] + np.arange(-reach, reach + 1)  # (paths, band): the columns each path may use
    inside = (bands >= 0) & (bands < width)
    cost_of = np.where(inside, cost_ink[:, bands.clip(0, width - 1)] + PATH_STEP, np.inf)
    on = inside & mask[:, bands.clip(0, width - 1)]
    cost = cost_of[0] + entry * on[0]
    moves = np.zeros(cost_of.shape, np.int8)
    wall, dry = np.full((len(columns), 1), np.inf), np.zeros((len(columns), 1), bool)
    for row in range(1, rows):
        came = [  # from the left, straight above, from the right: the cost so far, and whether in ink there
            (np.hstack([wall, cost[:, :-1]]) + PATH_TURN, np.hstack([dry, on[row - 1][:, :-1]])),
            (cost, on[row - 1]),
            (np.hstack([cost[:, 1:], wall]) + PATH_TURN, np.hstack([on[row - 1][:, 1:], dry])),
        ]
        options = np.stack([total + entry * (on[row] & ~wet) for total, wet in came])
        choice = options.argmin(axis=0)
        cost = np.take_along_axis(options, choice[None], 0)[0] + cost_of[row]
        moves[row] = choice - 1  # -1: from the column to the left
    paths = np.empty((len(columns), rows), np.int64)
    paths[:, -1] = cost.argmin(axis=1)
    every = np.arange(len(columns))
    for row in range(rows - 1, 0, -1):
        paths[:, row - 1] = paths[:, row] + moves[row, every, paths[:, row]]
    return paths + bands[:, :1]


# ---------------------------------------------------------------------------------------------
# segmentation by strokes

STROKE_FRINGE = 2.0  # a stroke's ink lies within half a pen and this many pixels of its line
MAX_STROKES = 4  # a digit is written in at most this many strokes
MANY_STROKES = 40  # more strokes than this on one canvas are not a number of a few digits: read the ink alone
STROKE_GAP = 0.08  # the strokes of one digit leave no empty column wider than this fraction of the digits' height
NESTED = 0.6  # a stroke whose line lies this much within the last one's span in x (or holds it) ...
NESTED_COST = -1.5  # ... is less likely to begin a new digit by this much: a 4's stem in its bar, a 5's flag
APART_COST = 1.5  # log-likelihood lost by a part of tall strokes side by side: a digit's strokes reach over one another


def segment_strokes(ink: np.ndarray, strokes: Sequence[np.ndarray]) -> list[Group]:
    """The digits in `ink` drawn as `strokes` (x, y at the working size, in drawing order).

    One group whose candidate cuts lie between strokes: a digit is a run of strokes drawn one after
    another (digit.strokes.digit_order moves a stroke added to a digit later back beside it), and
    the model's reading and the parts' shapes choose the runs, as they choose cuts through ink.
    """
    mask = ink >= INK_THRESHOLD
    pen = pen_width(mask)
    regions = stroke_masks(strokes, ink.shape, pen / 2 + STROKE_FRINGE)
    boxes = [cv2.boundingRect((region & mask).view(np.uint8)) for region in regions]
    inked = [i for i, box in enumerate(boxes) if max(box[2], box[3]) > _speck(ink.shape)]
    if not inked:
        return []
    lines = [(s[:, 0].min(), s[:, 0].max()) for s in strokes]  # each stroke's line in x (touching ink: apart)
    height = _strokes_digit_height([_Piece([i], *boxes[i]) for i in inked], lines)
    kept = [i for i in inked if not _stray(boxes[i], [boxes[k] for k in inked if k != i], height)]
    order = [kept[i] for i in digit_order([boxes[k] for k in kept])]
    spans = [(*line, box[3] / height) for line, box in zip(lines, boxes, strict=True)]
    cores = stroke_masks(strokes, ink.shape, pen / 2 + 0.5)  # under the pen itself: a neighbour's ink, not a fringe
    parts = _stroke_runs(ink, mask, order, regions, cores, spans, height)
    nested = [_within([lines[a] for a in pair]) >= NESTED for pair in pairwise(order)]
    return [Group(tuple(parts), len(order) + 1, (0.0, *(NESTED_COST * n for n in nested), 0.0))]


def _strokes_digit_height(strokes: list[_Piece], lines: list[tuple[float, float]]) -> float:
    """How tall the digits are: strokes joined where their lines overlap, then as the ink's pieces are joined."""
    joined = _overlapping(strokes, lines)
    return digit_height(_grouped(joined, digit_height(joined)))  # _grouped joins copies, not `joined` itself


def _stroke_runs(
    ink: np.ndarray,
    mask: np.ndarray,
    order: list[int],
    regions: np.ndarray,
    cores: np.ndarray,
    spans: list[tuple[float, float, float]],
    height: float,
) -> list[Part]:
    """Each run of up to MAX_STROKES strokes (in `order`) as a part: the ink under its strokes' pens,
    less what lies only under other strokes' pens; runs with a gap too wide for one digit are left out."""
    under_a_pen = cores.any(axis=0)
    parts = []
    for start in range(len(order)):
        for end in range(start + 1, min(len(order), start + MAX_STROKES) + 1):
            members = order[start:end]
            others_only = under_a_pen & ~cores[members].any(axis=0)
            region = regions[members].any(axis=0) & ~others_only
            part = _part(np.where(region, ink, 0.0), (0, 0))
            if part is None or _widest_gap(region & mask) > STROKE_GAP * height:
                continue
            apart = _side_by_side([spans[k] for k in members])
            parts.append(Part(part.ink, part.box, start, end, part.box[2] / height, part.box[3] / height, apart))
    return parts


def _within(spans: list[tuple[float, float]]) -> float:
    """How much of the narrower of two x spans lies within the other (a point inside one: 1)."""
    (a0, a1), (b0, b1) = spans
    overlap = min(a1, b1) - max(a0, b0)
    narrower = min(a1 - a0, b1 - b0)
    return 0.0 if overlap < 0 else (1.0 if narrower <= 0 else overlap / narrower)


def _overlapping(strokes: list[_Piece], spans: list[tuple[float, float]]) -> list[_Piece]:
    """Strokes drawn one after another joined where their lines overlap in x: mostly a digit's strokes
    (a 4's top and its stem's foot are each shorter than the digit), while touching digits' lines stay apart."""
    joined: list[_Piece] = []
    low = high = 0.0
    for stroke in strokes:
        left, right = spans[stroke.labels[0]]
        if joined and left < high and right > low:
            joined[-1].join(stroke)
            low, high = min(low, left), max(high, right)
        else:
            joined.append(_Piece(stroke.labels, stroke.x, stroke.y, stroke.w, stroke.h))
            low, high = left, right
    return joined


def _side_by_side(spans: list[tuple[float, float, float]]) -> bool:
    """Whether strokes spanning these (left, right, height) fall into a left and a right set that do not overlap
    in x, each with a stroke as tall as a digit (11 written close; not the L of a 4 beside its stem)."""
    spans = sorted(spans)
    for split in range(1, len(spans)):
        left, right = spans[:split], spans[split:]
        if (
            max(s[1] for s in left) <= min(s[0] for s in right)
            and min(max(s[2] for s in left), max(s[2] for s in right)) >= FULL_HEIGHT
        ):
            return True
    return False


def _stray(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]], height: float) -> bool:
    """A dot or dash on its own: far shorter than the digits, and near no other stroke."""
    if box[3] >= NOT_A_DIGIT * height:
        return False
    reach = MINOR_REACH * height
    return all(box[0] - (o[0] + o[2]) > reach or o[0] - (box[0] + box[2]) > reach for o in others)


def _widest_gap(mask: np.ndarray) -> int:
    """The widest run of empty columns between columns with ink."""
    columns = np.flatnonzero(mask.any(axis=0))
    return int(np.diff(columns).max() - 1) if columns.size > 1 else 0


# ---------------------------------------------------------------------------------------------
# reading


def _best_parts(group: Group, readings: dict[int, Prediction]) -> list[int]:
    """The indexes of the parts that read the group best: most likely, each cut paying CUT_COST (and its own)."""
    best: list[tuple[float, list[int]] | None] = [None] * group.nodes
    best[0] = (0.0, [])
    for index, part in sorted(enumerate(group.parts), key=lambda t: t[1].start):
        reading = readings.get(index)
        if reading is None or best[part.start] is None:
            continue
        score, path = best[part.start]
        cut = CUT_COST + (group.cut_costs[part.start] if group.cut_costs else 0.0)
        score += _likelihood(part, reading) + (cut if path else 0.0)
        if best[part.end] is None or score > best[part.end][0]:
            best[part.end] = (score, [*path, index])
    return best[-1][1] if best[-1] is not None else []


def _likelihood(part: Part, reading: Prediction) -> float:
    """How likely the part is one digit, the one read: its confidence, less for a width unusual for it
    and for falling short of its group's height."""
    widest = ONE_WIDTH if reading.digit == 1 else DIGIT_WIDTH
    narrowest = 0.0 if reading.digit == 1 else NARROWEST
    unusual = max(0.0, part.width - widest) + max(0.0, narrowest - part.width)
    short = max(0.0, FULL_HEIGHT - part.height)
    apart = APART_COST if part.apart else 0.0
    return math.log(max(reading.confidence, 1e-9)) - WIDTH_COST * unusual - HEIGHT_COST * short - apart
