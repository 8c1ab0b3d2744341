#!/usr/bin/env bash
# Makes podman serve the Docker Engine API on this machine (there is no Docker daemon here).
# Installs podman, applies the settings this kind of sandbox needs, starts the API socket.
# Prints the DOCKER_HOST to use. Idempotent.
set -euo pipefail
SOCKET=${PODMAN_SOCKET:-/run/podman/podman.sock}

need=()
for p in podman runc debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

conf=/etc/containers/containers.conf
if ! grep -q '^runtime = "runc"' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  # crun fails on hybrid cgroups; raising ulimits is refused without CAP_SYS_RESOURCE.
  cat > "$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
fi

if ! curl -sf --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; then
  mkdir -p "$(dirname "$SOCKET")"
  if [[ -d /run/systemd/system ]]; then
    systemctl enable --now podman.socket >/dev/null
  else
    nohup podman system service --time=0 "unix://$SOCKET" >/var/log/podman-service.log 2>&1 &
  fi
  for _ in $(seq 50); do
    curl -sf --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
curl -sf --unix-socket "$SOCKET" http://d/_ping >/dev/null

# A container whose conmon was killed with it (a killed session, an OOM kill) stays
# "running" in podman's database and can be neither stopped nor started. Remove those:
# the tts_stack role recreates every recorded instance.
for id in $(podman ps -q --filter status=running); do
  pid=$(podman inspect --format '{{.State.Pid}}' "$id")
  if [[ "$pid" == 0 ]] || ! kill -0 "$pid" 2>/dev/null; then
    echo "removing container $id: podman says running, its process $pid is gone" >&2
    podman rm -f "$id" >/dev/null 2>&1 || true
  fi
done
echo "unix://$SOCKET"
