#!/usr/bin/env bash
# Regenerate the Python protobuf/gRPC modules and mypy stubs under agent_runtime/proto/.
# Run from anywhere; PYTHON defaults to the repo's .venv interpreter.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"

# protoc-gen-mypy is installed next to the interpreter; put that directory on PATH.
case "$PYTHON" in
    */*) PATH="$(cd "$(dirname "$PYTHON")" && pwd):$PATH" ;;
esac
export PATH

# Use the given files, else every .proto in agent_runtime/proto.
if [ "$#" -gt 0 ]; then
    protos=("$@")
else
    protos=(agent_runtime/proto/*.proto)
fi

"$PYTHON" -m grpc_tools.protoc -I . \
    --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. \
    "${protos[@]}"

# grpc_tools writes a *_pb2_grpc.py for every file; drop the ones with no service in them.
for f in agent_runtime/proto/*_pb2_grpc.py; do
    [ -e "$f" ] || continue
    if ! grep -q "Stub" "$f"; then
        rm -f "$f" "${f}i"
    fi
done
