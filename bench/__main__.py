"""``python -m bench [--quick | --smoke] [--json FILE] [--gateway-src DIR]``."""

import sys

from bench.run import main

sys.exit(main())
