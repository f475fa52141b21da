# NATS, shipped with ocppcable as a plugin of its own: the ``nats`` broadcast adapter (AnyCable's
# legacy NATS broadcaster) and the ``nats`` cluster transport (``--pubsub nats``). Only the option
# checks load at every start; the factories and the NATS client when one of them is chosen.
from ocppcable.nats.servers import servers_option, subject_option
from ocppcable.plugin import BroadcastAdapter, ClusterTransport

_OPTIONS = [
    [
        "nats-servers",
        None,
        "nats://127.0.0.1:4222",
        "NATS servers for the nats broadcast adapter and --pubsub nats, comma-separated (tried "
        "in turn): nats://[user:password@|token@]host[:port], tls://… to insist on TLS.",
        servers_option,
    ],
    [
        "nats-channel",
        None,
        "__anycable__",
        "NATS subject the nats broadcast adapter subscribes to.",
        subject_option,
    ],
]

nats_broadcast = BroadcastAdapter(
    "nats", "ocppcable.nats.wiring.broadcaster", optParameters=_OPTIONS
)
nats_cluster = ClusterTransport("nats", "ocppcable.nats.wiring.cluster")
