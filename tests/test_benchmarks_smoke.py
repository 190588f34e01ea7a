"""The benchmark scripts' small helpers (the benchmarks themselves run on demand, not here)."""

from __future__ import annotations

import numpy as np

from benchmarks import run
from benchmarks.drawn_accuracy import SetResult, naive_resize
from benchmarks.proposals import stroke_width


def test_summarize_reports_milliseconds():
    summary = run.summarize([0.001, 0.002, 0.003, 0.010])
    assert summary["n"] == 4
    assert summary["median_ms"] == 2.5
    assert summary["min_ms"] == 1.0
    assert 3.0 < summary["p95_ms"] <= 10.0


def test_time_calls_counts_only_the_timed_calls():
    calls = []
    durations = run.time_calls(lambda: calls.append(1), n=5, warmup=2)
    assert len(durations) == 5 and len(calls) == 7
    assert all(d >= 0 for d in durations)


def test_memory_reads_proc_or_nothing():
    memory = run.memory_mb()
    assert memory == {} or memory["peak_mb"] >= memory["rss_mb"] > 0


def test_table_aligns_columns():
    text = run.format_table([("a", "1 ms", "target"), ("longer name", "22 ms", "")])
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[2].index("1 ms") == lines[3].index("22 ms")


def test_verdict_and_rows():
    assert run._verdict(0.01, 0.05).endswith("met")
    assert "NOT met" in run._verdict(0.2, 0.05)
    overhead = {"overhead": 0.0002, "hook_ms_per_batch": 0.05, "batch_ms": 300.0, "ab_overhead": 0.01, "aa_noise": 0.02}
    rows = run.table_rows({"ui_overhead": {**overhead, "batches_timed": [5, 5]}})
    assert rows[0][1] == "0.02% (0.050 ms of 300 ms a batch)"
    assert rows[0][2].endswith(": met")


def test_trimmed_mean_drops_stalls():
    assert run.trimmed_mean([1.0] * 9 + [100.0]) == 1.0


def test_set_result_scores_and_confusions():
    result = SetResult(labels=[1, 1, 7, 7], predictions=[1, 7, 7, 1], confidences=[0.9] * 4)
    assert result.accuracy == 0.5
    assert result.per_digit() == {1: 0.5, 7: 0.5}
    assert sorted(result.confusions()) == [(1, 7, 1), (7, 1, 1)]


def test_naive_resize_and_stroke_width():
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[60:220, 130:150, :3] = 255
    assert naive_resize(canvas).shape == (28, 28)
    bar = np.zeros((100, 100), np.float32)
    bar[10:90, 40:60] = 1.0
    assert 17 <= stroke_width(bar) <= 24
