"""Regenerate the committed protobuf/gRPC modules from ``proto/``.

Run from the repository root: ``python -m ocppcable.protos.generate``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = "ocppcable/protos/rpc.proto"


def main() -> int:
    from grpc_tools import protoc

    return protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={ROOT}",
            f"--pyi_out={ROOT}",
            f"--grpc_python_out={ROOT}",
            str(ROOT / "proto" / PROTO),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
