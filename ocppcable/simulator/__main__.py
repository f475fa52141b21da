"""``python -m ocppcable.simulator``: the same as ``ocppcable-station``."""

from ocppcable.simulator.cli import main

main()
