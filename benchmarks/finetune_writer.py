"""Benchmark: does fine-tuning on 10 corrections per digit teach the model a writer MNIST handles badly?

    python benchmarks/finetune_writer.py                          # the shipped model, full MNIST
    python benchmarks/finetune_writer.py --dry-run                # a smoke run on the small fixture

The writer redraws MNIST test digits on the app's 280x280 canvas with their own habits: a strong
backward slant, a very thick pen, crossed 7s and European 1s (a long flag). Each drawing then goes
through the app's own preprocessing. For each seed, 10 drawings per digit are the corrections and
50 other drawings per digit are the test; MNIST test accuracy is measured before and after.
Prints a table and writes benchmarks/results/finetune_writer.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digit.config import DEFAULT_MODEL_PATH, NUM_CLASSES, PROJECT_DIR
from digit.drawn import CANVAS, Pose, draw_segments, skeleton_segments, thin, upscaled_masks
from digit.preprocessing import preprocess

RESULTS = PROJECT_DIR / "benchmarks" / "results" / "finetune_writer.json"
FIXTURE = PROJECT_DIR / "tests" / "fixtures" / "mnist-small.npz"
SHARED_MNIST = PROJECT_DIR.parent / "shared" / "data" / "mnist.npz"


@dataclass(frozen=True)
class Writer:
    """One person's handwriting habits, each with a little natural variation."""

    slant: float = -0.75  # horizontal shear; negative leans the top to the left (MNIST leans right)
    pen_ratio: float = 0.25  # pen width / digit height: a marker, loops nearly fill in
    height: float = 0.6  # digit height / canvas height
    jitter: float = 0.06  # spread of slant, pen and size from one drawing to the next
    crossed_sevens: bool = True
    flagged_ones: bool = True  # the European 1: a long up-stroke from the lower left

    def pose(self, rng: np.random.Generator) -> Pose:
        """Where and how this writer puts one digit on the canvas."""
        height = self.height * CANVAS * (1 + rng.normal(0, self.jitter))
        return Pose(
            height=height,
            pen=round(self.pen_ratio * height * (1 + rng.normal(0, self.jitter))),
            rotation=rng.normal(0, math.radians(2)),
            slant=self.slant + rng.normal(0, self.jitter),
            stretch=1.0 + rng.normal(0, self.jitter / 2),
            position=(rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)),
            background="black",
        )


def add_habits(segments: np.ndarray, label: int, writer: Writer) -> np.ndarray:
    """The strokes MNIST rarely has: a bar across the 7, a flag on the 1."""
    points = segments.reshape(-1, 2)
    (left, top), (right, bottom) = points.min(axis=0), points.max(axis=0)
    height, width = bottom - top, max(right - left, 1.0)
    if label == 7 and writer.crossed_sevens:
        y = top + 0.55 * height
        stem = points[np.abs(points[:, 1] - y) < 0.05 * height, 0]
        x = float(stem.mean()) if stem.size else (left + right) / 2
        half = max(0.3 * width, 0.22 * height)
        return np.concatenate([segments, _line((x - half, y), (x + half, y))])
    if label == 1 and writer.flagged_ones:
        tip = points[points[:, 1].argmin()]
        return np.concatenate([segments, _line(tuple(tip), (tip[0] - 0.35 * height, tip[1] + 0.3 * height))])
    return segments


def _line(start: tuple[float, float], end: tuple[float, float], pieces: int = 12) -> np.ndarray:
    points = np.linspace(start, end, pieces + 1)
    return np.stack([points[:-1], points[1:]], axis=1)


def render(images: np.ndarray, labels: np.ndarray, writer: Writer, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(canvases (N, 280, 280, 4), model inputs (N, 28, 28) uint8) of MNIST digits in the writer's hand."""
    skeletons = thin(upscaled_masks(images))
    canvases = np.empty((len(images), CANVAS, CANVAS, 4), np.uint8)
    inputs = np.zeros((len(images), 28, 28), np.uint8)
    for i, (skeleton, label) in enumerate(zip(skeletons, labels, strict=True)):
        rng = np.random.default_rng([seed, 7_777, i])
        segments = add_habits(skeleton_segments(skeleton), int(label), writer)
        canvases[i] = draw_segments(segments, writer.pose(rng), rng)
        x = preprocess(canvases[i])
        if x is not None:
            inputs[i] = np.rint(x * 255)
    return canvases, inputs


def writer_split(labels: np.ndarray, seed: int, corrections: int, tests: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the MNIST test set: `corrections` and `tests` drawings per digit, disjoint."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for digit in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == digit))
        train.append(members[:corrections])
        test.append(members[corrections : corrections + tests])
    return np.concatenate(train), np.concatenate(test)


def run_seed(model, mnist, writer: Writer, config, seed: int, args) -> dict:
    """One writer sample: accuracies before and after fine-tuning on its corrections."""
    from digit.evaluation import evaluate
    from digit.finetune import cross_validate, finetune

    train_idx, test_idx = writer_split(mnist.y_test, seed, args.corrections, args.tests)
    _, train_x = render(mnist.x_test[train_idx], mnist.y_test[train_idx], writer, seed)
    _, test_x = render(mnist.x_test[test_idx], mnist.y_test[test_idx], writer, seed + 10_000)
    train_y, test_y = mnist.y_test[train_idx], mnist.y_test[test_idx]
    unseen = np.setdiff1d(np.arange(len(mnist.y_test)), train_idx)  # MNIST test minus the corrections' sources
    result = finetune(model, train_x, train_y, mnist, config)
    row = {"seed": seed, "status": result.status, "seconds": round(result.seconds, 1)}
    for name, m in (("before", model), ("after", result.model)):
        row[f"writer_{name}"] = evaluate(m, test_x, test_y).accuracy
        row[f"corrections_{name}"] = evaluate(m, train_x, train_y).accuracy
        mnist_eval = evaluate(m, mnist.x_test, mnist.y_test)
        row[f"mnist_{name}"] = mnist_eval.accuracy
        row[f"mnist_unseen_{name}"] = float((mnist_eval.predictions[unseen] == mnist.y_test[unseen]).mean())
    if args.folds >= 2 and seed == args.seed:
        started = time.perf_counter()
        cv = cross_validate(model, train_x, train_y, mnist, config, folds=args.folds)
        row["cv"] = {"before": cv.before, "after": cv.after, "folds": cv.folds, "fold_accuracies": cv.fold_accuracies}
        row["cv"]["seconds"] = round(time.perf_counter() - started, 1)
    return row


def summary(rows: list[dict]) -> dict:
    """Mean, lowest and highest of every accuracy over the seeds."""
    keys = [k for k in rows[0] if k.startswith(("writer_", "corrections_", "mnist_"))]
    out = {k: {"mean": float(np.mean([r[k] for r in rows])), "min": min(r[k] for r in rows)} for k in keys}
    for k in keys:
        out[k]["max"] = max(r[k] for r in rows)
    drops = [100 * (r["mnist_before"] - r["mnist_after"]) for r in rows]
    out["mnist_drop_points_max"] = max(drops)
    out["mnist_within_bound"] = all(d <= 0.1 + 1e-9 for d in drops)
    out["seconds_mean"] = float(np.mean([r["seconds"] for r in rows]))
    return out


def print_table(rows: list[dict], mnist_n: int) -> None:
    """One line per seed, then the means."""
    print(
        f"{'seed':>4}  {'writer before':>13}  {'writer after':>12}  {'MNIST before':>12}  {'MNIST after':>11}  {'s':>5}"
    )
    for r in rows:
        print(
            f"{r['seed']:>4}  {100 * r['writer_before']:>12.1f}%  {100 * r['writer_after']:>11.1f}%  "
            f"{100 * r['mnist_before']:>11.2f}%  {100 * r['mnist_after']:>10.2f}%  {r['seconds']:>5.1f}"
        )
    s = summary(rows)
    print(
        f"{'mean':>4}  {100 * s['writer_before']['mean']:>12.1f}%  {100 * s['writer_after']['mean']:>11.1f}%  "
        f"{100 * s['mnist_before']['mean']:>11.2f}%  {100 * s['mnist_after']['mean']:>10.2f}%"
    )
    print(f"MNIST test ({mnist_n} images): largest drop {s['mnist_drop_points_max']:+.2f} points (bound 0.1)")
    for r in rows:
        if "cv" in r:
            cv = r["cv"]
            print(
                f"seed {r['seed']}: {cv['folds']}-fold cross-validation on its corrections: "
                f"{100 * cv['before']:.1f}% -> {100 * cv['after']:.1f}% held out ({cv['seconds']:.0f} s)"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="the base model (default: shipped)")
    parser.add_argument("--data", type=Path, default=None, help="mnist.npz (default: $DIGIT_MNIST_NPZ or shared)")
    parser.add_argument("--seeds", type=int, default=3, help="writer samples (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    parser.add_argument("--corrections", type=int, default=10, help="corrections per digit (default: 10)")
    parser.add_argument("--tests", type=int, default=50, help="test drawings per digit (default: 50)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds, first seed (default: 5)")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tune epochs (default: FinetuneConfig)")
    parser.add_argument("--learning-rate", type=float, default=None, help="(default: FinetuneConfig)")
    parser.add_argument("--oversample", type=int, default=None, help="(default: FinetuneConfig)")
    parser.add_argument("--replay", type=float, default=None, help="(default: FinetuneConfig)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default: {RESULTS.name})")
    parser.add_argument("--dry-run", action="store_true", help="a smoke run: small fixture, 1 seed, no CV")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from digit.data import load_mnist
    from digit.finetune import FinetuneConfig
    from digit.models import load_model

    if args.dry_run:
        args.seeds, args.folds, args.tests, args.data = 1, 0, 10, args.data or FIXTURE
    data = args.data or (None if os.environ.get("DIGIT_MNIST_NPZ") else SHARED_MNIST)
    mnist = load_mnist(data)
    model = load_model(args.model)
    overrides = {"epochs": args.epochs, "learning_rate": args.learning_rate, "oversample": args.oversample}
    overrides["replay"] = args.replay
    config = FinetuneConfig(**{k: v for k, v in overrides.items() if v is not None})
    writer = Writer()
    rows = []
    for seed in range(args.seed, args.seed + args.seeds):
        rows.append(run_seed(model, mnist, writer, config, seed, args))
        print(f"seed {seed} done", file=sys.stderr)
    print_table(rows, len(mnist.y_test))
    if not args.dry_run:
        write_results(args, model, writer, config, rows, len(mnist.y_test))


def code_version() -> str | None:
    """The git commit the numbers came from, with "-dirty" when digit/ or benchmarks/ had changes."""
    try:
        run = functools.partial(subprocess.run, cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
        commit = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--", "digit", "benchmarks"]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def write_results(args, model, writer: Writer, config, rows: list[dict], mnist_n: int) -> None:
    """The settings, every seed's numbers and the summary, as JSON."""
    from dataclasses import asdict

    record = {
        "benchmark": "finetune_writer",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "code": code_version(),
        "model": str(args.model.relative_to(PROJECT_DIR) if args.model.is_relative_to(PROJECT_DIR) else args.model),
        "writer": asdict(writer),
        "finetune": config.to_dict(),
        "corrections_per_digit": args.corrections,
        "test_drawings_per_digit": args.tests,
        "mnist_test_images": mnist_n,
        "seeds": rows,
        "summary": summary(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
