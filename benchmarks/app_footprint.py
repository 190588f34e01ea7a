"""The app's start-up time and memory, as a Community Cloud visitor would meet them (issue 5).

    python benchmarks/app_footprint.py                           # everything: about 3-5 minutes on 2 cores
    python benchmarks/app_footprint.py --env MALLOC_ARENA_MAX=2  # the same with an extra variable for the server
    python benchmarks/app_footprint.py --skip startup sessions   # only what training costs
    python tools/smoke_test.py --venv /tmp/cloud                 # then, as on Community Cloud (requirements.txt only):
    python benchmarks/app_footprint.py --python /tmp/cloud/bin/python

A real `streamlit run app.py --server.headless true` on a free port, driven by Debian's Chromium
through Playwright:

1. start-up: `python -c "import tensorflow"` and `python -c "import digit; digit.load_model()"` in
   fresh processes (best of 2 each), then the time from launching the server to the first
   prediction in the browser (the page is opened as soon as /_stcore/health answers, a "1" is
   drawn, and the **Prediction** metric is read until it shows a digit). Target: <= 2x import tensorflow.
2. memory: resident set size summed over the server's process tree (from /proc): idle after the
   first prediction (target <= 700 MB), with 5 browser sessions that have each drawn a digit, and
   the peak, sampled every 0.2 s, of a training run with the Train page's default settings started
   by clicking "Start training" (target <= 1.2 GB). Training needs the full MNIST set
   ($DIGIT_MNIST_NPZ, else ../shared/data/mnist.npz); without it that part is skipped.

Prints a table and writes benchmarks/results/app_footprint.json. Trained models go to a temporary
registry, never models/registry.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from benchmarks.run import Report  # noqa: E402  what was measured and what was skipped
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402  one home for both

RESULTS = PROJECT / "benchmarks" / "results"
CANVAS = '[data-testid="stBidiComponentIsolated"] canvas.upper-canvas'
PROGRESS = '[data-testid="stProgress"]'
ONE = [(140, 40), (140, 240)]  # a "1" in canvas pixels (the canvas is 280x280)
SESSIONS = 5
SAMPLE_SECONDS = 0.2
TARGETS = {"first_prediction_over_import_tf": 2.0, "idle_mb": 700.0, "training_peak_mb": 1200.0}
TRAIN_OUTCOME = re.compile(r"Run \d+ (finished|failed|stopped|diverged)|Training could not start")


# ------------------------------------------------------------------------------------------
# resident memory of a process tree, from /proc


def children_of(pid: int) -> list[int]:
    """Every descendant of `pid`, from the parent ids in /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def process_memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and its anonymous / file-backed parts, and the thread count, of one process (kB)."""
    wanted = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "Threads": "threads"}
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in wanted:
                values[wanted[key]] = int(rest.split()[0])
    except OSError:
        pass
    return values


def tree_memory(pid: int) -> dict[str, float]:
    """RSS (MB) summed over `pid` and its descendants, with its anonymous and file parts and threads."""
    pids = [pid, *children_of(pid)]
    total = {"rss": 0, "anon": 0, "file": 0, "threads": 0}
    for each in pids:
        for key, value in process_memory_kb(each).items():
            total[key] += value
    return {
        "rss_mb": round(total["rss"] / 1024, 1),
        "anon_mb": round(total["anon"] / 1024, 1),
        "file_mb": round(total["file"] / 1024, 1),
        "threads": total["threads"],
        "processes": len(pids),
    }


class Sampler:
    """Samples a process tree's memory every SAMPLE_SECONDS in a thread; keeps the peak and a timeline."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.began = time.perf_counter()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.began, tree_memory(self.pid)))
            self._stop.wait(SAMPLE_SECONDS)

    def peak(self) -> tuple[float, dict]:
        return max(self.samples, key=lambda s: s[1]["rss_mb"])

    def timeline(self, every: float = 1.0) -> list[list[float]]:
        """[seconds, rss MB, anon MB] about once per `every` seconds (the peak always kept)."""
        peak_t = self.peak()[0]
        kept, last = [], -every
        for t, m in self.samples:
            if t - last >= every or t == peak_t:
                kept.append([round(t, 1), m["rss_mb"], m["anon_mb"]])
                last = t
        return kept


def settled_memory(pid: int, seconds: float = 3.0) -> dict:
    """The median of a few samples after a short wait: memory once the work has finished."""
    time.sleep(seconds)
    samples = []
    for _ in range(int(seconds / SAMPLE_SECONDS)):
        samples.append(tree_memory(pid))
        time.sleep(SAMPLE_SECONDS)
    middle = sorted(samples, key=lambda m: m["rss_mb"])[len(samples) // 2]
    return middle


# ------------------------------------------------------------------------------------------
# fresh-process timings


def best_wall(code: str, repeats: int = 2) -> dict:
    """Wall time of `python -c code` in fresh processes: every run and the best."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([PYTHON[0], "-c", code], cwd=PROJECT, env=env, check=True, capture_output=True)
        runs.append(round(time.perf_counter() - began, 2))
    return {"best_s": min(runs), "runs_s": runs}


# ------------------------------------------------------------------------------------------
# the server and the browser


PYTHON = [sys.executable]  # the server's interpreter (--python)


def installed(python: str) -> dict[str, bool]:
    """Whether `python` can import the optional packages TensorFlow and Keras import when present."""
    code = f"import importlib.util as u; print(*(u.find_spec(m) is not None for m in {OPTIONAL!r}))"
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return dict(zip(OPTIONAL, (f == "True" for f in found), strict=True))


OPTIONAL = ("IPython", "scipy", "h5py")


def mnist_path() -> Path | None:
    """The full MNIST set: $DIGIT_MNIST_NPZ, else ../shared/data/mnist.npz; None when absent."""
    named = os.environ.get("DIGIT_MNIST_NPZ")
    path = Path(named) if named else PROJECT.parent / "shared" / "data" / "mnist.npz"
    return path if path.is_file() else None


def start_server(registry: Path, mnist: Path | None, extra_env: dict[str, str], log: Path) -> tuple:
    """`streamlit run app.py` headless on a free port; returns (process, url)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DIGIT_MNIST_NPZ"}
    env |= {"DIGIT_REGISTRY_DIR": str(registry), "PYTHONPATH": str(PROJECT), **extra_env}
    if mnist is not None:
        env["DIGIT_MNIST_NPZ"] = str(mnist)
    command = [PYTHON[0], "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=output, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"streamlit did not answer within {timeout:.0f} s:\n{log.read_text()[-2000:]}")


def wait_for_app(page, timeout: float = 120_000) -> None:
    """The page has finished its script run."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=timeout)


def draw_one(page) -> None:
    """A vertical stroke with the mouse, a move every ~15 px as a mouse reports."""
    canvas = page.locator(CANVAS)
    canvas.wait_for(timeout=120_000)
    box = canvas.bounding_box()
    (x0, y0), (x1, y1) = ONE
    steps = max(1, round(math.dist((x0, y0), (x1, y1)) / 15))
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    for i in range(1, steps + 1):
        page.mouse.move(box["x"] + x0 + (x1 - x0) * i / steps, box["y"] + y0 + (y1 - y0) * i / steps)
    page.mouse.up()


def wait_for_prediction(page, timeout: float = 120) -> str:
    """Poll the Prediction metric until it shows a digit; returns it."""
    value = page.locator('[data-testid="stMetric"]').filter(has_text="Prediction")
    value = value.locator('[data-testid="stMetricValue"]')
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value.count():
            text = value.first.inner_text().strip()
            if text.isdigit():
                return text
        page.wait_for_timeout(50)
    raise TimeoutError(f"no prediction within {timeout:.0f} s")


def visit_and_draw(context, url: str) -> str:
    """A new visitor: open the Draw page, draw a 1, return the prediction."""
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    wait_for_app(page)
    draw_one(page)
    return wait_for_prediction(page)


# ------------------------------------------------------------------------------------------
# the measurements


def measure_cold_processes(run: Report) -> None:
    """import tensorflow, and import digit + load the shipped model, in fresh processes."""
    print("fresh processes: import tensorflow, import digit + load_model (best of 2 each)...", flush=True)
    run.results["import_tensorflow"] = best_wall("import tensorflow")
    run.results["cold_load_model"] = best_wall("import digit; digit.load_model()")


def first_prediction(browser, url: str, process, log: Path, launched: float) -> tuple:
    """Health, page, canvas and prediction times from launch; returns (figures, context, page)."""
    wait_until_healthy(url, process, log)
    healthy = time.perf_counter()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.locator(CANVAS).wait_for(timeout=120_000)
    wait_for_app(page)
    canvas = time.perf_counter()
    draw_one(page)
    digit = wait_for_prediction(page)
    shown = time.perf_counter()
    figures = {
        "health_s": round(healthy - launched, 2),
        "canvas_ready_s": round(canvas - launched, 2),
        "first_prediction_s": round(shown - launched, 2),
        "stroke_to_prediction_s": round(shown - canvas, 2),
        "predicted": digit,
    }
    return figures, context, page


def train_in_browser(page, url: str, pid: int, timeout: float) -> dict:
    """Click Start training on the Train page with its defaults; sample memory until the run ends."""
    page.goto(f"{url}/train")
    wait_for_app(page)
    page.get_by_role("button", name="Start training").wait_for()
    before = settled_memory(pid, 1.0)
    phases: list[tuple[float, str]] = []
    outcome = page.locator('[data-testid="stAlert"]').filter(has_text=TRAIN_OUTCOME)
    with Sampler(pid) as sampler:
        page.get_by_role("button", name="Start training").click()
        deadline = time.monotonic() + timeout
        while not outcome.count() and time.monotonic() < deadline:
            progress = page.locator(PROGRESS)
            if progress.count():
                text = progress.first.inner_text().strip().splitlines()[-1:]
                phase = re.sub(r" · batch.*", "", text[0]) if text else ""
                if phase and (not phases or phases[-1][1] != phase):
                    phases.append((round(time.perf_counter() - sampler.began, 1), phase))
            page.wait_for_timeout(500)
        ended = time.perf_counter() - sampler.began
    finished = bool(outcome.count())
    message = outcome.first.inner_text().strip() if finished else f"not finished within {timeout:.0f} s"
    peak_t, peak = sampler.peak()
    after = settled_memory(pid, 3.0)
    return {
        "outcome": message,
        "finished": finished,  # when False, the peak is a lower bound: the run was cut short
        "seconds": round(ended, 1),
        "before": before,
        "peak": peak,
        "peak_at_s": round(peak_t, 1),
        "peak_phase": next((p for t, p in reversed(phases) if t <= peak_t), "starting"),
        "after": after,
        "phases": phases,
        "samples": len(sampler.samples),
        "timeline": sampler.timeline(),
    }


def measure_app(run: Report, args: argparse.Namespace, mnist: Path | None) -> None:
    """Start the server, get the first prediction, then idle, 5-session and training memory."""
    from playwright.sync_api import sync_playwright

    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="digit-footprint-") as tmp, sync_playwright() as playwright:
        registry, log = Path(tmp) / "registry", Path(tmp) / "server.log"
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        print("streamlit run app.py -> first prediction in the browser...", flush=True)
        launched = time.perf_counter()
        process, url = start_server(registry, mnist, extra_env, log)
        try:
            figures, first_context, first_page = first_prediction(browser, url, process, log, launched)
            run.results["startup"] = figures
            print("memory: idle after the first prediction...", flush=True)
            run.results["idle"] = settled_memory(process.pid)
            contexts = [first_context]
            if "sessions" in args.skip:
                run.skip("5 sessions", "--skip sessions")
            else:
                print(f"memory: {SESSIONS} sessions, each drawing a 1...", flush=True)
                for _ in range(SESSIONS - 1):
                    contexts.append(browser.new_context(viewport={"width": 1400, "height": 1000}))
                    visit_and_draw(contexts[-1], url)
                run.results["sessions"] = {"open": len(contexts), **settled_memory(process.pid)}
            if "training" in args.skip:
                run.skip("training", "--skip training")
            elif mnist is None:
                run.skip("training", "no full MNIST set ($DIGIT_MNIST_NPZ or ../shared/data/mnist.npz)")
            else:
                print(f"memory: training with the Train page's defaults ({len(contexts)} sessions open)...", flush=True)
                training = train_in_browser(first_page, url, process.pid, args.train_timeout)
                training["sessions_open"] = len(contexts)
                training["card"] = trained_card(registry)
                run.results["training"] = training
            for context in contexts:
                context.close()
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
            browser.close()


def trained_card(registry: Path) -> dict:
    """Settings, time and accuracy of the model the run saved (from its card)."""
    cards = [p for p in registry.glob("*.json") if p.name != "served.json"]
    if not cards:
        return {}
    card = json.loads(cards[0].read_text())
    keys = ("config", "train_images", "epochs_done", "wall_seconds", "test_accuracy")
    return {k: card.get(k) for k in keys}


# ------------------------------------------------------------------------------------------
# report


def verdicts(results: dict) -> dict:
    """Each target with its measured figure and whether it is met."""
    out = {}
    tf_s = results.get("import_tensorflow", {}).get("best_s")
    first = results.get("startup", {}).get("first_prediction_s")
    if tf_s and first:
        ratio = first / tf_s
        out["first_prediction_over_import_tf"] = [round(ratio, 2), ratio <= TARGETS["first_prediction_over_import_tf"]]
    if idle := results.get("idle"):
        out["idle_mb"] = [idle["rss_mb"], idle["rss_mb"] <= TARGETS["idle_mb"]]
    if training := results.get("training"):
        peak = training["peak"]["rss_mb"]
        out["training_peak_mb"] = [peak, peak <= TARGETS["training_peak_mb"]]
    return out


def table(results: dict, checks: dict) -> str:
    """The figures as an aligned text table."""
    rows = [("measure", "value", "target")]

    def target(key: str) -> str:
        if key not in checks:
            return ""
        limit = TARGETS[key]
        return f"{'<= ' + format(limit, 'g')} ({'met' if checks[key][1] else 'MISSED'})"

    if tf := results.get("import_tensorflow"):
        rows.append(("python -c 'import tensorflow' (best of 2)", f"{tf['best_s']:.2f} s", ""))
    if cold := results.get("cold_load_model"):
        rows.append(("cold process -> model loaded (best of 2)", f"{cold['best_s']:.2f} s", ""))
    if s := results.get("startup"):
        rows.append(("streamlit run -> health endpoint", f"{s['health_s']:.2f} s", ""))
        rows.append(("streamlit run -> canvas ready", f"{s['canvas_ready_s']:.2f} s", ""))
        rows.append(("streamlit run -> first prediction", f"{s['first_prediction_s']:.2f} s", ""))
    if "first_prediction_over_import_tf" in checks:
        ratio = checks["first_prediction_over_import_tf"][0]
        rows.append(
            ("  first prediction / import tensorflow", f"{ratio:.2f}x", target("first_prediction_over_import_tf"))
        )
    if idle := results.get("idle"):
        rows.append(("RSS idle, model loaded, 1 session", f"{idle['rss_mb']:.0f} MB", target("idle_mb")))
    if s := results.get("sessions"):
        rows.append((f"RSS with {s['open']} sessions, each drew a digit", f"{s['rss_mb']:.0f} MB", ""))
    if t := results.get("training"):
        rows.append(("RSS before training", f"{t['before']['rss_mb']:.0f} MB", ""))
        label = f"RSS peak while training ({t['seconds']:.0f} s{'' if t['finished'] else ', UNFINISHED'})"
        rows.append((label, f"{t['peak']['rss_mb']:.0f} MB", target("training_peak_mb")))
        rows.append(
            ("  of which anonymous / file-backed", f"{t['peak']['anon_mb']:.0f} / {t['peak']['file_mb']:.0f} MB", "")
        )
        rows.append(("  peak during", t["peak_phase"], ""))
        rows.append(("RSS after training", f"{t['after']['rss_mb']:.0f} MB", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine(load_before: tuple) -> dict:
    """Where the figures come from: the numbers are slower on a busy machine."""

    def version(*names: str) -> str | None:
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None

    return {
        "cores": os.cpu_count(),
        "platform": f"{platform.machine()}, {platform.system()}",
        "python": platform.python_version(),
        "tensorflow": version("tensorflow-cpu", "tensorflow"),
        "keras": version("keras"),
        "streamlit": version("streamlit"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env", nargs="*", default=[], metavar="KEY=VALUE", help="extra environment for the server (default: none)"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["startup", "sessions", "training"], help="parts to leave out"
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter for the server and the fresh processes, e.g. a venv with requirements.txt only, "
        "as on Community Cloud (default: this one)",
    )
    parser.add_argument("--train-timeout", type=float, default=600, help="seconds to wait for training (default: 600)")
    parser.add_argument("--out", type=Path, default=RESULTS / "app_footprint.json", help="where to write the JSON")
    args = parser.parse_args(argv)
    PYTHON[0] = args.python
    if not CHROMIUM.exists():
        print(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 1
    began, load_before = time.perf_counter(), os.getloadavg()
    run = Report()
    mnist = mnist_path()
    if mnist is None:
        print("no full MNIST set ($DIGIT_MNIST_NPZ or ../shared/data/mnist.npz): training is skipped", flush=True)
    if "startup" in args.skip:
        run.skip("fresh-process timings", "--skip startup")
    else:
        measure_cold_processes(run)
    measure_app(run, args, mnist)
    checks = verdicts(run.results)
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(load_before),
        "settings": {
            "server_env": args.env,
            "python": args.python,
            "packages": installed(args.python),
            "mnist": str(mnist) if mnist else None,
            "chromium_args": CHROMIUM_ARGS,
            "sample_seconds": SAMPLE_SECONDS,
            "training": "the Train page's defaults (cnn, 2 epochs, 10,000 images, batch 128, lr 2e-3, augmentation, 10% validation)",
            "rss": "VmRSS summed over the streamlit process and its descendants (shared pages count once per process)",
        },
        "targets": TARGETS,
        "checks": checks,
        **run.results,
        "skipped": run.skipped,
        "seconds": round(time.perf_counter() - began, 1),
    }
    print("\n" + table(run.results, checks))
    load = out["machine"]
    print(
        f"\nload average before {load['load_average_before']} / after {load['load_average_after']} on {load['cores']} cores"
    )
    for line in run.skipped:
        print(f"skipped: {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
