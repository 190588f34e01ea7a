"""Benchmark: how the app reads real pen-drawn digits, and how honest its "not sure" is (issue 13).

    python benchmarks/real_drawing.py                 # the served model, every digit at every setting (~2 min)
    python benchmarks/real_drawing.py --model runs/mine.keras --limit 2000

The digits are ../shared/data/pendigits-dev: 7,494 digits drawn with a pen by 30 writers, a
measuring set (nothing in this project is trained or tuned on it). Each trajectory is drawn as
the Draw page's canvas draws it: white, round-capped, anti-aliased strokes on an opaque black
280x280 canvas, at these settings:

- typical: the page's default pen (22 px), the digit 60% of the canvas tall, centred;
- thin pen (8 px) and thick pen (40 px), 60% tall, centred;
- small (25% tall) and big (90% tall), 22 px pen, centred;
- off-centre: 45% tall, pushed into a random corner (8 px from the edges).

"Hard" is the mean of thin, thick, small and off-centre. For each setting: accuracy overall,
per digit and per writer; and at the typical setting, how many misread digits the page flags
"not sure" (against how many read right it flags). Then what is not one digit: random scribbles,
and two digits of one writer side by side on the single canvas ("12"), each should come back as
no digit or "not sure". Prints a table, writes benchmarks/results/real_drawing.json and a contact
sheet of the typical setting's misreads (benchmarks/results/real-failures.png).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing anything

import cv2
import numpy as np

from benchmarks.number_accuracy import PENDIGITS, PenDigit, _ink, _scaled, canvas_rgba, load_pendigits
from digit.config import PROJECT_DIR
from digit.drawn import contact_sheet
from digit.inference import predict

RESULTS = PROJECT_DIR / "benchmarks" / "results"
SIZE = 280  # the single-digit canvas
PEN = 22
EDGE = 8  # off-centre digits keep this far from the canvas edges
SETTINGS = {  # name: (pen width px, ink height as a share of the canvas, off-centre?)
    "typical": (PEN, 0.60, False),
    "thin pen": (8, 0.60, False),
    "thick pen": (40, 0.60, False),
    "small": (PEN, 0.25, False),
    "big": (PEN, 0.90, False),
    "off-centre": (PEN, 0.45, True),
}
HARD = ("thin pen", "thick pen", "small", "off-centre")


def render(strokes: list[np.ndarray], pen: int, height: float, off_centre: bool, rng) -> np.ndarray:
    """One trajectory on the 280x280 canvas as the page draws it (white on opaque black RGBA)."""
    scaled = _scaled(strokes, height * SIZE, pen)
    points = np.concatenate(scaled)
    extent = points.max(axis=0) + pen  # the ink's width and height, pen included
    if extent[0] > SIZE - 2 * EDGE:  # a wide digit (a long-barred 7): shrink it to fit, as a person would
        scaled = [s * (SIZE - 2 * EDGE - pen) / max(points.max(axis=0)[0], 1e-9) for s in scaled]
        extent = np.concatenate(scaled).max(axis=0) + pen
    if off_centre:
        corner = rng.integers(0, 2, size=2)
        offset = np.where(corner == 0, EDGE, SIZE - EDGE - extent) + rng.uniform(0, 12, size=2) * (1 - 2 * corner)
    else:
        offset = (SIZE - extent) / 2
    return canvas_rgba(_ink(scaled, (SIZE, SIZE), tuple(offset + pen / 2), pen))


def scribble(rng) -> np.ndarray:
    """A random scribble: a smooth line through 12-30 random points of a box, tangling as it goes."""
    n = int(rng.integers(12, 31))
    points = rng.uniform(0, 1, size=(n, 2)) * [rng.uniform(0.5, 1.6), 1]
    dense = np.concatenate([np.linspace(a, b, 6, endpoint=False) for a, b in itertools.pairwise(points)])
    smooth = cv2.GaussianBlur(dense, (1, 9), 0)  # along the line: curves, not corners
    return render([smooth], int(rng.choice([12, 22, 30])), rng.uniform(0.35, 0.8), False, rng)


def side_by_side(left: PenDigit, right: PenDigit, rng) -> np.ndarray:
    """Two digits of one writer next to each other on the single canvas, as "12" written there."""
    height = rng.uniform(0.35, 0.55) * SIZE
    inks, x = [], EDGE + rng.uniform(0, 10)
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    for digit in (left, right):
        scaled = _scaled(digit.strokes, height, PEN)
        width = np.concatenate(scaled).max(axis=0)[0] + PEN
        top = (SIZE - height) / 2 + rng.uniform(-10, 10)
        inks.append(_ink(scaled, (SIZE, SIZE), (x + PEN / 2, top + PEN / 2), PEN))
        x += width + rng.uniform(0.0, 0.25) * height
    for ink in inks:
        canvas = np.maximum(canvas, ink)
    return canvas_rgba(canvas)


def flagged(prediction) -> bool:
    """What the page shows as not (surely) one digit: no digit, or "not sure"."""
    return prediction.digit is None or prediction.unsure


def measure_setting(predictor, digits: list[PenDigit], setting: str, seed: int) -> dict:
    pen, height, off = SETTINGS[setting]
    rng = np.random.default_rng(seed)
    per_digit, per_writer = defaultdict(list), defaultdict(list)
    right_flags, wrong_flags, failures = [], [], []
    for digit in digits:
        canvas = render(digit.strokes, pen, height, off, rng)
        prediction = predict(predictor, canvas)
        ok = prediction.digit == digit.label
        per_digit[digit.label].append(ok)
        per_writer[digit.writer].append(ok)
        (right_flags if ok else wrong_flags).append(flagged(prediction))
        if not ok and len(failures) < 100:
            failures.append((canvas, f"{digit.label}>{prediction.digit} w{digit.writer}"))
    return {
        "n": len(digits),
        "accuracy": float(np.mean([ok for oks in per_digit.values() for ok in oks])),
        "per_digit": {str(d): float(np.mean(v)) for d, v in sorted(per_digit.items())},
        "per_writer": {str(w): float(np.mean(v)) for w, v in sorted(per_writer.items())},
        "misread_flagged": float(np.mean(wrong_flags)) if wrong_flags else None,
        "right_flagged": float(np.mean(right_flags)) if right_flags else None,
        "_failures": failures,
    }


def measure_not_digits(predictor, digits: list[PenDigit], count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    scribbles = [flagged(predict(predictor, scribble(rng))) for _ in range(count)]
    by_writer = defaultdict(list)
    for digit in digits:
        by_writer[digit.writer].append(digit)
    pairs = []
    for _ in range(count):
        mine = by_writer[int(rng.choice(list(by_writer)))]
        left, right = (mine[i] for i in rng.choice(len(mine), 2, replace=False))
        pairs.append(flagged(predict(predictor, side_by_side(left, right, rng))))
    return {"scribbles_flagged": float(np.mean(scribbles)), "two_digits_flagged": float(np.mean(pairs)), "n": count}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a .keras file (default: the served model)")
    parser.add_argument("--limit", type=int, default=None, help="use only this many digits (every writer kept)")
    parser.add_argument("--not-digits", type=int, default=500, help="scribbles and digit pairs to draw, each")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not PENDIGITS.is_file():
        print(f"pendigits-dev not found at {PENDIGITS}", file=sys.stderr)
        return 1
    from digit.serving import load_predictor

    predictor = load_predictor(args.model)
    digits = load_pendigits()
    if args.limit:
        digits = digits[:: max(1, len(digits) // args.limit)][: args.limit]
    began = time.perf_counter()
    settings = {name: measure_setting(predictor, digits, name, args.seed) for name in SETTINGS}
    not_digits = measure_not_digits(predictor, digits, args.not_digits, args.seed)
    failures = settings["typical"].pop("_failures")
    for result in settings.values():
        result.pop("_failures", None)
    typical = settings["typical"]
    report = {
        "model": str(args.model or "served"),
        "engine": type(predictor).__name__,
        "digits": len(digits),
        "writers": len(typical["per_writer"]),
        "typical": typical["accuracy"],
        "hard": float(np.mean([settings[s]["accuracy"] for s in HARD])),
        "worst_digit": min(typical["per_digit"].items(), key=lambda kv: kv[1]),
        "misread_flagged": typical["misread_flagged"],
        "right_flagged": typical["right_flagged"],
        **not_digits,
        "settings": settings,
        "seconds": round(time.perf_counter() - began, 1),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "real_drawing.json").write_text(json.dumps(report, indent=1) + "\n")
    if failures:
        sheet = contact_sheet(np.stack([c for c, _ in failures]), captions=[t for _, t in failures])
        cv2.imwrite(str(RESULTS / "real-failures.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print_report(report)
    return 0


def print_report(report: dict) -> None:
    print(f"{report['digits']} real pen-drawn digits by {report['writers']} writers, {report['engine']}")
    for name, result in report["settings"].items():
        worst = min(result["per_digit"].items(), key=lambda kv: kv[1])
        low_writer = min(result["per_writer"].values())
        print(
            f"  {name:<11} {result['accuracy']:7.2%}   worst digit {worst[0]} {worst[1]:.1%}, "
            f"worst writer {low_writer:.1%}"
        )
    print(f"  hard (mean of {', '.join(HARD)}): {report['hard']:.2%}")
    print(
        "  per digit, typical: "
        + "  ".join(f"{d} {a:.1%}" for d, a in report["settings"]["typical"]["per_digit"].items())
    )
    print(
        f"  'not sure' at the typical setting: {report['misread_flagged']:.1%} of misread digits, "
        f"{report['right_flagged']:.1%} of those read right"
    )
    print(
        f"  not one digit, flagged: scribbles {report['scribbles_flagged']:.1%}, "
        f"two digits side by side {report['two_digits_flagged']:.1%} (n={report['n']} each)"
    )
    print(f"  {report['seconds']} s")


if __name__ == "__main__":
    raise SystemExit(main())
