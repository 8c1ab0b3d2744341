#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh, podman's Docker API, the local base image) and runs
# the whole test suite: unit tests, then integration tests against real servers on this
# machine (gunicorn, HAProxy, podman containers, Prometheus, Alertmanager, ansible-runner),
# then ansible-lint and the playbooks' syntax check.
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/unit -k engine
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
DOCKER_HOST=$(./scripts/podman-service.sh)
export DOCKER_HOST
./scripts/bootstrap-base-image.sh

status=0
.venv/bin/python -m pytest -ra -p no:cacheprovider "$@" || status=$?
if [[ $# -eq 0 && -x scripts/lint.sh ]]; then
  ./scripts/lint.sh || status=$((status ? status : 1))
fi
exit "$status"
