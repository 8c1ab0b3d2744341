#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh, podman's Docker API, the local base image) and runs
# the whole test suite:
#   1. pytest: unit tests, then integration tests against real servers on this machine
#      (gunicorn, HAProxy, podman containers, Prometheus, Alertmanager, ansible-runner);
#   2. scripts/lint.sh: ansible-playbook --syntax-check of every playbook, ansible-lint
#      (production profile);
#   3. scripts/molecule.sh: every Molecule scenario (create, converge, idempotence, verify,
#      destroy), about 17 minutes.
# With arguments, only pytest runs, with them: ./scripts/test.sh tests/unit -k engine
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
DOCKER_HOST=$(./scripts/podman-service.sh)
export DOCKER_HOST
./scripts/bootstrap-base-image.sh

status=0
timings=()
step() {  # step NAME COMMAND...: runs it, remembers a failure, goes on with the next step
  local name=$1 start=$SECONDS result=ok
  shift
  "$@" || { status=1; result=FAILED; }
  timings+=("$(printf '%-10s %-6s %5d s' "$name" "$result" $((SECONDS - start)))")
}
step pytest .venv/bin/python -m pytest -ra --durations=15 -p no:cacheprovider "$@"
if (($# == 0)); then
  step lint ./scripts/lint.sh
  step molecule ./scripts/molecule.sh
fi
printf '\nTest steps (wall time):\n'
printf '  %s\n' "${timings[@]}"
exit "$status"
