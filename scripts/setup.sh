#!/usr/bin/env bash
# Installs everything ttsctl needs on a Debian 12 machine (run as root) and creates .venv/.
# Idempotent: a second run installs nothing new and returns quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-dev gcc git curl ca-certificates
              chromium haproxy prometheus prometheus-alertmanager)

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The roles start and configure these servers themselves: keep the packages' own
  # init scripts from starting them with distribution defaults during install.
  policy=/usr/sbin/policy-rc.d
  [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; trap 'rm -f "$policy"' EXIT; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -f $stamp ]]; then
  log "installing Python packages into .venv (torch is pinned; first run takes a few minutes)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[control,test]"
  rm -f .venv/.installed-* && touch "$stamp"
fi
log "environment ready: $(.venv/bin/python -c 'import torch,sys; print("python", sys.version.split()[0], "torch", torch.__version__)')"
