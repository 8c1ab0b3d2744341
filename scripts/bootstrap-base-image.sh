#!/usr/bin/env bash
# Builds a base image locally for machines with no container registry:
# debootstrap a minimal Debian 12 with Python, then import it into podman.
#
# Usage: scripts/bootstrap-base-image.sh [--systemd] [IMAGE]
#   (no option)  the TTS image's base          default localhost/tts-base:bookworm
#   --systemd    a host-like image for Molecule: systemd as PID 1, dbus, procps, python3-apt,
#                iproute2 (Ansible facts)       default localhost/tts-base-systemd:bookworm
#                Run it with: podman run --systemd=always IMAGE  (CMD is /sbin/init)
# Sites with a registry set tts_image_base to a pulled image instead and skip this.
set -euo pipefail

SYSTEMD=false
if [[ ${1:-} == --systemd ]]; then
  SYSTEMD=true
  shift
fi

PACKAGES=python3,python3-venv,ca-certificates,curl
if $SYSTEMD; then
  IMAGE=${1:-localhost/tts-base-systemd:bookworm}
  PACKAGES+=,systemd,systemd-sysv,dbus,python3-apt,iproute2,procps
  CHANGES=(--change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3'
           --change "LABEL ttsctl.packages=$PACKAGES")
else
  IMAGE=${1:-localhost/tts-base:bookworm}
  CHANGES=(--change 'CMD ["/bin/bash"]')
fi

if podman image exists "$IMAGE"; then
  # The systemd image carries its package list: a changed list rebuilds it.
  have=$(podman image inspect --format '{{ index .Labels "ttsctl.packages" }}' "$IMAGE" 2>/dev/null || true)
  if ! $SYSTEMD || [[ $have == "$PACKAGES" ]]; then
    echo "$IMAGE already present"; exit 0
  fi
  echo "$IMAGE has other packages ($have): rebuilding it"
fi
ROOTFS=$(mktemp -d /var/tmp/tts-base.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
LOG=/var/log/$(basename "${IMAGE%%:*}")-debootstrap.log
echo "debootstrap bookworm into $ROOTFS (about a minute; log: $LOG)"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" >"$LOG" 2>&1
if $SYSTEMD; then
  # A container has no consoles, udev or hardware clock: these units only fail or wait.
  for unit in getty.target console-getty.service systemd-udevd.service \
              systemd-udev-trigger.service systemd-timesyncd.service \
              systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$ROOTFS/etc/systemd/system/$unit"
  done
  echo localhost > "$ROOTFS/etc/hostname"
  : > "$ROOTFS/etc/machine-id"
fi
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
# No package lists: date them to 1970 so apt (and Ansible's cache_valid_time) refreshes first.
touch -d @0 "$ROOTFS"/var/lib/apt/lists
tar -C "$ROOTFS" -c . | podman import "${CHANGES[@]}" - "$IMAGE" >/dev/null
echo "imported $IMAGE"
