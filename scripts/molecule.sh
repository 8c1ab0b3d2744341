#!/usr/bin/env bash
# Runs the Molecule scenarios in molecule/ (create, converge, idempotence, verify, destroy),
# each with `molecule test`, and prints the wall time of each.
#   scripts/molecule.sh                    every scenario (what `molecule test --all` runs)
#   scripts/molecule.sh haproxy release    only these
# Needs .venv from scripts/setup.sh (molecule and molecule-plugins are in the test extras).
# Starts podman's Docker API (scripts/podman-service.sh) and builds the two local base
# images (scripts/bootstrap-base-image.sh, plain and --systemd) when they are missing:
# nothing is pulled from a registry and Galaxy is never called.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_NOCOLOR=1 NO_COLOR=1 ANSIBLE_FORCE_COLOR=0

DOCKER_HOST=$(./scripts/podman-service.sh)
export DOCKER_HOST
./scripts/bootstrap-base-image.sh            # FROM of the TTS image (tts_image scenario)
./scripts/bootstrap-base-image.sh --systemd  # the scenarios' hosts

if (($#)); then
  scenarios=("$@")
else
  scenarios=()
  for file in molecule/*/molecule.yml; do
    scenarios+=("$(basename "$(dirname "$file")")")
  done
fi

summary=()
status=0
# A scenario that fails runs once more from scratch, and the summary says so: podman's
# exec API now and then answers a command with no output at all, which Ansible reports as
# "failed to resolve remote temporary directory" (ansible-community/molecule-plugins#113).
# A real failure fails both tries.
for scenario in "${scenarios[@]}"; do
  start=$SECONDS
  if molecule test --scenario-name "$scenario"; then
    result=ok
  elif echo "molecule.sh: $scenario failed; running it once more" >&2 && molecule test --scenario-name "$scenario"; then
    result="ok (second try; the first failed, see its log above)"
  else
    result=FAILED
    status=1
  fi
  summary+=("$(printf '%-12s %4d s  %s' "$scenario" $((SECONDS - start)) "$result")")
done

printf '\nMolecule scenarios (wall time):\n'
printf '  %s\n' "${summary[@]}"
exit $status
