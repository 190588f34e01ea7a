"""The app's start-up time and memory, as a Community Cloud visitor would meet them (issues 5 and 12).

    python tools/smoke_test.py --venv /tmp/cloud --keep             # a venv with requirements.txt only, as on Community Cloud
    python benchmarks/app_footprint.py --python /tmp/cloud/bin/python   # everything: about 4-5 minutes on 2 cores
    python benchmarks/app_footprint.py --env MALLOC_ARENA_MAX=2     # the same with an extra variable for the server
    python benchmarks/app_footprint.py --skip startup drawings      # only what training and the pages cost

A real `streamlit run app.py --server.headless true` on a free port, driven by Debian's Chromium
through Playwright. Memory is resident set size summed over the server's process tree (the server
and its training child, from /proc). In this order, each against its target (issue 12):

1. start-up: `python -c "import tensorflow"` in a fresh process (best of 2), then the time from
   launching the server to the first answer in the browser (the page is opened as soon as
   /_stcore/health answers, a "1" is drawn, the **Prediction** metric is read until it shows a
   digit). Target: <= 0.6x import tensorflow. `import digit; digit.load_predictor()` in a fresh
   process is timed too, for reference. So is the floor that Streamlit and the canvas set: the
   same steps against a bare page of Streamlit's, the same canvas and one metric, no model, no
   library of ours (`FLOOR_APP`), in the same interpreter.
2. after the first answer and 30 drawings (5 sessions, each drawing 6 digits, clearing the
   canvas between them): target <= 250 MB.
3. training with the Train page's defaults, started by clicking "Start training": the peak,
   sampled every 0.2 s (target <= 1.0 GB), and 10 s after the run has ended, that is, after its
   process has exited (target <= 300 MB). Needs the full MNIST set ($DIGIT_MNIST_NPZ, else
   ../shared/data/mnist.npz); without it, this part and the Evaluate page are skipped.
4. after visiting every page (Draw, Train, Evaluate with its scoring of the 10,000 test images,
   My corrections) in one session: target <= 350 MB.

Prints a table and writes benchmarks/results/app_footprint.json. Trained models go to a temporary
registry, never models/registry.
"""

from __future__ import annotations

import argparse
import itertools
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
RESET = 'button[aria-label="Reset canvas & history"]'  # the canvas toolbar's bin
PROGRESS = '[data-testid="stProgress"]'
STROKES = {  # one stroke per digit, in canvas pixels (the canvas is 280x280)
    "1": [(140, 40), (140, 240)],
    "7": [(75, 55), (205, 55), (165, 125), (125, 240)],
    "0": [(140 + 60 * math.sin(t / 20 * math.pi), 140 - 95 * math.cos(t / 20 * math.pi)) for t in range(41)],
}
SESSIONS, DRAWINGS = 5, 30  # 30 drawings after the first answer, spread over 5 sessions
AFTER_TRAINING_SECONDS = 10
START_SECONDS = 60  # a run whose process has not appeared by then did not start
SAMPLE_SECONDS = 0.2
PAGES = ("", "train", "evaluate", "corrections")  # Draw (the default page), Train, Evaluate, My corrections
TARGETS = {  # issue 12
    "first_answer_over_import_tf": 0.6,
    "drawings_mb": 250.0,
    "training_peak_mb": 1000.0,
    "after_training_mb": 300.0,
    "all_pages_mb": 350.0,
}


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
    """VmRSS, its anonymous / file-backed parts, PSS and the thread count of one process (kB)."""
    wanted = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "Threads": "threads", "Pss": "pss"}
    values: dict[str, int] = {}
    for name in ("status", "smaps_rollup"):  # PSS shares each page among the processes mapping it
        try:
            for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in wanted:
                    values[wanted[key]] = int(rest.split()[0])
        except OSError:
            pass
    return values


def tree_memory(pid: int) -> dict[str, float]:
    """RSS (MB) summed over `pid` and its descendants, its anonymous and file parts, PSS, and threads."""
    pids = [pid, *children_of(pid)]
    total = {"rss": 0, "anon": 0, "file": 0, "pss": 0, "threads": 0}
    for each in pids:
        for key, value in process_memory_kb(each).items():
            total[key] += value
    return {
        "rss_mb": round(total["rss"] / 1024, 1),
        "anon_mb": round(total["anon"] / 1024, 1),
        "file_mb": round(total["file"] / 1024, 1),
        "pss_mb": round(total["pss"] / 1024, 1),
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


def start_server(
    registry: Path, mnist: Path | None, extra_env: dict[str, str], log: Path, app: Path = PROJECT / "app.py"
) -> tuple:
    """`streamlit run app.py` headless on a free port; returns (process, url)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DIGIT_MNIST_NPZ"}
    env |= {"DIGIT_REGISTRY_DIR": str(registry), "PYTHONPATH": str(PROJECT), **extra_env}
    if mnist is not None:
        env["DIGIT_MNIST_NPZ"] = str(mnist)
    command = [PYTHON[0], "-m", "streamlit", "run", app.name, "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=app.parent, env=env, stdout=output, stderr=subprocess.STDOUT)
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


def draw(page, points: list[tuple[float, float]]) -> None:
    """One stroke with the mouse through `points` (canvas pixels), a move every ~15 px as a mouse reports."""
    canvas = page.locator(CANVAS)
    canvas.wait_for(timeout=120_000)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        steps = max(1, round(math.dist((x0, y0), (x1, y1)) / 15))
        for i in range(1, steps + 1):
            page.mouse.move(box["x"] + x0 + (x1 - x0) * i / steps, box["y"] + y0 + (y1 - y0) * i / steps)
    page.mouse.up()


def metric_text(page, label: str) -> str:
    """The value a metric shows ('' while there is none)."""
    value = page.locator('[data-testid="stMetric"]').filter(has_text=label).locator('[data-testid="stMetricValue"]')
    return value.first.inner_text().strip() if value.count() else ""


def wait_for_prediction(page, digit: bool = True, timeout: float = 120) -> str:
    """Poll the Prediction metric until it shows a digit (or, with digit=False, anything else)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = metric_text(page, "Prediction")
        if text.isdigit() == digit:
            return text
        page.wait_for_timeout(50)
    raise TimeoutError(f"the Prediction metric did not change within {timeout:.0f} s")


def drawings(page, count: int) -> list[tuple[str, str]]:
    """Draw `count` digits in turn, clearing the canvas before each; returns (drawn, predicted) pairs."""
    pairs = []
    for wanted in itertools.islice(itertools.cycle(STROKES), count):
        if metric_text(page, "Prediction").isdigit():
            page.locator(RESET).click()
            wait_for_prediction(page, digit=False)
        draw(page, STROKES[wanted])
        pairs.append((wanted, wait_for_prediction(page)))
    return pairs


def new_visitor(browser, url: str):
    """A new browser session on the Draw page, its script run finished."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    wait_for_app(page)
    return context, page


# ------------------------------------------------------------------------------------------
# the measurements


def measure_cold_processes(run: Report) -> None:
    """import tensorflow, and import digit + load the shipped model's predictor, in fresh processes."""
    print("fresh processes: import tensorflow, import digit + load_predictor (best of 2 each)...", flush=True)
    run.results["import_tensorflow"] = best_wall("import tensorflow")
    run.results["cold_load_predictor"] = best_wall("import digit; digit.load_predictor()")


def first_answer(browser, url: str, process, log: Path, launched: float) -> tuple:
    """Health, canvas and first-answer times from launch; returns (figures, context, page)."""
    wait_until_healthy(url, process, log)
    healthy = time.perf_counter()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    loaded = time.perf_counter()
    wait_for_app(page)
    script = time.perf_counter()
    page.locator(CANVAS).wait_for(timeout=120_000)
    canvas = time.perf_counter()
    draw(page, STROKES["1"])
    digit = wait_for_prediction(page)
    shown = time.perf_counter()
    figures = {
        "health_s": round(healthy - launched, 2),
        "page_loaded_s": round(loaded - launched, 2),
        "script_run_s": round(script - launched, 2),
        "canvas_ready_s": round(canvas - launched, 2),
        "first_prediction_s": round(shown - launched, 2),
        "stroke_to_prediction_s": round(shown - canvas, 2),
        "predicted": digit,
    }
    return figures, context, page


# The least a Streamlit page with this canvas takes to its first answer: the page's canvas, as the
# Draw page sets it up, and a metric that says "1" once anything is drawn. No model, no digit/.
FLOOR_APP = """
import streamlit as st
from streamlit_drawable_canvas import st_canvas

st.set_page_config(page_title="floor", layout="wide")
drawing = st_canvas(
    stroke_width=18, stroke_color="#FFFFFF", background_color="#000000", height=280, width=280,
    drawing_mode="freedraw", return_image_data=True, update_streamlit=True, key="canvas",
)
inked = drawing.image_data is not None and drawing.image_data[..., :3].max() > 0
st.metric("Prediction", "1" if inked else "-")
"""


def measure_floor(run: Report) -> None:
    """The start-up steps against FLOOR_APP: what Streamlit and the canvas take before any of ours."""
    from playwright.sync_api import sync_playwright

    print("the floor: a bare Streamlit page with the same canvas -> first answer...", flush=True)
    with tempfile.TemporaryDirectory(prefix="digit-floor-") as tmp, sync_playwright() as playwright:
        app, log = Path(tmp) / "floor_app.py", Path(tmp) / "server.log"
        app.write_text(FLOOR_APP)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        launched = time.perf_counter()
        process, url = start_server(Path(tmp) / "registry", None, {}, log, app)
        try:
            run.results["floor"], context, _ = first_answer(browser, url, process, log, launched)
            context.close()
        finally:
            stop_server(process)
            browser.close()


def measure_drawings(browser, url: str, first_page, pid: int) -> tuple[dict, list]:
    """30 drawings over 5 sessions (the first one's included); memory once they are done."""
    per_session = DRAWINGS // SESSIONS
    pairs = drawings(first_page, per_session)
    contexts = []
    for _ in range(SESSIONS - 1):
        context, page = new_visitor(browser, url)
        contexts.append(context)
        pairs += drawings(page, per_session)
    right = sum(drawn == said for drawn, said in pairs)
    figures = {"sessions": SESSIONS, "drawings": len(pairs), "right": right, **settled_memory(pid)}
    return figures, contexts


def train_in_browser(page, url: str, pid: int, timeout: float) -> dict:
    """Click Start training on the Train page with its defaults; sample memory until the run's process ends."""
    page.goto(f"{url}/train")
    wait_for_app(page)
    start = page.get_by_role("button", name="Start training")
    start.wait_for()
    before = settled_memory(pid, 1.0)
    with Sampler(pid) as sampler:
        start.click()
        phases = follow_run(page, sampler, timeout)
        ended = time.perf_counter()
        after = memory_at(pid, ended + AFTER_TRAINING_SECONDS)
    peak_t, peak = sampler.peak()
    ran = [t for t, m in sampler.samples if m["processes"] > 1]
    finished = bool(ran) and sampler.samples[-1][1]["processes"] == 1
    return {
        "outcome": outcome_text(page),
        "finished": finished,  # when False, the peak is a lower bound: the run was cut short
        "child_seconds": round(ran[-1] - ran[0], 1) if ran else 0.0,
        "before": before,
        "peak": peak,
        "peak_at_s": round(peak_t, 1),
        "peak_phase": next((p for t, p in reversed(phases) if t <= peak_t), "starting"),
        "after": after,
        "after_seconds": AFTER_TRAINING_SECONDS,
        "phases": phases,
        "peak_by_phase": peak_by_phase(sampler, phases),
        "samples": len(sampler.samples),
        "timeline": sampler.timeline(),
    }


def follow_run(page, sampler: Sampler, timeout: float) -> list[tuple[float, str]]:
    """The progress bar's phases, read every 0.5 s until the training process has come and gone."""
    phases: list[tuple[float, str]] = []
    began = time.monotonic()
    started = False
    while time.monotonic() < began + timeout:
        children = sampler.samples[-1][1]["processes"] > 1 if sampler.samples else False
        started = started or children
        if (started and not children) or (not started and time.monotonic() > began + START_SECONDS):
            break
        progress = page.locator(PROGRESS)
        if progress.count():
            lines = progress.first.inner_text().strip().splitlines()[-1:]
            phase = re.sub(r" · batch.*", "", lines[0]) if lines else ""
            if phase and (not phases or phases[-1][1] != phase):
                phases.append((round(time.perf_counter() - sampler.began, 1), phase))
        page.wait_for_timeout(500)
    return phases


def peak_by_phase(sampler: Sampler, phases: list[tuple[float, str]]) -> list[tuple[str, float]]:
    """The highest RSS (MB) while each phase the progress bar showed was on (the last one up to the end)."""
    bounds = [*(t for t, _ in phases[1:]), math.inf]
    peaks = []
    for (began, phase), ended in zip(phases, bounds, strict=True):
        inside = [m["rss_mb"] for t, m in sampler.samples if began <= t < ended]
        peaks.append((phase, max(inside, default=0.0)))
    return peaks


def memory_at(pid: int, moment: float) -> dict:
    """The median of 5 samples over the second from `moment` (a perf_counter time)."""
    time.sleep(max(0.0, moment - time.perf_counter()))
    samples = []
    for _ in range(5):
        samples.append(tree_memory(pid))
        time.sleep(SAMPLE_SECONDS)
    return sorted(samples, key=lambda m: m["rss_mb"])[len(samples) // 2]


def outcome_text(page) -> str:
    """What the page says about how the run ended (its first alert), read a few seconds after the end."""
    from playwright.sync_api import Error

    alerts = page.locator('[data-testid="stAlert"]')
    try:
        alerts.first.wait_for(timeout=10_000)
    except Error:
        return "(no message shown)"
    return alerts.first.inner_text().strip()


def visit_every_page(page, url: str, pid: int) -> dict:
    """Draw, Train, Evaluate (scores the test set) and My corrections in one session; memory after."""
    seconds = {}
    for path in PAGES:
        began = time.perf_counter()
        page.goto(f"{url}/{path}")
        wait_for_app(page)
        seconds[path or "draw"] = round(time.perf_counter() - began, 2)
        if path == "evaluate":
            evaluated = metric_text(page, "Test accuracy")
    return {"pages": seconds, "evaluate_test_accuracy": evaluated, **settled_memory(pid)}


def measure_app(run: Report, args: argparse.Namespace, mnist: Path | None) -> None:
    """Start the server, then the first answer, 30 drawings, a training run and every page, in order."""
    from playwright.sync_api import sync_playwright

    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="digit-footprint-") as tmp, sync_playwright() as playwright:
        registry, log = Path(tmp) / "registry", Path(tmp) / "server.log"
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        print("streamlit run app.py -> first answer in the browser...", flush=True)
        launched = time.perf_counter()
        process, url = start_server(registry, mnist, extra_env, log)
        try:
            run.results["startup"], context, page = first_answer(browser, url, process, log, launched)
            run.results["idle"] = settled_memory(process.pid)
            contexts = [context]
            if "drawings" in args.skip:
                run.skip("30 drawings", "--skip drawings")
            else:
                print(f"memory: {DRAWINGS} drawings over {SESSIONS} sessions...", flush=True)
                run.results["drawings"], more = measure_drawings(browser, url, page, process.pid)
                contexts += more
            if "training" in args.skip or mnist is None:
                run.skip("training", "--skip training" if mnist else "no full MNIST set ($DIGIT_MNIST_NPZ)")
            else:
                print(f"memory: training with the Train page's defaults ({len(contexts)} sessions open)...", flush=True)
                training = train_in_browser(page, url, process.pid, args.train_timeout)
                run.results["training"] = {**training, "sessions_open": len(contexts), "card": trained_card(registry)}
            if "pages" in args.skip or mnist is None:
                run.skip("every page", "--skip pages" if mnist else "no full MNIST set ($DIGIT_MNIST_NPZ)")
            else:
                print("memory: every page, Evaluate included...", flush=True)
                run.results["all_pages"] = {**visit_every_page(page, url, process.pid), "sessions_open": len(contexts)}
            run.results["tensorflow_in_server"] = tensorflow_loaded(process.pid)
            for context in contexts:
                context.close()
        finally:
            stop_server(process)
            browser.close()


def tensorflow_loaded(pid: int) -> bool:
    """Whether TensorFlow's library is mapped into the server process (LiteRT's own libraries are not it)."""
    try:
        return "libtensorflow_framework" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


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
    """Each target with its measured figure and whether it is met: {key: [value, met]}."""
    tf_s = results.get("import_tensorflow", {}).get("best_s")
    first = results.get("startup", {}).get("first_prediction_s")
    training = results.get("training", {})
    figures = {
        "first_answer_over_import_tf": round(first / tf_s, 2) if tf_s and first else None,
        "drawings_mb": results.get("drawings", {}).get("rss_mb"),
        "training_peak_mb": training.get("peak", {}).get("rss_mb"),
        "after_training_mb": training.get("after", {}).get("rss_mb"),
        "all_pages_mb": results.get("all_pages", {}).get("rss_mb"),
    }
    return {key: [value, value <= TARGETS[key]] for key, value in figures.items() if value is not None}


def table(results: dict, checks: dict) -> str:
    """The figures as an aligned text table, each target with its verdict."""
    rows = [("measure", "value", "target"), *startup_rows(results, checks), *memory_rows(results, checks)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def target(checks: dict, key: str) -> str:
    if key not in checks:
        return ""
    unit = "x" if key.endswith("_tf") else " MB"
    return f"<= {TARGETS[key]:g}{unit}: {'met' if checks[key][1] else 'NOT met'}"


def startup_rows(results: dict, checks: dict) -> list[tuple[str, str, str]]:
    rows = []
    if tf := results.get("import_tensorflow"):
        rows.append(("python -c 'import tensorflow' (best of 2)", f"{tf['best_s']:.2f} s", ""))
    if cold := results.get("cold_load_predictor"):
        rows.append(("cold process -> predictor loaded (best of 2)", f"{cold['best_s']:.2f} s", ""))
    if s := results.get("startup"):
        rows.append(("streamlit run -> health endpoint", f"{s['health_s']:.2f} s", ""))
        rows.append(("streamlit run -> page loaded (load event)", f"{s['page_loaded_s']:.2f} s", ""))
        rows.append(("streamlit run -> first script run done", f"{s['script_run_s']:.2f} s", ""))
        rows.append(("streamlit run -> canvas ready", f"{s['canvas_ready_s']:.2f} s", ""))
        rows.append(("streamlit run -> first answer", f"{s['first_prediction_s']:.2f} s", ""))
    if ratio := checks.get("first_answer_over_import_tf"):
        rows.append(
            ("  first answer / import tensorflow", f"{ratio[0]:.2f}x", target(checks, "first_answer_over_import_tf"))
        )
    if (floor := results.get("floor")) and (tf := results.get("import_tensorflow")):
        label = "bare Streamlit page, same canvas -> first answer"
        rows.append((label, f"{floor['first_prediction_s']:.2f} s", "the floor: no model, no digit/"))
        rows.append(("  floor / import tensorflow", f"{floor['first_prediction_s'] / tf['best_s']:.2f}x", ""))
    return rows


def memory_rows(results: dict, checks: dict) -> list[tuple[str, str, str]]:
    rows = []
    if idle := results.get("idle"):
        rows.append(("RSS after the first answer, 1 session", f"{idle['rss_mb']:.0f} MB", ""))
    if d := results.get("drawings"):
        label = f"RSS after {d['drawings']} drawings, {d['sessions']} sessions ({d['right']} right)"
        rows.append((label, f"{d['rss_mb']:.0f} MB", target(checks, "drawings_mb")))
    if t := results.get("training"):
        rows.append(("RSS before training", f"{t['before']['rss_mb']:.0f} MB", ""))
        label = f"RSS peak while training ({t['child_seconds']:.0f} s{'' if t['finished'] else ', UNFINISHED'})"
        rows.append((label, f"{t['peak']['rss_mb']:.0f} MB", target(checks, "training_peak_mb")))
        peak = t["peak"]
        split = f"{peak['anon_mb']:.0f} / {peak['file_mb']:.0f} MB; PSS {peak['pss_mb']:.0f} MB"
        rows.append(("  of which anonymous / file-backed", split, "PSS counts shared pages once"))
        rows.append(("  peak during", t["peak_phase"], ""))
        label = f"RSS {t['after_seconds']} s after the run ended ({t['after']['processes']} process)"
        rows.append((label, f"{t['after']['rss_mb']:.0f} MB", target(checks, "after_training_mb")))
    if a := results.get("all_pages"):
        label = f"RSS after every page, Evaluate included ({a['evaluate_test_accuracy'] or 'no score shown'})"
        rows.append((label, f"{a['rss_mb']:.0f} MB", target(checks, "all_pages_mb")))
    return rows


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env", nargs="*", default=[], metavar="KEY=VALUE", help="extra environment for the server (default: none)"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["startup", "drawings", "training", "pages"], help="parts to leave out"
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter for the server and the fresh processes, e.g. a venv with requirements.txt only, "
        "as on Community Cloud (default: this one)",
    )
    parser.add_argument("--train-timeout", type=float, default=600, help="seconds to wait for training (default: 600)")
    parser.add_argument("--out", type=Path, default=RESULTS / "app_footprint.json", help="where to write the JSON")
    return parser.parse_args(argv)


def settings(args: argparse.Namespace, mnist: Path | None) -> dict:
    return {
        "server_env": args.env,
        "python": args.python,
        "packages": installed(args.python),
        "mnist": str(mnist) if mnist else None,
        "chromium_args": CHROMIUM_ARGS,
        "sample_seconds": SAMPLE_SECONDS,
        "training": "the Train page's defaults (cnn, 2 epochs, 10,000 images, batch 128, lr 2e-3, augmentation, 10% validation)",
        "rss": "VmRSS summed over the streamlit process and its descendants (shared pages count once per process)",
        "order": "first answer, 30 drawings over 5 sessions, training, every page (each figure includes what came before)",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    if "startup" not in args.skip:
        measure_floor(run)
    checks = verdicts(run.results)
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(load_before),
        "settings": settings(args, mnist),
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
    print(f"TensorFlow mapped into the server process: {run.results.get('tensorflow_in_server')}")
    for line in run.skipped:
        print(f"skipped: {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
