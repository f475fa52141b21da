"""What twistd loads for ``twistd ocppcable``: the options and the service maker."""

from ocppcable.options import Options
from ocppcable.service import makeService

__all__ = ["Options", "makeService"]
