#!/usr/bin/env bash
# The main job: set everything up and run a local blue/green deployment on this machine.
#   blue  = the stable version (1.5), live      green = the candidate (2.0), weight 0
# Run it again: nothing changes and it returns quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; }

step "Python environment, system packages"
./scripts/setup.sh

step "Container engine (podman serving the Docker API)"
DOCKER_HOST=$(./scripts/podman-service.sh)
export DOCKER_HOST

step "Base image (built locally: this machine has no registry)"
./scripts/bootstrap-base-image.sh

step "Load balancer, stable version on blue, monitoring, webhook receiver (playbooks/site.yml)"
.venv/bin/ansible-playbook playbooks/site.yml -e 'reason="quickstart: stable version"'

step "Candidate version on green, parked at weight 0 (playbooks/deploy.yml)"
.venv/bin/ansible-playbook playbooks/deploy.yml -e version=2.0 -e 'reason="quickstart: candidate"'

cat <<'DONE'

Local blue/green deployment is up.

  Listeners       http://127.0.0.1:8080/            (web page; POST /v1/audio/speech)
  Blue  (stable)  http://127.0.0.1:6006/version
  Green (cand.)   http://127.0.0.1:6007/version
  HAProxy stats   http://127.0.0.1:8404/stats       (admin; password: /etc/ttsctl/secrets/haproxy_stats_password)   metrics: :8404/metrics
  Prometheus      http://127.0.0.1:9090/            Alertmanager http://127.0.0.1:9093/
  Rollback webhook http://127.0.0.1:9095/health     (ttsctl webhook serve)

Try next:
  curl -s 127.0.0.1:8080/version                         # stable: 1.5 on blue
  curl -s -H 'X-Canary: always' 127.0.0.1:8080/version   # the candidate, forced
  .venv/bin/ansible-playbook playbooks/canary.yml -e weight=5   # or: .venv/bin/ttsctl canary --weight 5
  .venv/bin/ttsctl status
  .venv/bin/ttsctl promote --reason "canary clean"
  .venv/bin/ttsctl rollback --reason "latency"
  .venv/bin/ttsctl history
  curl -s 127.0.0.1:8080/v1/audio/speech -H 'Content-Type: application/json' \
       -d '{"model":"tts-1","input":"Hello from the canary.","voice":"alloy"}' -o hello.wav
DONE
