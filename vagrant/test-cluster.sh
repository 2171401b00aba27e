#!/usr/bin/env bash
# Bring up the Vagrant cluster (docker provider unless PROVIDER says otherwise), check tasks
# across its nodes from the host (check_cluster.py), and destroy it; non-zero when a check
# fails. CI runs it after the test suite. Needs root, dockerd and Debian's vagrant (installed
# when missing). Prints the seconds from nothing to a ready cluster.
set -euo pipefail
cd "$(dirname "$0")"
PROVIDER="${PROVIDER:-docker}"
export MASTERS="${MASTERS:-1}" AGENTS="${AGENTS:-2}" MASTER_PORT="${MASTER_PORT:-5050}"
export VAGRANT_DEFAULT_PROVIDER="$PROVIDER" VAGRANT_CHECKPOINT_DISABLE=1
PY="$(cd .. && pwd)/.venv/bin/python"
command -v vagrant >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends vagrant
}
# What the nodes install, made here: the project and its dependencies as wheels (the nodes
# reach no package index) and the offline images (no registry either).
# SOURCE=head builds the last commit instead of the working tree (one with work in progress).
rm -rf .wheels
src=..
if [ "${SOURCE:-tree}" = head ]; then
  src="$(mktemp -d)"
  git -C .. archive HEAD | tar -x -C "$src"
fi
$PY -m pip wheel -q --wheel-dir .wheels "$src"
[ "$src" = .. ] || rm -rf "$src"
$PY -m agent_runtime.images.offline build --output=.images busybox redis >/dev/null
[ "$PROVIDER" != docker ] || bash node-image.sh

cleanup() {
  vagrant destroy -f >/dev/null 2>&1 || true
  left="$(docker ps -aq --filter name=agent-runtime- 2>/dev/null || true)"
  [ -z "$left" ] || { echo "left behind: containers $left" >&2; exit 1; }
}
trap cleanup EXIT
started=$(date +%s.%N)
vagrant up --provider="$PROVIDER"
up=$(date +%s.%N)
(cd .. && PYTHONPATH=. "$PY" vagrant/check_cluster.py 600) | tee >(cat >&2) \
  | sed -n 's/^cluster ready.* \([0-9.]*\)s after.*/\1/p' >.ready
$PY -c "import sys; up = $up - $started; print(f'nothing -> ready: {up + $(cat .ready):.1f} s' \
  f' (vagrant up {up:.1f} s)')"
rm -f .ready
