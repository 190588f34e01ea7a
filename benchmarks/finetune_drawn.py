"""Experiment: does training on re-drawn MNIST *training* digits raise drawn accuracy?

Fine-tunes a model for a short while on MNIST plus training digits re-drawn as canvas strokes
(digit/drawn.py, then digit.preprocess), once as they are and once with European flags added
to 60% of the 1s; as a control, for as many steps on MNIST alone. Scores all on MNIST test and
on the drawn sets (re-drawn *test* digits, and templates, which no run trains on).

    python benchmarks/finetune_drawn.py --redrawn 12000 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from benchmarks.drawn_accuracy import PREPARERS, RESULTS, evaluate_drawn, style_accuracy  # noqa: E402
from benchmarks.run import find_full_mnist  # noqa: E402
from digit import drawn  # noqa: E402
from digit.config import DEFAULT_MODEL_PATH  # noqa: E402


def european_one(segments: np.ndarray, rng: np.random.Generator, base: bool) -> np.ndarray:
    """A skeleton's segments with a long flag from its top down to the left, and maybe a base."""
    points = segments.reshape(-1, 2)
    top = points[points[:, 1].argmin()]
    bottom = points[points[:, 1].argmax()]
    height = bottom[1] - top[1]
    length, angle = rng.uniform(0.3, 0.55) * height, np.radians(rng.uniform(25, 60))
    strokes = [(top, top + length * np.array([-np.cos(angle), np.sin(angle)]))]
    if base:
        half = rng.uniform(0.15, 0.3) * height
        across = np.array([half, 0.0])
        strokes.append((bottom - across, bottom + across))
    extra = [_line(a, b) for a, b in strokes]
    return np.concatenate([segments, *extra])


def _line(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    steps = max(1, int(np.linalg.norm(b - a)))
    t = np.linspace(0.0, 1.0, steps + 1)[:, None]
    points = a + t * (b - a)
    return np.stack([points[:-1], points[1:]], axis=1)


def redrawn_training_digits(
    x: np.ndarray, y: np.ndarray, n: int, seed: int, prep: str, flags: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """n training digits drawn as canvas strokes, then preprocessed back to uint8 28x28.

    A share `flags` of the 1s get a European flag (and half of those a base).
    """
    order = np.random.default_rng(seed).permutation(len(x))[:n]
    skeletons = drawn.thin(drawn.upscaled_masks(x[order]))
    images, labels = [], []
    for i, (skeleton, label) in enumerate(zip(skeletons, y[order], strict=True)):
        rng = np.random.default_rng([seed, 7, i])
        segments = drawn.skeleton_segments(skeleton)
        if label == 1 and rng.uniform() < flags:
            segments = european_one(segments, rng, base=rng.uniform() < 0.5)
        ready = PREPARERS[prep](drawn.draw_segments(segments, drawn.random_pose(rng), rng))
        if ready is not None:
            images.append(np.round(255 * ready).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.uint8)


def finetune(model_path: Path, x: np.ndarray, y: np.ndarray, epochs: int, learning_rate: float, seed: int):
    """The model fine-tuned on (x, y) with the project's augmentation, cosine-decayed rate."""
    import keras

    from digit.models import load_model
    from digit.training import make_dataset

    keras.utils.set_random_seed(seed)
    model = load_model(model_path)
    steps = int(np.ceil(len(x) / 128)) * epochs
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.05)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(make_dataset(x, y, 128, augment=True, shuffle=True, seed=seed), epochs=epochs, verbose=2)
    return model


def scores(model, data, n_mnist: int, per_digit: int, preps: tuple[str, ...]) -> dict:
    """MNIST test accuracy and drawn-set accuracy with each preprocessing, and the European 1s' accuracy."""
    from digit.evaluation import evaluate

    results, _ = evaluate_drawn(model, data.x_test, data.y_test, n_mnist, per_digit, seed=0, preps=preps)
    out = {"mnist_test": evaluate(model, data.x_test, data.y_test).accuracy}
    for name, by_prep in results.items():
        out |= {f"{name} {prep}": r.accuracy for prep, r in by_prep.items()}
    styles = style_accuracy(results["templates"][preps[0]], per_digit)
    out["flagged 1s (templates 1.1-1.3)"] = float(np.mean([styles["1.1"], styles["1.2"], styles["1.3"]]))
    return out


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_PATH, help="the model to start from (default: shipped)"
    )
    parser.add_argument("--redrawn", type=int, default=12000, help="training digits re-drawn (default: 12000)")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (default: 1)")
    parser.add_argument("--learning-rate", type=float, default=3e-4, help="starting rate (default: 0.0003)")
    parser.add_argument(
        "--prep",
        default="mnist",
        help="preprocessing of the re-drawn training digits (default: mnist, digit.preprocess)",
    )
    parser.add_argument("--mnist", type=int, default=2000, help="re-drawn test digits to score on (default: 2000)")
    parser.add_argument("--per-digit", type=int, default=50, help="templates per digit to score on (default: 50)")
    parser.add_argument("--save", action="store_true", help="keep the fine-tuned models in benchmarks/results/")
    args = parser.parse_args()

    from digit.data import load_npz

    data = load_npz(find_full_mnist() or sys.exit("needs the full MNIST set"))
    preps = tuple(dict.fromkeys((args.prep, "plain", "mnist", "thin")))
    began = time.perf_counter()
    plain_x, plain_y = redrawn_training_digits(data.x_train, data.y_train, args.redrawn, 101, args.prep)
    flag_x, flag_y = redrawn_training_digits(data.x_train, data.y_train, args.redrawn, 101, args.prep, flags=0.6)
    print(f"re-drew 2 x {len(plain_y)} training digits in {time.perf_counter() - began:.0f} s", flush=True)
    total = len(data.x_train) + len(plain_y)
    same_size = np.random.default_rng(0).choice(len(data.x_train), total, replace=True)
    runs = {
        "control: MNIST only": (data.x_train[same_size], data.y_train[same_size]),
        "MNIST + re-drawn": (np.concatenate([data.x_train, plain_x]), np.concatenate([data.y_train, plain_y])),
        "MNIST + re-drawn with European 1s": (
            np.concatenate([data.x_train, flag_x]),
            np.concatenate([data.y_train, flag_y]),
        ),
    }
    import digit

    out = {"start": scores(digit.load_model(args.model), data, args.mnist, args.per_digit, preps)}
    print("start", out["start"], flush=True)
    for name, (x, y) in runs.items():
        model = finetune(args.model, x, y, args.epochs, args.learning_rate, seed=1)
        out[name] = scores(model, data, args.mnist, args.per_digit, preps)
        print(name, out[name], flush=True)
        if args.save:
            model.save(RESULTS / f"finetuned-{len(out)}.keras")
    out["settings"] = vars(args) | {
        "model": str(args.model),
        "preprocessing.py": _digest(PROJECT / "digit" / "preprocessing.py"),
    }
    path = RESULTS / "finetune-drawn.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {path} ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
