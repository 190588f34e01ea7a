"""Quick training runs (1 epoch on 3,000, 1,000 and 100 images): MNIST test accuracy against training's.

A short run of the batch-normalised `cnn` must score on the test set about what training
showed (issue 13). Trains each run with the default settings and prints, per run, the
accuracy on its own (augmented) batches in the last epoch and on the 10,000 MNIST test images.

    python benchmarks/quick_runs.py                          # the three runs: about a minute on 2 cores
    python benchmarks/quick_runs.py --runs 3000x1 60000x1    # LIMITxEPOCHS, any number of them
    python benchmarks/quick_runs.py --arch seed --data path/to/mnist.npz

Reads $DIGIT_MNIST_NPZ or ../shared/data/mnist.npz; without either, the small test fixture.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # run from a checkout without installing anything
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from digit.config import ARCHITECTURES, DEFAULT_ARCH, TrainConfig, data_path_from_env  # noqa: E402
from digit.data import load_npz  # noqa: E402
from digit.evaluation import evaluate  # noqa: E402
from digit.training import train  # noqa: E402

SHARED_NPZ = PROJECT.parent / "shared" / "data" / "mnist.npz"
FIXTURE_NPZ = PROJECT / "tests" / "fixtures" / "mnist-small.npz"


def main(argv: list[str] | None = None) -> int:
    """Train each run and print its training and test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["3000x1", "1000x1", "100x1"], help="LIMITxEPOCHS")
    parser.add_argument("--arch", choices=ARCHITECTURES, default=DEFAULT_ARCH)
    parser.add_argument("--data", type=Path, help="an mnist.npz (default: $DIGIT_MNIST_NPZ, else ../shared/data)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = args.data or data_path_from_env() or (SHARED_NPZ if SHARED_NPZ.is_file() else FIXTURE_NPZ)
    data = load_npz(path)
    print(f"{args.arch} on {path} ({len(data.x_test):,} test images)")
    print(f"{'images':>7} {'epochs':>6} {'train acc':>9} {'test acc':>8} {'seconds':>7}  status")
    for run in args.runs:
        limit, epochs = (int(part) for part in run.split("x"))
        config = TrainConfig.for_arch(args.arch, epochs=epochs, limit=limit, seed=args.seed)
        result = train(config, data)
        test = evaluate(result.model, data.x_test, data.y_test).accuracy
        trained = result.history["accuracy"][-1]
        print(
            f"{limit:>7} {epochs:>6} {trained:>9.4f} {test:>8.4f} {result.seconds:>7.1f}  {result.status}", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
