"""Speed, memory and accuracy of the digit app's work, measured in one run so that ratios are fair.

    python benchmarks/run.py                      # full pass (about 4 minutes on 2 cores)
    python benchmarks/run.py --quick              # a fast pass: fewer calls, smaller runs
    python benchmarks/run.py --models models/digit-cnn.keras runs/other.keras

The server answers with each model's LiteRT export (`digit.load_predictor()`), so the per-stroke,
batch and accuracy figures use that predictor; the Keras model in this process is measured beside
it for comparison, and is what training uses. Prints a table (each target with its verdict) and
writes benchmarks/results/latest.json. Needs the full MNIST set ($DIGIT_MNIST_NPZ or
../shared/data/mnist.npz) for the figures that read it; without it the small test fixture stands
in where that is meaningful, and the rest is reported as skipped.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # run from a checkout without installing anything
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.drawn_accuracy import FIXTURE_NPZ, SHARED_NPZ, evaluate_drawn  # noqa: E402

RESULTS = PROJECT / "benchmarks" / "results"
LATENCY_TARGET = 0.02  # digit.predict(predictor, canvas) per stroke / model.predict on a ready input (issue 12)
OVERHEAD_TARGET = 0.05  # the training process's event reporting may cost at most 5% of training throughput


@dataclass(frozen=True)
class Settings:
    """How much work each measurement does."""

    predict_calls: int = 300  # digit.predict per stroke (each engine)
    keras_calls: int = 60  # model.predict on a ready input (about 50 ms each)
    preprocess_calls: int = 1000
    batch_repeats: int = 3
    train_images: int = 6000  # images per training-throughput run
    train_epochs: int = 3  # the first is warm-up (tracing), the rest are timed
    drawn_mnist: int = 2000
    drawn_per_digit: int = 50


QUICK = Settings(
    predict_calls=100,
    keras_calls=20,
    preprocess_calls=300,
    batch_repeats=1,
    train_images=2000,
    train_epochs=2,
    drawn_mnist=300,
    drawn_per_digit=10,
)


@dataclass
class Report:
    """Everything measured, and what was skipped and why."""

    results: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def skip(self, what: str, why: str) -> None:
        self.skipped.append(f"{what}: {why}")
        print(f"  skipped {what}: {why}", flush=True)


# ------------------------------------------------------------------------------------------
# helpers (pure, cheap: tests/test_benchmarks_smoke.py covers them)


def summarize(seconds: list[float]) -> dict:
    """Median, p95, min and count of a list of durations, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "min_ms": float(ms.min()),
        "n": int(ms.size),
    }


def time_calls(fn, n: int, warmup: int = 3) -> list[float]:
    """Durations of n calls of fn(), after a few untimed ones."""
    for _ in range(warmup):
        fn()
    durations = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - began)
    return durations


def memory_mb(pid: str = "self") -> dict:
    """Resident memory now and at its peak (VmRSS, VmHWM) in MB, from /proc; empty where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {
        key: int(fields[name].split()[0]) / 1024
        for key, name in (("rss_mb", "VmRSS"), ("peak_mb", "VmHWM"))
        if name in fields
    }


def find_full_mnist() -> Path | None:
    """The full MNIST .npz: $DIGIT_MNIST_NPZ, else ../shared/data/mnist.npz; None when absent."""
    env = os.environ.get("DIGIT_MNIST_NPZ")
    candidate = Path(env) if env else SHARED_NPZ
    return candidate if candidate.is_file() else None


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """Rows of (measure, value, target or note) as an aligned plain-text table."""
    header = ("measure", "value", "target / note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def thread_settings() -> dict:
    """CPU count and TensorFlow's thread pools (0 means TensorFlow's default: one per core)."""
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        **{
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
            if k in os.environ
        },
    }


# ------------------------------------------------------------------------------------------
# measurements


def sample_canvases(n: int = 20) -> np.ndarray:
    """Drawn-style 280x280 RGBA canvases, like the ones the app predicts per stroke."""
    from digit import drawn

    canvases, _ = drawn.render_templates(seed=7, per_digit=max(1, n // 10))
    return canvases[:n]


def measure_latency(model, predictor, settings: Settings, report: Report) -> None:
    """digit.predict on a canvas (LiteRT, then Keras in process) against model.predict on a ready 28x28 input."""
    import digit
    from digit.keras_predictor import compiled

    canvases = sample_canvases()
    cycle = iter(np.resize(np.arange(len(canvases)), 10**6))

    def stroke(engine) -> dict:
        return summarize(time_calls(lambda: digit.predict(engine, canvases[next(cycle)]), settings.predict_calls, 10))

    per_stroke, keras_stroke = stroke(predictor), stroke(model)
    x = digit.preprocess(canvases[0])
    ready = x[np.newaxis, :, :, np.newaxis].astype(np.float32)
    keras_predict = summarize(time_calls(lambda: model.predict(ready, verbose=0), settings.keras_calls))
    direct = summarize(time_calls(lambda: model(ready, training=False), settings.keras_calls))
    infer = compiled(model)
    graph = summarize(time_calls(lambda: infer(ready).numpy(), settings.predict_calls))
    litert = summarize(time_calls(lambda: predictor.probabilities(x[np.newaxis]), settings.predict_calls))
    prep = summarize(time_calls(lambda: digit.preprocess(canvases[next(cycle)]), settings.preprocess_calls, 10))
    report.results["latency"] = {
        "engine": predictor.engine,
        "digit_predict_canvas": per_stroke,
        "digit_predict_canvas_keras": keras_stroke,
        "keras_model_predict_28x28": keras_predict,
        "keras_model_call_28x28": direct,
        "compiled_function_28x28": graph,
        "litert_28x28": litert,
        "preprocess_canvas": prep,
        "ratio_median": per_stroke["median_ms"] / keras_predict["median_ms"],
        "ratio_p95": per_stroke["p95_ms"] / keras_predict["median_ms"],
        "ratio_median_keras_in_process": keras_stroke["median_ms"] / keras_predict["median_ms"],
        "target_ratio": LATENCY_TARGET,
    }


def measure_batch(
    model, predictor, x_test: np.ndarray, y_test: np.ndarray, source: str, settings: Settings, report: Report
) -> None:
    """Images per second over the test set (predictor, and Keras for comparison), and digit.evaluate."""
    from digit.data import to_model_input
    from digit.evaluation import evaluate
    from digit.keras_predictor import keras_probabilities

    x = to_model_input(x_test)
    predictor.probabilities(x[:1024])  # makes the batch interpreter, as the first Evaluate does
    keras_probabilities(model, x[:1024])  # traces once
    seconds = [_timed(lambda: predictor.probabilities(x)) for _ in range(settings.batch_repeats)]
    keras_seconds = [_timed(lambda: keras_probabilities(model, x)) for _ in range(settings.batch_repeats)]
    evaluate_seconds = [_timed(lambda: evaluate(predictor, x_test, y_test)) for _ in range(settings.batch_repeats)]
    report.results["batch_inference"] = {
        "engine": predictor.engine,
        "images": len(x),
        "source": source,
        "seconds": min(seconds),
        "images_per_second": len(x) / min(seconds),
        "keras_seconds": min(keras_seconds),
        "keras_images_per_second": len(x) / min(keras_seconds),
        "evaluate_seconds": min(evaluate_seconds),
    }


def _timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


class EpochClock:
    """Times each epoch; defines no batch hooks, so it adds no per-batch work to training."""

    def __init__(self) -> None:
        import keras

        class _Clock(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.began = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                self.epochs.append(time.perf_counter() - cb.began)

        self.epochs: list[float] = []
        self.callback = _Clock()

    def steady_seconds(self) -> float:
        """Mean epoch time after the first (which traces the model)."""
        steady = self.epochs[1:] or self.epochs
        return float(np.mean(steady))


def train_throughput(arch: str, data, settings: Settings, callbacks: list | None = None) -> dict:
    """Images per second of training `arch` with its recipe, on settings.train_images images."""
    from digit.config import TrainConfig
    from digit.training import train

    limit = min(settings.train_images, len(data.x_train))
    config = TrainConfig.for_arch(arch, epochs=settings.train_epochs, limit=limit, validation_split=0.0)
    clock = EpochClock()
    result = train(config, data, callbacks=[clock.callback, *(callbacks or [])])
    images_per_second = result.train_images / clock.steady_seconds()
    recipe = TrainConfig.for_arch(arch)
    full_images = int(60_000 * (1 - recipe.validation_split))
    return {
        "images": result.train_images,
        "batch_size": config.batch_size,
        "augment": config.augment,
        "epochs_timed": max(1, len(clock.epochs) - 1),
        "images_per_second": images_per_second,
        "seconds_per_epoch_60k_recipe": full_images / images_per_second,
        "recipe_train_images": full_images,
    }


def measure_training(data, source: str, settings: Settings, report: Report) -> None:
    """Training throughput of seed and cnn, with the thread settings in use."""
    report.results["training"] = {"data": source, "threads": thread_settings()}
    for arch in ("seed", "cnn"):
        print(f"  training {arch} on {min(settings.train_images, len(data.x_train))} images ...", flush=True)
        report.results["training"][arch] = train_throughput(arch, data, settings)


def train_page_callback():
    """The callback a Train page run has in its child process: events as JSON lines, and where they go.

    The child writes them to its standard output (a pipe to the server, flushed per line); here they
    go to an io.StringIO, so what is measured is the callback's and the serialisation's cost.
    """
    from digit.worker import Events, Recorder

    stream = io.StringIO()
    what = "digit.worker.Recorder emitting JSON lines (digit.worker.Events) into an io.StringIO, as the child does to its stdout"
    return Recorder(Events(stream)), stream, what


def interleaved(inner, block: int = 4):
    """A callback that passes batches to `inner` only in alternate blocks, and times every batch.

    Both halves run in the same training run, interleaved every few batches, so other work on
    the machine slows them alike: their difference is the callback's cost. training.train always
    has a batch-level callback of its own, so Keras syncs every batch in both halves.
    """
    import keras

    class Interleaved(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times: dict[bool, list[float]] = {False: [], True: []}
            self.plain_halves: tuple[list[float], list[float]] = ([], [])  # an A/A split: the noise floor
            self.hook_seconds: list[float] = []
            self.count, self.on, self.last, self.epoch = 0, False, None, 0

        def set_model(self, model):
            super().set_model(model)
            inner.set_model(model)

        def set_params(self, params):
            super().set_params(params)
            inner.set_params(params)

        def on_train_begin(self, logs=None):
            inner.on_train_begin(logs)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.last = epoch, None
            inner.on_epoch_begin(epoch, logs)

        def on_test_begin(self, logs=None):
            inner.on_test_begin(logs)

        def on_epoch_end(self, epoch, logs=None):
            inner.on_epoch_end(epoch, logs)

        def on_train_batch_begin(self, batch, logs=None):
            now = time.perf_counter()
            if self.last is not None and self.epoch > 0:  # the first epoch traces the model
                self.times[self.on].append(now - self.last)
                if not self.on:
                    self.plain_halves[(self.count - 1) // (2 * block) % 2].append(now - self.last)
            self.last = now
            self.on = (self.count // block) % 2 == 1
            self.count += 1

        def on_train_batch_end(self, batch, logs=None):
            if self.on:
                began = time.perf_counter()
                inner.on_train_batch_end(batch, logs)
                self.hook_seconds.append(time.perf_counter() - began)

    return Interleaved()


def trimmed_mean(values: list[float], cut: float = 0.1) -> float:
    """The mean without the highest `cut` share of values (stalls caused by other work)."""
    ordered = sorted(values)
    keep = ordered[: max(1, round(len(ordered) * (1 - cut)))]
    return float(np.mean(keep))


def measure_ui_overhead(data, settings: Settings, report: Report) -> None:
    """Cost of the Train page's reporting in the training process: batches with it against batches without."""
    from digit.config import TrainConfig
    from digit.training import train

    inner, stream, what = train_page_callback()
    clock = interleaved(inner)
    limit = min(settings.train_images, len(data.x_train))
    config = TrainConfig.for_arch("cnn", epochs=settings.train_epochs + 1, limit=limit)
    train(config, data, callbacks=[clock])
    plain, with_ui = clock.times[False], clock.times[True]
    batch = trimmed_mean(plain)
    hook = float(np.mean(clock.hook_seconds)) if clock.hook_seconds else 0.0
    report.results["ui_overhead"] = {
        "callback": what,
        "method": (
            "one cnn run; the callback gets alternate blocks of 4 batches. 'overhead' is its time per batch "
            "(Recorder and JSON serialisation) over the batch time; 'ab_overhead' compares the batches with and "
            "without it, 'aa_noise' two halves of the batches without"
        ),
        "batches_timed": [len(plain), len(with_ui)],
        "events_written": stream.getvalue().count("\n"),
        "batch_ms": 1000 * batch,
        "hook_ms_per_batch": 1000 * hook,
        "overhead": hook / batch,
        "ab_overhead": trimmed_mean(with_ui) / batch - 1,
        "ab_overhead_median": float(np.median(with_ui) / np.median(plain) - 1),
        "aa_noise": abs(trimmed_mean(clock.plain_halves[0]) / trimmed_mean(clock.plain_halves[1]) - 1),
        "target": OVERHEAD_TARGET,
    }


COLD_START = r"""
import json, os, sys, time
began = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import numpy as np
import digit
from digit import drawn
t_import = time.perf_counter()
predictor = digit.load_predictor(sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None)
t_model = time.perf_counter()
canvas = drawn.render_templates(seed=3, per_digit=1)[0][3]
digit.predict(predictor, canvas)
t_first = time.perf_counter()
for _ in range(100):
    digit.predict(predictor, canvas)
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l) if os.path.exists("/proc/self/status") else {}
mb = lambda k: int(status[k].split()[0]) / 1024 if k in status else None
print(json.dumps({"import_digit_s": t_import - began, "load_predictor_s": t_model - t_import,
                  "first_prediction_s": t_first - t_model, "engine": predictor.engine,
                  "tensorflow_imported": "tensorflow" in sys.modules,
                  "serving_rss_mb": mb("VmRSS"), "serving_peak_mb": mb("VmHWM")}))
"""

IMPORT_TENSORFLOW = r"""
import json, time
began = time.perf_counter()
import tensorflow
print(json.dumps({"import_tensorflow_s": time.perf_counter() - began}))
"""

TRAIN_MEMORY = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import keras
from digit.config import TrainConfig
from digit.data import load_npz
from digit.training import train

class StopAfter(keras.callbacks.Callback):  # the whole training set is in the pipeline; a few batches show its peak
    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 >= int(sys.argv[3]):
            self.model.stop_training = True

data = load_npz(sys.argv[2])
train(TrainConfig.for_arch("cnn", epochs=1), data, callbacks=[StopAfter()])
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(json.dumps({"training_peak_mb": int(status["VmHWM"].split()[0]) / 1024, "batches": int(sys.argv[3])}))
"""

TRAIN_MEMORY_BATCHES = 40


def run_script(script: str, *args: str) -> tuple[dict, float]:
    """Run a Python snippet in a fresh process; its last line of output as JSON, and the wall time."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def measure_cold_start(model_path: Path, report: Report) -> None:
    """A fresh serving process (import digit, load_predictor, first prediction, memory); and import tensorflow."""
    figures, wall = run_script(COLD_START, str(PROJECT), str(model_path))
    tensorflow, _ = run_script(IMPORT_TENSORFLOW)
    report.results["cold_start"] = {**figures, **tensorflow, "process_wall_s": wall, "model": str(model_path)}


def measure_training_memory(data_path: Path, report: Report) -> None:
    """Peak resident memory of a fresh process that loads MNIST and trains cnn on all of it (a few batches)."""
    figures, _ = run_script(TRAIN_MEMORY, str(PROJECT), str(data_path), str(TRAIN_MEMORY_BATCHES))
    report.results["training_memory"] = {**figures, "data": str(data_path)}


def measure_accuracy(model_paths: list[Path], full, fixture, settings: Settings, report: Report) -> None:
    """MNIST test and drawn-set accuracy (MNIST-style prep and naive resize) of each model, as served."""
    import digit
    from digit.evaluation import evaluate

    test = full or fixture
    source = "MNIST test set (10,000)" if full else f"the test fixture's {len(fixture.y_test)} digits"
    report.results["accuracy"] = {}
    for path in model_paths:
        print(f"  accuracy of {path} ...", flush=True)
        predictor = digit.load_predictor(path)
        entry = {"drawn_source": source, "engine": predictor.engine}
        if full is not None:
            entry["mnist_test"] = evaluate(predictor, full.x_test, full.y_test).accuracy
            entry["mnist_test_keras"] = evaluate(digit.load_model(path), full.x_test, full.y_test).accuracy
        results, _ = evaluate_drawn(predictor, test.x_test, test.y_test, settings.drawn_mnist, settings.drawn_per_digit)
        for name, by_prep in results.items():
            entry[name] = {prep: r.accuracy for prep, r in by_prep.items()} | {"n": len(by_prep["mnist"].labels)}
        report.results["accuracy"][str(path)] = entry
    if full is None:
        report.skip("MNIST test accuracy", "the full MNIST set is absent (set DIGIT_MNIST_NPZ)")


# ------------------------------------------------------------------------------------------
# the table


Rows = list[tuple[str, str, str]]


def table_rows(results: dict) -> Rows:
    """The headline figures as table rows."""
    sections = (latency_rows, batch_rows, training_rows, overhead_rows, cold_rows, accuracy_rows)
    return [row for section in sections for row in section(results)]


def latency_rows(results: dict) -> Rows:
    if not (lat := results.get("latency")):
        return []
    p, k, pk = lat["digit_predict_canvas"], lat["keras_model_predict_28x28"], lat["digit_predict_canvas_keras"]
    return [
        (
            f"digit.predict({lat['engine']} predictor, canvas)",
            _ms(p),
            "per stroke, 280x280 RGBA, preprocessing included",
        ),
        ("keras model.predict, ready 28x28", _ms(k, 1), "the seed's way"),
        ("  ratio (median / median)", f"{lat['ratio_median']:.4f}", _verdict(lat["ratio_median"], LATENCY_TARGET)),
        ("  ratio (p95 / median)", f"{lat['ratio_p95']:.4f}", "the tail (not the target's definition)"),
        (
            "digit.predict(Keras model, canvas)",
            _ms(pk),
            f"Keras in process: ratio {lat['ratio_median_keras_in_process']:.4f}",
        ),
        ("LiteRT interpreter alone, 28x28", _ms(lat["litert_28x28"], 3), ""),
        ("compiled tf.function, 28x28", _ms(lat["compiled_function_28x28"]), "what Keras in process runs"),
        ("model(x) direct call, 28x28", _ms(lat["keras_model_call_28x28"]), ""),
        ("preprocess, 280x280 canvas", _ms(lat["preprocess_canvas"], 3), "well under 1 ms"),
    ]


def batch_rows(results: dict) -> Rows:
    if not (b := results.get("batch_inference")):
        return []
    return [
        (
            f"batch inference ({b['engine']}), {b['images']} images",
            f"{b['images_per_second']:.0f} images/s ({b['seconds']:.2f} s)",
            b["source"],
        ),
        ("  same, Keras in process", f"{b['keras_images_per_second']:.0f} images/s ({b['keras_seconds']:.2f} s)", ""),
        (f"Evaluate computation (digit.evaluate, {b['engine']})", f"{b['evaluate_seconds']:.2f} s", ""),
    ]


def training_rows(results: dict) -> Rows:
    if not (t := results.get("training")):
        return []
    threads = t["threads"]
    rows = []
    for arch in ("seed", "cnn"):
        if a := t.get(arch):
            rows.append(
                (
                    f"training {arch} (batch {a['batch_size']}, augment {'on' if a['augment'] else 'off'})",
                    f"{a['images_per_second']:.0f} images/s, {a['seconds_per_epoch_60k_recipe']:.0f} s/epoch",
                    f"epoch of {a['recipe_train_images']} images; {threads['cpu_count']} cores, "
                    f"intra/inter threads {threads['intra_op_threads']}/{threads['inter_op_threads']} (0 = all)",
                )
            )
    return rows


def overhead_rows(results: dict) -> Rows:
    if not (u := results.get("ui_overhead")):
        return []
    return [
        (
            "Train page callback overhead",
            f"{100 * u['overhead']:.2f}% ({u['hook_ms_per_batch']:.3f} ms of {u['batch_ms']:.0f} ms a batch)",
            _verdict(u["overhead"], OVERHEAD_TARGET, "%"),
        ),
        (
            "  A/B check, same run",
            f"{100 * u['ab_overhead']:+.1f}% with vs without",
            f"noise floor (A/A) {100 * u['aa_noise']:.1f}%; {sum(u['batches_timed'])} batches",
        ),
    ]


def cold_rows(results: dict) -> Rows:
    rows = []
    if c := results.get("cold_start"):
        tf_note = "TensorFlow imported!" if c["tensorflow_imported"] else "no TensorFlow in the process"
        rows += [
            ("cold start: import tensorflow", f"{c['import_tensorflow_s']:.2f} s", "a fresh process, for comparison"),
            ("cold start: import digit", f"{c['import_digit_s']:.2f} s", "a fresh serving process"),
            ("cold start: load_predictor", f"{c['load_predictor_s']:.2f} s", c["engine"]),
            (
                "cold start: first prediction",
                f"{c['first_prediction_s']:.3f} s",
                f"process {c['process_wall_s']:.1f} s",
            ),
            ("memory serving (RSS after 100 predictions)", f"{c['serving_rss_mb']:.0f} MB", tf_note),
        ]
    if m := results.get("training_memory"):
        rows.append(
            ("memory training cnn (peak RSS)", f"{m['training_peak_mb']:.0f} MB", "a fresh process, all 60,000 images")
        )
    return rows


def accuracy_rows(results: dict) -> Rows:
    rows = []
    for path, acc in results.get("accuracy", {}).items():
        name = f"{Path(path).name} ({acc['engine']})"
        if "mnist_test" in acc:
            keras = f"Keras {100 * acc['mnist_test_keras']:.2f}%; >= 99.5%"
            rows.append((f"{name}: MNIST test", f"{100 * acc['mnist_test']:.2f}%", keras))
        for drawn_set in ("mnist-drawn", "templates"):
            if s := acc.get(drawn_set):
                rows.append(
                    (
                        f"{name}: {drawn_set} ({s['n']})",
                        f"{100 * s['mnist']:.1f}% MNIST-style prep",
                        f"{100 * s['naive']:.1f}% naive resize",
                    )
                )
    return rows


def _ms(summary: dict, digits: int = 2) -> str:
    return f"{summary['median_ms']:.{digits}f} ms median, {summary['p95_ms']:.{digits}f} p95"


def _verdict(value: float, target: float, unit: str = "") -> str:
    shown = f"{100 * target:.0f}%" if unit == "%" else f"{target:g}"
    return f"<= {shown}: {'met' if value <= target else 'NOT met'}"


# ------------------------------------------------------------------------------------------


def default_models() -> list[Path]:
    """The shipped model first, then any other .keras file in models/."""
    from digit.config import DEFAULT_MODEL_PATH, MODELS_DIR

    others = sorted(p for p in MODELS_DIR.glob("*.keras") if p != DEFAULT_MODEL_PATH)
    return [p for p in [DEFAULT_MODEL_PATH, *others] if p.is_file()]


PARTS = ("latency", "batch", "training", "overhead", "cold", "memory", "accuracy")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the digit app: latency, throughput, memory, accuracy.")
    parser.add_argument("--quick", action="store_true", help="a fast pass with fewer calls and smaller runs")
    parser.add_argument(
        "--models",
        nargs="+",
        type=Path,
        help="models to measure; the first is used for speed (default: models/*.keras, shipped first)",
    )
    parser.add_argument("--skip", nargs="+", default=[], choices=PARTS, help="parts to leave out (default: none)")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "latest.json",
        help="JSON results (default: benchmarks/results/latest.json)",
    )
    return parser.parse_args(argv)


def load_data(report: Report) -> tuple:
    """(full MNIST or None, its path or None, the test fixture)."""
    from digit.data import load_npz

    full_path = find_full_mnist()
    full = load_npz(full_path) if full_path else None
    if full is None:
        report.skip(
            "the full MNIST set",
            "not found ($DIGIT_MNIST_NPZ or ../shared/data/mnist.npz): using the test fixture where meaningful",
        )
    return full, full_path, load_npz(FIXTURE_NPZ)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else Settings()
    report = Report()

    import digit

    model_paths = args.models or default_models()
    full, full_path, fixture = load_data(report)
    train_data, train_source = (full, str(full_path)) if full else (fixture, f"fixture {FIXTURE_NPZ.name}")
    started = time.perf_counter()
    load_before = _load_average()
    model = digit.load_model(model_paths[0]) if model_paths else None  # Keras, for comparison
    predictor = digit.load_predictor(model_paths[0]) if model_paths else None  # what the server answers with
    if model is None:
        report.skip(
            "latency, batch inference, cold start, accuracy",
            "no model: train one (python -m digit train) or pass --models",
        )
    test_set = _test_images(full, fixture)
    parts = [
        ("latency", model is not None, lambda: measure_latency(model, predictor, settings, report)),
        ("batch", model is not None, lambda: measure_batch(model, predictor, *test_set, settings, report)),
        ("training", True, lambda: measure_training(train_data, train_source, settings, report)),
        ("overhead", True, lambda: measure_ui_overhead(train_data, settings, report)),
        ("cold", model is not None, lambda: measure_cold_start(model_paths[0], report)),
        ("memory", full_path is not None, lambda: measure_training_memory(full_path, report)),
        ("accuracy", model is not None, lambda: measure_accuracy(model_paths, full, fixture, settings, report)),
    ]
    for name, possible, measure in parts:
        if name in args.skip or not possible:
            if possible:
                report.skip(name, "--skip")
            elif name == "memory":
                report.skip("training memory", "needs the full MNIST set")
            continue
        print(f"{name} ...", flush=True)
        measure()

    load_after = _load_average()
    print("\n" + format_table(table_rows(report.results)))
    print(f"machine load (1-minute average) before/after: {load_before} / {load_after} on {os.cpu_count()} cores")
    for line in report.skipped:
        print(f"skipped: {line}")
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}",
        "mode": "quick" if args.quick else "full",
        "settings": vars(settings),
        "models": [str(p) for p in model_paths],
        "seconds": time.perf_counter() - started,
        "load_average_before_after": [load_before, load_after],
        **report.results,
        "skipped": report.skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out} ({out['seconds']:.0f} s)")
    return 0


def _load_average() -> float | None:
    """The 1-minute load average: figures taken while other work runs are slower and noisier."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _test_images(full, fixture) -> tuple[np.ndarray, np.ndarray, str]:
    if full is not None:
        return full.x_test, full.y_test, "MNIST test set"
    reps = int(np.ceil(10_000 / len(fixture.x_test)))
    return (
        np.tile(fixture.x_test, (reps, 1, 1))[:10_000],
        np.tile(fixture.y_test, reps)[:10_000],
        "fixture test images tiled to 10,000",
    )


if __name__ == "__main__":
    sys.exit(main())
