"""`python -m digit ...`: see digit/cli.py."""

import sys

from digit.cli import main

# Keras imports pandas and Matplotlib whenever they are installed (Streamlit brings pandas), for
# what training here never uses: DataFrames as training data, image galleries. Left out of the
# processes that train, they save about 90 MB of the 1 GB that a Community Cloud app gets in all.
# Only in a process of its own: `digit.cli.main` called inside another program changes nothing.
TRAINING_COMMANDS = ("train", "finetune", "measure", "publish")
UNUSED_BY_TRAINING = ("pandas", "matplotlib", "scipy")

if sys.argv[1:2] and sys.argv[1] in TRAINING_COMMANDS:
    for name in UNUSED_BY_TRAINING:
        sys.modules.setdefault(name, None)  # `import pandas` then fails, and Keras goes without it
    from digit import resident

    resident.enable()  # and the library code TensorFlow runs once goes back to the kernel: digit/resident.py

sys.exit(main())
