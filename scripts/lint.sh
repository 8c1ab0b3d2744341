#!/usr/bin/env bash
# Static checks of the Ansible content, offline (no Galaxy):
#   ansible-playbook --syntax-check on every playbook in playbooks/, then
#   ansible-lint with the production profile (.ansible-lint) on the whole repository
#   (roles, playbooks, molecule/ scenarios).
# Needs .venv from scripts/setup.sh (ansible-lint is in the test extras). Exit 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_NOCOLOR=1 NO_COLOR=1

status=0
for playbook in playbooks/*.yml; do
  if out=$(ansible-playbook --syntax-check "$playbook" 2>&1); then
    echo "syntax ok: $playbook"
  else
    echo "syntax FAILED: $playbook"; echo "$out"; status=1
  fi
done

ansible-lint --nocolor || status=1
exit $status
