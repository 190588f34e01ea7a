"""The model registry: saving, serving, promoting atomically, falling back to the shipped model."""

from __future__ import annotations

import json
import os

import pytest

from digit.registry import MAX_MODELS, SERVED_FILE, Registry, RegistryError


@pytest.fixture(scope="module")
def model():
    from digit.models import build_model

    return build_model("seed")  # small and fast to save; any digit model will do


@pytest.fixture
def shipped(tmp_path, model):
    from digit.models import save_model

    return save_model(model, tmp_path / "shipped" / "digit-cnn.keras", {"test_accuracy": 0.99})


@pytest.fixture
def registry(tmp_path, shipped) -> Registry:
    return Registry(tmp_path / "registry", shipped_path=shipped)


def card(accuracy: float = 0.9, arch: str = "seed") -> dict:
    return {"config": {"arch": arch, "epochs": 1}, "test_accuracy": accuracy, "test_loss": 0.3}


def test_an_empty_registry_serves_the_shipped_model(registry, shipped):
    served = registry.served()
    assert served.shipped and served.path == shipped
    assert served.test_accuracy == 0.99
    assert registry.entries() == []
    assert registry.served_name() is None


def test_a_saved_model_is_listed_with_its_card_but_not_served(registry, model):
    entry = registry.add(model, card(0.93))
    assert entry.name.startswith("seed-")
    assert entry.path.is_file() and entry.looks_valid()
    assert entry.test_accuracy == 0.93 and entry.test_loss == 0.3
    assert entry.trained_at  # a date is always recorded
    assert [e.name for e in registry.entries()] == [entry.name]
    assert registry.served().shipped
    summary = entry.summary()
    assert summary["kind"] == "seed" and summary["test accuracy"] == 0.93


def test_promoting_serves_the_model_and_survives_a_restart(registry, model, tmp_path, shipped):
    entry = registry.add(model, card())
    registry.promote(entry.name)
    assert registry.served().name == entry.name
    restarted = Registry(tmp_path / "registry", shipped_path=shipped)
    assert restarted.served().name == entry.name
    assert not [p for p in (tmp_path / "registry").iterdir() if p.name.startswith(".")], "temporary files left"


def test_the_shipped_model_can_be_promoted_back(registry, model):
    registry.promote(registry.add(model, card()).name)
    registry.promote(registry.shipped().name)
    assert registry.served().shipped


@pytest.mark.parametrize("pointer", ["{not json", '{"name": 42}', "[]", ""])
def test_an_unreadable_pointer_falls_back_to_the_shipped_model(registry, model, pointer):
    registry.promote(registry.add(model, card()).name)
    (registry.root / SERVED_FILE).write_text(pointer)
    assert registry.served().shipped


def test_a_missing_or_corrupt_served_file_falls_back_to_the_shipped_model(registry, model):
    entry = registry.promote(registry.add(model, card()).name)
    entry.path.write_bytes(b"not a zip file")
    assert registry.served().shipped
    entry.path.unlink()
    assert registry.served().shipped


def test_unknown_and_unsafe_names_are_refused(registry):
    for name in ("nope", "../shipped/digit-cnn", "/etc/passwd", ""):
        with pytest.raises(RegistryError):
            registry.promote(name)


def test_a_failed_write_leaves_the_served_model_as_it_was(registry, model, monkeypatch):
    first = registry.add(model, card())
    second = registry.add(model, card())
    registry.promote(first.name)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        registry.promote(second.name)
    monkeypatch.undo()
    assert registry.served().name == first.name
    assert json.loads((registry.root / SERVED_FILE).read_text())["name"] == first.name
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".")], "temporary files left"


def test_names_are_unique_within_one_second(registry, model):
    names = {registry.add(model, card()).name for _ in range(3)}
    assert len(names) == 3


def test_old_models_are_pruned_but_never_the_served_one(registry, model):
    oldest = registry.add(model, {**card(), "trained_at": "2000-01-01T00:00:00+00:00"})
    registry.promote(oldest.name)
    for _ in range(3):
        registry.add(model, card())
    removed = registry.prune(keep=2)
    names = [e.name for e in registry.entries()]
    assert oldest.name in names and oldest.name not in removed
    assert len(removed) == 1 and len(names) == 3
    assert MAX_MODELS >= 10


def test_environment_variables_choose_the_folders(tmp_path, shipped, monkeypatch):
    monkeypatch.setenv("DIGIT_REGISTRY_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("DIGIT_MODEL_PATH", str(shipped))
    registry = Registry()
    assert registry.root == tmp_path / "elsewhere"
    assert registry.shipped().path == shipped
