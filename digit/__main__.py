"""`python -m digit ...`: see digit/cli.py."""

import sys

from digit.cli import main

sys.exit(main())
