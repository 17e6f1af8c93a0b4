#!/usr/bin/env bash
# Regenerates pdp/v1/ from protos/ (run from anywhere; tests/server/test_protos.py fails when it is stale).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-.}"
"${PYTHON:-.venv/bin/python}" -m grpc_tools.protoc -I protos \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
  protos/pdp/v1/authorization.proto
