"""The sidebar's run panel on every page, in each state of the server's run (AppTest)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from digit import jobs
from tests.test_app import APP, TIMEOUT

PAGES = ["app_pages/draw.py", "app_pages/evaluate.py", "app_pages/corrections.py"]
CONFIG = {"arch": "cnn", "epochs": 2, "limit": 1000, "validation_split": 0.1}


@pytest.fixture
def env(monkeypatch, tmp_path, small_npz):
    monkeypatch.setenv("DIGIT_REGISTRY_DIR", str(tmp_path / "registry"))
    monkeypatch.setenv("DIGIT_MNIST_NPZ", str(small_npz))
    monkeypatch.delenv("DIGIT_LOCAL", raising=False)


@pytest.fixture
def runner(env):
    """The app's server-wide runner, its state set by the test (no process is started)."""
    from app_pages.common import training_runner

    runner = training_runner()
    saved = runner._state
    yield runner
    runner._state = saved


def visit(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["visitor_id"] = "me"
    at.run()
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def panel_text(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.sidebar.markdown, *at.sidebar.caption])


def mine(at: AppTest) -> str:
    return "me"


@pytest.mark.parametrize("page", PAGES)
def test_idle_the_panel_is_one_retrain_link(runner, page):
    runner._state = jobs.Snapshot()
    at = visit(page)
    assert [link.label for link in at.sidebar.get("page_link")] == ["Retrain…"]
    assert not at.sidebar.get("progress") and not [b for b in at.sidebar.button if b.key == "panel_stop"]


@pytest.mark.parametrize("page", PAGES)
def test_running_it_shows_progress_who_and_the_latest_figures(runner, page):
    batches = tuple({"step": s, "epoch": 1, "loss": 2.0 / s, "accuracy": 0.1 * s} for s in range(1, 6))
    runner._state = jobs.Snapshot(
        run_id=3,
        state=jobs.RUNNING,
        owner="someone else",
        config=CONFIG,
        batches=batches,
        total_steps=10,
        steps_done=5,
        seconds_left=42.0,
    )
    at = visit(page)
    [bar] = at.sidebar.get("progress")
    assert "Epoch 1/2 · batch 5/10 · about 42 s left" in str(bar.proto)
    assert "started by another visitor" in panel_text(at)
    assert "loss 0.400 · accuracy 50.0%" in panel_text(at)
    assert not [b for b in at.sidebar.button if b.key == "panel_stop"], "only its owner may stop it"


def test_after_its_first_batch_the_panel_shows_the_figures_and_no_error(runner):
    """One batch is no line yet: the panel must not fail on it (it did, in a fragment, on every page)."""
    runner._state = jobs.Snapshot(
        run_id=4,
        state=jobs.RUNNING,
        owner="me",
        config=CONFIG,
        batches=({"step": 1, "epoch": 1, "loss": 2.3, "accuracy": 0.1},),
        total_steps=10,
        steps_done=1,
    )
    at = visit(PAGES[0])
    assert "loss 2.300 · accuracy 10.0%" in panel_text(at)
    assert not at.sidebar.get("html"), "no loss line from a single point"


def test_the_owner_can_stop_it_from_the_draw_page(runner):
    at = visit(PAGES[0])
    runner._state = jobs.Snapshot(run_id=4, state=jobs.RUNNING, owner=mine(at), config=CONFIG, total_steps=10)
    at.run()
    assert "started by you" in panel_text(at)
    [stop] = [b for b in at.sidebar.button if b.key == "panel_stop"]
    stopped = []
    runner.stop = lambda by=None: stopped.append(by) or True
    try:
        stop.click().run()
    finally:
        del runner.stop
    assert stopped == [mine(at)]


def test_completed_it_shows_the_score_and_use_this_model_for_its_owner(runner):
    at = visit(PAGES[0])
    runner._state = jobs.Snapshot(
        run_id=5,
        state=jobs.COMPLETED,
        owner=mine(at),
        config=CONFIG,
        model_name="digit-cnn",
        test_accuracy=0.9912,
        elapsed=61,
    )
    at.run()
    assert "Run 5 (by you) finished in 1 min 1 s" in panel_text(at) and "99.12%" in panel_text(at)
    [use] = [b for b in at.sidebar.button if b.key == "panel_use"]
    assert use.label == "In use" and use.disabled, "it is the model answering already"


def test_completed_by_someone_else_it_cannot_be_used_from_here(runner):
    runner._state = jobs.Snapshot(
        run_id=6, state=jobs.COMPLETED, owner="someone else", config=CONFIG, model_name="cnn-x", test_accuracy=0.5
    )
    at = visit(PAGES[1])
    assert "(by another visitor)" in panel_text(at)
    [use] = [b for b in at.sidebar.button if b.key == "panel_use"]
    assert use.disabled


@pytest.mark.parametrize(
    "state, message, words",
    [
        (
            jobs.STOPPED,
            "stopped in epoch 1 of 2: nothing was saved and the model being served did not change.",
            "was stopped by you",
        ),
        (
            jobs.FAILED,
            "the training process was killed by signal 9 (as the out-of-memory killer does) before it finished",
            "failed",
        ),
    ],
)
def test_stopped_or_failed_it_says_so_in_one_line(runner, state, message, words):
    at = visit(PAGES[0])
    runner._state = jobs.Snapshot(
        run_id=7,
        state=state,
        owner=mine(at),
        config=CONFIG,
        message=message,
        stopped_by=mine(at) if state == jobs.STOPPED else None,
    )
    at.run()
    [line] = [c.value for c in at.sidebar.caption if c.value.startswith("Run 7")]
    assert words in line and "\n" not in line
    assert not [b for b in at.sidebar.button if b.key == "panel_use"]
