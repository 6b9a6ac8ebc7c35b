"""``python -m speechvision`` (and ``torchrun -m speechvision``) runs the command-line interface."""

import sys

from speechvision.cli import main

sys.exit(main())
