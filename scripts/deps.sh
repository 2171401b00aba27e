#!/usr/bin/env bash
# What the tests use for real, installed when missing (needs root and Debian's apt): curl (the
# seed 004 walk-through drives the scheduler API with it, as the post does), ZooKeeper (master
# election; tests start their own server on loopback from this package's zkServer.sh), Debian's
# docker-registry (the provisioner's Registry v2 tests start their own on loopback) and a
# Docker engine (Debian's docker.io; dockerd started when nothing answers).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -x /usr/share/zookeeper/bin/zkServer.sh ] || need+=(zookeeper)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
# The web UI's tests drive a real headless browser (tests/harness/browser.py).
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash scripts/docker.sh
