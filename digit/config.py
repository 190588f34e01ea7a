"""Constants and the typed configuration of one training run, shared by the CLI and the app."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

IMAGE_SIZE = 28  # MNIST images are 28x28
DIGIT_BOX = 20  # MNIST digits were fitted in a 20x20 box inside the 28x28 image
NUM_CLASSES = 10
CLASS_NAMES = tuple(str(i) for i in range(NUM_CLASSES))

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
MODELS_DIR = PROJECT_DIR / "models"
DEFAULT_MODEL_PATH = MODELS_DIR / "digit-cnn.keras"

DATA_ENV_VAR = "DIGIT_MNIST_NPZ"  # path to an mnist.npz read instead of Keras' download

ARCHITECTURES = ("cnn", "seed")
DEFAULT_ARCH = "cnn"
# What each architecture is, and its weights (checked against build_model by a test): for labels
# in a server that has no Keras to count them.
ARCHITECTURE_INFO = {"cnn": ("VGG-style CNN", 468_778), "seed": ("the tutorial's CNN", 82_122)}

# Bounds shared by the CLI and the Train page: generous for a local run, safe for a shared server.
MAX_EPOCHS = 100
MAX_BATCH_SIZE = 4096
MIN_LEARNING_RATE = 1e-6
MAX_LEARNING_RATE = 1.0
MAX_TRAIN_IMAGES = 60_000


class ConfigError(ValueError):
    """A training setting outside its bounds."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run."""

    arch: str = DEFAULT_ARCH
    epochs: int = 15
    batch_size: int = 128
    learning_rate: float = 2e-3
    augment: bool = True
    limit: int | None = None  # train on the first N training images
    validation_split: float = 0.0
    seed: int = 0
    pen_redraw: float = 0.0  # share of the training digits redrawn with a pen first (digit.pen_redraw)
    init: str | None = None  # a .keras model of the same architecture to start from, instead of random weights
    ema: bool = False  # serve the weights' exponential moving average over the run's steps (Polyak averaging)

    @classmethod
    def for_arch(cls, arch: str, **overrides) -> TrainConfig:
        """The recommended settings of an architecture, with overrides (None means keep)."""
        base = SEED_RECIPE if arch == "seed" else {}
        settings = {"arch": arch, **base}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**settings)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ConfigError with a clear message for any setting out of bounds."""
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_int("batch size", self.batch_size, 1, MAX_BATCH_SIZE)
        if self.limit is not None:
            _check_int("training-set size", self.limit, 1, MAX_TRAIN_IMAGES)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        if not isinstance(self.learning_rate, (int, float)) or not (
            MIN_LEARNING_RATE <= self.learning_rate <= MAX_LEARNING_RATE
        ):
            raise ConfigError(
                f"learning rate must be between {MIN_LEARNING_RATE:g} and {MAX_LEARNING_RATE:g}, got {self.learning_rate!r}"
            )
        if not isinstance(self.validation_split, (int, float)) or not 0.0 <= self.validation_split <= 0.5:
            raise ConfigError(f"validation split must be between 0 and 0.5, got {self.validation_split!r}")
        if not isinstance(self.pen_redraw, (int, float)) or not 0.0 <= self.pen_redraw <= 1.0:
            raise ConfigError(f"the share redrawn with a pen must be between 0 and 1, got {self.pen_redraw!r}")
        if not isinstance(self.ema, bool):
            raise ConfigError(f"ema (the weights' moving average) must be true or false, got {self.ema!r}")

    def to_dict(self) -> dict:
        """A JSON-ready copy of the settings."""
        return asdict(self)


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that defines one fine-tuning run."""

    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 3e-4
    oversample: int = 8  # each correction is shown this many times per epoch (fewer for large sets)
    replay: float = 3.0  # MNIST images per correction shown
    min_replay: int = 1_000
    augment: bool = True
    freeze_batchnorm: bool = True  # keep MNIST's normalisation statistics: the main guard against forgetting
    seed: int = 0

    def validate(self) -> None:
        """Raise ConfigError with a clear message for any setting out of bounds."""
        _check_int("epochs", self.epochs, 1, 20)
        _check_int("batch size", self.batch_size, 8, 512)
        _check_int("oversampling", self.oversample, 1, 50)
        _check_int("minimum replay", self.min_replay, 0, 60_000)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        if not isinstance(self.learning_rate, (int, float)) or not 1e-6 <= self.learning_rate <= 1e-2:
            raise ConfigError(f"learning rate must be between 1e-06 and 0.01, got {self.learning_rate!r}")
        if not isinstance(self.replay, (int, float)) or not 0.0 <= self.replay <= 10.0:
            raise ConfigError(f"replay must be between 0 and 10 MNIST images per correction, got {self.replay!r}")

    def copies(self, corrections: int) -> int:
        """How often each correction is shown per epoch."""
        return max(1, min(self.oversample, MAX_CORRECTION_SAMPLES // max(corrections, 1)))

    def replay_size(self, corrections: int, available: int) -> int:
        """How many MNIST training images are mixed in."""
        wanted = max(self.min_replay, round(self.replay * corrections * self.copies(corrections)))
        return min(wanted, available)

    def to_dict(self) -> dict:
        """A JSON-ready copy of the settings."""
        return {"kind": "finetune", **asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> FinetuneConfig:
        """The settings again from to_dict()'s values."""
        return cls(**{k: v for k, v in values.items() if k != "kind"})


MAX_CORRECTION_SAMPLES = 2_000  # oversampling stops here, so that a large set still trains in a minute


# The tutorial this project grew out of: 5 epochs, batch 32, Adam's default rate, 30% held out.
SEED_RECIPE = {"epochs": 5, "batch_size": 32, "learning_rate": 1e-3, "augment": False, "validation_split": 0.3}


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def data_path_from_env() -> Path | None:
    """The .npz named by DIGIT_MNIST_NPZ, if set."""
    value = os.environ.get(DATA_ENV_VAR)
    return Path(value) if value else None
