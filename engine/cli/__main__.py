"""`python -m engine.cli ...`: the same as the `clearance` command."""

import sys

from engine.cli import main

sys.exit(main())
