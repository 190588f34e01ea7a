"""Training side: fine-tune the model in use on a person's corrections, replaying MNIST so that it does not forget.

    result = finetune(model, corrections.images, corrections.labels, mnist, callbacks=[...])
    result.model                                   # a new model; `model` is left as it was
    report = measure(model, result.model, corrections.images, corrections.labels, mnist)

Each epoch shows every correction `oversample` times, each time distorted differently, mixed with
a random sample of MNIST training images. A low learning rate, a few epochs and frozen batch-norm
statistics keep the model close to where it started: it learns the writer, and keeps MNIST.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from digit.config import IMAGE_SIZE, NUM_CLASSES, FinetuneConfig
from digit.data import Dataset
from digit.evaluation import MAX_MNIST_DROP, CrossValidation, FinetuneReport, evaluate
from digit.training import COMPLETED, TrainResult, _Outcome, make_dataset

# The settings and the report live in TensorFlow-free modules, for the app; importable from here too.
__all__ = ["MAX_MNIST_DROP", "CrossValidation", "FinetuneConfig", "FinetuneReport", "finetune", "measure"]

MIN_CORRECTIONS = 1


@dataclass
class FinetuneResult(TrainResult):
    """A TrainResult (model, status, history, ...) that also says what it was trained on."""

    config: FinetuneConfig
    corrections: int = 0
    replay_images: int = 0


def finetune(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    mnist: Dataset,
    config: FinetuneConfig | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
) -> FinetuneResult:
    """Fine-tune a copy of `model` on uint8 (N, 28, 28) corrections mixed with MNIST replay."""
    config = config or FinetuneConfig()
    config.validate()
    images, labels = _checked(images, labels)
    keras.utils.set_random_seed(config.seed)
    x, y, replayed = training_mix(images, labels, mnist, config)
    tuned = trainable_copy(model, config.freeze_batchnorm)
    steps = math.ceil(len(x) / config.batch_size) * config.epochs
    # Cosine decay from a low rate: big enough to learn a style, too small to undo MNIST.
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.1)
    tuned.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    watch = _Outcome()
    started = time.perf_counter()
    history = tuned.fit(
        make_dataset(x, y, config.batch_size, augment=config.augment, shuffle=True, seed=config.seed),
        epochs=config.epochs,
        shuffle=False,  # the tf.data pipeline shuffles
        callbacks=[keras.callbacks.TerminateOnNaN(), watch, *(callbacks or [])],
        verbose=verbose,
    )
    return FinetuneResult(
        model=tuned,
        config=config,
        status=watch.status(tuned, config.epochs),
        history={k: [float(v) for v in values] for k, values in history.history.items()},
        seconds=time.perf_counter() - started,
        epochs_done=watch.epochs_done,
        train_images=len(x),
        corrections=len(images),
        replay_images=replayed,
    )


def finetune_task(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, config: FinetuneConfig | None = None
) -> Callable[[Dataset, list[keras.callbacks.Callback] | None], FinetuneResult]:
    """`finetune` with everything but MNIST and the callbacks fixed: task(mnist, callbacks) runs it.

    For a training runner that loads the data and supplies its own callbacks (progress, Stop).
    The corrections are copied now, so later edits to the set do not change a run in progress.
    """
    images, labels = _checked(images, labels)
    images, labels = images.copy(), labels.copy()

    def task(mnist: Dataset, callbacks: list[keras.callbacks.Callback] | None = None) -> FinetuneResult:
        return finetune(model, images, labels, mnist, config, callbacks)

    return task


def training_mix(
    images: np.ndarray, labels: np.ndarray, mnist: Dataset, config: FinetuneConfig
) -> tuple[np.ndarray, np.ndarray, int]:
    """The corrections repeated `copies` times plus a random MNIST training sample, and the sample's size."""
    rng = np.random.default_rng(config.seed)
    copies = config.copies(len(images))
    replay = rng.choice(len(mnist.x_train), config.replay_size(len(images), len(mnist.x_train)), replace=False)
    x = np.concatenate([np.repeat(images, copies, axis=0), mnist.x_train[replay]])
    y = np.concatenate([np.repeat(labels, copies), mnist.y_train[replay]]).astype(np.uint8)
    return x, y, len(replay)


def trainable_copy(model: keras.Model, freeze_batchnorm: bool = True) -> keras.Model:
    """A new model with the same weights; training it leaves `model` untouched."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    if freeze_batchnorm:
        for layer in _all_layers(copy):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # Keras 3 then runs it in inference mode, with MNIST's statistics
    return copy


def mnist_accuracy(model: keras.Model, mnist: Dataset) -> float:
    """Accuracy on the MNIST test set."""
    return evaluate(model, mnist.x_test, mnist.y_test).accuracy


def cross_validate(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    mnist: Dataset,
    config: FinetuneConfig | None = None,
    folds: int = 5,
    callbacks: list[keras.callbacks.Callback] | None = None,
    on_fold: Callable[[int, int], None] | None = None,
) -> CrossValidation:
    """Fine-tune `model` on k-1 folds of the corrections, test on the held-out one, k times."""
    config = config or FinetuneConfig()
    images, labels = _checked(images, labels)
    if len(images) < 2:
        raise ValueError("cross-validation needs at least 2 corrections")
    folds = min(folds, len(images))
    fold_of = stratified_folds(labels, folds, config.seed)
    before = evaluate(model, images, labels).accuracy
    scores: list[float] = []
    for k in range(folds):
        if on_fold:
            on_fold(k, folds)
        held_out = fold_of == k
        result = finetune(model, images[~held_out], labels[~held_out], mnist, config, callbacks)
        if result.status != COMPLETED:
            return CrossValidation(before, _mean(scores), tuple(scores), folds, result.status)
        scores.append(evaluate(result.model, images[held_out], labels[held_out]).accuracy)
    return CrossValidation(before, _mean(scores), tuple(scores), folds, COMPLETED)


def measure(
    base: keras.Model,
    tuned: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    mnist: Dataset,
    config: FinetuneConfig | None = None,
    folds: int = 5,
    callbacks: list[keras.callbacks.Callback] | None = None,
    on_fold: Callable[[int, int], None] | None = None,
) -> FinetuneReport:
    """MNIST test accuracy of both models, and cross-validated accuracy on the corrections (folds=0: skip)."""
    images, labels = _checked(images, labels)
    validation = None
    if folds >= 2 and len(images) >= 2:
        validation = cross_validate(base, images, labels, mnist, config, folds, callbacks, on_fold)
    return FinetuneReport(
        mnist_before=mnist_accuracy(base, mnist),
        mnist_after=mnist_accuracy(tuned, mnist),
        mnist_images=len(mnist.x_test),
        corrections=len(images),
        cross_validation=validation,
    )


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number for every item, each digit spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for digit in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == digit))
        fold_of[members] = (dealt + np.arange(len(members))) % folds  # deal on, so fold sizes stay even
        dealt += len(members)
    return fold_of


def _checked(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"corrections are uint8 (N, 28, 28) images, not {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or len(images) < MIN_CORRECTIONS:
        raise ValueError(f"need at least {MIN_CORRECTIONS} correction with one label per image")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError("labels are digits from 0 to 9")
    return images, labels.astype(np.uint8)


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    nested = [_all_layers(layer) for layer in model.layers if hasattr(layer, "layers")]
    return [*model.layers, *(layer for group in nested for layer in group)]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
