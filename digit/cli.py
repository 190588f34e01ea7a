"""The command line: train, fine-tune, evaluate, predict, export and explain.

python -m digit train --epochs 12 --out models/mine.keras --data ../shared/data/mnist.npz
python -m digit evaluate --model models/mine.keras --json
python -m digit predict drawing.png another.jpg --json
python -m digit predict --number year.png         # a whole number, digits side by side: a JSON line per file
python -m digit export models/mine.keras          # the LiteRT export the app serves with
python -m digit explain drawing.png --out sheet.png   # the input, its saliency and every layer, in one picture

`train`, `finetune` and `measure` with `--events -` write progress as JSON lines on stdout
(digit/worker.py): the app runs them as child processes and follows them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path

from digit.config import ARCHITECTURES, DEFAULT_ARCH, DEFAULT_MODEL_PATH, ConfigError, FinetuneConfig, TrainConfig


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
    train.add_argument(
        "--pen-redraw",
        type=float,
        help="share of the training digits redrawn with a pen and prepared as drawings are (0-1; default: 0)",
    )
    train.add_argument("--init", type=Path, help="start from this .keras model's weights (same --arch)")
    train.add_argument("--out", type=Path, help="where to save the .keras file (default: runs/ARCH-TIME.keras)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument(
        "--ema",
        action="store_true",
        default=None,
        help="keep the weights' moving average over the run's steps and save that (default: off)",
    )
    add_job_arguments(train)
    train.set_defaults(handler=run_train)

    finetune = commands.add_parser("finetune", help="fine-tune a model on your corrections, replaying MNIST")
    finetune.add_argument("--model", type=Path, help="the .keras model to start from (default: the shipped model)")
    finetune.add_argument(
        "--corrections", type=Path, required=True, help="a corrections .npz (downloaded from My corrections)"
    )
    defaults = FinetuneConfig()
    finetune.add_argument("--epochs", type=int, default=defaults.epochs, help=f"(default: {defaults.epochs})")
    finetune.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help=f"(default: {defaults.learning_rate:g})"
    )
    finetune.add_argument(
        "--oversample",
        type=int,
        default=defaults.oversample,
        help=f"times each correction is shown per epoch (default: {defaults.oversample})",
    )
    finetune.add_argument(
        "--replay",
        type=float,
        default=defaults.replay,
        help=f"MNIST images per correction shown (default: {defaults.replay:g})",
    )
    finetune.add_argument(
        "--data", type=Path, help="an mnist.npz to read (default: $DIGIT_MNIST_NPZ, else Keras' download)"
    )
    finetune.add_argument("--out", type=Path, help="where to save the .keras file (default: runs/finetune-TIME.keras)")
    finetune.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    add_job_arguments(finetune)
    finetune.set_defaults(handler=run_finetune)

    measure = commands.add_parser("measure", help="a fine-tune's before and after: MNIST and cross-validation")
    measure.add_argument("--base", type=Path, required=True, help="the model before fine-tuning (.keras)")
    measure.add_argument("--tuned", type=Path, required=True, help="the model after fine-tuning (.keras)")
    measure.add_argument("--corrections", type=Path, required=True, help="the corrections .npz it was tuned on")
    measure.add_argument("--folds", type=int, default=5, help="cross-validation folds; 0 skips it (default: 5)")
    measure.add_argument("--settings", help="the fine-tune's settings as JSON (default: FinetuneConfig's)")
    measure.add_argument(
        "--data", type=Path, help="an mnist.npz to read (default: $DIGIT_MNIST_NPZ, else Keras' download)"
    )
    measure.add_argument("--events", help="write progress and the report as JSON lines to this file ('-': stdout)")
    measure.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    measure.add_argument("--control-stdin", action="store_true", help=argparse.SUPPRESS)
    measure.set_defaults(handler=run_measure)

    publish = commands.add_parser("publish", help="(the app's) export a staged model and add it to a registry")
    publish.add_argument("staged", type=Path, metavar="STAGED", help="a .keras file with its card beside it")
    publish.add_argument("--registry", type=Path, required=True, help="the registry folder to add it to")
    publish.add_argument("--data", type=Path, help="an mnist.npz to check the export on")
    publish.add_argument("--events", help="write progress as JSON lines to this file ('-': stdout)")
    publish.add_argument("--control-stdin", action="store_true", help=argparse.SUPPRESS)
    publish.set_defaults(handler=run_publish, nice=0)

    export = commands.add_parser("export", help="export a .keras model for serving (LiteRT), checked against Keras")
    export.add_argument("model", type=Path, metavar="MODEL", help="a .keras file; the export is written beside it")
    export.add_argument(
        "--data", type=Path, help="an mnist.npz to check on (default: $DIGIT_MNIST_NPZ, else Keras' download)"
    )
    export.set_defaults(handler=run_export)

    evaluate = commands.add_parser("evaluate", help="score a model on the 10,000 MNIST test images")
    evaluate.add_argument("--model", type=Path, help="a .keras file (default: the shipped model)")
    evaluate.add_argument(
        "--data", type=Path, help="an mnist.npz to read (default: $DIGIT_MNIST_NPZ, else Keras' download)"
    )
    evaluate.add_argument("--json", action="store_true", help="end with one JSON line: accuracy, loss, n, ...")
    evaluate.set_defaults(handler=run_evaluate)

    predict = commands.add_parser("predict", help="recognise the digit in image files")
    predict.add_argument("files", nargs="+", type=Path, metavar="FILE", help="PNG, JPEG, BMP, WebP or GIF images")
    predict.add_argument("--model", type=Path, help="a .keras or .tflite file (default: the shipped model)")
    predict.add_argument("--json", action="store_true", help="one JSON line per file")
    predict.add_argument(
        "--number",
        action="store_true",
        help='read a whole number in each image (digits side by side): one JSON line per file, {"file", "number", "digits"}',
    )
    predict.set_defaults(handler=run_predict)

    explain = commands.add_parser("explain", help="draw what each layer sees of an image and which strokes decided")
    explain.add_argument("file", type=Path, metavar="FILE", help="a PNG, JPEG, BMP, WebP or GIF image")
    explain.add_argument("--out", type=Path, default=Path("sheet.png"), help="the PNG to write (default: sheet.png)")
    explain.add_argument("--model", type=Path, help="a .keras or .tflite file (default: the shipped model)")
    explain.set_defaults(handler=run_explain)
    return parser


def add_job_arguments(command: argparse.ArgumentParser) -> None:
    """What the app's runner passes to a run it starts as a child process."""
    command.add_argument("--registry", type=Path, help="save into this registry folder (the app's) instead of --out")
    command.add_argument("--events", help="write progress as JSON lines to this file ('-': stdout)")
    command.add_argument("--nice", type=int, default=0, help="lower CPU priority by this much (default: 0)")
    command.add_argument("--control-stdin", action="store_true", help=argparse.SUPPRESS)  # the runner's Stop
    command.add_argument("--owner", help=argparse.SUPPRESS)  # the app's visitor who started it, for its card


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
            pen_redraw=args.pen_redraw,
            init=str(args.init) if args.init else None,
            ema=args.ema,
        )
    except ConfigError as error:
        parser.error(str(error))  # exits with status 2
    if args.init and not args.init.is_file():
        parser.error(f"--init: no model file at {args.init}")
    out = _out_path(args, parser, config.arch)
    from digit import worker

    job = worker.TrainJob(config, args.data, out, args.registry, _command_line(), args.owner)
    return worker.run(job, _session(args))


def run_finetune(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        config = FinetuneConfig(
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            oversample=args.oversample,
            replay=args.replay,
            seed=args.seed,
        )
        config.validate()
    except (ConfigError, TypeError) as error:
        parser.error(str(error))
    out = _out_path(args, parser, "finetune")
    from digit import worker

    base = args.model or DEFAULT_MODEL_PATH
    job = worker.FinetuneJob(config, base, args.corrections, args.data, out, args.registry, args.owner)
    return worker.run(job, _session(args))


def run_measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        config = FinetuneConfig.from_dict(json.loads(args.settings)) if args.settings else FinetuneConfig()
        config.validate()
    except (ValueError, TypeError) as error:
        parser.error(f"--settings: {error}")
    from digit import worker

    job = worker.MeasureJob(config, args.base, args.tuned, args.corrections, args.data, args.folds)
    return worker.run(job, _session(args))


def run_publish(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from digit import worker

    return worker.run(worker.PublishJob(args.staged, args.registry, args.data), _session(args))


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from digit.data import DataError, load_mnist
    from digit.models import ModelError, export_saved

    try:
        check_images = load_mnist(args.data).x_test
    except DataError:
        check_images = None  # checked on synthetic images instead; the card says so
    try:
        serving = export_saved(args.model, check_images)
    except ModelError as error:
        return _fail(str(error))
    if serving.get("engine") != "LiteRT":
        return _fail(f"{args.model.name} will be served through Keras: {serving.get('reason')}")
    print(
        f"exported {args.model.with_suffix('.tflite')} ({serving['bytes'] / 1e6:.1f} MB); "
        f"largest difference from Keras {serving['max_difference']:.1e} on {serving['checked_on']}"
    )
    layers = serving.get("layers") or {}
    if layers.get("engine") == "LiteRT":
        print(f"exported {args.model.with_suffix('.layers.tflite')} (every layer's output, for explanations)")
    else:
        print(f"no layers export, so no layer views: {layers.get('reason')}", file=sys.stderr)
    return 0


def _out_path(args: argparse.Namespace, parser: argparse.ArgumentParser, stem: str) -> Path | None:
    if args.registry is not None:
        if args.out is not None:
            parser.error("give --out or --registry, not both")
        return None
    out = args.out or Path("runs") / f"{stem}-{datetime.now():%Y%m%d-%H%M%S}.keras"
    if out.suffix != ".keras":
        parser.error(f"--out must end in .keras, got {out}")
    return out


def _session(args: argparse.Namespace):
    from digit import worker

    return worker.Session.open(args.events, args.nice, args.control_stdin)


def _command_line() -> str:
    return "python -m digit " + shlex.join(sys.argv[1:] if argv_is_ours() else [])


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
    from digit.number import read_number
    from digit.preprocessing import ImageError
    from digit.serving import ModelError, load_predictor

    try:
        model = load_predictor(args.model)
    except ModelError as error:
        return _fail(str(error))
    failures = 0
    for path in args.files:
        try:
            image = read_image_file(path)
            if args.number:
                _report(True, _number_line(path, read_number(model, image)), "")
                continue
            p = predict(model, image)
        except ImageError as error:
            failures += 1
            _report(args.json or args.number, {"file": str(path), "error": str(error)}, f"{path}: error: {error}")
            continue
        line = {"file": str(path), "digit": p.digit, "probabilities": [round(float(v), 6) for v in p.probabilities]}
        text = f"{path}: blank (no digit)" if p.digit is None else f"{path}: {p.digit} ({p.confidence:.1%})"
        _report(args.json, line, text)
    return 1 if failures else 0


def _number_line(path: Path, reading) -> dict:
    """A number read from a file as the JSON line `predict --number` prints."""
    digits = [{"digit": d.digit, "confidence": round(d.confidence, 4), "box": list(d.box)} for d in reading.digits]
    return {"file": str(path), "number": reading.number, "digits": digits}


def run_explain(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from digit.explanation import explain, save_sheet
    from digit.images import read_image_file
    from digit.preprocessing import ImageError
    from digit.serving import ModelError, load_predictor

    try:
        image = read_image_file(args.file)
        explanation = explain(load_predictor(args.model), image)
    except (ImageError, ModelError) as error:
        return _fail(f"{args.file}: {error}")
    p = explanation.prediction
    if p.digit is None:
        return _fail(f"{args.file}: blank (no digit to explain)")
    try:
        save_sheet(explanation, image, args.out, title=f"{args.file.name}: {p.digit} ({p.confidence:.1%} sure)")
    except OSError as error:
        return _fail(f"cannot write {args.out}: {error.strerror or error}")
    layers = f"{len(explanation.layers) - 1} layers" if explanation.layers else explanation.note
    print(f"{args.file}: {p.digit} ({p.confidence:.1%}); wrote {args.out} (the input, its saliency, {layers})")
    return 0


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
    return len(sys.argv) > 1 and sys.argv[1] in (
        "train",
        "finetune",
        "measure",
        "evaluate",
        "predict",
        "export",
        "explain",
    )
