"""The command line: train, evaluate and predict.

python -m digit train --epochs 12 --out models/mine.keras --data ../shared/data/mnist.npz
python -m digit evaluate --model models/mine.keras --json
python -m digit predict drawing.png another.jpg --json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from digit.config import ARCHITECTURES, DEFAULT_ARCH, DEFAULT_MODEL_PATH, ConfigError, TrainConfig


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args, parser)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m digit", description="Recognise hand-drawn digits (MNIST CNN).")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on MNIST and save it")
    train.add_argument(
        "--arch", choices=ARCHITECTURES, default=DEFAULT_ARCH, help=f"architecture (default: {DEFAULT_ARCH})"
    )
    train.add_argument("--epochs", type=int, help="passes over the training set (default: 15; seed: 5)")
    train.add_argument("--batch-size", type=int, help="images per step (default: 128; seed: 32)")
    train.add_argument("--learning-rate", type=float, help="Adam's learning rate (default: 0.002; seed: 0.001)")
    train.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drawing-like augmentation (default: on; seed: off)",
    )
    train.add_argument("--limit", type=int, help="train on the first N training images only (default: all)")
    train.add_argument(
        "--validation-split", type=float, help="fraction held out for validation (default: 0; seed: 0.3)"
    )
    train.add_argument(
        "--data", type=Path, help="an mnist.npz to read (default: $DIGIT_MNIST_NPZ, else Keras' download)"
    )
    train.add_argument("--out", type=Path, help="where to save the .keras file (default: runs/ARCH-TIME.keras)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("evaluate", help="score a model on the 10,000 MNIST test images")
    evaluate.add_argument("--model", type=Path, help="a .keras file (default: the shipped model)")
    evaluate.add_argument(
        "--data", type=Path, help="an mnist.npz to read (default: $DIGIT_MNIST_NPZ, else Keras' download)"
    )
    evaluate.add_argument("--json", action="store_true", help="end with one JSON line: accuracy, loss, n, ...")
    evaluate.set_defaults(handler=run_evaluate)

    predict = commands.add_parser("predict", help="recognise the digit in image files")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE", help="PNG, JPEG, BMP, WebP or GIF images")
    predict.add_argument("--model", type=Path, help="a .keras file (default: the shipped model)")
    predict.add_argument("--json", action="store_true", help="one JSON line per file")
    predict.set_defaults(handler=run_predict)
    return parser


def run_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        config = TrainConfig.for_arch(
            args.arch,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            augment=args.augment,
            limit=args.limit,
            validation_split=args.validation_split,
            seed=args.seed,
        )
    except ConfigError as error:
        parser.error(str(error))  # exits with status 2
    out = args.out or Path("runs") / f"{config.arch}-{datetime.now():%Y%m%d-%H%M%S}.keras"
    if out.suffix != ".keras":
        parser.error(f"--out must end in .keras, got {out}")

    from digit.data import DataError, load_mnist
    from digit.evaluation import evaluate
    from digit.models import parameter_count, save_model
    from digit.training import train

    try:
        data = load_mnist(args.data)
    except DataError as error:
        return _fail(str(error))
    print(
        f"training {config.arch} on {min(len(data.x_train), config.limit or 60_000)} images: {json.dumps(config.to_dict())}",
        flush=True,
    )
    result = train(config, data, verbose=2)
    if not result.completed:
        return _fail(f"training {result.status} after {result.epochs_done} epochs; nothing saved")
    scores = evaluate(result.model, data.x_test, data.y_test)
    card = {
        "name": out.stem,
        "command": "python -m digit " + shlex.join(sys.argv[1:] if argv_is_ours() else []),
        "data": str(args.data) if args.data else "DIGIT_MNIST_NPZ or keras.datasets.mnist",
        "config": config.to_dict(),
        "train_images": result.train_images,
        "epochs_done": result.epochs_done,
        "wall_seconds": round(result.seconds, 1),
        "parameters": parameter_count(result.model),
        "test_accuracy": scores.accuracy,
        "test_loss": scores.loss,
        "history": result.history,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {_cpu_count()} cores, Python {platform.python_version()}",
    }
    save_model(result.model, out, card)
    print(f"test accuracy {scores.accuracy:.4f}, test loss {scores.loss:.4f}; {result.seconds:.0f} s; saved {out}")
    return 0


def run_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from digit.data import DataError, load_mnist
    from digit.evaluation import evaluate, format_confusion, format_report

    model = _load_or_none(args.model)
    if model is None:
        return 1
    try:
        data = load_mnist(args.data)
    except DataError as error:
        return _fail(str(error))
    started = time.perf_counter()
    scores = evaluate(model, data.x_test, data.y_test)
    print(f"model: {args.model or DEFAULT_MODEL_PATH}")
    print(
        f"test loss {scores.loss:.4f}, test accuracy {scores.accuracy:.4f} on {scores.n} images ({time.perf_counter() - started:.1f} s)\n"
    )
    print(format_report(scores), "\n")
    print(format_confusion(scores.confusion))
    if args.json:
        print(json.dumps(scores.to_dict()))
    return 0


def run_predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from digit.images import read_image_file
    from digit.inference import predict
    from digit.preprocessing import ImageError

    model = _load_or_none(args.model)
    if model is None:
        return 1
    failures = 0
    for path in args.files:
        try:
            p = predict(model, read_image_file(path))
        except ImageError as error:
            failures += 1
            _report(args.json, {"file": str(path), "error": str(error)}, f"{path}: error: {error}")
            continue
        line = {"file": str(path), "digit": p.digit, "probabilities": [round(float(v), 6) for v in p.probabilities]}
        text = f"{path}: blank (no digit)" if p.digit is None else f"{path}: {p.digit} ({p.confidence:.1%})"
        _report(args.json, line, text)
    return 1 if failures else 0


def _report(as_json: bool, line: dict, text: str) -> None:
    print(json.dumps(line) if as_json else text, flush=True)


def _load_or_none(path: Path | None):
    from digit.models import ModelError, load_model

    try:
        return load_model(path)
    except ModelError as error:
        _fail(str(error))
        return None


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def argv_is_ours() -> bool:
    """True when sys.argv is this CLI's command line (not pytest's, say)."""
    return len(sys.argv) > 1 and sys.argv[1] in ("train", "evaluate", "predict")


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
