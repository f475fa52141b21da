# The built-in transports and adapters, declared as any third party's plugins are. Imported by
# plugin discovery: the factories (ocppcable.builtins and what it imports) load only when used.
from ocppcable.plugin import BroadcastAdapter, ClusterTransport, RPCTransport, comma_list

grpc = RPCTransport(
    "grpc", "ocppcable.builtins.grpc", schemes=("grpc",), checker="ocppcable.builtins.check_grpc"
)
http = RPCTransport(
    "http",
    "ocppcable.builtins.http",
    schemes=("http", "https"),
    checker="ocppcable.builtins.check_http",
)
demo = RPCTransport(
    "demo",
    "ocppcable.builtins.demo",
    schemes=("demo",),
    optParameters=[
        [
            "demo-id-tags",
            None,
            None,
            "With --rpc-host=demo: idTags the demo backend accepts (default: any)",
            comma_list,
        ],
    ],
)
python = RPCTransport(
    "python",
    "ocppcable.builtins.python_channel",
    schemes=("python",),
    checker="ocppcable.builtins.check_python",
)

http_broadcast = BroadcastAdapter("http", "ocppcable.builtins.http_broadcaster")
redis_broadcast = BroadcastAdapter("redis", "ocppcable.builtins.redis_broadcaster")
redisx_broadcast = BroadcastAdapter("redisx", "ocppcable.builtins.redisx_broadcaster")

redis_cluster = ClusterTransport("redis", "ocppcable.builtins.redis_cluster")
