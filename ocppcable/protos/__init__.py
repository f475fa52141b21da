"""Generated protobuf/gRPC modules for AnyCable's ``rpc.proto``.

Everything here except this file and ``generate.py`` is generated: do not edit it by hand.
Regenerate with ``python -m ocppcable.protos.generate`` (needs grpcio-tools).
"""
