"""Fine-tuning on corrections: it learns a writer, can be stopped, leaves the original model alone."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from digit.config import ConfigError, TrainConfig
from digit.evaluation import evaluate
from digit.finetune import (
    FinetuneConfig,
    FinetuneReport,
    cross_validate,
    finetune,
    measure,
    stratified_folds,
    trainable_copy,
    training_mix,
)
from digit.training import STOPPED, TrainResult, train

QUICK = FinetuneConfig(epochs=2, learning_rate=1e-3, oversample=4, replay=1.0, min_replay=200)


@pytest.fixture(scope="module")
def base(small_mnist) -> keras.Model:
    """A small CNN trained for a few seconds on the 1,000-image fixture (about 93% on its test set)."""
    config = TrainConfig(epochs=3, batch_size=32, augment=False)
    return train(config, small_mnist).model


@pytest.fixture(scope="module")
def writer(small_mnist):
    """A writer MNIST has never seen: every digit transposed (mirrored about the diagonal)."""
    x = np.ascontiguousarray(small_mnist.x_test.transpose(0, 2, 1))
    y = small_mnist.y_test
    picked = np.concatenate([np.flatnonzero(y == d)[:10] for d in range(10)])
    others = np.setdiff1d(np.arange(len(y)), picked)
    return x[picked], y[picked], x[others], y[others]


@pytest.fixture(scope="module")
def original_weights(base) -> list[np.ndarray]:
    return _weights(base)


@pytest.fixture(scope="module")
def tuned(base, original_weights, writer, small_mnist):
    """The base model fine-tuned on the writer's 10 corrections per digit."""
    train_x, train_y, *_ = writer
    return finetune(base, train_x, train_y, small_mnist, QUICK)


def _weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]


def test_finetune_learns_the_writer_and_leaves_the_original_alone(base, original_weights, tuned, writer):
    *_, test_x, test_y = writer
    result = tuned
    before = evaluate(base, test_x, test_y).accuracy
    after = evaluate(result.model, test_x, test_y).accuracy
    assert isinstance(result, TrainResult) and result.completed and result.epochs_done == 2
    assert result.corrections == 100 and result.replay_images == 400 and result.train_images == 800
    assert len(result.history["loss"]) == 2 and len(result.history["accuracy"]) == 2
    assert before < 0.3, "the transposed writer should be hard for the base model"
    assert after > before + 0.2, f"fine-tuning should learn the writer: {before:.2f} -> {after:.2f}"
    assert result.model is not base
    assert all(np.array_equal(a, b) for a, b in zip(original_weights, _weights(base), strict=True))


def test_batchnorm_statistics_are_kept(base, tuned):
    for old, new in zip(base.layers, tuned.model.layers, strict=True):
        if isinstance(old, keras.layers.BatchNormalization):
            assert np.array_equal(np.array(old.moving_mean), np.array(new.moving_mean))
            assert not new.trainable


def test_a_stop_callback_gives_stopped(base, writer, small_mnist):
    class StopAtOnce(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    train_x, train_y, *_ = writer
    result = finetune(base, train_x, train_y, small_mnist, QUICK, callbacks=[StopAtOnce()])
    assert result.status == STOPPED and not result.completed and result.epochs_done <= 1


def test_cross_validation_tests_only_on_held_out_folds(base, writer, small_mnist):
    train_x, train_y, *_ = writer
    config = FinetuneConfig(epochs=1, oversample=2, min_replay=100)
    seen = []
    cv = cross_validate(
        base, train_x[:40], train_y[:40], small_mnist, config, folds=2, on_fold=lambda k, n: seen.append((k, n))
    )
    assert seen == [(0, 2), (1, 2)] and cv.folds == 2 and len(cv.fold_accuracies) == 2 and cv.status == "completed"
    assert cv.before == pytest.approx(evaluate(base, train_x[:40], train_y[:40]).accuracy)
    assert cv.after == pytest.approx(np.mean(cv.fold_accuracies)) and 0.0 <= cv.after <= 1.0


def test_measure_reports_mnist_before_and_after(base, small_mnist):
    report = measure(base, base, small_mnist.x_test[:20], small_mnist.y_test[:20], small_mnist, folds=0)
    assert report.cross_validation is None and report.mnist_images == 500 and report.corrections == 20
    assert report.mnist_before == report.mnist_after and report.mnist_change == 0.0 and report.keeps_mnist
    assert report.to_dict()["keeps_mnist"] is True


def test_the_mnist_bound_is_a_tenth_of_a_point():
    assert FinetuneReport(0.995, 0.994, 10_000, 100, None).keeps_mnist
    assert not FinetuneReport(0.995, 0.9935, 10_000, 100, None).keeps_mnist
    assert FinetuneReport(0.990, 0.995, 10_000, 100, None).mnist_change == pytest.approx(0.5)


def test_training_mix_repeats_corrections_and_adds_replay(small_mnist):
    images = np.zeros((30, 28, 28), np.uint8)
    labels = np.full(30, 7, np.uint8)
    config = FinetuneConfig(oversample=5, replay=2.0, min_replay=10)
    x, y, replayed = training_mix(images, labels, small_mnist, config)
    assert replayed == 300 and len(x) == len(y) == 150 + 300
    assert (y[:150] == 7).all() and x.dtype == np.uint8
    assert FinetuneConfig(oversample=8).copies(1_000) == 2  # large sets are shown fewer times
    assert FinetuneConfig(min_replay=5_000).replay_size(10, 1_000) == 1_000  # never more than MNIST has


def test_stratified_folds_spread_every_digit():
    labels = np.repeat(np.arange(10), 7)
    folds = stratified_folds(labels, 5, seed=1)
    assert sorted(np.bincount(folds).tolist()) == [14, 14, 14, 14, 14]
    for digit in range(10):
        assert np.bincount(folds[labels == digit], minlength=5).max() <= 2


@pytest.mark.parametrize(
    "settings",
    [{"epochs": 0}, {"learning_rate": 0.5}, {"oversample": 0}, {"replay": -1.0}, {"batch_size": 2}, {"epochs": 2.5}],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(ConfigError):
        FinetuneConfig(**settings).validate()


def test_bad_corrections_are_refused(base, small_mnist):
    with pytest.raises(ValueError, match="uint8"):
        finetune(base, np.zeros((3, 28, 28), np.float32), np.zeros(3, np.uint8), small_mnist)
    with pytest.raises(ValueError, match="at least"):
        finetune(base, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), small_mnist)


def test_trainable_copy_is_independent(base):
    copy = trainable_copy(base, freeze_batchnorm=False)
    copy.layers[0].kernel.assign(np.zeros(copy.layers[0].kernel.shape, np.float32))
    assert not np.array_equal(np.array(base.layers[0].kernel), np.array(copy.layers[0].kernel))


def test_the_benchmark_writer_is_consistent_and_disjoint(small_mnist):
    from benchmarks import finetune_writer as bench

    train_idx, test_idx = bench.writer_split(small_mnist.y_test, seed=0, corrections=3, tests=5)
    assert len(train_idx) == 30 and len(test_idx) == 50 and not set(train_idx) & set(test_idx)
    sevens = train_idx[small_mnist.y_test[train_idx] == 7][:1]
    plain = bench.Writer(crossed_sevens=False, flagged_ones=False)
    canvases, inputs = bench.render(small_mnist.x_test[sevens], small_mnist.y_test[sevens], bench.Writer(), seed=0)
    _, plain_inputs = bench.render(small_mnist.x_test[sevens], small_mnist.y_test[sevens], plain, seed=0)
    assert canvases.shape == (1, 280, 280, 4) and inputs.shape == (1, 28, 28) and inputs.max() > 200
    assert canvases[0, ..., 0].sum() > 0 and not np.array_equal(inputs, plain_inputs)  # the crossbar shows
