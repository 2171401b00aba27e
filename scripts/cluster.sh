#!/usr/bin/env bash
# A cluster of network-namespace hosts on this machine (as root): see README "A multi-node
# cluster" and `scripts/cluster.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m agent_runtime.netns "$@"
