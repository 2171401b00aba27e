#!/usr/bin/env bash
# The README's first command: set up, then run the embedded default (mesos-local plus one task).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mesos-local --port=0 --num_agents=1 \
  --command="${1:-echo hello from agent-runtime; uname -a}"
