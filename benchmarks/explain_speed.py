"""What "Inside the network" costs the server per stroke, open and closed (issue 14: open < 60 ms).

Two measurements, on drawn-style 280x280 canvases (digit.drawn's templates), with the shipped
model's LiteRT exports, as the server runs them:

1. the library: `digit.predict` alone (the section closed), against predict + `explain_prepared`
   (layers and occlusion saliency) + every picture the section draws, encoded as PNG as Streamlit
   sends it (the section open), and each part on its own;
2. the page: a Streamlit script (run by AppTest) that predicts and calls
   `render_inside_network` as the Draw page does, closed and open, timed inside the script:
   everything the server does for the section but sending it (AppTest's own wall time is
   mostly its polling loop, so it is not used).

Closed and open alternate stroke by stroke, so both meet the same background load.

    python benchmarks/explain_speed.py              # about a minute on 2 cores
    python benchmarks/explain_speed.py --strokes 40 --skip page
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # run from a checkout without installing anything
RESULTS = PROJECT / "benchmarks" / "results" / "explain_speed.json"
TARGET_MS = 60.0

from digit import drawn  # noqa: E402
from digit.explanation import (  # noqa: E402
    drawing_saliency,
    explain_prepared,
    heat_picture,
    png_bytes,
    stage_views,
    view_picture,
)
from digit.inference import predict  # noqa: E402
from digit.serving import load_predictor  # noqa: E402


def summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {"median_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2), "n": len(ms)}


def section_pictures(predictor, prediction, image) -> list[bytes]:
    """Everything the open section computes and sends for one stroke (the layer views on, 'Every layer' off)."""
    e = explain_prepared(predictor, prediction.model_input, prediction)
    p = e.prediction
    pictures = [heat_picture(e.saliency, p.model_input), heat_picture(e.versus(p.runner_up), p.model_input)]
    mapped = drawing_saliency(e.saliency, p.model_input, image)
    if mapped is not None:
        pictures.append(heat_picture(mapped[1], mapped[0]))
    pictures += [view_picture(view, e) for view in stage_views(e)]
    return [png_bytes(picture) for picture in pictures]


def measure_library(canvases: np.ndarray, predictor) -> dict:
    closed, opened, parts = [], [], {"explain": [], "pictures": [], "png": []}
    for canvas in canvases:
        started = time.perf_counter()
        predict(predictor, canvas)
        closed.append(time.perf_counter() - started)

        started = time.perf_counter()
        section_pictures(predictor, predict(predictor, canvas), canvas)
        opened.append(time.perf_counter() - started)

        prediction = predict(predictor, canvas)  # the parts, one by one
        t0 = time.perf_counter()
        e = explain_prepared(predictor, prediction.model_input, prediction)
        t1 = time.perf_counter()
        pictures = [heat_picture(e.saliency, prediction.model_input)] + [view_picture(v, e) for v in stage_views(e)]
        t2 = time.perf_counter()
        [png_bytes(picture) for picture in pictures]
        t3 = time.perf_counter()
        parts["explain"].append(t1 - t0)
        parts["pictures"].append(t2 - t1)
        parts["png"].append(t3 - t2)
    return {
        "closed": summary(closed),
        "open": summary(opened),
        **{name: summary(values) for name, values in parts.items()},
    }


PAGE = """
import time
import streamlit as st
from app_pages.common import load_predictor
from app_pages.parts.inside_network import render_inside_network
from digit.config import DEFAULT_MODEL_PATH
from digit.inference import predict

started = time.perf_counter()
predictor = load_predictor(str(DEFAULT_MODEL_PATH), DEFAULT_MODEL_PATH.stat().st_mtime)
image = st.session_state["image"]
prediction = predict(predictor, image)
st.metric("Prediction", str(prediction.digit))
render_inside_network(predictor, prediction, image)
st.session_state["script_seconds"] = time.perf_counter() - started
"""


def measure_page(canvases: np.ndarray) -> dict:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(PAGE, default_timeout=60)
    at.session_state["image"] = canvases[0]
    at.run()
    runs = {False: [], True: []}
    for i, canvas in enumerate(canvases):
        for opened in (False, True) if i % 2 else (True, False):
            at.session_state["image"] = canvas
            at.session_state["inside_network"] = opened
            at.run()
            assert not at.exception, at.exception
            runs[opened].append(at.session_state["script_seconds"])
    return {"closed": summary(runs[False]), "open": summary(runs[True])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=int, default=100, help="drawings measured (default: 100)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["library", "page"], help="parts to leave out")
    args = parser.parse_args(argv)
    canvases, _ = drawn.render_templates(seed=7, per_digit=max(1, args.strokes // 10))
    canvases = canvases[: args.strokes]
    predictor = load_predictor()
    for canvas in canvases[:5]:  # warm up: the batched interpreter and the layers export load on first use
        section_pictures(predictor, predict(predictor, canvas), canvas)
    results = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_before": round(os.getloadavg()[0], 2),
        "strokes": len(canvases),
        "engine": predictor.engine,
        "target_open_ms": TARGET_MS,
    }
    if "library" not in args.skip:
        results["library"] = measure_library(canvases, predictor)
    if "page" not in args.skip:
        results["page"] = measure_page(canvases)
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    print_results(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def print_results(results: dict) -> None:
    print(f"{results['strokes']} strokes, {results['machine']}, load average {results['load_average_before']}")
    for where in ("library", "page"):
        for name, figures in results.get(where, {}).items():
            verdict = ""
            if name == "open":
                verdict = "target met" if figures["p95_ms"] < TARGET_MS else "target missed"
                verdict = f"  (p95 target < {TARGET_MS:g} ms: {verdict})"
            print(f"{where:8} {name:9} median {figures['median_ms']:6.1f} ms  p95 {figures['p95_ms']:6.1f} ms{verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
