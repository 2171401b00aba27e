#!/usr/bin/env bash
# Make sure a Docker engine answers on the socket the tests use (CI and developers alike).
#
# Installs Debian's docker.io when dockerd is missing, then starts dockerd in the background
# when nothing answers on DOCKER_SOCKET (default /var/run/docker.sock), and waits until it
# does. Idempotent: with an engine already up it only checks that it answers.
#
# The machines are cgroup v1 without systemd as PID 1, so dockerd gets the cgroupfs driver
# (its systemd driver needs a running systemd); overlay2 is used when the kernel has it, vfs
# otherwise. Its log goes to /var/log/dockerd.log.
set -euo pipefail

SOCKET="${DOCKER_SOCKET:-/var/run/docker.sock}"
LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
WAIT_S="${DOCKERD_WAIT_S:-60}"

answers() {
  # `docker version` exits non-zero when the client reaches no server.
  docker -H "unix://$SOCKET" version >/dev/null 2>&1
}

if answers; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/docker.sh: dockerd is missing and installing it needs root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

driver=vfs
if grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null; then
  driver=overlay2
fi

# setsid: dockerd must outlive this script and the CI step that ran it, and must not get the
# terminal's signals.
setsid dockerd \
  --host "unix://$SOCKET" \
  --exec-opt native.cgroupdriver=cgroupfs \
  --storage-driver "$driver" \
  >>"$LOG" 2>&1 </dev/null &

deadline=$((SECONDS + WAIT_S))
until answers; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "scripts/docker.sh: dockerd did not answer on $SOCKET within ${WAIT_S}s" >&2
    tail -n 30 "$LOG" >&2 || true
    exit 1
  fi
  sleep 0.2
done
echo "dockerd answers on $SOCKET (storage driver $driver)"
