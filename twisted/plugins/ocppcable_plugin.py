# The twistd dropin. Imported by every twistd run and by plugin-cache regeneration, so it imports
# nothing but Twisted: ServiceMaker loads ocppcable.tap only when the ocppcable command is used.
from twisted.application.service import ServiceMaker

ocppcable = ServiceMaker(
    "ocppcable",
    "ocppcable.tap",
    "OCPP WebSocket gateway for Action Cable / AnyCable RPC backends.",
    "ocppcable",
)
