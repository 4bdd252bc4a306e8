"""``python -m gpuwizard`` = the ``gpuwizard`` command."""

import sys

from .cli import main

sys.exit(main())
