"""Train a model on MNIST. Progress goes out through Keras callbacks; this module knows no UI."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from digit.augment import add_style_variants
from digit.config import TrainConfig
from digit.data import Dataset
from digit.models import ModelError, build_model, load_model
from digit.pen_redraw import redraw_with_pen

COMPLETED, STOPPED, DIVERGED = "completed", "stopped", "diverged"
BATCH_NORM_SAMPLE = 5000  # clean training images that re-estimate batch-norm statistics: ~2 s on 2 cores
BATCH_NORM_BATCH = 100  # per batch, its statistics over 100 x H x W values; 500 held ~130 MB more at a run's end
EMA_SPAN = 5  # --ema: the average remembers about the run's last 1/5 of steps; the start weighs e^-5 < 1%


@dataclass
class TrainResult:
    """What a run produced: the model, its history, how it ended and how it scores."""

    model: keras.Model
    config: TrainConfig
    status: str  # completed, stopped (by a callback) or diverged (the loss became NaN)
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    epochs_done: int = 0
    train_images: int = 0

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED


def train(
    config: TrainConfig, data: Dataset, callbacks: list[keras.callbacks.Callback] | None = None, verbose: int = 0
) -> TrainResult:
    """Train a fresh model of `config.arch` on `data` and return it with its history."""
    config.validate()
    keras.utils.set_random_seed(config.seed)
    data = data.limited(config.limit)
    train_x, train_y, val = _split(data, config.validation_split)
    if config.augment:
        train_x = add_style_variants(train_x, train_y, config.seed)
    if config.pen_redraw:
        train_x = redraw_with_pen(train_x, train_y, config.pen_redraw, config.seed)
    steps_per_epoch = int(np.ceil(len(train_x) / config.batch_size))
    model = _starting_model(config)
    model.compile(
        optimizer=_optimizer(config, steps_per_epoch),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    watch = _Outcome()
    started = time.perf_counter()
    history = model.fit(
        make_dataset(train_x, train_y, config.batch_size, augment=config.augment, shuffle=True, seed=config.seed),
        validation_data=make_dataset(*val, config.batch_size) if val else None,
        epochs=config.epochs,
        callbacks=[keras.callbacks.TerminateOnNaN(), watch, *(callbacks or [])],
        shuffle=False,  # the pipeline shuffles; Keras cannot shuffle a tf.data.Dataset anyway
        verbose=verbose,
    )
    status = watch.status(model, config.epochs)
    if status == COMPLETED:  # a stopped or diverged run is discarded: no need to settle it
        settle_batch_norm(model, train_x, config.seed)
    return TrainResult(
        model=model,
        config=config,
        status=status,
        history={k: [float(v) for v in values] for k, values in history.history.items()},
        seconds=time.perf_counter() - started,
        epochs_done=watch.epochs_done,
        train_images=len(train_x),
    )


def settle_batch_norm(model: keras.Model, images: np.ndarray, seed: int = 0) -> None:
    """Re-estimate batch-norm moving statistics as plain averages over clean training images ("precise BN")."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms or not isinstance(model, keras.Sequential):
        return  # the seed has no batch norm; the layer-by-layer pass below needs a Sequential model
    # The moving averages (momentum 0.9) still remember the random start and the early weights after
    # a short run: 24 steps scored 18% on the test set against 57% in training. Averaging the batch
    # statistics of the final weights gives what inference sees. Augmentation is off, as on test images.
    sample = np.random.default_rng(seed).permutation(len(images))[:BATCH_NORM_SAMPLE]
    momentums = [layer.momentum for layer in norms]
    try:
        for k, (x, _) in enumerate(make_dataset(images[sample], np.zeros(len(sample)), BATCH_NORM_BATCH)):
            for layer in norms:
                layer.momentum = k / (k + 1)  # moving = running mean of the k + 1 batches so far
            for layer in model.layers:
                # Only batch norm in training mode: dropout off, so later layers see inference's scale.
                x = layer(x, training=isinstance(layer, keras.layers.BatchNormalization))
    finally:
        for layer, momentum in zip(norms, momentums, strict=True):
            layer.momentum = momentum


def _starting_model(config: TrainConfig) -> keras.Model:
    """A fresh model of the architecture, or the weights of `config.init` when it names a model."""
    model = build_model(config.arch)
    if config.init:
        start = load_model(config.init)
        if [w.shape for w in start.weights] != [w.shape for w in model.weights]:
            raise ModelError(f"{config.init} is not a {config.arch} model: its weights do not fit")
        model.set_weights(start.get_weights())
    return model


def _split(data: Dataset, validation_split: float):
    """Hold out the last part of the training set, as Keras' validation_split does."""
    n = len(data.x_train)
    cut = n - int(n * validation_split)
    val = (data.x_train[cut:], data.y_train[cut:]) if cut < n else None
    return data.x_train[:cut], data.y_train[:cut], val


def _optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam on the run's schedule; with ema, fit ends by writing the weights' average into the model
    (batch norm is then settled for the averaged weights)."""
    return keras.optimizers.Adam(
        _learning_rate(config, steps_per_epoch),
        use_ema=config.ema,
        ema_momentum=max(0.0, 1.0 - EMA_SPAN / (config.epochs * steps_per_epoch)),
    )


def _learning_rate(config: TrainConfig, steps_per_epoch: int):
    if config.arch == "seed":
        return config.learning_rate  # the tutorial's constant Adam rate
    # Cosine decay to 1% lets a short run settle into a good minimum.
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch, alpha=0.01)


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, augment: bool = False, shuffle: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """A tf.data pipeline of (images, labels) batches; augmentation runs on the fly, in parallel."""
    from digit.augment import augment_batch

    # The images stay uint8 in one tensor and only indices are shuffled: a quarter of the memory
    # of float32 slices, and no second copy in a shuffle buffer. Batches become floats on the fly.
    images = tf.constant(np.asarray(x, dtype=np.uint8)[..., np.newaxis])
    labels = tf.constant(np.asarray(y, dtype=np.int32))
    dataset = tf.data.Dataset.range(len(x))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(
        lambda index: (tf.cast(tf.gather(images, index), tf.float32) / 255.0, tf.gather(labels, index)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augment:
        dataset = dataset.map(
            lambda images, labels: (augment_batch(images), labels), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


class _Outcome(keras.callbacks.Callback):
    """Notices how the run ended: all epochs, stopped early, or a NaN loss."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs_done = 0
        self.diverged = False

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self.diverged = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1

    def status(self, model: keras.Model, epochs: int) -> str:
        if self.diverged:
            return DIVERGED
        return COMPLETED if self.epochs_done >= epochs and not model.stop_training else STOPPED
