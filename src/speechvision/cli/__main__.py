"""``python -m speechvision.cli``: the same as ``speechvision``."""

import sys

from speechvision.cli import main

sys.exit(main())
