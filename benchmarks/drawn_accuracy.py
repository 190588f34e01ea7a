"""How well a model reads drawn-style canvas digits: MNIST-style preprocessing against a naive resize.

Renders (a) MNIST test digits re-drawn as pen strokes and (b) jittered stroke templates as
280x280 RGBA canvases (digit/drawn.py), runs the model on them, and prints accuracy per set,
per digit, per pen width, size and background, the commonest confusions, and writes a
picture of the failures to benchmarks/results/.

    python benchmarks/drawn_accuracy.py                          # shipped model, 2,000 + 500 digits
    python benchmarks/drawn_accuracy.py --model runs/mine.keras --mnist 500 --per-digit 20
    python benchmarks/drawn_accuracy.py --prep mnist naive thickness   # compare preprocessings
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # run from a checkout without installing anything

from benchmarks.proposals import PROPOSALS  # noqa: E402
from digit import drawn  # noqa: E402
from digit.config import DEFAULT_MODEL_PATH, IMAGE_SIZE  # noqa: E402
from digit.preprocessing import ink_intensity, preprocess  # noqa: E402

RESULTS = PROJECT / "benchmarks" / "results"
SHARED_NPZ = PROJECT.parent / "shared" / "data" / "mnist.npz"
FIXTURE_NPZ = PROJECT / "tests" / "fixtures" / "mnist-small.npz"
CHUNK = 250  # canvases rendered at a time: 250 x 313 kB
BLANK = -1  # the "prediction" for a canvas preprocessing found blank

Preparer = Callable[[np.ndarray], np.ndarray | None]


def naive_resize(canvas: np.ndarray) -> np.ndarray:
    """The tutorial's way: the whole canvas shrunk to 28x28 (ink made white on black first)."""
    return cv2.resize(ink_intensity(canvas), (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)


PREPARERS: dict[str, Preparer] = {"mnist": preprocess, "naive": naive_resize, **PROPOSALS}


@dataclass
class SetResult:
    """Predictions of one preprocessing on one drawn set."""

    labels: list[int] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    prep_seconds: float = 0.0  # time spent preprocessing

    @property
    def accuracy(self) -> float:
        return float(np.mean(np.asarray(self.predictions) == np.asarray(self.labels))) if self.labels else float("nan")

    def per_digit(self) -> dict[int, float]:
        labels, predictions = np.asarray(self.labels), np.asarray(self.predictions)
        return {d: float((predictions[labels == d] == d).mean()) for d in range(10) if (labels == d).any()}

    def confusions(self, k: int = 10) -> list[tuple[int, int, int]]:
        """The k commonest (true, predicted, count) mistakes."""
        pairs = Counter((t, p) for t, p in zip(self.labels, self.predictions, strict=True) if t != p)
        return [(t, p, c) for (t, p), c in pairs.most_common(k)]


def find_test_set(path: Path | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """MNIST test images and labels: the given .npz, $DIGIT_MNIST_NPZ, ../shared/data, else the small fixture."""
    from digit.config import data_path_from_env

    for candidate in (path, data_path_from_env(), SHARED_NPZ, FIXTURE_NPZ):
        if candidate is not None and Path(candidate).is_file():
            with np.load(candidate) as data:
                return data["x_test"], data["y_test"], str(candidate)
    raise SystemExit("no MNIST .npz found: pass --data or set DIGIT_MNIST_NPZ")


def drawn_chunks(
    x_test: np.ndarray, y_test: np.ndarray, n_mnist: int, per_digit: int, seed: int
) -> Iterator[tuple[str, int, np.ndarray, np.ndarray]]:
    """(set name, index of the first canvas, canvases, labels), a chunk at a time."""
    n_mnist = min(n_mnist, len(x_test))
    for start in range(0, n_mnist, CHUNK):
        canvases, labels = drawn.render_mnist_as_drawn(x_test, y_test, seed, min(CHUNK, n_mnist - start), start)
        yield "mnist-drawn", start, canvases, labels
    if per_digit > 0:
        canvases, labels = drawn.render_templates(seed, per_digit)
        for start in range(0, len(labels), CHUNK):
            yield "templates", start, canvases[start : start + CHUNK], labels[start : start + CHUNK]


def evaluate_drawn(
    model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_mnist: int = 2000,
    per_digit: int = 50,
    seed: int = 0,
    preps: tuple[str, ...] = ("mnist", "naive"),
    keep_failures: int = 0,
) -> tuple[dict[str, dict[str, SetResult]], list[dict]]:
    """Results per set and preprocessing, and up to `keep_failures` failures per set (of the first prep)."""
    from digit.inference import predict_probabilities

    results: dict[str, dict[str, SetResult]] = {}
    failures: list[dict] = []
    for name, start, canvases, labels in drawn_chunks(x_test, y_test, n_mnist, per_digit, seed):
        for prep in preps:
            began = time.perf_counter()
            inputs = [PREPARERS[prep](canvas) for canvas in canvases]
            spent = time.perf_counter() - began
            ready = [i for i, x in enumerate(inputs) if x is not None]
            predictions = np.full(len(labels), BLANK)
            confidences = np.zeros(len(labels))
            if ready:
                probabilities = predict_probabilities(model, np.stack([inputs[i] for i in ready]))
                predictions[ready] = probabilities.argmax(axis=1)
                confidences[ready] = probabilities.max(axis=1)
            result = results.setdefault(name, {}).setdefault(prep, SetResult())
            result.labels += labels.tolist()
            result.predictions += predictions.tolist()
            result.confidences += confidences.tolist()
            result.prep_seconds += spent
            if prep == preps[0]:
                failures += _failures(name, start, canvases, inputs, labels, predictions, confidences, keep_failures)
    return results, failures


def _failures(name, start, canvases, inputs, labels, predictions, confidences, keep) -> list[dict]:
    wrong = np.flatnonzero(predictions != labels)[:keep]
    return [
        {
            "set": name,
            "index": start + int(i),
            "label": int(labels[i]),
            "prediction": int(predictions[i]),
            "confidence": float(confidences[i]),
            "canvas": canvases[i],
            "input": inputs[i],
        }
        for i in wrong
    ]


def breakdown(result: SetResult, poses: list[drawn.Pose]) -> dict[str, dict[str, float]]:
    """Accuracy by pen width relative to the digit's height, by height, and by background."""
    correct = np.asarray(result.predictions) == np.asarray(result.labels)
    ratio = np.array([p.pen / p.height for p in poses])
    height = np.array([p.height / drawn.CANVAS for p in poses])
    background = np.array([p.background for p in poses])
    groups = {
        "pen/height": _binned(correct, ratio, [0.0, 0.06, 0.1, 0.14, 0.18, 1.0]),
        "height/canvas": _binned(correct, height, [0.25, 0.4, 0.55, 0.7, 0.91]),
        "background": {b: _share(correct[background == b]) for b in drawn.BACKGROUNDS},
    }
    return groups


def _binned(correct: np.ndarray, values: np.ndarray, edges: list[float]) -> dict[str, float]:
    out = {}
    for low, high in itertools.pairwise(edges):
        inside = (values >= low) & (values < high)
        out[f"{low:.2f}-{high:.2f}"] = _share(correct[inside])
    return out


def _share(correct: np.ndarray) -> float:
    return float(correct.mean()) if correct.size else float("nan")


def style_accuracy(result: SetResult, per_digit: int) -> dict[str, float]:
    """Accuracy of each template style, as 'digit.style'."""
    by_style: dict[str, list[bool]] = {}
    for i, (label, prediction) in enumerate(zip(result.labels, result.predictions, strict=True)):
        key = f"{label}.{drawn.template_style(i, per_digit, label)}"
        by_style.setdefault(key, []).append(label == prediction)
    return {k: float(np.mean(v)) for k, v in sorted(by_style.items())}


def failure_sheet(failures: list[dict], path: Path, columns: int = 8) -> Path:
    """A PNG of failures: each the canvas and, beside it, the 28x28 image the model saw."""
    size = 112
    tiles = []
    for f in failures:
        canvas = drawn.contact_sheet(f["canvas"][None], columns=1, size=size)
        seen = np.zeros((IMAGE_SIZE, IMAGE_SIZE)) if f["input"] is None else f["input"]
        seen = cv2.resize((255 * seen).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
        seen = np.pad(cv2.cvtColor(seen, cv2.COLOR_GRAY2RGB), ((2, 2), (2, 2), (0, 0)), constant_values=160)
        pair = np.concatenate([canvas, seen], axis=1)
        guess = "blank" if f["prediction"] == BLANK else f"{f['prediction']} {f['confidence']:.2f}"
        text = f"{f['label']}->{guess} {f['set'][0]}{f['index']}"
        cv2.putText(pair, text, (4, size - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (220, 0, 0), 1, cv2.LINE_AA)
        tiles.append(pair)
    if not tiles:
        tiles = [np.full((size + 4, 2 * (size + 4), 3), 255, np.uint8)]
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    blank = np.full_like(tiles[0], 255)
    sheet = np.concatenate([np.concatenate(r + [blank] * (columns - len(r)), axis=1) for r in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet[..., ::-1])
    return path


def report(results: dict[str, dict[str, SetResult]], seed: int, per_digit: int) -> dict:
    """Print the tables and return them as JSON-ready values."""
    preps = list(next(iter(results.values())))
    summary: dict = {"sets": {}}
    print(f"\n{'set':<14}{'n':>6}" + "".join(f"{p:>12}" for p in preps))
    for name, by_prep in results.items():
        n = len(next(iter(by_prep.values())).labels)
        print(f"{name:<14}{n:>6}" + "".join(f"{100 * r.accuracy:>11.2f}%" for r in by_prep.values()))
        summary["sets"][name] = {"n": n, "accuracy": {p: r.accuracy for p, r in by_prep.items()}}
    combined = _combined(results)
    print(
        f"{'all':<14}{len(combined[preps[0]].labels):>6}"
        + "".join(f"{100 * combined[p].accuracy:>11.2f}%" for p in preps)
    )
    summary["all"] = {p: combined[p].accuracy for p in preps}
    ms = {p: 1000 * combined[p].prep_seconds / max(1, len(combined[p].labels)) for p in preps}
    print(f"{'ms/canvas':<20}" + "".join(f"{ms[p]:>12.2f}" for p in preps))
    summary["prep_ms_per_canvas"] = ms
    for name, by_prep in results.items():
        main = by_prep[preps[0]]
        poses = (
            drawn.mnist_poses(seed, len(main.labels))
            if name == "mnist-drawn"
            else drawn.template_poses(seed, len(main.labels))
        )
        detail = {
            "per_digit": {str(d): a for d, a in main.per_digit().items()},
            "confusions": main.confusions(),
            **breakdown(main, poses),
        }
        if name == "templates":
            detail["styles"] = style_accuracy(main, per_digit)
        summary["sets"][name]["detail_" + preps[0]] = detail
        _print_detail(name, preps[0], detail)
    return summary


def _combined(results: dict[str, dict[str, SetResult]]) -> dict[str, SetResult]:
    out: dict[str, SetResult] = {}
    for by_prep in results.values():
        for prep, r in by_prep.items():
            total = out.setdefault(prep, SetResult())
            total.labels += r.labels
            total.predictions += r.predictions
            total.confidences += r.confidences
            total.prep_seconds += r.prep_seconds
    return out


def _print_detail(name: str, prep: str, detail: dict) -> None:
    print(f"\n{name}, {prep} preprocessing")
    print("  per digit:  " + "  ".join(f"{d}:{100 * a:.1f}" for d, a in detail["per_digit"].items()))
    print("  confusions: " + ", ".join(f"{t}->{'blank' if p == BLANK else p} x{c}" for t, p, c in detail["confusions"]))
    for group in ("pen/height", "height/canvas", "background", "styles"):
        if group in detail:
            print(f"  {group + ':':<15}" + "  ".join(f"{k} {100 * v:.1f}" for k, v in detail[group].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_PATH, help="a .keras model (default: the shipped one)"
    )
    parser.add_argument(
        "--data", type=Path, help="an mnist.npz (default: $DIGIT_MNIST_NPZ, ../shared/data, else the test fixture)"
    )
    parser.add_argument("--mnist", type=int, default=2000, help="MNIST test digits re-drawn (default: 2000)")
    parser.add_argument("--per-digit", type=int, default=50, help="template drawings per digit (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the drawings (default: 0)")
    parser.add_argument(
        "--prep",
        nargs="+",
        default=["mnist", "naive"],
        choices=sorted(PREPARERS),
        help="preprocessings to compare; the first is analysed (default: mnist naive)",
    )
    parser.add_argument("--failures", type=int, default=48, help="failures per set in the picture (default: 48)")
    parser.add_argument("--out", type=Path, help="JSON results (default: benchmarks/results/drawn-MODEL.json)")
    args = parser.parse_args(argv)

    import digit

    model = digit.load_model(args.model)
    x_test, y_test, source = find_test_set(args.data)
    print(f"model {args.model}; MNIST test digits from {source}; seed {args.seed}")
    started = time.perf_counter()
    results, failures = evaluate_drawn(
        model, x_test, y_test, args.mnist, args.per_digit, args.seed, tuple(args.prep), args.failures
    )
    summary = report(results, args.seed, args.per_digit)
    stem = args.model.stem
    picture = failure_sheet(failures, RESULTS / f"drawn-failures-{stem}.png")
    summary.update(model=str(args.model), data=source, seed=args.seed, seconds=time.perf_counter() - started)
    out = args.out or RESULTS / f"drawn-{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nfailures: {picture}\nresults: {out}  ({summary['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
