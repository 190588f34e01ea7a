"""Benchmark: reading whole numbers written on the Number canvas, against reading the same digits alone.

    python benchmarks/number_accuracy.py                       # pendigits-dev, 2-6 digits: about 2 minutes on 2 cores
    python benchmarks/number_accuracy.py --quick               # fewer numbers (about 30 s)
    python benchmarks/number_accuracy.py --source templates    # the development set: digit/drawn.py's templates

Numbers are built from real pen trajectories (../shared/data/pendigits-dev, a measuring set:
nothing here is fitted on it): 2 to 6 digits of one writer side by side on the 700x220 canvas,
each digit its own height (the number's size +-12%) and baseline (+-6%), with random gaps
(from a slight overlap of 10% of the height to 40% of it, a fifth of them exactly 0), drawn
as the canvas draws: white, round-capped, anti-aliased strokes of the page's pen (22 px) on
opaque black. "Touching" numbers move each digit left until its ink meets its neighbour's.
Each digit is also drawn alone, at the same height and pen, on the single-digit 280x280
canvas: the single-digit accuracy on the same digits, so the cost of segmentation shows.

Each number is read twice: as the Number canvas reads it (its pixels and the strokes the canvas
recorded, in the order they were drawn: digit.number.segment_strokes) and as an uploaded image
is read (pixels alone: "image only").

A digit counts as read when a digit read in the number has its label and its box overlaps the
true digit's box by IoU >= 0.5 (each matched once). Prints a table and writes
benchmarks/results/numbers.json. `--source templates` builds the same numbers from
digit/drawn.py's hand-authored templates (each template stroke a stroke), and `--source mnist`
from MNIST test digits (image only: a skeleton has no strokes): the sets the segmentation's
settings were chosen on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing anything

import json
import platform
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digit.config import DEFAULT_MODEL_PATH, PROJECT_DIR

PENDIGITS = PROJECT_DIR.parent / "shared" / "data" / "pendigits-dev" / "pendigits-orig.tra"
RESULTS = PROJECT_DIR / "benchmarks" / "results" / "numbers.json"
SHARED_MNIST = PROJECT_DIR.parent / "shared" / "data" / "mnist.npz"
CANVAS = (700, 220)  # width, height: the Number canvas
SINGLE = 280  # the single-digit canvas
PEN = 22  # the Draw page's default pen width
SHIFT = 4  # sub-pixel precision of cv2 drawing
HEIGHT_RANGE = (0.5, 0.85)  # a number's digit height, as a fraction of the canvas height
SIZE_JITTER = 0.12  # each digit's height within the number's, +-
BASELINE_JITTER = 0.06  # each digit's baseline, +- this fraction of the height
GAP_RANGE = (-0.1, 0.4)  # gap between digits' boxes as a fraction of the height (negative: overlap)
ZERO_GAP = 0.2  # this share of gaps is exactly 0
TOUCH = 0.25  # touching digits' ink overlaps by this fraction of the pen width
MAX_INTERLOCK = 0.2  # ... their boxes by at most this fraction of the height
MARGIN = 12  # pixels kept free at the canvas edges

Strokes = list[np.ndarray]  # one digit: polylines of (x, y) points, y down, any units


@dataclass(frozen=True)
class PenDigit:
    """One handwritten digit as pen strokes."""

    label: int
    writer: int
    strokes: Strokes


def load_pendigits(path: Path = PENDIGITS) -> list[PenDigit]:
    """The UNIPEN file's digits, y flipped to grow downwards."""
    digits, strokes, label, writer, points = [], [], None, None, None
    for line in path.read_text().splitlines():
        if line.startswith(".SEGMENT"):
            if label is not None:
                digits.append(PenDigit(label, writer, strokes))
            label, strokes = int(re.search(r'"(\d)"', line).group(1)), []
        elif line.startswith(".COMMENT"):
            writer = int(line.split()[2])
        elif line.startswith(".PEN_DOWN"):
            points = []
        elif line.startswith(".PEN_UP"):
            strokes.append(np.array(points, np.float64).reshape(-1, 2) * [1, -1] + [0, 500])
            points = None
        elif points is not None and line.strip():
            x, y = line.split()
            points.append((float(x), float(y)))
    if label is not None:
        digits.append(PenDigit(label, writer, strokes))
    return digits


def template_digits(seed: int = 0, writers: int = 30, per_digit: int = 12) -> list[PenDigit]:
    """Digits from digit/drawn.py's templates, each style jittered, slanted per "writer": the development set."""
    from digit.drawn import TEMPLATES, template_segments

    digits = []
    for writer in range(writers):
        rng = np.random.default_rng([seed, writer])
        slant = rng.uniform(-0.25, 0.25)
        for label, styles in TEMPLATES.items():
            for i in range(per_digit):
                segments = template_segments(styles[i % len(styles)], rng)  # (M, 2, 2)
                segments = segments - [0, 0.5]
                segments[..., 0] -= slant * segments[..., 1]
                digits.append(PenDigit(label, writer, chained(segments)))
    return digits


def chained(segments: np.ndarray) -> Strokes:
    """(M, 2, 2) segments as polylines: a segment starting where the last one ended continues its stroke."""
    breaks = np.flatnonzero(np.abs(segments[1:, 0] - segments[:-1, 1]).max(axis=1) > 1e-9) + 1
    return [np.vstack([run[:, 0], run[-1:, 1]]) for run in np.split(segments, breaks)]


def mnist_digits(count: int = 3000, seed: int = 0) -> list[PenDigit]:
    """MNIST test digits thinned to strokes (as digit/drawn.py redraws them): a development set of many hands."""
    from digit.data import load_mnist
    from digit.drawn import skeleton_segments, thin, upscaled_masks

    mnist = load_mnist(SHARED_MNIST if SHARED_MNIST.is_file() else None)
    chosen = np.random.default_rng(seed).permutation(len(mnist.y_test))[:count]
    skeletons = thin(upscaled_masks(mnist.x_test[chosen]))
    return [
        PenDigit(int(mnist.y_test[i]), k // 100, list(skeleton_segments(s)))  # "writers" of 100 digits
        for k, (i, s) in enumerate(zip(chosen, skeletons, strict=True))
    ]


def numbers_of(digits: list[PenDigit], length: int, count: int, rng: np.random.Generator) -> list[list[PenDigit]]:
    """`count` numbers of `length` digits, each from one writer (drawn at random, digits at random)."""
    by_writer = defaultdict(list)
    for d in digits:
        by_writer[d.writer].append(d)
    writers = sorted(by_writer)
    numbers = []
    for _ in range(count):
        own = by_writer[writers[rng.integers(len(writers))]]
        numbers.append([own[i] for i in rng.choice(len(own), size=length, replace=False)])
    return numbers


def _scaled(strokes: Strokes, height: float, pen: int) -> Strokes:
    """Strokes scaled so the drawn ink is `height` px tall (the pen adds half its width each side), left/top at 0."""
    points = np.concatenate(strokes)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = max(height - pen, 4.0) / max(high[1] - low[1], 1e-9)
    return [(s - low) * scale for s in strokes]


def _ink(strokes: Strokes, size: tuple[int, int], offset: tuple[float, float], pen: int) -> np.ndarray:
    """One digit's ink coverage, uint8, on a canvas of `size` (width, height)."""
    ink = np.zeros((size[1], size[0]), np.uint8)
    for stroke in strokes:
        fixed = np.round((stroke + offset) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)
        if len(fixed) == 1:
            center = tuple(int(v) for v in fixed[0, 0])
            cv2.circle(ink, center, pen * (1 << SHIFT) // 2, 255, -1, cv2.LINE_AA, SHIFT)
        else:
            cv2.polylines(ink, [fixed], False, 255, thickness=pen, lineType=cv2.LINE_AA, shift=SHIFT)
    return ink


def canvas_rgba(ink: np.ndarray) -> np.ndarray:
    """Ink coverage as the canvas returns it: white ink on opaque black RGBA."""
    return np.dstack([ink, ink, ink, np.full_like(ink, 255)])


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the ink."""
    x, y, w, h = cv2.boundingRect((ink >= 51).view(np.uint8))
    return int(x), int(y), int(w), int(h)


@dataclass(frozen=True)
class Written:
    """A number drawn on the wide canvas."""

    canvas: np.ndarray  # (height, width, 4) uint8 RGBA, as the canvas returns it
    boxes: list[tuple[int, int, int, int]]  # each digit's ink box (x, y, width, height)
    heights: list[float]  # each digit's height in pixels
    touches: list[bool]  # for touching numbers, whether each pair's ink meets
    strokes: list[np.ndarray]  # the pen's strokes in canvas pixels (x, y), in the order they were drawn


def compose(
    number: list[PenDigit], rng: np.random.Generator, touching: bool = False, pen: int = PEN, size=CANVAS
) -> Written:
    """A number written on the wide canvas, with each digit's true box."""
    width, height = size
    base = rng.uniform(*HEIGHT_RANGE) * height
    heights = base * rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER, len(number))
    gaps = base * rng.uniform(*GAP_RANGE, len(number))
    gaps[rng.uniform(size=len(number)) < ZERO_GAP] = 0.0
    for _ in range(20):  # shrink until the number fits the canvas, as a person writing it would
        heights = np.minimum(heights, height - 2 * MARGIN - BASELINE_JITTER * 2 * base)
        scaled = [_scaled(d.strokes, h, pen) for d, h in zip(number, heights, strict=True)]
        widths = [np.concatenate(s)[:, 0].max() + pen for s in scaled]
        total = sum(widths) + (0 if touching else gaps[1:].sum())
        if total <= width - 2 * MARGIN:
            break
        factor = (width - 2 * MARGIN) / total * 0.98
        heights, gaps, base = heights * factor, gaps * factor, base * factor
    x = MARGIN + rng.uniform(0, max(0.0, width - 2 * MARGIN - total))
    lowest = height - MARGIN - BASELINE_JITTER * base
    bottom_line = rng.uniform(min(MARGIN + max(heights) + BASELINE_JITTER * base, lowest), lowest)
    canvas = np.zeros((height, width), np.uint8)
    boxes, touches, drawn = [], [], []
    for i, (strokes, h) in enumerate(zip(scaled, heights, strict=True)):
        y = bottom_line - h + rng.uniform(-BASELINE_JITTER, BASELINE_JITTER) * base + pen / 2
        offset = np.array([x + pen / 2, y])
        ink = _ink(strokes, size, tuple(offset), pen)
        if touching and i > 0:
            ink, shift = _moved_to_touch(canvas, ink, pen, h)
            offset -= [shift, 0]
            touches.append(bool(((canvas >= 128) & (ink >= 128)).any()))
        canvas = np.maximum(canvas, ink)
        boxes.append(ink_box(ink))
        drawn += [stroke + offset for stroke in strokes]
        x = boxes[-1][0] + boxes[-1][2] + (gaps[i + 1] if i + 1 < len(number) else 0)
    return Written(canvas_rgba(canvas), boxes, [float(h) for h in heights], touches, drawn)


def _moved_to_touch(left: np.ndarray, ink: np.ndarray, pen: int, height: float) -> tuple[np.ndarray, int]:
    """`ink` moved sideways until it overlaps the ink already on the canvas by TOUCH pen widths, and how far left.

    Not deeper than boxes overlapping by MAX_INTERLOCK of the height: a digit does not slide far under
    its neighbour's bar (then the two may not touch; `compose` reports which pairs do).
    """
    rows = np.flatnonzero((left >= 128).any(axis=1) & (ink >= 128).any(axis=1))
    if rows.size == 0:
        return ink, 0
    right_edge = np.array([np.flatnonzero(left[r] >= 128).max() for r in rows])
    left_edge = np.array([np.flatnonzero(ink[r] >= 128).min() for r in rows])
    contact = float((left_edge - right_edge).min()) - 1 + TOUCH * pen
    box_gap = ink_box(ink)[0] - (np.flatnonzero((left >= 51).any(axis=0)).max() + 1)
    shift = round(min(contact, box_gap + MAX_INTERLOCK * height))
    matrix = np.float32([[1, 0, -shift], [0, 1, 0]])
    return cv2.warpAffine(ink, matrix, (ink.shape[1], ink.shape[0])), shift


def single_canvas(digit: PenDigit, height: float, pen: int = PEN) -> np.ndarray:
    """The digit alone on the single-digit canvas, at the same height and pen, centred."""
    strokes = _scaled(digit.strokes, min(height, 0.9 * SINGLE), pen)
    points = np.concatenate(strokes)
    offset = (SINGLE - points.max(axis=0) - pen) / 2 + pen / 2
    return canvas_rgba(_ink(strokes, (SINGLE, SINGLE), tuple(offset), pen))


# ---------------------------------------------------------------------------------------------
# measuring


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


def digits_read(truth: list[int], boxes: list, reading) -> list[bool]:
    """For each true digit: read right (a digit read with its label, boxes at IoU >= 0.5, each used once)?"""
    used, right = set(), []
    for label, box in zip(truth, boxes, strict=True):
        scores = [(iou(box, d.box), j) for j, d in enumerate(reading.digits) if j not in used]
        best, j = max(scores, default=(0.0, None))
        ok = best >= 0.5 and reading.digits[j].digit == label
        if best >= 0.5:
            used.add(j)
        right.append(ok)
    return right


class Tally:
    """Whole-number, per-digit and count-of-digits accuracy of one way of reading, and its time."""

    def __init__(self) -> None:
        self.whole, self.count_right, self.per_digit, self.seconds, self.failures = 0, 0, [], [], []

    def add(self, written: Written, truth: list[int], read) -> None:
        started = time.perf_counter()
        reading = read(written)
        self.seconds.append(time.perf_counter() - started)
        self.per_digit += digits_read(truth, written.boxes, reading)
        text = "".join(map(str, truth))
        self.whole += reading.number == text
        self.count_right += len(reading.digits) == len(truth)
        if reading.number != text and len(self.failures) < 40:
            self.failures.append((written.canvas, text, reading.number))

    def figures(self, numbers: int) -> dict:
        return {
            "whole_number_accuracy": self.whole / numbers,
            "per_digit_accuracy": float(np.mean(self.per_digit)),
            "right_count_of_digits": self.count_right / numbers,
            "median_ms": 1000 * statistics.median(self.seconds),
        }


def measure(predictor, numbers: list[list[PenDigit]], rng, touching: bool, pen: int, strokes: bool = True) -> dict:
    """Whole-number and per-digit accuracy of read_number, and single-digit accuracy on the same digits.

    Each number is read twice: as the Number canvas reads it (the image and the strokes it recorded)
    and as an upload is read (the image alone). `strokes=False` where the digits have no real strokes.
    """
    from digit.inference import predict
    from digit.number import read_number

    canvas, image_only, single, touches = Tally(), Tally(), [], []
    for number in numbers:
        written = compose(number, rng, touching=touching, pen=pen)
        touches += written.touches
        truth = [d.label for d in number]
        canvas.add(written, truth, lambda w: read_number(predictor, w.canvas, w.strokes if strokes else None))
        image_only.add(written, truth, lambda w: read_number(predictor, w.canvas))
        single += [
            predict(predictor, single_canvas(d, h, pen)).digit == d.label
            for d, h in zip(number, written.heights, strict=True)
        ]
    n = len(numbers)
    return {
        "numbers": n,
        "digits": len(canvas.per_digit),
        **canvas.figures(n),
        "single_digit_accuracy": float(np.mean(single)),
        "pairs_touching": float(np.mean(touches)) if touches else None,
        "image_only": image_only.figures(n),
        "failures": canvas.failures,
        "image_only_failures": image_only.failures,
    }


def latency(predictor, digits: list[PenDigit], rng, repeats: int) -> dict:
    """Median time of read_number on the wide canvas (1-6 digits; with its strokes, and the image alone)
    and of predict on the single canvas."""
    from digit.inference import predict
    from digit.number import read_number

    def median_ms(function, inputs: list[tuple]) -> float:
        times = []
        for arguments in inputs * repeats:
            started = time.perf_counter()
            function(predictor, *arguments)
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)

    singles = [(single_canvas(d, 0.7 * SINGLE),) for d in rng.choice(digits, 20)]
    result = {"single_digit_predict_ms": median_ms(predict, singles)}
    for length in range(1, 7):
        written = [compose(n, rng) for n in numbers_of(digits, length, 20, rng)]
        result[f"read_number_{length}_digits_ms"] = median_ms(read_number, [(w.canvas, w.strokes) for w in written])
        result[f"read_number_{length}_digits_image_only_ms"] = median_ms(read_number, [(w.canvas,) for w in written])
    return result


def failure_sheet(failures: list, path: Path) -> None:
    """The misread numbers, each with what was written and what was read."""
    tiles = []
    for canvas, truth, read in failures[:24]:
        tile = cv2.resize(canvas[..., :3], (350, 110), interpolation=cv2.INTER_AREA)
        tile = cv2.copyMakeBorder(tile, 0, 22, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(tile, f"{truth} read {read or '-'}", (4, 126), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        tiles.append(cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(200, 200, 200)))
    while len(tiles) % 3:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[i : i + 3]) for i in range(0, len(tiles), 3)]
    cv2.imwrite(str(path), np.vstack(rows))


SOURCES = {
    "pendigits": lambda seed: load_pendigits(),
    "templates": lambda seed: template_digits(seed + 1000),
    "mnist": lambda seed: mnist_digits(seed=seed),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="the model (default: shipped)")
    parser.add_argument(
        "--source", choices=list(SOURCES), default="pendigits", help="where the digits come from (default: pendigits)"
    )
    parser.add_argument("--numbers", type=int, default=300, help="numbers per length and spacing (default: 300)")
    parser.add_argument("--pens", type=int, nargs="+", default=[PEN], help=f"pen widths (default: {PEN})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--quick", action="store_true", help="60 numbers per length and spacing, no latency")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default: {RESULTS.name})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from digit.serving import load_predictor

    args = parse_args(argv)
    if args.quick:
        args.numbers = 60
    predictor = load_predictor(args.model)
    digits = SOURCES[args.source](args.seed)
    rows, failures, image_only_failures = [], [], []
    for pen in args.pens:
        for touching in (False, True):
            for length in range(2, 7):
                rng = np.random.default_rng([args.seed, length, int(touching), pen])
                numbers = numbers_of(digits, length, args.numbers, rng)
                result = measure(predictor, numbers, rng, touching, pen, strokes=args.source != "mnist")
                failures += result.pop("failures")
                image_only_failures += result.pop("image_only_failures")
                rows.append({"pen": pen, "spacing": "touching" if touching else "gaps", "length": length, **result})
                print_row(rows[-1])
    timing = {} if args.quick else latency(predictor, digits, np.random.default_rng(args.seed), repeats=5)
    for name, value in timing.items():
        print(f"{name}: {value:.2f}")
    if args.source == "pendigits" and not args.quick:
        write_results(args, rows, timing, predictor)
        failure_sheet(failures, args.out.with_name("numbers-failures.png"))
        failure_sheet(image_only_failures, args.out.with_name("numbers-failures-image-only.png"))


def print_row(row: dict) -> None:
    image = row["image_only"]
    print(
        f"pen {row['pen']:2d} {row['spacing']:8s} {row['length']} digits: whole {row['whole_number_accuracy']:6.1%}"
        f"  per digit {row['per_digit_accuracy']:6.1%}  single {row['single_digit_accuracy']:6.1%}"
        f"  count right {row['right_count_of_digits']:6.1%}  {row['median_ms']:5.1f} ms"
        f"  | image only: whole {image['whole_number_accuracy']:6.1%}  per digit {image['per_digit_accuracy']:6.1%}"
        f"  count right {image['right_count_of_digits']:6.1%}  {image['median_ms']:5.1f} ms  (n={row['numbers']})",
        flush=True,
    )


def write_results(args, rows: list[dict], timing: dict, predictor) -> None:
    record = {
        "benchmark": "numbers",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
        "model": str(args.model.relative_to(PROJECT_DIR) if args.model.is_relative_to(PROJECT_DIR) else args.model),
        "engine": predictor.engine,
        "source": str(PENDIGITS.relative_to(PROJECT_DIR.parent)),
        "settings": {"canvas": CANVAS, "numbers_per_row": args.numbers, "seed": args.seed},
        "rows": rows,
        "latency": timing,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
