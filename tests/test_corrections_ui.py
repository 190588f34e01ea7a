"""The corrections helpers in a running Streamlit script: feedback buttons, the manager, local storage."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from digit.corrections import CorrectionSet


def _script():
    from types import SimpleNamespace

    import numpy as np

    from app_pages import corrections_ui

    x = np.zeros((28, 28), np.float32)
    x[4:24, 13:15] = 1.0
    prediction = SimpleNamespace(digit=1, model_input=x)  # what digit.predict returns, as far as it is used
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[40:240, 130:150, :3] = 255
    corrections_ui.render_feedback(prediction, canvas)
    corrections_ui.render_corrections_manager()


@pytest.fixture
def app(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.delenv("DIGIT_LOCAL", raising=False)
    monkeypatch.setenv("DIGIT_CORRECTIONS_FILE", str(tmp_path / "corrections.npz"))
    at = AppTest.from_function(_script, default_timeout=30)
    at.run()
    assert not at.exception
    return at


def _store(at: AppTest) -> CorrectionSet:
    return at.session_state["corrections"]


def test_wrong_then_right_saves_one_drawing_and_relabels_it(app):
    app.button(key="feedback-7").click().run()
    assert not app.exception
    store = _store(app)
    assert len(store) == 1 and store[0].label == 7 and store[0].predicted == 1 and store[0].was_wrong
    assert store[0].canvas.max() == 255  # the canvas was kept, not just the 28x28 input
    app.button(key="feedback-right").click().run()
    assert len(_store(app)) == 1 and _store(app)[0].label == 1
    assert any("Saved to your corrections as **1**" in c.value for c in app.caption)


def test_the_manager_deletes_one_and_clears_all(app):
    app.button(key="feedback-3").click().run()
    delete = [b for b in app.button if b.key.startswith("corrections-delete-")]
    assert len(delete) == 1
    delete[0].click().run()
    assert len(_store(app)) == 0
    app.button(key="feedback-4").click().run()
    app.button(key="corrections-clear").click().run()
    assert len(_store(app)) == 0 and not app.exception


def test_public_deployments_keep_corrections_in_the_session_only(app, tmp_path):
    app.button(key="feedback-2").click().run()
    assert "corrections_on_disk" not in [c.key for c in app.checkbox]
    assert not (tmp_path / "corrections.npz").exists()


def test_running_locally_the_user_can_keep_them_on_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGIT_LOCAL", "1")
    monkeypatch.setenv("DIGIT_CORRECTIONS_FILE", str(tmp_path / "corrections.npz"))
    at = AppTest.from_function(_script, default_timeout=30)
    at.run()
    at.button(key="feedback-5").click().run()
    assert not (tmp_path / "corrections.npz").exists()  # not before the user says so
    at.checkbox(key="corrections_on_disk").check().run()
    assert len(CorrectionSet.load(tmp_path / "corrections.npz")) == 1
    at.checkbox(key="corrections_on_disk").uncheck().run()
    assert not (tmp_path / "corrections.npz").exists() and len(_store(at)) == 1

    again = AppTest.from_function(_script, default_timeout=30)  # a new session finds nothing on disk now
    again.run()
    assert len(_store(again)) == 0 and not again.checkbox(key="corrections_on_disk").value


def test_a_new_local_session_loads_what_was_kept(monkeypatch, tmp_path):
    kept = CorrectionSet()
    kept.add(np.full((28, 28), 9, np.uint8), None, 8)
    kept.save(tmp_path / "corrections.npz")
    monkeypatch.setenv("DIGIT_LOCAL", "1")
    monkeypatch.setenv("DIGIT_CORRECTIONS_FILE", str(tmp_path / "corrections.npz"))
    at = AppTest.from_function(_script, default_timeout=30)
    at.run()
    assert len(_store(at)) == 1 and at.checkbox(key="corrections_on_disk").value


def _finetune_script():
    import streamlit as st

    from app_pages import corrections_ui

    config = corrections_ui.render_finetune_controls()
    if config is not None:
        st.session_state["asked"] = config


def _filled(n: int) -> CorrectionSet:
    store = CorrectionSet()
    for i in range(n):
        store.add(np.full((28, 28), i, np.uint8), None, i % 10)
    return store


def test_finetune_needs_enough_corrections_then_returns_the_settings():
    at = AppTest.from_function(_finetune_script, default_timeout=30)
    at.session_state["corrections"] = _filled(3)
    at.run()
    assert not at.exception and at.info and not [b for b in at.button if b.key == "finetune-start"]
    at.session_state["corrections"] = _filled(12)
    at.run()
    at.slider(key="finetune-epochs").set_value(2)
    at.button(key="finetune-start").click().run()
    asked = at.session_state["asked"]
    assert asked.epochs == 2 and asked.learning_rate == 3e-4 and not at.exception
    assert any("12 corrections × 8" in c.value for c in at.caption)


def _report_script():
    from app_pages import corrections_ui
    from digit.finetune import CrossValidation, FinetuneReport

    cv = CrossValidation(before=0.8, after=0.93, fold_accuracies=(0.9, 0.96), folds=2, status="completed")
    corrections_ui.render_finetune_report(FinetuneReport(0.9943, 0.9930, 10_000, 100, cv))


def test_the_report_shows_both_measures_and_warns_past_the_bound():
    at = AppTest.from_function(_report_script, default_timeout=30)
    at.run()
    assert not at.exception
    assert [m.value for m in at.metric] == ["99.30%", "93.0%"]
    assert "-0.13 points" in at.metric[0].delta and "+13.0 points" in at.metric[1].delta
    assert at.warning and "more than the 0.1 allowed" in at.warning[0].value
