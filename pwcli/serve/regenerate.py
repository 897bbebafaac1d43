"""Regenerate the committed gRPC stubs from proxy_wasm_cli.proto (needs grpcio-tools):

    python -m pwcli.serve.regenerate

tests/serve/test_stubs.py checks that the committed stubs are what this writes."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "proxy_wasm_cli.proto"


def generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(["protoc", f"-I{HERE}", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", str(HERE / PROTO)])
    if code != 0:
        raise SystemExit(f"protoc failed ({code})")
    # the generated service module imports its messages as a top-level module: make it relative
    grpc_module = out / "proxy_wasm_cli_pb2_grpc.py"
    text = grpc_module.read_text()
    grpc_module.write_text(text.replace("import proxy_wasm_cli_pb2 as",
                                        "from . import proxy_wasm_cli_pb2 as"))


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
