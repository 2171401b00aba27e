#!/usr/bin/env bash
# Build the docker provider's node image (agent-runtime-node:bookworm, or $NODE_IMAGE) with no
# image registry: a Debian 12 root made by debootstrap from Debian's archive (the one apt uses),
# with what provision.sh would install already in it, imported into the local engine. Kept
# while the image exists; REBUILD=1 builds it again. Needs root, debootstrap and dockerd.
set -euo pipefail
IMAGE="${NODE_IMAGE:-agent-runtime-node:bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
if [ "${REBUILD:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
}
root="$(mktemp -d /var/tmp/agent-runtime-node.XXXXXX)"
trap 'rm -rf "$root"' EXIT
packages=python3,python3-venv,supervisor,procps,iptables,docker.io,zookeeper,default-jre-headless
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$MIRROR" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
echo "built $IMAGE"
