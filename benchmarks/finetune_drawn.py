"""Experiment: does training on re-drawn MNIST *training* digits raise drawn accuracy?

Fine-tunes a model for a short while on MNIST plus training digits re-drawn as canvas strokes
(digit/drawn.py, then digit.preprocess), and, as a control, for as many steps on MNIST alone;
scores both on MNIST test and on the drawn sets (re-drawn *test* digits and templates).

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

from benchmarks.drawn_accuracy import PREPARERS, RESULTS, evaluate_drawn  # noqa: E402
from benchmarks.run import find_full_mnist  # noqa: E402
from digit import drawn  # noqa: E402
from digit.config import DEFAULT_MODEL_PATH  # noqa: E402


def redrawn_training_digits(
    x: np.ndarray, y: np.ndarray, n: int, seed: int, prep: str
) -> tuple[np.ndarray, np.ndarray]:
    """n training digits drawn as canvas strokes, then preprocessed back to uint8 28x28."""
    images, labels = [], []
    for start in range(0, n, 500):
        canvases, chunk_labels = drawn.render_mnist_as_drawn(x, y, seed, min(500, n - start), start)
        for canvas, label in zip(canvases, chunk_labels, strict=True):
            ready = PREPARERS[prep](canvas)
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


def scores(model, data, n_mnist: int, per_digit: int, prep: str) -> dict:
    """MNIST test accuracy and drawn-set accuracy with the given preprocessing."""
    from digit.evaluation import evaluate

    results, _ = evaluate_drawn(model, data.x_test, data.y_test, n_mnist, per_digit, seed=0, preps=(prep,))
    return {"mnist_test": evaluate(model, data.x_test, data.y_test).accuracy} | {
        name: by_prep[prep].accuracy for name, by_prep in results.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_PATH, help="the model to start from (default: shipped)"
    )
    parser.add_argument("--redrawn", type=int, default=12000, help="training digits re-drawn (default: 12000)")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (default: 1)")
    parser.add_argument("--learning-rate", type=float, default=3e-4, help="starting rate (default: 0.0003)")
    parser.add_argument(
        "--prep", default="mnist", help="preprocessing for the re-drawn digits and the evaluation (default: mnist)"
    )
    parser.add_argument("--mnist", type=int, default=2000, help="re-drawn test digits to score on (default: 2000)")
    parser.add_argument("--per-digit", type=int, default=50, help="templates per digit to score on (default: 50)")
    args = parser.parse_args()

    from digit.data import load_npz

    data = load_npz(find_full_mnist() or sys.exit("needs the full MNIST set"))
    began = time.perf_counter()
    extra_x, extra_y = redrawn_training_digits(data.x_train, data.y_train, args.redrawn, seed=101, prep=args.prep)
    print(f"re-drew {len(extra_y)} training digits in {time.perf_counter() - began:.0f} s", flush=True)
    mixed_x = np.concatenate([data.x_train, extra_x])
    mixed_y = np.concatenate([data.y_train, extra_y])
    rng = np.random.default_rng(0)
    same_size = rng.choice(len(data.x_train), len(mixed_y), replace=len(mixed_y) > len(data.x_train))
    runs = {
        "control: MNIST only": (data.x_train[same_size], data.y_train[same_size]),
        "MNIST + re-drawn": (mixed_x, mixed_y),
    }
    import digit

    out = {"start": scores(digit.load_model(args.model), data, args.mnist, args.per_digit, args.prep)}
    print("start", out["start"], flush=True)
    for name, (x, y) in runs.items():
        model = finetune(args.model, x, y, args.epochs, args.learning_rate, seed=1)
        out[name] = scores(model, data, args.mnist, args.per_digit, args.prep)
        print(name, out[name], flush=True)
    out["settings"] = vars(args) | {"model": str(args.model)}
    path = RESULTS / "finetune-drawn.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {path} ({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
