"""A gRPC server with the decision point's health service and an Authorize that answers fixed
bytes without deciding anything: the floor that `bench_server.py` measures the real Authorize
against (what the request and the answer cost on the wire, apart from our handler's work).

`python -m benchmarks.floor_server ANSWER_FILE` prints the port it listens on (loopback), then serves
until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import aio as health_aio


async def serve(answer: bytes) -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)

    async def authorize(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return answer

    handlers = {"Authorize": grpc.unary_unary_rpc_method_handler(authorize)}  # bytes in, bytes out, as ours
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("pdp.v1.AuthorizationService", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]).read_bytes()))
