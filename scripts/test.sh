#!/usr/bin/env bash
# The README's test command: set up (as root, also curl, ZooKeeper and a Docker engine when
# missing), lint, type-check, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ] && [ "${SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/deps.sh
fi
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy agent_runtime executors isolators images bench tests
set +e
# Integration tests mostly wait on processes they started, so more workers than cores pay off;
# --dist loadgroup keeps each module, and all Docker engine tests, on one worker
# (tests/conftest.py says why). PYTEST_WORKERS=0 runs everything in this process.
.venv/bin/python -m pytest -q -n "${PYTEST_WORKERS:-3}" --dist loadgroup "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$code"
